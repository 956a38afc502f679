"""``posterm sale|refund|void|journal|saf|receipt|report|settle``: the terminal core, headless.

Every command takes ``--data-dir DIR`` (default: ``$POSTERM_DATA_DIR`` or the
platform's user data directory) and ``--json`` (one JSON object on standard
output).  ``--host auto`` (the default) is the host the data directory is
enrolled with (``posterm enrol``), or else ``memory``, the simulator's
in-process host whose state is kept in the data directory; ``--host none``
means the host cannot be reached.

``sale`` and ``refund`` read the card on the reader of the device
configuration (``posterm devices set reader URL``; by default a simulated
``visa-qvsdc-online`` card), on ``--reader URL`` (any reader URL, e.g.
``pcsc:`` or ``nfc:usb``), or on a simulated card with ``--card PROFILE``
(short for ``--reader sim:card=PROFILE``).  While a card is awaited, the
amount and the prompt are printed on standard error (not with ``--json``,
whose output is for programs).  ``--pin-pad URL`` names the PIN pad (else the
configured one, ``posterm devices set pin-pad URL``; ``none``: none), and
``--insert contact-...`` the simulated chip card inserted when a tap ends
"insert card" (docs/pinpad-protocol.md, "PIN in a sale"); a refund that reads
a card asks the PIN where the setting ``pin_on_refund`` is ``online``
(:mod:`terminal.refund_pin`).

Exit statuses: see :mod:`terminal.exit_status` (0 approved or done, 1
declined or not completed, 2 unusable input, 3 unavailable, 130 interrupted).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from terminal.bootstrap import open_terminal
from terminal.cli_output import (
    CommandError,
    Interrupted,
    NotDone,
    emit,
    iso_moment,
    positive_int,
    write_output,
)
from terminal.facade import NothingToSettle, PaymentResult, SettlementRefused, Terminal, TerminalEvent
from terminal.money import currency, format_amount, parse_amount
from terminal.notices import tell_unshown
from terminal.offline import OfflineBehavior, PaymentRefused

__all__ = ["add_commands"]

#: The currency of the simulator's digital-currency wallets (CBDC-SPEC: e-CNY, ISO 4217 156).
WALLET_CURRENCY = "CNY"


@contextmanager
def _terminal(
    args: argparse.Namespace, reader_url: str | None = None, *, shared: bool = False, tell: bool = True
) -> Iterator[Terminal]:
    """The terminal of ``--data-dir``; ``shared``: this command only reads, so it runs beside an application.

    Before anything else, the payments a process killed before it showed them
    left are told on standard error, one line each, and marked shown
    (:func:`terminal.notices.tell_unshown`); ``tell=False`` for ``posterm
    last``, which tells them its own way.
    """
    pin_pad_url = getattr(args, "pin_pad", None)
    if isinstance(pin_pad_url, str) and pin_pad_url.strip().lower().startswith("screen:"):
        # checked before a card is read: the on-screen pad is drawn by posterm ui, never by a command
        raise CommandError(
            "--pin-pad 'screen:': the on-screen PIN pad exists only inside posterm ui; "
            "give another PIN pad (e.g. sim:pin=1234, serial:...?protocol=posterm-pinpad) or none"
        )
    terminal = open_terminal(
        args.data_dir, reader_url=reader_url, host=getattr(args, "host", "auto"), shared=shared,
        pin_pad_url=pin_pad_url,
    )  # fmt: skip
    try:
        if tell:
            tell_unshown(terminal, _note)
        yield terminal
    finally:
        terminal.close()


def _note(line: str) -> None:
    print(f"posterm: note: {line}", file=sys.stderr, flush=True)


def _shown(terminal: Terminal, txn_id: str) -> None:
    """The outcome of ``txn_id`` is out: standard output flushed (a closed pipe raises), then marked shown."""
    sys.stdout.flush()
    with suppress(Exception):  # unmarked, it is told again at the next start: better than failing the command
        terminal.mark_shown([txn_id], "cli")


def _reader(args: argparse.Namespace) -> str | None:
    """The reader URL the options name; None: the configured reader."""
    if args.card and args.reader:
        raise CommandError("give either --card or --reader, not both")
    insert = getattr(args, "insert", None)
    if insert and not args.card:
        raise CommandError("--insert goes with --card (the simulated card tapped first)")
    if args.card:
        url = f"sim:card={args.card}"
        return f"{url}{'&' if '?' in url else '?'}insert={insert}" if insert else url
    return str(args.reader) if args.reader else None


def _need_reader(terminal: Terminal) -> None:
    if terminal.reader is None:
        raise CommandError(
            "no card reader is configured: 'posterm devices set reader URL', or give --reader URL or --card PROFILE"
        )


def _show_prompts(event: TerminalEvent) -> None:
    if event.kind == "card_prompt":
        print(f"{event.data.get('amount')}: {event.data.get('prompt')}", file=sys.stderr, flush=True)


def _payment_text(r: PaymentResult) -> str:
    amount = format_amount(r.amount, currency(r.currency))
    card = f" {r.scheme} {r.masked_pan}" if r.masked_pan else ""
    code = f" (approval code {r.approval_code})" if r.approval_code else ""
    refusal = f" [{r.refusal}]" if r.refusal else ""
    lines = [f"{r.kind} {amount}{card}: {r.message}{code}{refusal}", f"transaction {r.txn_id}, state {r.state.value}"]
    lines += _ec_lines(r)
    lines += [f"warning: {w}" for w in r.warnings]
    return "\n".join(lines)


def _ec_lines(r: PaymentResult) -> list[str]:
    """A UnionPay-style card's electronic cash (kernel C-7): the balance after the sale, or why it fell short."""
    ec = r.card_result.electronic_cash if r.card_result is not None else None
    if ec is None:
        return []
    cur = currency(r.currency)
    if r.approved and ec.balance is not None:
        return [f"electronic cash balance after the sale: {format_amount(ec.balance, cur)}"]
    available = ec.offline_spending_amount
    if not r.approved and available is not None and available < r.amount:
        return [f"the card's electronic cash balance ({format_amount(available, cur)}) is short of the amount"]
    return []


