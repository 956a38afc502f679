"""``posterm host ...``: run and steer the simulated acquiring host.

Registered through the ``posterm.commands`` entry point group
(``host = simulator.host.cli:add_commands``); ``python -m simulator.host``
offers the same sub-commands without the ``host`` word.

- ``serve [--bind 127.0.0.1] [--port 8443] [--data-dir DIR] [--workers N]
  [--metrics-port PORT] [timeouts and caps]``: run the HTTPS server (see
  docs/operations.md);
- ``enrol-code --terminal-id T --merchant-id M [--url URL] [--out FILE] [--transfer]``: a
  credential bundle (URL, CA certificate, one-time code valid 24 h) as JSON; a
  terminal id that another merchant holds is refused (exit 1) unless
  ``--transfer``, which revokes its certificate there and is logged;
- ``terminal list``, ``terminal revoke TID [--merchant MID]``, ``terminal log [TID]``:
  the enrolled terminals and their certificates, revoking a terminal's
  certificate (its next request is refused), the audit trail;
- ``enrol-rate PER_CLIENT OVERALL [--failure-delay S]``: enrolment attempts
  allowed per minute (per client address, overall), from the next start;
- ``fault down|up|slow MS|error STATUS|drop|cert expired|cert wrong|cert good|clear
  [--only PATH ...]``: change the running server's faults (one at a time, the
  others stay); ``--only`` sets the paths that slow / error / drop are limited
  to (without it the list stays as it was; ``clear`` resets everything);
- ``issuer block CARD [--code 62]``, ``issuer unblock CARD`` (CARD: the PAN,
  never stored, or the host's card token as ``records --json`` shows it; ``-``
  reads it from standard input, out of the shell's history),
  ``issuer velocity MAX WINDOW_SECONDS`` (0 = off),
  ``issuer refund-allowance MERCHANT_ID AMOUNT`` (minor units per currency per
  24 h of refunds no sale covers; 0 = none), ``issuer show``;
- ``params publish FILE.json [--unchecked]`` (the common part),
  ``params set-terminal TERMINAL_ID FILE.json [--merchant-id M] [--unchecked]``
  (a terminal's own part, merged key by key; null removes a key),
  ``params show [--terminal-id T [--merchant-id M]]``;
- ``cbdc blocklist|block|unblock|wallets|topup|wallet-sync``: the digital-currency
  operator (:mod:`simulator.host.cli_cbdc`);
- ``status``, ``records``;
- ``load [--terminals 1000] [--duration 300] [--faults SPEC] ...``: many
  simulated terminals against a host (:mod:`simulator.loadgen.cli`).

Every command takes ``--data-dir DIR`` (default: ``$POSTERM_HOST_DIR``, else
the platform's user data directory for posterm, sub-directory ``host``); the
ones that use the host's database also take ``--store URL`` (default:
``$POSTERM_HOST_STORE``, else ``host.db`` in the data directory): a
``postgresql://user@host/db`` URL puts the host on PostgreSQL (the data
directory keeps the CA, the server's files and the faults). The URL's
password is never printed; prefer libpq's ``~/.pgpass`` or ``PGPASSWORD``.
A store that cannot be opened (a URL libpq refuses, a server that does not
answer, a login refused) is exit 3.
The commands that only look (``status``, ``records``, ``issuer show``,
``params show``) and ``issuer unblock`` need a host there already: they never
create one.  Errors follow :mod:`terminal.exit_status` (one line, JSON too with
``--json``): unusable input 2, no host running for ``fault`` 3.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from simulator.host.cli_settings import add_settings_commands
from terminal.cli_output import CommandError, CommandParser, NotDone, Unavailable, UsageError, file_error

__all__ = ["add_commands", "default_data_dir", "main"]

_SubParsers = argparse._SubParsersAction  # argparse offers no public name for it

_STORE_HELP = (
    "the host's database: a postgresql://user@host/db URL (default: $POSTERM_HOST_STORE, else host.db in the "
    "data directory)"
)
_HOST_DATA_DIR_HELP = (
    "the host's data directory (default: $POSTERM_HOST_DIR, else the user data directory's posterm/host)"
)


def default_data_dir() -> Path:
    """``$POSTERM_HOST_DIR``, else ``<user data dir>/posterm/host``."""
    env = os.environ.get("POSTERM_HOST_DIR")
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("posterm", appauthor=False)) / "host"


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir) if args.data_dir else default_data_dir()


def _store(args: argparse.Namespace) -> str | None:
    """``--store``, else ``$POSTERM_HOST_STORE``, else None (``host.db`` in the data directory)."""
    from simulator.host.store import STORE_ENV

    value = getattr(args, "store", None) or os.environ.get(STORE_ENV)
    return value or None


def _print(args: argparse.Namespace, obj: Any, text: str) -> None:
    print(json.dumps(obj, indent=1) if getattr(args, "json", False) else text)


def _guard(func: Any) -> Any:
    """Turn the host package's own errors into the CLI's (see :mod:`terminal.exit_status`).

    An operator action or a fault that cannot be carried out is unusable
    input (2); a database that cannot be opened, or a file system that refuses
    (read-only, full), makes the host's storage unavailable (3).
    """

    def run(args: argparse.Namespace) -> int:
        from simulator.host.admin import AdminError, AdminRefused
        from simulator.host.faults import FaultError
        from simulator.host.store import StoreError

        try:
            return int(func(args))
        except AdminRefused as exc:
            raise NotDone(str(exc)) from None
        except (AdminError, FaultError) as exc:
            raise CommandError(str(exc)) from None
        except StoreError as exc:
            raise Unavailable(str(exc)) from None
        except OSError as exc:
            raise file_error(exc, str(exc.filename or _data_dir(args))) from None

    return run


# ----------------------------------------------------------------------------- commands


def _cmd_serve(args: argparse.Namespace) -> int:
    from simulator.host.faults import running_server
    from simulator.host.server import serve

    data_dir = _data_dir(args)
    if not 0 <= args.port <= 65535:
        raise CommandError(f"--port {args.port} is not a port number")
    info = running_server(data_dir) if args.worker is None else None  # a worker runs under its supervisor
    if info is not None:
        raise CommandError(f"a host already runs on {data_dir} (pid {info.pid}, {info.url})")
    from simulator.host.store import store_location

    try:
        store_location(data_dir, _store(args))
    except ValueError as exc:
        raise CommandError(f"--store: {exc}") from None
    limits = _limits(args)
    if not 1 <= args.workers <= 64:
        raise CommandError(f"--workers {args.workers}: 1 to 64 worker processes")
    if args.metrics_port is not None and not 0 <= args.metrics_port <= 65535:
        raise CommandError(f"--metrics-port {args.metrics_port} is not a port number")
    try:
        status = serve(
            data_dir,
            bind=args.bind,
            port=args.port,
            parent_pid=args.exit_with_parent,
            log_level=args.log_level,
            limits=limits,
            workers=args.workers,
            metrics_bind=args.metrics_bind,
            metrics_port=args.metrics_port,
            store=_store(args),
            worker=args.worker,
        )
    except SystemExit as exc:  # uvicorn exits when it cannot listen; it logged why
        raise CommandError(f"the host could not start on {args.bind}:{args.port} (exit {exc.code})") from None
    return status


def _limits(args: argparse.Namespace) -> Any:
    """The connection limits of ``serve``'s options, or CommandError naming the bad one."""
    from simulator.host.limits import ConnectionLimits

    try:
        return ConnectionLimits(
            handshake_timeout=args.handshake_timeout,
            header_timeout=args.header_timeout,
            body_timeout=args.body_timeout,
            idle_timeout=args.idle_timeout,
            max_per_client=args.max_client_connections,
            max_connections=args.max_connections,
        )
    except ValueError as exc:
        raise CommandError(str(exc).replace("_", "-")) from None


