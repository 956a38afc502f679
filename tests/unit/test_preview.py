"""The ESC/POS preview renderer: each feature posterm (through python-escpos) emits, and bad input.

Text is checked by where its ink is (bold has more, double width is wider,
centred text is in the middle...); codes by decoding the picture with pyzbar.
"""

from __future__ import annotations

import io
import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from pyzbar import pyzbar

from drivers.preview import (
    MAX_HEIGHT_DOTS,
    PAPER_58MM_DOTS,
    PAPER_80MM_DOTS,
    command_length,
    iter_commands,
    render_image,
    render_png,
)

INIT = b"\x1b@"


def escpos(build: Callable[[Any], object]) -> bytes:
    """The bytes python-escpos's Dummy printer produces (as terminal.receipts does)."""
    os.environ.setdefault("ESCPOS_CAPABILITIES_PICKLE_DIR", str(Path(tempfile.gettempdir()) / "posterm-escpos"))
    from escpos.printer import Dummy

    printer = Dummy()
    build(printer)
    output: bytes = printer.output
    return output


def ink_box(image: Image.Image) -> tuple[int, int, int, int]:
    """The bounding box of the ink (dark pixels)."""
    box = image.point(lambda v: 255 if v < 128 else 0).getbbox()
    assert box is not None, "nothing was drawn"
    return box


def ink(image: Image.Image) -> int:
    return sum(1 for v in image.tobytes() if v < 128)


def text_image(*parts: bytes) -> Image.Image:
    return render_image(INIT + b"".join(parts))


def test_plain_text_is_drawn_in_12_dot_columns() -> None:
    image = text_image(b"HELLO\n")
    left, top, right, bottom = ink_box(image)
    assert left < 3 and 5 * 12 - 4 <= right <= 5 * 12
    assert top >= 16 and bottom - top <= 24
    assert image.width == PAPER_80MM_DOTS
    assert set(image.tobytes()) <= {0, 255}  # dots are printed or not


def test_bold_has_more_ink() -> None:
    regular = text_image(b"BOLD TEXT\n")
    bold = text_image(b"\x1bE\x01BOLD TEXT\n")
    assert ink(bold) > ink(regular) * 1.15
    assert ink(text_image(b"\x1b!\x08BOLD TEXT\n")) == ink(bold)  # ESC ! bit 3 is bold too


def test_underline_draws_a_line_under_the_text() -> None:
    plain = ink_box(text_image(b"UNDER\n"))
    underlined = ink_box(text_image(b"\x1b-\x01UNDER\n"))
    assert underlined[3] > plain[3] and underlined[2] - underlined[0] >= 5 * 12 - 1


@pytest.mark.parametrize(
    ("command", "wide", "tall"),
    [
        (b"\x1b!\x30", 2, 2),  # ESC ! double width and height (python-escpos set(double_width, double_height))
        (b"\x1b!\x20", 2, 1),
        (b"\x1b!\x10", 1, 2),
        (b"\x1d!\x21", 3, 2),  # GS ! custom size: width 3, height 2
    ],
)
def test_character_sizes(command: bytes, wide: int, tall: int) -> None:
    normal = ink_box(text_image(b"SIZE\n"))
    sized = ink_box(text_image(command + b"SIZE\n"))
    width_ratio = (sized[2] - sized[0]) / (normal[2] - normal[0])
    height_ratio = (sized[3] - sized[1]) / (normal[3] - normal[1])
    assert abs(width_ratio - wide) < 0.35
    assert abs(height_ratio - tall) < 0.35


def test_python_escpos_double_size_then_normal_again() -> None:
    data = escpos(lambda p: (p.set(double_width=True, double_height=True), p.textln("BIG"),
                             p.set(normal_textsize=True), p.textln("BIG")))  # fmt: skip
    image = render_image(data)
    bands = [b for b in _bands(image)]
    assert len(bands) == 2
    assert bands[0][1] - bands[0][0] > 1.6 * (bands[1][1] - bands[1][0])


def test_alignment() -> None:
    left = ink_box(text_image(b"\x1ba\x00MIDDLE\n"))
    centre = ink_box(text_image(b"\x1ba\x01MIDDLE\n"))
    right = ink_box(text_image(b"\x1ba\x02MIDDLE\n"))
    assert left[0] < 3
    assert abs((centre[0] + centre[2]) / 2 - PAPER_80MM_DOTS / 2) <= 3
    assert PAPER_80MM_DOTS - 3 <= right[2] <= PAPER_80MM_DOTS
    mid_line = ink_box(text_image(b"AB\x1ba\x02CD\n"))  # as on an Epson: only at the start of a line
    assert mid_line[0] < 3


