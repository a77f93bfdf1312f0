"""The whole model path through the cuda backend under the Numba CUDA simulator: every zoo model
moved with ``model.to("cuda")`` gives the CPU path's LFP feedback, gradients and training steps
(SGD with momentum, clipped), the launch counter showing that the cuda kernels ran; the device
round trip, the error for an input on the wrong device, and the install hint without CuPy.

Bit for bit where the two paths do the same arithmetic (the simulator's kernels compute in NumPy
scalars in the CPU kernels' order, and GEMMs are NumPy's on both): feedback and gradients. The
float64 sums of squares (the finiteness check and the clipping norm) add in another order, so
the clipped steps agree to float64 rounding: RTOL_STEPS.

Run with ``make test-cudasim``; skipped without ``NUMBA_ENABLE_CUDASIM=1``.
"""

import copy
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.cudasim

if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") in ("", "0"):
    pytest.skip(
        "needs the Numba CUDA simulator: run `make test-cudasim` (NUMBA_ENABLE_CUDASIM=1 set "
        "before numba is imported)",
        allow_module_level=True,
    )
pytest.importorskip("numba.cuda", reason="needs numba-cuda (pip install 'lfp_ref[cudasim]')")

import lfp_ref as lfp  # noqa: E402
from lfp_ref import zoo  # noqa: E402
from lfp_ref.kernels import CPU, backend_of, get_backend  # noqa: E402
from lfp_ref.kernels.cuda import LAUNCHES, SimulatedDeviceArray, simulator_enabled  # noqa: E402
from lfp_ref.layers import (  # noqa: E402
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dense,
    Dropout,
    MaxPool2d,
)

if not simulator_enabled():
    pytest.skip(
        "NUMBA_ENABLE_CUDASIM is set but numba was imported before it was",
        allow_module_level=True,
    )

ROOT = Path(__file__).resolve().parents[1]
BK = get_backend("cuda")

# Training steps: equal to float64 rounding. Observed: bit-identical for all but resnet-small
# (2e-16 of the scale: the clipping factor's sum of squares rounds differently).
RTOL_STEPS = 1e-12
STEPS = 3
BATCH = 3  # with 8 threads per block, most arrays end in a partial block

# The smallest inputs and widths each zoo model takes (a model missing here gets the defaults
# below: a flat (5,) input or a 1x16x16 image, its catalog widths).
SMALL = {
    "toy": dict(input_shape=(2,)),
    "mlp": dict(input_shape=(5,), widths=(4, 3)),
    "lenet": dict(input_shape=(1, 16, 16)),
    "lenet-5": dict(input_shape=(1, 16, 16)),
    "vgg-small": dict(input_shape=(1, 4, 4), widths=(2, 3)),
    "resnet-small": dict(input_shape=(1, 4, 4), widths=(2, 3)),
    "small-cnn": dict(input_shape=(1, 4, 4)),
    "lenet-tiny": dict(input_shape=(1, 12, 12)),
    "vgg-tiny": dict(input_shape=(2, 4, 4)),
    "resnet-tiny": dict(input_shape=(1, 4, 4)),
    "snn-mlp": dict(input_shape=(5,), widths=(6,), timesteps=3),
    "snn-cnn": dict(input_shape=(1, 16, 16), timesteps=2),
}


def small_model(name, dtype=np.float64):
    spec = dict(SMALL.get(name, {}))
    if "input_shape" not in spec:
        spec["input_shape"] = (1, 16, 16) if zoo.CATALOG[name].image else (5,)
    options = zoo.known_options(name)
    if "bias_before_norm" in options:
        # a bias before a BatchNorm has feedback 0 in exact arithmetic: what it gets is rounding
        # noise, which no two summation orders share; and gamma, beta, the running statistics
        # off 1, 0, 0, 1, so that they matter
        spec.update(bias_before_norm=False, randomize_batchnorm=True)
    return zoo.build(name, num_classes=3, seed=0, dtype=dtype, **spec), spec["input_shape"]


def is_spiking(model):
    snn = getattr(lfp, "snn", None)
    return snn is not None and isinstance(model, snn.SpikingSequential)


# the kernels each layer type must launch on the cuda backend (in feedback, backprop or a step)
KERNELS_OF = {
    Dense: set(),
    Conv2d: {"im2col_samples", "col2im_samples"},
    MaxPool2d: {"maxpool2d_forward", "route_to_argmax"},
    AvgPool2d: {"avgpool2d_forward", "avgpool2d_vjp"},
    BatchNorm1d: {"channel_stats", "normalize_affine", "channel_vjp_sums", "vjp_input_train"},
    BatchNorm2d: {"channel_stats", "normalize_affine", "channel_vjp_sums", "vjp_input_train"},
    Dropout: {"multiply"},
}
ALWAYS = {"multiply_abs", "sum_of_squares_partials", "sgd_update"}