def _cmd_enrol_code(args: argparse.Namespace) -> int:
    from simulator.host.admin import credential_bundle

    bundle = credential_bundle(
        _data_dir(args), args.terminal_id, args.merchant_id, url=args.url, transfer=args.transfer, store=_store(args)
    )
    text = json.dumps(bundle, indent=1)
    if args.out:
        out = Path(args.out)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        print(f"credential bundle for terminal {args.terminal_id} written to {out} (code valid 24 hours)")
    else:
        print(text)
    return 0


def _cmd_fault(args: argparse.Namespace) -> int:
    from simulator.host.faults import Faults, read_faults, request_faults, running_server

    data_dir = _data_dir(args)
    if running_server(data_dir) is None:
        raise Unavailable(f"no host is running on {data_dir} ('posterm host serve --data-dir {data_dir}')")
    _, faults = read_faults(data_dir)
    action, value = args.action, args.value

    def number(what: str) -> int:
        if value is None or not value.isdigit():
            raise CommandError(f"fault {action} needs {what}")
        return int(value)

    if action != "cert" and value is not None and action not in ("slow", "error"):
        raise CommandError(f"fault {action} takes no value")
    if action == "clear":
        faults = Faults()
    elif action == "down":
        faults = replace(faults, down=True)
    elif action == "up":
        faults = replace(faults, down=False)
    elif action == "slow":
        faults = replace(faults, slow_ms=number("a delay in milliseconds"))
    elif action == "error":
        faults = replace(faults, error_status=number("a status 500..599"))
    elif action == "drop":
        faults = replace(faults, drop_after_request=True)
    else:  # cert
        if value not in ("expired", "wrong", "good"):
            raise CommandError("fault cert needs expired, wrong or good")
        faults = replace(faults, certificate=value)
    if args.only and action != "clear":
        faults = replace(faults, only=tuple(args.only))
    if not request_faults(data_dir, faults):
        raise Unavailable(f"the host on {data_dir} stopped before it applied the faults")
    _print(args, faults.to_json(), f"faults now: {json.dumps(faults.to_json()) if faults.any else 'none'}")
    return 0


