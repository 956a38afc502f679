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
"""

from __future__ import annotations

import codecs
import functools
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from PIL import Image, ImageDraw, ImageFont

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
MAX_HEIGHT_DOTS = 40_000  # ~5 m of paper at 203 dpi: a bound against garbage that feeds forever
TOP_MARGIN = BOTTOM_MARGIN = 16
DEFAULT_LINE_SPACING = 30  # dots (ESC 2): 24-dot characters plus 6 dots between lines
MAX_DECLARED_BYTES = 16 * 1024 * 1024  # a command announcing more data than this is garbage, not a command

ESC, GS, FS, DLE = 0x1B, 0x1D, 0x1C, 0x10
LF, CR, HT, FF = 0x0A, 0x0D, 0x09, 0x0C

_FONT_CELLS = {0: (12, 24), 1: (9, 17)}  # font A, font B: width, height in dots
_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/usr/local/share/fonts")

# ESC t n -> Python codec, from python-escpos's default profile (the one terminal.receipts uses).
_CODE_PAGES = {
    0: "cp437", 2: "cp850", 3: "cp860", 4: "cp863", 5: "cp865", 13: "cp857", 14: "cp737", 15: "iso8859_7",
    16: "cp1252", 17: "cp866", 18: "cp852", 19: "cp858", 21: "cp874", 32: "cp720", 33: "cp775", 34: "cp855",
    35: "cp861", 36: "cp862", 37: "cp864", 38: "cp869", 39: "iso8859_2", 40: "iso8859_15", 44: "cp1125",
    45: "cp1250", 46: "cp1251", 47: "cp1253", 48: "cp1254", 49: "cp1255", 50: "cp1256", 51: "cp1257",
    52: "cp1258",
}  # fmt: skip

# Parameter bytes after ESC x / GS x / FS x for the fixed-length commands.
_ESC_PARAMS = {
    **dict.fromkeys(b"@2<imLSv\x0c", 0),
    **dict.fromkeys(b" !%-3=?EGJKMRTUVadelrtu{A+", 1),
    **dict.fromkeys(b"$\\cBf", 2),
    ord("p"): 3,
    ord("W"): 8,
}
_GS_PARAMS = {
    **dict.fromkeys(b"c", 0),
    **dict.fromkeys(b"!BHIJTabfhjrw|/E", 1),
    **dict.fromkeys(b"LW$\\P", 2),
    ord("^"): 3,
    ord("z"): 3,
}
_FS_PARAMS = {**dict.fromkeys(b"&.", 0), **dict.fromkeys(b"!-CW", 1), **dict.fromkeys(b"Sp", 2)}
_DLE_DC4_LENGTHS = {1: 5, 2: 5, 3: 5, 7: 4, 8: 10}


def _u16(data: bytes | bytearray, pos: int) -> int:
    return data[pos] | (data[pos + 1] << 8)


def _need(data: bytes | bytearray, pos: int, length: int) -> int | None:
    """``length`` if the command's bytes are all there, else None (cut short, or garbage-sized)."""
    if length > MAX_DECLARED_BYTES:
        return 2  # not a plausible command: skip its first two bytes and carry on
    return length if pos + length <= len(data) else None


def _terminated(data: bytes | bytearray, start: int, header: int, limit: int) -> int | None:
    """Length of a command ending with NUL within ``limit`` bytes after its ``header``."""
    end = data.find(b"\x00", start + header, start + header + limit + 1)
    if end >= 0:
        return end + 1 - start
    if len(data) - start - header <= limit:
        return None  # the NUL may still come
    return header  # no NUL where one must be: skip the header only


