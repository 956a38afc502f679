"""``posterm sim``: the simulator's devices, started for manual use and for tests.

- ``posterm sim card PROFILE --via vpcd``: a virtual card served to pcscd through
  vsmartcard's vpcd protocol (the reader appears in pyscard as a real reader);
- ``posterm sim card PROFILE --via nfc-udp``: a virtual ISO-DEP card answering
  over nfcpy's udp transport (``nfc:udp:HOST:PORT``);
- ``posterm sim scanner``: a serial QR scanner on a pty (a real serial device path);
- ``posterm sim printer``: a network ESC/POS printer on a TCP port.

Each runs until interrupted (Ctrl-C or SIGTERM).  ``--fault`` injects the
device's faults (see each module).  The devices themselves live in
:mod:`simulator.vpcd`, :mod:`simulator.nfc_udp`, :mod:`simulator.pty_scanner`
and :mod:`simulator.net_printer`.
"""

from __future__ import annotations

import argparse

__all__ = ["add_commands"]


def _cmd_card(args: argparse.Namespace) -> int:
    if args.via == "vpcd":
        from simulator import vpcd

        return vpcd.serve_card_cli(args)
    from simulator import nfc_udp

    return nfc_udp.serve_card_cli(args)


def _cmd_scanner(args: argparse.Namespace) -> int:
    from simulator import pty_scanner

    return pty_scanner.serve_scanner_cli(args)


def _cmd_printer(args: argparse.Namespace) -> int:
    from simulator import net_printer

    return net_printer.serve_printer_cli(args)


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sim = sub.add_parser("sim", help="start a simulated device: a card on pcscd or nfc-udp, a scanner, a printer")
    sim_sub = sim.add_subparsers(dest="sim_command", required=True)

    card = sim_sub.add_parser("card", help="serve a simulated card (profile name or a trace file) to a reader stack")
    card.add_argument("card", help="card profile (see 'posterm emv cards') or TRACE.json for the replay card")
    card.add_argument("--via", choices=["vpcd", "nfc-udp"], required=True, help="which stack the card talks to")
    card.add_argument("--second-card", help="a second card in the field at the same time (nfc-udp)")
    card.add_argument("--bind", default="127.0.0.1", help="address (vpcd: pcscd's, nfc-udp: the card's)")
    card.add_argument("--port", type=int, help="port (vpcd: 35963 for slot 0; nfc-udp: 54329)")
    card.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="FAULT",
        help="remove-after=N (card leaves after N commands), mute-after=N (stops answering), "
        "reinsert-after=SECONDS (comes back after a removal); repeatable",
    )
    card.set_defaults(func=_cmd_card)

    scanner = sim_sub.add_parser("scanner", help="a serial QR scanner on a pty, sending codes")
    printer = sim_sub.add_parser("printer", help="a network ESC/POS printer on a TCP port, capturing jobs")
    from simulator import net_printer, pty_scanner

    pty_scanner.add_scanner_arguments(scanner)
    scanner.set_defaults(func=_cmd_scanner)
    net_printer.add_printer_arguments(printer)
    printer.set_defaults(func=_cmd_printer)
