"""The paper presets (Lee et al., Tables 1-2) and their checks."""

import pytest

from rls_tf.evaluation import presets


def test_paper_values():
    mnist = presets.get_preset("paper_mnist")
    assert (mnist.fgsm_eps, mnist.pgd_eps, mnist.cw_c, mnist.ead_c) == (
        (0.1, 0.2), (0.05, 0.1), (0.1, 1.0), (0.1, 1.0))
    cifar = presets.get_preset("paper_cifar10")
    assert (cifar.fgsm_eps, cifar.pgd_eps, cifar.cw_c) == ((0.01, 0.02), (0.01, 0.02), (0.01, 0.1))
    svhn = presets.get_preset("paper_svhn")
    assert (svhn.fgsm_eps, svhn.pgd_eps, svhn.ead_c) == ((0.05, 0.1), (0.01, 0.02), (0.01, 0.1))
    for preset in presets.PRESETS.values():
        assert preset.pgd_steps == 10 and preset.pgd_step_ratio == 0.1
        assert preset.cw_steps == 1000 and preset.cw_lr == 0.01
        assert preset.cw_binary_search_steps == 1
        assert preset.deepfool_overshoot == 0.02 and preset.deepfool_max_iter == 50
        assert preset.eot_samples == 20 and preset.eot_pgd_steps == 100
        assert preset.eps_units == "model"
    assert presets.default_preset_name("svhn") == "paper_svhn"
    assert presets.default_preset_name("fashion_mnist") is None


def test_eps_units_and_replace():
    mnist = presets.get_preset("paper_mnist")
    assert mnist.model_eps(0.1) == pytest.approx(0.1)
    assert mnist.replace(eps_units="unit").model_eps(0.1) == pytest.approx(0.2)
    changed = mnist.replace(pgd_eps=[0.3], cw_steps=None)
    assert changed.pgd_eps == (0.3,) and changed.cw_steps == 1000
    assert changed.to_json()["pgd_eps"] == [0.3]


def test_bad_presets():
    with pytest.raises(ValueError, match="Unknown preset"):
        presets.get_preset("paper_imagenet")
    mnist = presets.get_preset("paper_mnist")
    with pytest.raises(ValueError, match="eps_units"):
        mnist.replace(eps_units="pixels")
    with pytest.raises(ValueError, match="pgd_eps"):
        mnist.replace(pgd_eps=[-0.1])
    with pytest.raises(ValueError, match="cw_steps"):
        mnist.replace(cw_steps=0)
    with pytest.raises(ValueError, match="eot_kappa"):
        mnist.replace(eot_kappa=0.0)
    # 0 means every image; a negative count or a fraction is refused by name.
    assert mnist.replace(min_norm_opt_num_examples=0).min_norm_opt_num_examples == 0
    for bad in (-1, 0.5):
        with pytest.raises(ValueError, match=r"`min_norm_opt_num_examples` must be an int "
                                             r">= 0\. Received: min_norm_opt_num_examples="):
            mnist.replace(min_norm_opt_num_examples=bad)
