"""Deprecated import path: this module moved to ``lfp_ref.verify.theory``;
the old path keeps working until lfp_ref 0.3 (docs/architecture.md, "Moved modules")."""

import sys

from .verify import theory as _moved

sys.modules[__name__] = _moved
