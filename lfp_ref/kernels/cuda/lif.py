"""The CUDA twins of ``kernels/cpu/lif.py``: the leaky integrate-and-fire time recursion, forward,
LFP feedback and surrogate-gradient BPTT (lfp-spec.md section 6; semantics, formulas and
arguments are the CPU module's, snntorch 0.9.4 ``Leaky``).

Layout: one thread per neuron looping over T (forwards for the forward pass, backwards for the
feedback and the gradient), as spikingjelly's CuPy neuron kernels do; neighbouring threads read
neighbouring neurons of one time step, so the loads coalesce. What a neuron carries from one step
to the next is re-read from the outputs already written (``U_{t-1}``, ``rho_{t+1}``,
``dL/dU_{t+1}``), as in the CPU twin, so both round the same way.

The public wrappers validate as the CPU twin's do (same errors for the same mistakes), for
device arrays (CuPy arrays, or simulated device arrays under the simulator) instead of NumPy
arrays. Same names and signatures as the CPU module.
"""

import math

import numpy as np
from numba import cuda

from ..cpu.lif import (
    NEURON_BLOCK,
    RESETS,
    SURROGATES,
    _check_current,
    _check_one_or_all_steps,
    _choice,
    _scalar,
)
from . import SimulatedDeviceArray
from ._launch import kernel

__all__ = [
    "NEURON_BLOCK",
    "RESETS",
    "SURROGATES",
    "lif_feedback",
    "lif_forward",
    "lif_surrogate_backward",
]


@kernel
def _lif_forward(current, beta, threshold, reset, zero, membrane, spikes):
    # current (T, N), or (1, N): the same current at every step
    n_steps, n_neurons = membrane.shape
    static = current.shape[0] == 1
    for i in range(cuda.grid(1), n_neurons, cuda.gridsize(1)):
        for t in range(n_steps):
            tc = 0 if static else t
            u_prev = membrane[t - 1, i] if t > 0 else zero  # U_{-1} = 0
            fired = u_prev - threshold > 0  # reset_t, from the previous membrane
            if reset == 0:  # subtract, in snntorch's order: (beta U + I) - reset * threshold
                u = beta * u_prev + current[tc, i] - fired * threshold
            else:  # zero: the previous membrane is zeroed, then integrated
                u = beta * ((not fired) * u_prev) + current[tc, i]
            membrane[t, i] = u
            spikes[t, i] = u - threshold > 0


@kernel
def _lif_feedback(reward, membrane, beta, threshold, eps, zero, rho, handed, write_handed):
    # backwards in time; rho (1, N): the sum over the steps, rho_{t+1} carried in a register
    n_steps, n_neurons = reward.shape
    summed = rho.shape[0] == 1
    for i in range(cuda.grid(1), n_neurons, cuda.gridsize(1)):
        carried = zero
        for t in range(n_steps - 1, -1, -1):
            u = membrane[t, i]
            u_prev = membrane[t - 1, i] if t > 0 else zero  # U_{-1} = 0
            # M_t, handed down by step t+1: beta U_t rho_{t+1}; M_{T-1} = 0
            if t == n_steps - 1:
                handed_down = zero
            else:
                handed_down = beta * u * (carried if summed else rho[t + 1, i])
            fired = u_prev - threshold > 0  # reset_t (0 at t = 0 since threshold > 0)
            incoming = reward[t, i] + handed_down  # A_t
            # D_t = |U_{t-1}| + |U_t + reset_t threshold - U_{t-1}|, in lfprop's order
            d = abs(u_prev) + abs(u + fired * threshold - u_prev)
            # elementwise.stabilized_ratio's stabiliser: stab(d) = d + eps sgn0(d), sgn0(0) = +1
            ratio = incoming / (d + eps if d >= 0 else d - eps)  # rho_t
            if summed:  # sum_t rho_t, from t = T-1 down
                carried = ratio
                rho[0, i] = ratio if t == n_steps - 1 else rho[0, i] + ratio
            else:
                rho[t, i] = ratio
            if write_handed:
                handed[t, i] = beta * u_prev * ratio  # M_{t-1}


