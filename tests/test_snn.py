"""Spiking networks (lfp_ref.snn): LIF layers in a SpikingSequential against the literal
unrolled-in-time oracle of tests/oracle/snn_net.py (forward bit for bit, LFP feedback and
surrogate BPTT to float64 rounding), finite differences of a smoothed spike, the reset between
batches, the entry points (feedback, lfp_step, trace, gradients), the rate-coded reward and the
ce_rate loss, the zoo's two spiking models, and the errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import lfp_ref as lfp
from lfp_ref import losses, rewards, zoo
from lfp_ref.snn import LIF, SpikingSequential
from tests.oracle import snn_net as oracle
from tests.oracle.dense import finite_difference
from tests.tolerances import assert_close

# Tolerances. lfp_ref vs the float64 oracle: the same membrane arithmetic (bit for bit), the
# currents' VJPs as GEMMs vs connection sums, the sums over t in another order.
RTOL_NET = 1e-12
# float32 networks vs the float64 oracle run on the float32 membranes (bit-exact, see below): the
# float32 roundings of the recursion and the GEMMs (observed <= 4.3e-7 of the scale)
RTOL32_NET = 2e-6
# The rate-coded reward and the loss: expit vs 1 / (1 + exp(-v)), log_softmax vs log-sum-exp.
RTOL_REWARD = 1e-14
# Finite differences of the smoothed spike (as tests/test_lif_kernels.py): central differences.
RTOL_FD = 1e-7
FD_STEP = 1e-6

# Weights, biases and inputs on dyadic grids (scaled by powers of two): every current is then
# exact in float64 and float32 whatever the order of its sums, so the forward can be compared
# bit for bit with an oracle that sums in another order. (beta is not dyadic: the membrane
# recursion rounds, in the same operations and order in the kernels and the oracle.)
WEIGHT_BITS, INPUT_BITS = 6, 4
# The firing rate (spiking (t, sample, neuron) entries) each LIF layer is scaled to, and the band
# every test asserts
TARGET_RATE, RATE_BAND = 0.35, (0.2, 0.6)
# the scales tried (a weight grid of at most 2**-11: a first-layer current of float32 products
# of 2**-15 stays exact below 2**9)
SCALES = sorted(m * 2.0**power for m in (1.0, 1.5) for power in range(-5, 6))

# (beta, threshold): the spec's default, and a faster leak with a lower threshold (exact in
# float32, as snntorch's float32 reset term needs)
NEURONS = [(0.9, 1.0), (0.75, 0.5)]
NEURON_IDS = ["beta0.9-thr1", "beta0.75-thr0.5"]

# The small networks: one sample's input shape, T, B, and the layers:
# ("dense", out) / ("conv", out, kernel, stride, padding) wrapped in a LIF; ("maxpool", k);
# ("flatten",); ("dropout", p)
NETS = {
    "dense": dict(input=(12,), steps=7, batch=4, layers=[("dense", 16), ("dense", 5)]),
    "dense-dropout": dict(
        input=(10,), steps=6, batch=4, layers=[("dense", 14), ("dropout", 0.5), ("dense", 6)]
    ),
    "conv-maxpool": dict(
        input=(2, 10, 10),
        steps=8,
        batch=3,
        layers=[
            ("conv", 4, 3, 1, 0),
            ("maxpool", 2),
            ("conv", 6, 3, 1, 1),
            ("maxpool", 2),
            ("flatten",),
            ("dense", 5),
        ],
    ),
    "conv-strided": dict(
        input=(1, 9, 9),
        steps=6,
        batch=2,
        layers=[("conv", 3, 3, 2, 1), ("flatten",), ("dense", 4)],
    ),
}


def _dyadic(values, bits):
    return np.round(np.asarray(values) * 2.0**bits) / 2.0**bits


def _layers(spec, rng, beta, threshold, reset):
    shape, layers = spec["input"], []
    for item in spec["layers"]:
        if item[0] == "dense":
            n_in = int(np.prod(shape))
            current = lfp.Dense(n_in, item[1])
            shape = (item[1],)
        elif item[0] == "conv":
            _, out, kernel, stride, padding = item
            current = lfp.Conv2d(shape[0], out, kernel, stride, padding)
            shape = (out, *current.output_size(*shape[1:]))
        if item[0] in ("dense", "conv"):
            current.weight[...] = _dyadic(rng.uniform(-1, 1, current.weight.shape), WEIGHT_BITS)
            current.bias[...] = _dyadic(rng.uniform(-0.25, 0.75, current.bias.shape), WEIGHT_BITS)
            layers.append(LIF(current, beta, threshold, reset))
        elif item[0] == "maxpool":
            layers.append(lfp.MaxPool2d(item[1]))
            shape = (shape[0], shape[1] // item[1], shape[2] // item[1])
        elif item[0] == "flatten":
            layers.append(lfp.Flatten())
            shape = (int(np.prod(shape)),)
        elif item[0] == "dropout":
            layers.append(lfp.Dropout(item[1], rng=rng.spawn(1)[0]))
    return layers


def _rates(net, x):
    """Every LIF layer's firing rate (averaged over a few passes when Dropout draws masks)."""
    passes = 4 if any(isinstance(layer, lfp.Dropout) for layer in net) else 1
    rates = np.zeros(len(net.lif_layers()))
    for _ in range(passes):
        net(x)
        rates += [float(layer.cached_spikes.mean()) for _, layer in net.lif_layers()]
    return rates / passes


