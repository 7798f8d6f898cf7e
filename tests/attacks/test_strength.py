"""Strength: every attack must break an undefended model.

An attack that silently does nothing would report false robustness, so each
one is run on 100 test images that a small undefended CNN classifies
correctly (the session fixture ``victim``, ~97% clean accuracy on MNIST) and
must fool it. Pixels are in [-1, 1]: eps=0.5 here is 0.25 in [0, 1] units.
"""

import numpy as np

import rls_tf.attacks as attacks
from rls_tf.attacks._common import eot_sparse_ce

EPS = 0.5  # L-inf budget at which PGD must drive accuracy below 10%.
MAX_MEAN_L2 = 5.0  # [-1, 1] units (2.5 in [0, 1] units); DeepFool finds ~3.2.


def report(name, **figures):
    text = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in figures.items())
    print(f"[strength] {name}: {text}")


def test_victim_is_accurate(victim):
    report("clean", accuracy=victim.clean_accuracy, source=victim.source)
    assert victim.clean_accuracy > 0.95
    assert len(victim.y) == 100


def test_fgsm_reduces_accuracy_substantially(victim):
    x_adv = attacks.fgsm(victim.model, victim.x, victim.y, eps=EPS)
    acc = victim.accuracy(x_adv)
    report("fgsm", eps=EPS, accuracy=acc)
    assert acc < 0.5
    assert attacks.linf_distance(victim.x, x_adv).max() <= EPS + 1e-6


def test_pgd_drives_accuracy_below_10_percent(victim):
    x_adv = attacks.pgd(victim.model, victim.x, victim.y, eps=EPS, nb_iter=10)
    acc = victim.accuracy(x_adv)
    report("pgd", eps=EPS, nb_iter=10, accuracy=acc)
    assert acc < 0.10
    assert attacks.linf_distance(victim.x, x_adv).max() <= EPS + 1e-6


def test_apgd_drives_accuracy_below_10_percent(victim):
    for loss in ("ce", "dlr"):
        x_adv = attacks.apgd(victim.model, victim.x, victim.y, eps=EPS, loss=loss,
                             nb_iter=20, seed=0)
        acc = victim.accuracy(x_adv)
        report(f"apgd-{loss}", eps=EPS, nb_iter=20, accuracy=acc)
        assert acc < 0.10, loss
        assert attacks.linf_distance(victim.x, x_adv).max() <= EPS + 1e-6


def test_apgd_is_at_least_as_strong_as_pgd_with_the_same_iterations(victim):
    nb_iter = 20
    pgd_adv = attacks.pgd(victim.model, victim.x, victim.y, eps=victim.eps_compare,
                          nb_iter=nb_iter)
    pgd_robust = int(np.sum(~victim.fooled(pgd_adv)))
    pgd_ce = float(np.mean(eot_sparse_ce(victim.y, victim.logits(pgd_adv))))
    report("pgd (compare)", eps=victim.eps_compare, nb_iter=nb_iter, robust=pgd_robust,
           mean_ce=pgd_ce)
    assert 0 < pgd_robust < 100  # the comparison means something
    for loss, slack in (("ce", 1), ("dlr", 3)):
        apgd_adv = attacks.apgd(victim.model, victim.x, victim.y, eps=victim.eps_compare,
                                loss=loss, nb_iter=nb_iter, seed=0)
        apgd_robust = int(np.sum(~victim.fooled(apgd_adv)))
        apgd_ce = float(np.mean(eot_sparse_ce(victim.y, victim.logits(apgd_adv))))
        report(f"apgd-{loss} (compare)", eps=victim.eps_compare, nb_iter=nb_iter,
               robust=apgd_robust, mean_ce=apgd_ce)
        assert apgd_robust <= pgd_robust + slack, loss
        if loss == "ce":  # APGD-CE climbs the loss PGD climbs, higher.
            assert apgd_ce >= pgd_ce


def test_deepfool_succeeds_with_small_l2(victim):
    x_adv = attacks.deepfool(victim.model, victim.x, victim.y)
    fooled = victim.fooled(x_adv)
    l2 = attacks.l2_distance(victim.x, x_adv)
    report("deepfool", success=float(fooled.mean()), mean_l2=float(l2[fooled].mean()))
    assert fooled.mean() >= 0.95
    assert l2[fooled].mean() < MAX_MEAN_L2
    np.testing.assert_array_equal(l2[~fooled], 0.0)  # failures come back as x


