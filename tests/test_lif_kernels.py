"""The LIF time-loop kernels (lfp_ref.kernels.cpu.lif) against the literal oracles in
tests/oracle/snn.py: the forward bit for bit, the LFP feedback and the surrogate BPTT to rounding,
finite differences of a smoothed spike, the serial and parallel builds, the errors, and (with the
crosscheck extra) snntorch 0.9.4 itself."""

import numpy as np
import pytest

from lfp_ref.kernels.cpu import _jit
from lfp_ref.kernels.cpu import lif as K
from tests.oracle import snn as oracle
from tests.oracle.dense import finite_difference
from tests.tolerances import assert_close

# Tolerances. float64 kernel vs float64 oracle: the same operations in (almost) the same order;
# 1e-12 leaves room for a reordered product (observed: feedback bit-exact, BPTT <= 1e-16 of scale).
RTOL64_LIF = 1e-12
# float32 kernels vs the float64 oracle run on the same float32 membranes: a few float32
# roundings per step, contracted by beta |U_{t-1}| / D_t <= beta through the steps (observed
# <= 2.4e-7 of the scale up to T = 25; per entry larger where r_t + M_t cancels, hence the
# scale-relative comparison of assert_close).
RTOL32_LIF = 2e-6
# Finite differences of the smoothed spike: central differences, error ~ h^2 |f'''| + 1e-16 / h.
RTOL_FD = 1e-7
FD_STEP = 1e-6

DTYPES = [np.float64, np.float32]
DTYPE_IDS = ["f64", "f32"]
RESETS = ["subtract", "zero"]
# (beta, threshold): the spec's default, a fast leak with a low threshold, a perfect integrator,
# no memory at all
NEURONS = [(0.9, 1.0), (0.5, 0.3), (1.0, 2.5), (0.0, 0.7)]
STEPS = [1, 2, 7]
# the neurons per step: flat, and (B, C, H, W) flattened by the wrappers
LAYOUTS = [(257,), (3, 4, 5, 6)]


def _rtol(dtype):
    return RTOL64_LIF if np.dtype(dtype) == np.float64 else RTOL32_LIF


def _current(rng, shape, threshold, dtype):
    # mean 0.6 threshold, spread 0.8 threshold: 20-60% of the (t, neuron) entries spike for
    # every NEURONS entry and T in STEPS (asserted where it is used)
    return (threshold * (0.6 + 0.8 * rng.normal(size=shape))).astype(dtype)


def _forward(current, beta, threshold, reset="subtract"):
    membrane, spikes = np.empty_like(current), np.empty_like(current)
    return K.lif_forward(current, beta, threshold, reset, membrane, spikes)


def _feedback(reward, membrane, beta, threshold, eps):
    rho, handed = np.empty_like(reward), np.empty_like(reward)
    K.lif_feedback(reward, membrane, beta, threshold, eps, rho, handed)
    return rho, handed


def _backward(grad_spikes, membrane, beta, threshold, alpha, surrogate, reset):
    grad_current = np.empty_like(grad_spikes)
    return K.lif_surrogate_backward(
        grad_spikes, membrane, beta, threshold, alpha, grad_current, surrogate, reset
    )


def _neuron_id(n):
    return f"beta{n[0]}-thr{n[1]}"


def _shape_id(shape):
    return "x".join(map(str, shape))


SHAPES = [(steps, *layout) for steps in STEPS for layout in LAYOUTS]


# -- forward -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("neuron", NEURONS, ids=_neuron_id)
@pytest.mark.parametrize("shape", SHAPES, ids=_shape_id)
def test_forward_matches_oracle_bit_for_bit(rng, shape, neuron, reset, dtype):
    beta, threshold = neuron
    current = _current(rng, shape, threshold, dtype)
    membrane, spikes = _forward(current, beta, threshold, reset)
    want_membrane, want_spikes = oracle.lif_forward(current, beta, threshold, reset, dtype)
    assert membrane.dtype == spikes.dtype == dtype
    np.testing.assert_array_equal(membrane, want_membrane, strict=True)
    np.testing.assert_array_equal(spikes, want_spikes, strict=True)
    # the case exercises the resets (and, from T = 2 on, steps after a reset)
    assert 0.2 <= spikes.mean() <= 0.6, spikes.mean()
    if shape[0] > 1:
        assert spikes[:-1].any()


