"""lfp_ref: Layer-wise Feedback Propagation, the transparent reference implementation.

import lfp_ref as lfp
model = lfp.Sequential(lfp.Dense(2, 8), lfp.ReLU(), lfp.Dense(8, 2))
fb = lfp.feedback(model, x, y, reward=lfp.rewards.softmax_loss)
"""

from importlib import metadata as _metadata

from . import composites, data, losses, methods, optim, rewards, rules, snn, train, zoo
from . import trace as _trace_path  # noqa: F401  (the old module path; lfp_ref.trace is the function)
from .engine import (
    Feedback,
    Gradients,
    feedback,
    feedback_to_gradient,
    gd_step,
    gradients,
    lfp_step,
)
from .explain import attribution
from .explain.attribution import attribute
from .explain.trace import Trace, trace
from .layers import *  # noqa: F403
from .layers import __all__ as _layers_all
from .runtime import tune_allocator
from .train import checkpoint, load_run
from .verify import crosscheck, interop, theory

try:  # the one version number is pyproject's, read from the installed package's metadata
    __version__ = _metadata.version("lfp_ref")
except _metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

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
    "load_run",
    "losses",
    "methods",
    "optim",
    "rewards",
    "rules",
    "snn",
    "trace",
    "train",
    "tune_allocator",
    "zoo",
]
