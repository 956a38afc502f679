"""Codes read from camera frames or image files, decoded with pyzbar (libzbar).

URLs:

====================================  ===========================================================
``camera:file=PATH``                  one image, or a glob of frames (``frames/*.png``) read in
                                      name order, as a camera would deliver them
``camera:dir=DIR``                    frames appearing in a directory (files written after the
                                      scanner opened, in name order; dotfiles, ``*.tmp`` and
                                      ``*.part`` are skipped, a file is read once its size holds)
``camera:0``, ``camera:/dev/video0``  a real camera, through OpenCV if it is installed (it is not
                                      a posterm dependency: ``pip install opencv-python-headless``)
====================================  ===========================================================

Options after ``&``: ``fps=N`` paces file frames at N a second (default: as
fast as they decode); ``dedupe=0`` reports a code again in consecutive frames
(by default a code that stays in view is reported once, as a scanner beeps
once); ``symbologies=QRCODE,EAN13`` looks for those only (quicker, and zbar
then cannot "find" a one-dimensional code in sensor noise, which it sometimes
does in a busy frame).  The symbology is pyzbar's name for it (``QRCODE``, ``EAN13``,
``CODE128``, ...).  Unreadable files and frames without a code are counted in
:attr:`CameraScanner.dropped`.
"""

from __future__ import annotations

import glob
import importlib
import importlib.util
import os
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final, Protocol, TypeAlias
from urllib.parse import unquote

from PIL import Image, ImageSequence, UnidentifiedImageError

from terminal.ports import CancelToken, DeviceError, DeviceGone, NoCodeError, ScannedCode, WaitCancelled

__all__ = ["CameraScanner", "decode_frame"]

_POLL_SECONDS = 0.05
_SKIPPED_SUFFIXES = (".tmp", ".part", ".partial", ".swp")
Frame: TypeAlias = Image.Image | tuple[bytes, int, int]  # a PIL image, or 8-bit grey pixels with width and height


def _pyzbar() -> Any:
    """pyzbar's decoder, imported when first needed (importing it loads libzbar)."""
    try:
        from pyzbar import pyzbar
    except ImportError as exc:  # pyzbar raises ImportError when libzbar is missing
        raise DeviceError(f"cannot decode codes: {exc} (install libzbar0, and pyzbar)") from exc
    return pyzbar


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


#: Symbologies zbar still reads in a frame halved in size (two-dimensional codes, whose modules stay
#: several pixels wide); a one-dimensional code's thin bars may not survive it.
_HALVABLE: Final = frozenset({"QRCODE"})
#: Frames at least this wide are tried at half size first, when only halvable symbologies are sought.
_HALVE_FROM_WIDTH: Final = 960


def _grey(image: Frame) -> Image.Image:
    if isinstance(image, tuple):
        pixels, width, height = image
        return Image.frombytes("L", (width, height), pixels)
    return image if image.mode == "L" else image.convert("L")


def decode_frame(image: Frame, source: str = "", symbologies: Iterable[str] | None = None) -> list[ScannedCode]:
    """Every code pyzbar finds in one frame, in the order it reports them.

    ``symbologies`` (pyzbar's names: ``QRCODE``, ``EAN13``, ...) limits the search
    to those: quicker, and no one-dimensional code "found" in sensor noise.
    When QR codes only are sought, a frame 960 pixels wide or more is first
    read at half size (a quarter of the pixels for zbar to scan: a 1280x720
    frame in about a fifth of the time), and at full size only when that
    finds nothing, so a code too small to survive the halving is still read.
    """
    pyzbar = _pyzbar()
    symbols = None
    names = None if symbologies is None else list(symbologies)
    if names is not None:
        try:
            symbols = [pyzbar.ZBarSymbol[name] for name in names]
        except KeyError as exc:
            known = ", ".join(n for n in pyzbar.ZBarSymbol.__members__ if n not in ("NONE", "PARTIAL"))
            raise DeviceError(f"unknown symbology {exc.args[0]!r}; pyzbar knows {known}") from None
    grey = _grey(image)
    found = []
    if names and set(names) <= _HALVABLE and grey.width >= _HALVE_FROM_WIDTH:
        found = pyzbar.decode(grey.reduce(2), symbols=symbols)
    if not found:
        found = pyzbar.decode(grey, symbols=symbols)
    return [ScannedCode(text=_text(d.data), symbology=str(d.type), raw=bytes(d.data), source=source) for d in found]


class _FrameSource(Protocol):
    def next_frame(self, wait: float) -> Frame | None:
        """The next frame, waiting up to ``wait`` seconds; None if there is none yet."""

    def close(self) -> None: ...