def expected_kernels(model):
    # LIF layers stabilise inside their own time loop; every other model divides by stab(z)
    names = set(ALWAYS) if is_spiking(model) else {*ALWAYS, "stabilized_ratio"}
    for _, layer in model.named_layers():
        for layer_type, kernels in KERNELS_OF.items():
            if isinstance(layer, layer_type):
                names |= kernels
        if isinstance(layer, (Dense, Conv2d)) and layer.bias is not None:
            names.add("add_bias_rows" if isinstance(layer, Dense) else "add_channel_bias")
        if type(layer).__name__ == "LIF":
            names |= {"lif_forward", "lif_feedback", "lif_surrogate_backward"}
    return names


def relative_error(actual, expected):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if expected.size == 0:
        return 0.0
    return float(np.max(np.abs(actual - expected)) / max(np.abs(expected).max(), 1e-300))


def assert_same(actual, expected, what):
    """Bit for bit, on the device, of the expected dtype."""
    assert type(actual) is SimulatedDeviceArray, (what, type(actual))
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, what
    host = BK.to_numpy(actual)
    if not np.array_equal(host, expected, equal_nan=True):
        pytest.fail(f"{what}: not bit-identical, max error {relative_error(host, expected):.2e}")


def assert_close_steps(actual, expected, what):
    host = BK.to_numpy(actual)
    assert host.dtype == expected.dtype and host.shape == expected.shape, what
    scale = max(np.abs(expected).max(initial=0.0), 1e-300)
    np.testing.assert_allclose(
        host, expected, rtol=RTOL_STEPS, atol=RTOL_STEPS * scale, err_msg=what
    )


@pytest.mark.parametrize("name", zoo.known_models())
def test_every_zoo_model_gives_the_cpu_path_on_the_cuda_backend(name):
    cpu, input_shape = small_model(name)
    gpu = copy.deepcopy(cpu).to("cuda")  # the same weights, and Dropout Generators in one state
    spiking = is_spiking(cpu)
    reward = {"reward": "snn_rate_coded"} if spiking else {}
    loss = {"loss": "snn_ce_rate"} if spiking else {}
    rng = np.random.default_rng(1)
    xs = [rng.normal(size=(BATCH, *input_shape)) for _ in range(STEPS + 1)]
    y = np.arange(BATCH) % 3

    LAUNCHES.clear()
    fb_cpu = lfp.feedback(cpu, xs[0], y, **reward)
    grads_cpu = lfp.gradients(cpu, xs[0], y, **loss)
    assert not LAUNCHES, "the CPU path launched cuda kernels"

    fb = lfp.feedback(gpu, BK.contiguous(xs[0]), y, **reward)
    assert_same(fb.logits, fb_cpu.logits, "logits")
    assert_same(fb.input_reward, fb_cpu.input_reward, "the reward at the input")
    assert list(fb.params) == list(fb_cpu.params)
    for key, value in fb_cpu.params.items():
        assert_same(fb.params[key], value, f"feedback {key}")
        assert fb.squared_norms[key] == pytest.approx(fb_cpu.squared_norms[key], rel=RTOL_STEPS)
    grads = lfp.gradients(gpu, BK.contiguous(xs[0]), y, **loss)
    assert grads.loss == pytest.approx(grads_cpu.loss, rel=RTOL_STEPS)
    assert_same(grads.input_grad, grads_cpu.input_grad, "the gradient at the input")
    for key, value in grads_cpu.params.items():
        assert_same(grads.params[key], value, f"gradient {key}")

    # training: SGD with momentum, clipped to a global norm that the feedback exceeds
    opt_cpu = lfp.optim.SGD(cpu, lr=0.05, momentum=0.9)
    opt = lfp.optim.SGD(gpu, lr=0.05, momentum=0.9)
    clip = 0.5 * np.sqrt(sum(fb_cpu.squared_norms.values()))
    for x in xs[1:]:
        lfp.lfp_step(cpu, opt_cpu, x, y, clip_norm=clip, **reward)
        lfp.lfp_step(gpu, opt, BK.contiguous(x), y, clip_norm=clip, **reward)
    state_cpu, state = cpu.state_dict(), gpu.state_dict()
    assert list(state) == list(state_cpu)
    for key, value in state_cpu.items():
        assert_close_steps(state[key], value, f"after {STEPS} steps: {key}")
    for key, entries in opt_cpu.state.items():
        buf = opt.state[key]["momentum_buffer"]
        assert backend_of(buf) is BK
        assert_close_steps(buf, entries["momentum_buffer"], f"momentum buffer {key}")
    for _, value in gpu.named_parameters():
        assert type(value) is SimulatedDeviceArray

    missing = sorted(expected_kernels(cpu) - set(LAUNCHES))
    assert not missing, f"cuda kernels that never ran: {missing}"


