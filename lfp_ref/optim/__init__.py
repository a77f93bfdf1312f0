"""Optimizers, gradient clipping and learning-rate schedules with ``torch.optim`` semantics.

LFP (spec section 4) hands the optimizer the "gradient" ``g = -F`` and expects a trajectory that
matches lfprop driven by ``torch.optim`` step for step. Everything here is a transcription of
torch's *single-tensor* (``foreach=False``) code path, with the same order of floating-point
operations, on one parameter group:

- :class:`SGD` (momentum, dampening, Nesterov, L2 weight decay), :class:`Adam` (optionally
  AMSGrad) and :class:`AdamW` (decoupled weight decay) update the live parameter arrays in place;
- :func:`clip_grad_norm` is ``torch.nn.utils.clip_grad_norm_`` with the L2 norm;
  :func:`clip_coefficient` is its factor alone, which the engine's training steps fold into
  ``step(grads, scale=...)`` instead of rewriting the gradients;
- :class:`StepLR` and :class:`OneCycleLR` are ``torch.optim.lr_scheduler``'s schedules, stepped
  after ``optimizer.step``.

Parameters and gradients are addressed by name (``model.named_parameters()``), not by position.
Hyper-parameters are plain attributes (``opt.lr``, ``opt.momentum``, ``opt.betas``) so that a
scheduler, or a person, can change them between steps. ``state_dict()`` of every object here is a
flat ``dict[str, python scalar | str | ndarray]`` that ``np.savez`` stores as is::

    np.savez(path, **opt.state_dict())
    opt.load_state_dict(dict(np.load(path)))

Scalars are computed as Python floats (IEEE double, as torch does on the host) and enter array
arithmetic as "weak" scalars, so float32 parameters and their state stay float32 and the scalar
is rounded to the parameter's dtype, like torch's ``Scalar`` arguments. Bitwise agreement with
torch itself is not promised: torch's vectorised CPU loops may fuse a multiply-add that NumPy
rounds twice. Agreement with torch's algorithm is checked to rtol 1e-12 in float64.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping

import numpy as np

from ..kernels.cpu.elementwise import all_finite, sgd_update, sum_of_squares

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "clip_grad_norm",
    "clip_coefficient",
    "LRScheduler",
    "StepLR",
    "OneCycleLR",
]

StateValue = float | int | bool | str | np.ndarray

_SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_HYPER_PREFIX = "param_group/"
_STATE_PREFIX = "state/"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _collect_parameters(params) -> dict[str, np.ndarray]:
    """Turn a model, a dict or ``(name, array)`` pairs into an ordered ``{name: live array}``."""
    if hasattr(params, "named_parameters"):
        pairs = list(params.named_parameters())
        origin = f"{type(params).__name__}.named_parameters()"
    elif isinstance(params, Mapping):
        pairs = list(params.items())
        origin = "the parameter dict"
    elif isinstance(params, Iterable) and not isinstance(params, (str, bytes, np.ndarray)):
        pairs = list(params)
        origin = "the parameter list"
    else:
        raise TypeError(
            "an optimizer needs a model with named_parameters(), a dict name -> ndarray or a "
            f"list of (name, ndarray) pairs, got {type(params).__name__}"
        )
    if not pairs:
        raise ValueError(f"{origin} yielded no parameters; the optimizer would have nothing to do")
    out: dict[str, np.ndarray] = {}
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise TypeError(f"{origin} must yield (name, ndarray) pairs, got {pair!r:.80}")
        name, array = pair
        if not isinstance(name, str):
            raise TypeError(f"parameter names must be str, got {name!r} from {origin}")
        if name in out:
            raise ValueError(f"parameter name {name!r} appears twice in {origin}")
        if not isinstance(array, np.ndarray):
            raise TypeError(
                f"parameter {name!r} is a {type(array).__name__}, not an ndarray; the optimizer "
                "updates parameters in place, so it needs the live array itself"
            )
        if array.dtype not in _SUPPORTED_DTYPES:
            raise ValueError(
                f"parameter {name!r} has dtype {array.dtype}; only float32 and float64 are "
                "supported (cast the model with .astype(np.float32) or np.float64)"
            )
        if not array.flags.writeable:
            raise ValueError(
                f"parameter {name!r} is a read-only array; the optimizer updates it in place"
            )
        out[name] = array
    return out


def _is_finite(array: np.ndarray) -> bool:
    """Whether every entry is finite: one fused pass for C-contiguous arrays (no boolean
    temporary), NumPy otherwise."""
    if array.flags.c_contiguous:
        return all_finite(array)
    return bool(np.isfinite(array).all())


def _scaled(grad: np.ndarray, scale: float) -> np.ndarray:
    """``scale * grad`` in grad's dtype (a new array; grad itself when scale is 1)."""
    return grad if scale == 1.0 else grad * scale