def _build(name, seed=0, neuron=NEURONS[0], reset="subtract"):
    """A random network ``name`` of NETS and its input, in float64, each LIF's weights and bias
    scaled by 1 or 1.5 times a power of two (exact: one more bit) so that its firing rate is
    near TARGET_RATE."""
    spec = NETS[name]
    rng = np.random.default_rng(seed)
    net = SpikingSequential(*_layers(spec, rng, *neuron, reset), timesteps=spec["steps"])
    x = _dyadic(rng.uniform(0, 1, (spec["batch"], *spec["input"])), INPUT_BITS)
    for k, (_, layer) in enumerate(net.lif_layers()):
        weight, bias = layer.current.weight.copy(), layer.current.bias.copy()
        best = None
        for scale in SCALES:
            layer.current.weight[...] = weight * scale
            layer.current.bias[...] = bias * scale
            miss = abs(_rates(net, x)[k] - TARGET_RATE)
            if best is None or miss < best[0]:
                best = (miss, scale)
        layer.current.weight[...] = weight * best[1]
        layer.current.bias[...] = bias * best[1]
    return net, x, rng.integers(0, net[-1].current.out_features, spec["batch"])


def _oracle_layers(net):
    """The oracle's description of ``net`` (float64 copies of its parameters; the Dropout masks
    of its last forward pass, one per step)."""
    steps, layers = net.timesteps, []
    for layer in net:
        if isinstance(layer, LIF):
            current = layer.current
            layers.append(
                {
                    "kind": "lif",
                    "op": "dense" if isinstance(current, lfp.Dense) else "conv",
                    "weight": current.weight.astype(np.float64),
                    "bias": None if current.bias is None else current.bias.astype(np.float64),
                    "stride": getattr(current, "stride", (1, 1))[0],
                    "padding": getattr(current, "padding", (0, 0))[0],
                    "beta": layer.beta,
                    "threshold": layer.threshold,
                    "reset": layer.reset,
                }
            )
        elif isinstance(layer, lfp.MaxPool2d):
            layers.append({"kind": "maxpool", "size": layer.kernel_size[0]})
        elif isinstance(layer, lfp.Flatten):
            layers.append({"kind": "flatten"})
        else:
            masks = layer.cached_mask
            masks = masks.reshape(steps, -1, *masks.shape[1:])
            layers.append({"kind": "dropout", "p": layer.p, "masks": masks})
    return layers


def _assert_rates(run):
    """20-60% of every LIF layer's (t, sample, neuron) entries spike."""
    rates = [float(r["spikes"].mean()) for r in run["layers"] if r["membrane"] is not None]
    assert all(RATE_BAND[0] <= rate <= RATE_BAND[1] for rate in rates), rates


