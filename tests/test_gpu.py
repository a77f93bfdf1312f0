"""The cuda backend on a real device (CuPy arrays, numba.cuda kernels) against the CPU path:
LFP feedback, gradients and 20 training steps of every zoo model, float64 and float32.

Needs an NVIDIA GPU, CuPy and numba-cuda: ``make test-gpu`` (installs the gpu extra). Without
CuPy or a device the module is skipped with the reason. No device run has been made yet: the
tolerances below come from measurements on the CPU (see RTOL below and docs/gpu.md).
"""

import copy
import os

import numpy as np
import pytest

pytestmark = pytest.mark.gpu

if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
    pytest.skip(
        "NUMBA_ENABLE_CUDASIM is set: the simulator is not a device (make test-gpu runs without "
        "it)",
        allow_module_level=True,
    )
cupy = pytest.importorskip(
    "cupy", reason="needs CuPy and an NVIDIA GPU: make test-gpu (pip install 'lfp_ref[gpu]')"
)
try:
    _DEVICES = cupy.cuda.runtime.getDeviceCount()
except Exception as err:  # CUDARuntimeError: no driver or no device
    pytest.skip(f"CuPy {cupy.__version__} finds no CUDA device ({err})", allow_module_level=True)
if _DEVICES < 1:
    pytest.skip(f"CuPy {cupy.__version__} finds no CUDA device", allow_module_level=True)

import lfp_ref as lfp  # noqa: E402
from lfp_ref import zoo  # noqa: E402
from lfp_ref.kernels import backend_of, get_backend  # noqa: E402
from lfp_ref.kernels.cuda import LAUNCHES  # noqa: E402
from lfp_ref.layers.base import NormalizationLayer  # noqa: E402

# With CuPy and a device present, a backend that cannot be built (numba-cuda missing or unable
# to use the device) is an error of this test, not a skip.
BK = get_backend("cuda")

STEPS = 20
BATCH = 8
# plain SGD with a small step (the momentum modes of the fused update are checked bit for bit
# under the simulator): with momentum 0.9 and lr 0.05, 20 float32 steps of the BatchNorm nets
# separate to 0.45 of the scale from a one-ulp difference (measured as below), which would say
# nothing about the kernels
LR, MOMENTUM = 0.01, 0.0

# Tolerances, relative to each array's largest entry (as tests/tolerances.assert_close), for one
# pass (feedback, gradients) and for the parameters and buffers after STEPS clipped LFP steps. A
# device rounds differently from the CPU: cuBLAS and OpenBLAS sum GEMMs in other orders, and NVVM
# fuses multiply-adds that the CPU kernels round twice. How far that carries was measured on the
# CPU by perturbing every GEMM result by one ulp (the cuda backend under the simulator; this
# file's models, batch and optimizer; docs/gpu.md):
#
#                                   one pass                    after 20 steps
#   float64, no BatchNorm           <= 5.8e-14 (small-cnn)      <= 2.4e-15
#   float64, training BatchNorm     <= 1.6e-11 (resnet-tiny)    <= 6.2e-10 (vgg-tiny)
#   float32, no BatchNorm           <= 6.3e-5  (small-cnn)      <= 8.9e-7
#   float32, training BatchNorm     <= 4.8e-3  (resnet-tiny)    <= 3.3e-5  (vgg-tiny)
#
# Training-mode BatchNorm's input VJP ``v - mean(v) - xhat mean(v xhat)`` cancels and LFP's
# stabiliser divides by outputs near 0 (small-cnn's average pools, the residual sums), so a
# rounding difference grows there. float64 without BatchNorm is float64 rounding (1e-12, as the
# CPU's own tests); the others are the measured values with a margin of 15 to 50 (the one-pass
# values vary by 5x with the perturbation drawn).
RTOL = {
    # (dtype, has training BatchNorm): (one pass, after the steps)
    (np.float64, False): (1e-12, 1e-12),
    (np.float64, True): (1e-9, 3e-8),
    (np.float32, False): (1e-3, 3e-5),
    (np.float32, True): (5e-2, 1e-3),
}