def command_length(data: bytes | bytearray, pos: int) -> int | None:
    """The length of the ESC/POS command (or run of text) starting at ``data[pos]``.

    None when the command is cut short (its bytes continue beyond the end of
    ``data``): a printer would wait for them.  Unknown commands count as their
    introducer and command byte, so that an interpreter always moves on.
    """
    size = len(data)
    if pos >= size:
        return None
    first = data[pos]
    if first >= 0x20 and first != 0x7F:
        end = pos + 1
        while end < size and data[end] >= 0x20 and data[end] != 0x7F:
            end += 1
        return end - pos
    if first not in (ESC, GS, FS, DLE):
        return 1
    if pos + 1 >= size:
        return None
    cmd = data[pos + 1]
    if first == DLE:
        if cmd == 0x04:  # DLE EOT n (n = 7, 8 take one more byte)
            if pos + 2 >= size:
                return None
            return _need(data, pos, 4 if data[pos + 2] in (7, 8) else 3)
        if cmd == 0x05:  # DLE ENQ n
            return _need(data, pos, 3)
        if cmd == 0x14:  # DLE DC4 fn ...
            if pos + 2 >= size:
                return None
            return _need(data, pos, _DLE_DC4_LENGTHS.get(data[pos + 2], 3))
        return 1  # a lone DLE
    if first == ESC:
        if cmd == ord("*"):  # ESC * m nL nH d: 1 or 3 bytes per column
            if pos + 4 >= size:
                return None
            per_column = 3 if data[pos + 2] in (32, 33) else 1
            return _need(data, pos, 5 + _u16(data, pos + 3) * per_column)
        if cmd == ord("D"):  # ESC D n1 .. nk NUL (tab positions)
            return _terminated(data, pos, 2, 32)
        if cmd == ord("&"):  # ESC & y c1 c2 [x d1 .. d(y*x)] for each character c1..c2
            if pos + 4 >= size:
                return None
            height, first_char, last_char = data[pos + 2], data[pos + 3], data[pos + 4]
            end = pos + 5
            for _ in range(max(0, last_char - first_char + 1)):
                if end >= size:
                    return None
                end += 1 + height * data[end]
            return _need(data, pos, end - pos)
        if cmd == ord("("):  # ESC ( fn pL pH ...
            if pos + 4 >= size:
                return None
            return _need(data, pos, 5 + _u16(data, pos + 3))
        return _need(data, pos, 2 + _ESC_PARAMS.get(cmd, 0))
    if first == GS:
        if cmd == ord("("):  # GS ( fn pL pH ...
            if pos + 4 >= size:
                return None
            return _need(data, pos, 5 + _u16(data, pos + 3))
        if cmd == ord("8"):  # GS 8 L p1 p2 p3 p4 ...
            if pos + 6 >= size:
                return None
            return _need(data, pos, 7 + int.from_bytes(data[pos + 3 : pos + 7], "little"))
        if cmd == ord("k"):  # GS k m d1 .. dk NUL  |  GS k m n d1 .. dn
            if pos + 2 >= size:
                return None
            kind = data[pos + 2]
            if kind <= 6:
                return _terminated(data, pos, 3, 255)
            if pos + 3 >= size:
                return None
            return _need(data, pos, 4 + data[pos + 3])
        if cmd == ord("v"):  # GS v 0 m xL xH yL yH d
            if pos + 7 >= size:
                return None
            return _need(data, pos, 8 + _u16(data, pos + 4) * _u16(data, pos + 6))
        if cmd == ord("*"):  # GS * x y d (x * y * 8 bytes)
            if pos + 3 >= size:
                return None
            return _need(data, pos, 4 + data[pos + 2] * data[pos + 3] * 8)
        if cmd == ord("V"):  # GS V m [n]
            if pos + 2 >= size:
                return None
            return _need(data, pos, 4 if data[pos + 2] >= 65 else 3)
        if cmd == ord("g"):  # GS g 0 m nL nH / GS g 2 m nL nH
            return _need(data, pos, 6)
        return _need(data, pos, 2 + _GS_PARAMS.get(cmd, 0))
    # FS
    if cmd == ord("("):
        if pos + 4 >= size:
            return None
        return _need(data, pos, 5 + _u16(data, pos + 3))
    if cmd == ord("q"):  # FS q n [xL xH yL yH d1 .. dk] x n (define NV images)
        if pos + 2 >= size:
            return None
        end = pos + 3
        for _ in range(data[pos + 2]):
            if end + 4 > size:
                return None
            end += 4 + _u16(data, end) * _u16(data, end + 2) * 8
        return _need(data, pos, end - pos)
    if cmd == ord("2"):  # FS 2 c1 c2 d1 .. d72 (define a Kanji character)
        return _need(data, pos, 76)
    return _need(data, pos, 2 + _FS_PARAMS.get(cmd, 0))


