"""LRP attribution: the input relevance of a model's output, with the same rules and the same
backward walk as LFP (docs/numerical-contract.md section 5).

LFP and LRP differ only in what starts the propagation: LFP starts from a reward at the output,
LRP from the relevance of the explained logit. :func:`attribute` hands that relevance to the
model's ``feedback`` pass and returns what arrives at the input.
"""

from __future__ import annotations

import numpy as np

from .. import composites as _composites
from .._checks import check_array, check_labels, check_logits_2d
from ..engine import forward, rule_resolver

STARTS = ("logit", "one_hot")


def output_relevance(logits, target, start="logit"):
    """The relevance at the output, shape of ``logits`` (B, C).

    ``target`` integer labels (B,) (or one int for the whole batch):

    - ``start="logit"``: ``R = one_hot(target) * logits``, LRP's usual start (the explained logit
      itself is distributed);
    - ``start="one_hot"``: ``R = one_hot(target)``, what zennit's attributor does when handed
      ``eye(C)[target]``.

    ``target`` a float array of the output's shape (any shape, e.g. a Conv2d feature map): that
    relevance, as is (``start`` does not apply).
    """
    if start not in STARTS:
        raise ValueError(f"start must be one of {STARTS}, got {start!r}")
    target = np.asarray(target)
    if target.dtype.kind == "f":
        if target.shape != logits.shape:
            raise ValueError(
                f"a relevance array must have the model output's shape {logits.shape}, got "
                f"{target.shape}; for class labels pass integers of shape ({logits.shape[0]},)"
            )
        return check_array(target.astype(logits.dtype), "target")
    check_logits_2d(logits, "attribute with class labels")
    batch, classes = logits.shape
    if target.ndim == 0:
        target = np.full(batch, target)
    labels = check_labels(target, classes, batch, name="target")
    relevance = np.zeros_like(logits)
    rows = np.arange(batch)
    relevance[rows, labels] = logits[rows, labels] if start == "logit" else 1
    return relevance


def attribute(model, x, target, composite=None, rule=None, start="logit", **composite_kwargs):
    """LRP: the relevance of ``target`` at the input ``x`` (an array of x's shape).

    Parameters
    ----------
    model : Layer, run in its current mode (call ``model.eval()`` first for BatchNorm's running
        statistics and no Dropout).
    x : ndarray, the input batch in the model's dtype.
    target : integer labels (B,) (or one int), the logit explained per sample; or a float array
        of the output's shape, the relevance to start from.
    composite : a :class:`lfp_ref.composites.Composite` or a zennit composite name
        (``"EpsilonPlus"``, ``"EpsilonGammaBox"``, ...); ``composite_kwargs`` go to its
        constructor (``low=``, ``high=``, ``epsilon=``, ``gamma=``, ``stabilizer=``).
    rule : instead of a composite, one rule (or rule name, or ``layer -> rule`` function) as in
        :func:`lfp_ref.feedback`. Neither: ``Epsilon()`` everywhere.
    start : "logit" (``R = one_hot * logit``) or "one_hot" (``R = one_hot``), see
        :func:`output_relevance`.

    Returns
    -------
    ndarray, shape of x: ``R_x``, the relevance at the input. For rules that conserve relevance
    (e.g. ZPlus with no bias, stabiliser -> 0) it sums per sample to the explained logit
    (``start="logit"``) or to 1 (``start="one_hot"``).
    """
    if composite_kwargs:
        if not isinstance(composite, str):
            raise ValueError(
                f"keyword arguments {sorted(composite_kwargs)} are for a composite given by name"
            )
        composite = _composites.get(composite, **composite_kwargs)
    x, logits = forward(model, x)
    relevance = output_relevance(logits, target, start)
    rule_for = rule_resolver(rule=rule, composite=composite, model=model)
    input_relevance, _ = model.feedback(relevance, rule_for)
    return input_relevance


__all__ = ["STARTS", "attribute", "output_relevance"]
