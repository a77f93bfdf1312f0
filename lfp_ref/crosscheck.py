"""Deprecated import path: this module moved to ``lfp_ref.verify.crosscheck``;
the old path keeps working until lfp_ref 0.3 (docs/architecture.md, "Moved modules")."""

import sys

from .verify import crosscheck as _moved

sys.modules[__name__] = _moved