def iter_commands(data: bytes | bytearray) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of each complete command in ``data``; stops at a command cut short."""
    pos = 0
    while pos < len(data):
        length = command_length(data, pos)
        if length is None:
            return
        yield pos, pos + length
        pos += length


# -- glyphs --------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _truetype(bold: bool, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont | None:
    name = "DejaVuSansMono-Bold.ttf" if bold else "DejaVuSansMono.ttf"
    for folder in _FONT_DIRS:
        path = os.path.join(folder, name)
        if os.path.exists(path):
            try:
                return ImageFont.truetype(path, size, layout_engine=ImageFont.Layout.BASIC)  # one glyph: no shaping
            except OSError:
                continue
    if bold:
        return None  # emboldened by hand from the regular font
    try:
        return ImageFont.load_default(size=size)  # Pillow's built-in font (FreeType builds)
    except (TypeError, ValueError, OSError):
        return ImageFont.load_default()


@functools.lru_cache(maxsize=4096)
def _glyph(char: str, font: int, bold: bool) -> Image.Image:
    """A character's cell as a mask (255 = ink), thresholded as a thermal head prints it."""
    width, height = _FONT_CELLS[font]
    cell = Image.new("L", (width, height), 0)
    if char == " " or not char.isprintable():
        return cell
    size = 20 if font == 0 else 14
    typeface = _truetype(bold, size)
    embolden = typeface is None
    if typeface is None:
        typeface = _truetype(False, size)
    draw = ImageDraw.Draw(cell)
    baseline = 19 if font == 0 else 13
    try:
        if isinstance(typeface, ImageFont.FreeTypeFont):
            draw.text((width / 2, baseline), char, font=typeface, fill=255, anchor="ms")
        elif typeface is not None:
            draw.text((1, 2), char, font=typeface, fill=255)
    except (RuntimeError, OSError, ValueError, UnicodeError):  # a character the font cannot draw: a blank cell
        return Image.new("L", (width, height), 0)
    if embolden:
        shifted = Image.new("L", (width, height), 0)
        shifted.paste(cell, (1, 0))
        cell = Image.composite(shifted, cell, shifted)
    return cell.point(lambda v: 255 if v >= 112 else 0)


# -- the interpreter -----------------------------------------------------------------------------------------------


@dataclass
class _Cell:
    mask: Image.Image  # 255 = ink
    invert: bool = False
    underline: int = 0


@dataclass
class _State:
    align: int = 0
    font: int = 0
    bold: bool = False
    underline: int = 0
    width_mul: int = 1
    height_mul: int = 1
    invert: bool = False
    char_spacing: int = 0
    line_spacing: int = DEFAULT_LINE_SPACING
    left_margin: int = 0
    area_width: int | None = None
    codec: str = "cp437"
    tabs: list[int] = field(default_factory=lambda: list(range(8, 256, 8)))
    barcode_height: int = 162
    barcode_module: int = 3
    barcode_hri: int = 0
    barcode_hri_font: int = 0
    qr_module: int = 3
    qr_ec: int = 48
    qr_data: bytes = b""
    pdf417_data: bytes = b""
    graphics: Image.Image | None = None


