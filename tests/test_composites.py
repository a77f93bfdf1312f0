"""Rule assignment: which layer gets which rule under each zennit composite, the first-layer
logic, name and type overrides, errors, feedback through composites, and merge_batchnorm."""

import numpy as np
import pytest

import lfp_ref as lfp
from lfp_ref import composites
from lfp_ref.composites import (
    Composite,
    EpsilonAlpha2Beta1,
    EpsilonAlpha2Beta1Flat,
    EpsilonGammaBox,
    EpsilonPlus,
    EpsilonPlusFlat,
    merge_batchnorm,
)
from lfp_ref.rules import AlphaBeta, Epsilon, Flat, Gamma, Norm, Pass, WSquare, ZBox, ZPlus
from tests.tolerances import assert_close


def cnn(rng, bias=True):
    """Conv ReLU Conv BN ReLU AvgPool MaxPool Flatten Dense Dropout Dense (names 0..10)."""
    return lfp.Sequential(
        lfp.Conv2d(2, 4, 3, padding=1, bias=bias, rng=rng),  # 0
        lfp.ReLU(),  # 1
        lfp.Conv2d(4, 5, 3, padding=1, bias=bias, rng=rng),  # 2
        lfp.BatchNorm2d(5),  # 3
        lfp.ReLU(),  # 4
        lfp.AvgPool2d(2),  # 5
        lfp.MaxPool2d(2),  # 6
        lfp.Flatten(),  # 7
        lfp.Dense(20, 6, bias=bias, rng=rng),  # 8
        lfp.Dropout(0.3, rng=0),  # 9
        lfp.Dense(6, 3, bias=bias, rng=rng),  # 10
    )


def mlp(rng):
    return lfp.Sequential(
        lfp.Dense(4, 6, rng=rng), lfp.ReLU(), lfp.Dense(6, 5, rng=rng), lfp.ReLU(),
        lfp.Dense(5, 3, rng=rng),
    )  # fmt: skip


def residual_net(rng):
    return lfp.Sequential(
        lfp.Residual(
            lfp.Sequential(lfp.Dense(4, 4, rng=rng), lfp.ReLU(), lfp.Dense(4, 4, rng=rng))
        ),
        lfp.ReLU(),
        lfp.Dense(4, 3, rng=rng),
    )


def kinds(table):
    """``{name: (rule class, key parameter)}`` for readable expectations."""
    out = {}
    for name, rule in table.items():
        if isinstance(rule, AlphaBeta):
            out[name] = ("AlphaBeta", rule.alpha, rule.beta)
        else:
            out[name] = type(rule).__name__
    return out


CNN_BASE = {"3": "Pass", "5": "Norm", "8": "Epsilon", "10": "Epsilon"}
CNN_EXPECTED = {
    "EpsilonPlus": {"0": "ZPlus", "2": "ZPlus", **CNN_BASE},
    "EpsilonAlpha2Beta1": {"0": ("AlphaBeta", 2.0, 1.0), "2": ("AlphaBeta", 2.0, 1.0), **CNN_BASE},
    "EpsilonPlusFlat": {"0": "Flat", "2": "ZPlus", **CNN_BASE},
    "EpsilonAlpha2Beta1Flat": {"0": "Flat", "2": ("AlphaBeta", 2.0, 1.0), **CNN_BASE},
    "EpsilonGammaBox": {"0": "ZBox", "2": "Gamma", **CNN_BASE},
}


def build(name, **kw):
    if name == "EpsilonGammaBox":
        kw = {"low": 0.0, "high": 1.0, **kw}
    return composites.get(name, **kw)


@pytest.mark.parametrize("name", list(CNN_EXPECTED))
def test_zennit_composites_on_a_cnn(rng, name):
    table = build(name).assign(cnn(rng))
    assert list(table) == sorted(table, key=int)  # registration order
    assert kinds(table) == CNN_EXPECTED[name]