def _finish_payment(args: argparse.Namespace, terminal: Terminal, result: PaymentResult) -> int:
    emit(args, result.to_json(), _payment_text(result))  # warnings are in both forms
    _shown(terminal, result.txn_id)
    return 0 if result.approved or result.state.value == "voided" else 1


def _interrupted(terminal: Terminal) -> Interrupted:
    """After Ctrl-C: finish what recovery finishes, and say in one line what state the payment is in."""
    terminal.recover()
    txn_id = terminal.payment_in_progress
    if txn_id is None:
        return Interrupted("interrupted before the card was read: no payment was made")
    row = terminal.transaction(txn_id)
    state = row.state.value if row is not None else "unknown"
    if state == "reversal_pending":
        return Interrupted(f"interrupted: payment {txn_id} is reversal_pending (the reversal is sent next)")
    return Interrupted(f"interrupted: payment {txn_id} is {state}")


def _currency_of(args: argparse.Namespace) -> Any:
    """``--currency``, else the currency of what pays: a simulated wallet's (``--card cbdc-...``: CNY), or EUR."""
    if args.currency is not None:
        return currency(args.currency)
    return currency(WALLET_CURRENCY if (args.card or "").startswith("cbdc-") else "EUR")


def _cmd_sale(args: argparse.Namespace) -> int:
    from terminal.cli_qr_sale import run_sale

    if args.qr_show or args.qr_scan or args.png or args.scanner:
        return run_sale(args)
    cur = _currency_of(args)
    amount = parse_amount(args.amount, cur)
    with _terminal(args, _reader(args)) as terminal:
        _need_reader(terminal)
        if not args.json:
            terminal.subscribe(_show_prompts)
        try:
            result = terminal.sale(
                amount, cur.numeric, exponent=cur.exponent, offline_behavior=OfflineBehavior(args.offline_behavior)
            )
        except KeyboardInterrupt:
            raise _interrupted(terminal) from None
        return _finish_payment(args, terminal, result)


