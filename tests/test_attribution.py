"""LRP attribution: shape, the start of the propagation, linearity in the output relevance,
conservation, agreement with the LFP pass it reuses, model mode, and errors."""

import numpy as np
import pytest

import lfp_ref as lfp
from lfp_ref.attribution import attribute, output_relevance
from lfp_ref.composites import Composite, EpsilonGammaBox, EpsilonPlus
from lfp_ref.rules import Epsilon, ZPlus
from tests.tolerances import assert_close

COMPOSITES = ["EpsilonPlus", "EpsilonAlpha2Beta1", "EpsilonPlusFlat", "EpsilonAlpha2Beta1Flat"]


def cnn(rng, bias=True):
    return lfp.Sequential(
        lfp.Conv2d(1, 3, 3, padding=1, bias=bias, rng=rng),
        lfp.ReLU(),
        lfp.AvgPool2d(2),
        lfp.Conv2d(3, 4, 3, bias=bias, rng=rng),
        lfp.ReLU(),
        lfp.Flatten(),
        lfp.Dense(16, 5, bias=bias, rng=rng),
        lfp.ReLU(),
        lfp.Dense(5, 3, bias=bias, rng=rng),
    )


@pytest.fixture
def case(rng):
    return cnn(rng), rng.uniform(0, 1, (4, 1, 8, 8)), np.array([0, 2, 1, 2])


@pytest.mark.parametrize("composite", COMPOSITES)
def test_relevance_has_the_input_shape_and_dtype(case, composite):
    model, x, y = case
    for dtype in (np.float64, np.float32):
        model.to(dtype)
        relevance = attribute(model, x.astype(dtype), y, composite=composite)
        assert relevance.shape == x.shape and relevance.dtype == dtype
        assert np.isfinite(relevance).all() and np.any(relevance != 0)


def test_attribute_is_the_lfp_pass_started_from_the_logit(case):
    # the same walk as feedback, with reward = one_hot(y) * logit
    model, x, y = case
    logits = model(x)
    start = np.zeros_like(logits)
    start[np.arange(4), y] = logits[np.arange(4), y]
    fb = lfp.feedback(model, x, reward=start, composite="EpsilonAlpha2Beta1")
    relevance = attribute(model, x, y, composite="EpsilonAlpha2Beta1")
    np.testing.assert_array_equal(relevance, fb.input_reward)


@pytest.mark.parametrize("composite", COMPOSITES)
def test_logit_start_is_the_one_hot_start_times_the_logit(case, composite):
    # every rule is linear in the relevance for a fixed forward pass (gamma's masks depend on z)
    model, x, y = case
    one_hot = attribute(model, x, y, composite=composite, start="one_hot")
    logit = attribute(model, x, y, composite=composite, start="logit")
    z_y = model(x)[np.arange(4), y]
    assert_close(logit, one_hot * z_y[:, None, None, None])


def test_linear_in_an_explicit_relevance(case):
    model, x, _ = case
    rng = np.random.default_rng(7)
    r1, r2 = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    comp = EpsilonGammaBox(0.0, 1.0)
    a1 = attribute(model, x, r1, composite=comp)
    a2 = attribute(model, x, r2, composite=comp)
    assert_close(attribute(model, x, 3 * r1 + r2, composite=comp), 3 * a1 + a2)


def test_one_hot_relevance_with_integer_targets(case):
    model, x, y = case
    logits = model(x)
    np.testing.assert_array_equal(output_relevance(logits, y, "one_hot"), np.eye(3)[y])
    expected = np.eye(3)[y] * logits
    np.testing.assert_array_equal(output_relevance(logits, y, "logit"), expected)
    # one int explains that class in every sample
    np.testing.assert_array_equal(output_relevance(logits, 1, "one_hot"), np.eye(3)[[1] * 4])


@pytest.mark.parametrize(
    "how",
    [
        {"rule": Epsilon(1e-12)},
        {
            "composite": Composite(
                Epsilon(1e-12), layer_types={lfp.Conv2d: ZPlus(1e-12)}, stabilizer=1e-12
            )
        },
        {"composite": EpsilonPlus(epsilon=1e-12, stabilizer=1e-12)},
    ],
    ids=["epsilon", "conv-zplus", "EpsilonPlus"],
)
def test_conservation_without_bias(rng, how):
    # bias-free ReLU net, stabilisers -> 0 (AvgPool's Norm too): the input relevance sums to the
    # explained logit
    model = cnn(rng, bias=False)
    x = rng.uniform(0.1, 1, (3, 1, 8, 8))
    y = np.array([1, 0, 2])
    relevance = attribute(model, x, y, **how)
    z_y = model(x)[np.arange(3), y]
    # 1e-12 / |z| per layer is the only deviation; RTOL64 covers it for |z| >~ 1e-2
    assert_close(relevance.sum(axis=(1, 2, 3)), z_y)


def test_default_is_epsilon_everywhere(case):
    model, x, y = case
    np.testing.assert_array_equal(attribute(model, x, y), attribute(model, x, y, rule="epsilon"))


def test_composite_by_name_with_keywords(case):
    model, x, y = case
    by_name = attribute(model, x, y, composite="EpsilonGammaBox", low=0.0, high=1.0, gamma=0.5)
    by_object = attribute(model, x, y, composite=EpsilonGammaBox(0.0, 1.0, gamma=0.5))
    np.testing.assert_array_equal(by_name, by_object)
    assert not np.allclose(by_name, attribute(model, x, y, composite=EpsilonGammaBox(0.0, 1.0)))


def test_runs_the_model_in_its_current_mode(rng):
    model = lfp.Sequential(
        lfp.Dense(4, 5, rng=rng), lfp.BatchNorm1d(5), lfp.ReLU(), lfp.Dense(5, 2, rng=rng)
    )
    x = rng.standard_normal((6, 4))
    train_mode = attribute(model, x, 0, composite=EpsilonPlus())
    assert model.training and model[1].training
    model.eval()
    eval_mode = attribute(model, x, 0, composite=EpsilonPlus())
    assert not model.training
    assert not np.allclose(train_mode, eval_mode)


def test_errors_say_what_to_pass(case):
    model, x, y = case
    with pytest.raises(ValueError, match="start must be one of"):
        attribute(model, x, y, start="softmax")
    with pytest.raises(
        ValueError, match=r"relevance array must have the model output's shape \(4, 3\)"
    ):
        attribute(model, x, np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\]"):
        attribute(model, x, np.array([0, 1, 3, 0]))
    with pytest.raises(ValueError, match="target must have shape"):
        attribute(model, x, np.array([0, 1]))
    with pytest.raises(ValueError, match="for a composite given by name"):
        attribute(model, x, y, composite=EpsilonPlus(), low=0.0)
    with pytest.raises(ValueError, match="rule= or composite=, not both"):
        attribute(model, x, y, composite="EpsilonPlus", rule="zplus")