def _cmd_terminal(args: argparse.Namespace) -> int:
    from simulator.host import admin

    data_dir = _data_dir(args)
    if args.terminal_command == "revoke":
        merchant, serials = admin.revoke_terminal(data_dir, args.terminal_id, args.merchant, store=_store(args))
        text = (
            f"terminal {args.terminal_id} of merchant {merchant}: certificate {', '.join(serials)} revoked; "
            "it needs a new enrolment code to come back"
            if serials
            else f"terminal {args.terminal_id} of merchant {merchant} had no valid certificate: nothing to revoke"
        )
        _print(args, {"terminal_id": args.terminal_id, "merchant_id": merchant, "revoked": serials}, text)
        return 0
    if args.terminal_command == "log":
        events = admin.audit_log(data_dir, args.terminal_id, store=_store(args))
        lines = [f"{e['at']} {e['action']:<11} {e['merchant_id']}/{e['terminal_id']} {e['detail']}" for e in events]
        _print(args, {"events": events}, "\n".join(lines) if lines else "nothing logged")
        return 0
    rows = admin.terminals(data_dir, store=_store(args))
    lines = [
        f"{t['terminal_id']:<8} {t['merchant_id']:<15} {t['certificate_status']:<11} "
        f"{t['certificate_serial'] or '-'} until {t['certificate_not_after'] or '-'}"
        for t in rows
    ]
    _print(args, {"terminals": rows}, "\n".join(lines) if lines else "no terminals")
    return 0