def _frames_of(path: Path, dropped: Counter[str]) -> list[Image.Image]:
    """The frames in one image file (an animated file has several); none if it is no image."""
    try:
        with Image.open(path) as image:
            frames = [frame.convert("L") for frame in ImageSequence.Iterator(image)]
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, EOFError):
        dropped["unreadable"] += 1
        return []
    return frames


class _FileFrames:
    """Frames from a list of files, read once, in order."""

    def __init__(self, paths: list[Path], fps: float, dropped: Counter[str]) -> None:
        self._paths = deque(paths)
        self._pending: deque[Image.Image] = deque()
        self._interval = 1.0 / fps if fps > 0 else 0.0
        self._next_at = 0.0
        self._dropped = dropped

    def next_frame(self, wait: float) -> Frame | None:
        if self._interval:
            delay = self._next_at - time.monotonic()
            if delay > 0:
                time.sleep(min(delay, wait))
                if time.monotonic() < self._next_at:
                    return None
            self._next_at = time.monotonic() + self._interval
        while not self._pending and self._paths:
            self._pending.extend(_frames_of(self._paths.popleft(), self._dropped))
        if self._pending:
            return self._pending.popleft()
        time.sleep(wait)  # the files are used up: the camera sees nothing more
        return None

    def close(self) -> None:
        self._paths.clear()
        self._pending.clear()


class _DirectoryFrames:
    """Frames written into a directory after it was opened, each read once its size stops changing."""

    def __init__(self, folder: Path, dropped: Counter[str]) -> None:
        self._folder = folder
        self._seen: set[str] = set(self._listing())
        self._sizes: dict[str, int] = {}
        self._pending: deque[Image.Image] = deque()
        self._dropped = dropped

    def _listing(self) -> list[str]:
        try:
            names = os.listdir(self._folder)
        except FileNotFoundError:
            raise DeviceGone(f"frame directory {self._folder} went away") from None
        except OSError as exc:
            raise DeviceError(f"cannot list frame directory {self._folder}: {exc}") from exc
        return sorted(n for n in names if not n.startswith(".") and not n.endswith(_SKIPPED_SUFFIXES))

    def _ready_files(self) -> list[str]:
        ready: list[str] = []
        for name in self._listing():
            if name in self._seen:
                continue
            try:
                size = (self._folder / name).stat().st_size
            except FileNotFoundError:
                continue
            if size > 0 and self._sizes.get(name) == size:
                ready.append(name)
            else:
                self._sizes[name] = size
        return ready

    def next_frame(self, wait: float) -> Frame | None:
        deadline = time.monotonic() + wait
        while not self._pending:
            for name in self._ready_files():
                self._seen.add(name)
                self._sizes.pop(name, None)
                self._pending.extend(_frames_of(self._folder / name, self._dropped))
            if self._pending:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            time.sleep(min(_POLL_SECONDS, remaining))
        return self._pending.popleft()

    def close(self) -> None:
        self._pending.clear()


class _OpenCvFrames:
    """A real camera through OpenCV (only when it is installed)."""

    def __init__(self, device: int | str) -> None:
        if importlib.util.find_spec("cv2") is None:
            raise DeviceError(
                f"camera:{device} needs OpenCV to capture frames, and posterm does not install it: "
                "pip install opencv-python-headless (or give frames as camera:file=PATH or camera:dir=DIR)"
            )
        self._cv2: Any = importlib.import_module("cv2")
        self._capture: Any = self._cv2.VideoCapture(device)
        if not self._capture.isOpened():
            self._capture.release()
            raise DeviceError(f"cannot open camera {device} (is it attached, and not used by another program?)")
        self._device = device

    def next_frame(self, wait: float) -> Frame | None:
        ok, frame = self._capture.read()
        if not ok:
            raise DeviceGone(f"camera {self._device} stopped delivering frames")
        grey = self._cv2.cvtColor(frame, self._cv2.COLOR_BGR2GRAY)
        height, width = grey.shape[:2]
        return (grey.tobytes(), int(width), int(height))

    def close(self) -> None:
        self._capture.release()


def _pairs(text: str) -> dict[str, str]:
    """``a=1&b=2`` -> a dict; %-escapes are decoded, ``+`` stays a plus (file names contain them)."""
    out: dict[str, str] = {}
    for item in filter(None, text.split("&")):
        name, _, value = item.partition("=")
        out[unquote(name)] = unquote(value)
    return out


def _parse(url: str) -> tuple[dict[str, str], str]:
    scheme, sep, rest = url.partition(":")
    if scheme != "camera" or not sep or not rest:
        raise DeviceError(f"{url!r} is not a camera URL (camera:0, camera:file=PATH, camera:dir=DIR)")
    if "=" not in rest.split("&", 1)[0]:
        device, _, options = rest.partition("&")
        return _pairs(options), unquote(device)
    return _pairs(rest), ""


