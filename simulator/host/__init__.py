"""The simulated acquiring host: a real HTTPS service with mutual TLS, an issuer and fault injection.

Modules (imported on demand; nothing runs at import):

- :mod:`~simulator.host.service`: :func:`~simulator.host.service.start_host` and
  :class:`~simulator.host.service.HostService`, the handle tests and the demo use;
- :mod:`~simulator.host.server`: uvicorn with TLS 1.3 and client certificates;
- :mod:`~simulator.host.app`: the API of docs/host-protocol.md (Starlette);
- :mod:`~simulator.host.issuer`: the decision table, ARPCs (the magic amounts);
  :mod:`~simulator.host.proofs`: what a card must prove (card data, a cryptogram that
  verifies), the seam for other means of payment; :mod:`~simulator.host.rules`: the
  acquirer's checks (a transaction approved once, refunds covered, reversals exact);
- :mod:`~simulator.host.store`: the data at rest (no PAN), keyed by (merchant, terminal), on
  SQLite or PostgreSQL (:mod:`~simulator.host.storage`: the engines, and the tables as numbered
  migrations); terminals and certificates in :mod:`~simulator.host.store_identity`, the
  checks' and the per-terminal parameters' in :mod:`~simulator.host.store_issuer`;
- :mod:`~simulator.host.keys`: the host's secrets (out of the database, on either engine);
  :mod:`~simulator.host.files`: its data directory kept private (0700 / 0600);
- :mod:`~simulator.host.ca`: the host CA, server and client certificates;
- :mod:`~simulator.host.ratelimit`: how fast enrolment codes can be tried;
- :mod:`~simulator.host.faults`: fault injection and the files shared with the server;
- :mod:`~simulator.host.params`: parameters per terminal (common part, own part, versions);
  :mod:`~simulator.host.admin`: operator actions;
- :mod:`~simulator.host.schema`: the OpenAPI document and validation;
- :mod:`~simulator.host.cli`: ``posterm host ...``.
"""

__all__: list[str] = []
