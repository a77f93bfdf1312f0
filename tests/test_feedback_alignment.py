"""Feedback Alignment (lfp_ref/feedback_alignment.py): the method "fa" against a literal float64
transcription on a small Dense + Conv2d net, against backprop when B = W (every layer family,
residual blocks and shared layers), its feedback matrices, training, and a bit-for-bit resume
with the matrices in the checkpoint."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import lfp_ref as lfp
from lfp_ref import engine, methods, zoo
from lfp_ref.data import load
from lfp_ref.feedback_alignment import FeedbackAlignment, fa_gradients, feedback_matrices
from lfp_ref.train import TrainConfig, Trainer, fit
from lfp_ref.train import checkpoint as ckpt

RTOL = 1e-12  # float64: the same sums in another order


def assert_close(actual, expected, rtol=RTOL, scale=None):
    """``|actual - expected| <= rtol * scale`` everywhere; scale: ``max |expected|`` unless
    given (a gradient that is zero in exact arithmetic is compared on its network's scale)."""
    if scale is None:
        scale = max(float(np.abs(expected).max()), 1e-300)
    assert actual.shape == expected.shape
    assert float(np.abs(actual - expected).max()) <= rtol * scale


def quiet(**kwargs):
    return dict(progress=False, log=lambda line: None, **kwargs)


# --------------------------------------------------------------------------------------------
# the oracle: loops over every index, float64


def conv_forward(x, w, b, stride, pad):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.zeros((n, c, h + 2 * pad, wd + 2 * pad))
    xp[:, :, pad : pad + h, pad : pad + wd] = x
    ho, wo = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    z = np.zeros((n, o, ho, wo))
    for s in range(n):
        for q in range(o):
            for i in range(ho):
                for j in range(wo):
                    total = b[q]
                    for ch in range(c):
                        for a in range(kh):
                            for e in range(kw):
                                total += w[q, ch, a, e] * xp[s, ch, i * stride + a, j * stride + e]
                    z[s, q, i, j] = total
    return z


def conv_weight_grad(x, delta, w_shape, stride, pad):
    """dW[q, ch, a, e] = sum_{s, i, j} delta[s, q, i, j] x_pad[s, ch, i*stride + a, j*stride + e]"""
    n, c, h, wd = x.shape
    xp = np.zeros((n, c, h + 2 * pad, wd + 2 * pad))
    xp[:, :, pad : pad + h, pad : pad + wd] = x
    dw = np.zeros(w_shape)
    o, _, kh, kw = w_shape
    for s in range(n):
        for q in range(o):
            for i in range(delta.shape[2]):
                for j in range(delta.shape[3]):
                    for ch in range(c):
                        for a in range(kh):
                            for e in range(kw):
                                dw[q, ch, a, e] += (
                                    delta[s, q, i, j] * xp[s, ch, i * stride + a, j * stride + e]
                                )
    return dw


def conv_input_vjp(delta, matrix, x_shape, stride, pad):
    """The transposed convolution with ``matrix`` (B in FA): scatter delta through every tap."""
    n, c, h, wd = x_shape
    o, _, kh, kw = matrix.shape
    dxp = np.zeros((n, c, h + 2 * pad, wd + 2 * pad))
    for s in range(n):
        for q in range(o):
            for i in range(delta.shape[2]):
                for j in range(delta.shape[3]):
                    for ch in range(c):
                        for a in range(kh):
                            for e in range(kw):
                                dxp[s, ch, i * stride + a, j * stride + e] += (
                                    delta[s, q, i, j] * matrix[q, ch, a, e]
                                )
    return dxp[:, :, pad : pad + h, pad : pad + wd]


def oracle_fa(params, feedback, x, y):
    """Feedback Alignment of the mean cross-entropy through
    Conv(2->3, 3, stride 2, pad 1) ReLU Conv(3->4, 2) Tanh Flatten Dense(16->5) ReLU Dense(5->3),
    every input error through B instead of W, spelled out."""
    w0, b0, w2, b2, w5, b5, w7, b7 = (
        params[f"{layer}.{kind}"] for layer in (0, 2, 5, 7) for kind in ("weight", "bias")
    )
    z0 = conv_forward(x, w0, b0, 2, 1)
    a1 = np.maximum(z0, 0)
    z2 = conv_forward(a1, w2, b2, 1, 0)
    a3 = np.tanh(z2)
    a4 = a3.reshape(len(x), -1)
    z5 = a4 @ w5.T + b5
    a6 = np.maximum(z5, 0)
    z7 = a6 @ w7.T + b7
    p = np.exp(z7 - z7.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    onehot = np.eye(z7.shape[1])[y]
    d7 = (p - onehot) / len(x)  # dL/dz of the mean cross-entropy
    grads = {"7.weight": d7.T @ a6, "7.bias": d7.sum(axis=0)}
    d6 = d7 @ feedback["7"]  # B, not W
    d5 = d6 * (z5 > 0)
    grads.update({"5.weight": d5.T @ a4, "5.bias": d5.sum(axis=0)})
    d4 = d5 @ feedback["5"]
    d2 = d4.reshape(a3.shape) * (1 - a3**2)
    grads.update(
        {"2.weight": conv_weight_grad(a1, d2, w2.shape, 1, 0), "2.bias": d2.sum(axis=(0, 2, 3))}
    )
    d1 = conv_input_vjp(d2, feedback["2"], a1.shape, 1, 0)
    d0 = d1 * (z0 > 0)
    grads.update(
        {"0.weight": conv_weight_grad(x, d0, w0.shape, 2, 1), "0.bias": d0.sum(axis=(0, 2, 3))}
    )
    d_input = conv_input_vjp(d0, feedback["0"], x.shape, 2, 1)
    return grads, d_input


def small_net(rng):
    return lfp.Sequential(
        lfp.Conv2d(2, 3, 3, stride=2, padding=1, rng=rng),
        lfp.ReLU(),
        lfp.Conv2d(3, 4, 2, rng=rng),
        lfp.Tanh(),
        lfp.Flatten(),
        lfp.Dense(16, 5, rng=rng),
        lfp.ReLU(),
        lfp.Dense(5, 3, rng=rng),
    )


def test_fa_matches_the_literal_transcription(rng):
    model = small_net(rng)
    x = rng.normal(size=(4, 2, 6, 6))  # conv 0 -> (4, 3, 3, 3), conv 2 -> (4, 4, 2, 2)
    y = rng.integers(0, 3, size=4)
    feedback = feedback_matrices(model, seed=int(rng.integers(1000)))
    got = fa_gradients(model, x, y, feedback, input_grad=True)
    expected, d_input = oracle_fa(model.parameters(), feedback, x, y)
    assert sorted(got.params) == sorted(expected)
    for name, value in expected.items():
        assert_close(got.params[name], value)
    assert_close(got.input_grad, d_input)
    # the input errors really took B: with W the gradients of the lower layers differ
    true = engine.gradients(model, x, y)
    assert not np.allclose(true.params["0.weight"], got.params["0.weight"])
    assert_close(true.params["7.weight"], got.params["7.weight"])  # the top layer is the same


@pytest.mark.parametrize(
    "name, shape",
    [("small-cnn", (1, 8, 8)), ("resnet-tiny", (3, 8, 8)), ("vgg-tiny", (3, 8, 8))],
)
def test_with_b_equal_to_w_fa_is_backprop(name, shape):
    """Every layer family, residual blocks and BatchNorm: B = W gives backprop's gradients."""
    rng = np.random.default_rng(3)
    model = zoo.build(name, num_classes=4, input_shape=shape, dtype=np.float64, seed=2)
    x, y = rng.normal(size=(5, *shape)), rng.integers(0, 4, size=5)
    weights = {
        n: layer.weight.copy()
        for n, layer in model.named_layers()
        if isinstance(layer, lfp.layers.WeightedLayer)
    }
    got = fa_gradients(model, x, y, weights, input_grad=True)
    true = engine.gradients(model, x, y)
    assert list(got.params) == list(true.params)
    # the biases before a BatchNorm have gradient 0 in exact arithmetic: rounding noise there
    scale = max(float(np.abs(value).max()) for value in true.params.values())
    for key, value in true.params.items():
        assert_close(got.params[key], value, scale=scale)
    assert_close(got.input_grad, true.input_grad)


def test_shared_layers_get_one_matrix_and_summed_gradients():
    rng = np.random.default_rng(4)
    dense = lfp.Dense(6, 6, rng=rng)
    model = lfp.Sequential(
        lfp.Dense(3, 6, rng=rng),
        lfp.Tanh(),
        dense,
        lfp.Tanh(),
        dense,
        lfp.Tanh(),
        lfp.Dense(6, 2, rng=rng),
    )
    feedback = feedback_matrices(model, seed=0)
    assert sorted(feedback) == ["0", "2", "6"]  # the shared layer once, under its first name
    x, y = rng.normal(size=(7, 3)), rng.integers(0, 2, size=7)
    got = fa_gradients(model, x, y, feedback)
    # the unshared twin with the same matrix at both uses
    twin = copy.deepcopy(model)
    twin.layers[4] = copy.deepcopy(twin.layers[2])
    twin_got = fa_gradients(twin, x, y, {**feedback, "4": feedback["2"]})
    assert sorted(got.params) == ["0.bias", "0.weight", "2.bias", "2.weight", "6.bias", "6.weight"]
    assert_close(got.params["2.weight"], twin_got.params["2.weight"] + twin_got.params["4.weight"])
    assert_close(got.params["0.weight"], twin_got.params["0.weight"])


def test_feedback_matrices_are_torch_init_from_their_own_stream():
    model = zoo.build("lenet-5", num_classes=10, input_shape=(1, 28, 28), seed=5)
    feedback = feedback_matrices(model, seed=5)
    again = feedback_matrices(model, seed=5)
    other = feedback_matrices(model, seed=6)
    layers = dict(model.named_layers())
    assert list(feedback) == ["0", "3", "7", "9", "11"]
    for name, matrix in feedback.items():
        weight = layers[name].weight
        fan_in = int(np.prod(weight.shape[1:]))
        assert matrix.shape == weight.shape and matrix.dtype == weight.dtype
        assert np.abs(matrix).max() <= 1 / np.sqrt(fan_in)
        assert np.abs(matrix).max() > 0.9 / np.sqrt(fan_in)  # U(-bound, bound) fills it
        assert not np.array_equal(matrix, weight)  # not the weights' stream
        assert np.array_equal(matrix, again[name])
        assert not np.array_equal(matrix, other[name])


def test_fa_is_registered_and_refuses_bad_options():
    assert "fa" in methods.known_methods()
    assert methods.get_method("FA") is FeedbackAlignment
    data = load("blobs", n_samples=40)
    with pytest.raises(ValueError, match="reduction must be one of"):
        Trainer(
            TrainConfig(
                model="toy", data="blobs", method="fa", method_options={"reduction": "max"}
            ),
            data=data,
            **quiet(),
        )


def test_unknown_containers_are_refused():
    class Pair(lfp.layers.base.Container):
        def __init__(self, a):
            super().__init__()
            self.a = a

        def children(self):
            return [("a", self.a)]

        def forward(self, x):
            return self._forward_child("a", self.a, x)

    model = lfp.Sequential(Pair(lfp.Dense(2, 3, rng=0)), lfp.ReLU(), lfp.Dense(3, 2, rng=1))
    with pytest.raises(TypeError, match="Feedback Alignment walks Sequential and Residual"):
        fa_gradients(model, np.ones((2, 2)), np.array([0, 1]), feedback_matrices(model, 0))


# --------------------------------------------------------------------------------------------
# training and resuming

DATA = load("circles", n_samples=120, dtype=np.float64, seed=1)
CONFIG = dict(
    model="toy",
    data="circles",
    data_options={"seed": 1},
    method="fa",
    epochs=3,
    batch_size=16,
    lr=0.1,
    momentum=0.9,
    dtype="float64",
    clip=3.0,
)


def test_fa_trains_the_toy_net():
    trainer = fit(
        TrainConfig(model="toy", data="blobs", method="fa", epochs=3, lr=0.1, dtype="float64"),
        **quiet(),
    )
    assert trainer.history[-1]["test_acc"] > 0.95


def _same_checkpoints(a, b):
    state_a, state_b = ckpt.load(a), ckpt.load(b)
    for state in (state_a, state_b):
        del state["trainer/sum_seconds"]
    assert sorted(state_a) == sorted(state_b)
    for key, value in state_a.items():
        other = state_b[key]
        if isinstance(value, np.ndarray):
            assert value.dtype == other.dtype and value.tobytes() == other.tobytes(), key
        else:
            assert value == other, key


def test_resume_is_bit_for_bit_with_the_matrices_in_the_checkpoint(tmp_path):
    config = TrainConfig(**CONFIG, checkpoint_every=4)
    straight = fit(config, data=DATA, out=tmp_path / "straight", **quiet())
    fit(config, data=DATA, out=tmp_path / "stopped", max_steps=5, **quiet())
    saved = ckpt.load(tmp_path / "stopped" / "last.npz")
    assert sorted(k for k in saved if k.startswith("method/")) == [
        "method/feedback/0",
        "method/feedback/2",
        "method/feedback/4",
    ]
    np.testing.assert_array_equal(saved["method/feedback/2"], straight.method.feedback["2"])
    Trainer.resume(tmp_path / "stopped", data=DATA, **quiet()).run()
    _same_checkpoints(tmp_path / "straight" / "last.npz", tmp_path / "stopped" / "last.npz")


def test_resume_uses_the_saved_matrices(tmp_path, monkeypatch):
    """The checkpoint's matrices win over freshly drawn ones (here: drawn differently)."""
    config = TrainConfig(**CONFIG)
    fit(config, data=DATA, out=tmp_path / "straight", **quiet())
    fit(config, data=DATA, out=tmp_path / "stopped", max_steps=9, **quiet())
    import lfp_ref.feedback_alignment as fa

    monkeypatch.setattr(fa, "FEEDBACK_STREAM", (1, 2))
    resumed = Trainer.resume(tmp_path / "stopped", data=DATA, **quiet())
    assert not np.array_equal(
        resumed.method.feedback["0"], feedback_matrices(resumed.model, config.seed)["0"]
    )
    resumed.run()
    _same_checkpoints(tmp_path / "straight" / "last.npz", tmp_path / "stopped" / "last.npz")


def test_a_checkpoint_without_fitting_matrices_is_refused(tmp_path):
    fit(TrainConfig(**CONFIG), data=DATA, out=tmp_path, max_steps=2, **quiet())
    trainer = Trainer(TrainConfig(**CONFIG), data=DATA, **quiet())
    state = ckpt.load(tmp_path / "last.npz")
    state["method/feedback/0"] = state["method/feedback/0"][:, :1]
    with pytest.raises(ckpt.CheckpointError, match="feedback matrix '0'"):
        ckpt.restore(state, trainer.model, trainer.optimizer, method=trainer.method)
    del state["method/feedback/0"]
    with pytest.raises(ckpt.CheckpointError, match="expected the feedback matrices"):
        ckpt.restore(state, trainer.model, trainer.optimizer, method=trainer.method)
