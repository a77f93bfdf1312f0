"""A layer used more than once in a pass (shared weights): one cache per use, the feedback and
gradient of a shared parameter summed over its uses and listed once, under its first name."""

import copy

import numpy as np
import pytest

import lfp_ref as lfp
from lfp_ref.rules import Epsilon

RTOL = 1e-12  # float64, sums of the same terms in another order


def assert_close(actual, expected, rtol=RTOL):
    scale = max(float(np.abs(expected).max()), 1e-300)
    assert float(np.abs(actual - expected).max()) <= rtol * scale


def shared_model(rng):
    """Conv2d used twice (3 -> 3 channels), Dense used twice (12 -> 12)."""
    conv = lfp.Conv2d(3, 3, 3, padding=1, rng=rng)
    dense = lfp.Dense(12, 12, rng=rng)
    model = lfp.Sequential(
        lfp.Conv2d(2, 3, 3, padding=1, rng=rng),
        lfp.ReLU(),
        conv,
        lfp.ReLU(),
        conv,
        lfp.ReLU(),
        lfp.AvgPool2d(2),
        lfp.Flatten(),
        dense,
        lfp.ReLU(),
        dense,
        lfp.ReLU(),
        lfp.Dense(12, 4, rng=rng),
    )
    return model, conv, dense


def unshared_twin(model):
    """The same network with each use of a shared layer a separate copy (same weights)."""
    twin = copy.deepcopy(model)
    seen = set()
    for i, layer in enumerate(twin.layers):
        if id(layer) in seen:
            twin.layers[i] = copy.deepcopy(layer)
        seen.add(id(layer))
    return twin


# shared uses -> (first name, other name): the conv at "2" and "4", the dense at "8" and "10"
USES = {"2": "4", "8": "10"}


@pytest.fixture
def case(rng):
    model, conv, dense = shared_model(rng)
    x = rng.normal(size=(5, 2, 4, 4))
    y = rng.integers(0, 4, size=5)
    return model, conv, dense, x, y


def test_shared_parameters_are_listed_once_under_their_first_name(case):
    model, conv, dense, *_ = case
    names = [name for name, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias", "8.weight", "8.bias"] + [
        "12.weight",
        "12.bias",
    ]
    assert model.parameters()["2.weight"] is conv.weight
    assert model.parameter_aliases() == {
        "4.weight": "2.weight",
        "4.bias": "2.bias",
        "10.weight": "8.weight",
        "10.bias": "8.bias",
    }
    assert sorted(model.state_dict()) == sorted(names)


def test_each_use_keeps_its_own_cache(case):
    model, conv, dense, x, _ = case
    model(x)
    assert conv.uses == 2 and dense.uses == 2 and model.layers[0].uses == 1
    model(x)  # a new pass drops the old uses
    assert conv.uses == 2


@pytest.mark.parametrize("method", ["gradients", "feedback"])
def test_shared_values_are_the_sums_over_the_uses(case, method):
    # the shared model against its unshared twin: every shared parameter's value is the sum of
    # the values of the two copies, the other parameters are equal
    model, _, _, x, y = case
    twin = unshared_twin(model)
    if method == "gradients":
        ours = lfp.gradients(model, x, y, reduction="sum").params
        theirs = lfp.gradients(twin, x, y, reduction="sum").params
    else:
        ours = lfp.feedback(model, x, y).params
        theirs = lfp.feedback(twin, x, y).params
    assert list(ours) == [name for name, _ in model.named_parameters()]
    for name, value in ours.items():
        layer, param = name.split(".")
        expected = theirs[name]
        if layer in USES:
            expected = expected + theirs[f"{USES[layer]}.{param}"]
        assert_close(value, expected)


def test_implicit_weight_scaling_holds_for_shared_weights(case):
    # spec section 5: for a ReLU net under softmax_loss with eps -> 0, F = -|theta| dL/dtheta
    # with L the summed cross-entropy, for every parameter, shared ones included
    model, _, _, x, y = case
    fb = lfp.feedback(model, x, y, eps=1e-300)
    g = lfp.gradients(model, x, y, reduction="sum")
    params = model.parameters()
    for name, value in fb.params.items():
        assert_close(value, -np.abs(params[name]) * g.params[name], rtol=1e-10)


def test_two_reverse_passes_after_one_forward_read_the_same_uses(case):
    model, _, _, x, y = case
    logits = model(x)
    r = lfp.rewards.softmax_loss(logits, y)
    first = model.feedback(r, lambda layer: Epsilon())
    second = model.feedback(r, lambda layer: Epsilon())
    np.testing.assert_array_equal(first[0], second[0])
    for name in first[1]:
        np.testing.assert_array_equal(first[1][name], second[1][name])


def test_trace_has_one_record_per_use_and_sums_like_the_engine(case):
    model, _, _, x, y = case
    t = lfp.trace(model, x, y)
    names = [rec.name for rec in t.records]
    assert names.count("2") == names.count("4") == 1 and t["4"].layer is t["2"].layer
    fb = lfp.feedback(model, x, y)
    assert list(t.feedback) == list(fb.params)
    for name, value in fb.params.items():
        np.testing.assert_array_equal(t.feedback[name], value)


def test_a_training_step_updates_a_shared_weight_once(case):
    model, conv, _, x, y = case
    twin = unshared_twin(model)
    before = conv.weight.copy()
    fb = lfp.lfp_step(model, lfp.optim.SGD(model, lr=0.1), x, y)
    np.testing.assert_array_equal(conv.weight, before + 0.1 * fb.params["2.weight"])
    assert twin.layers[2].weight is not twin.layers[4].weight


@pytest.mark.crosscheck
def test_shared_gradients_match_torch_autograd(case):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    model, conv, dense, x, y = case

    def linear(layer):
        module = nn.Linear(layer.in_features, layer.out_features).double()
        module.weight.data = torch.from_numpy(layer.weight.copy())
        module.bias.data = torch.from_numpy(layer.bias.copy())
        return module

    def conv2d(layer):
        module = nn.Conv2d(layer.in_channels, layer.out_channels, 3, padding=1).double()
        module.weight.data = torch.from_numpy(layer.weight.copy())
        module.bias.data = torch.from_numpy(layer.bias.copy())
        return module

    t_conv, t_dense = conv2d(conv), linear(dense)
    net = nn.Sequential(
        conv2d(model.layers[0]), nn.ReLU(), t_conv, nn.ReLU(), t_conv, nn.ReLU(),
        nn.AvgPool2d(2), nn.Flatten(), t_dense, nn.ReLU(), t_dense, nn.ReLU(),
        linear(model.layers[12]),
    )  # fmt: skip
    loss = nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y))
    loss.backward()
    expected = {name: p.grad.numpy() for name, p in net.named_parameters()}
    ours = lfp.gradients(model, x, y).params
    assert list(ours) == list(expected)  # torch lists a shared parameter once, first name
    for name, value in ours.items():
        assert_close(value, expected[name])