def test_cw_l2_succeeds_with_small_l2(victim):
    # Fewer steps than the paper's 1000 at lr 0.01: 100 at lr 0.05, c=10 constant.
    x_adv = attacks.cw_l2(victim.model, victim.x, victim.y, c=10.0, steps=100, lr=0.05)
    fooled = victim.fooled(x_adv)
    l2 = attacks.l2_distance(victim.x, x_adv)
    report("cw_l2", success=float(fooled.mean()), mean_l2=float(l2[fooled].mean()))
    assert fooled.mean() >= 0.95
    assert l2[fooled].mean() < MAX_MEAN_L2
    assert float(np.min(x_adv)) >= -1.0 and float(np.max(x_adv)) <= 1.0


def test_cw_l2_confidence_gives_the_margin(victim):
    kappa = 5.0
    x, y = victim.x[:30], victim.y[:30]
    x_adv = attacks.cw_l2(victim.model, x, y, c=10.0, steps=100, lr=0.05,
                          confidence=kappa)
    logits = victim.logits(x_adv)
    true = logits[np.arange(len(y)), y]
    logits[np.arange(len(y)), y] = -np.inf
    margin = logits.max(axis=1) - true
    fooled = victim.fooled(x_adv, y)
    report("cw_l2 kappa=5", success=float(fooled.mean()),
           min_margin=float(margin[fooled].min()))
    assert fooled.mean() >= 0.95
    assert np.all(margin[fooled] >= kappa - 1e-3)


def test_ead_succeeds_with_small_distortion(victim):
    for rule in ("EN", "L1"):
        x_adv = attacks.ead(victim.model, victim.x, victim.y, c=10.0, steps=100,
                            lr=0.1, decision_rule=rule)
        fooled = victim.fooled(x_adv)
        l1 = attacks.l1_distance(victim.x, x_adv)
        l2 = attacks.l2_distance(victim.x, x_adv)
        report(f"ead {rule}", success=float(fooled.mean()),
               mean_l1=float(l1[fooled].mean()), mean_l2=float(l2[fooled].mean()))
        assert fooled.mean() >= 0.95, rule
        assert l2[fooled].mean() < MAX_MEAN_L2, rule
        assert l1[fooled].mean() < victim.max_mean_l1, rule  # 784 pixels, up to 2 each


def test_ead_searched_from_a_small_c_succeeds_where_the_constant_cannot_move(victim):
    # At a small constant c the step lr x c x gradient stays below the
    # shrinkage threshold beta, which puts every pixel back (the CIFAR-10
    # paper-constant finding); a binary search raising c from it must fool.
    x, y = victim.x[:30], victim.y[:30]
    kwargs = dict(c=1e-3, steps=100, lr=0.1, beta=1e-2)
    constant = attacks.ead(victim.model, x, y, **kwargs)
    searched = attacks.ead(victim.model, x, y, binary_search_steps=6, **kwargs)
    moved = attacks.linf_distance(x, constant) > 0
    fooled = victim.fooled(searched, y)
    report("ead c=0.001", constant_moved=float(moved.mean()),
           searched_success=float(fooled.mean()))
    assert not victim.fooled(constant, y).any() and not moved.any()
    assert fooled.mean() >= 0.95


# Every attack in rls_tf.attacks.REGISTRY has its strength test here
# (tests/attacks/test_registry.py checks that none is missing).
# The attacks with modules of their own keep their strength tests there
# (imported as modules, so that pytest does not collect them twice).
from tests.attacks import test_arc as _arc  # noqa: E402
from tests.attacks import test_momentum as _momentum  # noqa: E402
from tests.attacks import test_spsa as _spsa  # noqa: E402
from tests.attacks import test_square as _square  # noqa: E402

STRENGTH_TESTS = {
    "fgsm": test_fgsm_reduces_accuracy_substantially,
    "pgd": test_pgd_drives_accuracy_below_10_percent,
    "apgd": test_apgd_drives_accuracy_below_10_percent,
    "deepfool": test_deepfool_succeeds_with_small_l2,
    "cw": test_cw_l2_succeeds_with_small_l2,
    "ead": test_ead_succeeds_with_small_distortion,
    "mifgsm": _momentum.test_mi_fgsm_drives_accuracy_below_10_percent,
    "square": _square.test_square_drives_accuracy_below_10_percent,
    "spsa": _spsa.test_spsa_drives_accuracy_below_10_percent,
    "arc": _arc.test_arc_breaks_an_undefended_model,
}
