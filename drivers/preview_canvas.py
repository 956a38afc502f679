"""The receipt preview's canvas: paper as a thermal printer fills it, line by line and block by block.

Split from :mod:`drivers.preview` along the line between reading commands and
drawing: :mod:`drivers.preview` interprets the ESC/POS stream and calls a
:class:`Canvas`, which holds the printer's modes (:class:`PrinterState`, set
by the interpreter) and does all the drawing with Pillow, knowing nothing of
command bytes.  Mode values (alignment, HRI position, raster scaling) are
kept as the printer's own parameter values, so they pass through unchanged.

The canvas is as wide as the printer's print area in dots and grows in
strips: a text line is a row of character cells (each glyph in the printer's
fixed cell, styled: bold, underline, double or custom sizes, reverse,
character spacing) printed on LF or when full, aligned as it was at its
start; QR codes (the ``qrcode`` package), barcodes (python-barcode's module
patterns, with human-readable text), raster and column images are blocks on
their own; feeds are white strips and a cut is a dashed line.  What cannot be
drawn (PDF417, a code wider than the paper) is a framed label.  The height is
bounded by :data:`MAX_HEIGHT_DOTS`: past it nothing more is drawn.

Glyphs come from DejaVu Sans Mono when it is installed (Debian's
fonts-dejavu-core), else from Pillow's built-in font; either way each
character sits in the printer's fixed cell, so columns line up as on paper.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "BOTTOM_MARGIN",
    "DEFAULT_LINE_SPACING",
    "MAX_HEIGHT_DOTS",
    "QR_EC",
    "TOP_MARGIN",
    "Canvas",
    "PrinterState",
]

MAX_HEIGHT_DOTS = 40_000  # ~5 m of paper at 203 dpi: a bound against garbage that feeds forever
TOP_MARGIN = BOTTOM_MARGIN = 16
DEFAULT_LINE_SPACING = 30  # dots (ESC 2): 24-dot characters plus 6 dots between lines

_FONT_CELLS = {0: (12, 24), 1: (9, 17)}  # font A, font B: width, height in dots
_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/usr/local/share/fonts")


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


# -- the canvas ----------------------------------------------------------------------------------------------------


@dataclass
class _Cell:
    mask: Image.Image  # 255 = ink
    invert: bool = False
    underline: int = 0


@dataclass
class PrinterState:
    """The printer's modes as the commands set them (ESC @ starts afresh); the canvas draws by them."""

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


QR_EC = {48: "L", 49: "M", 50: "Q", 51: "H"}  # GS ( k 69 n -> the QR code's error correction level
_PYBARCODE_NAMES = {
    "UPC-A": "upca", "EAN13": "ean13", "EAN8": "ean8", "CODE39": "code39", "ITF": "itf", "CODABAR": "codabar",
    "CODE128": "code128", "GS1-128": "code128",
}  # fmt: skip


class Canvas:
    """A receipt ``width`` dots wide being printed: the line buffer, the strips printed so far, the modes.

    The interpreter sets :attr:`state` and calls the drawing methods;
    :meth:`result` is the page.
    """

    def __init__(self, width: int) -> None:
        self.width = width
        self.state = PrinterState()
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
        code = qrcode.QRCode(version=None, error_correction=levels[QR_EC.get(self.state.qr_ec, "L")], border=0)
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
