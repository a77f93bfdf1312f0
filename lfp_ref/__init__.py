"""lfp_ref: Layer-wise Feedback Propagation, the transparent reference implementation.

import lfp_ref as lfp
model = lfp.Sequential(lfp.Dense(2, 8), lfp.ReLU(), lfp.Dense(8, 2))
fb = lfp.feedback(model, x, y, reward=lfp.rewards.softmax_loss)
"""

from . import (
    attribution,
    checkpoint,
    composites,
    crosscheck,
    data,
    interop,
    losses,
    optim,
    rewards,
    rules,
    theory,
    train,
    zoo,
)
from .attribution import attribute
from .engine import (
    Feedback,
    Gradients,
    feedback,
    feedback_to_gradient,
    gd_step,
    gradients,
    lfp_step,
)
from .layers import *  # noqa: F403
from .layers import __all__ as _layers_all
from .trace import Trace, trace

__version__ = "0.1.0"

__all__ = [
    "attribute",
    "attribution",
    "composites",
    "crosscheck",
    "interop",
    "theory",
    *_layers_all,
    "checkpoint",
    "data",
    "Feedback",
    "Gradients",
    "Trace",
    "feedback",
    "feedback_to_gradient",
    "gd_step",
    "gradients",
    "lfp_step",
    "losses",
    "optim",
    "rewards",
    "rules",
    "trace",
    "train",
    "zoo",
]
