"""lfp_ref.pruning: the Gini coefficient against a float64 oracle written differently (the mean
absolute difference) and at its known extremes; magnitude pruning zeroes exactly
``floor(rate * n + 1/2)`` of the smallest ``|w|`` (ties to the earlier position), globally or
per layer, leaves biases and the caller's model alone, and refuses what it cannot do."""

from __future__ import annotations

import numpy as np
import pytest

import lfp_ref as lfp
from lfp_ref import pruning, zoo

RTOL = 1e-12  # two float64 formulas of the same sum


def gini_oracle(values):
    """``sum_ij |a_i - a_j| / (2 n^2 mean(a))``: the mean absolute difference, literally."""
    a = [abs(float(v)) for v in np.ravel(values)]
    n = len(a)
    mean = sum(a) / n
    return sum(abs(x - y) for x in a for y in a) / (2 * n * n * mean)


@pytest.mark.parametrize("n", [1, 2, 7, 64, 301])
@pytest.mark.parametrize("seed", [0, 1])
def test_gini_matches_the_mean_absolute_difference(n, seed):
    rng = np.random.default_rng(seed)
    for values in (rng.normal(size=n), rng.exponential(size=n) ** 3, rng.integers(-3, 4, n)):
        if np.any(values):
            assert pruning.gini(values) == pytest.approx(gini_oracle(values), rel=RTOL, abs=1e-15)


def test_gini_extremes():
    assert pruning.gini(np.full(50, -2.5)) == 0.0  # equal magnitudes, signs dropped
    assert pruning.gini([3.0, -3.0]) == 0.0
    one = np.zeros(1000)
    one[17] = -4.0
    assert pruning.gini(one) == pytest.approx(999 / 1000, rel=RTOL)  # (n - 1) / n -> 1
    assert pruning.gini(np.zeros(5)) == 0.0
    assert pruning.gini([0.0, 1.0]) == pytest.approx(0.5, rel=RTOL)
    # a sparser vector has a higher coefficient
    rng = np.random.default_rng(3)
    dense = rng.normal(size=400)
    sparse = dense * (rng.random(400) < 0.1)
    assert pruning.gini(sparse) > pruning.gini(dense) + 0.3


def test_gini_errors():
    with pytest.raises(ValueError, match="empty"):
        pruning.gini([])
    with pytest.raises(ValueError, match="finite"):
        pruning.gini([1.0, np.nan])


def dense_net(seed=0, dtype=np.float64):
    return zoo.build("mlp", num_classes=3, input_shape=(6,), widths=(5, 4), seed=seed, dtype=dtype)


def cnn(seed=0):
    return zoo.build("lenet-tiny", num_classes=3, input_shape=(1, 12, 12), seed=seed)


def test_prunable_weights_are_the_dense_and_conv_weights():
    model = cnn()
    names = list(pruning.prunable_weights(model))
    expected = [
        name
        for name, p in model.named_parameters()
        if name.endswith("weight") and p.ndim >= 2  # Conv2d (4-D) and Dense (2-D)
    ]
    assert names == expected and len(names) == 4


@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.33, 0.5, 0.9, 0.99])
def test_prune_removes_exactly_the_smallest(rate, scope):
    model = cnn(seed=2)
    before = {n: np.array(w, dtype=np.float64) for n, w in pruning.prunable_weights(model).items()}
    pruned = pruning.magnitude_prune(model, rate, scope=scope)
    after = pruning.prunable_weights(pruned)
    groups = [list(before)] if scope == "global" else [[n] for n in before]
    for group in groups:
        a = np.concatenate([np.abs(before[n]).ravel() for n in group])
        b = np.concatenate([after[n].ravel() for n in group])
        k = int(np.floor(rate * a.size + 0.5))
        zeroed = b == 0
        assert zeroed.sum() == k  # no initial weight is exactly 0
        if 0 < k < a.size:
            assert a[zeroed].max() <= a[~zeroed].min()  # the k smallest |w| went
        kept = ~zeroed
        np.testing.assert_array_equal(
            b[kept], np.concatenate([before[n].ravel() for n in group])[kept].astype(b.dtype)
        )
    # biases are never pruned
    for name, value in model.named_parameters():
        if name.endswith("bias"):
            np.testing.assert_array_equal(pruned.parameters()[name], value)


def test_input_model_untouched_unless_inplace():
    model = dense_net()
    state = model.state_dict()
    pruned = pruning.magnitude_prune(model, 0.7)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, state[name])
    assert pruned is not model
    assert pruning.zero_fraction(pruned) == pytest.approx(0.7, abs=0.01)
    assert pruning.zero_fraction(model) == 0.0
    same = pruning.magnitude_prune(model, 0.7, inplace=True)
    assert same is model
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, pruned.state_dict()[name])