def test_line_feeds_and_paper_feeds() -> None:
    one = render_image(INIT + b"A\n").height
    assert render_image(INIT + b"A\n\n\n").height == one + 60
    assert render_image(INIT + b"A\n\x1bd\x03").height == one + 90
    assert render_image(INIT + b"A\n\x1bJ\x50").height == one + 80
    assert render_image(INIT + b"\x1b3\x40A\n").height == one + 34  # ESC 3: line spacing 64 dots


def test_long_lines_wrap_at_the_paper_edge() -> None:
    image = text_image(b"X" * 60 + b"\n")  # 48 columns of font A on 576 dots
    assert len(_bands(image)) == 2


def test_reverse_and_font_b() -> None:
    reverse = text_image(b"\x1dB\x01REV\n")
    assert ink(reverse) > 3 * 12 * 24 * 0.6  # white letters on black cells
    font_b = ink_box(text_image(b"\x1bM\x01SMALL\n"))
    assert font_b[2] - font_b[0] <= 5 * 9


def test_code_page_is_followed() -> None:
    euro_1252 = text_image(b"\x1bt\x10\x80\n")  # CP1252: 0x80 is the euro sign
    euro_858 = text_image(b"\x1bt\x13\xd5\n")  # CP858: 0xD5 is the euro sign
    assert euro_1252.tobytes() == euro_858.tobytes()
    assert text_image(b"\x1bt\x00\x80\n").tobytes() != euro_1252.tobytes()  # CP437: 0x80 is a C cedilla


def test_native_qr_code_decodes() -> None:
    data = escpos(lambda p: (p.set(align="center"), p.qr("posterm:tx-0042", size=5, native=True)))
    image = render_image(data)
    [found] = pyzbar.decode(image)
    assert (found.type, found.data) == ("QRCODE", b"posterm:tx-0042")
    assert found.rect.width == found.rect.height
    assert abs(found.rect.left + found.rect.width / 2 - PAPER_80MM_DOTS / 2) <= 5


def test_qr_module_size_and_error_correction() -> None:
    small = render_image(escpos(lambda p: p.qr("same", size=3, native=True)))
    large = render_image(escpos(lambda p: p.qr("same", size=6, native=True)))
    small_box, large_box = ink_box(small), ink_box(large)
    assert (large_box[2] - large_box[0]) == 2 * (small_box[2] - small_box[0])
    from escpos.constants import QR_ECLEVEL_H

    low = render_image(escpos(lambda p: p.qr("error-correction", size=3, native=True)))
    high = render_image(escpos(lambda p: p.qr("error-correction", size=3, native=True, ec=QR_ECLEVEL_H)))
    assert ink_box(high)[2] - ink_box(high)[0] > ink_box(low)[2] - ink_box(low)[0]  # more modules
    assert pyzbar.decode(high)[0].data == b"error-correction"


def test_qr_image_fallback_is_a_raster_image_that_decodes() -> None:
    data = escpos(lambda p: p.qr("raster qr", size=4, native=False))
    assert b"\x1dv0" in data
    [found] = pyzbar.decode(render_image(data))
    assert found.data == b"raster qr"


def test_too_big_a_qr_code_is_labelled_not_drawn() -> None:
    data = escpos(lambda p: p.qr("x" * 800, size=16, native=True))
    image = render_image(data)
    assert not pyzbar.decode(image)
    assert ink_box(image)[3] - ink_box(image)[1] < 40  # a one-line label


@pytest.mark.parametrize(
    ("kind", "code", "expected_type", "expected"),
    [
        ("CODE128", "{BABC-123", "CODE128", b"ABC-123"),
        ("EAN13", "4006381333931", "EAN13", b"4006381333931"),
        ("EAN8", "96385074", "EAN8", b"96385074"),
        ("CODE39", "POSTERM", "CODE39", b"POSTERM"),
    ],
)
def test_barcodes_decode(kind: str, code: str, expected_type: str, expected: bytes) -> None:
    function_type = "B" if kind == "CODE128" else None
    data = escpos(lambda p: p.barcode(code, kind, function_type=function_type))
    image = render_image(data)
    [found] = pyzbar.decode(image)
    assert (found.type, found.data) == (expected_type, expected)
    assert found.rect.height >= 60  # python-escpos's default height: 64 dots


def test_barcode_text_below() -> None:
    with_text = render_image(escpos(lambda p: p.barcode("4006381333931", "EAN13", pos="BELOW")))
    without = render_image(escpos(lambda p: p.barcode("4006381333931", "EAN13", pos="OFF")))
    assert with_text.height > without.height + 20


def test_raster_image_gs_v_0() -> None:
    square = Image.new("1", (64, 32), 0)  # all black
    image = render_image(escpos(lambda p: p.image(square, impl="bitImageRaster")))
    left, top, right, bottom = ink_box(image)
    assert (right - left, bottom - top) == (64, 32)


@pytest.mark.parametrize("impl", ["graphics", "bitImageColumn"])
def test_other_image_commands(impl: str) -> None:
    square = Image.new("1", (48, 48), 0)
    image = render_image(escpos(lambda p: p.image(square, impl=impl)))
    left, top, right, bottom = ink_box(image)
    assert right - left == 48 and bottom - top >= 48