# -- forward -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("neuron", NEURONS, ids=NEURON_IDS)
@pytest.mark.parametrize("name", list(NETS))
def test_forward_is_the_oracle_bit_for_bit(name, neuron, reset, dtype):
    net, x, _ = _build(name, neuron=neuron, reset=reset)
    net.to(dtype)  # exact: every parameter is dyadic
    x = x.astype(dtype)
    spikes = net(x)
    run = oracle.forward(_oracle_layers(net), x, net.timesteps, dtype=dtype)
    _assert_rates(run)
    assert spikes.dtype == dtype and spikes.shape == run["spikes"].shape
    np.testing.assert_array_equal(spikes, run["spikes"], strict=True)
    for name_k, layer in net.lif_layers():
        rec = run["layers"][int(name_k)]
        np.testing.assert_array_equal(layer.cached_membrane, rec["membrane"], strict=True)
        np.testing.assert_array_equal(layer.cached_spikes, rec["spikes"], strict=True)
    np.testing.assert_array_equal(lfp.snn.predict(spikes), spikes.sum(axis=0).argmax(axis=1))


def test_maxpool_ties_on_spikes_go_to_the_first_maximum():
    # binary spikes tie in most windows; the oracle routes to the first maximum in row-major
    # window order (torch's choice): the feedback test below agrees with it
    net, x, _ = _build("conv-maxpool")
    net(x)
    spikes = net[0].cached_spikes.reshape(-1, *net[0].cached_spikes.shape[2:])  # (T*B, C, H, W)
    windows = spikes.reshape(*spikes.shape[:2], 4, 2, 4, 2).transpose(0, 1, 2, 4, 3, 5)
    windows = windows.reshape(*windows.shape[:4], 4)
    ties = (windows == windows.max(axis=-1, keepdims=True)).sum(axis=-1) > 1
    assert ties.mean() > 0.3  # ties are the rule
    reward = np.zeros(net[1].saved()[1])
    reward[...] = 1.0
    routed, _ = net[1].feedback(reward, None)
    first = windows.argmax(axis=-1)  # the first maximum of each window
    expected = np.zeros_like(windows)
    np.put_along_axis(expected, first[..., None], 1.0, axis=-1)
    expected = expected.reshape(*spikes.shape[:2], 4, 4, 2, 2).transpose(0, 1, 2, 4, 3, 5)
    np.testing.assert_array_equal(routed, expected.reshape(spikes.shape))


# -- LFP feedback --------------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [1e-6, 0.05])
@pytest.mark.parametrize("reward", ["snn_rate_coded", "random"])
@pytest.mark.parametrize("neuron", NEURONS, ids=NEURON_IDS)
@pytest.mark.parametrize("name", list(NETS))
def test_feedback_is_the_oracle(name, neuron, reward, eps):
    net, x, y = _build(name, seed=1, neuron=neuron)
    if reward == "random":
        out_shape = (net.timesteps, x.shape[0], net[-1].current.out_features)
        reward = np.random.default_rng(5).normal(size=out_shape)
    fb = lfp.feedback(net, x, y, reward=reward, eps=eps)
    layers = _oracle_layers(net)  # the Dropout masks of this pass
    run = oracle.forward(layers, x, net.timesteps)
    _assert_rates(run)
    np.testing.assert_array_equal(fb.logits, run["spikes"])
    params, input_reward = oracle.feedback(layers, run, np.asarray(fb.reward), eps)
    assert list(fb.params) == [k for k, _ in net.named_parameters()]
    for name_k, _ in net.lif_layers():
        for p, want in params[int(name_k)].items():
            assert np.abs(want).max() > 0
            assert_close(fb.params[f"{name_k}.current.{p}"], want, rtol=RTOL_NET)
    assert_close(fb.input_reward, input_reward, rtol=RTOL_NET)


