"""Verification: cross-checks against the public packages (``crosscheck``, ``peers``), the torch
converter (``interop``) and the paper's claims on random networks (``theory``)."""