@pytest.mark.parametrize(
    "name, first",
    [
        ("EpsilonPlus", "Epsilon"),
        ("EpsilonPlusFlat", "Flat"),
        ("EpsilonAlpha2Beta1Flat", "Flat"),
        ("EpsilonGammaBox", "Epsilon"),  # its special first layer is the first Conv2d
    ],
)
def test_first_layer_on_an_mlp(rng, name, first):
    table = kinds(build(name).assign(mlp(rng)))
    assert table == {"0": first, "2": "Epsilon", "4": "Epsilon"}


def test_first_layer_is_found_inside_containers(rng):
    table = kinds(EpsilonPlusFlat().assign(residual_net(rng)))
    assert table == {
        "0": "Norm",  # the residual sum
        "0.branch.0": "Flat",
        "0.branch.2": "Epsilon",
        "2": "Epsilon",
    }


def test_gamma_box_first_conv_is_the_first_conv_not_the_first_layer(rng):
    model = lfp.Sequential(
        lfp.Residual(lfp.Conv2d(2, 2, 3, padding=1, rng=rng)),
        lfp.ReLU(),
        lfp.Conv2d(2, 3, 3, rng=rng),
        lfp.Flatten(),
        lfp.Dense(12, 2, rng=rng),
    )
    table = kinds(EpsilonGammaBox(-1.0, 1.0).assign(model))
    assert table == {"0": "Norm", "0.branch": "ZBox", "2": "Gamma", "4": "Epsilon"}


def test_composite_parameters_reach_the_rules(rng):
    table = EpsilonGammaBox(-2.0, 3.0, epsilon=0.1, gamma=0.5, stabilizer=0.01).assign(cnn(rng))
    assert table["0"].low == -2.0 and table["0"].high == 3.0 and table["0"].stabilizer == 0.01
    assert table["2"].gamma == 0.5 and table["2"].stabilizer == 0.01
    assert table["8"].eps == 0.1 and table["5"].stabilizer == 0.01


def test_overrides_by_name_type_and_first(rng):
    comp = Composite(
        Epsilon(0.2),
        layer_types={lfp.Conv2d: ZPlus(), lfp.BatchNorm2d: Epsilon()},
        names={"10": WSquare(), "2": Gamma()},
        first=Flat(),
    )
    assert kinds(comp.assign(cnn(rng))) == {
        "0": "Flat",  # first beats type
        "2": "Gamma",  # name beats type
        "3": "Epsilon",  # type beats the base map (BN Pass)
        "5": "Norm",
        "8": "Epsilon",
        "10": "WSquare",
    }


def test_name_beats_first_and_longest_prefix_wins(rng):
    model = residual_net(rng)
    comp = Composite(
        names={"0": ZPlus(), "0.branch.2": Flat(), "0.branch.0": WSquare()}, first=Gamma()
    )
    assert kinds(comp.assign(model)) == {
        "0": "Norm",  # ZPlus does not apply to the residual sum: the base map keeps Norm
        "0.branch.0": "WSquare",
        "0.branch.2": "Flat",
        "2": "Epsilon",
    }
    prefix_only = Composite(names={"0.branch": ZPlus()})
    assert kinds(prefix_only.assign(model))["0.branch.0"] == "ZPlus"
    assert kinds(prefix_only.assign(model))["0.branch.2"] == "ZPlus"


def test_rule_names_are_accepted(rng):
    comp = Composite("zplus", layer_types={lfp.Dense: "flat"}, names={"2": "gamma"})
    assert kinds(comp.assign(cnn(rng)))["0"] == "ZPlus"
    assert kinds(comp.assign(cnn(rng)))["2"] == "Gamma"
    assert kinds(comp.assign(cnn(rng)))["8"] == "Flat"


