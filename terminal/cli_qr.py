"""``posterm qr decode`` and ``posterm qr mpm``: EMV QR codes, read and made.

- ``posterm qr decode PAYLOAD [--json]``: every field of an EMV
  merchant-presented (MPM) or consumer-presented (CPM) payload as one JSON
  object; which it is is told by its start (MPM: digits, ``000201``; CPM:
  base64, ``hQVDUFY``).  ``-`` reads the payload from standard input.  The
  CRC of an MPM code is checked; an invalid payload is one line naming the
  error, the ID (or tag) and the position, exit status 2.  A PAN in a CPM
  code is shown masked (first 6, last 4), track 2 data after its PAN hidden,
  the cardholder's name hidden.  ``--aid HEX`` (repeatable, in order of
  preference) adds ``poi``: the application a terminal accepting those AIDs
  uses and its POI data, as :func:`emv.qr_cpm.process` chooses them.
- ``posterm qr mpm --amount 12.34 [--currency 156] [--reference R] [--png FILE]
  [--static]``: the terminal's dynamic code for an amount (point of initiation
  12), or with ``--static`` the store's code (11, no amount unless given),
  from the configuration in force (see :mod:`terminal.qr_merchant`), drawn in
  the terminal with qrcode's text rendering, and written as a PNG with
  ``--png``.  ``--json`` prints the payload and its fields instead of the
  drawing.  A static code is drawn with the best of the eight QR mask
  patterns, a dynamic one with a fixed one, quicker (see
  :func:`terminal.qr_merchant.render`).

The codes are put in QR byte mode (UTF-8), as the EMV specification asks.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from terminal.cli_output import DATA_DIR_HELP, CommandError, Unavailable, emit, write_output

if TYPE_CHECKING:
    from emv.qr_cpm import ApplicationTemplate, ConsumerPresentedCode
    from emv.qr_mpm import MerchantPresentedCode

__all__ = ["add_commands"]

#: The first characters of the two kinds of payload.
_MPM_START = "000201"
_CPM_START = "hQVDUFY"


# ------------------------------------------------------------------------------------------ decode


def _pairs(pairs: tuple[tuple[str, str], ...]) -> dict[str, str]:
    return dict(pairs)


def _templates(templates: tuple[Any, ...]) -> dict[str, Any]:
    return {t.id: {"gui": t.gui, "fields": _pairs(t.fields)} for t in templates}


def mpm_json(code: MerchantPresentedCode, payload: str) -> dict[str, Any]:
    """Every field of an MPM code, by the specification's names, IDs in the keys of the nested objects."""
    extra = code.additional_data
    lang = code.language
    additional = None
    if extra is not None:
        additional = {
            name: getattr(extra, name)
            for name in ("bill_number", "mobile_number", "store_label", "loyalty_number", "reference_label",
                         "customer_label", "terminal_label", "purpose", "consumer_data_request")
        } | {"templates": _templates(extra.templates), "unknown": _pairs(extra.unknown)}  # fmt: skip
    initiation = {"11": "static", "12": "dynamic"}.get(code.point_of_initiation or "")
    return {
        "format": "emv-mpm",
        "payload_format_indicator": "01",
        "point_of_initiation": code.point_of_initiation,
        "point_of_initiation_method": initiation,
        "merchant_accounts": _pairs(code.accounts),
        "merchant_account_templates": _templates(code.templates),
        "merchant_category_code": code.merchant_category_code,
        "transaction_currency": code.currency,
        "transaction_amount": code.amount,
        "tip_or_convenience_indicator": code.tip_indicator,
        "convenience_fee_fixed": code.fee_fixed,
        "convenience_fee_percentage": code.fee_percentage,
        "country_code": code.country,
        "merchant_name": code.merchant_name,
        "merchant_city": code.merchant_city,
        "postal_code": code.postal_code,
        "additional_data": additional,
        "language_template": None
        if lang is None
        else {
            "language_preference": lang.language,
            "merchant_name": lang.merchant_name,
            "merchant_city": lang.merchant_city,
            "unknown": _pairs(lang.unknown),
        },
        "unknown": _pairs(code.unknown),
        "crc": payload[-4:].upper(),
        "length": len(payload),
    }