def test_cut_draws_a_dashed_line_across() -> None:
    image = render_image(escpos(lambda p: (p.textln("before"), p.cut())))
    bands = _bands(image)
    cut = image.crop((0, bands[-1][0], image.width, bands[-1][1]))
    left, _, right, _ = ink_box(cut)
    assert left < 5 and right > image.width - 10
    assert 0.4 < ink(cut) / (cut.width * cut.height) < 0.8  # dashes, not a solid line
    assert bands[-1][0] - bands[0][1] > 150  # python-escpos feeds 6 lines before cutting


def test_58mm_paper() -> None:
    image = render_image(INIT + b"Y" * 40 + b"\n", width_dots=PAPER_58MM_DOTS)
    assert image.width == PAPER_58MM_DOTS
    assert len(_bands(image)) == 2  # 32 columns a line


def test_png_bytes() -> None:
    png = render_png(INIT + b"png\n")
    assert png.startswith(b"\x89PNG")
    assert Image.open(io.BytesIO(png)).size[0] == PAPER_80MM_DOTS


def test_bad_width_is_refused() -> None:
    with pytest.raises(ValueError, match="width_dots"):
        render_image(b"", width_dots=10)


def test_empty_and_unterminated_input() -> None:
    assert render_image(b"").size == (PAPER_80MM_DOTS, 32)
    assert ink(render_image(b"no line feed")) > 0  # shown, although a printer would wait for the LF


@pytest.mark.parametrize(
    ("data", "length"),
    [
        (b"text\n", 4),
        (b"\n", 1),
        (b"\x1b@", 2),
        (b"\x1bE\x01", 3),
        (b"\x1bp\x00\x19\xfa", 5),
        (b"\x1d(k\x03\x001C\x04", 8),
        (b"\x1dkI\x03{BA", 7),
        (b"\x1dk\x02123\x00", 7),
        (b"\x1dv0\x00\x01\x00\x02\x00\xff\xff", 10),
        (b"\x1b*!\x01\x00\xff\xff\xff", 8),
        (b"\x1dV\x00", 3),
        (b"\x1dVA\x10", 4),
        (b"\x10\x04\x01", 3),
        (b"\x1bD\x08\x10\x00", 5),
        (b"\x1b\x99", 2),  # unknown: its two bytes
    ],
)
def test_command_lengths(data: bytes, length: int) -> None:
    assert command_length(data + b"tail", 0) == length


@pytest.mark.parametrize(
    "data", [b"\x1b", b"\x1bE", b"\x1d(k\x10\x00abc", b"\x1dkI\x09{B", b"\x1dv0\x00\x10\x00\x10\x00", b"\x10\x04"]
)
def test_commands_cut_short_have_no_length(data: bytes) -> None:
    assert command_length(data, 0) is None
    assert list(iter_commands(data)) == []
    render_image(data)  # and draw nothing, without failing


def test_garbage_sized_commands_do_not_blow_up() -> None:
    huge_raster = b"\x1dv0\x00\xff\xff\xff\xff" + b"\xff" * 100  # declares 4 GB, sends 100 bytes
    render_image(INIT + huge_raster)
    feeds = INIT + b"\x1bd\xff" * 2000  # 500,000 lines of paper
    assert render_image(feeds).height <= MAX_HEIGHT_DOTS + 32
    wide = b"\x1d!\x77" + b"W" * 100 + b"\n"  # 8 x 8 characters
    assert render_image(wide).width == PAPER_80MM_DOTS


def test_random_bytes_never_crash() -> None:
    rng = random.Random(1234)
    receipt = escpos(lambda p: (p.set(bold=True), p.textln("RECEIPT"), p.qr("tx", native=True), p.cut()))
    for _ in range(150):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        render_image(blob)
        cut_at = rng.randrange(len(receipt))
        render_image(receipt[:cut_at] + blob)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_render(data: bytes) -> None:
    image = render_image(data, width_dots=PAPER_58MM_DOTS)
    assert image.width == PAPER_58MM_DOTS and image.height >= 32


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([b"\x1b", b"\x1d", b"\x10", b"\x1c", b"(", b"k", b"v0", b"\x00", b"\xff", b"A"])))
def test_any_command_soup_renders(parts: list[bytes]) -> None:
    render_image(b"".join(parts))


def _bands(image: Image.Image) -> list[tuple[int, int]]:
    width = image.width
    data = image.tobytes()
    bands: list[tuple[int, int]] = []
    start = None
    for y in range(image.height):
        inked = min(data[y * width : (y + 1) * width]) < 128
        if inked and start is None:
            start = y
        elif not inked and start is not None:
            bands.append((start, y))
            start = None
    if start is not None:
        bands.append((start, image.height))
    return bands
