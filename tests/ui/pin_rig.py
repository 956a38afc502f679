"""What a rendered PIN test does inside the application's process (``{"call": "tests.ui.pin_rig:ask_pin", ...}``).

:func:`ask_pin` asks the on-screen PIN pad for a PIN on the application's own
worker, as a payment does, and writes what the PIN pad returned (the
outcome; for a PIN, the block, its KSN and format: never a PIN) to a file the
test reads. Nothing happens at import time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["PAN", "ask_pin"]

PAN = "4761739001010010"


def ask_pin(result_path: str, allow_bypass: bool = False, fmt: int = 4) -> None:
    from kivy.app import App  # type: ignore[import-untyped]

    from simulator.screen_pinpad_key import load_simulator_keys
    from terminal import registry
    from terminal.pinblock import PinFormat
    from terminal.ports import PinEntry, PinRequest

    session = App.get_running_app().session
    load_simulator_keys(session.data_dir)
    request = PinRequest(8000, 978, PAN, allow_bypass=allow_bypass, format=PinFormat(fmt))

    def done(entry: PinEntry) -> None:
        out: dict[str, Any] = {"outcome": entry.outcome.value}
        if entry.pin is not None:
            out.update(block=entry.pin.block.hex(), ksn=entry.pin.ksn.hex(), format=int(entry.pin.format))
        Path(result_path).write_text(json.dumps(out), encoding="utf-8")

    session.run(lambda _t: registry.open_pin_pad("screen:").enter_pin(request, 60), done, name="pin")
