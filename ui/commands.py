"""The application's ``posterm`` commands as the CLI lists them: name, one-line help, and what adds them.

Registered in the ``posterm.commands`` entry point group (setup.cfg), as the
simulator's and the host link's are: terminal may not import ui.  This module
imports nothing; a command's module is imported when that command runs.
"""

from __future__ import annotations

__all__ = ["COMMANDS"]

COMMANDS = (
    (
        "ui",
        "the cashier application (Kivy); --kiosk the kiosk; --screenshots DIR every screen as PNG",
        "ui.cli:add_commands",
    ),
    ("kiosk", "run the kiosk unattended: supervise", "ui.supervisor:add_commands"),
    ("ecr", "the ECR interface: cash registers and kiosks take payments over loopback HTTP", "ui.ecr.cli:add_commands"),
)