_QR_EC = {48: "L", 49: "M", 50: "Q", 51: "H"}
_BARCODES_A = {0: "UPC-A", 1: "UPC-E", 2: "EAN13", 3: "EAN8", 4: "CODE39", 5: "ITF", 6: "CODABAR"}
_BARCODES_B = {
    65: "UPC-A", 66: "UPC-E", 67: "EAN13", 68: "EAN8", 69: "CODE39", 70: "ITF", 71: "CODABAR", 72: "CODE93",
    73: "CODE128", 74: "GS1-128", 75: "DATABAR", 76: "DATABAR", 77: "DATABAR", 78: "DATABAR",
}  # fmt: skip
_PYBARCODE_NAMES = {
    "UPC-A": "upca", "EAN13": "ean13", "EAN8": "ean8", "CODE39": "code39", "ITF": "itf", "CODABAR": "codabar",
    "CODE128": "code128", "GS1-128": "code128",
}  # fmt: skip


class _Renderer:
    def __init__(self, width: int) -> None:
        self.width = width
        self.state = _State()
        self.strips: list[Image.Image] = []
        self.height = 0
        self.line: list[_Cell] = []
        self.line_width = 0
        self.line_align = 0
        self.full = False  # the height bound was reached: nothing more is drawn

    # -- geometry --

    @property
    def area(self) -> tuple[int, int]:
        left = min(self.state.left_margin, self.width - 1)
        width = self.state.area_width if self.state.area_width is not None else self.width - left
        return left, max(1, min(width, self.width - left))

    def _x_for(self, content_width: int, align: int) -> int:
        left, width = self.area
        if align == 1:
            return left + max(0, (width - content_width) // 2)
        if align == 2:
            return left + max(0, width - content_width)
        return left

    def _add_strip(self, strip: Image.Image) -> None:
        if self.full:
            return
        room = MAX_HEIGHT_DOTS - self.height
        if strip.height > room:
            strip = strip.crop((0, 0, strip.width, max(0, room)))
            self.full = True
        if strip.height > 0:
            self.strips.append(strip)
            self.height += strip.height

    def feed(self, dots: int) -> None:
        if dots > 0:
            self._add_strip(Image.new("L", (self.width, min(dots, MAX_HEIGHT_DOTS)), 255))

    def place(self, mask: Image.Image, align: int | None = None) -> None:
        """Print a block (code, image) on its own, aligned as the text is."""
        self.print_line(feed=False)
        _, width = self.area
        if mask.width > width:
            mask = mask.crop((0, 0, width, mask.height))
        strip = Image.new("L", (self.width, mask.height), 255)
        strip.paste(0, (self._x_for(mask.width, self.state.align if align is None else align), 0), mask)
        self._add_strip(strip)

    # -- text --

    def add_cell(self, cell: _Cell) -> None:
        _, width = self.area
        if not self.line:
            self.line_align = self.state.align
        if self.line and self.line_width + cell.mask.width > width:
            self.print_line(feed=False)  # the line is full: the printer prints it and goes on
            self.line_align = self.state.align
        self.line.append(cell)
        self.line_width += cell.mask.width

    def add_text(self, raw: bytes) -> None:
        state = self.state
        text = raw.decode(state.codec, errors="replace")
        cw, ch = _FONT_CELLS[state.font]
        for char in text:
            glyph = _glyph(char, state.font, state.bold)
            if state.width_mul > 1 or state.height_mul > 1:
                glyph = glyph.resize((cw * state.width_mul, ch * state.height_mul), Image.Resampling.NEAREST)
            if state.char_spacing:
                spaced = Image.new("L", (glyph.width + state.char_spacing * state.width_mul, glyph.height), 0)
                spaced.paste(glyph, (0, 0))
                glyph = spaced
            self.add_cell(_Cell(glyph, state.invert, state.underline))

    def blank(self, dots: int) -> None:
        if dots > 0:
            _, height = _FONT_CELLS[self.state.font]
            self.add_cell(_Cell(Image.new("L", (min(dots, self.width), height * self.state.height_mul), 0)))

    def tab(self) -> None:
        cw = _FONT_CELLS[self.state.font][0] * self.state.width_mul
        stops = [t for t in self.state.tabs if t * cw > self.line_width]
        if stops:
            self.blank(stops[0] * cw - self.line_width)

    def print_line(self, *, feed: bool = True) -> None:
        """Print the line buffer (LF, or a full line); ``feed``: an empty line still feeds."""
        if not self.line:
            if feed:
                self.feed(self.state.line_spacing)
            return
        height = max(cell.mask.height for cell in self.line)
        strip = Image.new("L", (self.width, max(height, self.state.line_spacing)), 255)
        x = self._x_for(self.line_width, self.line_align)
        for cell in self.line:
            top = height - cell.mask.height
            box = (x, top, x + cell.mask.width, height)
            if cell.invert:
                strip.paste(0, box)
                strip.paste(255, (x, top), cell.mask)
            else:
                strip.paste(0, (x, top), cell.mask)
            if cell.underline:
                strip.paste(0, (x, height - cell.underline, x + cell.mask.width, height))
            x += cell.mask.width
        self.line.clear()
        self.line_width = 0
        self._add_strip(strip.crop((0, 0, self.width, strip.height)))

    # -- codes and images --

    def qr(self) -> None:
        import qrcode
        from qrcode.exceptions import DataOverflowError

        data = self.state.qr_data
        if not data:
            return
        levels = {
            "L": qrcode.constants.ERROR_CORRECT_L,
            "M": qrcode.constants.ERROR_CORRECT_M,
            "Q": qrcode.constants.ERROR_CORRECT_Q,
            "H": qrcode.constants.ERROR_CORRECT_H,
        }
        code = qrcode.QRCode(version=None, error_correction=levels[_QR_EC.get(self.state.qr_ec, "L")], border=0)
        try:
            code.add_data(data)
            code.make(fit=True)
        except (DataOverflowError, ValueError):
            self.label_box("[QR code: too much data]")
            return
        matrix: list[list[bool]] = code.get_matrix()
        module = self.state.qr_module
        side = len(matrix) * module
        if side > self.area[1]:
            self.label_box("[QR code wider than the paper: not printed]")
            return
        small = Image.new("L", (len(matrix), len(matrix)), 0)
        small.putdata([255 if dark else 0 for row in matrix for dark in row])
        self.print_line(feed=False)
        self.feed(module * 2)  # quiet zone above and below; white paper is the quiet zone on the sides
        self.place(small.resize((side, side), Image.Resampling.NEAREST))
        self.feed(module * 2)

    def label_box(self, text: str) -> None:
        """A framed label where the preview cannot draw what the printer would (or would refuse)."""
        self.print_line(feed=False)
        saved = (self.state.font, self.state.width_mul, self.state.height_mul, self.state.bold, self.state.invert)
        self.state.font, self.state.width_mul, self.state.height_mul = 1, 1, 1
        self.state.bold = self.state.invert = False
        cw, ch = _FONT_CELLS[1]
        text = text[: max(1, (self.area[1] - 8) // cw)]
        box = Image.new("L", (len(text) * cw + 8, ch + 8), 0)
        draw = ImageDraw.Draw(box)
        draw.rectangle((0, 0, box.width - 1, box.height - 1), outline=255)
        for i, char in enumerate(text):
            box.paste(_glyph(char, 1, False), (4 + i * cw, 4))
        self.place(box)
        self.state.font, self.state.width_mul, self.state.height_mul, self.state.bold, self.state.invert = saved

    def barcode(self, name: str, raw: bytes) -> None:
        if not raw:
            return
        text = _barcode_text(name, raw)
        pattern = _barcode_modules(name, text)
        if pattern is None:
            self.label_box(f"[{name} barcode: {text[:40]}]")
            return
        module = self.state.barcode_module
        _, width = self.area
        if len(pattern) * module > width:
            self.label_box(f"[{name} barcode wider than the paper: not printed]")
            return
        bars = Image.new("L", (len(pattern) * module, max(1, self.state.barcode_height)), 0)
        for i, bit in enumerate(pattern):
            if bit == "1":
                bars.paste(255, (i * module, 0, (i + 1) * module, bars.height))
        self.print_line(feed=False)
        hri = self.state.barcode_hri
        if hri in (1, 3, 49, 51):
            self.hri_text(text, bars.width)
        self.place(bars)
        if hri in (2, 3, 50, 51):
            self.hri_text(text, bars.width)

    def hri_text(self, text: str, width: int) -> None:
        font = 1 if self.state.barcode_hri_font in (1, 49) else 0
        cw, ch = _FONT_CELLS[font]
        text = text[: max(1, width // cw)] if width >= cw else text[:1]
        mask = Image.new("L", (max(width, len(text) * cw), ch + 4), 0)
        x0 = (mask.width - len(text) * cw) // 2
        for i, char in enumerate(text):
            mask.paste(_glyph(char, font, False), (x0 + i * cw, 2))
        self.place(mask)

    def raster(self, mode: int, width_bytes: int, rows: int, data: bytes) -> None:
        self.print_line(feed=False)
        _, area = self.area
        keep = min(width_bytes, (area + 7) // 8)
        rows = min(rows, len(data) // max(1, width_bytes), MAX_HEIGHT_DOTS)
        if keep <= 0 or rows <= 0:
            return
        clipped = b"".join(data[r * width_bytes : r * width_bytes + keep] for r in range(rows))
        image = Image.frombytes("1", (keep * 8, rows), clipped, "raw", "1;I").convert("L")  # ink is 0 here
        mask = image.point(lambda v: 255 - v)
        scale_w = 2 if mode in (1, 3, 49, 51) else 1
        scale_h = 2 if mode in (2, 3, 50, 51) else 1
        if scale_w > 1 or scale_h > 1:
            mask = mask.resize((mask.width * scale_w, mask.height * scale_h), Image.Resampling.NEAREST)
        self.place(mask)

    def column_image(self, mode: int, columns: int, data: bytes) -> None:
        """ESC * : a bit image in the line, one column of 8 or 24 dots per 1 or 3 bytes (MSB at the top)."""
        if columns <= 0:
            return
        dots = 24 if mode in (32, 33) else 8
        per = dots // 8
        image = Image.new("L", (columns, dots), 0)
        pixels = image.load()
        assert pixels is not None
        for col in range(columns):
            for byte_index in range(per):
                value = data[col * per + byte_index]
                for bit in range(8):
                    if value & (0x80 >> bit):
                        pixels[col, byte_index * 8 + bit] = 255
        scale_w = 2 if mode in (0, 32) else 1
        scale_h = 3 if dots == 8 else 1
        if scale_w > 1 or scale_h > 1:
            image = image.resize((columns * scale_w, dots * scale_h), Image.Resampling.NEAREST)
        self.add_cell(_Cell(image))

    def cut(self, partial: bool) -> None:
        self.print_line(feed=False)
        strip = Image.new("L", (self.width, 16), 255)
        draw = ImageDraw.Draw(strip)
        dash, gap = (10, 6) if not partial else (4, 6)
        for x in range(0, self.width, dash + gap):
            draw.line((x, 8, min(self.width - 1, x + dash - 1), 8), fill=0, width=2)
        self._add_strip(strip)

    def result(self) -> Image.Image:
        self.print_line(feed=False)  # a printer prints what is left in its buffer only on LF; shown anyway
        total = TOP_MARGIN + self.height + BOTTOM_MARGIN
        page = Image.new("L", (self.width, total), 255)
        y = TOP_MARGIN
        for strip in self.strips:
            page.paste(strip, (0, y))
            y += strip.height
        return page


def _barcode_text(name: str, raw: bytes) -> str:
    """The text a barcode carries: CODE128 data selects its code set with ``{A`` / ``{B`` / ``{C``."""
    if name not in ("CODE128", "GS1-128"):
        return raw.decode("latin-1").strip("*" if name == "CODE39" else "")
    out: list[str] = []
    code_c = False
    i = 0
    while i < len(raw):
        byte = raw[i]
        if byte == ord("{") and i + 1 < len(raw):
            selector = chr(raw[i + 1])
            i += 2
            if selector == "{":
                out.append("{")
            elif selector in "AB":
                code_c = False
            elif selector == "C":
                code_c = True
            continue  # FNC1..4 and shift are not text
        out.append(f"{byte:02d}" if code_c and byte < 100 else chr(byte))
        i += 1
    return "".join(out)


def _barcode_modules(name: str, text: str) -> str | None:
    """The bars and spaces (``1`` / ``0`` per module) from python-barcode, or None if it cannot draw them."""
    py_name = _PYBARCODE_NAMES.get(name)
    if py_name is None or not text:
        return None
    try:
        import barcode
        from barcode.errors import BarcodeError

        cls = barcode.get_barcode_class(py_name)
        symbol = cls(text, add_checksum=False) if py_name == "code39" else cls(text)
        built: list[str] = symbol.build()
    except (BarcodeError, ValueError, TypeError, KeyError, IndexError):
        return None
    pattern = "".join(built)
    return pattern if pattern and set(pattern) <= {"0", "1"} else None


def _set_code_page(state: _State, number: int) -> None:
    name = _CODE_PAGES.get(number, "cp437")
    try:
        codecs.lookup(name)
    except LookupError:
        name = "cp437"
    state.codec = name


def _graphics(renderer: _Renderer, body: bytes) -> None:
    """GS ( L / GS 8 L: fn 112 stores a raster graphic, fn 50 prints it."""
    if len(body) < 2:
        return
    fn = body[1]
    if fn in (50, 2):
        stored = renderer.state.graphics
        if stored is not None:
            renderer.place(stored)
        return
    if fn != 112 or len(body) < 10:
        return
    scale_x, scale_y = (2 if body[3] == 2 else 1), (2 if body[4] == 2 else 1)
    width, height = _u16(body, 6), _u16(body, 8)
    row_bytes = (width + 7) // 8
    height = min(height, (len(body) - 10) // max(1, row_bytes), MAX_HEIGHT_DOTS)
    if width <= 0 or height <= 0:
        return
    raw = body[10 : 10 + row_bytes * height]
    image = Image.frombytes("1", (row_bytes * 8, height), raw, "raw", "1;I").convert("L").point(lambda v: 255 - v)
    image = image.crop((0, 0, min(width, renderer.width), height))
    if scale_x > 1 or scale_y > 1:
        image = image.resize((image.width * scale_x, image.height * scale_y), Image.Resampling.NEAREST)
    renderer.state.graphics = image


def _run(renderer: _Renderer, data: bytes) -> None:
    for start, end in iter_commands(data):
        if renderer.full:
            return
        cmd = data[start:end]
        first = cmd[0]
        if first >= 0x20 and first != 0x7F:
            renderer.add_text(cmd)
            continue
        if first == LF:
            renderer.print_line()
        elif first == HT:
            renderer.tab()
        elif first == ESC and len(cmd) >= 2:
            _esc(renderer, renderer.state, cmd)
        elif first == GS and len(cmd) >= 2:
            _gs(renderer, renderer.state, cmd)
        # FS, DLE (status requests, Kanji, NV images), CR, FF and other control bytes: nothing to draw


def _esc(renderer: _Renderer, state: _State, cmd: bytes) -> None:
    op = chr(cmd[1])
    arg = cmd[2] if len(cmd) > 2 else 0
    at_line_start = not renderer.line
    if op == "@":
        renderer.line.clear()
        renderer.line_width = 0
        renderer.state = _State()
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
        renderer.print_line(feed=arg > 0)
        renderer.feed(state.line_spacing * max(0, arg - 1))
    elif op == "J":
        renderer.print_line(feed=False)
        renderer.feed(arg)
    elif op == "$":
        target = _u16(cmd, 2)  # dots from the left margin
        renderer.blank(target - renderer.line_width)
    elif op == "\\":
        offset = int.from_bytes(cmd[2:4], "little", signed=True)
        renderer.blank(offset)
    elif op == "D":
        stops = [b for b in cmd[2:-1] if b > 0]
        state.tabs = sorted(set(stops))
    elif op == "*":
        mode = cmd[2]
        columns = _u16(cmd, 3)
        renderer.column_image(mode, columns, cmd[5:])
    elif op in "im":
        renderer.cut(partial=True)


def _gs(renderer: _Renderer, state: _State, cmd: bytes) -> None:
    op = chr(cmd[1])
    arg = cmd[2] if len(cmd) > 2 else 0
    if op == "!":
        state.width_mul = ((arg >> 4) & 7) + 1
        state.height_mul = (arg & 7) + 1
    elif op == "B":
        state.invert = bool(arg & 1)
    elif op == "L" and not renderer.line:
        state.left_margin = _u16(cmd, 2)
    elif op == "W" and not renderer.line:
        state.area_width = _u16(cmd, 2)
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
            renderer.barcode(_BARCODES_A.get(kind, "?"), cmd[3:-1])
        else:
            renderer.barcode(_BARCODES_B.get(kind, f"type {kind}"), cmd[4:])
    elif op == "V":
        if arg in (65, 66, 97, 98, 103, 104) and len(cmd) > 3:
            renderer.print_line(feed=False)
            renderer.feed(cmd[3])
        renderer.cut(partial=arg in (1, 49, 66, 98, 104))
    elif op == "v" and len(cmd) >= 8:
        renderer.raster(cmd[3], _u16(cmd, 4), _u16(cmd, 6), cmd[8:])
    elif op == "(" and len(cmd) >= 5:
        _gs_paren(renderer, state, chr(cmd[2]), cmd[5:])
    elif op == "8" and len(cmd) >= 7 and cmd[2] == ord("L"):
        _graphics(renderer, cmd[7:])


def _gs_paren(renderer: _Renderer, state: _State, fn_group: str, body: bytes) -> None:
    if fn_group == "L":
        _graphics(renderer, body)
        return
    if fn_group != "k" or len(body) < 2:
        return
    symbol, fn = body[0], body[1]
    params = body[2:]
    if symbol == 49:  # QR code
        if fn == 67 and params:
            state.qr_module = min(16, max(1, params[0]))
        elif fn == 69 and params:
            state.qr_ec = params[0] if params[0] in _QR_EC else 48
        elif fn == 80:
            state.qr_data = bytes(params[1:])
        elif fn == 81:
            renderer.qr()
    elif symbol == 48:  # PDF417
        if fn == 80:
            state.pdf417_data = bytes(params[1:])
        elif fn == 81 and state.pdf417_data:
            renderer.label_box(f"[PDF417: {state.pdf417_data[:30].decode('latin-1')}]")


def _check_width(width_dots: int) -> None:
    if not 64 <= width_dots <= 4096:
        raise ValueError(f"width_dots must be 64..4096 (576 for 80 mm paper, 384 for 58 mm), got {width_dots}")


def render_image(data: bytes, *, width_dots: int = PAPER_80MM_DOTS) -> Image.Image:
    """The receipt ``data`` (ESC/POS bytes) as a greyscale image ``width_dots`` wide, black ink on white.

    The image is exactly the print area (no side margins: a left-aligned line
    starts at x = 0 as on the paper), with 16 blank dots above and below.
    """
    _check_width(width_dots)
    renderer = _Renderer(width_dots)
    _run(renderer, bytes(data))
    return renderer.result()


def render_png(data: bytes, *, width_dots: int = PAPER_80MM_DOTS) -> bytes:
    """:func:`render_image` encoded as PNG."""
    out = io.BytesIO()
    render_image(data, width_dots=width_dots).save(out, format="PNG", optimize=True)
    return out.getvalue()