def _cmd_refund(args: argparse.Namespace) -> int:
    cur = _currency_of(args)
    amount = parse_amount(args.amount, cur)
    reader = _reader(args)
    if args.original is None and not args.unreferenced:
        raise CommandError(
            "say what is refunded: --original TXN_ID (to the card of that payment), or --unreferenced "
            "(to the card presented, with no original payment)"
        )
    if args.original is not None and args.unreferenced:
        raise CommandError("give either --original or --unreferenced, not both")
    if args.other_card and (args.original is None or reader is None):
        raise CommandError("--other-card goes with --original and the card presented (--card or --reader)")
    # Against the original payment, no card is read unless one is named.
    present = args.original is None or reader is not None
    with _terminal(args, reader if present else "none") as terminal:
        if present:
            _need_reader(terminal)
            if not args.json:
                terminal.subscribe(_show_prompts)
        try:
            result = terminal.refund(
                amount,
                cur.numeric,
                exponent=cur.exponent,
                original_txn_id=args.original,
                present_card=present and args.original is not None,
                to_other_card=args.other_card,
                offline_behavior=OfflineBehavior(args.offline_behavior),
            )
        except KeyboardInterrupt:
            raise _interrupted(terminal) from None
        except PaymentRefused as exc:
            if exc.reason == "other_card":
                raise PaymentRefused(exc.reason, f"{exc} (--other-card)") from None
            raise
        return _finish_payment(args, terminal, result)


def _cmd_void(args: argparse.Namespace) -> int:
    with _terminal(args) as terminal:
        try:
            result = terminal.void(args.txn_id)
        except KeyboardInterrupt:
            raise _interrupted(terminal) from None
        emit(args, result.to_json(), _payment_text(result))
        _shown(terminal, result.txn_id)
        return 0


def _money_text(amount: int, code: int) -> str:
    try:
        return format_amount(amount, currency(code))
    except ValueError:
        return f"{amount} ({code:03d})"


def _cmd_last(args: argparse.Namespace) -> int:
    from terminal import cli_journal

    with _terminal(args, shared=True, tell=False) as terminal:
        return cli_journal.last(args, terminal, _note)


def _cmd_journal(args: argparse.Namespace) -> int:
    from terminal import cli_journal

    with _terminal(args, shared=args.journal_command != "purge") as terminal:
        return cli_journal.run(args, terminal)


def _cmd_saf(args: argparse.Namespace) -> int:
    with _terminal(args, shared=args.saf_command == "status") as terminal:
        if args.saf_command == "forward":
            try:
                report = terminal.forward_now()
            except KeyboardInterrupt:
                terminal.recover()
                left = terminal.offline_status()
                raise Interrupted(
                    f"interrupted: {left.queued} payment(s) and {left.reversals_queued} reversal(s) still queued; "
                    "nothing was lost ('posterm saf forward' goes on)"
                ) from None
            status = terminal.offline_status()
            text = (
                f"forwarded: {report.accepted} accepted, {report.declined} declined after forwarding, "
                f"{report.rejected} rejected, {report.expired} expired, {report.reversals_sent} reversal(s) sent, "
                f"{report.failed} failed"
                + (f"; stopped: {report.stopped_by}" if report.stopped_by else "")
                + f"\n{status.queued} still queued"
                + (f"; last error: {status.last_error}" if report.failed and status.last_error else "")
            )
            emit(args, report.to_json() | {"status": status.to_json()}, text)
            return 0 if report.failed == 0 and report.stopped_by is None else 1
        status = terminal.offline_status(checked=True)
        lines = [f"{status.queued} payment(s) queued, {status.reversals_queued} reversal(s) queued"]
        for code, (n, amount) in sorted(status.totals.items()):
            lines.append(f"  {_money_text(amount, code)} in {n} payment(s)")
        if status.evidence_queued:
            lines.append(
                f"  of which {status.evidence_queued} digital-currency record(s) refused or torn notice(s): "
                "evidence for the wallet's operator, nothing to credit"
            )
        if status.oldest_at:
            lines.append(f"oldest: {status.oldest_at} ({(status.oldest_age_seconds or 0) / 60:.1f} min)")
        if status.last_attempt_at:
            lines.append(f"last attempt: {status.last_attempt_at}: {status.last_error or 'ok'}")
        if status.declined_after_forwarding:
            lines.append("declined or rejected after forwarding: " + ", ".join(status.declined_after_forwarding))
        if status.security_events:
            lines.append(
                f"SECURITY: {status.security_events} host certificate rejection(s); last {status.last_security_event}"
            )
        emit(args, status.to_json(), "\n".join(lines))
        return 0