def _cmd_enrol_rate(args: argparse.Namespace) -> int:
    from simulator.host.admin import set_enrolment_limits

    limits = set_enrolment_limits(
        _data_dir(args), args.per_client, args.overall, args.failure_delay, store=_store(args)
    )
    _print(
        args,
        {
            "per_client_per_minute": limits.per_client_per_minute,
            "overall_per_minute": limits.overall_per_minute,
            "failure_delay_seconds": limits.failure_delay_seconds,
        },
        f"enrolment: at most {limits.per_client_per_minute} attempts a minute per client address and "
        f"{limits.overall_per_minute} overall, refusals after {limits.failure_delay_seconds:g} s "
        "(from the host's next start)",
    )
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from simulator.host.admin import host_status

    status = host_status(_data_dir(args), store=_store(args))
    line = f"host running (pid {status['pid']}) at {status['url']}" if status["running"] else "host not running"
    if status["running"]:
        line += f", {status['workers']} worker(s)"
        if status["metrics_url"]:
            line += f", metrics at {status['metrics_url']}"
    counts = status["records"]
    text = (
        f"{line}\ncommon parameters version {status['parameters_version']}, "
        f"{len(status['terminals'])} terminal(s), {counts['authorisations']} authorisation(s), "
        f"{counts['advices']} advice(s), {counts['reversals']} reversal(s), "
        f"{sum(status['qr_orders'].values())} QR order(s) (wallets: {status['wallet_mode']})"
    )
    text += "\nPIN keys: " + ", ".join(f"{k['name']} ({k['algorithm']}, KSN {k['ksn_prefix']}..) KCV {k['kcv']}"
                                      for k in status["pin_keys"])  # fmt: skip
    if status["faults"] and any(v not in (False, 0, None, "good") for v in status["faults"].values()):
        text += f"\nfaults: {json.dumps(status['faults'])}"
    _print(args, status, text)
    return 0


def _cmd_records(args: argparse.Namespace) -> int:
    from simulator.host.admin import records

    rows = records(_data_dir(args), store=_store(args))
    if getattr(args, "json", False):
        print(json.dumps({"records": rows}, indent=1))
        return 0
    for r in rows:
        flags = " reversed" if r["reversed"] else ""
        print(
            f"{r['seq']:>5} {r['method']:<9} {r['txn_id']:<32} {r['kind']:<22} {r['amount']:>10} {r['currency']:>3} "
            f"{r['response_code']} {r['host_reference']}{flags}"
        )
    return 0


# ----------------------------------------------------------------------------- parser


def _common(p: argparse.ArgumentParser, *, json_flag: bool = False, store: bool = True) -> None:
    p.add_argument("--data-dir", help=_HOST_DATA_DIR_HELP)
    if store:
        p.add_argument("--store", metavar="URL", help=_STORE_HELP)
    if json_flag:
        p.add_argument("--json", action="store_true", help="print one JSON object (errors too)")