def test_forward_hand_worked_example():
    # beta 0.9, threshold 1: a spike at t = 0 resets step 1. "subtract": U_1 = 0.9 * 1.5 + 0.3 - 1;
    # "zero" (snntorch's code): the previous membrane is zeroed before integrating, U_1 = I_1
    # (its docstring's formula would zero the new membrane, U_1 = 0)
    current = np.array([[1.5], [0.3], [0.2], [2.0], [0.1]])
    subtract, spikes_subtract = _forward(current, 0.9, 1.0, "subtract")
    zero, spikes_zero = _forward(current, 0.9, 1.0, "zero")
    assert subtract[1, 0] == 0.9 * 1.5 + 0.3 - 1.0
    assert zero[1, 0] == 0.3
    assert zero[2, 0] == 0.9 * 0.3 + 0.2 and zero[4, 0] == 0.1  # the spike at t = 3 resets t = 4
    np.testing.assert_array_equal(spikes_zero[:, 0], [1, 0, 0, 1, 0])
    np.testing.assert_array_equal(spikes_subtract[:, 0], [1, 0, 0, 1, 1])


def test_forward_spike_is_strict_and_reset_uses_the_previous_membrane():
    # U_0 = threshold exactly: no spike (H(0) = 0) and no reset at t = 1
    current = np.array([[1.0, 1.0 + 2**-40], [0.0, 0.0]])
    membrane, spikes = _forward(current, 0.5, 1.0)
    np.testing.assert_array_equal(spikes, [[0, 1], [0, 0]])
    np.testing.assert_array_equal(membrane[1], [0.5, 0.5 * (1.0 + 2**-40) - 1.0])


@pytest.mark.parametrize("shape", [(0, 5), (3, 0), (2, 0, 4)], ids=_shape_id)
def test_empty_arrays_are_accepted(shape):
    current = np.ones(shape)
    membrane, spikes = _forward(current, 0.9, 1.0)
    assert membrane.shape == spikes.shape == shape
    rho = np.empty(shape)
    assert K.lif_feedback(current, membrane, 0.9, 1.0, 1e-6, rho).shape == shape
    assert _backward(current, membrane, 0.9, 1.0, 2.0, "atan", "subtract").shape == shape


# -- LFP feedback --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("eps", [1e-6, 1e-2], ids=["eps1e-6", "eps1e-2"])
@pytest.mark.parametrize("neuron", NEURONS, ids=_neuron_id)
@pytest.mark.parametrize("shape", SHAPES, ids=_shape_id)
def test_feedback_matches_oracle(rng, shape, neuron, eps, dtype):
    beta, threshold = neuron
    membrane, _ = _forward(_current(rng, shape, threshold, dtype), beta, threshold)
    reward = rng.normal(size=shape).astype(dtype)
    rho, handed = _feedback(reward, membrane, beta, threshold, eps)
    want_rho, want_handed = oracle.lif_feedback(reward, membrane, beta, threshold, eps)
    assert rho.dtype == handed.dtype == dtype
    assert_close(rho, want_rho, rtol=_rtol(dtype))
    assert_close(handed, want_handed, rtol=_rtol(dtype))
    np.testing.assert_array_equal(handed[0], 0)  # beta U_{-1} rho_0


def test_feedback_without_handed_gives_the_same_rho(rng):
    membrane, _ = _forward(_current(rng, (7, 40), 1.0, np.float64), 0.9, 1.0)
    reward = rng.normal(size=(7, 40))
    rho, _ = _feedback(reward, membrane, 0.9, 1.0, 1e-6)
    alone = K.lif_feedback(reward, membrane, 0.9, 1.0, 1e-6, np.empty_like(reward))
    np.testing.assert_array_equal(alone, rho)


def test_feedback_first_step_divides_by_the_current(rng):
    # T = 1: D_0 = |I_0|, so rho = r / (|I| + eps) and nothing is handed down
    current = rng.normal(size=(1, 50))
    membrane, _ = _forward(current, 0.9, 1.0)
    reward = rng.normal(size=(1, 50))
    rho, handed = _feedback(reward, membrane, 0.9, 1.0, 1e-3)
    np.testing.assert_array_equal(rho, reward / (np.abs(current) + 1e-3))
    np.testing.assert_array_equal(handed, 0)