def _cmd_receipt(args: argparse.Namespace) -> int:
    from terminal.receipts import render_escpos, render_text

    with _terminal(args, shared=True) as terminal:
        if terminal.transaction(args.txn_id) is None:
            raise CommandError(f"no transaction {args.txn_id}")
        if args.print:
            terminal.print_receipt(args.txn_id, args.copy)
            emit(args, {"txn_id": args.txn_id, "copy": args.copy, "printed": True}, f"{args.copy} copy printed")
            return 0
        data = terminal.receipt(args.txn_id, args.copy, issue=True)
        if args.format == "escpos":
            payload = render_escpos(data, args.copy)
            if args.output:
                write_output(args.output, payload)
            else:
                sys.stdout.buffer.write(payload)
            return 0
        text = render_text(data, args.copy)
        if args.output:
            write_output(args.output, text.encode("utf-8"))
        emit(args, {"txn_id": args.txn_id, "copy": args.copy, "duplicate": data.reprint, "text": text}, text)
        return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from datetime import datetime

    from terminal.host import TotalsLine
    from terminal.reports import render_report

    with _terminal(args, shared=True) as terminal:
        kind = args.kind.upper()
        batch_id = args.batch
        if kind == "Z" and batch_id is None:
            closed = terminal.closed_batches()
            if not closed:
                raise CommandError("no batch has been settled yet (a Z report is made for a settled batch)")
            batch_id = closed[-1]
        info = terminal.batch(batch_id)
        if info is None:
            raise CommandError(f"no batch {batch_id}")
        settled = info["closed_at"] is not None
        if kind == "X" and (settled or info["closing_at"]):
            raise CommandError(f"batch {info['batch_id']} is settled: its report is 'posterm report z --batch "
                               f"{info['batch_id']}'")  # fmt: skip
        if kind == "Z" and not settled:
            raise CommandError(f"batch {info['batch_id']} is not settled yet: 'posterm report x' shows it")
        batch, lines = terminal.batch_lines(info["batch_id"])
        voided: dict[tuple[str, int, str], list[int]] = {}
        for row in terminal.voids(batch):
            acc = voided.setdefault((row.scheme, row.currency, row.kind), [0, 0])
            acc[0] += 1
            acc[1] += row.amount
        voids = [TotalsLine(s, c, k, n, a) for (s, c, k), (n, a) in voided.items()]
        closed_at = datetime.fromisoformat(info["closed_at"]) if settled else None
        text = render_report(
            kind,
            batch,
            terminal.config.terminal_id,
            datetime.fromisoformat(info["opened_at"]),
            closed_at,
            lines,
            saf_pending=0 if kind == "Z" else terminal.offline_status().queued,
            in_balance=info["in_balance"] if kind == "Z" else None,
            voids=voids,
        )
        obj = {
            "kind": kind,
            "batch_id": batch,
            "lines": [line.__dict__ for line in lines],
            "voids": [line.__dict__ for line in voids],
            "batch": info,
            "text": text,
        }
        emit(args, obj, text)
        return 0


