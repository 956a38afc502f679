"""The scanner contract on the camera driver (``camera:dir=``): QR code images written as frames into a directory."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import qrcode
from PIL import Image

from terminal import registry
from terminal.ports import CodeScanner
from tests.contract.rigs import Unsupported
from tests.contract.scanner_suite import *  # noqa: F403


def qr_frame(text: str, size: tuple[int, int] = (640, 480)) -> bytes:
    """A camera-sized grey frame with the QR code somewhere in it, as PNG."""
    code = qrcode.QRCode(box_size=5, border=4)
    code.add_data(text)
    code.make(fit=True)
    symbol = code.make_image().get_image().convert("L")
    frame = Image.new("L", size, 170)
    frame.paste(symbol, ((size[0] - symbol.width) // 3, (size[1] - symbol.height) // 2))
    out = io.BytesIO()
    frame.save(out, format="PNG")
    return out.getvalue()


class CameraRig:
    """Frames appear in a directory the way a capture program writes them: a temporary name, then a rename."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0
        self.scanner: CodeScanner = registry.open_scanner(f"camera:dir={folder}")

    def write_frame(self, data: bytes) -> None:
        self.count += 1
        temporary = self.folder / f".frame-{self.count:05d}.tmp"
        temporary.write_bytes(data)
        os.replace(temporary, self.folder / f"frame-{self.count:05d}.png")

    def send(self, text: str, symbology: str | None = None) -> None:
        if symbology not in (None, "QRCODE"):
            raise Unsupported(f"the camera rig draws QR codes only, not {symbology}")
        self.write_frame(qr_frame(text))

    def send_garbage(self, data: bytes) -> None:
        self.write_frame(data)  # a frame that is no image at all


@pytest.fixture
def scanner_rig(tmp_path: Path) -> Iterator[CameraRig]:
    rig = CameraRig(tmp_path)
    yield rig
    rig.scanner.close()


def test_camera_scanner_reports_pyzbar_symbology(scanner_rig: CameraRig) -> None:
    scanner_rig.send("posterm:tx-42")
    code = scanner_rig.scanner.read(timeout=10)
    assert (code.text, code.symbology) == ("posterm:tx-42", "QRCODE")