class CameraScanner:
    """A scanner that decodes frames: a camera, a directory of frames, image files."""

    kind = "scanner"
    scheme = "camera"
    _OPTIONS = ("file", "dir", "fps", "dedupe", "symbologies")

    def __init__(
        self,
        url: str,
        source: _FrameSource,
        *,
        dedupe: bool = True,
        dropped: Counter[str] | None = None,
        symbologies: list[str] | None = None,
    ) -> None:
        self.url = url
        self._source = source
        self._dedupe = dedupe
        self._symbologies = symbologies
        self._dropped: Counter[str] = dropped if dropped is not None else Counter()
        self._previous: set[str] = set()  # what the last frame showed
        self._codes: deque[ScannedCode] = deque()
        self._closed = False

    @classmethod
    def open(cls, url: str) -> CameraScanner:
        options, device = _parse(url)
        unknown = sorted(set(options) - set(cls._OPTIONS))
        if unknown:
            known = ", ".join(cls._OPTIONS)
            raise DeviceError(f"unknown camera option(s) {', '.join(unknown)} in {url!r}; known: {known}")
        try:
            fps = float(options.get("fps", "0"))
        except ValueError:
            raise DeviceError(f"camera option fps={options['fps']!r} is not a number") from None
        if not 0 <= fps <= 1000:
            raise DeviceError(f"camera option fps={fps:g} is out of range (0..1000)")
        dedupe_text = options.get("dedupe", "1")
        if dedupe_text not in ("0", "1"):
            raise DeviceError(f"camera option dedupe={dedupe_text!r}: expected 0 or 1")
        symbologies = (
            [n.strip().upper() for n in options["symbologies"].split(",")] if "symbologies" in options else None
        )
        if symbologies is not None:
            decode_frame(Image.new("L", (8, 8), 255), symbologies=symbologies)  # DeviceError for an unknown name
        dropped: Counter[str] = Counter({"unreadable": 0, "no_code": 0, "repeated": 0})
        sources = [name for name in ("file", "dir") if name in options] + (["device"] if device else [])
        if len(sources) != 1:
            raise DeviceError(f"{url!r}: give exactly one of camera:N, camera:file=PATH, camera:dir=DIR")
        source: _FrameSource
        if "file" in options:
            pattern = options["file"]
            paths = sorted(Path(p) for p in glob.glob(pattern)) if glob.has_magic(pattern) else [Path(pattern)]
            paths = [p for p in paths if p.is_file()]
            if not paths:
                raise DeviceError(f"camera:file={pattern!r}: no such image file")
            source = _FileFrames(paths, fps, dropped)
        elif "dir" in options:
            folder = Path(options["dir"])
            if not folder.is_dir():
                raise DeviceError(f"camera:dir={options['dir']!r}: no such directory")
            source = _DirectoryFrames(folder, dropped)
        else:
            source = _OpenCvFrames(int(device) if device.isdigit() else device)
        return cls(url, source, dedupe=dedupe_text == "1", dropped=dropped, symbologies=symbologies)

    @staticmethod
    def discover() -> list[str]:
        """Video devices (``camera:N``), listed only when OpenCV is there to open them."""
        if importlib.util.find_spec("cv2") is None:
            return []
        return sorted(f"camera:{p[len('/dev/video') :]}" for p in glob.glob("/dev/video[0-9]*"))

    @property
    def dropped(self) -> dict[str, int]:
        """Frames that gave nothing: ``unreadable`` files, frames with ``no_code``, codes ``repeated`` in view."""
        return dict(self._dropped)

    def _decoded(self, frame: Frame) -> Iterator[ScannedCode]:
        codes = decode_frame(frame, self.url, self._symbologies)
        if not codes:
            self._dropped["no_code"] += 1
        texts = {code.text for code in codes}
        seen_now: set[str] = set()
        for code in codes:
            if code.text in seen_now or (self._dedupe and code.text in self._previous):
                self._dropped["repeated"] += 1
                continue
            seen_now.add(code.text)
            yield code
        self._previous = texts

    def read(self, timeout: float | None = None, cancel: CancelToken | None = None) -> ScannedCode:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if cancel is not None and cancel.cancelled:
                raise WaitCancelled("the wait for a code was cancelled")
            if self._codes:
                return self._codes.popleft()
            if self._closed:
                raise DeviceError(f"camera scanner {self.url} is closed")
            wait = _POLL_SECONDS
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise NoCodeError(f"no code seen within {timeout:g} s")
                wait = min(wait, remaining)
            frame = self._source.next_frame(wait)
            if frame is not None:
                self._codes.extend(self._decoded(frame))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._source.close()

    def __enter__(self) -> CameraScanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
