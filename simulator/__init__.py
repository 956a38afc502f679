"""posterm's simulated cards, test PKI and replay cards.

Nothing here does work at import time.  The card side never imports the
terminal's EMV code (``emv``) except in :mod:`simulator.transport`, so that a
bug shared between the kernel and the card cannot hide.
"""

__all__: list[str] = []  # the modules are the public face (pinned in tests/unit/test_public_names.py)
