"""Optimizers with ``torch.optim`` semantics: :class:`SGD`, :class:`Adam`, :class:`AdamW`.

LFP (spec section 4) hands the optimizer the "gradient" ``g = -F`` and expects a trajectory that
matches lfprop driven by ``torch.optim`` step for step. Each optimizer is a transcription of
torch's *single-tensor* (``foreach=False``) code path, with the same order of floating-point
operations, on one parameter group, and updates the live parameter arrays in place: SGD
(momentum, dampening, Nesterov, L2 weight decay), Adam (optionally AMSGrad) and AdamW (decoupled
weight decay).

Parameters and gradients are addressed by name (``model.named_parameters()``), not by position.
Hyper-parameters are plain attributes (``opt.lr``, ``opt.momentum``, ``opt.betas``) so that a
scheduler, or a person, can change them between steps. ``state_dict()`` is a flat
``dict[str, python scalar | str | ndarray]`` that ``np.savez`` stores as is::

    np.savez(path, **opt.state_dict())
    opt.load_state_dict(dict(np.load(path)))

Scalars are computed as Python floats (IEEE double, as torch does on the host) and enter array
arithmetic as "weak" scalars, so float32 parameters and their state stay float32 and the scalar
is rounded to the parameter's dtype, like torch's ``Scalar`` arguments. Bitwise agreement with
torch itself is not promised: torch's vectorised CPU loops may fuse a multiply-add that NumPy
rounds twice. Agreement with torch's algorithm is checked to rtol 1e-12 in float64.

The step path asks the parameters' backend (:func:`lfp_ref.kernels.backend_of`) for its array
namespace, allocations and fused kernels, so it runs on any backend's arrays; ``state_dict`` and
``load_state_dict`` work in NumPy.

The helpers ``_plain``, ``_require``, ``_check_kind`` and ``_check_no_extra_keys`` check flat
state dicts and are shared with :mod:`lfp_ref.optim.schedules`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping

import numpy as np

from ..kernels import backend_of

__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]

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
    elif (
        isinstance(params, Iterable)
        and not isinstance(params, (str, bytes))
        and not _is_array(params)
    ):
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
        if not _is_array(array):
            raise TypeError(
                f"parameter {name!r} is a {type(array).__name__}, not an ndarray; the optimizer "
                "updates parameters in place, so it needs the live array itself"
            )
        if array.dtype not in _SUPPORTED_DTYPES:
            raise ValueError(
                f"parameter {name!r} has dtype {array.dtype}; only float32 and float64 are "
                "supported (cast the model with .astype(np.float32) or np.float64)"
            )
        if not _writeable(array):
            raise ValueError(
                f"parameter {name!r} is a read-only array; the optimizer updates it in place"
            )
        out[name] = array
    return out


def _is_array(value) -> bool:
    """Whether ``value`` is an array of a registered backend (``numpy.ndarray`` on the CPU)."""
    if value is None:  # backend_of ignores None
        return False
    try:
        backend_of(value)
    except TypeError:
        return False
    return True


def _writeable(array) -> bool:
    """Whether the array may be written; arrays without a read-only flag (CuPy's) always may."""
    return getattr(array.flags, "writeable", True)


def _is_finite(bk, array) -> bool:
    """Whether every entry is finite: the backend's fused pass for C-contiguous arrays (no
    boolean temporary), its ``isfinite`` otherwise."""
    if array.flags.c_contiguous:
        return bk.elementwise.all_finite(array)
    return bool(bk.xp.isfinite(array).all())


def _scaled(grad, scale: float):
    """``scale * grad`` in grad's dtype (a new array; grad itself when scale is 1)."""
    return grad if scale == 1.0 else grad * scale


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
        # looked up once: a parameter cannot change backend without being rebound, which
        # _check_live_parameters refuses
        self._backends = {name: backend_of(p) for name, p in self.parameters.items()}
        self.state: dict[str, dict[str, np.ndarray | int]] = {}

    # -- public ---------------------------------------------------------------------------

    def step(
        self,
        grads: Mapping[str, np.ndarray],
        scale: float = 1.0,
        squared_norms: Mapping[str, float] | None = None,
    ) -> None:
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
        squared_norms : Mapping[str, float], optional
            Parameter name -> ``sum(g**2)`` of that gradient (of ``g`` itself, before
            ``scale``), accumulated in float64 by the caller: the engine's
            ``Feedback.squared_norms`` / ``Gradients.squared_norms``, which clipping uses too.
            A gradient whose given sum is finite is not scanned for NaN or inf here (``x**2`` is
            NaN or inf for a non-finite ``x``, so a finite sum proves every entry finite): one
            finiteness decision per step instead of two passes. **The caller vouches for the
            value**: a finite sum given for an array that holds NaN or inf lets those entries
            into the parameter and the optimizer state, unreported. A gradient whose sum is
            NaN or inf, or that has no entry, is scanned as without ``squared_norms`` (finite
            entries whose squares overflow to inf are legal). Names must be parameters of this
            optimizer (an entry without a gradient is ignored); values real numbers, >= 0 unless
            NaN.

        Raises
        ------
        ValueError
            An unknown name, a wrong shape or dtype, or a non-finite entry; a bad
            ``squared_norms`` (TypeError when it is not a mapping). All arguments are checked
            before any parameter changes, so a failed step leaves the model as it was.
        """
        checked = self._check_grads(grads, squared_norms)
        self._check_live_parameters()
        self._validate_hyperparameters()
        if type(scale) is not float and (
            isinstance(scale, bool) or not isinstance(scale, numbers.Real)
        ):
            raise ValueError(f"scale must be a finite float, got {scale!r}")
        scale = float(scale)
        if not math.isfinite(scale):
            raise ValueError(f"scale must be a finite float, got {scale}")
        for name, param, grad, bk in checked:
            self._update(param, grad, self.state.setdefault(name, {}), scale, bk)

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
                    int(value)
                    if isinstance(value, (int, np.integer))
                    else np.array(backend_of(value).to_numpy(value))  # a host copy
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
            # a copy on the parameter's backend (the device, for a model on a GPU)
            copy = np.array(array, dtype=param.dtype, copy=True)
            state.setdefault(name, {})[key] = backend_of(param).asarray(copy)
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

    def _update(self, param, grad, state: dict, scale: float, bk) -> None:
        """Update ``param`` in place from ``grad`` (checked) and ``scale``; ``bk`` is their
        backend, whose allocations and kernels the update uses."""
        raise NotImplementedError

    def _validate_hyperparameters(self) -> None:
        raise NotImplementedError

    def _state_keys(self) -> set[str]:
        raise NotImplementedError

    def _required_state_keys(self, hyper: Mapping) -> set[str]:
        raise NotImplementedError

    # -- checks -----------------------------------------------------------------------------

    def _check_grads(self, grads, squared_norms=None) -> list[tuple[str, object, object, object]]:
        """``(name, param, grad, backend)`` per gradient, in parameter order, all checked."""
        if type(grads) is not dict and not isinstance(grads, Mapping):  # dict: no ABC check
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
        proven_finite = self._proven_finite(squared_norms)
        step = f"{type(self).__name__}.step"
        checked = []
        for name, param in self.parameters.items():
            if name not in grads:
                continue
            grad = grads[name]
            bk = self._backends[name]
            if not (type(grad) is bk.array_type or bk.is_array(grad)):
                raise ValueError(
                    f"{step}: grad for parameter {name!r} is a {type(grad).__name__}, expected an "
                    f"ndarray of shape {param.shape} and dtype {param.dtype}"
                )
            if grad.shape != param.shape:
                raise ValueError(
                    f"{step}: grad for parameter {name!r} has shape {grad.shape} but the "
                    f"parameter has shape {param.shape}"
                )
            if grad.dtype != param.dtype:
                raise ValueError(
                    f"{step}: grad for parameter {name!r} has dtype {grad.dtype} but the "
                    f"parameter is {param.dtype}; cast it with .astype(np.{param.dtype.name})"
                )
            if name not in proven_finite and not _is_finite(bk, grad):
                bad = grad.size - int(bk.xp.count_nonzero(bk.xp.isfinite(grad)))
                raise ValueError(
                    f"grad for parameter {name!r} has {bad} non-finite entries (NaN or inf) out "
                    f"of {grad.size}; the feedback overflowed or diverged upstream (try a smaller "
                    "lr, clip_grad_norm, or a larger stabiliser eps)"
                )
            checked.append((name, param, grad, bk))
        return checked

    def _proven_finite(self, squared_norms) -> set[str]:
        """The names whose given sum of squares is finite (see ``step``), after checking the
        mapping."""
        if squared_norms is None:
            return set()
        if type(squared_norms) is not dict and not isinstance(squared_norms, Mapping):
            raise TypeError(
                "step(squared_norms=...) needs a dict parameter name -> float sum of squares, "
                f"got {type(squared_norms).__name__}"
            )
        unknown = [name for name in squared_norms if name not in self.parameters]
        if unknown:
            raise ValueError(
                f"squared_norms has entries for unknown parameters {unknown[:5]}; this "
                f"{type(self).__name__} updates {list(self.parameters)[:8]}"
                f"{' ...' if len(self.parameters) > 8 else ''} (names from named_parameters())"
            )
        proven = set()
        for name, value in squared_norms.items():
            # a float (what the engine passes) is a real number: no ABC check for it
            if type(value) is not float and (
                isinstance(value, bool) or not isinstance(value, numbers.Real)
            ):
                raise ValueError(
                    f"squared_norms[{name!r}] must be a real number (the float64 sum of squares "
                    f"of its gradient), got {value!r:.80}"
                )
            if value < 0:
                raise ValueError(
                    f"squared_norms[{name!r}] is {value}, but a sum of squares is >= 0; pass "
                    "sum(g**2), not a signed quantity"
                )
            if math.isfinite(value):
                proven.add(name)
        return proven

    def _check_live_parameters(self) -> None:
        if self._model is None:
            return
        # an lfp_ref layer's _parameter_dict is dict(named_parameters()) built in one walk
        walk = getattr(self._model, "_parameter_dict", None)
        current = walk() if walk is not None else dict(self._model.named_parameters())
        for name, param in self.parameters.items():
            live = current.get(name)
            bk = self._backends[name]
            if (
                live is None
                or not (type(live) is bk.array_type or bk.is_array(live))
                or not bk.same_memory(param, live)
            ):
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

    def _update(self, param, grad, state: dict, scale: float, bk) -> None:
        buf = state.get("momentum_buffer") if self.momentum != 0 else None
        if (
            param.flags.c_contiguous
            and grad.flags.c_contiguous
            and (buf is None or buf.flags.c_contiguous)
        ):
            # the same operations in the same order, fused into one pass (no temporaries)
            first_step = self.momentum != 0 and buf is None
            if first_step:
                buf = state["momentum_buffer"] = bk.empty_like(param)
            bk.elementwise.sgd_update(
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

    def _update(self, param, grad, state: dict, scale: float, bk) -> None:
        grad = _scaled(grad, scale)
        beta1, beta2 = self.betas
        lr, weight_decay, eps = self.lr, self.weight_decay, self.eps
        xp = bk.xp
        if not state:
            state["step"] = 0
            state["exp_avg"] = bk.zeros_like(param)
            state["exp_avg_sq"] = bk.zeros_like(param)
            if self.amsgrad:
                state["max_exp_avg_sq"] = bk.zeros_like(param)
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
            max_exp_avg_sq = state.get("max_exp_avg_sq")
            if max_exp_avg_sq is None:  # amsgrad switched on after the first step
                max_exp_avg_sq = state["max_exp_avg_sq"] = bk.zeros_like(param)
            xp.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
            denom = xp.sqrt(max_exp_avg_sq) / bias_correction2_sqrt
        else:
            denom = xp.sqrt(exp_avg_sq) / bias_correction2_sqrt
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
