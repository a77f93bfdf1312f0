"""The static input of a spiking network: SpikingSequential shows the same x at every one of the
T steps, so the first LIF's current ``I_t = P(x)`` is the same at every step. It is computed once,
on the B rows of one step, and the wrapped layer's weight VJP takes ``sum_t rho_t`` (exact in
exact arithmetic: VJP_theta is linear and x_t = x). These tests pin that the first layer's
current really runs on B rows (a spy on the wrapped Dense/Conv2d), that the shortcut is taken only
where it is valid (not after a training-mode Dropout, which draws a mask per step), and that
everything public (spikes, LFP feedback, the input reward, surrogate gradients, the trace's
per-step accounts, shapes) equals the per-step computation in float64 to 1e-12 relative."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import lfp_ref as lfp
from lfp_ref import zoo
from lfp_ref.snn import LIF, SpikingSequential
from tests.test_snn import _build
from tests.tolerances import assert_close

# the static path against the per-step path, float64: the sums over t taken before the weight
# VJP instead of inside it
RTOL = 1e-12


class Spy:
    """Records the rows (first axis) of every forward and vjp call of a wrapped layer."""

    def __init__(self, layer):
        self.forward_rows, self.vjp_rows = [], []
        forward, vjp = layer.forward, layer.vjp

        def spy_forward(x):
            self.forward_rows.append(x.shape[0])
            return forward(x)

        def spy_vjp(v, input_vjp=True):
            self.vjp_rows.append((v.shape[0], input_vjp))
            return vjp(v, input_vjp=input_vjp)

        layer.forward, layer.vjp = spy_forward, spy_vjp  # instance attributes shadow the methods


def _snn_mlp_on_images():
    """The zoo's snn-mlp on 1x6x6 images: a Flatten before the first LIF (still static)."""
    net = zoo.build(
        "snn-mlp", num_classes=4, input_shape=(1, 6, 6), widths=(9,), dtype=np.float64, seed=3,
        timesteps=5,
    )  # fmt: skip
    rng = np.random.default_rng(3)
    for _, layer in net.lif_layers():
        layer.current.weight *= 4.0  # the zoo's init rarely fires on 36 inputs
    return net, rng.uniform(0, 1, (4, 1, 6, 6)), rng.integers(0, 4, 4)


def _models():
    net, x, y = _build("conv-maxpool", seed=1)
    yield "conv-maxpool", net, x, y
    net, x, y = _build("dense", seed=1)
    yield "dense", net, x, y
    yield "snn-mlp-images", *_snn_mlp_on_images()


MODELS = {name: (net, x, y) for name, net, x, y in _models()}


def _twins(name):
    """The network (static path) and a deep copy that computes every step (per-step path)."""
    net, x, y = MODELS[name]
    net = copy.deepcopy(net)
    per_step = copy.deepcopy(net)
    per_step.share_static_current = False
    return net, per_step, x, y


def _first_lif(net):
    return next(layer for _, layer in net.lif_layers())


def _assert_params(got, want):
    assert list(got) == list(want)
    for key, value in want.items():
        assert np.abs(value).max() > 0, key
        assert_close(got[key], value, rtol=RTOL)


@pytest.mark.parametrize("name", list(MODELS))
def test_the_first_current_runs_on_b_rows_and_equals_the_per_step_path(name):
    net, per_step, x, y = _twins(name)
    steps, batch = net.timesteps, x.shape[0]
    first = _first_lif(net)
    assert net.repeated_input_child() == next(n for n, _ in net.lif_layers())
    assert per_step.repeated_input_child() is None
    spy, spy_old = Spy(first.current), Spy(_first_lif(per_step).current)
    others = [Spy(layer.current) for _, layer in list(net.lif_layers())[1:]]

    # training: the LFP feedback without the input reward
    fb = lfp.feedback(net, x, y, reward="snn_rate_coded", input_reward=False)
    want = lfp.feedback(per_step, x, y, reward="snn_rate_coded", input_reward=False)
    assert spy.forward_rows == [batch]  # one call, on one step's B rows
    assert spy.vjp_rows == [(batch, False)]  # one weight VJP, on sum_t rho_t
    assert spy_old.forward_rows == [steps * batch] and spy_old.vjp_rows == [(steps * batch, False)]
    for other in others:  # the layers above see spikes, different at every step
        assert other.forward_rows == [steps * batch]
    assert first.current.cached_input.shape == (batch, *first.current.cached_input.shape[1:])
    assert first.cached_membrane.shape[:2] == (steps, batch)  # the LIF's own state is per step
    np.testing.assert_array_equal(fb.logits, want.logits)
    assert fb.input_reward is None
    _assert_params(fb.params, want.params)

    # with the input reward: still one weight VJP on B rows, the input VJP step by step
    del spy.vjp_rows[:]
    fb = lfp.feedback(net, x, y, reward="snn_rate_coded")
    want = lfp.feedback(per_step, x, y, reward="snn_rate_coded")
    assert spy.vjp_rows == [(batch, False)] + [(batch, True)] * steps
    assert fb.input_reward.shape == x.shape
    assert_close(fb.input_reward, want.input_reward, rtol=RTOL)
    _assert_params(fb.params, want.params)

    # surrogate BPTT: the gradient of the first current summed over t before its weight VJP
    g = lfp.gradients(net, x, y, loss="snn_ce_rate")
    g_want = lfp.gradients(per_step, x, y, loss="snn_ce_rate")
    assert spy.forward_rows[-1] == batch
    assert g.loss == g_want.loss
    _assert_params(g.params, g_want.params)
    assert_close(g.input_grad, g_want.input_grad, rtol=RTOL)

    # an LFP step: the same update
    opt, opt_old = lfp.optim.SGD(net, lr=0.1), lfp.optim.SGD(per_step, lr=0.1)
    lfp.lfp_step(net, opt, x, y, reward="snn_rate_coded")
    lfp.lfp_step(per_step, opt_old, x, y, reward="snn_rate_coded")
    for (_, value), (_, old) in zip(net.named_parameters(), per_step.named_parameters()):
        assert_close(value, old, rtol=RTOL)


