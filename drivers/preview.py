"""Receipt preview: the ESC/POS bytes posterm sends to a printer, drawn as the paper would look.

No maintained library renders ESC/POS, so this is a small interpreter for the
commands that python-escpos generates (and the common ones around them) and a
renderer with Pillow.  It draws on a canvas as wide as the printer's print
area in dots (576 for 80 mm paper, 384 for 58 mm, at 203 dpi):

- text in font A (12 x 24 dots) or B (9 x 17), in the selected code page, with
  bold (ESC E, ESC G, ESC !), underline (ESC -), double and custom sizes
  (ESC !, GS !), reverse (GS B), character spacing (ESC SP), tabs, alignment
  (ESC a, at the start of a line as on an Epson), margins (GS L, GS W);
- line feeds and paper feeds (LF, ESC d, ESC J, ESC 2 / ESC 3 line spacing);
- native QR codes (GS ( k: model, module size, error correction, store,
  print), drawn with the ``qrcode`` package; PDF417 as a labelled box;
- barcodes (GS k, both function types, with GS h / w / H / f), bars from
  python-barcode's module patterns, human-readable text above / below;
- raster images (GS v 0, what python-escpos sends for an image or a QR code
  rendered as an image), column bit images (ESC *), graphics (GS ( L / GS 8 L);
- cuts (GS V, ESC i / m) as a dashed line.

Glyphs come from DejaVu Sans Mono when it is installed (Debian's
fonts-dejavu-core), else from Pillow's built-in font; either way each
character sits in the printer's fixed cell, so columns line up as on paper.
Everything else is skipped by its length (:func:`command_length` knows the
length of every command it can meet); bytes that are not a command are
dropped.  Bad input never raises: a command cut short ends the drawing there,
sizes are clipped to the paper, and the image height is bounded.

This module is the preview's public face and its interpreter: what each
command does to the printer's modes and to the paper.  The two parts on
either side of it live beside it, split where the work changes kind:

- :mod:`drivers.escpos_commands`: where each command ends (the framing),
  needing no Pillow, also used to cut a stream into commands without drawing
  it (:func:`command_length` and :func:`iter_commands` are re-exported here);
- :mod:`drivers.preview_canvas`: the drawing, with Pillow: glyphs, text
  lines and their styles, QR codes, barcodes, images, feeds and cuts, knowing
  nothing of command bytes.
"""

from __future__ import annotations

import codecs
import io

from PIL import Image

from drivers.escpos_commands import ESC, GS, HT, LF, command_length, iter_commands, u16
from drivers.preview_canvas import DEFAULT_LINE_SPACING, MAX_HEIGHT_DOTS, QR_EC, Canvas, PrinterState

__all__ = [
    "PAPER_58MM_DOTS",
    "PAPER_80MM_DOTS",
    "command_length",
    "iter_commands",
    "render_image",
    "render_png",
]

PAPER_80MM_DOTS = 576
PAPER_58MM_DOTS = 384

# ESC t n -> Python codec, from python-escpos's default profile (the one terminal.receipts uses).
_CODE_PAGES = {
    0: "cp437", 2: "cp850", 3: "cp860", 4: "cp863", 5: "cp865", 13: "cp857", 14: "cp737", 15: "iso8859_7",
    16: "cp1252", 17: "cp866", 18: "cp852", 19: "cp858", 21: "cp874", 32: "cp720", 33: "cp775", 34: "cp855",
    35: "cp861", 36: "cp862", 37: "cp864", 38: "cp869", 39: "iso8859_2", 40: "iso8859_15", 44: "cp1125",
    45: "cp1250", 46: "cp1251", 47: "cp1253", 48: "cp1254", 49: "cp1255", 50: "cp1256", 51: "cp1257",
    52: "cp1258",
}  # fmt: skip

# GS k m -> the symbology (function A: m = 0..6, NUL-terminated data; function B: m = 65.., with a length).
_BARCODES_A = {0: "UPC-A", 1: "UPC-E", 2: "EAN13", 3: "EAN8", 4: "CODE39", 5: "ITF", 6: "CODABAR"}
_BARCODES_B = {
    65: "UPC-A", 66: "UPC-E", 67: "EAN13", 68: "EAN8", 69: "CODE39", 70: "ITF", 71: "CODABAR", 72: "CODE93",
    73: "CODE128", 74: "GS1-128", 75: "DATABAR", 76: "DATABAR", 77: "DATABAR", 78: "DATABAR",
}  # fmt: skip


