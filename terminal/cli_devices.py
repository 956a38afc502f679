"""``posterm devices`` and ``posterm diag``: the technician's commands.

- ``posterm devices [--json] [--discover-sim] [--no-probe]``: the configured
  reader, scanner and printer with a quick status (opened and closed, or why
  not), what the drivers see attached, and the registered drivers;
- ``posterm devices set KIND URL|none|default``: configure a device (KIND:
  reader, scanner, printer or pin-pad; the URL
  is checked against the driver registry; ``default`` returns to the shipped
  default);
- ``posterm diag [--json] [--reader URL] [--no-print] ...``: every self-test
  of :mod:`terminal.diagnostics`; exit status 0 when every test that ran
  passed, 1 otherwise; with ``--json`` also the terminal's figures
  (``metrics``: :mod:`terminal.metrics`);
- ``posterm diag export [--output FILE.zip]``: the support bundle.

All take ``--data-dir DIR`` (default: ``$POSTERM_DATA_DIR``, else the user
data directory) and ``--json``.  Errors follow :mod:`terminal.exit_status`:
one line on standard error (and JSON with ``--json``); a URL that names
nothing, a missing output folder: 2; a data directory that cannot be written
(read-only, full): 3.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from terminal.cli_output import DATA_DIR_HELP, CommandError, emit, file_error
from terminal.devices import CONFIG_KINDS, DEVICES_FILE, DeviceConfigError, set_device, shown_url
from terminal.files import make_private_dir

__all__ = ["add_commands"]


def _data_dir(args: argparse.Namespace) -> Path:
    if args.data_dir is not None:
        return Path(args.data_dir)
    from terminal.bootstrap import default_data_dir

    return default_data_dir()


def _devices_text(listing: dict[str, Any]) -> str:
    rows = []
    for kind, entry in listing["configured"].items():
        source = "" if entry["source"] == "default" else f"  [{entry['source']}]"
        rows.append(f"{kind:<8} {entry['url'] or '-':<36} {entry['status']:<7} {entry['reason']}{source}")
    found = [(kind, url) for kind, urls in listing["discovered"].items() for url in urls]
    rows.append("")
    rows.append("attached:" if found else "attached: nothing found")
    rows += [f"  {kind:<8} {url}" for kind, url in found]
    drivers = ", ".join(f"{scheme} ({info['kind']})" for scheme, info in listing["drivers"].items())
    rows.append(f"drivers: {drivers or 'none'}")
    return "\n".join(rows)


def _cmd_devices(args: argparse.Namespace) -> int:
    from terminal.diagnostics import list_devices

    directory = _data_dir(args)
    if getattr(args, "devices_command", None) == "set":
        return _cmd_devices_set(args, directory)
    listing = list_devices(directory, include_sim=args.discover_sim, probe=not args.no_probe)
    emit(args, listing, _devices_text(listing))
    return 0


def _cmd_devices_set(args: argparse.Namespace, directory: Path) -> int:
    from terminal.diagnostics import list_devices

    try:
        config = set_device(directory, args.kind, args.url)
    except DeviceConfigError as exc:
        if isinstance(exc.__cause__, OSError):  # the file could not be written: read-only, full, ...
            raise file_error(exc.__cause__, f"the device configuration {directory / DEVICES_FILE}") from None
        raise
    url = config.url(args.kind)
    entry = list_devices(directory)["configured"][args.kind] if url is not None else None
    shown = None if url is None else shown_url(url)
    obj = {"kind": args.kind, "url": shown, "devices": config.to_json(), "check": entry}
    if shown is None:
        text = f"{args.kind}: none"
    else:
        assert entry is not None
        text = f"{args.kind}: {shown} ({entry['status']}: {entry['reason']})"
    emit(args, obj, text)
    return 0


def _cmd_diag(args: argparse.Namespace) -> int:
    from terminal.diagnostics import results_json, run_diagnostics, text_report

    directory = _data_dir(args)
    if getattr(args, "diag_command", None) == "export":
        return _cmd_diag_export(args, directory)
    results = run_diagnostics(
        directory,
        reader_url=args.reader,
        scanner_url=args.scanner,
        printer_url=args.printer,
        card_timeout=args.card_timeout,
        scan_timeout=args.scan_timeout,
        print_test_page=not args.no_print,
        host=args.host,
        prompt=None if args.json else lambda message: print(f"... {message}", flush=True),
    )
    at = datetime.now(UTC).isoformat(timespec="seconds")
    obj = results_json(results, data_dir=str(directory), at=at)
    if args.json:
        obj["metrics"] = _metrics(directory, results)
    emit(args, obj, text_report(results))
    return 0 if obj["passed"] else 1


def _metrics(directory: Path, results: Any) -> dict[str, Any] | None:
    """The terminal's figures (:func:`terminal.metrics.diag_metrics`); what stops them is said, never raised."""
    from terminal.metrics import diag_metrics

    try:
        return diag_metrics(directory, results)
    except Exception as exc:  # the tests say what is wrong; the figures are a bonus
        return {"error": f"{type(exc).__name__}: {exc}"}


