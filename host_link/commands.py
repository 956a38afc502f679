"""The host link's ``posterm`` commands as the CLI lists them: name, one-line help, and what adds them.

Registered in the ``posterm.commands`` entry point group (setup.cfg); see
:func:`terminal.cli.plugin_commands`.  This module imports nothing, so that
``posterm --help`` and the terminal's own commands start without loading
httpx and cryptography; :mod:`host_link.cli` is imported when one of these
commands runs.  tests/unit/test_cli_commands.py checks each help against the
one :mod:`host_link.cli` gives.
"""

from __future__ import annotations

__all__ = ["COMMANDS"]

COMMANDS = (
    ("enrol", "get this terminal's certificate from its host", "host_link.cli:add_commands"),
    ("renew", "renew this terminal's certificate with its host, before it ends", "host_link.cli:add_commands"),
    ("echo", "round trip to the host: is it there, and how fast", "host_link.cli:add_commands"),
    ("params", "parameter download from the host", "host_link.cli:add_commands"),
)