@pytest.mark.parametrize("name", list(NETS))
def test_float32_feedback_and_gradients_are_the_oracle_to_float32_rounding(name):
    net, x, y = _build(name, seed=1)
    net.to(np.float32)  # exact: every parameter is dyadic
    x = x.astype(np.float32)
    fb = lfp.feedback(net, x, y, reward="snn_rate_coded")
    layers = _oracle_layers(net)
    run = oracle.forward(layers, x, net.timesteps, dtype=np.float32)
    np.testing.assert_array_equal(fb.logits, run["spikes"])
    params, input_reward = oracle.feedback(layers, run, np.asarray(fb.reward, np.float64), 1e-6)
    for name_k, _ in net.lif_layers():
        for p, want in params[int(name_k)].items():
            got = fb.params[f"{name_k}.current.{p}"]
            assert got.dtype == np.float32
            assert_close(got, want, rtol=RTOL32_NET)
    assert_close(fb.input_reward, input_reward, rtol=RTOL32_NET)
    g = lfp.gradients(net, x, y, loss="snn_ce_rate")
    layers = _oracle_layers(net)
    run = oracle.forward(layers, x, net.timesteps, dtype=np.float32)
    _, grad_spikes = oracle.ce_rate(run["spikes"], y)
    grads, _ = oracle.surrogate_gradients(layers, run, grad_spikes, 2.0)
    for name_k, _ in net.lif_layers():
        for p, want in grads[int(name_k)].items():
            assert_close(g.params[f"{name_k}.current.{p}"], want, rtol=RTOL32_NET)


def test_feedback_eps_is_the_call_s_unless_the_lif_has_its_own():
    net, x, y = _build("dense")
    small = lfp.feedback(net, x, y, reward="snn_rate_coded", eps=1e-6).params
    large = lfp.feedback(net, x, y, reward="snn_rate_coded", eps=0.5).params
    assert not np.allclose(small["0.current.weight"], large["0.current.weight"])
    for _, layer in net.lif_layers():
        layer.eps = 0.5
    own = lfp.feedback(net, x, y, reward="snn_rate_coded", eps=1e-6).params
    for key, value in large.items():
        np.testing.assert_array_equal(own[key], value)
    # a LIF's rule is the spec's recursion: a modified-weights rule is refused, not ignored
    for _, layer in net.lif_layers():
        layer.eps = None
    with pytest.raises(ValueError, match="cannot apply to layer '0'"):
        lfp.feedback(net, x, y, reward="snn_rate_coded", rule="zplus")
    eps = lfp.feedback(net, x, y, reward="snn_rate_coded", rule="epsilon").params
    for key, value in small.items():
        np.testing.assert_array_equal(eps[key], value)


def test_feedback_needs_only_the_rows_it_trains():
    net, x, y = _build("conv-maxpool")
    full = lfp.feedback(net, x, y, reward="snn_rate_coded")
    lean = lfp.feedback(net, x, y, reward="snn_rate_coded", input_reward=False)
    assert lean.input_reward is None
    for key, value in full.params.items():
        np.testing.assert_array_equal(lean.params[key], value)
    mean = lfp.feedback(net, x, y, reward="snn_rate_coded", batch_reduction="mean")
    for key, value in full.params.items():
        assert_close(mean.params[key], value / x.shape[0], rtol=1e-15)


# -- surrogate gradients -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "surrogate, alpha", [("atan", 2.0), ("atan", 0.7), ("heaviside", 2.0)], ids=str
)
@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("name", list(NETS))
def test_surrogate_gradients_are_the_oracle(name, reset, surrogate, alpha):
    net, x, y = _build(name, seed=2, reset=reset)
    net.set_surrogate(surrogate, alpha)
    reduction = "sum" if reset == "zero" else "mean"
    g = lfp.gradients(net, x, y, loss="snn_ce_rate", reduction=reduction)
    layers = _oracle_layers(net)
    run = oracle.forward(layers, x, net.timesteps)
    _assert_rates(run)
    loss, grad_spikes = oracle.ce_rate(run["spikes"], y, reduction)
    assert g.loss == pytest.approx(loss, rel=RTOL_REWARD)
    grads, input_grad = oracle.surrogate_gradients(layers, run, grad_spikes, alpha, surrogate)
    for name_k, _ in net.lif_layers():
        for p, want in grads[int(name_k)].items():
            got = g.params[f"{name_k}.current.{p}"]
            if surrogate == "heaviside":
                np.testing.assert_array_equal(want, 0)
                np.testing.assert_array_equal(got, 0)
            else:
                assert np.abs(want).max() > 0
                assert_close(got, want, rtol=RTOL_NET)
    assert_close(g.input_grad, input_grad, rtol=RTOL_NET)


