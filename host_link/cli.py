"""``posterm enrol|echo|params``: the host link's commands (registered in ``posterm.commands``).

- ``posterm enrol BUNDLE.json [--force]``: get this terminal's certificate
  from its host (see :mod:`host_link.enrolment`);
- ``posterm echo``: is the host there, how long does a round trip take, what
  time does it have;
- ``posterm params download|status|rollback``: parameter versions (see
  :mod:`host_link.parameters`).

Each takes ``--data-dir DIR`` (default: ``$POSTERM_DATA_DIR`` or the platform's
user data directory) and ``--json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from terminal.bootstrap import default_data_dir
from terminal.cli_payments import CommandError

__all__ = ["add_commands"]


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir) if args.data_dir is not None else default_data_dir()


def _print(args: argparse.Namespace, obj: dict[str, Any], text: str) -> None:
    print(json.dumps(obj, indent=1) if args.json else text)


def _cmd_enrol(args: argparse.Namespace) -> int:
    from host_link.enrolment import EnrolmentError, enrol, read_bundle

    try:
        creds = enrol(read_bundle(Path(args.bundle)), _data_dir(args), force=args.force)
    except EnrolmentError as exc:
        raise CommandError(str(exc)) from None
    _print(
        args,
        creds.to_json() | {"directory": str(creds.directory)},
        f"enrolled as terminal {creds.terminal_id} of merchant {creds.merchant_id} with {creds.url}; "
        f"certificate valid until {creds.certificate_not_after}",
    )
    return 0


def _cmd_echo(args: argparse.Namespace) -> int:
    from host_link.client import open_host_link

    with open_host_link("https", _data_dir(args)) as link:
        answer = link.echo_details(force=True)
    obj = {
        "url": link.url,
        "terminal_id": link.terminal_id,
        "round_trip_ms": round(answer.round_trip_seconds * 1000, 3),
        "host_time": answer.host_time,
        "host_reference": answer.host_reference,
    }
    _print(
        args,
        obj,
        f"{link.url} answered in {obj['round_trip_ms']:.1f} ms; host time {answer.host_time} "
        f"(terminal {link.terminal_id})",
    )
    return 0


def _cmd_params(args: argparse.Namespace) -> int:
    from host_link import parameters

    data_dir = _data_dir(args)
    try:
        if args.params_command == "download":
            from host_link.client import open_host_link

            with open_host_link("https", data_dir) as link:
                version = parameters.download_and_apply(link, data_dir)
            state = parameters.status(data_dir)
            text = (
                f"parameters version {version} downloaded and in force"
                if version is not None
                else f"parameters are up to date (version {state.current})"
            )
            _print(args, {"applied": version} | state.to_json(), text)
            return 0
        if args.params_command == "rollback":
            version = parameters.rollback(data_dir)
            _print(args, parameters.status(data_dir).to_json(), f"parameters version {version} is in force again")
            return 0
        state = parameters.status(data_dir)
    except parameters.ParametersError as exc:
        raise CommandError(str(exc)) from None
    if state.current is None:
        text = "no parameters downloaded: the shipped configuration is in force"
    else:
        text = f"parameters version {state.current} in force" + (
            f"; version {state.previous} kept for rollback" if state.previous is not None else ""
        )
    _print(args, state.to_json(), text)
    return 0


def add_commands(sub: Any) -> None:
    """Add ``enrol``, ``echo`` and ``params`` to the ``posterm`` parser's subcommands."""

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", type=Path, help="the terminal's data directory")
        p.add_argument("--json", action="store_true", help="print one JSON object")

    enrol: argparse.ArgumentParser = sub.add_parser("enrol", help="get this terminal's certificate from its host")
    enrol.add_argument("bundle", metavar="BUNDLE.json", help="the credential bundle from the host's operator")
    enrol.add_argument("--force", action="store_true", help="replace an existing enrolment")
    common(enrol)
    enrol.set_defaults(func=_cmd_enrol)

    echo: argparse.ArgumentParser = sub.add_parser("echo", help="round trip to the host: is it there, and how fast")
    common(echo)
    echo.set_defaults(func=_cmd_echo)

    params: argparse.ArgumentParser = sub.add_parser("params", help="parameter download from the host")
    psub = params.add_subparsers(dest="params_command", required=True)
    for name, helptext in (
        ("download", "fetch a newer version from the host, verify it and put it in force"),
        ("status", "the version in force and the one kept for rollback"),
        ("rollback", "put the previous version back in force"),
    ):
        common(psub.add_parser(name, help=helptext))
    params.set_defaults(func=_cmd_params)