def test_assignment_errors_name_the_layer(rng):
    model = cnn(rng)
    with pytest.raises(ValueError, match=r"no layer named \['99'\].*'0', '1', '2'"):
        Composite(names={"99": ZPlus()}).assign(model)
    with pytest.raises(ValueError, match="layer '5': ZPlus.*applies to Dense and Conv2d"):
        Composite(names={"5": ZPlus()}).assign(model)
    with pytest.raises(ValueError, match="layer '1' .* consults no rule"):
        Composite(names={"1": Gamma()}).assign(model)
    with pytest.raises(ValueError, match="layer '0': Pass"):
        Composite(layer_types={lfp.Conv2d: Pass()}).assign(model)
    with pytest.raises(TypeError, match="keys are lfp_ref layer classes"):
        Composite(layer_types={"Conv2d": ZPlus()})
    with pytest.raises(ValueError, match="unknown rule 'zzplus'"):
        Composite("zzplus")


def test_get_by_name_and_errors():
    assert isinstance(composites.get("EpsilonPlus"), EpsilonPlus)
    assert isinstance(composites.get("epsilon_alpha2_beta1"), EpsilonAlpha2Beta1)
    assert isinstance(composites.get("epsilon_alpha2_beta1_flat"), EpsilonAlpha2Beta1Flat)
    assert composites.get("EpsilonPlus", epsilon=0.5).default.eps == 0.5
    comp = EpsilonPlusFlat()
    assert composites.get(comp) is comp
    with pytest.raises(ValueError, match="known composites: EpsilonPlus, EpsilonAlpha2Beta1"):
        composites.get("EpsilonMinus")
    with pytest.raises(ValueError, match="needs the input bounds"):
        composites.get("EpsilonGammaBox")
    with pytest.raises(TypeError, match="EpsilonPlus: .*unexpected keyword"):
        composites.get("EpsilonPlus", gamma=0.3)


def test_feedback_with_a_composite_is_the_walk_with_its_assignment(rng):
    model = cnn(rng)
    x = rng.uniform(0, 1, (4, 2, 8, 8))
    y = np.array([0, 1, 2, 0])
    comp = EpsilonGammaBox(0.0, 1.0)
    fb = lfp.feedback(model, x, y, composite=comp)
    table = comp.assign(model)
    by_id = {id(layer): table[name] for name, layer in model.named_layers() if name in table}
    expected_in, expected = model.feedback(fb.reward, lambda layer: by_id[id(layer)])
    np.testing.assert_array_equal(fb.input_reward, expected_in)
    for name, value in expected.items():
        np.testing.assert_array_equal(fb.params[name], value)
    # BatchNorm under Pass: its parameters get zero feedback
    assert np.all(fb.params["3.weight"] == 0) and np.all(fb.params["3.bias"] == 0)


def test_feedback_takes_a_composite_name_and_refuses_both(rng):
    model = mlp(rng)
    x, y = rng.standard_normal((3, 4)), np.array([0, 1, 2])
    by_name = lfp.feedback(model, x, y, composite="EpsilonPlusFlat")
    by_object = lfp.feedback(model, x, y, composite=EpsilonPlusFlat())
    for name in by_name.params:
        np.testing.assert_array_equal(by_name.params[name], by_object.params[name])
    with pytest.raises(ValueError, match="rule= or composite=, not both"):
        lfp.feedback(model, x, y, rule="zplus", composite="EpsilonPlus")


def test_a_resolved_composite_refuses_foreign_layers(rng):
    rule_for = EpsilonPlus().resolve(mlp(rng))
    with pytest.raises(ValueError, match="not a layer of the model"):
        rule_for(lfp.Dense(2, 2, rng=0))


def test_norm_and_epsilon_are_the_same_rule_bitwise(rng):
    layer = lfp.AvgPool2d(2)
    x = rng.standard_normal((2, 3, 4, 4))
    reward = rng.standard_normal(layer.forward(x).shape)
    a, _ = Norm(1e-3).propagate(layer, reward)
    b, _ = Epsilon(1e-3).propagate(layer, reward)
    np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------ merge_batchnorm


