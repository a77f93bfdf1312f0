"""Deprecated import path: this module moved to ``lfp_ref.verify.interop``;
the old path keeps working until lfp_ref 0.3 (docs/architecture.md, "Moved modules")."""

import sys

from .verify import interop as _moved

sys.modules[__name__] = _moved