def _cmd_diag_export(args: argparse.Namespace, directory: Path) -> int:
    from terminal.diagnostics import export_bundle

    output = Path(args.output) if args.output else None
    if output is not None:
        if output.is_dir():
            raise CommandError(f"--output {args.output}: is a folder; give a file name")
        if not output.parent.is_dir():
            raise CommandError(f"--output {args.output}: the folder {output.parent} does not exist")
    where = output.parent if output is not None else directory / "support"
    try:
        if output is None:
            make_private_dir(where)  # fails at once on a read-only or full data directory
        else:
            where.mkdir(parents=True, exist_ok=True)
        info = export_bundle(directory, output, host=args.host, reader_url=args.reader, card_timeout=args.card_timeout)
    except OSError as exc:
        raise file_error(exc, f"the support bundle in {where}") from None
    verdict = info.to_json()["diagnostics"]
    text = f"support bundle written to {info.path} ({len(info.members)} files)"
    if verdict["failed"]:
        text += f"; failed tests: {', '.join(verdict['failed'])}"
    emit(args, info.to_json(), text)
    return 0


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError(f"{text!r}: expected seconds between 0 and 600")
    return value


def _common(p: argparse.ArgumentParser, *, nested: bool) -> None:
    """``--data-dir`` and ``--json``; on a nested command they do not override what the parent parsed."""
    default: Any = argparse.SUPPRESS if nested else None
    p.add_argument("--data-dir", type=Path, default=default, help=DATA_DIR_HELP)
    p.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if nested else False,
        help="print one JSON object (errors too)",
    )


def _diag_options(p: argparse.ArgumentParser, *, nested: bool) -> None:
    suppress: Any = argparse.SUPPRESS
    p.add_argument(
        "--reader",
        metavar="URL",
        default=suppress if nested else None,
        help="test this reader instead of the configured one ('none': skip)",
    )
    p.add_argument(
        "--host",
        default=suppress if nested else "auto",
        help="auto (default: the enrolled host, else memory), memory, none, https, or https://HOST:PORT",
    )
    p.add_argument(
        "--card-timeout",
        type=_positive,
        default=suppress if nested else 5.0,
        metavar="SECONDS",
        help="how long to wait for a card (default 5)",
    )


def add_commands(sub: Any) -> None:
    """Add ``devices`` and ``diag`` to the ``posterm`` parser's subcommands."""
    devices: argparse.ArgumentParser = sub.add_parser(
        "devices", help="the configured and attached devices, with their status; 'devices set' configures one"
    )
    _common(devices, nested=False)
    devices.add_argument("--discover-sim", action="store_true", help="also list the simulated card profiles")
    devices.add_argument("--no-probe", action="store_true", help="do not open the configured devices")
    devices.set_defaults(func=_cmd_devices)
    dsub = devices.add_subparsers(dest="devices_command")
    dset = dsub.add_parser("set", help="configure the reader, scanner, printer or PIN pad by URL")
    dset.add_argument("kind", choices=CONFIG_KINDS, help="reader, scanner, printer or pin-pad")
    dset.add_argument(
        "url",
        metavar="URL",
        help="a device URL (e.g. pcsc:, serial:/dev/ttyACM0, escpos:net:HOST:9100, sim:pin=1234, "
        "serial:/dev/ttyUSB0?protocol=posterm-pinpad), none or default; "
        "checked now (a sim: card profile must exist)",
    )
    _common(dset, nested=True)

    diag = sub.add_parser(
        "diag", help="self-test of every device, the host link, the SAF queue, the journal, configuration, keys"
    )
    _common(diag, nested=False)
    _diag_options(diag, nested=False)
    diag.add_argument("--scanner", metavar="URL", help="test this scanner instead of the configured one")
    diag.add_argument("--printer", metavar="URL", help="test this printer instead of the configured one")
    diag.add_argument(
        "--scan-timeout",
        type=_positive,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for a code to be scanned (default 10)",
    )
    diag.add_argument("--no-print", action="store_true", help="ask the printer's status but print no test page")
    diag.set_defaults(func=_cmd_diag)
    xsub = diag.add_subparsers(dest="diag_command")
    export = xsub.add_parser(
        "export", help="write a support bundle: versions, configuration without secrets, logs, a masked APDU trace"
    )
    export.add_argument("--output", metavar="FILE.zip", help="default: DATA_DIR/support/posterm-support-TIME.zip")
    _common(export, nested=True)
    _diag_options(export, nested=True)