def _linear_loss(weights):
    """A loss callable ``L = sum c * S``: dL/dS = c whatever the spikes (so that the smooth
    forward of the finite differences and the hard forward of lfp_ref see the same dL/dS)."""

    def loss(spikes, y, reduction="mean"):
        return float(np.sum(weights * spikes)), weights.copy()

    return loss


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("op", ["dense", "conv"])
def test_surrogate_gradient_matches_finite_differences_of_a_smoothed_spike(op, reset):
    # One LIF layer: its input is x, not spikes, so the smoothed network (spike replaced by
    # 1/2 + arctan(pi/2 alpha (U - theta)) / pi, whose derivative is the atan surrogate) has the
    # same membranes as the hard one, and its exact gradient is surrogate BPTT's.
    rng = np.random.default_rng(7)
    steps, batch, alpha = 6, 2, 1.3
    if op == "dense":
        current, x = lfp.Dense(5, 4, rng=rng), rng.uniform(0, 1, (batch, 5))
    else:
        current, x = lfp.Conv2d(1, 2, 3, rng=rng), rng.uniform(0, 1, (batch, 1, 5, 5))
    current.weight *= 2.0
    current.bias[...] = rng.uniform(0.0, 0.3, current.bias.shape)
    net = SpikingSequential(LIF(current, 0.8, 0.6, reset, alpha=alpha), timesteps=steps)
    spikes = net(x)
    membrane = net[0].cached_membrane
    # a weight step of h moves a membrane by at most T h |x| <= T h: no reset or spike flips
    assert np.abs(membrane - 0.6).min() > 10 * FD_STEP * steps
    assert 0.2 <= spikes.mean() <= 0.6
    weights = rng.normal(size=spikes.shape)
    g = lfp.gradients(net, x, None, loss=_linear_loss(weights), reduction="sum")
    layers = _oracle_layers(net)

    def functional():
        smooth = oracle.forward(layers, x, steps, spike=("smooth", alpha))["spikes"]
        return float(np.sum(weights * smooth))

    for p in ("weight", "bias"):
        want = finite_difference(functional, layers[0][p], h=FD_STEP)
        assert_close(g.params[f"0.current.{p}"], want, rtol=RTOL_FD)


# -- no state between passes; the entry points ----------------------------------------------------


def test_consecutive_batches_give_what_fresh_networks_give():
    net, x, y = _build("conv-maxpool", seed=3)
    rng = np.random.default_rng(8)
    x2 = _dyadic(rng.uniform(0, 1, (5, *x.shape[1:])), INPUT_BITS)  # another batch size too
    y2 = rng.integers(0, 5, 5)
    fresh = [copy.deepcopy(net), copy.deepcopy(net)]
    first = lfp.feedback(net, x, y, reward="snn_rate_coded")
    second = lfp.feedback(net, x2, y2, reward="snn_rate_coded")
    third = lfp.feedback(net, x, y, reward="snn_rate_coded")  # the same batch again
    want = [lfp.feedback(fresh[0], x, y, reward="snn_rate_coded")]
    want.append(lfp.feedback(fresh[1], x2, y2, reward="snn_rate_coded"))
    for got, expected in ((first, want[0]), (second, want[1]), (third, want[0])):
        np.testing.assert_array_equal(got.logits, expected.logits)
        for key, value in expected.params.items():
            np.testing.assert_array_equal(got.params[key], value)
    grads = lfp.gradients(net, x2, y2, loss="snn_ce_rate")
    fresh_grads = lfp.gradients(copy.deepcopy(fresh[0]), x2, y2, loss="snn_ce_rate")
    for key, value in fresh_grads.params.items():
        np.testing.assert_array_equal(grads.params[key], value)


def test_trace_and_lfp_step_take_a_spiking_network():
    net, x, y = _build("conv-maxpool", seed=4)
    fb = lfp.feedback(net, x, y, reward="snn_rate_coded")
    t = lfp.trace(net, x, y, reward="snn_rate_coded")
    assert [r.name for r in t.records] == ["0", "1", "2", "3", "4", "5"]
    assert [r.kind for r in t.records] == ["LIF", "MaxPool2d", "LIF", "MaxPool2d", "Flatten", "LIF"]
    assert t.records[0].input.shape == (net.timesteps * x.shape[0], *x.shape[1:])
    for key, value in fb.params.items():
        np.testing.assert_array_equal(t.feedback[key], value)
    np.testing.assert_array_equal(t.input_reward, fb.input_reward)
    before = {k: v.copy() for k, v in net.named_parameters()}
    step = lfp.lfp_step(net, lfp.optim.SGD(net, lr=0.01), x, y, reward="snn_rate_coded")
    for key, value in net.named_parameters():
        # the optimizer descends g = -F: theta + lr F
        assert_close(value, before[key] + 0.01 * step.params[key], rtol=1e-15)
        np.testing.assert_array_equal(step.params[key], fb.params[key])