def _set_code_page(state: PrinterState, number: int) -> None:
    name = _CODE_PAGES.get(number, "cp437")
    try:
        codecs.lookup(name)
    except LookupError:
        name = "cp437"
    state.codec = name


def _graphics(canvas: Canvas, body: bytes) -> None:
    """GS ( L / GS 8 L: fn 112 stores a raster graphic, fn 50 prints it."""
    if len(body) < 2:
        return
    fn = body[1]
    if fn in (50, 2):
        stored = canvas.state.graphics
        if stored is not None:
            canvas.place(stored)
        return
    if fn != 112 or len(body) < 10:
        return
    scale_x, scale_y = (2 if body[3] == 2 else 1), (2 if body[4] == 2 else 1)
    width, height = u16(body, 6), u16(body, 8)
    row_bytes = (width + 7) // 8
    height = min(height, (len(body) - 10) // max(1, row_bytes), MAX_HEIGHT_DOTS)
    if width <= 0 or height <= 0:
        return
    raw = body[10 : 10 + row_bytes * height]
    image = Image.frombytes("1", (row_bytes * 8, height), raw, "raw", "1;I").convert("L").point(lambda v: 255 - v)
    image = image.crop((0, 0, min(width, canvas.width), height))
    if scale_x > 1 or scale_y > 1:
        image = image.resize((image.width * scale_x, image.height * scale_y), Image.Resampling.NEAREST)
    canvas.state.graphics = image


def _run(canvas: Canvas, data: bytes) -> None:
    for start, end in iter_commands(data):
        if canvas.full:
            return
        cmd = data[start:end]
        first = cmd[0]
        if first >= 0x20 and first != 0x7F:
            canvas.add_text(cmd)
            continue
        if first == LF:
            canvas.print_line()
        elif first == HT:
            canvas.tab()
        elif first == ESC and len(cmd) >= 2:
            _esc(canvas, canvas.state, cmd)
        elif first == GS and len(cmd) >= 2:
            _gs(canvas, canvas.state, cmd)
        # FS, DLE (status requests, Kanji, NV images), CR, FF and other control bytes: nothing to draw


def _esc(canvas: Canvas, state: PrinterState, cmd: bytes) -> None:
    op = chr(cmd[1])
    arg = cmd[2] if len(cmd) > 2 else 0
    at_line_start = not canvas.line
    if op == "@":
        canvas.line.clear()
        canvas.line_width = 0
        canvas.state = PrinterState()
    elif op == "!":
        state.font = arg & 1
        state.bold = bool(arg & 0x08)
        state.height_mul = 2 if arg & 0x10 else 1
        state.width_mul = 2 if arg & 0x20 else 1
        state.underline = 1 if arg & 0x80 else 0
    elif op in "EG":
        state.bold = bool(arg & 1)
    elif op == "-":
        state.underline = {1: 1, 2: 2, 49: 1, 50: 2}.get(arg, 0)
    elif op == "a":
        if at_line_start:  # as on an Epson: alignment is taken at the start of a line only
            state.align = {0: 0, 1: 1, 2: 2, 48: 0, 49: 1, 50: 2}.get(arg, state.align)
    elif op == "M":
        state.font = 1 if arg in (1, 49) else 0
    elif op == "t":
        _set_code_page(state, arg)
    elif op == " ":
        state.char_spacing = arg
    elif op == "2":
        state.line_spacing = DEFAULT_LINE_SPACING
    elif op in "3+":
        state.line_spacing = arg if op == "3" else arg // 2
    elif op == "A":
        state.line_spacing = arg * 3
    elif op == "d":
        canvas.print_line(feed=arg > 0)
        canvas.feed(state.line_spacing * max(0, arg - 1))
    elif op == "J":
        canvas.print_line(feed=False)
        canvas.feed(arg)
    elif op == "$":
        target = u16(cmd, 2)  # dots from the left margin
        canvas.blank(target - canvas.line_width)
    elif op == "\\":
        offset = int.from_bytes(cmd[2:4], "little", signed=True)
        canvas.blank(offset)
    elif op == "D":
        stops = [b for b in cmd[2:-1] if b > 0]
        state.tabs = sorted(set(stops))
    elif op == "*":
        mode = cmd[2]
        columns = u16(cmd, 3)
        canvas.column_image(mode, columns, cmd[5:])
    elif op in "im":
        canvas.cut(partial=True)


def _gs(canvas: Canvas, state: PrinterState, cmd: bytes) -> None:
    op = chr(cmd[1])
    arg = cmd[2] if len(cmd) > 2 else 0
    if op == "!":
        state.width_mul = ((arg >> 4) & 7) + 1
        state.height_mul = (arg & 7) + 1
    elif op == "B":
        state.invert = bool(arg & 1)
    elif op == "L" and not canvas.line:
        state.left_margin = u16(cmd, 2)
    elif op == "W" and not canvas.line:
        state.area_width = u16(cmd, 2)
    elif op == "h":
        state.barcode_height = arg or 1
    elif op == "w":
        state.barcode_module = arg if 1 <= arg <= 6 else state.barcode_module
    elif op == "H":
        state.barcode_hri = arg
    elif op == "f":
        state.barcode_hri_font = arg
    elif op == "k":
        kind = cmd[2]
        if kind <= 6:
            canvas.barcode(_BARCODES_A.get(kind, "?"), cmd[3:-1])
        else:
            canvas.barcode(_BARCODES_B.get(kind, f"type {kind}"), cmd[4:])
    elif op == "V":
        if arg in (65, 66, 97, 98, 103, 104) and len(cmd) > 3:
            canvas.print_line(feed=False)
            canvas.feed(cmd[3])
        canvas.cut(partial=arg in (1, 49, 66, 98, 104))
    elif op == "v" and len(cmd) >= 8:
        canvas.raster(cmd[3], u16(cmd, 4), u16(cmd, 6), cmd[8:])
    elif op == "(" and len(cmd) >= 5:
        _gs_paren(canvas, state, chr(cmd[2]), cmd[5:])
    elif op == "8" and len(cmd) >= 7 and cmd[2] == ord("L"):
        _graphics(canvas, cmd[7:])


def _gs_paren(canvas: Canvas, state: PrinterState, fn_group: str, body: bytes) -> None:
    if fn_group == "L":
        _graphics(canvas, body)
        return
    if fn_group != "k" or len(body) < 2:
        return
    symbol, fn = body[0], body[1]
    params = body[2:]
    if symbol == 49:  # QR code
        if fn == 67 and params:
            state.qr_module = min(16, max(1, params[0]))
        elif fn == 69 and params:
            state.qr_ec = params[0] if params[0] in QR_EC else 48
        elif fn == 80:
            state.qr_data = bytes(params[1:])
        elif fn == 81:
            canvas.qr()
    elif symbol == 48:  # PDF417
        if fn == 80:
            state.pdf417_data = bytes(params[1:])
        elif fn == 81 and state.pdf417_data:
            canvas.label_box(f"[PDF417: {state.pdf417_data[:30].decode('latin-1')}]")


def _check_width(width_dots: int) -> None:
    if not 64 <= width_dots <= 4096:
        raise ValueError(f"width_dots must be 64..4096 (576 for 80 mm paper, 384 for 58 mm), got {width_dots}")


def render_image(data: bytes, *, width_dots: int = PAPER_80MM_DOTS) -> Image.Image:
    """The receipt ``data`` (ESC/POS bytes) as a greyscale image ``width_dots`` wide, black ink on white.

    The image is exactly the print area (no side margins: a left-aligned line
    starts at x = 0 as on the paper), with 16 blank dots above and below.
    """
    _check_width(width_dots)
    canvas = Canvas(width_dots)
    _run(canvas, bytes(data))
    return canvas.result()


def render_png(data: bytes, *, width_dots: int = PAPER_80MM_DOTS) -> bytes:
    """:func:`render_image` encoded as PNG."""
    out = io.BytesIO()
    render_image(data, width_dots=width_dots).save(out, format="PNG", optimize=True)
    return out.getvalue()
