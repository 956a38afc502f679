"""``posterm enrol|echo|params``: the host link's commands (registered in ``posterm.commands``).

- ``posterm enrol BUNDLE.json [--force]``: get this terminal's certificate
  from its host (see :mod:`host_link.enrolment`);
- ``posterm renew``: renew that certificate now, before it ends, without a
  code (see :mod:`host_link.renewal`; the link also does it by itself within
  30 days of the end);
- ``posterm echo``: is the host there, how long does a round trip take, what
  time does it have;
- ``posterm params download|status|rollback``: parameter versions (see
  :mod:`host_link.parameters`); ``status`` also shows the digital-currency
  section in force (its version, roots, block lists, limits).

Each takes ``--data-dir DIR`` (default: ``$POSTERM_DATA_DIR`` or the platform's
user data directory) and ``--json``.  Errors follow :mod:`terminal.exit_status`:
a bundle that cannot be used, a data directory not enrolled, a parameter
download that does not verify, nothing to roll back: 2; the host refusing (an
enrolment code spent) or a lost answer: 1; the host unreachable: 3.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from terminal.cli_output import DATA_DIR_HELP, CommandError, emit, file_error

__all__ = ["add_commands"]


def _data_dir(args: argparse.Namespace) -> Path:
    if args.data_dir is not None:
        return Path(args.data_dir)
    from terminal.bootstrap import default_data_dir

    return default_data_dir()


def _print(args: argparse.Namespace, obj: dict[str, Any], text: str) -> None:
    emit(args, obj, text)


def _cmd_enrol(args: argparse.Namespace) -> int:
    from host_link.enrolment import EnrolmentError, enrol, read_bundle

    try:
        bundle = read_bundle(Path(args.bundle))
        creds = enrol(bundle, _data_dir(args), force=args.force)
    except EnrolmentError as exc:
        raise CommandError(str(exc)) from None
    except ValueError as exc:  # the bundle's URL is not one a client can use
        raise CommandError(f"credential bundle {args.bundle}: {exc}") from None
    except OSError as exc:  # the credentials cannot be written: a read-only or full data directory
        raise file_error(exc, f"the enrolment in {_data_dir(args)}") from None
    _print(
        args,
        creds.to_json() | {"directory": str(creds.directory)},
        f"enrolled as terminal {creds.terminal_id} of merchant {creds.merchant_id} with {creds.url}; "
        f"certificate valid until {creds.certificate_not_after}",
    )
    return 0


def _cmd_renew(args: argparse.Namespace) -> int:
    from host_link.enrolment import EnrolmentError
    from host_link.renewal import renew

    data_dir = _data_dir(args)
    try:
        renewed = renew(data_dir)
    except EnrolmentError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:  # the new key or certificate cannot be written
        raise file_error(exc, f"the enrolment in {data_dir}") from None
    _print(
        args,
        renewed.to_json(),
        f"certificate renewed: serial {renewed.serial}, valid until {renewed.not_after.isoformat(timespec='seconds')}; "
        "the previous one is revoked",
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
    from terminal.cbdc_params import cbdc_parameters
    from terminal.settings import SettingsError

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
        cbdc = cbdc_parameters(data_dir)
    except (parameters.ParametersError, SettingsError) as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:  # a read-only or full data directory
        raise file_error(exc, f"the parameters in {data_dir}") from None
    if state.current is None:
        text = "no parameters downloaded: the shipped configuration is in force"
    else:
        text = f"parameters version {state.current} in force" + (
            f"; version {state.previous} kept for rollback" if state.previous is not None else ""
        )
    text += "\n" + (cbdc.describe() if cbdc is not None else "digital currency: none (no cbdc section in force)")
    _print(args, state.to_json() | {"cbdc": cbdc.to_json() if cbdc is not None else None}, text)
    return 0


def add_commands(sub: Any) -> None:
    """Add ``enrol``, ``renew``, ``echo`` and ``params`` to the ``posterm`` parser's subcommands."""

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
        p.add_argument("--json", action="store_true", help="print one JSON object (errors too)")

    enrol: argparse.ArgumentParser = sub.add_parser("enrol", help="get this terminal's certificate from its host")
    enrol.add_argument("bundle", metavar="BUNDLE.json", help="the credential bundle from the host's operator")
    enrol.add_argument("--force", action="store_true", help="replace an existing enrolment")
    common(enrol)
    enrol.set_defaults(func=_cmd_enrol)

    renew: argparse.ArgumentParser = sub.add_parser(
        "renew", help="renew this terminal's certificate with its host, before it ends"
    )
    common(renew)
    renew.set_defaults(func=_cmd_renew)

    echo: argparse.ArgumentParser = sub.add_parser("echo", help="round trip to the host: is it there, and how fast")
    common(echo)
    echo.set_defaults(func=_cmd_echo)

    params: argparse.ArgumentParser = sub.add_parser("params", help="parameter download from the host")
    psub = params.add_subparsers(dest="params_command", required=True, metavar="COMMAND")
    for name, helptext in (
        ("download", "fetch a newer version from the host, verify it and put it in force"),
        ("status", "the version in force, the one kept for rollback, and the digital-currency trust and limits"),
        ("rollback", "put the previous version back in force"),
    ):
        common(psub.add_parser(name, help=helptext))
    params.set_defaults(func=_cmd_params)
