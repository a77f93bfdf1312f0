"""Deprecated import path: this module moved to ``lfp_ref.explain.trace``;
the old path keeps working until lfp_ref 0.3 (docs/architecture.md, "Moved modules")."""

import sys

from .explain import trace as _moved

sys.modules[__name__] = _moved
