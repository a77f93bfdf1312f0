"""Deprecated import path: this module moved to ``lfp_ref.train.plots``;
the old path keeps working until lfp_ref 0.3 (docs/architecture.md, "Moved modules")."""

import sys

from .train import plots as _moved

sys.modules[__name__] = _moved
