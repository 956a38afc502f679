"""``posterm ecr serve``: the ECR interface, headless, until SIGINT or SIGTERM.

The terminal is opened as every command opens it
(:func:`terminal.bootstrap.open_terminal`: recovery first), the server is
bound before anything is announced, and one line says where it listens
(JSON with ``--json``, for the program that started it).  Stopping (Ctrl-C,
SIGTERM) is the normal end: a card wait is cancelled, a payment past it
finishes, the terminal is closed, exit status 0.

Errors follow the command line's contract (:mod:`terminal.exit_status`):
a port in use or a system that refuses the socket is 3 (unavailable); a
non-loopback address without ``--allow-remote``, an address that is not this
machine's, or options that do not fit together are 2 (unusable input).

Nothing heavy is imported until the command runs (``posterm --help`` stays fast).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from terminal.cli_output import DATA_DIR_HELP, CommandError, Unavailable

__all__ = ["add_commands", "port_or_zero"]

_HELP = "the ECR interface: cash registers and kiosks take payments over loopback HTTP"


def port_or_zero(text: str) -> int:
    """An argparse type: a TCP port, 1 to 65535, or 0 for any free one.

    >>> port_or_zero("0"), port_or_zero("8780")
    (0, 8780)
    """
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1 to 65535, or 0 for any free port)")
    return value


def _reader(args: argparse.Namespace) -> str | None:
    if args.card and args.reader:
        raise CommandError("give either --card or --reader, not both")
    if args.card:
        return f"sim:card={args.card}"
    return str(args.reader) if args.reader else None


def _cmd_serve(args: argparse.Namespace) -> int:
    from terminal.bootstrap import open_terminal
    from ui.ecr.server import EcrBindError, EcrServer, is_loopback, listen

    reader = _reader(args)
    if not args.allow_remote and not is_loopback(args.host):
        raise CommandError(
            f"--host {args.host} is not a loopback address: the ECR interface has no authentication (whoever reaches "
            "the port can take payments and refunds); add --allow-remote to serve it there anyway, on a network "
            "you trust"
        )
    try:
        sock = listen(args.host, args.port)
    except EcrBindError as exc:
        if exc.reason == "bad_address":
            raise CommandError(str(exc)) from None
        raise Unavailable(str(exc)) from None
    try:
        terminal = open_terminal(args.data_dir, reader_url=reader, host=args.host_link)
    except BaseException:
        sock.close()
        raise
    try:
        _tell_unshown(terminal)
        server = EcrServer(terminal, host=args.host, port=args.port, allow_remote=args.allow_remote, sock=sock)
        listening = {
            "url": server.url,
            "port": server.port,
            "openapi": f"{server.url}/v1/openapi.json",
            "terminal_id": terminal.config.terminal_id,
            "reader": reader or ("configured" if terminal.reader is not None else None),
        }

        def announce() -> None:
            if args.json:
                print(json.dumps(listening), flush=True)
            else:
                print(
                    f"posterm ecr: serving on {server.url} (OpenAPI at {server.url}/v1/openapi.json); "
                    "Ctrl-C or SIGTERM stops",
                    flush=True,
                )

        server.serve(announce)
        if not args.json:
            print("posterm ecr: stopped", flush=True)
        return 0
    finally:
        terminal.close()


def _tell_unshown(terminal: Any) -> None:
    """The payments nobody was shown, on standard error, for whoever started the server; not marked shown.

    The register is the one to be told: it finds them in ``GET /v1/status``
    (``unshown``) and by their key, and fetching one marks it shown.
    """
    from terminal.notices import describe

    records = terminal.unshown_payments()
    for number, record in enumerate(records):
        key = record.request_key
        action = f"the register finds it at GET /v1/payments/{key}" if key is not None else None
        line = describe(record, last=number == len(records) - 1, action=action)
        print(f"posterm ecr: note: {line}", file=sys.stderr, flush=True)


def add_commands(sub: Any) -> None:
    """Add ``posterm ecr`` (and its ``serve``) to the ``posterm`` parser's subcommands."""
    ecr = sub.add_parser("ecr", help=_HELP, description=_HELP)
    esub = ecr.add_subparsers(dest="ecr_command", required=True, metavar="COMMAND")
    serve = esub.add_parser(
        "serve",
        help="serve the ECR interface until Ctrl-C or SIGTERM (docs/ecr-protocol.md)",
        description="Serve the ECR interface (HTTP with JSON, OpenAPI at /v1/openapi.json) until Ctrl-C or "
        "SIGTERM. Loopback only unless --allow-remote.",
    )
    serve.add_argument("--port", type=port_or_zero, default=8780, help="TCP port (default 8780; 0: any free port)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, loopback)")
    serve.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host and answer other Host names: the interface has no authentication",
    )
    serve.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
    serve.add_argument("--card", help="a simulated card profile (short for --reader sim:card=PROFILE)")
    serve.add_argument("--reader", metavar="URL", help="device URL of the card reader (default: the configured reader)")
    serve.add_argument(
        "--host-link",
        default="auto",
        metavar="HOST",
        help="the acquiring host: auto (default: the enrolled host, else memory), memory, none, https, "
        "or https://HOST:PORT",
    )
    serve.add_argument("--json", action="store_true", help="announce the address as one JSON line (errors too)")
    serve.set_defaults(func=_cmd_serve)
