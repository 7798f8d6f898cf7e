"""FGSM-RS adversarial training (Wong et al. 2020) and its overfitting guard."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from rls_tf import adversarial
from rls_tf.adversarial import AdversarialTraining
from rls_tf.adversarial import OverfitGuard
from rls_tf.training import TrainConfig
from rls_tf.training import train as run_training
from tests.synthetic_data import write_quadrant_mnist
from tests.test_adv_train import X
from tests.test_adv_train import Y
from tests.test_adv_train import assert_same_weights
from tests.test_adv_train import conv_bn
from tests.test_adv_train import micro


def test_fgsm_rs_recipe_is_one_step_of_1_25_eps_from_a_random_start():
    recipe = AdversarialTraining(eps=0.2, method="fgsm_rs")
    assert recipe.steps == 1 and recipe.step_size == pytest.approx(0.25)
    assert recipe.random_start
    assert AdversarialTraining(eps=0.2).steps == 10  # pgd's default is unchanged
    assert AdversarialTraining.from_json(json.loads(json.dumps(recipe.to_json()))) == recipe
    with pytest.raises(ValueError, match="Received: steps=3"):
        AdversarialTraining(eps=0.2, method="fgsm_rs", steps=3)
    with pytest.raises(ValueError, match="Received: random_start=False"):
        AdversarialTraining(eps=0.2, method="fgsm_rs", random_start=False)


def test_fgsm_rs_points_lie_in_the_ball_and_raise_the_loss():
    model = micro(num_submodels=1)
    model.fit(X, Y, batch_size=64, epochs=3, verbose=0)
    switch = adversarial._Switch(AdversarialTraining(eps=0.3, method="fgsm_rs"))
    x, y = tf.constant(X[:64]), tf.constant(Y[:64])
    tf.random.set_seed(0)
    adv = switch.craft(model, x, y).numpy()
    assert np.max(np.abs(adv - X[:64])) <= 0.3 + 1e-6
    assert adv.min() >= -1.0 and adv.max() <= 1.0
    assert np.mean(np.abs(adv - X[:64]) > 1e-6) > 0.5  # it moved
    clean = np.mean(adversarial.crossentropy(y, model(x)))
    attacked = np.mean(adversarial.crossentropy(y, model(adv)))
    assert attacked > clean + 0.2, (clean, attacked)


def test_fgsm_rs_with_eps_zero_equals_clean_training():
    clean, adv = conv_bn(), conv_bn()
    adversarial.enable(adv, AdversarialTraining(eps=0.0, method="fgsm_rs"))
    for model in (clean, adv):
        model.fit(X[:64], Y[:64], batch_size=32, epochs=1, shuffle=False, verbose=0)
    assert_same_weights(clean, adv)
    other = conv_bn()
    adversarial.enable(other, AdversarialTraining(eps=0.3, method="fgsm_rs"))
    other.fit(X[:64], Y[:64], batch_size=32, epochs=1, shuffle=False, verbose=0)
    assert not np.allclose(other.get_weights()[0], clean.get_weights()[0])


class _Scripted(OverfitGuard):
    """A guard whose robust accuracies are given, epoch by epoch."""

    def __init__(self, accuracies, **kwargs):
        super().__init__(X[:8], Y[:8], eps=0.3, **kwargs)
        self._script = list(accuracies)

    def robust_accuracy(self):
        return self._script.pop(0)


class _Snapshots(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


def test_guard_restores_the_best_epoch_and_stops_on_a_collapse(capsys):
    model = micro(num_submodels=2)
    snapshots = _Snapshots()
    guard = _Scripted([0.30, 0.45, 0.40, 0.05, 0.5])
    history = model.fit(X, Y, batch_size=32, epochs=5, verbose=0,
                        callbacks=[snapshots, guard]).history
    assert len(history["loss"]) == 4  # stopped after the collapse (epoch 4)
    assert history["guard_pgd_accuracy"] == [0.30, 0.45, 0.40, 0.05]
    assert guard.best_epoch == 1 and guard.collapsed_epoch == 3
    for now, best in zip(model.get_weights(), snapshots.weights[1], strict=True):
        np.testing.assert_array_equal(now, best)
    assert not np.allclose(snapshots.weights[3][0], snapshots.weights[1][0])
    record = guard.to_json()
    assert record["best_epoch"] == 2 and record["collapsed_epoch"] == 4
    assert [r["accuracy"] for r in record["pgd_accuracy"]] == [0.30, 0.45, 0.40, 0.05]
    assert "Catastrophic overfitting at epoch 4" in capsys.readouterr().out


def test_guard_lets_a_healthy_run_finish():
    model = micro(num_submodels=1)
    guard = _Scripted([0.30, 0.25, 0.35, 0.20])  # drops of at most 0.15
    history = model.fit(X, Y, batch_size=32, epochs=4, verbose=0, callbacks=[guard]).history
    assert len(history["loss"]) == 4 and guard.collapsed_epoch is None
    assert guard.best_epoch == 2


def test_guard_measures_pgd_accuracy_below_clean_accuracy():
    model = micro(num_submodels=1, lr=0.05)
    model.fit(X, Y, batch_size=32, epochs=5, verbose=0)
    clean = float(np.mean(np.argmax(model.predict(X, verbose=0), -1) == Y))
    guard = OverfitGuard(X, Y, eps=0.5, steps=5)
    guard.set_model(model)
    robust = guard.robust_accuracy()
    assert 0.0 <= robust < clean - 0.2, (clean, robust)
    assert OverfitGuard(X, Y, eps=0.0).step_size == 0.0


@pytest.mark.parametrize("kwargs, match", [
    (dict(eps=-1.0), "Received: eps=-1.0"), (dict(eps=0.3, steps=0), "Received: steps=0"),
    (dict(eps=0.3, max_drop=0.0), "Received: max_drop=0.0"),
])
def test_guard_arguments_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OverfitGuard(X, Y, **kwargs)
    with pytest.raises(ValueError, match="same, non-zero number"):
        OverfitGuard(X[:4], Y[:3], eps=0.3)


def test_train_runs_fgsm_rs_with_the_guard(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    data_dir = write_quadrant_mnist(tmp_path / "data", n_train=64, n_test=16)
    config = TrainConfig(dataset="mnist", backbone="small_cnn", defense="plain",
                         data_dir=data_dir, model_dir=str(tmp_path / "run"), epochs=2,
                         batch_size=32, verbose=0, seed=0, adv_train="fgsm_rs", adv_eps=0.3,
                         adv_guard_examples=32)
    metrics = run_training(config)
    assert "Adversarially trained: FGSM-RS, eps 0.3 ([-1, 1] pixels), 1 step of 0.375" in (
        capsys.readouterr().out)
    guard = metrics["overfit_guard"]
    assert guard["examples"] == 32 and len(guard["pgd_accuracy"]) == 2
    assert metrics["history"]["guard_pgd_accuracy"] == [
        r["accuracy"] for r in guard["pgd_accuracy"]]
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["adv_steps"] == 1 and saved["adversarial_training"]["method"] == "fgsm_rs"
    # The default guard: 128 images for fgsm_rs, none for pgd or clean runs.
    assert TrainConfig(adv_train="fgsm_rs", adv_eps=0.1).guard_examples() == 128
    assert TrainConfig(adv_train="pgd", adv_eps=0.1).guard_examples() == 0
    with pytest.raises(ValueError, match="adv_guard_examples"):
        TrainConfig(adv_guard_examples=10).validate()
    with pytest.raises(ValueError, match="Received: adv_steps=5"):
        TrainConfig(adv_train="fgsm_rs", adv_eps=0.1, adv_steps=5).validate()


def test_guard_state_survives_a_restart(tmp_path):
    """A guard restored from its state_dir continues: its best epoch's weights come back."""
    model = micro(num_submodels=2)
    snapshots = _Snapshots()
    first = _Scripted([0.30, 0.45], state_dir=str(tmp_path))
    model.fit(X, Y, batch_size=32, epochs=2, verbose=0, callbacks=[snapshots, first])
    second = _Scripted([0.40, 0.05], state_dir=str(tmp_path))
    assert second.restore(2)
    assert second.best_epoch == 1 and second.history == first.history
    history = model.fit(X, Y, batch_size=32, epochs=5, initial_epoch=2, verbose=0,
                        callbacks=[second]).history
    assert len(history["loss"]) == 2 and second.collapsed_epoch == 3
    for now, best in zip(model.get_weights(), snapshots.weights[1], strict=True):
        np.testing.assert_array_equal(now, best)
    # Records of epochs past the resumed checkpoint are dropped.
    third = _Scripted([], state_dir=str(tmp_path))
    assert third.restore(1)
    assert third.history == [(0, 0.30)] and third.best_epoch is None
    assert third.collapsed_epoch is None
    assert not _Scripted([], state_dir=str(tmp_path / "none")).restore(3)


