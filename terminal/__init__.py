"""The terminal application core.

Public face (grows with later issues):

- :mod:`terminal.ports` — the ports that drivers implement (``CardReader``).
- :mod:`terminal.registry` — open a device from its URL (``sim:card=...``).
- :mod:`terminal.emv_session` — run Entry Point and a kernel against a reader.
- :mod:`terminal.trace` — APDU trace recording (the ``--record`` format).
- :mod:`terminal.settings` — the default terminal configuration shipped as data.
- :mod:`terminal.cli` — the ``posterm`` command.
"""
