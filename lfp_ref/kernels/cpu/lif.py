"""The time recursion of the leaky integrate-and-fire (LIF) neuron: forward, LFP feedback, and
surrogate-gradient BPTT (docs/numerical-contract.md section 6).

Arrays are time first: ``(T, N)`` with N the flattened (batch x neurons) size; the wrappers also
take ``(T, ...)`` and flatten the trailing axes (a view: every array must be C-contiguous). The
current ``I_t = P(x_t)`` of the wrapped Dense/Conv2d is computed outside, with the T steps stacked
into the batch; what is here is the elementwise recursion of each neuron over T, forwards for the
forward pass and backwards for the feedback and the gradient.

Layout: a parallel iteration owns a block of ``block`` neighbouring neurons and runs their
recursions over T in lockstep, the inner loop walking the block's contiguous neurons (with
``block=1`` this is spikingjelly's CuPy layout, one thread per neuron looping over T, which a CUDA
twin follows). What a neuron carries from one step to the next is re-read from the outputs
already written (``U_{t-1}``, ``rho_{t+1}``, ``dL/dU_{t+1}``), so every neuron's arithmetic is
the same, bit for bit, whatever the block. Measured on 2 cores, float32, T = 25, N = 2**17: one
neuron per iteration with its stride-N walk over time 22-38 ms, blocks of 1024 neurons 4 ms.

Semantics are those of snntorch 0.9.4 ``Leaky`` with its defaults (``reset_delay=True``,
``graded_spikes_factor=1``): membrane ``U_{-1} = 0``, and per step

    reset_t = H(U_{t-1} - threshold)              from the PREVIOUS membrane, detached
    U_t     = (beta U_{t-1} + I_t) - reset_t threshold          reset="subtract"
    U_t     = beta ((1 - reset_t) U_{t-1}) + I_t                reset="zero"
    S_t     = H(U_t - threshold),      H(u) = 1 iff u > 0

"zero" is what snntorch's code does (``Leaky._base_zero``: the PREVIOUS membrane is zeroed, then
the step integrates), not the formula in its docstring (``beta U + I - R (beta U + I)``, which
would zero the new membrane): after a reset step ``U_t = I_t``, not 0. The operations and their
order are snntorch's, so in the same dtype the membranes and spikes agree bit for bit, with two
snntorch quirks to know when cross-checking in float64: given Python floats it stores beta and
threshold as float32 tensors, and even given float64 tensors its subtracted reset term is
computed in float32 (the float32 reset tensor times the 0-dim threshold), i.e. it subtracts
``float32(threshold)``. lfp_ref uses beta and threshold in the arrays' dtype throughout.
"""

import math
import numbers

import numpy as np
from numba import prange

from ._jit import kernel

RESETS = {"subtract": 0, "zero": 1}
SURROGATES = {"atan": 0, "heaviside": 1}

# Neurons per parallel iteration (see the module docstring). 1024 float64 are 8 KiB per array and
# step; larger blocks measured no faster, and N = batch x neurons is usually >> 1024.
NEURON_BLOCK = 1024


# -- the jitted recursions (int codes: reset 0 subtract, 1 zero; surrogate 0 atan, 1 heaviside)


