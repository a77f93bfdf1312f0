"""Optimizers, gradient clipping and learning-rate schedules with ``torch.optim`` semantics.

LFP (spec section 4) hands the optimizer the "gradient" ``g = -F`` and expects a trajectory that
matches lfprop driven by ``torch.optim`` step for step. Everything here is a transcription of
torch's *single-tensor* (``foreach=False``) code path, with the same order of floating-point
operations, on one parameter group:

- :mod:`~lfp_ref.optim.optimizers`: :class:`SGD` (momentum, dampening, Nesterov, L2 weight
  decay), :class:`Adam` (optionally AMSGrad) and :class:`AdamW` (decoupled weight decay) update
  the live parameter arrays in place, on the parameters' backend;
- :mod:`~lfp_ref.optim.clipping`: :func:`clip_grad_norm` is ``torch.nn.utils.clip_grad_norm_``
  with the L2 norm; :func:`clip_coefficient` is its factor alone, which the engine's training
  steps fold into ``step(grads, scale=...)`` instead of rewriting the gradients;
- :mod:`~lfp_ref.optim.schedules`: :class:`StepLR` and :class:`OneCycleLR` are
  ``torch.optim.lr_scheduler``'s schedules, stepped after ``optimizer.step``.

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

from .clipping import clip_coefficient, clip_grad_norm
from .optimizers import SGD, Adam, AdamW, Optimizer
from .schedules import LRScheduler, OneCycleLR, StepLR

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
