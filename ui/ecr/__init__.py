"""The ECR interface: cash registers and kiosk software start and follow payments over loopback HTTP.

``posterm ecr serve`` runs it headless (:mod:`ui.ecr.cli`); the Kivy
application runs the same :class:`~ui.ecr.server.EcrServer` in process.  The
parts: :mod:`ui.ecr.records` (a payment as the interface shows it),
:mod:`ui.ecr.desk` (one payment at a time through the Terminal facade, no
HTTP), :mod:`ui.ecr.app` (the HTTP endpoints), :mod:`ui.ecr.schema` (the
OpenAPI document, ``openapi.json``, and the checks against it),
:mod:`ui.ecr.server` (uvicorn on a socket of its own).  docs/ecr-protocol.md
is the protocol's reading companion.

The names below are loaded when first used, so that ``posterm ecr --help``
does not import the web stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ui.ecr.desk import PaymentDesk
    from ui.ecr.server import EcrServer

__all__ = ["EcrServer", "PaymentDesk"]

_WHERE = {"EcrServer": "ui.ecr.server", "PaymentDesk": "ui.ecr.desk"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'ui.ecr' has no attribute {name!r}")