def test_ties_are_broken_by_position():
    model = dense_net()
    weights = pruning.prunable_weights(model)
    for w in weights.values():
        w[...] = 1.0  # every |w| equal
    n0 = weights["0.weight"].size
    total = sum(w.size for w in weights.values())
    k = int(np.floor(0.25 * total + 0.5))
    pruned = pruning.prunable_weights(pruning.magnitude_prune(model, 0.25))
    flat = np.concatenate([w.ravel() for w in pruned.values()])
    # the first k positions (layers in named_parameters order, entries in C order) are zeroed
    np.testing.assert_array_equal(flat == 0, np.arange(total) < k)
    assert k < n0  # all of them in the first layer
    again = pruning.prunable_weights(pruning.magnitude_prune(model, 0.25))
    for name in pruned:
        np.testing.assert_array_equal(pruned[name], again[name])


def test_global_and_layer_scopes_differ_where_they_should():
    model = dense_net(seed=4)
    weights = pruning.prunable_weights(model)
    weights["4.weight"] *= 1e-9  # one layer of tiny weights: global pruning takes it first
    rate = 0.2
    n_small = weights["4.weight"].size
    total = sum(w.size for w in weights.values())
    k = int(np.floor(rate * total + 0.5))
    assert k >= n_small
    glob = pruning.pruning_masks(model, rate, "global")
    layer = pruning.pruning_masks(model, rate, "layer")
    assert not glob["4.weight"].any()  # the whole tiny layer is gone
    for name, w in weights.items():
        assert (~layer[name]).sum() == int(np.floor(rate * w.size + 0.5))  # the same share each
    assert sum((~m).sum() for m in glob.values()) == k
    assert layer["4.weight"].sum() == n_small - int(np.floor(rate * n_small + 0.5))  # kept
    # with equal scales the two agree on the count but not necessarily on the entries; a model
    # with one weight tensor has the same masks under both scopes
    single = lfp.Sequential(lfp.Dense(10, 3, rng=0, dtype=np.float64))
    for rate in (0.1, 0.5, 0.9):
        np.testing.assert_array_equal(
            pruning.pruning_masks(single, rate, "global")["0.weight"],
            pruning.pruning_masks(single, rate, "layer")["0.weight"],
        )


def test_pruning_keeps_dtype_mode_and_prunes_batchnorm_models():
    model = zoo.build("vgg-tiny", num_classes=3, input_shape=(1, 8, 8), seed=1).eval()
    pruned = pruning.magnitude_prune(model, 0.5, scope="layer")
    assert pruned.dtype == model.dtype and not pruned.training
    for name, value in model.state_dict().items():  # BatchNorm parameters and statistics kept
        if name not in pruning.prunable_weights(model):
            np.testing.assert_array_equal(pruned.state_dict()[name], value)
    x = np.random.default_rng(0).normal(size=(2, 1, 8, 8)).astype(model.dtype)
    assert pruned(x).shape == (2, 3)


def test_weight_quantiles():
    model = dense_net(seed=5)
    qs = (0.0, 0.5, 1.0)
    quantiles = pruning.weight_quantiles(model, qs)
    assert list(quantiles) == [*pruning.prunable_weights(model), "all"]
    for name, w in pruning.prunable_weights(model).items():
        a = np.sort(np.abs(w).ravel())
        np.testing.assert_allclose(quantiles[name][[0, 2]], [a[0], a[-1]], rtol=0)
        assert quantiles[name][1] == pytest.approx(np.median(a))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pruning.weight_quantiles(model, (0.5, 1.5))
    gini = pruning.layer_gini(model)
    assert set(gini) == set(pruning.prunable_weights(model))
    assert all(0 <= g < 1 for g in gini.values())
    assert 0 <= pruning.model_gini(model) < 1


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, float("nan"), True, "0.5", None])
def test_rate_errors(rate):
    with pytest.raises(ValueError, match="0 <= rate < 1"):
        pruning.magnitude_prune(dense_net(), rate)


def test_scope_and_model_errors():
    with pytest.raises(ValueError, match="scope must be 'global'"):
        pruning.magnitude_prune(dense_net(), 0.5, scope="per-layer")
    no_weights = lfp.Sequential(lfp.ReLU(), lfp.Flatten())
    with pytest.raises(ValueError, match="no prunable weights"):
        pruning.magnitude_prune(no_weights, 0.5)
    with pytest.raises(ValueError, match="no prunable weight"):
        pruning.apply_masks(dense_net(), {"9.weight": np.ones((2, 2), bool)})
    with pytest.raises(ValueError, match="shape"):
        pruning.apply_masks(dense_net(), {"0.weight": np.ones((2, 2), bool)})