def _add_subcommands(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="host_command", required=True, metavar="COMMAND")

    def command(
        name: str, help_text: str, func: Any, *, leaf: bool = True, json_flag: bool = False, store: bool = True
    ) -> Any:
        p = sub.add_parser(name, help=help_text, description=help_text)
        if leaf:
            _common(p, json_flag=json_flag, store=store)
        p.set_defaults(func=_guard(func))
        return p

    serve = command("serve", "run the simulated host (HTTPS, mutual TLS) until interrupted", _cmd_serve)
    serve.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8443, help="TCP port (default 8443; 0 = any free port)")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument("--exit-with-parent", type=int, metavar="PID", help=argparse.SUPPRESS)
    serve.add_argument("--worker", type=int, metavar="INDEX", help=argparse.SUPPRESS)  # set by the supervisor
    serve.add_argument(
        "--workers", type=int, default=1, metavar="N", help="worker processes serving the port (default 1)"
    )
    serve.add_argument(
        "--metrics-port", type=int, metavar="PORT", help="serve Prometheus /metrics on this port (0 = any free port)"
    )
    serve.add_argument("--metrics-bind", default="127.0.0.1", help="address of /metrics (default 127.0.0.1)")
    from simulator.host.limits import ConnectionLimits

    defaults = ConnectionLimits()
    for flag, default, what in (
        ("--handshake-timeout", defaults.handshake_timeout, "seconds a TLS handshake may take"),
        ("--header-timeout", defaults.header_timeout, "seconds for a request's headers, from its first byte"),
        ("--body-timeout", defaults.body_timeout, "seconds for a request's body, from its headers"),
        ("--idle-timeout", defaults.idle_timeout, "seconds an idle keep-alive connection stays open"),
    ):
        serve.add_argument(flag, type=float, default=default, metavar="S", help=f"{what} (default {default:g})")
    serve.add_argument(
        "--max-client-connections", type=int, default=defaults.max_per_client, metavar="N",
        help=f"connections per client address and worker, 0 = no limit (default {defaults.max_per_client})",
    )  # fmt: skip
    serve.add_argument(
        "--max-connections", type=int, default=defaults.max_connections, metavar="N",
        help=f"connections per worker, 0 = no limit (default {defaults.max_connections})",
    )  # fmt: skip

    enrol = command("enrol-code", "make a one-time enrolment code and print the credential bundle", _cmd_enrol_code)
    enrol.add_argument("--terminal-id", required=True)
    enrol.add_argument("--merchant-id", required=True)
    enrol.add_argument("--url", help="the host URL for the terminal (default: the running server's)")
    enrol.add_argument("--out", metavar="FILE", help="write the bundle to FILE (mode 0600) instead of printing it")
    enrol.add_argument(
        "--transfer",
        action="store_true",
        help="move a terminal id that another merchant holds to this one (revokes it there; logged)",
    )

    terminal = command(
        "terminal", "the enrolled terminals: list, revoke a certificate, audit trail", _cmd_terminal, leaf=False
    )
    terminal_sub = terminal.add_subparsers(dest="terminal_command", required=True, metavar="ACTION")
    _common(terminal_sub.add_parser("list", help="every terminal, its merchant and certificate"), json_flag=True)
    revoke = terminal_sub.add_parser("revoke", help="revoke a terminal's certificate: its next request is refused")
    revoke.add_argument("terminal_id", metavar="TID")
    revoke.add_argument("--merchant", metavar="MID", help="the terminal's merchant (needed when several have TID)")
    _common(revoke, json_flag=True)
    log = terminal_sub.add_parser("log", help="enrolments, rotations, revocations and transfers")
    log.add_argument("terminal_id", metavar="TID", nargs="?", help="only this terminal id")
    _common(log, json_flag=True)

    rate = command(
        "enrol-rate", "enrolment attempts allowed per minute (from the host's next start)", _cmd_enrol_rate,
        json_flag=True,
    )
    rate.add_argument("per_client", type=_positive, metavar="PER_CLIENT", help="per client address, a minute")
    rate.add_argument("overall", type=_positive, metavar="OVERALL", help="from everyone together, a minute")
    rate.add_argument(
        "--failure-delay", type=float, default=1.0, metavar="S", help="pause before refusing a code (default 1)"
    )

    fault = command("fault", "inject a fault into the running host", _cmd_fault, json_flag=True, store=False)
    fault.add_argument("action", choices=["down", "up", "slow", "error", "drop", "cert", "clear"])
    fault.add_argument("value", nargs="?", help="MS for slow, STATUS for error, expired|wrong|good for cert")
    fault.add_argument("--only", nargs="+", metavar="PATH", help="limit slow / error / drop to these paths")

    add_settings_commands(command, _common, _data_dir, _store, _print)

    from simulator.host import cli_wallet
    from simulator.host.cli_cbdc import add_cbdc_command

    cli_wallet.add_arguments(command("wallet", cli_wallet.HELP, cli_wallet.wallet_command, leaf=False), _common)
    add_cbdc_command(sub, _common, _guard, _data_dir, _store)
    command("status", "is the host running, where, with which faults", _cmd_status, json_flag=True)
    command("records", "the authorisations, advices and reversals the host processed", _cmd_records, json_flag=True)

    from simulator.loadgen import cli as load

    load.add_arguments(command("load", load.HELP, load.load_command, leaf=False))


def add_commands(subparsers: _SubParsers[argparse.ArgumentParser]) -> None:
    """Add ``host`` with its sub-commands to the ``posterm`` command's sub-parsers."""
    host = subparsers.add_parser("host", help="the simulated acquiring host (HTTPS, mutual TLS, faults)")
    _add_subcommands(host)


def _positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m simulator.host COMMAND ...``: the same commands, the same error contract as ``posterm host``."""
    from terminal.exit_status import status_for

    parser = CommandParser(prog="python -m simulator.host", description="the simulated acquiring host")
    _add_subcommands(parser)
    try:
        args = parser.parse_args(argv)
        return int(args.func(args))
    except (CommandError, NotDone, Unavailable) as exc:
        where = f" (see '{exc.prog} --help')" if isinstance(exc, UsageError) else ""
        print(f"posterm host: error: {exc}{where}", file=sys.stderr)
        return int(status_for(exc))