@kernel
def _lif_surrogate_backward(
    grad_spikes, membrane, beta, threshold, half_alpha, slope, reset, surrogate, zero, one, out
):
    # backwards in time; out[t + 1] holds dL/dU_{t+1}; out (1, N): the sum over the steps
    n_steps, n_neurons = grad_spikes.shape
    summed = out.shape[0] == 1
    for i in range(cuda.grid(1), n_neurons, cuda.gridsize(1)):
        carried = zero
        for t in range(n_steps - 1, -1, -1):
            u = membrane[t, i]
            # U_t -> U_{t+1} has slope beta, except that a zero reset at t+1 (reset_{t+1} =
            # H(U_t - threshold)) multiplies U_t by the detached 0 and cuts the path
            if t == n_steps - 1 or (reset == 1 and u - threshold > 0):
                carry = zero  # dL/dU_T = 0
            else:
                carry = beta * (carried if summed else out[t + 1, i])
            if surrogate == 0:  # atan: (alpha/2) / (1 + (pi/2 alpha (U - threshold))^2)
                x = slope * (u - threshold)
                grad_u = half_alpha / (one + x * x) * grad_spikes[t, i] + carry
            else:  # heaviside: H' = 0, so every gradient is exactly 0
                grad_u = carry
            if summed:  # sum_t dL/dI_t, from t = T-1 down
                carried = grad_u
                out[0, i] = grad_u if t == n_steps - 1 else out[0, i] + grad_u
            else:
                out[t, i] = grad_u  # dL/dI_t = dL/dU_t


# -- validation ---------------------------------------------------------------------------------


def _is_device_array(a):
    if isinstance(a, np.ndarray):
        return isinstance(a, SimulatedDeviceArray)
    return type(a).__module__.split(".")[0] == "cupy" and hasattr(a, "__cuda_array_interface__")


def _address(a):
    return a.ctypes.data if isinstance(a, np.ndarray) else a.data.ptr


def _time_major(name, a, caller, like=None, like_name=None, output=False):
    """``a`` as a (T, N) view after checking it is a C-contiguous float32/float64 device array of
    at least 2 dimensions (and of ``like``'s shape and dtype when given)."""
    if not _is_device_array(a):
        raise TypeError(
            f"{caller}: {name} must be a device array of shape (T, N) (a CuPy array, or a "
            f"simulated device array under the CUDA simulator), got {type(a).__name__}"
        )
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{caller}: {name} must be float32 or float64, got dtype {a.dtype}")
    if like is None:
        if a.ndim < 2:
            raise ValueError(
                f"{caller}: {name} must have shape (T, N) (time first; further axes are "
                f"flattened into N), got {a.shape}"
            )
    else:
        if a.dtype != like.dtype:
            raise TypeError(
                f"{caller}: {name} has dtype {a.dtype} but {like_name} has dtype {like.dtype}; "
                f"all arrays must share one dtype"
            )
        if a.shape != like.shape:
            raise ValueError(
                f"{caller}: {name} must have the shape of {like_name}, {like.shape}, got {a.shape}"
            )
    if not a.flags.c_contiguous:
        hint = (
            "it is written in place: allocate it with bk.empty(shape, dtype)"
            if output
            else f"pass bk.contiguous({name})"
        )
        raise ValueError(f"{caller}: {name} must be C-contiguous; {hint}")
    if output and not getattr(a.flags, "writeable", True):
        raise ValueError(f"{caller}: {name} is written in place but is read-only")
    return a.reshape(a.shape[0], math.prod(a.shape[1:]))  # (T, N), a view


def _disjoint(outputs, inputs, caller):
    """Outputs must overlap neither each other nor an input (C-contiguous arrays: their byte
    ranges tell exactly)."""
    for k, (name, out) in enumerate(outputs):
        start = _address(out)
        for other_name, other in outputs[k + 1 :] + inputs:
            other_start = _address(other)
            if out.nbytes and other.nbytes:
                if start < other_start + other.nbytes and other_start < start + out.nbytes:
                    raise ValueError(
                        f"{caller}: {name} overlaps {other_name} in memory; pass a separate array"
                    )


# -- public wrappers ----------------------------------------------------------------------------