def test_to_cuda_and_back_is_a_round_trip():
    model, _ = small_model("vgg-tiny")
    model.train()
    before = model.state_dict()
    assert model.to("cuda") is model
    for prefix, layer in model.named_layers():
        for name, value in {**layer.own_parameters(), **layer.own_buffers()}.items():
            assert backend_of(value) is BK, f"{prefix}.{name}"
    state = model.state_dict()  # host copies of the device arrays
    for key, value in before.items():
        np.testing.assert_array_equal(state[key], value)
        assert state[key].dtype == value.dtype and state[key].shape == value.shape
    tracked = model[1].num_batches_tracked
    assert type(tracked) is SimulatedDeviceArray
    assert tracked.shape == () and tracked.dtype == np.int64
    model.to(np.float32)  # a dtype cast stays on the device
    assert backend_of(model[0].weight) is BK and model.dtype == np.float32
    assert model[1].num_batches_tracked.dtype == np.int64
    model.to(device="cpu", dtype=np.float64)
    for prefix, layer in model.named_layers():
        for name, value in {**layer.own_parameters(), **layer.own_buffers()}.items():
            assert type(value) is np.ndarray and backend_of(value) is CPU, f"{prefix}.{name}"
    after = model.state_dict()
    for key, value in before.items():
        if value.dtype == np.float64:  # through float32 and back
            np.testing.assert_array_equal(after[key], value.astype(np.float32).astype(np.float64))
        else:
            np.testing.assert_array_equal(after[key], value)


def test_to_rejects_unknown_devices_and_dtypes():
    model, _ = small_model("toy")
    with pytest.raises(ValueError, match="unknown device 'tpu'; known: cpu, cuda"):
        model.to(device="tpu")
    with pytest.raises(TypeError):
        model.to("tpu")  # neither a device nor a dtype
    with pytest.raises(ValueError, match="give the device once"):
        model.to("cuda", device="cpu")


def test_an_input_on_the_wrong_device_names_both_devices():
    model, input_shape = small_model("small-cnn")
    model.to("cuda")
    x = np.random.default_rng(0).normal(size=(2, *input_shape))
    with pytest.raises(ValueError, match=r"arrays on two devices: (cpu and cuda|cuda and cpu)"):
        lfp.feedback(model, x, np.array([0, 1]))
    model.to("cpu")
    with pytest.raises(ValueError, match=r"arrays on two devices: (cpu and cuda|cuda and cpu)"):
        lfp.feedback(model, BK.contiguous(x), np.array([0, 1]))


def test_dropout_draws_the_same_masks_on_both_backends():
    # the masks come from the layer's numpy Generator on the host, then move to the device
    cpu = Dropout(0.5, rng=7)
    gpu = Dropout(0.5, rng=7)
    x = np.random.default_rng(0).normal(size=(3, 11))
    for _ in range(2):
        y_cpu = cpu.forward(x)
        y = gpu.forward(BK.contiguous(x))
        assert type(y) is SimulatedDeviceArray
        np.testing.assert_array_equal(BK.to_numpy(y), y_cpu)


def test_without_the_simulator_and_without_cupy_cuda_says_what_to_install():
    # a fresh process without NUMBA_ENABLE_CUDASIM and with CuPy hidden
    script = textwrap.dedent(
        """
        import sys
        sys.modules["cupy"] = None  # import cupy raises ImportError
        import lfp_ref as lfp
        from lfp_ref.kernels.cuda import CudaUnavailableError
        model = lfp.zoo.build("toy", num_classes=2, input_shape=(2,))
        try:
            model.to("cuda")
        except CudaUnavailableError as err:
            print(err)
        else:
            print("NO ERROR")
        print(type(model[0].weight).__name__)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    message, kind = result.stdout.strip().rsplit("\n", 1)
    assert "CuPy" in message and "missing" in message
    assert "pip install 'lfp_ref[gpu]'" in message and "NUMBA_ENABLE_CUDASIM=1" in message
    assert kind == "ndarray"  # the failed move left the model on the CPU