def _difference_text(diff: dict[str, Any]) -> str:
    code = int(diff.get("currency", 0))
    return (
        f"{diff.get('kind', '?')}s in {_money_text(0, code).split()[-1]}: the terminal counted "
        f"{diff.get('terminal_count')} for {_money_text(int(diff.get('terminal_amount', 0)), code)}, the host "
        f"{diff.get('host_count')} for {_money_text(int(diff.get('host_amount', 0)), code)}"
    )


def _cmd_settle(args: argparse.Namespace) -> int:
    with _terminal(args) as terminal:
        try:
            result = terminal.settle()
        except NothingToSettle as exc:
            emit(args, {"settled": False, "reason": str(exc)}, str(exc))
            return 0
        except SettlementRefused as exc:
            raise NotDone(str(exc)) from None
        balance = "in balance" if result.in_balance else "OUT OF BALANCE"
        text = (
            f"batch {result.batch_id} settled, {balance} (host reference {result.host_reference}); "
            f"batch {result.new_batch_id} is open"
        )
        for diff in result.differences:
            text += f"\n  difference: {_difference_text(diff)}"
        if not result.in_balance:
            text += "\n  the batch is closed; compare 'posterm report z' with the acquirer's report"
        emit(args, result.to_json() | {"settled": True}, text)
        return 0 if result.in_balance else 1


def _common(p: argparse.ArgumentParser, host: bool = True) -> None:
    p.add_argument(
        "--data-dir",
        type=Path,
        help="where the journal and keys live (default: $POSTERM_DATA_DIR, else the user data directory)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object (errors too)")
    if host:
        p.add_argument(
            "--host",
            default="auto",
            help="auto (default: the enrolled host, else memory), memory, none, https, or https://HOST:PORT",
        )