def bn_model(rng, bias=True, kind="conv"):
    if kind == "conv":
        model = lfp.Sequential(
            lfp.Conv2d(2, 3, 3, padding=1, bias=bias, rng=rng),
            lfp.BatchNorm2d(3, eps=0.01),
            lfp.ReLU(),
            lfp.Flatten(),
            lfp.Dense(48, 4, rng=rng),
            lfp.BatchNorm1d(4, eps=0.02),
        )
        x = rng.standard_normal((5, 2, 4, 4))
    else:
        model = lfp.Sequential(lfp.Dense(3, 4, bias=bias, rng=rng), lfp.BatchNorm1d(4, eps=0.1))
        x = rng.standard_normal((5, 3))
    for _, layer in model.named_layers():
        if isinstance(layer, (lfp.BatchNorm1d, lfp.BatchNorm2d)):
            n = layer.num_features
            layer.weight[...] = rng.uniform(0.5, 2.0, n)
            layer.bias[...] = rng.uniform(-1, 1, n)
            layer.running_mean[...] = rng.uniform(-1, 1, n)
            layer.running_var[...] = rng.uniform(0.5, 2.0, n)
    return model.eval(), x


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_merge_batchnorm_keeps_the_eval_forward(rng, bias):
    model, x = bn_model(rng, bias)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    merged = merge_batchnorm(model)
    assert_close(merged(x), model(x))
    assert isinstance(merged[1], lfp.Identity) and isinstance(merged[5], lfp.Identity)
    assert merged[0].bias is not None  # a merged layer always has a bias
    assert set(merged.parameters()) == {"0.weight", "0.bias", "4.weight", "4.bias"}
    for name, value in model.state_dict().items():  # the input model is untouched
        np.testing.assert_array_equal(value, before[name])


def test_merge_batchnorm_with_bn_eps_divides_by_sqrt_one_plus_eps(rng):
    # zennit's canonizer leaves BN(mean 0, var 1, gamma 1, beta 0, eps): x / sqrt(1 + eps)
    model, x = bn_model(rng, kind="dense")
    exact = merge_batchnorm(model)
    quirk = merge_batchnorm(model, keep_bn_eps=True)
    assert isinstance(quirk[1], lfp.BatchNorm1d) and not quirk[1].training
    assert quirk[1].eps == 0.1
    assert_close(quirk(x), exact(x) / np.sqrt(1.1))
    # and the composites pass relevance through it unchanged
    assert isinstance(EpsilonPlus().assign(quirk)["1"], Pass)


def test_merge_batchnorm_needs_running_statistics(rng):
    model = lfp.Sequential(lfp.Dense(3, 2, rng=rng), lfp.BatchNorm1d(2, track_running_stats=False))
    with pytest.raises(ValueError, match="no running statistics"):
        merge_batchnorm(model)


def test_merge_batchnorm_leaves_unpreceded_batchnorm(rng):
    model = lfp.Sequential(lfp.Dense(3, 2, rng=rng), lfp.ReLU(), lfp.BatchNorm1d(2)).eval()
    merged = merge_batchnorm(model)
    assert isinstance(merged[2], lfp.BatchNorm1d)
    x = rng.standard_normal((4, 3))
    np.testing.assert_array_equal(merged(x), model(x))


def test_zbox_composite_bounds_per_channel(rng):
    model = cnn(rng).eval()
    low, high = -np.ones((1, 2, 1, 1)), np.full((1, 2, 1, 1), 2.0)
    x = rng.uniform(-1, 2, (3, 2, 8, 8))
    fb = lfp.feedback(model, x, np.array([0, 1, 2]), composite=EpsilonGammaBox(low, high))
    assert np.isfinite(fb.input_reward).all()
    assert isinstance(EpsilonGammaBox(low, high).assign(model)["0"], ZBox)


def test_a_composite_passed_as_rule_is_refused(rng):
    with pytest.raises(TypeError, match="pass it as composite="):
        lfp.feedback(mlp(rng), np.ones((2, 4)), np.array([0, 1]), rule=EpsilonPlus())


def test_merge_batchnorm_after_a_forward_pass(rng):
    # the caches of the last forward are left behind, and the input model keeps its own
    model, x = bn_model(rng)
    expected = model(x)
    merged = merge_batchnorm(model)
    assert all(layer.uses == 0 for _, layer in merged.named_layers())
    assert model[0].uses == 1
    assert_close(merged(x), expected)