# one sample's shape and the widths of each zoo model: small enough for the CPU reference,
# large enough that the device runs many blocks (models not listed: a 1x16x16 image or 20
# features, the catalog's widths)
SIZES = {
    "toy": dict(input_shape=(2,)),
    "mlp": dict(input_shape=(20,), widths=(32, 16)),
    "vgg-small": dict(input_shape=(1, 16, 16), widths=(8, 16)),
    "resnet-small": dict(input_shape=(1, 16, 16), widths=(8, 16)),
    "snn-mlp": dict(input_shape=(20,), widths=(32,), timesteps=4),
    "snn-cnn": dict(input_shape=(1, 16, 16), timesteps=4),
}


def build(name, dtype):
    spec = dict(SIZES.get(name, {}))
    spec.setdefault("input_shape", (1, 16, 16) if zoo.CATALOG[name].image else (20,))
    options = zoo.known_options(name)
    if "bias_before_norm" in options:
        # a bias before a BatchNorm gets rounding noise as feedback (0 in exact arithmetic)
        spec.update(bias_before_norm=False, randomize_batchnorm=True)
    if "timesteps" in options:
        spec.setdefault("timesteps", 4)
    model = zoo.build(name, num_classes=3, seed=0, dtype=dtype, **spec)
    return model, spec["input_shape"]


# -- the reward and the loss, in the array namespace ----------------------------------------------
# The library's softmax_loss, cross_entropy, snn_rate_coded and snn_ce_rate call SciPy (softmax,
# log_softmax, expit) and index with host arrays, which CuPy refuses (docs/gpu.md). The model test
# passes these, the same formulas written with the arrays' namespace, on both backends, so that
# it checks the kernels whatever the state of those functions;
# test_the_library_rewards_and_losses_take_device_arrays checks the library's own.


def _softmax(z, axis):
    xp = backend_of(z).xp
    e = xp.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _sigmoid(v):
    xp = backend_of(v).xp
    return 1 / (1 + xp.exp(-v))


def softmax_loss(logits, y):
    """``r = z * (Y - softmax(z))``, as lfp_ref.rewards.softmax_loss."""
    xp = backend_of(logits).xp
    onehot = xp.zeros_like(logits)
    onehot[xp.arange(logits.shape[0]), xp.asarray(y)] = 1
    return logits * (onehot - _softmax(logits, 1))


def cross_entropy(logits, y, reduction="mean"):
    """lfp_ref.losses.cross_entropy with reduction "mean"."""
    xp = backend_of(logits).xp
    batch = logits.shape[0]
    rows, labels = xp.arange(batch), xp.asarray(y)
    grad = _softmax(logits, 1)
    loss = float(-xp.log(grad[rows, labels]).astype(xp.float64).sum()) / batch
    grad[rows, labels] -= 1
    grad /= batch
    return loss, grad


def snn_rate_coded(spikes, y):
    """lfp_ref.rewards.snn_rate_coded()."""
    xp = backend_of(spikes).xp
    steps, batch, classes = spikes.shape
    count = spikes.sum(axis=0)  # (B, C)
    half = steps // 2
    pos = 1 - _sigmoid(count - half)
    neg = 1 - _sigmoid((steps - count) - half)
    label = xp.zeros((batch, classes), dtype=bool)
    label[xp.arange(batch), xp.asarray(y)] = True
    return xp.where(label, pos, -spikes * neg).astype(spikes.dtype)


def snn_ce_rate(spikes, y, reduction="mean"):
    """lfp_ref.losses.snn_ce_rate with reduction "mean"."""
    xp = backend_of(spikes).xp
    steps, batch, _ = spikes.shape
    rows, labels = xp.arange(batch), xp.asarray(y)
    grad = _softmax(spikes, 2)
    loss = float(-xp.log(grad[:, rows, labels]).astype(xp.float64).sum()) / batch / steps
    grad[:, rows, labels] -= 1
    grad /= steps * batch
    return loss, grad


def device_state(model):
    """Parameters and buffers by state-dict name, as host copies (``Layer.state_dict`` converts
    with ``np.array``, which CuPy refuses)."""
    state = {}
    for prefix, layer in model.named_layers():
        for name, value in {**layer.own_parameters(), **layer.own_buffers()}.items():
            state[f"{prefix}.{name}" if prefix else name] = backend_of(value).to_numpy(value)
    return state


def has_training_batchnorm(model):
    return any(
        isinstance(layer, NormalizationLayer) and layer.training
        for _, layer in model.named_layers()
    )


