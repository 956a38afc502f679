"""``posterm host load``: many simulated terminals against the host, faults on the way, the books checked.

Added to ``posterm host`` by :mod:`simulator.host.cli`; ``python -m
simulator.loadgen`` runs the same command. Exit status 0 when every batch
closed in balance and the terminals' books match the host's records, 1 when
not (the report says what differs), 2 for unusable options, 3 when the host
cannot be started or reached.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from terminal.cli_output import CommandError, CommandParser, Unavailable, UsageError

__all__ = ["HELP", "add_arguments", "load_command", "main"]

HELP = "load the host with many simulated terminals over mutual TLS, faults on the way; check the books"


def _positive(kind: type[int] | type[float]) -> argparse._ActionType:  # argparse has no public name for it
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r}: a number above 0")
        return value

    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``posterm host load``."""
    p.add_argument("--terminals", type=_positive(int), default=1000, help="simulated terminals (default 1000)")
    p.add_argument("--duration", type=_positive(float), default=300.0, help="seconds of payments (default 300)")
    p.add_argument(
        "--think", type=_positive(float), default=10.0, metavar="SECONDS",
        help="mean pause between a terminal's payments (default 10: 100 payments/s from 1,000 terminals)",
    )  # fmt: skip
    p.add_argument(
        "--faults", metavar="SPEC",
        help="fault steps KIND[=VALUE]@START+SECONDS, comma-separated (down, slow=MS, drop, error=STATUS), or "
        "none; default: down at 20%% of the run for 5%%, slow=300 at 40%%, drop at 60%%, error=503 at 80%%",
    )  # fmt: skip
    p.add_argument(
        "--data-dir", metavar="DIR",
        help="load the host running on this data directory (default: start a fresh host in a temporary folder)",
    )  # fmt: skip
    p.add_argument("--workers", type=_positive(int), help="host worker processes (for a host the run starts)")
    p.add_argument(
        "--store", metavar="URL",
        help="the host's database, a postgresql://... URL, for the host the run starts or the one running on "
        "--data-dir (default: $POSTERM_HOST_STORE, else host.db in the data directory)",
    )  # fmt: skip
    p.add_argument(
        "--serve-args", metavar="OPTIONS", default="",
        help="more 'posterm host serve' options for a host the run starts, e.g. \"--max-client-connections 2000\"",
    )  # fmt: skip
    p.add_argument(
        "--source-addresses", type=_positive(int), metavar="N",
        help="connect from N loopback addresses 127.0.0.1... (default: one per terminal; with fewer, the host's "
        "--max-client-connections, 256 by default, must allow terminals/N each: see --serve-args)",
    )  # fmt: skip
    p.add_argument(
        "--settle-seconds", type=_positive(float), default=120.0, help="seconds allowed to settle (default 120)"
    )
    p.add_argument("--seed", type=int, help="seed of the terminals' choices (default: random)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")


def load_command(args: argparse.Namespace) -> int:
    """Run the load described by ``args``; print the report; 0 when the books match and every batch balances."""
    from simulator.loadgen.run import LoadError, LoadOptions, run_load
    from simulator.loadgen.schedule import ScheduleError, parse_schedule
    from simulator.loadgen.sim_terminal import Mix

    try:
        faults = None if args.faults is None else parse_schedule(args.faults)
        serve_args = tuple(shlex.split(args.serve_args))
    except ScheduleError as exc:
        raise CommandError(str(exc)) from None
    except ValueError as exc:  # shlex: an unclosed quote
        raise CommandError(f"--serve-args: {exc}") from None
    options = LoadOptions(
        terminals=args.terminals,
        duration=args.duration,
        mix=Mix(think_seconds=args.think),
        faults=faults,
        data_dir=Path(args.data_dir) if args.data_dir else None,
        workers=args.workers,
        store=args.store or os.environ.get("POSTERM_HOST_STORE") or None,
        serve_args=serve_args,
        source_addresses=args.source_addresses,
        settle_seconds=args.settle_seconds,
        seed=args.seed,
    )
    if not args.json:
        print(f"posterm host load: {args.terminals} terminals for {args.duration:g} s ...", file=sys.stderr)
    try:
        report = run_load(options)
    except LoadError as exc:
        raise Unavailable(str(exc)) from None
    try:
        print(json.dumps(report.to_json(), indent=1) if args.json else report.text(), flush=True)
    except BrokenPipeError:  # the reader of the report went away (| head): nothing more to tell it
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m simulator.loadgen [OPTIONS]``: the same command and exit statuses as ``posterm host load``."""
    from terminal.exit_status import status_for

    parser = CommandParser(prog="python -m simulator.loadgen", description=HELP)
    add_arguments(parser)
    try:
        return load_command(parser.parse_args(argv))
    except BrokenPipeError:  # the reader of the report went away (| head): nothing to tell it
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (CommandError, Unavailable) as exc:
        where = f" (see '{exc.prog} --help')" if isinstance(exc, UsageError) else ""
        print(f"posterm host load: error: {exc}{where}", file=sys.stderr)
        return int(status_for(exc))
