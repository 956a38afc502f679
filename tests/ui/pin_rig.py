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

__all__ = ["PAN", "ask_offline_pin", "ask_pin"]

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


def ask_offline_pin(result_path: str, tries_left: int = 3, last_try: bool = False) -> None:
    """An inserted card's offline PIN asked on the worker; the file gets the outcome and the digits' count only."""
    from kivy.app import App  # type: ignore[import-untyped]

    from terminal import registry
    from terminal.ports import OfflinePin, OfflinePinPad, OfflinePinRequest

    session = App.get_running_app().session
    request = OfflinePinRequest(1234, 978, "plaintext", tries_left, last_try, allow_bypass=False)

    def ask(_token: object) -> OfflinePin:
        pad = registry.open_pin_pad("screen:")
        assert isinstance(pad, OfflinePinPad)
        return pad.enter_offline_pin(request, 60)

    def done(answer: OfflinePin) -> None:
        out: dict[str, Any] = {"outcome": answer.outcome.value}
        if answer.outcome.value == "entered":
            out["digits"] = len(answer.take())  # the card would take them: here only how many
        Path(result_path).write_text(json.dumps(out), encoding="utf-8")

    session.run(ask, done, name="pin")