def lif_forward(current, beta, threshold, reset, membrane, spikes):
    """Run the LIF membrane over T steps, one thread per neuron (see the CPU twin for the
    formulas, parameters and errors)."""
    caller = "lif_forward"
    code = _choice("reset", reset, RESETS, caller)
    current2 = _time_major("current", current, caller)
    membrane2 = _time_major("membrane", membrane, caller, output=True)
    spikes2 = _time_major("spikes", spikes, caller, membrane, "membrane", output=True)
    _check_current(current, membrane, caller)
    _disjoint([("membrane", membrane), ("spikes", spikes)], [("current", current)], caller)
    kind = current.dtype.type
    beta = kind(_scalar("beta", beta, caller, 0.0, 1.0))
    threshold = kind(_scalar("threshold", threshold, caller, 0.0, low_open=True))
    n_neurons = membrane2.shape[1] if membrane2.shape[0] else 0
    _lif_forward(n_neurons, current2, beta, threshold, code, kind(0), membrane2, spikes2)
    return membrane, spikes


def lif_feedback(reward, membrane, beta, threshold, eps, rho, handed=None, reset="subtract"):
    """The LFP recursion through the LIF membrane, backwards in time, one thread per neuron (see
    the CPU twin for the formulas, parameters and errors)."""
    caller = "lif_feedback"
    _choice("reset", reset, RESETS, caller)
    if reset != "subtract":
        raise ValueError(
            f"{caller}: LFP through the LIF neuron is defined for reset='subtract' only "
            f"(lfprop's propagator_snn raises NotImplementedError for the zero reset), "
            f"got reset={reset!r}"
        )
    reward2 = _time_major("reward", reward, caller)
    membrane2 = _time_major("membrane", membrane, caller, reward, "reward")
    rho2 = _time_major("rho", rho, caller, output=True)
    _check_one_or_all_steps("rho", rho, reward, "reward", caller)
    outputs = [("rho", rho)]
    if handed is not None:
        handed2 = _time_major("handed", handed, caller, reward, "reward", output=True)
        outputs.append(("handed", handed))
    else:
        handed2 = rho2[:0]  # a placeholder of the right type, never written
    _disjoint(outputs, [("reward", reward), ("membrane", membrane)], caller)
    kind = reward.dtype.type
    beta = kind(_scalar("beta", beta, caller, 0.0, 1.0))
    threshold = kind(_scalar("threshold", threshold, caller, 0.0, low_open=True))
    eps = kind(_scalar("eps", eps, caller, 0.0))
    n_neurons = reward2.shape[1] if reward2.shape[0] else 0
    _lif_feedback(
        n_neurons,
        reward2,
        membrane2,
        beta,
        threshold,
        eps,
        kind(0),
        rho2,
        handed2,
        handed is not None,
    )
    return rho


def lif_surrogate_backward(
    grad_spikes, membrane, beta, threshold, alpha, grad_current, surrogate="atan", reset="subtract"
):
    """BPTT through the LIF membrane with the reset detached, backwards in time, one thread per
    neuron (see the CPU twin for the formulas, parameters and errors)."""
    caller = "lif_surrogate_backward"
    reset_code = _choice("reset", reset, RESETS, caller)
    surrogate_code = _choice("surrogate", surrogate, SURROGATES, caller)
    grad_spikes2 = _time_major("grad_spikes", grad_spikes, caller)
    membrane2 = _time_major("membrane", membrane, caller, grad_spikes, "grad_spikes")
    grad_current2 = _time_major("grad_current", grad_current, caller, output=True)
    _check_one_or_all_steps("grad_current", grad_current, grad_spikes, "grad_spikes", caller)
    _disjoint(
        [("grad_current", grad_current)],
        [("grad_spikes", grad_spikes), ("membrane", membrane)],
        caller,
    )
    kind = grad_spikes.dtype.type
    beta = kind(_scalar("beta", beta, caller, 0.0, 1.0))
    threshold = kind(_scalar("threshold", threshold, caller, 0.0, low_open=True))
    alpha = _scalar("alpha", alpha, caller, 0.0, low_open=True)
    half_alpha, slope = kind(alpha / 2), kind(math.pi / 2 * alpha)  # torch's constants
    n_neurons = grad_spikes2.shape[1] if grad_spikes2.shape[0] else 0
    _lif_surrogate_backward(
        n_neurons,
        grad_spikes2,
        membrane2,
        beta,
        threshold,
        half_alpha,
        slope,
        reset_code,
        surrogate_code,
        kind(0),
        kind(1),
        grad_current2,
    )
    return grad_current