def _masked(tag: int, value: bytes) -> str:
    """A value as hex, card data masked: the PAN (5A) first 6 / last 4, track 2 (57) after its PAN hidden,
    names and track 1 hidden, any value holding a card number as text hidden; others as they are."""
    from emv.pan import mask_pan, mask_text

    text = value.hex().upper()
    if tag == 0x5A:
        return mask_pan(text)
    if tag in (0x57, 0x9F6B):
        pan, separator, rest = text.partition("D")
        return mask_pan(pan) + separator + "*" * len(rest)
    if tag in (0x5F20, 0x56, 0x9F1F, 0x9F0B):
        return "*" * len(text)
    as_text = value.decode("latin-1")
    return "*" * len(text) if mask_text(as_text) != as_text else text


def _objects_json(objects: tuple[tuple[int, bytes], ...]) -> list[dict[str, Any]]:
    from emv import tlv
    from emv.tags import format_of, name_of

    out = []
    for tag, value in objects:
        entry: dict[str, Any] = {"tag": tlv.tag_hex(tag), "name": name_of(tag), "value": _masked(tag, value)}
        if format_of(tag) in ("an", "ans") and tag != 0x5F20 and value.isascii() and value.decode().isprintable():
            entry["text"] = value.decode()
        out.append(entry)
    return out


def _template_json(template: ApplicationTemplate, common: ApplicationTemplate | None) -> dict[str, Any]:
    from emv.pan import mask_hex, mask_pan, pan_of

    data = dict(template.objects) | (dict(common.objects) if common is not None else {})
    pan = pan_of(data)
    return {
        "aid": template.aid.hex().upper() if template.aid is not None else None,
        "pan": mask_pan(pan) if pan is not None else None,
        "objects": _objects_json(template.objects),
        "transparent": mask_hex(template.transparent) if template.transparent is not None else None,
    }


def cpm_json(code: ConsumerPresentedCode) -> dict[str, Any]:
    """Every object of a CPM code, card data masked (a PAN is never shown in clear)."""
    from emv.pan import mask_hex

    common = code.common
    return {
        "format": "emv-cpm",
        "payload_format_indicator": code.version,
        "applications": [_template_json(app, common) for app in code.applications],
        "common_data": None
        if common is None
        else {
            "objects": _objects_json(common.objects),
            "transparent": mask_hex(common.transparent) if common.transparent is not None else None,
        },
        "other": _objects_json(code.other),
    }


def _poi_json(code: ConsumerPresentedCode, aids: list[bytes]) -> dict[str, Any]:
    """The POI's processing of ``code`` for the terminal AIDs ``aids``: the application chosen, its data."""
    from emv.pan import mask_hex, mask_pan
    from emv.qr_cpm import process

    poi = process(code, aids)
    pan = poi.pan
    return {
        "aid": poi.aid.hex().upper(),
        "pan": mask_pan(pan) if pan is not None else None,
        "data_format": poi.data_format.hex().upper(),
        "objects": _objects_json(poi.objects),
        "transparent": mask_hex(poi.transparent) if poi.transparent else None,
    }