def test_a_resumed_run_continues_the_guard_and_a_collapsed_run_stays_stopped(
        tmp_path, capsys, monkeypatch):
    (tmp_path / "data").mkdir()
    data_dir = write_quadrant_mnist(tmp_path / "data", n_train=64, n_test=16)
    script = [0.5]
    monkeypatch.setattr(OverfitGuard, "robust_accuracy", lambda self: script.pop(0))
    settings = dict(dataset="mnist", backbone="small_cnn", defense="plain", data_dir=data_dir,
                    model_dir=str(tmp_path / "run"), batch_size=32, verbose=0, seed=0,
                    adv_train="fgsm_rs", adv_eps=0.3, adv_guard_examples=8)
    run_training(TrainConfig(epochs=1, **settings))
    # Epoch 3 falls 0.22 below epoch 1's 0.5 (only 0.17 below epoch 2's):
    # a collapse only for a guard that remembers epoch 1.
    script[:] = [0.45, 0.28]
    metrics = run_training(TrainConfig(epochs=4, **settings))
    assert metrics["overfit_guard"]["best_epoch"] == 1
    assert metrics["overfit_guard"]["collapsed_epoch"] == 3
    assert len(metrics["history"]["loss"]) == 3
    assert "Catastrophic overfitting at epoch 3" in capsys.readouterr().out
    # Rerun: it does not train on.
    metrics = run_training(TrainConfig(epochs=4, **settings))
    assert len(metrics["history"]["loss"]) == 3 and script == []
    assert "not training further" in capsys.readouterr().out
