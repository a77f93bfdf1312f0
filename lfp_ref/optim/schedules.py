"""Learning-rate schedules with ``torch.optim.lr_scheduler`` semantics, stepped after
``optimizer.step``.

- :class:`LRScheduler`: the base class (one parameter group, torch's initial step at
  construction, flat ``state_dict``);
- :class:`StepLR`: decay by ``gamma`` every ``step_size`` steps (torch's chainable form);
- :class:`OneCycleLR`: the 1cycle policy, stepped per batch, cycling SGD's momentum or Adam's
  beta1 inversely to the lr.

A schedule writes the optimizer's plain attributes (``opt.lr``, ``opt.momentum``,
``opt.betas``); the optimizer reads them at its next step.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

from .optimizers import (
    Optimizer,
    StateValue,
    _check_kind,
    _check_no_extra_keys,
    _plain,
    _require,
)

__all__ = ["LRScheduler", "StepLR", "OneCycleLR"]


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