def is_spiking(model):
    snn = getattr(lfp, "snn", None)
    return snn is not None and isinstance(model, snn.SpikingSequential)


def assert_close(actual, expected, rtol, what):
    assert isinstance(actual, cupy.ndarray), (what, type(actual))
    host = cupy.asnumpy(actual)
    assert host.dtype == expected.dtype and host.shape == expected.shape, what
    scale = max(np.abs(expected).max(initial=0.0), 1e-300)
    np.testing.assert_allclose(host, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


def test_the_backend_runs_on_cupy():
    assert BK.name == "cuda" and BK.xp is cupy and BK.array_type is cupy.ndarray
    model, _ = build("vgg-tiny", np.float64)
    before = model.state_dict()
    model.to("cuda")
    assert isinstance(model[0].weight, cupy.ndarray) and backend_of(model[0].weight) is BK
    model.to("cpu")
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", zoo.known_models())
def test_every_zoo_model_on_the_device_gives_the_cpu_path(name, dtype):
    cpu, input_shape = build(name, dtype)
    gpu = copy.deepcopy(cpu).to("cuda")
    rtol_pass, rtol_steps = RTOL[(np.dtype(dtype).type, has_training_batchnorm(cpu))]
    spiking = is_spiking(cpu)
    reward = {"reward": snn_rate_coded if spiking else softmax_loss}
    loss = {"loss": snn_ce_rate if spiking else cross_entropy}
    rng = np.random.default_rng(1)
    xs = [rng.normal(size=(BATCH, *input_shape)).astype(dtype) for _ in range(STEPS + 1)]
    y = np.arange(BATCH) % 3
    LAUNCHES.clear()

    fb_cpu = lfp.feedback(cpu, xs[0], y, **reward)
    fb = lfp.feedback(gpu, cupy.asarray(xs[0]), y, **reward)
    assert_close(fb.logits, fb_cpu.logits, rtol_pass, "logits")
    assert_close(fb.input_reward, fb_cpu.input_reward, rtol_pass, "the reward at the input")
    for key, value in fb_cpu.params.items():
        assert_close(fb.params[key], value, rtol_pass, f"feedback {key}")
    grads_cpu = lfp.gradients(cpu, xs[0], y, **loss)
    grads = lfp.gradients(gpu, cupy.asarray(xs[0]), y, **loss)
    assert grads.loss == pytest.approx(grads_cpu.loss, rel=rtol_pass)
    for key, value in grads_cpu.params.items():
        assert_close(grads.params[key], value, rtol_pass, f"gradient {key}")

    opt_cpu = lfp.optim.SGD(cpu, lr=LR, momentum=MOMENTUM)
    opt = lfp.optim.SGD(gpu, lr=LR, momentum=MOMENTUM)
    clip = 0.5 * np.sqrt(sum(fb_cpu.squared_norms.values()))  # clipping engages
    for x in xs[1:]:
        lfp.lfp_step(cpu, opt_cpu, x, y, clip_norm=clip, **reward)
        lfp.lfp_step(gpu, opt, cupy.asarray(x), y, clip_norm=clip, **reward)
    state_cpu, state = device_state(cpu), device_state(gpu)
    for key, value in state_cpu.items():
        np.testing.assert_allclose(
            state[key],
            value,
            rtol=rtol_steps,
            atol=rtol_steps * max(np.abs(value).max(initial=0.0), 1e-300),
            err_msg=f"after {STEPS} steps: {key}",
        )
    for _, value in gpu.named_parameters():
        assert isinstance(value, cupy.ndarray) and bool(cupy.isfinite(value).all())
    assert LAUNCHES["sgd_update"] >= STEPS and LAUNCHES["sum_of_squares_partials"] >= STEPS


def test_the_library_rewards_and_losses_take_device_arrays():
    # the softmax and logistic functions come from Backend.special (cupyx.scipy.special here)
    model, input_shape = build("mlp", np.float64)
    model.to("cuda")
    x = cupy.asarray(np.random.default_rng(0).normal(size=(BATCH, *input_shape)))
    y = np.arange(BATCH) % 3
    lfp.feedback(model, x, y)  # reward="softmax_loss"
    lfp.gradients(model, x, y)  # loss="cross_entropy"
