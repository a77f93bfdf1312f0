"""What the trainer reads off a model's output: the class scores, the loss, the default reward.

The trainer knows no model type. It asks the model, through three optional attributes, and the
plain ``(B, C)`` logits are the default when the model does not answer:

==================================  =========================================================
``model.class_scores(output)``      ``(B, C)`` scores whose argmax over classes is the
                                    prediction. Default: the output itself (the logits).
``model.output_loss``               the name in :data:`lfp_ref.losses.LOSSES` of the loss the
                                    trainer logs and evaluates (``train_loss``, ``test_loss``).
                                    Default: ``"cross_entropy"``.
``model.default_reward``            the name in :data:`lfp_ref.rewards.REWARDS` a run uses when
                                    ``TrainConfig.reward`` is None. Default:
                                    ``"softmax_loss"``.
==================================  =========================================================

:class:`lfp_ref.snn.SpikingSequential` answers with the spike counts ``sum_t S`` (so the
prediction is :func:`lfp_ref.snn.predict`, the class with the most spikes), the rate-coded
cross-entropy ``"snn_ce_rate"`` and the rate-coded reward ``"snn_rate_coded"``. A model of one's
own with another output layout answers the same three and trains, evaluates and logs without a
change to the trainer. For every other model the functions below compute exactly what the
trainer computed before they existed (the same calls, the same numbers).
"""

from __future__ import annotations

import numpy as np

from .. import losses as _losses

#: what a model that does not answer gets
DEFAULT_LOSS = "cross_entropy"
DEFAULT_REWARD = "softmax_loss"


def class_scores(model, output):
    """``(B, C)`` class scores of ``output`` (the model's forward output): the model's
    ``class_scores(output)``, else the output itself."""
    scores = getattr(model, "class_scores", None)
    return output if scores is None else scores(output)


def predictions(model, output):
    """The predicted class of every sample, ``(B,)``: the argmax of :func:`class_scores` (ties:
    the first such class)."""
    return class_scores(model, output).argmax(axis=1)


def correct(model, output, y):
    """How many samples of the batch ``output`` classifies as ``y``."""
    return int(np.count_nonzero(predictions(model, output) == y))


def loss_name(model):
    """The name of the model's output loss (``model.output_loss``, else cross-entropy)."""
    return getattr(model, "output_loss", None) or DEFAULT_LOSS


def output_loss(model, output, y, reduction="sum"):
    """The model's output loss of ``output`` against labels ``y`` (a float; summed over the
    batch for ``"sum"``)."""
    return _losses.get(loss_name(model))(output, y, reduction=reduction)[0]


def default_reward(model):
    """The reward a run of ``model`` uses when the configuration names none
    (``model.default_reward``, else softmax_loss)."""
    return getattr(model, "default_reward", None) or DEFAULT_REWARD


__all__ = [
    "DEFAULT_LOSS",
    "DEFAULT_REWARD",
    "class_scores",
    "correct",
    "default_reward",
    "loss_name",
    "output_loss",
    "predictions",
]
