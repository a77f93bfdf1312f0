"""Deprecated import path: this module moved to ``lfp_ref.verify.peers``;
the old path keeps working until lfp_ref 0.3 (docs/architecture.md, "Moved modules")."""

import sys

from .verify import peers as _moved

sys.modules[__name__] = _moved