def test_feedback_hands_the_reward_down_through_the_steps(rng):
    # the recursion written as identities between the outputs: rho_t stab(D_t) = r_t + M_t with
    # M_t = handed[t + 1], and handed[t] = beta U_{t-1} rho_t
    beta, threshold, eps = 0.8, 1.0, 1e-2
    membrane, _ = _forward(_current(rng, (7, 60), threshold, np.float64), beta, threshold)
    reward = rng.normal(size=(7, 60))
    rho, handed = _feedback(reward, membrane, beta, threshold, eps)
    previous = np.concatenate([np.zeros((1, 60)), membrane[:-1]])
    fired = previous > threshold
    d = np.abs(previous) + np.abs(membrane + fired * threshold - previous)
    assert_close(rho * (d + eps), reward + np.concatenate([handed[1:], np.zeros((1, 60))]))
    assert_close(handed, beta * previous * rho)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_feedback_is_linear_in_the_reward(rng, dtype):
    membrane, _ = _forward(_current(rng, (7, 80), 1.0, dtype), 0.9, 1.0)
    r1, r2 = (rng.normal(size=(7, 80)).astype(dtype) for _ in range(2))
    a, b = dtype(1.5), dtype(-0.25)
    rho1, handed1 = _feedback(r1, membrane, 0.9, 1.0, 1e-6)
    rho2, handed2 = _feedback(r2, membrane, 0.9, 1.0, 1e-6)
    rho, handed = _feedback(a * r1 + b * r2, membrane, 0.9, 1.0, 1e-6)
    assert_close(rho, a * rho1.astype(np.float64) + b * rho2, rtol=_rtol(dtype))
    assert_close(handed, a * handed1.astype(np.float64) + b * handed2, rtol=_rtol(dtype))


def test_feedback_rejects_the_zero_reset(rng):
    reward = rng.normal(size=(3, 4))
    membrane, _ = _forward(reward, 0.9, 1.0, "zero")
    with pytest.raises(ValueError, match=r"reset='subtract' only.*got reset='zero'"):
        K.lif_feedback(reward, membrane, 0.9, 1.0, 1e-6, np.empty_like(reward), reset="zero")