def add_commands(sub: Any) -> None:
    """Add the payment commands to the ``posterm`` parser's subcommands."""
    behaviours = [b.value for b in OfflineBehavior]

    def payment(name: str, helptext: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=helptext, description=helptext)
        p.add_argument("amount", help="amount as a decimal, e.g. 12.34")
        p.add_argument(
            "--currency",
            help="ISO 4217 code (default EUR; CNY with a simulated digital-currency wallet, --card cbdc-...)",
        )
        p.add_argument("--card", help="a simulated card profile (short for --reader sim:card=PROFILE)")
        p.add_argument(
            "--reader",
            metavar="URL",
            help="device URL of the card reader, e.g. pcsc: or nfc:usb (default: the configured reader, "
            "see 'posterm devices')",
        )
        p.add_argument(
            "--pin-pad",
            metavar="URL",
            help="device URL of the PIN pad, e.g. sim:pin=1234 or serial:/dev/ttyUSB0?protocol=posterm-pinpad "
            "(default: the configured PIN pad, see 'posterm devices'; 'none': no PIN pad)",
        )
        p.add_argument(
            "--insert",
            metavar="PROFILE",
            help="with --card: the simulated chip card (contact-...) the customer inserts when the tap ends "
            "'insert card' (try another interface)",
        )
        p.add_argument("--offline-behavior", default="prefer_online", choices=behaviours)
        _common(p)
        return p

    sale = payment("sale", "charge a card, or take a QR payment (--qr-show, --qr-scan)")
    from terminal.cli_qr_sale import add_sale_options

    add_sale_options(sale)
    sale.set_defaults(func=_cmd_sale)
    refund = payment("refund", "refund against an original payment, or to the card presented")
    refund.add_argument(
        "--original", metavar="TXN_ID", help="the sale refunded: to its card (no card is read unless named)"
    )
    refund.add_argument(
        "--unreferenced", action="store_true", help="a refund with no original payment, to the card presented"
    )
    refund.add_argument(
        "--other-card",
        action="store_true",
        help="with --original and --card/--reader: refund to the card presented although it is not the original's",
    )
    refund.epilog = (
        "Where the terminal's setting pin_on_refund is 'online' (the acquirer's 'PIN for refund', from the "
        "parameters), a refund that reads a card asks the cardholder's PIN on the PIN pad (--pin-pad, else the "
        "configured one) and the issuer checks it: without a PIN pad, or with --offline-behavior force_offline, "
        "the refund is refused before the card is read; cancel or timeout refunds nothing; with the host "
        "unreachable it is declined, never stored offline. A refund with --original and no card asks no PIN. "
        "The default, 'never', asks none (docs/pinpad-protocol.md)."
    )
    refund.set_defaults(func=_cmd_refund)

    void = sub.add_parser("void", help="cancel an approved payment of the open batch")
    void.add_argument("txn_id")
    _common(void)
    void.set_defaults(func=_cmd_void)

    journal = sub.add_parser("journal", help="the transaction journal: list, show, verify, export, purge")
    jsub = journal.add_subparsers(dest="journal_command", required=True, metavar="COMMAND")
    jl = jsub.add_parser("list", help="transactions, oldest first")
    jl.add_argument("--limit", type=positive_int, help="only the last N")
    js = jsub.add_parser("show", help="one transaction and its history")
    js.add_argument("txn_id")
    jv = jsub.add_parser("verify", help="check the hash chain and every row's seal: edited or removed rows show")
    je = jsub.add_parser("export", help="journal rows of a date range as CSV, without sensitive data")
    je.add_argument("--since", type=iso_moment, help="ISO date or time, inclusive (UTC), e.g. 2026-01-01")
    je.add_argument("--until", type=iso_moment, help="ISO date or time, exclusive (UTC)")
    je.add_argument("--output", help="file to write (default: standard output)")
    jp = jsub.add_parser(
        "purge", help="delete settled records older than the retention period (also done after each settlement)"
    )
    for p in (jl, js, jv, je, jp):
        _common(p, host=False)
    journal.set_defaults(func=_cmd_journal)

    saf = sub.add_parser("saf", help="the store-and-forward queue: status, forward")
    ssub = saf.add_subparsers(dest="saf_command", required=True, metavar="COMMAND")
    for p in (
        ssub.add_parser("status", help="what waits, and since when"),
        ssub.add_parser("forward", help="send queued reversals and payments now"),
    ):
        _common(p)
    saf.set_defaults(func=_cmd_saf)

    last = sub.add_parser(
        "last",
        help="the last payment, and whether its outcome was shown",
        description="The last payment (sale or refund) with its outcome, and whether that outcome was shown to "
        "anyone: a payment whose process stopped before it printed anything was not. Showing it here counts.",
    )
    _common(last, host=False)
    last.set_defaults(func=_cmd_last)

    receipt = sub.add_parser("receipt", help="a receipt from the journal (a second one is marked duplicate)")
    receipt.add_argument("txn_id")
    receipt.add_argument("--format", choices=["text", "escpos"], default="text")
    receipt.add_argument("--copy", choices=["customer", "merchant"], default="customer")
    receipt.add_argument("--output", help="file to write")
    receipt.add_argument("--print", action="store_true", help="print it on the configured receipt printer")
    _common(receipt, host=False)
    receipt.set_defaults(func=_cmd_receipt)

    report = sub.add_parser("report", help="X report (running totals) or Z report (a settled batch)")
    report.add_argument("kind", choices=["x", "z", "X", "Z"])
    report.add_argument(
        "--batch", type=positive_int, help="batch number (default: open batch for X, last settled for Z)"
    )
    _common(report, host=False)
    report.set_defaults(func=_cmd_report)

    settle = sub.add_parser("settle", help="close the batch with the host")
    _common(settle)
    settle.set_defaults(func=_cmd_settle)
