"""The terminal application core.

Public face:

- :mod:`terminal.bootstrap` — ``open_terminal(data_dir, reader_url=..., host=...)``, the one wiring place.
- :mod:`terminal.facade` — ``Terminal``: sale, refund, void, forward_now, settle, offline_status,
  cancel, recover; ``PaymentResult`` and the events the UI hears.
- :mod:`terminal.lifecycle` — the states of a payment as a table of allowed transitions.
- :mod:`terminal.store` — the SQLite journal, queues and batches; :mod:`terminal.keystore` — keys.
- :mod:`terminal.offline` — offline behaviour, limits and retry policy.
- :mod:`terminal.host` — the HostLink port;
- :mod:`terminal.receipts`, :mod:`terminal.reports` — receipts (text, ESC/POS), X and Z reports.
- :mod:`terminal.ports`, :mod:`terminal.registry` — device ports and URLs (``sim:card=...``).
- :mod:`terminal.emv_session`, :mod:`terminal.trace`, :mod:`terminal.apdu_trace` — one tap; APDU traces
  (recorded by :class:`emv.recorder.ApduRecorder`); card numbers are masked by :mod:`emv.pan`.
- :mod:`terminal.cli` — the ``posterm`` command.
"""

__all__: list[str] = []  # the modules are the public face (pinned in tests/unit/test_public_names.py)