def test_parameter_names_and_state_dict():
    net, _, _ = _build("conv-maxpool")
    assert [k for k, _ in net.named_parameters()] == [
        "0.current.weight", "0.current.bias", "2.current.weight", "2.current.bias",
        "5.current.weight", "5.current.bias",
    ]  # fmt: skip
    twin = copy.deepcopy(net)
    for _, p in twin.named_parameters():
        p[...] = 0
    twin.load_state_dict(net.state_dict())
    for (_, a), (_, b) in zip(net.named_parameters(), twin.named_parameters(), strict=True):
        np.testing.assert_array_equal(a, b)
    # a torch-style state dict (lfprop's SpikingLayer names, snntorch's neuron buffers)
    torch_style = {}
    for i in (0, 2, 5):
        layer = net[i].current
        prefix = f"classifier.{i}.parameterized_layer.module."
        torch_style |= {prefix + "weight": layer.weight, prefix + "bias": layer.bias}
        torch_style |= {f"classifier.{i}.spike_mechanism.beta": np.array(0.9)}
    mapped = lfp.snn.state_dict_from_torch(net, torch_style)
    assert set(mapped) == {k for k, _ in net.named_parameters()}
    for key, value in net.named_parameters():
        np.testing.assert_array_equal(mapped[key], value)
    with pytest.raises(ValueError, match="has 2 Linear/Conv2d weights .* but the model has 3 LIF"):
        lfp.snn.state_dict_from_torch(net, {k: v for k, v in torch_style.items() if "5" not in k})


# -- the rate-coded reward and the ce_rate loss ----------------------------------------------------


@pytest.mark.parametrize("steps", [1, 6, 15])
def test_rate_coded_reward_is_the_spec(steps):
    rng = np.random.default_rng(steps)
    spikes = (rng.random((steps, 5, 4)) < 0.4).astype(np.float64)
    y = rng.integers(0, 4, 5)
    want = oracle.rate_coded_reward(spikes, y)
    got = rewards.REWARDS["snn_rate_coded"](spikes, y)
    assert_close(got, want, rtol=RTOL_REWARD)
    mean = rewards.REWARDS["snn_rate_coded_mean"](spikes, y)
    assert_close(mean, oracle.rate_coded_reward(spikes, y, divide_by_t=True), rtol=RTOL_REWARD)
    # every step rewards the label; the others are punished exactly where they fire
    label = np.zeros((5, 4), bool)
    label[np.arange(5), y] = True
    assert (got[:, label] > 0).all()
    assert ((got[:, ~label] < 0) == (spikes[:, ~label] == 1)).all()
    single = rewards.snn_rate_coded()(spikes.astype(np.float32), y)
    assert single.dtype == np.float32


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_ce_rate_loss_is_snntorch_s_definition(reduction):
    rng = np.random.default_rng(3)
    spikes = (rng.random((7, 4, 3)) < 0.5).astype(np.float64)
    y = rng.integers(0, 3, 4)
    loss, grad = losses.snn_ce_rate(spikes, y, reduction=reduction)
    want_loss, want_grad = oracle.ce_rate(spikes, y, reduction)
    assert loss == pytest.approx(want_loss, rel=RTOL_REWARD)
    assert_close(grad, want_grad, rtol=RTOL_REWARD)
    assert losses.LOSSES["snn_ce_rate"] is losses.snn_ce_rate