def _aid(text: str) -> bytes:
    """An argparse type: an AID in hex, 5 to 16 bytes."""
    try:
        aid = bytes.fromhex(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not hex") from None
    if not 5 <= len(aid) <= 16:
        raise argparse.ArgumentTypeError(f"{text!r}: an AID is 5 to 16 bytes")
    return aid


def _read_payload(text: str) -> str:
    if text == "-":
        text = sys.stdin.read()
    return text.strip()


def _cmd_decode(args: argparse.Namespace) -> int:
    from emv.pan import mask_text  # an error may quote a value: a card number in it is masked

    payload = _read_payload(args.payload)
    if payload.startswith(_CPM_START):
        from emv.qr_cpm import CpmError
        from emv.qr_cpm import decode as decode_cpm

        try:
            code = decode_cpm(payload)
            obj = cpm_json(code)
            if args.aid:
                obj["poi"] = _poi_json(code, args.aid)
        except CpmError as exc:
            raise CommandError(mask_text(f"invalid EMV CPM code: {type(exc).__name__}: {exc}")) from None
    elif payload[:2].isascii() and payload[:2].isdigit():
        from emv.qr_mpm import MpmError
        from emv.qr_mpm import decode as decode_mpm

        try:
            obj = mpm_json(decode_mpm(payload), payload)
        except MpmError as exc:
            raise CommandError(mask_text(f"invalid EMV MPM code: {type(exc).__name__}: {exc}")) from None
    else:
        raise CommandError(
            f"not an EMV QR payload: a merchant-presented one starts with {_MPM_START!r}, "
            f"a consumer-presented one with {_CPM_START!r}"
        )
    print(json.dumps(obj, indent=1, ensure_ascii=False))
    return 0


# --------------------------------------------------------------------------------------------- mpm


def _data_dir(args: argparse.Namespace) -> Path:
    if args.data_dir is not None:
        return Path(args.data_dir)
    from terminal.bootstrap import default_data_dir

    return default_data_dir()


def _enrolled_ids(directory: Path) -> tuple[str | None, str | None]:
    """The terminal and merchant ids of the enrolment, when the terminal is enrolled."""
    from terminal.bootstrap import ENROLMENT_FILE
    from terminal.limits import MAX_STATE_FILE_BYTES, InputFileError, read_json_input

    path = directory / ENROLMENT_FILE
    if not path.exists():
        return None, None
    try:
        doc = read_json_input(path, MAX_STATE_FILE_BYTES, "the enrolment")
    except InputFileError as exc:
        raise CommandError(str(exc)) from None
    if not isinstance(doc, dict):
        return None, None
    terminal_id, merchant_id = doc.get("terminal_id"), doc.get("merchant_id")
    return (
        terminal_id if isinstance(terminal_id, str) else None,
        merchant_id if isinstance(merchant_id, str) else None,
    )


def _cmd_mpm(args: argparse.Namespace) -> int:
    from emv.qr_mpm import MpmError, decode, encode
    from terminal.bootstrap import configuration_document
    from terminal.money import currency, parse_amount
    from terminal.qr_merchant import merchant_code, new_reference, qr_settings, render
    from terminal.settings import load_config, load_settings

    if args.amount is None and not args.static:
        raise CommandError("a dynamic code needs --amount (or --static for the store's code without one)")
    directory = _data_dir(args)
    doc, base, _ = configuration_document(directory)
    config, settings = load_config(doc, base=base), load_settings(doc)
    terminal_id, merchant_id = _enrolled_ids(directory)
    qr = qr_settings(doc, config, settings, terminal_id=terminal_id, merchant_id=merchant_id)
    cur = currency(args.currency if args.currency is not None else config.currency)
    amount = parse_amount(args.amount, cur) if args.amount is not None else None
    if amount is not None and amount <= 0:
        raise CommandError(f"--amount {args.amount}: a code's amount must be more than zero")
    reference = args.reference if args.reference is not None else (None if args.static else new_reference())
    try:
        payload = encode(merchant_code(qr, amount=amount, currency=cur, reference=reference, static=args.static))
    except MpmError as exc:
        raise CommandError(f"the code cannot be made: {exc}") from None
    drawing, png = render(payload, png=args.png is not None, best_mask=args.static)
    if args.png is not None and png is not None:
        write_output(args.png, png, option="--png")
    printed = _print_code(directory, args.print, payload, amount, cur) if args.print is not None else None
    obj = {"payload": payload, "reference": reference, "png": args.png} | mpm_json(decode(payload), payload)
    obj["printed_on"] = printed
    text = f"{drawing}\n{payload}\n" + (f"reference {reference}" if reference else "static code")
    emit(args, obj, text + (f"\nprinted on {printed}" if printed else ""))
    return 0


def _print_code(directory: Path, url: str, payload: str, amount: int | None, cur: Any) -> str:
    """Print the code on the printer ``url`` names ('' = the configured one, ``posterm devices set printer``).

    A store's static code is printed once and put on the counter; a dynamic code is printed for the customer.
    Returns the printer's URL as shown; a printer fault is the command's error (exit 3), the code itself is made.
    """
    from terminal.devices import load_devices, shown_url
    from terminal.money import format_amount
    from terminal.ports import DeviceError, DeviceUrlError
    from terminal.qr_sale import escpos_code
    from terminal.registry import open_printer

    if not url:
        url = load_devices(directory).printer or ""
        if not url:
            raise CommandError(
                "no receipt printer is configured: give --print URL or set one (posterm devices set printer URL)"
            )
    caption = format_amount(amount, cur) if amount is not None else "STORE CODE"
    try:
        printer = open_printer(url)
        try:
            printer.print_job(escpos_code(payload, caption))
        finally:
            close = getattr(printer, "close", None)
            if callable(close):
                close()
    except DeviceUrlError as exc:
        raise CommandError(f"--print: {exc}") from None
    except (DeviceError, OSError) as exc:
        raise Unavailable(f"{shown_url(url)}: the code was not printed: {exc}") from None
    return shown_url(url)


# ------------------------------------------------------------------------------------------ parser


def add_commands(sub: Any) -> None:
    """Add ``qr`` and its subcommands to the ``posterm`` parser's subcommands."""
    qr: argparse.ArgumentParser = sub.add_parser(
        "qr", help="EMV QR codes: decode a payload, make the store's code, check the QR orders in doubt"
    )
    qr_sub = qr.add_subparsers(dest="qr_command", required=True, metavar="COMMAND")

    decode = qr_sub.add_parser(
        "decode", help="every field of an EMV merchant- or consumer-presented QR payload, as JSON (CRC checked)"
    )
    decode.add_argument("payload", metavar="PAYLOAD", help="the text the QR code holds ('-': read standard input)")
    decode.add_argument(
        "--aid",
        type=_aid,
        action="append",
        help="a CPM code: process it as a terminal accepting this AID (hex; repeat it, in order of preference), "
        "and add the application chosen and its POI data as 'poi'",
    )
    decode.add_argument("--json", action="store_true", help="errors as JSON too (the result always is)")
    decode.set_defaults(func=_cmd_decode)

    mpm = qr_sub.add_parser(
        "mpm", help="the terminal's merchant-presented code for an amount (dynamic), or the store's (--static)"
    )
    mpm.add_argument("--amount", help="amount as a decimal, e.g. 12.34 (needed unless --static)")
    mpm.add_argument("--currency", help="ISO 4217 code or number, e.g. CNY or 156 (default: the terminal's)")
    mpm.add_argument(
        "--reference", help="the order's reference, 62/05, at most 25 characters (default: a new one; none if static)"
    )
    mpm.add_argument("--png", metavar="FILE", help="also write the code as a PNG image")
    mpm.add_argument("--static", action="store_true", help="the store's code (point of initiation 11)")
    mpm.add_argument(
        "--print",
        nargs="?",
        const="",
        metavar="URL",
        help="also print the code (on the configured receipt printer, or the printer URL given), "
        "e.g. the store's static code for the counter",
    )
    mpm.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
    mpm.add_argument("--json", action="store_true", help="print one JSON object (the payload and its fields)")
    mpm.set_defaults(func=_cmd_mpm)

    from terminal.cli_qr_sale import add_orders_command

    add_orders_command(qr_sub)