# -- surrogate BPTT ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("neuron", NEURONS, ids=_neuron_id)
@pytest.mark.parametrize("shape", SHAPES, ids=_shape_id)
def test_surrogate_backward_matches_oracle(rng, shape, neuron, reset, dtype):
    beta, threshold = neuron
    membrane, _ = _forward(_current(rng, shape, threshold, dtype), beta, threshold, reset)
    grad_spikes = rng.normal(size=shape).astype(dtype)
    for alpha in (2.0, 0.7):
        grad = _backward(grad_spikes, membrane, beta, threshold, alpha, "atan", reset)
        want = oracle.lif_surrogate_backward(
            grad_spikes, membrane, beta, threshold, alpha, reset, "atan"
        )
        assert grad.dtype == dtype
        assert_close(grad, want, rtol=_rtol(dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reset", RESETS)
def test_heaviside_surrogate_gives_exact_zeros(rng, reset, dtype):
    membrane, _ = _forward(_current(rng, (7, 100), 1.0, dtype), 0.9, 1.0, reset)
    grad_spikes = rng.normal(size=(7, 100)).astype(dtype)
    grad = _backward(grad_spikes, membrane, 0.9, 1.0, 2.0, "heaviside", reset)
    want = oracle.lif_surrogate_backward(grad_spikes, membrane, 0.9, 1.0, 2.0, reset, "heaviside")
    np.testing.assert_array_equal(want, 0)
    np.testing.assert_array_equal(grad, 0)
    assert not np.signbit(grad).any()  # +0.0, not -0.0


def test_zero_reset_cuts_the_path_through_the_membrane():
    # U_0 = 1.5 > threshold: the zero reset at t = 1 multiplies U_0 by 0, so the spike at t = 1
    # sends nothing back to I_0; the subtracted reset is a constant and keeps the path
    current = np.array([[1.5], [0.2]])
    grad_spikes = np.array([[0.0], [1.0]])
    for reset, carried in (("zero", False), ("subtract", True)):
        membrane, _ = _forward(current, 0.9, 1.0, reset)
        grad = _backward(grad_spikes, membrane, 0.9, 1.0, 2.0, "atan", reset)
        slope_1 = oracle.atan_surrogate_derivative(membrane[1, 0] - 1.0, 2.0)
        assert grad[1, 0] == pytest.approx(slope_1, rel=RTOL64_LIF)
        assert grad[0, 0] == (pytest.approx(0.9 * grad[1, 0], rel=RTOL64_LIF) if carried else 0)


@pytest.mark.parametrize("alpha", [2.0, 0.5])
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("neuron", NEURONS[:3], ids=_neuron_id)
def test_surrogate_backward_matches_finite_differences_of_a_smooth_spike(rng, neuron, reset, alpha):
    # S = 1/2 + arctan(pi/2 alpha (U - threshold)) / pi has the atan surrogate as its derivative;
    # with the reset still the hard H of the previous membrane (piecewise constant in I, so
    # finite differences see it as detached while no membrane is near the threshold)
    beta, threshold = neuron
    shape = (7, 5)
    current = _current(rng, shape, threshold, np.float64)
    weights = rng.normal(size=shape)
    membrane, _ = oracle.lif_forward_smooth(current, beta, threshold, alpha, reset)
    # a step of h moves each membrane by at most T h: no reset may flip
    assert np.abs(membrane - threshold).min() > 10 * FD_STEP * shape[0]
    assert (membrane[:-1] > threshold).any()  # some resets happen

    def functional():
        _, smooth = oracle.lif_forward_smooth(current, beta, threshold, alpha, reset)
        return float(np.sum(weights * smooth))

    want = finite_difference(functional, current, h=FD_STEP)
    kernel_membrane, _ = _forward(current, beta, threshold, reset)
    np.testing.assert_array_equal(kernel_membrane, membrane)
    grad = _backward(weights, kernel_membrane, beta, threshold, alpha, "atan", reset)
    assert_close(grad, want, rtol=RTOL_FD)


# -- serial and parallel builds ------------------------------------------------------------------


def _run_builds(build, block, current, reward, beta, threshold):
    """Every kernel and mode of one build (``K._lif_forward.serial`` or ``.parallel``) with
    neuron blocks of ``block``; returns the outputs by name."""
    dtype = current.dtype.type
    out = {}
    for reset, code in K.RESETS.items():
        membrane, spikes = np.empty_like(current), np.empty_like(current)
        getattr(K._lif_forward, build)(current, beta, threshold, code, block, membrane, spikes)
        out["membrane", reset], out["spikes", reset] = membrane, spikes
        for surrogate, s_code in K.SURROGATES.items():
            grad = np.empty_like(current)
            getattr(K._lif_surrogate_backward, build)(
                reward,
                membrane,
                beta,
                threshold,
                dtype(1.0),
                dtype(np.pi),
                code,
                s_code,
                block,
                grad,
            )
            out["grad", reset, surrogate] = grad
    for write_handed in (True, False):
        rho, handed = np.empty_like(current), np.full_like(current, np.nan)
        getattr(K._lif_feedback, build)(
            reward,
            out["membrane", "subtract"],
            beta,
            threshold,
            dtype(1e-6),
            block,
            rho,
            handed,
            write_handed,
        )
        out["rho", write_handed] = rho
        if write_handed:
            out["handed"] = handed
        else:
            assert np.isnan(handed).all()  # not written
    return out


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_serial_and_parallel_builds_agree(rng, dtype):
    shape = (7, 1001)  # 15 blocks of 64 neurons and a ragged one of 41
    current = _current(rng, shape, 1.0, dtype)
    reward = rng.normal(size=shape).astype(dtype)
    serial = _run_builds("serial", 64, current, reward, dtype(0.9), dtype(1.0))
    parallel = _run_builds("parallel", 64, current, reward, dtype(0.9), dtype(1.0))
    assert K._lif_forward.parallel is not K._lif_forward.serial
    assert K._lif_feedback.pick(_jit.PARALLEL_MIN_SIZE) is K._lif_feedback.parallel
    assert K._lif_feedback.pick(_jit.PARALLEL_MIN_SIZE - 1) is K._lif_feedback.serial
    assert len(serial) == len(parallel) == 11
    for key, value in serial.items():
        np.testing.assert_array_equal(parallel[key], value, err_msg=str(key), strict=True)
    np.testing.assert_array_equal(serial["rho", True], serial["rho", False])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_results_do_not_depend_on_the_neuron_block(rng, dtype):
    # block 1 is one neuron per iteration (the CUDA layout); every neuron's arithmetic is the same
    shape = (7, 300)
    current = _current(rng, shape, 1.0, dtype)
    reward = rng.normal(size=shape).astype(dtype)
    want = _run_builds("serial", 1, current, reward, dtype(0.9), dtype(1.0))
    for block in (7, 300, K.NEURON_BLOCK):
        got = _run_builds("parallel", block, current, reward, dtype(0.9), dtype(1.0))
        for key, value in want.items():
            np.testing.assert_array_equal(got[key], value, err_msg=f"{key} block {block}")


# -- input validation ----------------------------------------------------------------------------


def _arrays(dtype=np.float64, shape=(3, 4)):
    return [np.zeros(shape, dtype) for _ in range(4)]


def _call(which, first, second, out, extra_out=None, **scalars):
    """Each wrapper with two inputs and one or two outputs in the same positions."""
    if which == "forward":
        extra_out = np.empty_like(out) if extra_out is None else extra_out
        args = dict(beta=0.9, threshold=1.0, reset="subtract") | scalars
        return K.lif_forward(first, args["beta"], args["threshold"], args["reset"], out, extra_out)
    if which == "feedback":
        args = dict(beta=0.9, threshold=1.0, eps=1e-6) | scalars
        return K.lif_feedback(
            first, second, args["beta"], args["threshold"], args["eps"], out, extra_out
        )
    args = dict(beta=0.9, threshold=1.0, alpha=2.0, surrogate="atan", reset="subtract") | scalars
    return K.lif_surrogate_backward(
        first,
        second,
        args["beta"],
        args["threshold"],
        args["alpha"],
        out,
        args["surrogate"],
        args["reset"],
    )


WRAPPERS = ["forward", "feedback", "surrogate"]
FIRST = {"forward": "current", "feedback": "reward", "surrogate": "grad_spikes"}
OUT = {"forward": "membrane", "feedback": "rho", "surrogate": "grad_current"}


@pytest.mark.parametrize("which", WRAPPERS)
def test_rejects_what_is_not_an_array(which):
    _, second, out, _ = _arrays()
    with pytest.raises(TypeError, match=r"must be a NumPy array of shape \(T, N\), got list"):
        _call(which, [[0.0] * 4] * 3, second, out)


@pytest.mark.parametrize("which", WRAPPERS)
def test_rejects_a_dtype_that_is_not_float32_or_float64(which):
    first, second, out, _ = _arrays()
    with pytest.raises(TypeError, match=rf"{FIRST[which]} must be float32 or float64, got.*int64"):
        _call(which, first.astype(np.int64), second, out)


@pytest.mark.parametrize("which", WRAPPERS)
def test_rejects_mixed_dtypes(which):
    first, second, out, _ = _arrays()
    with pytest.raises(
        TypeError,
        match=rf"{OUT[which]} has dtype float32 but {FIRST[which]} has dtype float64; all arrays",
    ):
        _call(which, first, second, out.astype(np.float32))


@pytest.mark.parametrize("which", WRAPPERS)
def test_rejects_arrays_without_a_time_axis(which):
    first, second, out, _ = (a.reshape(-1) for a in _arrays())
    with pytest.raises(ValueError, match=r"must have shape \(T, N\) \(time first.*got \(12,\)"):
        _call(which, first, second, out)


@pytest.mark.parametrize("which", WRAPPERS)
def test_rejects_mismatched_shapes(which):
    first, second, out, _ = _arrays()
    with pytest.raises(
        ValueError, match=rf"{OUT[which]} must have the shape of {FIRST[which]}, \(3, 4\), got"
    ):
        _call(which, first, second, np.zeros((4, 3)))
    if which != "forward":
        with pytest.raises(ValueError, match=r"membrane must have the shape of .*got \(3, 5\)"):
            _call(which, first, np.zeros((3, 5)), out)


@pytest.mark.parametrize("which", WRAPPERS)
def test_rejects_non_contiguous_arrays(which):
    first, second, out, _ = _arrays(shape=(3, 8))
    with pytest.raises(ValueError, match=r"must be C-contiguous; pass np.ascontiguousarray"):
        _call(which, first[:, ::2], second[:, ::2], out[:, ::2].copy())
    with pytest.raises(ValueError, match=rf"{OUT[which]} must be C-contiguous; it is written in"):
        _call(which, first[:, ::2].copy(), second[:, ::2].copy(), out[:, ::2])
    with pytest.raises(ValueError, match=r"must be C-contiguous"):  # Fortran order, same shape
        _call(which, np.asfortranarray(first), second, out)


@pytest.mark.parametrize("which", WRAPPERS)
def test_rejects_read_only_outputs(which):
    first, second, out, _ = _arrays()
    out.flags.writeable = False
    with pytest.raises(ValueError, match=rf"{OUT[which]} is written in place but is read-only"):
        _call(which, first, second, out)


@pytest.mark.parametrize("which", WRAPPERS)
def test_rejects_outputs_that_overlap_other_arrays(which):
    first, second, out, _ = _arrays()
    with pytest.raises(ValueError, match=rf"{OUT[which]} overlaps {FIRST[which]} in memory"):
        _call(which, first, second, first)
    if which != "surrogate":
        with pytest.raises(ValueError, match=rf"{OUT[which]} overlaps .* in memory"):
            _call(which, first, second, out, extra_out=out)
    # disjoint halves of one buffer are fine
    buffer = np.zeros((2, 3, 4))
    _call(which, first, second, buffer[0], extra_out=buffer[1] if which != "surrogate" else None)


@pytest.mark.parametrize(
    "which, name, value",
    [
        ("forward", "reset", "hard"),
        ("forward", "reset", None),
        ("surrogate", "reset", "none"),
        ("surrogate", "surrogate", "sigmoid"),
    ],
)
def test_rejects_unknown_modes(which, name, value):
    first, second, out, _ = _arrays()
    with pytest.raises(ValueError, match=rf"{name} must be one of \[.*\], got {value!r}"):
        _call(which, first, second, out, **{name: value})


@pytest.mark.parametrize(
    "which, name, value",
    [
        ("forward", "beta", 1.5),
        ("forward", "beta", -0.1),
        ("forward", "threshold", 0.0),
        ("feedback", "threshold", -1.0),
        ("feedback", "eps", -1e-6),
        ("feedback", "eps", np.nan),
        ("surrogate", "alpha", 0.0),
        ("surrogate", "beta", np.inf),
    ],
)
def test_rejects_scalars_out_of_range(which, name, value):
    first, second, out, _ = _arrays()
    with pytest.raises(ValueError, match=rf"{name} must be a finite number in .*, got"):
        _call(which, first, second, out, **{name: value})


@pytest.mark.parametrize("value", ["0.9", None, True, np.array([0.9])], ids=repr)
def test_rejects_scalars_that_are_not_real_numbers(value):
    first, second, out, _ = _arrays()
    with pytest.raises(TypeError, match=r"beta must be a real number, got"):
        _call("forward", first, second, out, beta=value)


# -- snntorch 0.9.4 itself (the crosscheck extra) ------------------------------------------------


def _snntorch():
    torch = pytest.importorskip("torch", reason="needs torch (the crosscheck extra)")
    snn = pytest.importorskip("snntorch", reason="needs snntorch 0.9.x (the crosscheck extra)")
    return torch, snn


def _snntorch_run(torch, snn, current, beta, threshold, reset, alpha):
    """snntorch's Leaky over the steps of ``current``, with beta and threshold as tensors of
    ``current``'s dtype (given as Python floats, snntorch would store float32 tensors)."""
    from snntorch import surrogate

    dtype = torch.float64 if current.dtype == np.float64 else torch.float32
    neuron = snn.Leaky(
        beta=torch.tensor(beta, dtype=dtype),
        threshold=torch.tensor(threshold, dtype=dtype),
        spike_grad=surrogate.atan(alpha=alpha),
        reset_mechanism=reset,
    )
    current = torch.tensor(current, requires_grad=True)
    spikes, membranes = [], []
    for t in range(current.shape[0]):
        spike, membrane = neuron(current[t])
        spikes.append(spike)
        membranes.append(membrane)
    return current, torch.stack(spikes), torch.stack(membranes)


@pytest.mark.crosscheck
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("neuron", NEURONS, ids=_neuron_id)
def test_forward_and_bptt_match_snntorch(rng, neuron, reset, dtype):
    torch, snn = _snntorch()
    beta, threshold = neuron
    # snntorch's reset term multiplies the float32 reset tensor by the 0-dim threshold tensor,
    # which torch computes in float32: in float64 it subtracts float32(threshold). lfp_ref
    # subtracts the threshold itself; a threshold exact in float32 makes the two agree.
    threshold = float(np.float32(threshold))
    current = _current(rng, (7, 3, 40), threshold, dtype)
    # the loss gradient reaches the spikes in float32 (snntorch's spikes are float32 tensors):
    # weights exact in float32 keep the float64 comparison at float64 rounding
    weights = rng.normal(size=current.shape).astype(np.float32).astype(dtype)
    for alpha in (2.0, 0.7):
        leaf, spikes, membranes = _snntorch_run(torch, snn, current, beta, threshold, reset, alpha)
        (spikes.to(leaf.dtype) * torch.tensor(weights)).sum().backward()
        membrane, want_spikes = _forward(current, beta, threshold, reset)
        np.testing.assert_array_equal(membrane, membranes.detach().numpy(), strict=True)
        np.testing.assert_array_equal(want_spikes, spikes.detach().numpy())
        grad = _backward(weights, membrane, beta, threshold, alpha, "atan", reset)
        assert_close(grad, leaf.grad.numpy(), rtol=_rtol(dtype))


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_step_current_is_used_at_every_step(rng, reset, dtype):
    # a (1, N) current (a LIF on the static input) gives bit for bit what its T copies give
    steps, shape = 7, (5, 3, 4)
    current = (rng.standard_normal((1, *shape)) * 1.5).astype(dtype)
    copies = np.ascontiguousarray(np.broadcast_to(current, (steps, *shape)))
    expected = K.lif_forward(copies, 0.8, 1.0, reset, *(np.empty_like(copies) for _ in range(2)))
    got = K.lif_forward(current, 0.8, 1.0, reset, *(np.empty_like(copies) for _ in range(2)))
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)
    assert 0.1 < expected[1].mean() < 0.9  # some units spike, some do not
    with pytest.raises(ValueError, match=r"one-step current"):  # 2 steps of 7 are not one
        K.lif_forward(copies[:2], 0.8, 1.0, reset, np.empty_like(copies), np.empty_like(copies))


def _summed_backwards(per_step):
    # sum over the steps from t = T-1 down, the order the kernels sum in
    total = per_step[-1].copy()
    for t in range(len(per_step) - 2, -1, -1):
        total += per_step[t]
    return total


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_step_outputs_receive_the_sum_over_the_steps(rng, reset, dtype):
    # rho / dL/dI of shape (1, ...): the steps' values summed from t = T-1 down, bit for bit
    shape = (6, 4, 5)  # T = 6 steps
    current = (rng.standard_normal(shape) * 1.5).astype(dtype)
    membrane, spikes = K.lif_forward(
        current, 0.85, 1.0, reset, np.empty_like(current), np.empty_like(current)
    )
    assert 0.1 < spikes.mean() < 0.9
    one_step = (1, *shape[1:])
    grad_spikes = rng.standard_normal(shape).astype(dtype)
    per_step = K.lif_surrogate_backward(
        grad_spikes, membrane, 0.85, 1.0, 2.0, np.empty_like(current), reset=reset
    )
    total = K.lif_surrogate_backward(
        grad_spikes, membrane, 0.85, 1.0, 2.0, np.empty(one_step, dtype), reset=reset
    )
    np.testing.assert_array_equal(total[0], _summed_backwards(per_step))
    if reset == "subtract":
        reward = rng.standard_normal(shape).astype(dtype)
        handed, handed_too = np.empty_like(current), np.empty_like(current)
        rho = K.lif_feedback(reward, membrane, 0.85, 1.0, 1e-6, np.empty_like(current), handed)
        total = K.lif_feedback(
            reward, membrane, 0.85, 1.0, 1e-6, np.empty(one_step, dtype), handed_too
        )
        np.testing.assert_array_equal(total[0], _summed_backwards(rho))
        np.testing.assert_array_equal(handed_too, handed)  # the recursion itself unchanged
    with pytest.raises(ValueError, match=r"one step of it, \(1, \.\.\.\), for the sum"):
        K.lif_surrogate_backward(grad_spikes, membrane, 0.85, 1.0, 2.0, np.empty((2, 4, 5), dtype))
