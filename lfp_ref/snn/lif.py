"""The leaky integrate-and-fire layer: ``LIF(current)``, a Dense or Conv2d input current followed
by the LIF membrane (lfp-spec.md section 6), with time folded into the batch.

Layout. A :class:`~lfp_ref.snn.SpikingSequential` repeats its static input (B, ...) to
(T*B, ...), step t occupying rows ``t*B .. t*B + B - 1``. The LIF computes the current of all T
steps with ONE call of the wrapped layer, ``I = P(x)`` on (T*B, ...) rows, and runs the time
recursion with the kernels of :mod:`lfp_ref.kernels.cpu.lif` on the (T, B*N) view of I. Every
layer is thus used once per pass; the membrane starts at zero in every pass (there is no state
between passes, so consecutive batches cannot leak into each other).

Repeated input. When its T steps are the same B rows (the first LIF of a SpikingSequential, which
decides it: ``forward(x, repeated=True)``), the current is the same at every step: it is computed
once, on step 0's B rows, and handed to every step; in the reverse passes the wrapped layer's
weight VJP takes ``sum_t rho_t`` (``VJP_theta`` is linear in rho and x_t = x), so its
im2col, forward GEMM and weight VJP run on B rows instead of T*B. What leaves to the layer below
is still each step's own ``R_x_t`` (T*B rows, the per-step accounts of the trace book it).

Semantics are snntorch 0.9.4 ``Leaky``'s (the kernels' docstring has the details)::

    reset_t = H(U_{t-1} - threshold)       from the PREVIOUS membrane, detached; U_{-1} = 0
    U_t     = (beta U_{t-1} + I_t) - reset_t threshold        reset="subtract"
    U_t     = beta ((1 - reset_t) U_{t-1}) + I_t              reset="zero" (snntorch's code)
    S_t     = H(U_t - threshold),   H(u) = 1 iff u > 0

Parameters. The LIF has none of its own: they are the wrapped layer's, listed under the child
name ``current`` (``"0.current.weight"``, ``"0.current.bias"``, torch layouts). beta,
threshold, the reset, the surrogate and its sharpness are plain attributes (hyper-parameters,
not state-dict entries). :func:`lfp_ref.snn.state_dict_from_torch` maps a torch SNN's state dict
(lfprop's ``SpikingLayer(parameterized_layer, spike_mechanism)``, or a plain torch Sequential of
Linear/Conv2d and snntorch ``Leaky`` modules) onto these names.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..kernels import backend_of
from ..layers.base import Layer, WeightedLayer
from ..rules import Epsilon

#: the reset mechanisms (snntorch's names); LFP is defined for "subtract" only
RESETS = ("subtract", "zero")
#: the surrogate derivatives of the spike for backprop: snntorch's ``surrogate.atan(alpha)``, and
#: "heaviside", the true derivative of the step (every gradient exactly 0)
SURROGATES = ("atan", "heaviside")

#: snntorch's and lfprop's defaults
DEFAULT_BETA = 0.9
DEFAULT_THRESHOLD = 1.0
DEFAULT_ALPHA = 2.0


def _real(name, value, owner, low=None, high=None, low_open=False):
    """A finite real number in [low, high] (low excluded with ``low_open``), as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {value!r}")
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if not math.isfinite(value) or too_low or too_high:
        left = "(" if low_open else "["
        bounds = f"{left}{'-inf' if low is None else low}, {'inf)' if high is None else f'{high}]'}"
        raise ValueError(f"{owner}: {name} must be a finite number in {bounds}, got {value!r}")
    return value


def _choice(name, value, options, owner):
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{owner}: {name} must be one of {', '.join(options)}, got {value!r}")
    return value


def check_lif_options(
    beta=DEFAULT_BETA,
    threshold=DEFAULT_THRESHOLD,
    reset="subtract",
    surrogate="atan",
    alpha=DEFAULT_ALPHA,
    owner="LIF",
):
    """The LIF's hyper-parameters, checked: ``{"beta", "threshold", "reset", "surrogate",
    "alpha"}`` as floats and names. beta in [0, 1] (snntorch clamps it there; here a value
    outside is an error), threshold > 0, alpha > 0. TypeError / ValueError name the culprit."""
    return {
        "beta": _real("beta", beta, owner, 0.0, 1.0),
        "threshold": _real("threshold", threshold, owner, 0.0, low_open=True),
        "reset": _choice("reset", reset, RESETS, owner),
        "surrogate": _choice("surrogate", surrogate, SURROGATES, owner),
        "alpha": _real("alpha", alpha, owner, 0.0, low_open=True),
    }