@kernel
def _lif_forward(current, beta, threshold, reset, block, membrane, spikes):
    # current (T, N), or (1, N): the same current at every step
    n_steps, n_neurons = membrane.shape
    static = current.shape[0] == 1
    zero = membrane.dtype.type(0)
    for b in prange((n_neurons + block - 1) // block):
        lo = b * block
        hi = min(lo + block, n_neurons)
        for t in range(n_steps):
            tc = 0 if static else t
            for i in range(lo, hi):
                u_prev = membrane[t - 1, i] if t > 0 else zero  # U_{-1} = 0
                fired = u_prev - threshold > 0  # reset_t, from the previous membrane
                if reset == 0:  # subtract, in snntorch's order: (beta U + I) - reset * threshold
                    u = beta * u_prev + current[tc, i] - fired * threshold
                else:  # zero: the previous membrane is zeroed, then integrated
                    u = beta * ((not fired) * u_prev) + current[tc, i]
                membrane[t, i] = u
                spikes[t, i] = u - threshold > 0


@kernel
def _lif_feedback(reward, membrane, beta, threshold, eps, block, rho, handed, write_handed):
    # backwards in time. rho (T, N), or (1, N): the sum over the steps, each step's rho_t then
    # carried to step t-1 in a per-block buffer instead of rho[t + 1]
    n_steps, n_neurons = reward.shape
    summed = rho.shape[0] == 1
    zero = membrane.dtype.type(0)
    for b in prange((n_neurons + block - 1) // block):
        lo = b * block
        hi = min(lo + block, n_neurons)
        carried = np.zeros(hi - lo, rho.dtype)  # rho_{t+1} of the block's neurons (summed)
        for t in range(n_steps - 1, -1, -1):
            for i in range(lo, hi):
                u = membrane[t, i]
                u_prev = membrane[t - 1, i] if t > 0 else zero  # U_{-1} = 0
                # M_t, handed down by step t+1: beta U_t rho_{t+1}; M_{T-1} = 0
                if t == n_steps - 1:
                    handed_down = zero
                else:
                    handed_down = beta * u * (carried[i - lo] if summed else rho[t + 1, i])
                fired = u_prev - threshold > 0  # reset_t (0 at t = 0 since threshold > 0)
                incoming = reward[t, i] + handed_down  # A_t
                # D_t = |U_{t-1}| + |U_t + reset_t threshold - U_{t-1}|, in lfprop's order
                d = abs(u_prev) + abs(u + fired * threshold - u_prev)
                # elementwise.stabilized_ratio's stabiliser: stab(d) = d + eps sgn0(d), sgn0(0)=+1
                ratio = incoming / (d + eps if d >= 0 else d - eps)  # rho_t
                if summed:  # sum_t rho_t, from t = T-1 down
                    carried[i - lo] = ratio
                    rho[0, i] = ratio if t == n_steps - 1 else rho[0, i] + ratio
                else:
                    rho[t, i] = ratio
                if write_handed:
                    handed[t, i] = beta * u_prev * ratio  # M_{t-1}


@kernel
def _lif_surrogate_backward(
    grad_spikes, membrane, beta, threshold, half_alpha, slope, reset, surrogate, block, grad_current
):
    # backwards in time; grad_current[t + 1] holds dL/dU_{t+1}. grad_current (1, N): the sum
    # over the steps, dL/dU_{t+1} then carried in a per-block buffer (as _lif_feedback's rho)
    n_steps, n_neurons = grad_spikes.shape
    summed = grad_current.shape[0] == 1
    zero = membrane.dtype.type(0)
    one = membrane.dtype.type(1)
    for b in prange((n_neurons + block - 1) // block):
        lo = b * block
        hi = min(lo + block, n_neurons)
        carried = np.zeros(hi - lo, grad_current.dtype)
        for t in range(n_steps - 1, -1, -1):
            for i in range(lo, hi):
                u = membrane[t, i]
                # U_t -> U_{t+1} has slope beta, except that a zero reset at t+1 (reset_{t+1} =
                # H(U_t - threshold)) multiplies U_t by the detached 0 and cuts the path
                if t == n_steps - 1 or (reset == 1 and u - threshold > 0):
                    carry = zero  # dL/dU_T = 0
                else:
                    carry = beta * (carried[i - lo] if summed else grad_current[t + 1, i])
                if surrogate == 0:  # atan: (alpha/2) / (1 + (pi/2 alpha (U - threshold))^2)
                    x = slope * (u - threshold)
                    grad_u = half_alpha / (one + x * x) * grad_spikes[t, i] + carry
                else:  # heaviside: H' = 0, so every gradient is exactly 0
                    grad_u = carry
                if summed:  # sum_t dL/dI_t, from t = T-1 down
                    carried[i - lo] = grad_u
                    grad_current[0, i] = grad_u if t == n_steps - 1 else grad_current[0, i] + grad_u
                else:
                    grad_current[t, i] = grad_u  # dL/dI_t = dL/dU_t


# -- validation ---------------------------------------------------------------------------------


def _scalar(name, value, caller, low=None, high=None, low_open=False):
    """A finite real number within [low, high] (low excluded with ``low_open``), as a float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{caller}: {name} must be a real number, got {value!r}")
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if not math.isfinite(value) or too_low or too_high:
        bounds = "(" if low_open else "["
        bounds += f"{low}, " if low is not None else "-inf, "
        bounds += f"{high}]" if high is not None else "inf)"
        raise ValueError(f"{caller}: {name} must be a finite number in {bounds}, got {value!r}")
    return value


def _choice(name, value, options, caller):
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{caller}: {name} must be one of {sorted(options)}, got {value!r}")
    return options[value]


def _time_major(name, a, caller, like=None, like_name=None, output=False):
    """``a`` as a (T, N) view after checking it is a C-contiguous float32/float64 ndarray of at
    least 2 dimensions (and of ``like``'s shape and dtype when given)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(
            f"{caller}: {name} must be a NumPy array of shape (T, N), got {type(a).__name__}"
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
            "it is written in place: allocate it with np.empty(shape, dtype)"
            if output
            else f"pass np.ascontiguousarray({name})"
        )
        raise ValueError(f"{caller}: {name} must be C-contiguous; {hint}")
    if output and not a.flags.writeable:
        raise ValueError(f"{caller}: {name} is written in place but is read-only")
    return a.reshape(a.shape[0], math.prod(a.shape[1:]))  # (T, N), a view


def _check_current(current, membrane, caller):
    """The current has the membrane's shape and dtype, or one step of it: (1, ...), the same
    current at every step (a LIF on the static input; no T copies to write and read)."""
    if current.dtype != membrane.dtype:
        raise TypeError(
            f"{caller}: membrane has dtype {membrane.dtype} but current has dtype "
            f"{current.dtype}; all arrays must share one dtype"
        )
    one_step = (1, *membrane.shape[1:])
    if current.shape != membrane.shape and current.shape != one_step:
        raise ValueError(
            f"{caller}: membrane must have the shape of current, {current.shape}, got "
            f"{membrane.shape} (or, for a one-step current (1, ...), T steps of it)"
        )


def _check_one_or_all_steps(name, a, like, like_name, caller):
    """``a`` has ``like``'s dtype and shape, or one step of it, (1, ...): an output that
    receives the sum over the steps."""
    if a.dtype != like.dtype:
        raise TypeError(
            f"{caller}: {name} has dtype {a.dtype} but {like_name} has dtype {like.dtype}; "
            f"all arrays must share one dtype"
        )
    if a.shape != like.shape and a.shape != (1, *like.shape[1:]):
        raise ValueError(
            f"{caller}: {name} must have the shape of {like_name}, {like.shape}, got {a.shape} "
            f"(or one step of it, (1, ...), for the sum over the steps)"
        )


def _disjoint(outputs, inputs, caller):
    """Outputs must overlap neither each other nor an input: the kernels read the inputs and
    their own earlier outputs (U_{t-1}, rho_{t+1}, dL/dU_{t+1}) across time steps. For
    C-contiguous arrays ``may_share_memory``'s bounds check is exact."""
    for k, (name, out) in enumerate(outputs):
        for other_name, other in outputs[k + 1 :] + inputs:
            if np.may_share_memory(out, other):
                raise ValueError(
                    f"{caller}: {name} overlaps {other_name} in memory; pass a separate array"
                )


# -- public wrappers ----------------------------------------------------------------------------


def lif_forward(current, beta, threshold, reset, membrane, spikes):
    """Run the LIF membrane over T steps, one neuron per iteration.

    With ``U_{-1} = 0`` and ``H(u) = 1 iff u > 0``, for t = 0 .. T-1::

        reset_t = H(U_{t-1} - threshold)                      (detached)
        U_t     = (beta U_{t-1} + I_t) - reset_t threshold     reset="subtract"
        U_t     = beta ((1 - reset_t) U_{t-1}) + I_t           reset="zero"
        S_t     = H(U_t - threshold)

    exactly as snntorch 0.9.4 ``Leaky`` computes it (same operations, same order; for "zero"
    its code, which zeroes the previous membrane, not its docstring's formula).

    Parameters
    ----------
    current : ndarray, float32 or float64, shape (T, N) or (T, ...)
        The input current ``I``, time first, C-contiguous; or one step of it, (1, N) or
        (1, ...), used at every one of the membrane's T steps.
    beta : float
        Membrane decay in [0, 1] (snntorch clamps beta to [0, 1]; here it is an error).
    threshold : float
        Firing threshold, > 0.
    reset : {"subtract", "zero"}
        Reset mechanism.
    membrane, spikes : ndarray
        Preallocated outputs of ``current``'s shape and dtype, C-contiguous, disjoint.

    Returns
    -------
    membrane, spikes : ndarray
        ``U`` and ``S`` (spikes are 0.0 / 1.0 in the dtype of ``current``).

    Raises
    ------
    TypeError
        An array that is not a float32/float64 ndarray, mixed dtypes, a non-numeric scalar.
    ValueError
        Fewer than 2 dimensions, mismatched shapes, non-contiguous or overlapping arrays, a
        read-only output, a scalar out of range, an unknown ``reset``.
    """
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
    _lif_forward.pick(current.size)(
        current2, beta, threshold, code, NEURON_BLOCK, membrane2, spikes2
    )
    return membrane, spikes


def lif_feedback(reward, membrane, beta, threshold, eps, rho, handed=None, reset="subtract"):
    """The LFP recursion of docs/numerical-contract.md section 6 through the LIF membrane,
    backwards in time.

    Per neuron, for t = T-1 down to 0, with ``M_{T-1} = 0``, ``U_{-1} = 0`` and
    ``reset_t = H(U_{t-1} - threshold)`` (so ``reset_0 = 0``)::

        A_t     = reward_t + M_t                           (M_t: handed down from step t+1)
        D_t     = |U_{t-1}| + |U_t + reset_t threshold - U_{t-1}|      (D_0 = |U_0| = |I_0|)
        rho_t   = A_t / stab(D_t, eps),   stab(d) = d + eps sgn0(d)   (elementwise's stabiliser)
        M_{t-1} = beta U_{t-1} rho_t

    ``D_t`` is computed from the membranes as lfprop's ``propagator_snn`` does (the pre-reset
    membrane ``U_t + reset_t threshold`` rebuilt from ``U_t``), so no current is needed. The
    reset term receives no reward. The layer then forms ``F_theta = |theta| VJP_theta(rho)``
    (summed over t and batch) and ``R_x_t = x_t VJP_x(rho_t)`` with the GEMMs of its current.

    Parameters
    ----------
    reward : ndarray, float32 or float64, shape (T, N) or (T, ...)
        The reward ``r_t`` arriving at the spikes ``S_t`` (identity rule through the spike).
    membrane : ndarray
        ``U`` from :func:`lif_forward` (reset="subtract"), same shape and dtype.
    beta, threshold : float
        As in :func:`lif_forward`.
    eps : float
        Stabiliser, >= 0 (lfp_ref's default is 1e-6).
    rho : ndarray
        Preallocated output ``rho_t``, same shape and dtype; or one step of it, (1, ...), which
        receives ``sum_t rho_t`` (summed from t = T-1 down; what a weight VJP at an input that
        is the same at every step needs).
    handed : ndarray, optional
        Preallocated output ``handed[t] = M_{t-1}``, the reward step t passes to step t-1
        (``handed[0] = beta U_{-1} rho_0 = 0``); not computed when None.
    reset : {"subtract"}
        Only "subtract": LFP does not define a rule for the zero reset.

    Returns
    -------
    rho : ndarray
        ``rho``, filled (``handed`` is filled in place too when given).

    Raises
    ------
    TypeError, ValueError
        As :func:`lif_forward`; ValueError for reset="zero".
    """
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
    _lif_feedback.pick(reward.size)(
        reward2, membrane2, beta, threshold, eps, NEURON_BLOCK, rho2, handed2, handed is not None
    )
    return rho


def lif_surrogate_backward(
    grad_spikes, membrane, beta, threshold, alpha, grad_current, surrogate="atan", reset="subtract"
):
    """BPTT through the LIF membrane with the reset detached (snntorch's graph), backwards in time.

    With ``dL/dU_T = 0`` and ``sg'`` the surrogate derivative of the spike, for t = T-1 .. 0::

        dL/dU_t = grad_spikes_t sg'(U_t - threshold) + c_{t+1} beta dL/dU_{t+1}
        dL/dI_t = dL/dU_t

    where ``c_{t+1} = 1`` for reset="subtract" (the reset is detached: ``U_{t+1}`` depends on
    ``U_t`` through ``beta U_t`` only) and ``c_{t+1} = 1 - reset_{t+1} = 1 - H(U_t - threshold)``
    for reset="zero" (snntorch multiplies the previous membrane by the detached
    ``1 - reset_{t+1}``, which cuts the path from ``U_t`` to ``U_{t+1}`` after a spike at t).

    Surrogates: "atan", snntorch's ``surrogate.atan(alpha)`` (its default, alpha = 2),
    ``sg'(u) = (alpha/2) / (1 + (pi/2 alpha u)^2)``, the derivative of
    ``1/2 + arctan(pi/2 alpha u) / pi``; "heaviside", the true derivative of the step,
    ``sg' = 0``, so every gradient is exactly 0 (snntorch's ``surrogate_disable=True``; NOT
    snntorch's ``surrogate.heaviside()``, whose backward is the straight-through ``grad * S``).

    Parameters
    ----------
    grad_spikes : ndarray, float32 or float64, shape (T, N) or (T, ...)
        ``dL/dS``.
    membrane : ndarray
        ``U`` from :func:`lif_forward` with the same ``reset``, same shape and dtype.
    beta, threshold : float
        As in :func:`lif_forward`.
    alpha : float
        Surrogate sharpness, > 0 (ignored by "heaviside").
    grad_current : ndarray
        Preallocated output ``dL/dI``, same shape and dtype; or one step of it, (1, ...), which
        receives ``sum_t dL/dI_t`` (as ``rho`` in :func:`lif_feedback`).
    surrogate : {"atan", "heaviside"}
    reset : {"subtract", "zero"}

    Returns
    -------
    grad_current : ndarray

    Raises
    ------
    TypeError, ValueError
        As :func:`lif_forward`; ValueError for an unknown surrogate.
    """
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
    _lif_surrogate_backward.pick(grad_spikes.size)(
        grad_spikes2,
        membrane2,
        beta,
        threshold,
        half_alpha,
        slope,
        reset_code,
        surrogate_code,
        NEURON_BLOCK,
        grad_current2,
    )
    return grad_current
