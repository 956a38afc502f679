"""ESC/POS framing: where each command in a byte stream ends, without acting on any of them.

Split from :mod:`drivers.preview` because knowing a command's length is a
different job from drawing it, and has other users: the virtual network
printer (:mod:`simulator.net_printer`) and the printer contract tests cut a
stream into commands with :func:`iter_commands` and never draw.  It needs
nothing but the bytes (no Pillow), and its one rule is that an interpreter
must always move on: :func:`command_length` knows the length of every command
a receipt printer can meet (fixed parameters, length-prefixed blocks, NUL
terminated lists, the image and graphics formats), unknown commands count as
their introducer and command byte, a run of text is one "command", and a
command announcing more than :data:`MAX_DECLARED_BYTES` of data is taken for
garbage and skipped by two bytes.

>>> command_length(b"\\x1b!\\x08Total", 0), command_length(b"\\x1b!\\x08Total", 3)
(3, 5)
>>> list(iter_commands(b"Hi\\n\\x1dV\\x01\\x1b"))  # the trailing ESC is cut short: not yielded
[(0, 2), (2, 3), (3, 6)]
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = [
    "CR",
    "DLE",
    "ESC",
    "FF",
    "FS",
    "GS",
    "HT",
    "LF",
    "MAX_DECLARED_BYTES",
    "command_length",
    "iter_commands",
    "u16",
]

MAX_DECLARED_BYTES = 16 * 1024 * 1024  # a command announcing more data than this is garbage, not a command

ESC, GS, FS, DLE = 0x1B, 0x1D, 0x1C, 0x10
LF, CR, HT, FF = 0x0A, 0x0D, 0x09, 0x0C

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


def u16(data: bytes | bytearray, pos: int) -> int:
    """The little-endian 16-bit number at ``data[pos]`` (ESC/POS's ``nL nH``)."""
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
            return _need(data, pos, 5 + u16(data, pos + 3) * per_column)
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
            return _need(data, pos, 5 + u16(data, pos + 3))
        return _need(data, pos, 2 + _ESC_PARAMS.get(cmd, 0))
    if first == GS:
        if cmd == ord("("):  # GS ( fn pL pH ...
            if pos + 4 >= size:
                return None
            return _need(data, pos, 5 + u16(data, pos + 3))
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
            return _need(data, pos, 8 + u16(data, pos + 4) * u16(data, pos + 6))
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
        return _need(data, pos, 5 + u16(data, pos + 3))
    if cmd == ord("q"):  # FS q n [xL xH yL yH d1 .. dk] x n (define NV images)
        if pos + 2 >= size:
            return None
        end = pos + 3
        for _ in range(data[pos + 2]):
            if end + 4 > size:
                return None
            end += 4 + u16(data, end) * u16(data, end + 2) * 8
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