def check_timesteps(timesteps, owner="SpikingSequential"):
    """The number of time steps, an int >= 1."""
    if isinstance(timesteps, bool) or not isinstance(timesteps, numbers.Integral) or timesteps < 1:
        raise ValueError(f"{owner}: timesteps must be an int >= 1, got {timesteps!r}")
    return int(timesteps)


class LIF(Layer):
    """Leaky integrate-and-fire neurons driven by the current of a Dense or Conv2d:
    ``S = LIF(P(x))`` for x (T*B, ...), time folded into the batch (module docstring).

    Forward: ``I = P(x)`` for all T steps at once, then the membrane recursion of snntorch 0.9.4
    ``Leaky`` (reset from the previous membrane, detached; spike iff U > threshold).

    LFP (lfp-spec.md section 6). The LIF consults no LRP rule: its own rule is the spec's
    recursion, backwards in time, with the reward ``r_t`` arriving at the spikes ``S_t``
    (identity rule through the spike)::

        A_t     = r_t + M_t                     M_t handed down from step t+1, M_{T-1} = 0
        D_t     = |U_{t-1}| + |U_t + reset_t threshold - U_{t-1}|       (D_0 = |I_0|)
        rho_t   = A_t / stab(D_t, eps)
        M_{t-1} = beta U_{t-1} rho_t
        F_theta = |theta| * VJP_theta(rho)      the wrapped layer's VJP: summed over t and batch
        R_x     = x * VJP_x(rho)                to the layer below, at every step

    The reset term receives no reward. Only ``reset="subtract"`` is defined under LFP (lfprop's
    propagator raises NotImplementedError for the zero reset); ``"zero"`` runs forward and under
    backprop and is a ValueError under LFP. ``eps`` is the stabiliser of the call
    (``lfp.feedback(..., eps=)``, read from the rule the engine hands every layer without one of
    its own) unless the LIF is given its own; ``rule=`` and ``composite=`` do not change the LIF
    (a composite must leave it alone, then give it ``eps``).

    Backprop (the surrogate-gradient baseline): BPTT with the reset detached, the spike's
    derivative replaced by the surrogate (``surrogate="atan"``: snntorch's
    ``surrogate.atan(alpha)``, ``(alpha/2) / (1 + (pi/2 alpha (U - threshold))^2)``;
    ``"heaviside"``: the step's own derivative, 0, so every gradient is exactly 0); then the
    wrapped layer's VJP. The surrogate is a property of the neuron, so ``lfp.gradients(net, x, y,
    loss="snn_ce_rate")`` keeps its generic signature; :meth:`SpikingSequential.set_surrogate`
    changes it for a whole network.

    Parameters
    ----------
    current : Dense or Conv2d
        The layer ``P`` whose output is the input current; its parameters are the LIF's, named
        ``current.weight`` and ``current.bias``.
    beta : float in [0, 1]
        Membrane decay (default 0.9).
    threshold : float > 0
        Firing threshold (default 1).
    reset : {"subtract", "zero"}
    surrogate : {"atan", "heaviside"}
        The spike's derivative under backprop.
    alpha : float > 0
        The atan surrogate's sharpness (snntorch's default 2).
    eps : float >= 0 or None
        The LFP stabiliser; None (default): the eps of the call.
    timesteps : int or None
        The number of time steps folded into the batch; :class:`SpikingSequential` sets it.
    """

    epsilon_only = True  # its rule is epsilon through the membrane (spec section 6)

    def __init__(
        self,
        current,
        beta=DEFAULT_BETA,
        threshold=DEFAULT_THRESHOLD,
        reset="subtract",
        *,
        surrogate="atan",
        alpha=DEFAULT_ALPHA,
        eps=None,
        timesteps=None,
    ):
        super().__init__()
        if not isinstance(current, WeightedLayer):
            raise TypeError(
                f"LIF wraps the layer that makes its input current, a Dense or a Conv2d, got "
                f"{current!r}; put pooling, Flatten and Dropout between LIF layers instead"
            )
        self.current = current
        settings = check_lif_options(beta, threshold, reset, surrogate, alpha)
        self.beta = settings["beta"]
        self.threshold = settings["threshold"]
        self.reset = settings["reset"]
        self.surrogate = settings["surrogate"]
        self.alpha = settings["alpha"]
        self.eps = None if eps is None else _real("eps", eps, "LIF", 0.0)
        self.timesteps = None if timesteps is None else check_timesteps(timesteps, "LIF")

    # -- structure: the wrapped layer is a child, so its parameters are "current.weight", ... --

    def children(self):
        return [("current", self.current)]

    def set_surrogate(self, surrogate, alpha=None):
        """Choose the spike's derivative under backprop ("atan" or "heaviside") and, when given,
        the atan sharpness ``alpha``."""
        settings = check_lif_options(
            self.beta, self.threshold, self.reset, surrogate, self.alpha if alpha is None else alpha
        )
        self.surrogate, self.alpha = settings["surrogate"], settings["alpha"]
        return self

    # -- the three passes ------------------------------------------------------------------

    def _steps(self):
        if self.timesteps is None:
            raise ValueError(
                f"{self!r} does not know the number of time steps; use it inside "
                "lfp_ref.snn.SpikingSequential(..., timesteps=T), or give LIF(..., timesteps=T) "
                "and time-folded input (T*B, ...)"
            )
        return self.timesteps

    def forward(self, x, *, repeated=False):
        """The spikes (T*B, ...) for time-folded input x (T*B, ...).

        ``repeated=True`` promises that the T steps of x are the same B rows (SpikingSequential
        says so for the static input, see the module docstring): the current is then computed
        on step 0's rows only and used at every step."""
        steps = self._steps()
        if x.ndim < 2 or x.shape[0] % steps:
            raise ValueError(
                f"{self!r} expects time-folded input (T*B, ...) with T = {steps} (step t in rows "
                f"t*B .. t*B+B-1), got shape {x.shape}"
            )
        try:
            # (T*B, ...): all steps in one call; repeated: (B, ...), step 0's rows (a view)
            current = self.current.forward(x[: x.shape[0] // steps] if repeated else x)
        except ValueError as err:
            raise ValueError(
                f"LIF around {err} (time is folded into the batch: T = {steps} steps x B = "
                f"{x.shape[0] // steps} samples = {x.shape[0]} rows)"
            ) from err
        bk = backend_of(current)
        current = bk.contiguous(current)
        shape = (x.shape[0], *current.shape[1:])  # (T*B, ...)
        membrane = bk.empty(shape, current.dtype)
        spikes = bk.empty(shape, current.dtype)
        rows = (steps, -1)  # (T, B*N) views
        bk.lif.lif_forward(
            # repeated: one step's current (1, B*N), which the kernel uses at every step
            current.reshape((1, -1) if repeated else rows),
            self.beta,
            self.threshold,
            self.reset,
            membrane.reshape(rows),
            spikes.reshape(rows),
        )
        self.save((membrane, spikes, steps, bool(repeated)))
        return spikes

    def _check_like(self, value, membrane, what):
        if getattr(value, "shape", None) != membrane.shape:
            raise ValueError(
                f"{self!r}: {what} must have the spikes' (time-folded) shape {membrane.shape}, "
                f"got {getattr(value, 'shape', type(value).__name__)}"
            )

    def _stabilizer(self, rule_for):
        """``eps``: the LIF's own, or the stabiliser of the call (the engine hands every layer
        without a rule of its own ``Epsilon(eps)``)."""
        if self.eps is not None:
            return self.eps
        fix = "give the LIF its own stabiliser, LIF(..., eps=1e-6)"
        try:
            rule = rule_for(self)
        except ValueError as err:  # a composite resolved for the model leaves the LIF out
            raise ValueError(
                f"{self!r} consults no rule and takes only the stabiliser eps of the call, but "
                f"this rule assignment has none for it ({err}); {fix}"
            ) from err
        if not isinstance(rule, Epsilon):
            # the LIF's rule is LFP-epsilon through the membrane (spec section 6); a modified-
            # weights rule (zplus, alpha-beta, ...) would be ignored, so it is refused
            raise ValueError(
                f"{self!r} propagates by the epsilon rule through its membrane and takes only "
                f"the stabiliser eps of the rule the engine hands it, but got {rule!r}; use "
                f"rule 'epsilon' for the spiking layers, or {fix}"
            )
        return rule.eps

    def feedback(self, reward, rule_for, input_reward=True):
        """LFP through the membrane and the wrapped layer (see the class docstring):
        ``(R_x, {"current.weight": F_W, "current.bias": F_b})``."""
        membrane, _, steps, repeated = self.saved()
        if self.reset != "subtract":
            raise ValueError(
                f"{self!r}: LFP through the LIF neuron is defined for reset='subtract' only "
                "(lfp-spec.md section 6; lfprop's propagator raises NotImplementedError for the "
                "zero reset); build the LIF with reset='subtract' for LFP, or train this one "
                "with surrogate gradients (lfp.gradients)"
            )
        self._check_like(reward, membrane, "the reward")
        eps = self._stabilizer(rule_for)
        bk = backend_of(reward, membrane)
        reward = bk.contiguous(reward, dtype=membrane.dtype)
        summed = repeated and not input_reward  # only sum_t rho_t is needed (see _current_vjp)
        rho = bk.empty(self._rho_shape(membrane, steps, summed), membrane.dtype)
        rows = (steps, -1)
        bk.lif.lif_feedback(
            reward.reshape(rows),
            membrane.reshape(rows),
            self.beta,
            self.threshold,
            eps,
            rho.reshape((1, -1) if summed else rows),
        )
        self.current.begin_reverse()  # the wrapped layer's use that matches this one
        reward_in, vjps = self._current_vjp(rho, steps, repeated, input_reward, summed)
        kernels = bk.elementwise
        if reward_in is not None:  # None: nobody needs it (training)
            x = self.current.cached_input
            if repeated:  # x (B, ...), the input of every step: R_x_t = x * VJP_x(rho_t)
                for reward_t in reward_in.reshape(steps, *x.shape):
                    kernels.multiply(reward_t, x, out=reward_t)
            else:
                kernels.multiply(reward_in, x, out=reward_in)  # R_x
        params = self.current.own_parameters()
        feedback = {
            f"current.{name}": kernels.multiply_abs(v, params[name], out=v)  # |theta| VJP
            for name, v in vjps.items()
        }
        return reward_in, feedback

    def backward(self, grad, input_grad=True):
        """BPTT with the surrogate derivative of the spike: ``(dL/dx, {"current.weight": ...})``."""
        membrane, _, steps, repeated = self.saved()
        self._check_like(grad, membrane, "the gradient")
        bk = backend_of(grad, membrane)
        grad = bk.contiguous(grad, dtype=membrane.dtype)
        summed = repeated and not input_grad
        grad_current = bk.empty(self._rho_shape(membrane, steps, summed), membrane.dtype)
        rows = (steps, -1)
        bk.lif.lif_surrogate_backward(
            grad.reshape(rows),
            membrane.reshape(rows),
            self.beta,
            self.threshold,
            self.alpha,
            grad_current.reshape((1, -1) if summed else rows),
            self.surrogate,
            self.reset,
        )
        self.current.begin_reverse()
        grad_in, grads = self._current_vjp(grad_current, steps, repeated, input_grad, summed)
        return grad_in, {f"current.{name}": value for name, value in grads.items()}

    @staticmethod
    def _rho_shape(membrane, steps, summed):
        """The shape of the time loop's output: the membrane's (T*B, ...), or one step's
        (B, ...) when the kernel sums it over the steps."""
        return (membrane.shape[0] // steps, *membrane.shape[1:]) if summed else membrane.shape

    def _current_vjp(self, v, steps, repeated, input_vjp, summed=False):
        """The wrapped layer's ``(VJP_x(v), {name: VJP_theta(v)})`` for v (T*B, ...) at the
        current's rows; VJP_x is None unless ``input_vjp``. ``summed``: v is already the sum
        over the steps (B, ...), which the time-loop kernel took while it went (no T*B array
        written and read again; only where the input is repeated and VJP_x is not asked for).

        ``repeated`` (the wrapped layer saw only step 0's B rows, x_t = x): VJP_theta is linear
        in v and the input is the same at every step, so ``sum_t VJP_theta(v_t) at x_t`` is
        ``VJP_theta(sum_t v_t) at x``, one VJP on B rows (equal in exact arithmetic; the sum over
        t is taken first). VJP_x is still computed step by step, each on B rows, for the layer
        below and the per-step accounts (only when asked: training never asks the first layer).
        """
        if not repeated:
            return self.current.vjp(v, input_vjp=input_vjp)
        if summed:
            return None, self.current.vjp(v, input_vjp=False)[1]
        per_step = v.reshape(steps, -1, *v.shape[1:])  # (T, B, ...)
        # sum_t v_t from t = T-1 down, the order of the kernels' own sum (``summed``): the
        # weights' feedback is the same bit for bit whether or not VJP_x is asked for
        total = per_step[-1].copy()
        for t in range(steps - 2, -1, -1):
            total += per_step[t]
        _, grads = self.current.vjp(total, input_vjp=False)
        if not input_vjp:
            return None, grads
        x = self.current.cached_input  # (B, ...)
        bk = backend_of(v, x)
        out = bk.empty((v.shape[0], *x.shape[1:]), x.dtype)
        out_steps = out.reshape(steps, *x.shape)
        for t in range(steps):
            out_steps[t], _ = self.current.vjp(per_step[t], input_vjp=True)
        return out, grads

    # -- where the reward goes, step by step ---------------------------------------------------

    def lfp_accounts(self, reward, rule_for=None, eps=None, reward_leaving=None):
        """Where the reward goes at each time step of this LIF's saved use: a dict of float64
        arrays of shape (T,), each summed over the batch and the neurons (or the channels and
        positions of a Conv2d current). Recomputes ``rho`` with the feedback kernel; nothing in
        the layer changes.

        With ``A_t = r_t + M_t``, ``pre_t = U_t + reset_t threshold = beta U_{t-1} + I_t`` (the
        membrane before the reset) and ``D_t = |U_{t-1}| + |pre_t - U_{t-1}|``, the rule hands
        ``rho_t I_t`` to the current (below and to its bias) and ``rho_t beta U_{t-1}`` to step
        t-1, so that ``A_t = rho_t stab(D_t)`` splits into::

            arriving + from_next = to_below + bias + to_previous + normaliser + stabiliser + other

        ``arriving``
            ``sum r_t``: the reward arriving at the spikes ``S_t`` from the layer above.
        ``from_next``
            ``sum M_t``: what step t+1 handed down (0 at t = T-1; ``from_next[t] =
            to_previous[t+1]``).
        ``to_below``
            ``sum R_x_t``: what leaves to the layer below at step t (``reward_leaving``, the
            layer's ``R_x`` (T*B, ...), when given; else ``sum rho_t (I_t - b)``, equal in exact
            arithmetic).
        ``bias``
            ``sum rho_t b``: absorbed by the current's bias (``sign(b) F_b`` summed over t).
        ``to_previous``
            ``sum M_{t-1} = sum beta U_{t-1} rho_t``: handed to step t-1 (0 at t = 0).
        ``normaliser``
            ``sum rho_t (D_t - pre_t)``: NOT passed on. The normaliser sums absolute values,
            ``D_t - pre_t = (|U_{t-1}| - U_{t-1}) + (|pre_t - U_{t-1}| - (pre_t - U_{t-1}))``,
            nonzero where the previous membrane or the step's change before the reset is
            negative. The reset term ``-reset_t threshold`` of ``U_t`` receives nothing: ``D_t``
            is the pre-reset membrane's, and no message goes to the reset.
        ``stabiliser``
            ``sum rho_t (stab(D_t) - D_t) = eps sum rho_t``: NOT passed on.
        ``other``
            the rest: rounding (the float32 kernels' rho against these float64 sums).

        So the rule is not conservative: ``normaliser + stabiliser`` is lost at every step
        (measured, not asserted: :func:`lfp_ref.verify.theory.snn_shares`). Summed over t the
        transfers between steps cancel (``to_previous[0] = 0``, ``from_next[T-1] = 0``).

        Parameters
        ----------
        reward : array (T*B, ...)
            The reward that arrived at this layer's spikes (what ``feedback`` was given).
        rule_for, eps
            The stabiliser: ``eps``, else the LIF's own, else the one ``rule_for(self)`` carries
            (as :meth:`feedback` finds it).
        reward_leaving : array (T*B, ...) or None
            The ``R_x`` the layer's :meth:`feedback` returned, to sum instead of the identity.
        """
        membrane, _, steps, repeated = self.saved()
        self._check_like(reward, membrane, "the reward")
        if eps is None:
            if self.eps is None and rule_for is None:
                raise ValueError(
                    f"{self!r}.lfp_accounts needs the stabiliser: pass eps= or the rule_for of "
                    "the feedback call"
                )
            eps = self._stabilizer(rule_for)
        bk = backend_of(reward, membrane)
        reward = bk.contiguous(reward, dtype=membrane.dtype)
        rho, handed = bk.empty_like(membrane), bk.empty_like(membrane)
        rows = (steps, -1)
        bk.lif.lif_feedback(
            reward.reshape(rows),
            membrane.reshape(rows),
            self.beta,
            self.threshold,
            eps,
            rho.reshape(rows),
            handed.reshape(rows),
        )
        self.current.begin_reverse()  # the wrapped layer's use that matches this one
        current = self.current.cached_output
        host = bk.to_numpy

        def per_step(values):  # (T*B, ...) -> (T,), float64 sums
            return np.asarray(host(values), np.float64).reshape(steps, -1).sum(axis=1)

        u = np.asarray(host(membrane), np.float64).reshape(steps, -1)
        rho64 = np.asarray(host(rho), np.float64).reshape(steps, -1)
        previous = np.vstack([np.zeros((1, u.shape[1])), u[:-1]])  # U_{t-1}, U_{-1} = 0
        pre = u + (previous > self.threshold) * self.threshold  # U_t + reset_t threshold
        normaliser = np.abs(previous) + np.abs(pre - previous)  # D_t
        bias = self.current.own_parameters().get("bias")
        if bias is None:
            bias_rows = np.zeros_like(rho64)
        else:  # b broadcast over the channel axis of I (Dense: (O,), Conv2d: (C, H, W))
            per_channel = np.asarray(host(bias), np.float64).reshape(-1, 1)
            shape = (steps, -1, per_channel.shape[0], int(np.prod(current.shape[2:], dtype=int)))
            bias_rows = (rho64.reshape(shape) * per_channel).reshape(steps, -1)
        handed_steps = per_step(handed)
        if reward_leaving is None:
            current64 = np.asarray(host(current), np.float64).reshape(1 if repeated else steps, -1)
            to_below = (rho64 * current64).sum(axis=1) - bias_rows.sum(axis=1)
        else:
            self._check_leaving(reward_leaving)
            to_below = per_step(reward_leaving)
        accounts = {
            "arriving": per_step(reward),
            "from_next": np.append(handed_steps[1:], 0.0),
            "to_below": to_below,
            "bias": bias_rows.sum(axis=1),
            "to_previous": handed_steps,
            "normaliser": (rho64 * (normaliser - pre)).sum(axis=1),
            "stabiliser": eps * rho64.sum(axis=1),
        }
        passed = sum(accounts[k] for k in ("to_below", "bias", "to_previous", "normaliser"))
        accounts["other"] = (
            accounts["arriving"] + accounts["from_next"] - passed - accounts["stabiliser"]
        )
        return accounts

    def _check_leaving(self, value):
        x_shape = self.current.cached_input.shape  # (B, ...) when the input was repeated
        expected = (self.saved()[0].shape[0], *x_shape[1:])  # (T*B, ...)
        if getattr(value, "shape", None) != expected:
            raise ValueError(
                f"{self!r}: reward_leaving must have the input's (time-folded) shape {expected}, "
                f"got {getattr(value, 'shape', type(value).__name__)}"
            )

    # -- what the last pass computed -----------------------------------------------------------

    @property
    def cached_membrane(self):
        """The membranes ``U`` of the use being reversed (after a forward: its own), (T, B, ...)."""
        membrane, _, steps, _ = self.saved()
        return membrane.reshape(steps, -1, *membrane.shape[1:])

    @property
    def cached_spikes(self):
        """The spikes ``S`` of the use being reversed, (T, B, ...)."""
        _, spikes, steps, _ = self.saved()
        return spikes.reshape(steps, -1, *spikes.shape[1:])

    def extra_repr(self):
        parts = [repr(self.current), f"beta={self.beta:g}", f"threshold={self.threshold:g}"]
        if self.reset != "subtract":
            parts.append(f"reset={self.reset!r}")
        if self.surrogate != "atan" or self.alpha != DEFAULT_ALPHA:
            parts.append(f"surrogate={self.surrogate!r}, alpha={self.alpha:g}")
        if self.eps is not None:
            parts.append(f"eps={self.eps:g}")
        return ", ".join(parts)
