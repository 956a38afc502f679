"""Issue 13's QR figures: a sale's MPM code built and drawn, a CPM payload parsed, a camera frame decoded.

- building and rendering a dynamic MPM code: the terminal's code for a sale
  (:func:`terminal.qr_merchant.merchant_code`, the payload encoded, with its
  CRC and its check by decoding, by :func:`emv.qr_mpm.encode`) and its text
  drawing (:func:`terminal.qr_merchant.render`, the QR matrix made and drawn
  with qrcode's ``print_ascii``), a new reference each time; target median
  at most 5 ms.  The same with qrcode's search of the best of eight mask
  patterns (what a static code gets), and the PNG, for scale;
- parsing a CPM payload: base64, BER-TLV, the application chosen, POI and
  transparent data split (:func:`emv.qr_cpm.process`), for the notes' example 2
  and a UnionPay-style code; target at most 1 ms;
- decoding a QR code from a 1280x720 camera frame through the camera driver,
  QR codes only (the frames of :mod:`bench.qr_decode`); target median at most
  35 ms; next to zbar on the whole frame, as the driver did before.

``python -m bench.qr`` prints the table.
"""

from __future__ import annotations

import base64
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["QrFigures", "markdown", "run"]

MPM_TARGET_MS = 5.0
CPM_TARGET_MS = 1.0
FRAME_TARGET_MS = 35.0


@dataclass(frozen=True)
class QrFigures:
    mpm_build_render_ms: float
    mpm_best_mask_ms: float
    mpm_png_ms: float
    mpm_decode_ms: float
    cpm_example_ms: float
    cpm_unionpay_ms: float
    frame_ms: float
    frame_full_size_ms: float
    runs: int
    frames: int


def _median_ms(action: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _unionpay_style() -> str:
    from emv import tlv

    transparent = tlv.encode_pairs([
        (0x9F26, bytes.fromhex("1122334455667788")), (0x9F27, b"\x80"),
        (0x9F10, bytes.fromhex("07010103A00000010A010000000000")), (0x9F36, b"\x00\x01"), (0x82, b"\x00\x00"),
        (0x9F37, bytes.fromhex("9A8B7C6D")),
    ])  # fmt: skip
    app = tlv.encode_pairs(
        [(0x4F, bytes.fromhex("A000000333010101")), (0x57, bytes.fromhex("6234567890123456D3012201123456789F")),
         (0x5F34, b"\x00")]
    ) + tlv.encode(0x63, transparent)  # fmt: skip
    return base64.b64encode(tlv.encode(0x85, b"CPV01") + tlv.encode(0x61, app)).decode("ascii")


def _frames(frames: int) -> tuple[float, float]:
    from pyzbar import pyzbar

    from bench.qr_decode import make_frame
    from drivers.camera_scanner import decode_frame

    rng = random.Random(20240501)
    made = []
    for n in range(frames):
        text = f"posterm:pay?ref=TX{n:06d}&amount={rng.randint(1, 99999)}"
        made.append((text, make_frame(text, rng)))
    driver, full = [], []
    for text, frame in made:  # interleaved, so that a busy moment of the machine weighs on both
        start = time.perf_counter()
        codes = decode_frame(frame, symbologies=["QRCODE"])
        driver.append((time.perf_counter() - start) * 1000)
        assert [c.text for c in codes] == [text], f"frame for {text!r} decoded as {codes!r}"
        start = time.perf_counter()
        pyzbar.decode(frame.convert("L"), symbols=[pyzbar.ZBarSymbol.QRCODE])
        full.append((time.perf_counter() - start) * 1000)
    return statistics.median(driver), statistics.median(full)


def run(runs: int = 300, frames: int = 50) -> QrFigures:
    from emv.qr_cpm import EXAMPLE_2, process
    from emv.qr_mpm import decode, encode
    from terminal.money import currency
    from terminal.qr_merchant import merchant_code, new_reference, qr_settings, render
    from terminal.settings import load_default_config, load_default_settings, shipped_document

    qr = qr_settings(shipped_document(), load_default_config(), load_default_settings())
    cur = currency("EUR")
    amounts = iter(range(100, 100 + 10 * runs))

    def payload() -> str:
        return encode(merchant_code(qr, amount=next(amounts), currency=cur, reference=new_reference()))

    def build_render() -> None:
        render(payload())

    build_render()  # the imports (qrcode) are not a sale's
    sample = payload()
    terminal_aids = [bytes.fromhex("A000000333"), bytes.fromhex("A0000000666666")]
    unionpay = _unionpay_style()
    frame, full = _frames(frames)
    return QrFigures(
        mpm_build_render_ms=_median_ms(build_render, runs),
        mpm_best_mask_ms=_median_ms(lambda: render(payload(), best_mask=True), max(runs // 5, 10)),
        mpm_png_ms=_median_ms(lambda: render(sample, png=True), max(runs // 5, 10)),
        mpm_decode_ms=_median_ms(lambda: decode(sample), runs),
        cpm_example_ms=_median_ms(lambda: process(EXAMPLE_2, terminal_aids), runs),
        cpm_unionpay_ms=_median_ms(lambda: process(unionpay, terminal_aids), runs),
        frame_ms=frame,
        frame_full_size_ms=full,
        runs=runs,
        frames=frames,
    )


def _verdict(ms: float, target: float) -> str:
    return f"at most {target:g} ms: {'met' if ms <= target else 'NOT met'}"


def markdown(f: QrFigures) -> str:
    rows = [
        ("build and draw a sale's dynamic MPM code (text), fixed mask", f.mpm_build_render_ms,
         _verdict(f.mpm_build_render_ms, MPM_TARGET_MS)),
        ("the same, the best of eight mask patterns (a static code)", f.mpm_best_mask_ms, ""),
        ("the same code drawn as text and PNG, fixed mask", f.mpm_png_ms, ""),
        ("decode the MPM payload (CRC, structure, values)", f.mpm_decode_ms, ""),
        ("parse a CPM payload and choose its application: example 2 (two applications, common data)",
         f.cpm_example_ms, _verdict(f.cpm_example_ms, CPM_TARGET_MS)),
        ("the same, a UnionPay-style code (4F, 57, 5F34, 63 with the ARQC)", f.cpm_unionpay_ms,
         _verdict(f.cpm_unionpay_ms, CPM_TARGET_MS)),
        ("decode a QR code in a 1280x720 camera frame, camera driver, QR only (half size first)", f.frame_ms,
         _verdict(f.frame_ms, FRAME_TARGET_MS)),
        ("the same frames, zbar on the whole frame, QR only (the driver before)", f.frame_full_size_ms, ""),
    ]  # fmt: skip
    lines = ["| what | median | target |", "| --- | ---: | --- |"]
    lines += [f"| {what} | {ms:.3f} ms | {target} |" if ms < 1 else f"| {what} | {ms:.1f} ms | {target} |"
              for what, ms, target in rows]  # fmt: skip
    lines.append("")
    lines.append(f"{f.runs} runs for the codes and payloads, {f.frames} camera frames (each read by both, in turn).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    print(markdown(run(int(args[0]) if args else 300)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