# -- the zoo -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, flat",
    [((1, 28, 28), 1024), ((3, 32, 32), 1600)],
    ids=["1x28x28", "3x32x32"],
)
def test_zoo_snn_cnn_is_lfprops_lifcnn(shape, flat):
    net = zoo.build("snn-cnn", num_classes=10, input_shape=shape, dtype=np.float64)
    assert isinstance(net, SpikingSequential) and net.timesteps == 15
    assert [(k, p.shape) for k, p in net.named_parameters()] == [
        ("0.current.weight", (12, shape[0], 5, 5)), ("0.current.bias", (12,)),
        ("2.current.weight", (64, 12, 5, 5)), ("2.current.bias", (64,)),
        ("5.current.weight", (10, flat)), ("5.current.bias", (10,)),
    ]  # fmt: skip
    assert all(layer.beta == 0.9 and layer.threshold == 1.0 for _, layer in net.lif_layers())
    spikes = net(np.random.default_rng(0).random((2, *shape)))
    assert spikes.shape == (15, 2, 10)


def test_zoo_snn_mlp_and_options():
    net = zoo.build("snn-mlp", num_classes=10, input_shape=(784,))
    assert [(k, p.shape) for k, p in net.named_parameters()] == [
        ("0.current.weight", (1000, 784)), ("0.current.bias", (1000,)),
        ("1.current.weight", (10, 1000)), ("1.current.bias", (10,)),
    ]  # fmt: skip
    assert zoo.known_options("snn-mlp") == {
        "mode": "train", "timesteps": 15, "beta": 0.9, "threshold": 1.0, "reset": "subtract",
        "surrogate": "atan", "alpha": 2.0,
    }  # fmt: skip
    net = zoo.build(
        "snn-mlp", num_classes=3, input_shape=(1, 4, 4), widths=(8, 6), seed=1, timesteps=7,
        beta=0.5, threshold=0.75, reset="zero", surrogate="heaviside", alpha=1.5, mode="eval",
    )  # fmt: skip
    assert isinstance(net[0], lfp.Flatten) and net.timesteps == 7 and not net.training
    shapes = [layer.current.weight.shape for _, layer in net.lif_layers()]
    assert shapes == [(8, 16), (6, 8), (3, 6)]
    for _, layer in net.lif_layers():
        assert (layer.beta, layer.threshold, layer.reset) == (0.5, 0.75, "zero")
        assert (layer.surrogate, layer.alpha, layer.timesteps) == ("heaviside", 1.5, 7)
    same = zoo.build("snn-mlp", num_classes=3, input_shape=(16,), widths=(8, 6), seed=1)
    for (_, a), (_, b) in zip(net.named_parameters(), same.named_parameters(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(timesteps=0), "timesteps must be an int >= 1"),
        (dict(beta=1.5), r"beta must be a finite number in \[0.0, 1.0\]"),
        (dict(threshold=0), "threshold must be a finite number in"),
        (dict(reset="hard"), "reset must be one of subtract, zero"),
        (dict(surrogate="sigmoid"), "surrogate must be one of atan, heaviside"),
        (dict(beta="0.9"), "beta must be a real number"),
        (dict(dropout=0.5), "'dropout' is an option of lenet"),
    ],
)
def test_zoo_snn_option_errors(options, message):
    with pytest.raises(ValueError, match=message):
        zoo.build("snn-cnn", num_classes=10, input_shape=(1, 28, 28), **options)


def test_zoo_timesteps_is_no_option_of_the_other_models():
    with pytest.raises(ValueError, match="'timesteps' is an option of snn-mlp, snn-cnn"):
        zoo.build("lenet", num_classes=10, input_shape=(1, 28, 28), timesteps=5)


# -- errors ---------------------------------------------------------------------------------------


def test_lfp_through_a_zero_reset_is_an_error():
    net, x, y = _build("dense", reset="zero")
    net(x)  # forward and backprop work
    lfp.gradients(net, x, y, loss="snn_ce_rate")
    with pytest.raises(ValueError, match=r"defined for reset='subtract' only .*lfp.gradients"):
        lfp.feedback(net, x, y, reward="snn_rate_coded")


