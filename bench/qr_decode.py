"""QR decoding time per 1280x720 camera frame, through the camera driver's :func:`decode_frame` (pyzbar).

Each frame is a colour 1280x720 picture of a QR code (a posterm payment
reference) at a random scale, place and slight tilt, blurred a little and
with sensor noise, as a counter camera would see a phone's screen.  Frames
are made before the clock starts; the figure is the median time to decode
one frame, grey conversion included, and every frame must decode.

``python -m bench.qr_decode [FRAMES]`` prints it.
"""

from __future__ import annotations

import random
import statistics
import sys
import time

from PIL import Image, ImageFilter

from drivers.camera_scanner import decode_frame

__all__ = ["make_frame", "markdown", "measure", "run"]

FRAME_SIZE = (1280, 720)


def make_frame(text: str, rng: random.Random) -> Image.Image:
    """A camera frame holding the QR code of ``text``."""
    import qrcode

    code = qrcode.QRCode(box_size=rng.randint(4, 8), border=4)
    code.add_data(text)
    code.make(fit=True)
    symbol = code.make_image().get_image().convert("L").rotate(rng.uniform(-12, 12), expand=True, fillcolor=255)
    frame = Image.new("L", FRAME_SIZE, rng.randint(90, 200))
    x = rng.randint(0, FRAME_SIZE[0] - symbol.width)
    y = rng.randint(0, FRAME_SIZE[1] - symbol.height)
    frame.paste(symbol, (x, y))
    frame = frame.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.2)))
    noisy = Image.blend(frame, Image.effect_noise(FRAME_SIZE, 60), 0.12)
    return Image.merge("RGB", (noisy, noisy, noisy))


def measure(frames: int = 50, seed: int = 20240501, symbologies: list[str] | None = None) -> float:
    """Median milliseconds to decode one frame (looking for every symbology, as the camera driver does by
    default, or for ``symbologies`` only); AssertionError if a frame's QR code is not found."""
    if frames < 1:
        raise ValueError("frames must be at least 1")
    rng = random.Random(seed)
    texts = [f"posterm:pay?ref=TX{n:06d}&amount={rng.randint(1, 99999)}" for n in range(frames)]
    made = [(text, make_frame(text, rng)) for text in texts]
    times: list[float] = []
    for text, frame in made:
        start = time.perf_counter()
        codes = decode_frame(frame, symbologies=symbologies)
        times.append((time.perf_counter() - start) * 1000)
        found = [c.text for c in codes if c.symbology == "QRCODE"]
        assert found == [text], f"frame for {text!r} decoded as {codes!r}"
    return statistics.median(times)


def run(frames: int = 50) -> dict[str, float]:
    """Median ms per frame looking for every symbology (the driver's default), and for QR codes only."""
    return {"all symbologies": measure(frames), "QRCODE only": measure(frames, symbologies=["QRCODE"])}


def markdown(frames: int, results: dict[str, float]) -> str:
    size = f"{FRAME_SIZE[0]}x{FRAME_SIZE[1]}"
    rows = "\n".join(f"| {what} | {frames} | {size} | {ms:.1f} ms |" for what, ms in results.items())
    return "| zbar looks for | frames | frame size | median decode time |\n|---|---:|---|---:|\n" + rows


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    frames = int(args[0]) if args else 50
    print(markdown(frames, run(frames)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