def _same_buffer(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays are the same view of the same memory (``a is b`` up to view objects)."""
    return a is b or (
        a.ctypes.data == b.ctypes.data
        and a.shape == b.shape
        and a.strides == b.strides
        and a.dtype == b.dtype
    )


def _plain(value, kind: type, key: str):
    """A python scalar from a python scalar or a 0-d array (what ``np.load`` hands back)."""
    if isinstance(value, np.ndarray):
        if value.ndim != 0:
            raise ValueError(f"state_dict[{key!r}] should be a scalar, got shape {value.shape}")
        value = value.item()
    if kind is bool:
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"state_dict[{key!r}] should be a bool, got {value!r}")
        return bool(value)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(f"state_dict[{key!r}] should be an int, got {value!r}")
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"state_dict[{key!r}] should be a float, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ValueError(f"state_dict[{key!r}] should be a str, got {value!r}")
        return value
    raise AssertionError(kind)


def _require(state_dict: Mapping, key: str, owner: str):
    if key not in state_dict:
        raise ValueError(f"{owner} state_dict is missing {key!r}; was it saved by {owner}?")
    return state_dict[key]


def _check_kind(state_dict: Mapping, kind_key: str, expected: str) -> None:
    kind = _plain(_require(state_dict, kind_key, expected), str, kind_key)
    if kind != expected:
        raise ValueError(
            f"state_dict was saved by {kind}, cannot load it into {expected}; "
            f"build a {kind} or load a {expected} checkpoint"
        )


def _check_no_extra_keys(state_dict: Mapping, known: set[str], owner: str) -> None:
    extra = sorted(k for k in state_dict if k not in known)
    if extra:
        raise ValueError(
            f"{owner} state_dict has unexpected keys {extra[:5]}"
            f"{' ...' if len(extra) > 5 else ''}; strip other objects' keys before loading"
        )


# --------------------------------------------------------------------------------------------
# optimizers
# --------------------------------------------------------------------------------------------


class Optimizer:
    """Base class: named live parameters, per-name state, validated ``step(grads)``.

    Parameters
    ----------
    params : model, dict or iterable of (str, ndarray)
        ``model.named_parameters()`` is called once; the arrays it yields are the live parameters
        and are updated in place, never rebound. If ``params`` is a model, every ``step`` checks
        that the model still holds the same arrays (rebinding a parameter is an error, where
        torch would silently keep updating the orphaned tensor).

    Attributes
    ----------
    parameters : dict[str, ndarray]
        The live parameters, in ``named_parameters()`` order.
    state : dict[str, dict[str, ndarray | int]]
        Per-parameter state, created on the parameter's first update (arrays in its dtype).
    """

    #: hyper-parameter attribute name -> python type, in state_dict order
    _hyperparameters: dict[str, type] = {}

    def __init__(self, params):
        self._model = params if hasattr(params, "named_parameters") else None
        self.parameters = _collect_parameters(params)
        self.state: dict[str, dict[str, np.ndarray | int]] = {}

    # -- public ---------------------------------------------------------------------------

    def step(self, grads: Mapping[str, np.ndarray], scale: float = 1.0) -> None:
        """Update every parameter that has a gradient in ``grads``, in place.

        Parameters
        ----------
        grads : Mapping[str, ndarray]
            Gradient per parameter name, same shape and dtype as the parameter. A parameter
            without an entry is skipped and its state left untouched (torch's ``p.grad is
            None``). The gradient arrays are not modified.
        scale : float
            The step uses ``scale * g`` as the gradient (the product rounded to the parameter's
            dtype, as ``g *= scale`` would), inside the update's own pass: the engine's steps
            pass the sign convention times the clipping coefficient here rather than rewrite
            every gradient array twice. 1.0 is torch's step.

        Raises
        ------
        ValueError
            An unknown name, a wrong shape or dtype, or a non-finite entry. All gradients are
            checked before any parameter changes, so a failed step leaves the model as it was.
        """
        checked = self._check_grads(grads)
        self._check_live_parameters()
        self._validate_hyperparameters()
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
            raise ValueError(f"scale must be a finite float, got {scale!r}")
        scale = float(scale)
        if not math.isfinite(scale):
            raise ValueError(f"scale must be a finite float, got {scale}")
        for name, param, grad in checked:
            self._update(param, grad, self.state.setdefault(name, {}), scale)

    def state_dict(self) -> dict[str, StateValue]:
        """The optimizer as a flat dict, ready for ``np.savez(path, **opt.state_dict())``.

        Keys: ``"optimizer"`` (the class name), ``"param_group/<hyper-parameter>"`` (python
        scalars; ``betas`` as a float64 array of 2) and ``"state/<param name>/<buffer>"``
        (copies of the state arrays; ``step`` as an int).
        """
        out: dict[str, StateValue] = {"optimizer": type(self).__name__}
        for key, kind in self._hyperparameters.items():
            value = getattr(self, key)
            if key == "betas":
                out[_HYPER_PREFIX + key] = np.array([float(v) for v in value], dtype=np.float64)
            else:
                out[_HYPER_PREFIX + key] = kind(value)
        for name, entries in self.state.items():
            for key, value in entries.items():
                out[f"{_STATE_PREFIX}{name}/{key}"] = (
                    value.copy() if isinstance(value, np.ndarray) else int(value)
                )
        return out

    def load_state_dict(self, state_dict: Mapping[str, StateValue]) -> None:
        """Restore hyper-parameters and state saved by :meth:`state_dict` (or read back from npz).

        The whole dict is checked before anything changes. State arrays are copied and cast to
        the parameter's dtype (as torch does); the parameters themselves are not touched.
        """
        owner = type(self).__name__
        _check_kind(state_dict, "optimizer", owner)
        known = {"optimizer"}
        hyper = {}
        for key, kind in self._hyperparameters.items():
            full = _HYPER_PREFIX + key
            known.add(full)
            value = _require(state_dict, full, owner)
            if key == "betas":
                betas = np.asarray(value, dtype=np.float64)
                if betas.shape != (2,):
                    raise ValueError(f"state_dict[{full!r}] should hold 2 floats, got {value!r}")
                hyper[key] = (float(betas[0]), float(betas[1]))
            else:
                hyper[key] = _plain(value, kind, full)
        state: dict[str, dict[str, np.ndarray | int]] = {}
        for full, value in state_dict.items():
            if not full.startswith(_STATE_PREFIX):
                continue
            name, sep, key = full[len(_STATE_PREFIX) :].rpartition("/")
            if not sep or name not in self.parameters:
                raise ValueError(
                    f"state_dict entry {full!r} is for a parameter this {owner} does not have; "
                    f"its parameters are {list(self.parameters)[:8]}"
                )
            if key not in self._state_keys():
                raise ValueError(
                    f"state_dict entry {full!r}: {owner} keeps {sorted(self._state_keys())} "
                    "per parameter"
                )
            known.add(full)
            if key == "step":
                state.setdefault(name, {})[key] = _plain(value, int, full)
                continue
            param = self.parameters[name]
            array = np.asarray(value)
            if array.shape != param.shape:
                raise ValueError(
                    f"state_dict entry {full!r} has shape {array.shape} but parameter {name!r} "
                    f"has shape {param.shape}; the checkpoint is for a different model"
                )
            state.setdefault(name, {})[key] = np.array(array, dtype=param.dtype, copy=True)
        _check_no_extra_keys(state_dict, known, owner)
        for name, entries in state.items():
            missing = self._required_state_keys(hyper) - set(entries)
            if missing:
                raise ValueError(
                    f"state_dict has an incomplete state for parameter {name!r}: "
                    f"missing {sorted(missing)}"
                )
        for key, value in hyper.items():
            setattr(self, key, value)
        self.state = state

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._hyperparameters)
        return f"{type(self).__name__}({hyper}; {len(self.parameters)} parameters)"

    # -- subclass hooks ---------------------------------------------------------------------

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict, scale: float) -> None:
        raise NotImplementedError

    def _validate_hyperparameters(self) -> None:
        raise NotImplementedError

    def _state_keys(self) -> set[str]:
        raise NotImplementedError

    def _required_state_keys(self, hyper: Mapping) -> set[str]:
        raise NotImplementedError

    # -- checks -----------------------------------------------------------------------------

    def _check_grads(self, grads) -> list[tuple[str, np.ndarray, np.ndarray]]:
        if not isinstance(grads, Mapping):
            raise TypeError(
                f"step(grads) needs a dict parameter name -> ndarray, got {type(grads).__name__}"
            )
        unknown = [name for name in grads if name not in self.parameters]
        if unknown:
            raise ValueError(
                f"grads has entries for unknown parameters {unknown[:5]}; this "
                f"{type(self).__name__} updates {list(self.parameters)[:8]}"
                f"{' ...' if len(self.parameters) > 8 else ''} (names from named_parameters())"
            )
        checked = []
        for name, param in self.parameters.items():
            if name not in grads:
                continue
            grad = grads[name]
            if not isinstance(grad, np.ndarray):
                raise ValueError(
                    f"grad for parameter {name!r} is a {type(grad).__name__}, expected an ndarray "
                    f"of shape {param.shape} and dtype {param.dtype}"
                )
            if grad.shape != param.shape:
                raise ValueError(
                    f"grad for parameter {name!r} has shape {grad.shape} but the parameter has "
                    f"shape {param.shape}"
                )
            if grad.dtype != param.dtype:
                raise ValueError(
                    f"grad for parameter {name!r} has dtype {grad.dtype} but the parameter is "
                    f"{param.dtype}; cast it with .astype(np.{param.dtype.name})"
                )
            if not _is_finite(grad):
                bad = grad.size - int(np.count_nonzero(np.isfinite(grad)))
                raise ValueError(
                    f"grad for parameter {name!r} has {bad} non-finite entries (NaN or inf) out "
                    f"of {grad.size}; the feedback overflowed or diverged upstream (try a smaller "
                    "lr, clip_grad_norm, or a larger stabiliser eps)"
                )
            checked.append((name, param, grad))
        return checked

    def _check_live_parameters(self) -> None:
        if self._model is None:
            return
        current = dict(self._model.named_parameters())
        for name, param in self.parameters.items():
            live = current.get(name)
            if live is None or not isinstance(live, np.ndarray) or not _same_buffer(param, live):
                raise ValueError(
                    f"the model's parameter {name!r} is no longer the array this "
                    f"{type(self).__name__} was built with (it was rebound or removed); update "
                    "parameters in place (p[...] = new) or build a new optimizer"
                )


def _check_lr(lr) -> None:
    if not (lr >= 0.0 and math.isfinite(lr)):
        raise ValueError(f"Invalid learning rate: {lr} (need a finite lr >= 0)")


def _check_nonnegative(name: str, value) -> None:
    if not (value >= 0.0 and math.isfinite(value)):
        raise ValueError(f"Invalid {name} value: {value} (need a finite value >= 0)")


class SGD(Optimizer):
    r"""Stochastic gradient descent with momentum, ``torch.optim.SGD`` (``maximize=False``).

    For each parameter ``p`` with gradient ``g``, in this order::

        g   = g + weight_decay * p                        if weight_decay != 0
        buf = g (a copy)                                  first step with momentum != 0
        buf = momentum * buf + (1 - dampening) * g        later steps
        g   = g + momentum * buf   if nesterov   else   g = buf      (if momentum != 0)
        p   = p + (-lr) * g

    Parameters
    ----------
    params : model, dict or iterable of (str, ndarray)
        See :class:`Optimizer`.
    lr : float
        Learning rate, default 0.1 (recent torch defaults to 1e-3; the LFP experiments pass it).
    momentum, dampening, weight_decay : float
        As in torch; all default 0.
    nesterov : bool
        Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0``.

    Notes
    -----
    The momentum buffer is created on the first step at which ``momentum != 0`` (a OneCycleLR
    that cycles momentum turns a plain SGD into momentum SGD, as in torch). State per parameter:
    ``momentum_buffer``.
    """

    _hyperparameters = {
        "lr": float,
        "momentum": float,
        "dampening": float,
        "nesterov": bool,
        "weight_decay": float,
    }

    def __init__(
        self,
        model,
        lr: float = 0.1,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ):
        super().__init__(model)
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.dampening = float(dampening)
        self.nesterov = bool(nesterov)
        self.weight_decay = float(weight_decay)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError(
                "Nesterov momentum requires a momentum and zero dampening "
                f"(got momentum={momentum}, dampening={dampening})"
            )
        self._validate_hyperparameters()

    def _validate_hyperparameters(self) -> None:
        _check_lr(self.lr)
        _check_nonnegative("momentum", self.momentum)
        _check_nonnegative("weight_decay", self.weight_decay)
        if not math.isfinite(self.dampening):
            raise ValueError(f"Invalid dampening value: {self.dampening}")

    def _state_keys(self) -> set[str]:
        return {"momentum_buffer"}

    def _required_state_keys(self, hyper: Mapping) -> set[str]:
        return set()

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict, scale: float) -> None:
        buf = state.get("momentum_buffer") if self.momentum != 0 else None
        contiguous = (param, grad) if buf is None else (param, grad, buf)
        if all(a.flags.c_contiguous for a in contiguous):
            # the same operations in the same order, fused into one pass (no temporaries)
            first_step = self.momentum != 0 and buf is None
            if first_step:
                buf = state["momentum_buffer"] = np.empty_like(param)
            sgd_update(
                param,
                grad,
                buf,
                self.lr,
                self.momentum,
                self.dampening,
                self.weight_decay,
                self.nesterov,
                first_step,
                scale,
            )
            return
        grad = _scaled(grad, scale)
        if self.weight_decay != 0:
            grad = grad + self.weight_decay * param  # grad.add(param, alpha=weight_decay)
        if self.momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.copy()
            else:
                buf *= self.momentum
                buf += (1 - self.dampening) * grad
            if self.nesterov:
                grad = grad + self.momentum * buf
            else:
                grad = buf
        param += (-self.lr) * grad  # param.add_(grad, alpha=-lr)


class Adam(Optimizer):
    r"""Adam, ``torch.optim.Adam`` (``foreach=False``, ``maximize=False``, ``capturable=False``).

    With ``t`` the per-parameter step count (after increment), in this order::

        g    = g + weight_decay * p                     (AdamW instead: p = p * (1 - lr*wd))
        m    = lerp(m, g, 1 - beta1)                    = beta1 * m + (1 - beta1) * g
        v    = v * beta2 + ((1 - beta2) * g) * g
        vmax = max(vmax, v)                             if amsgrad
        bc1  = 1 - beta1**t,    bc2 = 1 - beta2**t      (python floats)
        denom = sqrt(vmax or v) / sqrt(bc2) + eps
        p    = p + ((-lr / bc1) * m) / denom

    ``lerp(a, b, w)`` is torch's: ``a + w * (b - a)`` if ``|w| < 0.5`` else
    ``b - (b - a) * (1 - w)``. AMSGrad takes the maximum of the *raw* second moments and
    bias-corrects afterwards (the code's behaviour; some versions of torch's documentation write
    the maximum of the bias-corrected ones, which is a different algorithm).

    Parameters
    ----------
    params : model, dict or iterable of (str, ndarray)
        See :class:`Optimizer`.
    lr : float
        Learning rate, default 1e-3.
    betas : tuple of float
        ``(beta1, beta2)``, default ``(0.9, 0.999)``; each in ``[0, 1)``.
    eps : float
        Added to the denominator, default 1e-8.
    weight_decay : float
        L2 penalty added to the gradient, default 0.
    amsgrad : bool
        Use the running maximum of the second moment, default False.

    Notes
    -----
    State per parameter: ``step`` (int; torch keeps a float32 tensor, identical below 2**24),
    ``exp_avg``, ``exp_avg_sq`` and, with ``amsgrad``, ``max_exp_avg_sq``.
    """

    _hyperparameters = {
        "lr": float,
        "betas": tuple,
        "eps": float,
        "weight_decay": float,
        "amsgrad": bool,
    }
    _decoupled_weight_decay = False

    def __init__(
        self,
        model,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ):
        super().__init__(model)
        if len(betas) != 2:
            raise ValueError(f"betas must be (beta1, beta2), got {betas!r}")
        self.lr = float(lr)
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)
        self.amsgrad = bool(amsgrad)
        self._validate_hyperparameters()

    def _validate_hyperparameters(self) -> None:
        _check_lr(self.lr)
        _check_nonnegative("epsilon", self.eps)
        for index, beta in enumerate(self.betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(
                    f"Invalid beta parameter at index {index}: {beta} (need 0 <= beta < 1)"
                )
        _check_nonnegative("weight_decay", self.weight_decay)

    def _state_keys(self) -> set[str]:
        return {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}

    def _required_state_keys(self, hyper: Mapping) -> set[str]:
        keys = {"step", "exp_avg", "exp_avg_sq"}
        return keys | {"max_exp_avg_sq"} if hyper["amsgrad"] else keys

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict, scale: float) -> None:
        grad = _scaled(grad, scale)
        beta1, beta2 = self.betas
        lr, weight_decay, eps = self.lr, self.weight_decay, self.eps
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(param)
            state["exp_avg_sq"] = np.zeros_like(param)
            if self.amsgrad:
                state["max_exp_avg_sq"] = np.zeros_like(param)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        state["step"] += 1
        step = float(state["step"])

        if weight_decay != 0:
            if self._decoupled_weight_decay:
                param *= 1 - lr * weight_decay
            else:
                grad = grad + weight_decay * param  # grad.add(param, alpha=weight_decay)

        # exp_avg.lerp_(grad, 1 - beta1): the weight and 1 - weight in the parameter's dtype
        weight = param.dtype.type(1 - beta1)
        if abs(weight) < 0.5:
            exp_avg += weight * (grad - exp_avg)
        else:
            exp_avg[...] = grad - (grad - exp_avg) * (1 - weight)
        # exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        exp_avg_sq *= beta2
        exp_avg_sq += ((1 - beta2) * grad) * grad

        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        step_size = lr / bias_correction1
        bias_correction2_sqrt = math.sqrt(bias_correction2)

        if self.amsgrad:
            max_exp_avg_sq = state.setdefault("max_exp_avg_sq", np.zeros_like(param))
            np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
            denom = np.sqrt(max_exp_avg_sq) / bias_correction2_sqrt
        else:
            denom = np.sqrt(exp_avg_sq) / bias_correction2_sqrt
        denom += eps
        # param.addcdiv_(exp_avg, denom, value=-step_size) = p + (value * exp_avg) / denom
        param += ((-step_size) * exp_avg) / denom


class AdamW(Adam):
    r"""AdamW, ``torch.optim.AdamW``: Adam with decoupled weight decay.

    The step is :class:`Adam`'s with the L2 term replaced by a decay of the parameter, applied
    first (after the step count is incremented)::

        p = p * (1 - lr * weight_decay)

    and then the Adam update with the undecayed gradient ``g``. Same parameters as
    :class:`Adam`, except ``weight_decay`` defaults to ``1e-2``.
    """

    _decoupled_weight_decay = True

    def __init__(
        self,
        model,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ):
        super().__init__(
            model, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad
        )


# --------------------------------------------------------------------------------------------
# gradient clipping
# --------------------------------------------------------------------------------------------


def clip_grad_norm(grads, max_norm: float) -> float:
    r"""Scale all gradients in place so that their global L2 norm is at most about ``max_norm``.

    ``torch.nn.utils.clip_grad_norm_`` with ``norm_type=2``::

        total = || (||g_1||_2, ..., ||g_n||_2) ||_2          (in float64)
        factor = min(1, max_norm / (total + 1e-6))
        g_k = g_k * factor                                    for every k

    Parameters
    ----------
    grads : Mapping[str, ndarray] or iterable of ndarray or ndarray
        Floating-point, writeable gradient arrays; modified in place.
    max_norm : float
        Positive, finite.

    Returns
    -------
    float
        The total norm *before* clipping.

    Raises
    ------
    ValueError
        If the total norm is NaN or inf (torch's ``error_if_nonfinite=True``; torch's default
        would silently scale every gradient by NaN).
    """
    if isinstance(grads, Mapping):
        named = list(grads.items())
    elif isinstance(grads, np.ndarray):
        named = [("grads", grads)]
    else:
        named = [(f"grads[{i}]", g) for i, g in enumerate(grads)]
    _check_max_norm(max_norm)
    for name, grad in named:
        if not isinstance(grad, np.ndarray) or grad.dtype not in _SUPPORTED_DTYPES:
            raise ValueError(
                f"clip_grad_norm needs float32/float64 ndarrays, {name} is "
                f"{getattr(grad, 'dtype', type(grad).__name__)}"
            )
        if not grad.flags.writeable:
            raise ValueError(f"clip_grad_norm scales in place, but {name} is read-only")
    if not named:
        return 0.0
    squared = {name: sum_of_squares(g) for name, g in named}
    factor, total = clip_coefficient(squared, max_norm)
    if factor < 1.0:  # torch multiplies by 1.0 too, which is the identity
        for _, grad in named:
            grad *= factor
    return total


def clip_coefficient(squared_norms: Mapping[str, float], max_norm: float) -> tuple[float, float]:
    """``(factor, total)`` of :func:`clip_grad_norm` from each gradient's squared L2 norm
    (name -> float): ``total = ||(||g_1||, ..., ||g_n||)||`` and ``factor = min(1, max_norm /
    (total + 1e-6))``. Raises ValueError when the total is NaN or inf."""
    _check_max_norm(max_norm)
    norms = np.array([math.sqrt(value) for value in squared_norms.values()])  # float64
    total = float(np.linalg.norm(norms))
    if not math.isfinite(total):
        bad = [name for name, n in zip(squared_norms, norms, strict=True) if not math.isfinite(n)]
        raise ValueError(
            f"the total gradient norm is {total}; non-finite in {bad[:5] or 'the sum'} "
            "(the feedback overflowed or diverged upstream)"
        )
    return min(max_norm / (total + 1e-6), 1.0), total


def _check_max_norm(max_norm) -> None:
    if isinstance(max_norm, bool) or not isinstance(max_norm, numbers.Real):
        raise ValueError(f"max_norm must be a positive float, got {max_norm!r}")
    if not (max_norm > 0 and math.isfinite(max_norm)):
        raise ValueError(f"max_norm must be a positive finite float, got {float(max_norm)}")


# --------------------------------------------------------------------------------------------
# learning-rate schedules
# --------------------------------------------------------------------------------------------


class LRScheduler:
    """Base class, ``torch.optim.lr_scheduler.LRScheduler`` for one parameter group.

    Construction performs torch's initial step (``last_epoch`` goes from -1 to 0 and the
    optimizer's lr is set to the schedule's value at 0). Call :meth:`step` after each
    ``optimizer.step`` (per epoch for StepLR, per batch for OneCycleLR).

    Attributes
    ----------
    optimizer : Optimizer
    last_epoch : int
        Number of ``step()`` calls since construction.
    base_lrs : list[float]
        ``[initial lr]``, as torch's ``group["initial_lr"]``.
    """

    def __init__(self, optimizer: Optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        if not hasattr(self, "base_lrs"):
            self.base_lrs = [float(optimizer.lr)]
        self.last_epoch = -1
        self._last_lr = [float(optimizer.lr)]
        self.step()

    def step(self) -> None:
        """Advance the schedule by one and write the new lr into the optimizer."""
        epoch = self.last_epoch + 1
        lr = self._lr_at(epoch)  # may raise; nothing changes before it returns
        self.last_epoch = epoch
        self.optimizer.lr = lr
        self._last_lr = [lr]

    def get_last_lr(self) -> list[float]:
        """The lr set by the last :meth:`step` (a list with one entry per group, here one)."""
        return list(self._last_lr)

    def _lr_at(self, epoch: int) -> float:
        raise NotImplementedError

    # state_dict: subclasses list their attributes in _state_fields (name -> python type)
    _state_fields: dict[str, type] = {}

    def state_dict(self) -> dict[str, StateValue]:
        """The schedule as a flat dict of python scalars (``np.savez``-ready).

        As in torch, the optimizer's current lr/momentum live in the *optimizer's* state_dict;
        save and load both.
        """
        out: dict[str, StateValue] = {"scheduler": type(self).__name__}
        for key, kind in self._state_fields.items():
            out[key] = kind(getattr(self, key))
        out["base_lr"] = float(self.base_lrs[0])
        out["last_epoch"] = int(self.last_epoch)
        out["last_lr"] = float(self._last_lr[0])
        return out

    def load_state_dict(self, state_dict: Mapping[str, StateValue]) -> None:
        """Restore a schedule saved by :meth:`state_dict` (checked before anything changes)."""
        owner = type(self).__name__
        _check_kind(state_dict, "scheduler", owner)
        fields = dict(self._state_fields, base_lr=float, last_epoch=int, last_lr=float)
        values = {
            key: _plain(_require(state_dict, key, owner), kind, key) for key, kind in fields.items()
        }
        _check_no_extra_keys(state_dict, {"scheduler", *fields}, owner)
        self._check_config(values)
        for key in self._state_fields:
            setattr(self, key, values[key])
        self.base_lrs = [values["base_lr"]]
        self.last_epoch = values["last_epoch"]
        self._last_lr = [values["last_lr"]]
        self._after_load()

    def _check_config(self, values: Mapping) -> None:
        pass

    def _after_load(self) -> None:
        pass


class StepLR(LRScheduler):
    r"""Decay the lr by ``gamma`` every ``step_size`` steps, ``torch.optim.lr_scheduler.StepLR``.

    Torch's chainable form, which multiplies the optimizer's *current* lr::

        lr_t = lr_{t-1} * gamma    if t > 0 and t % step_size == 0,    else lr_{t-1}

    so, absent outside changes, ``lr_t = base_lr * gamma ** (t // step_size)`` up to rounding
    (the product is accumulated, not recomputed from ``base_lr``).

    Parameters
    ----------
    optimizer : Optimizer
    step_size : int
        Period of the decay, >= 1.
    gamma : float
        Multiplicative factor, default 0.1.
    """

    _state_fields = {"step_size": int, "gamma": float}

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        self._check_config({"step_size": step_size, "gamma": gamma})
        self.step_size = int(step_size)
        self.gamma = float(gamma)
        super().__init__(optimizer)

    def _check_config(self, values: Mapping) -> None:
        step_size = values["step_size"]
        if isinstance(step_size, bool) or not isinstance(step_size, numbers.Integral):
            raise ValueError(f"StepLR step_size must be a positive int, got {step_size!r}")
        if step_size < 1:
            raise ValueError(f"StepLR step_size must be a positive int, got {step_size}")
        if not math.isfinite(values["gamma"]):
            raise ValueError(f"StepLR gamma must be finite, got {values['gamma']}")

    def _lr_at(self, epoch: int) -> float:
        lr = self.optimizer.lr
        if epoch == 0 or epoch % self.step_size != 0:
            return lr
        return lr * self.gamma


def _annealing_cos(start: float, end: float, pct: float) -> float:
    """Cosine anneal from ``start`` (pct 0) to ``end`` (pct 1), torch's exact expression."""
    cos_out = math.cos(math.pi * pct) + 1
    return end + (start - end) / 2.0 * cos_out


def _annealing_linear(start: float, end: float, pct: float) -> float:
    """Linear anneal from ``start`` (pct 0) to ``end`` (pct 1), torch's exact expression."""
    return (end - start) * pct + start


class OneCycleLR(LRScheduler):
    r"""The 1cycle policy, ``torch.optim.lr_scheduler.OneCycleLR``, stepped once per batch.

    With ``T = total_steps`` (or ``epochs * steps_per_epoch``), ``p = pct_start``,
    ``initial_lr = max_lr / div_factor`` and ``min_lr = initial_lr / final_div_factor``, the
    phases are (end steps are floats, as in torch)::

        two phases (default):   [0, p*T - 1]           initial_lr -> max_lr   max_mom -> base_mom
                                (p*T - 1, T - 1]       max_lr -> min_lr       base_mom -> max_mom
        three_phase=True:       [0, p*T - 1]           initial_lr -> max_lr   max_mom -> base_mom
                                (p*T - 1, 2*p*T - 2]   max_lr -> initial_lr   base_mom -> max_mom
                                (2*p*T - 2, T - 1]     initial_lr -> min_lr   max_mom -> max_mom

    At step ``s`` the first phase with ``s <= end`` (or the last phase) is used, with
    ``pct = (s - start) / (end - start)`` (``start`` = the previous phase's end, 0.0 for the
    first) and::

        cos:     end_value + (start_value - end_value) / 2.0 * (cos(pi * pct) + 1)
        linear:  (end_value - start_value) * pct + start_value

    Construction sets the optimizer's lr to the value at step 0 (= ``initial_lr`` up to
    rounding) and, with ``cycle_momentum``, SGD's ``momentum`` or Adam's ``beta1`` to the
    momentum at step 0 (= ``max_momentum``), overriding the configured one. ``step()`` may be
    called ``total_steps`` times (the last one evaluates the final phase at ``pct > 1``); one
    more raises ``ValueError``, as torch does.

    Parameters
    ----------
    optimizer : Optimizer
    max_lr : float
    total_steps : int, optional
    epochs, steps_per_epoch : int, optional
        Used when ``total_steps`` is None.
    pct_start : float
        Fraction of the cycle spent increasing the lr, in ``[0, 1]``, default 0.3.
    anneal_strategy : {"cos", "linear"}
    cycle_momentum : bool
        Cycle momentum (SGD) or beta1 (Adam, AdamW) inversely to the lr, default True.
    base_momentum, max_momentum : float
        Defaults 0.85 and 0.95.
    div_factor, final_div_factor : float
        Defaults 25 and 1e4.
    three_phase : bool
        Default False (fastai's two phases).

    Notes
    -----
    torch keeps ``initial_lr``, ``max_lr``, ``min_lr``, ``max_momentum`` and ``base_momentum``
    in the optimizer's param group; here they are attributes of the scheduler and part of its
    state_dict. When stepping past ``total_steps`` torch has already incremented
    ``last_epoch`` before raising; here a failed step changes nothing.
    """

    _state_fields = {
        "total_steps": int,
        "pct_start": float,
        "anneal_strategy": str,
        "cycle_momentum": bool,
        "use_beta1": bool,
        "three_phase": bool,
        "div_factor": float,
        "final_div_factor": float,
        "initial_lr": float,
        "max_lr": float,
        "min_lr": float,
        "base_momentum": float,
        "max_momentum": float,
    }

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float,
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
    ):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        if total_steps is not None:
            if not _is_positive_int(total_steps):
                raise ValueError(f"Expected positive integer total_steps, but got {total_steps}")
            total_steps = int(total_steps)
        elif epochs is not None and steps_per_epoch is not None:
            if not _is_positive_int(epochs):
                raise ValueError(f"Expected positive integer epochs, but got {epochs}")
            if not _is_positive_int(steps_per_epoch):
                raise ValueError(
                    f"Expected positive integer steps_per_epoch, but got {steps_per_epoch}"
                )
            total_steps = int(epochs) * int(steps_per_epoch)
        else:
            raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
        if isinstance(pct_start, bool) or not isinstance(pct_start, numbers.Real):
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start!r}")
        if not 0 <= pct_start <= 1:
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(
                f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}"
            )
        self.total_steps = total_steps
        self.pct_start = float(pct_start)
        self.anneal_strategy = anneal_strategy
        self.three_phase = bool(three_phase)
        self.div_factor = float(div_factor)
        self.final_div_factor = float(final_div_factor)
        self.max_lr = float(max_lr)
        self.initial_lr = self.max_lr / self.div_factor
        self.min_lr = self.initial_lr / self.final_div_factor
        self.cycle_momentum = bool(cycle_momentum)
        self.use_beta1 = hasattr(optimizer, "betas")
        self.max_momentum = float(max_momentum)
        self.base_momentum = float(base_momentum)
        if self.cycle_momentum:
            if not (self.use_beta1 or hasattr(optimizer, "momentum")):
                raise ValueError(
                    "optimizer must support momentum or beta1 with `cycle_momentum` option "
                    f"enabled; {type(optimizer).__name__} has neither (pass cycle_momentum=False)"
                )
            self._set_momentum(optimizer, self.max_momentum)
        self._build_phases()
        self.base_lrs = [self.initial_lr]
        super().__init__(optimizer)

    def step(self) -> None:
        """Advance one batch: set the optimizer's lr and, with cycle_momentum, its momentum."""
        epoch = self.last_epoch + 1
        lr, momentum = self._values_at(epoch)  # may raise; nothing changes before it returns
        self.last_epoch = epoch
        self.optimizer.lr = lr
        if self.cycle_momentum:
            self._set_momentum(self.optimizer, momentum)
        self._last_lr = [lr]

    def _set_momentum(self, optimizer: Optimizer, momentum: float) -> None:
        if self.use_beta1:
            optimizer.betas = (momentum, *optimizer.betas[1:])
        else:
            optimizer.momentum = momentum

    def _build_phases(self) -> None:
        # (end_step, start_lr, end_lr, start_momentum, end_momentum), torch's expressions
        if self.three_phase:
            self._phases = [
                (float(self.pct_start * self.total_steps) - 1,
                 "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (float(2 * self.pct_start * self.total_steps) - 2,
                 "max_lr", "initial_lr", "base_momentum", "max_momentum"),
                (self.total_steps - 1,
                 "initial_lr", "min_lr", "max_momentum", "max_momentum"),
            ]  # fmt: skip
        else:
            self._phases = [
                (float(self.pct_start * self.total_steps) - 1,
                 "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (self.total_steps - 1,
                 "max_lr", "min_lr", "base_momentum", "max_momentum"),
            ]  # fmt: skip

    def _values_at(self, step_num: int) -> tuple[float, float | None]:
        if step_num > self.total_steps:
            raise ValueError(
                f"Tried to step {step_num} times. The specified number of total steps is "
                f"{self.total_steps}; OneCycleLR allows total_steps scheduler.step() calls "
                "after construction (one per batch), so build it with the number of batches "
                "you will train for"
            )
        anneal = _annealing_cos if self.anneal_strategy == "cos" else _annealing_linear
        start_step = 0.0
        last = len(self._phases) - 1
        for i, (end_step, start_lr, end_lr, start_mom, end_mom) in enumerate(self._phases):
            if step_num <= end_step or i == last:
                if end_step == start_step:
                    raise ZeroDivisionError(
                        f"OneCycleLR phase {i + 1} of {last + 1} is empty (it starts and ends "
                        f"at step {end_step}) and step {step_num} falls in it; torch divides by "
                        "zero here too; change pct_start or total_steps"
                    )
                pct = (step_num - start_step) / (end_step - start_step)
                lr = anneal(getattr(self, start_lr), getattr(self, end_lr), pct)
                momentum = (
                    anneal(getattr(self, start_mom), getattr(self, end_mom), pct)
                    if self.cycle_momentum
                    else None
                )
                return lr, momentum
            start_step = end_step
        raise AssertionError("unreachable: the last phase always matches")

    def _check_config(self, values: Mapping) -> None:
        if values["total_steps"] < 1:
            raise ValueError(f"total_steps must be positive, got {values['total_steps']}")
        if values["anneal_strategy"] not in ("cos", "linear"):
            raise ValueError(f"unknown anneal_strategy {values['anneal_strategy']!r}")
        if values["cycle_momentum"] and values["use_beta1"] != hasattr(self.optimizer, "betas"):
            raise ValueError(
                "this OneCycleLR state cycles "
                f"{'beta1' if values['use_beta1'] else 'momentum'}, but the optimizer is a "
                f"{type(self.optimizer).__name__}"
            )

    def _after_load(self) -> None:
        self._build_phases()


def _is_positive_int(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Integral) and value > 0