def test_wrong_input_shapes_are_errors():
    net, x, y = _build("dense")
    with pytest.raises(ValueError, match=r"LIF around Dense\(12, 16\) expects input of shape "):
        lfp.feedback(net, x[:, :11], y, reward="snn_rate_coded")
    with pytest.raises(ValueError, match=r"T = 7 steps x B = 4 samples = 28 rows"):
        net(x[:, :11])
    with pytest.raises(ValueError, match=r"expects a batch of static inputs \(B, ...\)"):
        net(x[0])
    conv, cx, _ = _build("conv-maxpool")
    with pytest.raises(ValueError, match=r"LIF around Conv2d\(2, 4, kernel_size=3\) expects"):
        conv(cx[:, :1])
    with pytest.raises(ValueError, match=r"must have the logits' shape \(7, 4, 5\), got \(4, 5\)"):
        lfp.feedback(net, x, y, reward=np.zeros((4, 5)))
    net(x)
    with pytest.raises(ValueError, match=r"the reward must have the output spikes' shape"):
        net.feedback(np.zeros((4, 5)), lambda layer: lfp.rules.Epsilon())
    with pytest.raises(ValueError, match=r"softmax_loss expects logits of shape \(B, C\)"):
        lfp.feedback(net, x, y)  # the default reward is for (B, C) logits
    with pytest.raises(ValueError, match=r"snn_rate_coded expects spikes of shape \(T, B, C\)"):
        rewards.REWARDS["snn_rate_coded"](np.zeros((4, 5)), y)
    with pytest.raises(ValueError, match=r"snn_ce_rate expects spikes of shape \(T, B, C\)"):
        losses.snn_ce_rate(np.zeros((4, 5)), y)
    with pytest.raises(ValueError, match=r"y has labels in \[0, 7\]"):
        lfp.feedback(net, x, np.array([0, 1, 2, 7]), reward="snn_rate_coded")


@pytest.mark.parametrize(
    "inner",
    [lfp.ReLU(), lfp.MaxPool2d(2), lfp.AvgPool2d(2), LIF(lfp.Dense(2, 2))],
    ids=["relu", "maxpool", "avgpool", "lif"],
)
def test_a_lif_wraps_a_dense_or_a_conv_only(inner):
    with pytest.raises(TypeError, match="LIF wraps the layer that makes its input current"):
        LIF(inner)


def test_spiking_sequential_errors():
    lif = LIF(lfp.Dense(4, 3))
    with pytest.raises(TypeError, match=r"item 1 is ReLU\(\); it holds LIF, MaxPool2d, Flatten"):
        SpikingSequential(LIF(lfp.Dense(4, 4)), lfp.ReLU(), lif, timesteps=3)
    with pytest.raises(ValueError, match="must end with a LIF layer"):
        SpikingSequential(lif, lfp.Flatten(), timesteps=3)
    for steps in (0, 2.5, True):
        with pytest.raises(ValueError, match="timesteps must be an int >= 1"):
            SpikingSequential(lif, timesteps=steps)
    with pytest.raises(ValueError, match="does not know the number of time steps"):
        lfp.Sequential(LIF(lfp.Dense(4, 3)))(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"beta must be a finite number in \[0.0, 1.0\]"):
        LIF(lfp.Dense(4, 3), beta=1.1)
    with pytest.raises(ValueError, match="threshold must be a finite number in"):
        LIF(lfp.Dense(4, 3), threshold=-1)
    with pytest.raises(ValueError, match="alpha must be a finite number in"):
        LIF(lfp.Dense(4, 3), alpha=0)
    with pytest.raises(ValueError, match="eps must be a finite number in"):
        LIF(lfp.Dense(4, 3), eps=-1e-6)
    with pytest.raises(TypeError, match="beta must be a real number"):
        LIF(lfp.Dense(4, 3), beta="0.9")
    with pytest.raises(ValueError, match="surrogate must be one of atan, heaviside"):
        SpikingSequential(lif, timesteps=3).set_surrogate("fast_sigmoid")


def test_a_composite_leaves_the_lif_alone_given_its_own_eps():
    net, x, y = _build("conv-maxpool")
    with pytest.raises(ValueError, match=r"give the LIF its own stabiliser, LIF\(..., eps=1e-6\)"):
        lfp.feedback(net, x, y, reward="snn_rate_coded", composite="EpsilonPlus")
    want = lfp.feedback(net, x, y, reward="snn_rate_coded").params
    for _, layer in net.lif_layers():
        layer.eps = 1e-6
    got = lfp.feedback(net, x, y, reward="snn_rate_coded", composite="EpsilonPlus").params
    for key, value in want.items():
        np.testing.assert_array_equal(got[key], value)