@pytest.mark.parametrize("name", list(MODELS))
def test_the_trace_books_every_step_as_the_per_step_path(name):
    net, per_step, x, y = _twins(name)
    t = lfp.trace(net, x, y, reward="snn_rate_coded")
    want = lfp.trace(per_step, x, y, reward="snn_rate_coded")
    steps, batch = net.timesteps, x.shape[0]
    assert [r.name for r in t.records] == [r.name for r in want.records]
    for rec, old in zip(t.records, want.records):
        assert rec.input.shape == old.input.shape  # (T*B, ...): the walk is unchanged
        if rec.kind != "LIF":
            continue
        # what leaves to the layer below is each step's own R_x_t, (T*B, ...)
        assert rec.reward_leaving.shape == old.reward_leaving.shape
        assert rec.reward_leaving.shape[0] == steps * batch
        assert_close(rec.reward_leaving, old.reward_leaving, rtol=RTOL)
        assert list(rec.steps) == list(old.steps)
        scale = np.abs(old.steps["arriving"]).max()
        for key, value in old.steps.items():
            assert rec.steps[key].shape == (steps,)
            np.testing.assert_allclose(rec.steps[key], value, rtol=RTOL, atol=RTOL * scale)
    assert_close(t.input_reward, want.input_reward, rtol=RTOL)
    # the accounts of the first LIF without the reward that left it: from the current, which
    # the static path keeps for one step (and broadcasts over the steps)
    first, old_first = _first_lif(net), _first_lif(per_step)
    net(x)
    per_step(x)
    reward = np.random.default_rng(0).normal(size=first.saved()[0].shape)
    got = first.lfp_accounts(reward, eps=1e-6)
    expected = old_first.lfp_accounts(reward, eps=1e-6)
    scale = np.abs(expected["arriving"]).max()
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=RTOL, atol=RTOL * scale)


def _dropout_first(training):
    rng = np.random.default_rng(4)
    dense = lfp.Dense(6, 5, rng=rng, dtype=np.float64)
    dense.weight *= 3.0
    net = SpikingSequential(
        lfp.Dropout(0.3, rng=rng.spawn(1)[0]), LIF(dense), LIF(lfp.Dense(5, 3, rng=rng)),
        timesteps=4,
    )  # fmt: skip
    if not training:
        net.eval()
    return net, rng.uniform(0, 1, (3, 6)), np.array([0, 1, 2])


def test_a_training_mode_dropout_before_the_first_lif_keeps_the_per_step_path():
    # a mask per step: the first LIF's input differs from step to step
    net, x, y = _dropout_first(training=True)
    assert net.repeated_input_child() is None
    spy = Spy(net[1].current)
    fb = lfp.feedback(net, x, y, reward="snn_rate_coded", input_reward=False)
    assert spy.forward_rows == [net.timesteps * x.shape[0]]
    assert spy.vjp_rows == [(net.timesteps * x.shape[0], False)]
    masks = net[0].cached_mask.reshape(net.timesteps, *x.shape)
    assert not all(np.array_equal(masks[0], m) for m in masks[1:])  # the steps do differ
    assert all(np.isfinite(v).all() for v in fb.params.values())


def test_an_eval_mode_dropout_is_the_identity_and_keeps_the_static_path():
    net, x, y = _dropout_first(training=False)
    per_step = copy.deepcopy(net)
    per_step.share_static_current = False
    assert net.repeated_input_child() == "1"
    spy = Spy(net[1].current)
    fb = lfp.feedback(net, x, y, reward="snn_rate_coded")
    want = lfp.feedback(per_step, x, y, reward="snn_rate_coded")
    assert spy.forward_rows == [x.shape[0]]
    np.testing.assert_array_equal(fb.logits, want.logits)
    for key, value in want.params.items():
        assert_close(fb.params[key], value, rtol=RTOL)
    assert_close(fb.input_reward, want.input_reward, rtol=RTOL)


def test_only_the_first_lif_and_only_inside_a_spiking_sequential():
    net, x, _ = copy.deepcopy(MODELS["conv-maxpool"])
    assert net.repeated_input_child() == "0"  # the later LIFs see spikes
    # a LIF called directly computes every step (it cannot know its input repeats)
    first = net[0]
    folded = np.concatenate([x] * net.timesteps)
    spy = Spy(first.current)
    spikes = first.forward(folded)
    assert spy.forward_rows == [folded.shape[0]]
    repeated = first.forward(folded, repeated=True)
    assert spy.forward_rows[-1] == x.shape[0]
    np.testing.assert_array_equal(repeated, spikes)
    # the switch is per instance, not saved with the parameters
    assert "share_static_current" not in net.state_dict()
    net.share_static_current = False
    assert copy.deepcopy(net).repeated_input_child() is None
    assert SpikingSequential.share_static_current is True
