"""drivers.camera_scanner.decode_frame: QR codes only are looked for at half size first, then at full size."""

from __future__ import annotations

import qrcode
from PIL import Image

from drivers.camera_scanner import decode_frame


def frame_with_code(text: str, box_size: int, size: tuple[int, int] = (1280, 720)) -> Image.Image:
    code = qrcode.QRCode(box_size=box_size, border=4)
    code.add_data(text)
    code.make(fit=True)
    symbol = code.make_image().get_image().convert("L")
    frame = Image.new("L", size, 160)
    frame.paste(symbol, (101, 77))  # an odd place: the halving does not line up with the modules
    return frame


def test_a_large_code_is_read() -> None:
    (found,) = decode_frame(frame_with_code("posterm:large", 8), symbologies=["QRCODE"])
    assert (found.text, found.symbology) == ("posterm:large", "QRCODE")


def test_a_code_too_small_for_half_size_is_read_at_full_size() -> None:
    frame = frame_with_code("posterm:small one with more data to make modules many", 2)
    assert decode_frame(frame.reduce(2), symbologies=["QRCODE"]) == []  # halved, zbar cannot read it
    (found,) = decode_frame(frame, symbologies=["QRCODE"])
    assert found.text == "posterm:small one with more data to make modules many"


def test_grey_pixels_with_their_size_are_read() -> None:
    frame = frame_with_code("posterm:raw", 6)
    (found,) = decode_frame((frame.tobytes(), frame.width, frame.height), symbologies=["QRCODE"])
    assert found.text == "posterm:raw"


def test_every_symbology_is_looked_for_at_full_size() -> None:
    (found,) = decode_frame(frame_with_code("posterm:any", 3).convert("RGB"))
    assert found.text == "posterm:any"
