"""The terminal's side of the terminal <-> acquiring host protocol (docs/host-protocol.md).

Modules, each with its own public face (nothing is re-exported here, and
importing the package does no work):

- :mod:`host_link.client`: :class:`~host_link.client.HttpsHostLink`, the
  HostLink port over HTTPS with mutual TLS, and ``open_host_link``, the
  ``posterm.hostlinks`` factory (``--host https``);
- :mod:`host_link.tls`: the client TLS context (TLS 1.3, the host's CA only);
- :mod:`host_link.reachability`: a dead host costs one connect timeout, not one per payment;
- :mod:`host_link.wire`: the protocol's JSON, and strict checks of what the host sends;
- :mod:`host_link.forwarder`: :class:`~host_link.forwarder.SafForwarder`, the
  background sender of the SAF queue;
- :mod:`host_link.parameters`: versioned, verified, atomic parameter download, with rollback;
- :mod:`host_link.enrolment`: how a new terminal gets its certificate (the flow is in its docstring);
- :mod:`host_link.renewal`: how it renews that certificate before it ends, without a code;
- :mod:`host_link.credentials`: the enrolment's files under ``<data_dir>/host-link/``;
- :mod:`host_link.cli`: ``posterm enrol``, ``posterm renew``, ``posterm echo``, ``posterm params``.
"""

__all__: list[str] = []  # the modules are the public face (pinned in tests/unit/test_public_names.py)
