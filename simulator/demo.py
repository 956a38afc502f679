"""``posterm demo``: a scripted day at a counter, on one machine, with nothing to set up.

The whole stack runs for real: the simulated acquiring host is a separate
process serving HTTPS with mutual TLS on loopback; the terminal enrols with
it (its key made locally, its certificate issued by the host's CA), downloads
its parameters, and pays with simulated cards through the EMV kernels, its
journal in a real SQLite file and its offline queue drained by the background
forwarder.  The day:

1. the host starts; the terminal enrols, signs on and downloads its parameters;
2. an online sale is approved (the issuer verifies the ARQC and sends an ARPC);
   a sale over the CVM limit with online PIN, verified by the issuer; a tap
   that asks for the chip ("try another interface", no PIN pad), and the card
   inserted and read by the contact kernel;
3. a sale is declined by the issuer (insufficient funds, amount ending in 51);
4. the host goes down (its port refuses connections);
5. sales go on: two deferred authorisations, an offline approval by the card,
   and one over the offline limit, refused with the limit named;
6. the host comes back and the queue drains in the background: one deferred
   authorisation (amount ending in 05) is declined after forwarding and
   reported;
7. a refund of the first sale, a sale voided;
8. QR: a code the terminal shows, paid by the simulated wallet app, and a
   wallet's payment code scanned through the simulator's pty scanner
   (:mod:`simulator.demo_qr`);
   settlement, in balance with the host (the QR payments in lines of their own);
9. digital currency: with the host down again, a hard wallet pays offline
   (its SM2-signed record verified by the terminal) and so does one of two
   cloned wallets; the host comes back and both records are forwarded and
   credited; a second terminal takes the other clone (same identity, same
   counter) offline, and at its sync the operator catches it: declined 59
   after forwarding, reported, the wallet blocked; the block list reaches the
   first terminal with its next parameters, and the clone is refused there
   before it pays; the first terminal settles, its digital currency in lines
   of its own.

Each step has an expected result; the command prints a table and exits 0 only
if every step had it.  Receipts are written as text files.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from host_link.client import open_host_link
from host_link.enrolment import CredentialBundle, enrol
from host_link.forwarder import SafForwarder
from host_link.parameters import download_and_apply
from simulator.host.service import HostService, start_host
from terminal import registry
from terminal.bootstrap import open_terminal
from terminal.cli_output import CommandError, file_error
from terminal.devices import LazyPinPad
from terminal.facade import PaymentResult, Terminal, TerminalEvent
from terminal.lifecycle import State
from terminal.money import currency, format_amount, parse_amount
from terminal.offline import OfflineLimitExceeded
from terminal.receipts import Copy, render_text

__all__ = ["DemoDay", "Step", "add_commands"]

TERMINAL_ID = "TERM0001"
SECOND_TERMINAL_ID = "TERM0002"
MERCHANT_ID = "POSTERM0000001"
ONLINE_CARD = "visa-qvsdc-online"
OFFLINE_CARD = "visa-qvsdc-offline"
MASTERCARD = "mc-cda-online"
EUR = currency("EUR")
CNY = currency("CNY")
MARKER = ".posterm-demo"  # an output directory the demo made, and may therefore empty


@dataclass
class Step:
    what: str
    expected: str
    actual: str = ""
    ok: bool = False
    txn_id: str | None = None


@dataclass
class DemoDay:
    """The scripted day; :meth:`run` returns its steps, each with what happened."""

    out: Path
    say: Callable[[str], None] = print
    steps: list[Step] = field(default_factory=list)
    events: list[TerminalEvent] = field(default_factory=list)
    receipts: list[Path] = field(default_factory=list)

    def run(self) -> list[Step]:
        self._prepare_output()
        host = start_host(self.out / "host")
        try:
            self._day(host)
        finally:
            host.stop()
        return self.steps

    # -- the day --------------------------------------------------------------------------------

    def _day(self, host: HostService) -> None:
        data_dir = self.out / "terminal"
        self._check("start the acquiring host", "listening with TLS 1.3", lambda: (True, f"{host.url}"))
        bundle = host.credential_bundle(TERMINAL_ID, MERCHANT_ID)
        (self.out / "credential-bundle.json").write_text(json.dumps(bundle, indent=1), encoding="utf-8")
        self._check(
            "enrol the terminal (one-time code, key made on the terminal)",
            f"certificate for {TERMINAL_ID}",
            lambda: self._enrol(bundle, data_dir),
        )
        self._check("sign on and download the parameters", "parameters applied", lambda: self._parameters(data_dir))
        terminal = open_terminal(data_dir, host="https")
        terminal.subscribe(self.events.append)
        forwarder = SafForwarder(terminal, batch_size=20, interval_seconds=0.5)
        try:
            self._counter(host, terminal, forwarder)
        finally:
            forwarder.stop()
            self._write_receipts(terminal)
            terminal.close()

    def _counter(self, host: HostService, terminal: Terminal, forwarder: SafForwarder) -> None:
        first = self._sale(terminal, "online sale, approved by the issuer", "25.00", ONLINE_CARD, State.APPROVED)
        self._sale(terminal, "online sale on a Mastercard (CDA)", "9.90", MASTERCARD, State.APPROVED)
        self._card_step(
            "sale over the CVM limit with online PIN (PIN pad sim:pin=1234)",
            "approved: PIN verified by the issuer",
            lambda: self._online_pin(terminal),
        )
        self._card_step(
            "the tap asks for the chip (no PIN pad): the card is inserted",
            "approved by the contact kernel",
            lambda: self._inserted(terminal),
        )
        self._sale(terminal, "sale declined: insufficient funds", "12.51", ONLINE_CARD, State.DECLINED, code="51")

        self._check("the host goes down", "its port refuses connections", lambda: self._host_down(host))
        self._sale(terminal, "sale while the host is down", "18.00", ONLINE_CARD, State.DEFERRED_APPROVED)
        refused_later = self._sale(
            terminal, "sale while the host is down (to be refused)", "20.05", ONLINE_CARD, State.DEFERRED_APPROVED
        )
        self._sale(terminal, "sale approved offline by the card", "12.34", OFFLINE_CARD, State.OFFLINE_APPROVED)
        self._check(
            "sale over the offline limit",
            "declined: per_payment_amount limit named, nothing stored",
            lambda: self._over_limit(terminal),
        )
        queued = terminal.offline_status()
        self._check(
            "stored while the host was down",
            "3 payments queued",
            lambda: (queued.queued == 3, f"{queued.queued} payments queued"),
        )

        self._check("the host comes back", "echo answered", lambda: self._host_back(host, terminal))
        forwarder.start()
        self._check(
            "the queue drains in the background",
            "2 accepted, 1 declined after forwarding and reported",
            lambda: self._drained(terminal, refused_later),
        )
        if first is not None:
            self._refund(terminal, first)
        voided = self._sale(terminal, "sale to be voided", "8.00", ONLINE_CARD, State.APPROVED)
        if voided is not None:
            self._check("void it", "voided, reversal delivered", lambda: self._void(terminal, voided))
        from simulator.demo_qr import qr_day

        qr_day(self._check, host, terminal)
        self._check("settle", "in balance with the host", lambda: self._settle(terminal))
        self._digital_currency(host, terminal)

    def _digital_currency(self, host: HostService, terminal: Terminal) -> None:
        """Hard wallets (CBDC): offline payments forwarded later, and a clone caught at sync."""
        self._check("the host goes down again", "its port refuses connections", lambda: self._host_down(host))
        paid = self._wallet(terminal, "digital currency offline (hard wallet, host down)", "12.34", "cbdc-anon",
                            State.WALLET_APPROVED)  # fmt: skip
        clone = self._wallet(terminal, "a cloned wallet pays offline here", "8.80", "cbdc-clone-a",
                             State.WALLET_APPROVED)  # fmt: skip
        self._check("the host comes back", "echo answered", lambda: self._host_back(host, terminal))
        self._check(
            "the wallets' records are forwarded later",
            "2 credited by the operator, once",
            lambda: self._wallets_credited(terminal, [t for t in (paid, clone) if t]),
        )
        second = self.out / "terminal-2"
        self._check(
            "a second terminal enrols",
            f"certificate for {SECOND_TERMINAL_ID}, parameters applied",
            lambda: self._second_terminal(host, second),
        )
        self._check(
            "the clone's twin pays offline at the second terminal",
            "wallet_approved (it never saw the wallet)",
            lambda: self._twin(second),
        )
        self._check(
            "the second terminal syncs: the operator catches the clone",
            "declined after forwarding (59), reported; the wallet blocked",
            lambda: self._clone_caught(host, second),
        )
        self._check(
            "the block list reaches the first terminal",
            "the clone is refused: wallet_blocked, nothing debited",
            lambda: self._blocked_here(terminal),
        )
        self._check("settle again", "in balance, digital currency in its own lines", lambda: self._settle(terminal))

    # -- steps ----------------------------------------------------------------------------------

    def _enrol(self, bundle: dict[str, str], data_dir: Path) -> tuple[bool, str]:
        creds = enrol(CredentialBundle.from_json(bundle), data_dir)
        return creds.terminal_id == TERMINAL_ID, f"certificate for {creds.terminal_id}"

    def _parameters(self, data_dir: Path) -> tuple[bool, str]:
        link = open_host_link("https", data_dir)
        try:
            signed_on = link.sign_on()
            version = download_and_apply(link, data_dir)
        finally:
            link.close()
        return version is not None, f"parameters version {version} applied (host at {signed_on.host_time})"

    def _sale(
        self, terminal: Terminal, what: str, amount: str, card: str, expected: State, *, code: str | None = None
    ) -> str | None:
        step = self._begin(what, expected.value + (f" ({code})" if code else ""))
        terminal.reader = registry.open_reader(f"sim:card={card}")
        try:
            result = terminal.sale(_minor(amount), EUR.numeric)
        except Exception as exc:  # the table shows it; the demo goes on
            self._end(step, False, f"error: {exc}")
            return None
        ok = result.state is expected and (code is None or result.response_code == code)
        self._end(step, ok, _describe(result), result.txn_id)
        return result.txn_id if ok else None

    def _card_step(self, what: str, expected: str, action: Callable[[], tuple[bool, str, str]]) -> None:
        """A step that makes a payment (its receipt is written with the others)."""
        step = self._begin(what, expected)
        try:
            ok, actual, txn_id = action()
        except Exception as exc:  # the table shows it; the demo goes on
            self._end(step, False, f"error: {exc}")
            return
        self._end(step, ok, actual, txn_id)

    def _online_pin(self, terminal: Terminal) -> tuple[bool, str, str]:
        # the PIN pad's DUKPT counters live in the demo's folder, not in the user's state directory
        terminal.pin_pad = LazyPinPad(f"sim:pin=1234?state-dir={self.out / 'pinpad'}")
        terminal.reader = registry.open_reader("sim:card=visa-online-pin")
        try:
            result = terminal.sale(_minor("80.00"), EUR.numeric)
        finally:
            terminal.pin_pad = None
        ok = result.state is State.APPROVED and result.pin == "verified"
        return ok, f"{_describe(result)}, cvm {result.cvm}, PIN {result.pin}", result.txn_id

    def _inserted(self, terminal: Terminal) -> tuple[bool, str, str]:
        terminal.reader = registry.open_reader("sim:card=visa-online-pin?insert=contact-offline-pin")
        result = terminal.sale(_minor("80.00"), EUR.numeric)
        ok = result.state is State.APPROVED and result.kernel == "contact"
        return ok, f"{_describe(result)}, kernel {result.kernel}, cvm {result.cvm}", result.txn_id

    def _wallet_url(self, profile: str) -> str:
        # the wallets' counters and balances live in the demo's folder, not in the user's state directory
        return f"sim:card={profile}?state-dir={self.out / 'wallets'}"

    def _wallet(self, terminal: Terminal, what: str, amount: str, profile: str, expected: State) -> str | None:
        step = self._begin(what, expected.value)
        terminal.reader = registry.open_reader(self._wallet_url(profile))
        try:
            result = terminal.sale(parse_amount(amount, CNY), CNY.numeric)
        except Exception as exc:  # the table shows it; the demo goes on
            self._end(step, False, f"error: {exc}")
            return None
        ok = result.state is expected
        self._end(step, ok, _describe(result), result.txn_id)
        return result.txn_id if ok else None

    def _wallets_credited(self, terminal: Terminal, txn_ids: list[str]) -> tuple[bool, str]:
        report = terminal.forward_now()  # (the background forwarder may have sent them already)
        states = [row.state for row in map(terminal.transaction, txn_ids) if row is not None]
        credited = sum(state is State.WALLET_CREDITED for state in states)
        ok = len(txn_ids) == 2 and credited == 2 and terminal.offline_status().queued == 0
        return ok, f"{credited} credited by the operator ({report.accepted} sent now), queue empty"

    def _second_terminal(self, host: HostService, data_dir: Path) -> tuple[bool, str]:
        bundle = host.credential_bundle(SECOND_TERMINAL_ID, MERCHANT_ID)
        creds = enrol(CredentialBundle.from_json(bundle), data_dir)
        ok, text = self._parameters(data_dir)
        return ok and creds.terminal_id == SECOND_TERMINAL_ID, f"certificate for {creds.terminal_id}, {text}"

    def _twin(self, data_dir: Path) -> tuple[bool, str]:
        terminal = open_terminal(data_dir, host="https", reader_url=self._wallet_url("cbdc-clone-b"))
        try:
            result = terminal.sale(parse_amount("6.60", CNY), CNY.numeric)
        finally:
            terminal.close()
        return result.state is State.WALLET_APPROVED, _describe(result)

    def _clone_caught(self, host: HostService, data_dir: Path) -> tuple[bool, str]:
        from simulator.host import cbdc_admin

        terminal = open_terminal(data_dir, host="https", reader_url="none")
        told: list[TerminalEvent] = []
        terminal.subscribe(told.append)
        try:
            report = terminal.forward_now()
            listed = terminal.offline_status().declined_after_forwarding
        finally:
            terminal.close()
        codes = [str(e.data.get("response_code")) for e in told if e.kind == "saf_declined"]
        wallets = {w["wallet_id"]: w for w in cbdc_admin.wallets(host.data_dir)}
        blocked = wallets.get("D1A000000000000A", {}).get("blocked_reason")
        ok = report.declined == 1 and codes == ["59"] and len(listed) == 1 and blocked is not None
        return ok, f"{report.declined} declined after forwarding (code {', '.join(codes)}); wallet blocked: {blocked}"

    def _blocked_here(self, terminal: Terminal) -> tuple[bool, str]:
        from terminal.params import reload_configuration

        data_dir = terminal.store.path.parent
        link = open_host_link("https", data_dir)
        try:
            version = download_and_apply(link, data_dir)
        finally:
            link.close()
        reload_configuration(terminal, data_dir)
        terminal.reader = registry.open_reader(self._wallet_url("cbdc-clone-a"))
        result = terminal.sale(parse_amount("3.00", CNY), CNY.numeric)
        ok = result.refusal == "wallet_blocked" and not result.approved
        return ok, f"parameters version {version}: {result.message} [{result.refusal}]"

    def _host_down(self, host: HostService) -> tuple[bool, str]:
        import socket

        host.set_faults(down=True)
        try:
            socket.create_connection(("127.0.0.1", host.port), timeout=2).close()
        except ConnectionRefusedError:
            return True, f"port {host.port}: connection refused"
        return False, f"port {host.port} still accepts connections"

    def _over_limit(self, terminal: Terminal) -> tuple[bool, str]:
        # A Mastercard: above the CVM limit it asks for a signature (this reader has no PIN pad).
        terminal.reader = registry.open_reader(f"sim:card={MASTERCARD}")
        before = terminal.offline_status().queued
        started = time.monotonic()
        try:
            result = terminal.sale(_minor("75.00"), EUR.numeric)
        except OfflineLimitExceeded as exc:
            return False, f"refused before the card was read ({exc.limit})"
        stored = terminal.offline_status().queued - before
        seconds = time.monotonic() - started
        ok = not result.approved and "per_payment_amount" in result.message and stored == 0
        return ok, f"declined ({result.message}) in {seconds:.2f} s, {stored} stored"

    def _host_back(self, host: HostService, terminal: Terminal) -> tuple[bool, str]:
        host.clear_faults()
        echo = getattr(terminal.host, "echo", None)
        if echo is None:
            return False, "the host link has no echo"
        seconds = float(echo(force=True))  # what the link check on the terminal does
        return True, f"echo in {seconds * 1000:.1f} ms"

    def _drained(self, terminal: Terminal, refused: str | None) -> tuple[bool, str]:
        deadline = time.monotonic() + 30
        while terminal.offline_status().queued and time.monotonic() < deadline:
            time.sleep(0.1)
        forwarded = [e.txn_id for e in self.events if e.kind == "saf_forwarded"]
        declined = [e for e in self.events if e.kind == "saf_declined"]
        listed = terminal.offline_status().declined_after_forwarding
        ok = (
            terminal.offline_status().queued == 0
            and len(forwarded) == 2
            and [e.txn_id for e in declined] == [refused]
            and refused in listed
        )
        codes = ", ".join(str(e.data.get("response_code")) for e in declined)
        return ok, f"{len(forwarded)} accepted, {len(declined)} declined after forwarding (code {codes})"

    def _refund(self, terminal: Terminal, original: str) -> None:
        step = self._begin("refund 5.00 of the first sale", "approved")
        try:
            result = terminal.refund(_minor("5.00"), EUR.numeric, original_txn_id=original)
        except Exception as exc:
            self._end(step, False, f"error: {exc}")
            return
        self._end(step, result.state is State.APPROVED, _describe(result), result.txn_id)

    def _void(self, terminal: Terminal, txn_id: str) -> tuple[bool, str]:
        result = terminal.void(txn_id)
        pending = terminal.offline_status().reversals_queued
        ok = result.state is State.VOIDED and pending == 0
        return ok, f"{result.state.value}; reversals still queued: {pending}"

    def _settle(self, terminal: Terminal) -> tuple[bool, str]:
        settled = terminal.settle()
        lines = ", ".join(
            f"{line.kind} {line.count} x {format_amount(line.amount, currency(line.currency))}"
            for line in settled.lines
        )
        balance = "in balance" if settled.in_balance else f"OUT of balance {list(settled.differences)}"
        return settled.in_balance, f"batch {settled.batch_id} {balance}: {lines}"

    # -- plumbing -------------------------------------------------------------------------------

    def _begin(self, what: str, expected: str) -> Step:
        step = Step(what, expected)
        self.steps.append(step)
        return step

    def _end(self, step: Step, ok: bool, actual: str, txn_id: str | None = None) -> None:
        step.ok, step.actual, step.txn_id = ok, actual, txn_id
        self.say(f"{'ok  ' if ok else 'FAIL'} {step.what}: {actual}")

    def _check(self, what: str, expected: str, action: Callable[[], tuple[bool, str]]) -> None:
        step = self._begin(what, expected)
        try:
            ok, actual = action()
        except Exception as exc:  # the table shows it; the demo goes on
            ok, actual = False, f"error: {type(exc).__name__}: {exc}"
        self._end(step, ok, actual)

    def _prepare_output(self) -> None:
        """An empty output folder; one that is not the demo's own is never emptied (CommandError instead)."""
        if self.out.exists() and not self.out.is_dir():
            raise CommandError(f"--out {self.out} is a file, not a folder")
        if self.out.exists() and any(self.out.iterdir()):
            if not (self.out / MARKER).exists():
                raise CommandError(f"--out {self.out} is not empty and was not made by the demo: give another folder")
            shutil.rmtree(self.out)
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / MARKER).write_text("made by posterm demo; emptied by the next run\n", encoding="utf-8")
        except OSError as exc:
            raise file_error(exc, f"the demo's folder {self.out}") from None

    def _write_receipts(self, terminal: Terminal) -> None:
        directory = self.out / "receipts"
        directory.mkdir(exist_ok=True)
        for step in self.steps:
            if step.txn_id is None:
                continue
            copies: tuple[Copy, ...] = ("customer", "merchant")
            for copy in copies:
                data = terminal.receipt(step.txn_id, copy, issue=True)
                path = directory / f"{step.txn_id}-{copy}.txt"
                path.write_text(render_text(data, copy), encoding="utf-8")
                self.receipts.append(path)


def _minor(amount: str) -> int:
    from terminal.money import parse_amount

    return parse_amount(amount, EUR)


def _describe(result: PaymentResult) -> str:
    money = format_amount(result.amount, currency(result.currency))
    parts = [result.state.value, money, result.masked_pan or ""]
    if result.refusal:
        parts.append(f"[{result.refusal}]")
    if result.approval_code:
        parts.append(f"approval {result.approval_code}")
    if result.response_code and result.response_code != "00":
        parts.append(f"code {result.response_code}")
    return " ".join(p for p in parts if p)


def table(steps: list[Step]) -> str:
    rows = [("#", "step", "expected", "result", "")] + [
        (str(i), s.what, s.expected, s.actual, "ok" if s.ok else "FAIL") for i, s in enumerate(steps, 1)
    ]
    limits = (3, 44, 34, 70, 4)
    widths = [min(max(len(r[i]) for r in rows), limits[i]) for i in range(5)]
    out = []
    for n, row in enumerate(rows):
        cells = [cell if len(cell) <= widths[i] else cell[: widths[i] - 1] + "~" for i, cell in enumerate(row)]
        out.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(cells)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _cmd_demo(args: argparse.Namespace) -> int:
    """Run the day; 0 when every step had its expected result, 1 otherwise (errors: terminal.exit_status)."""
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="posterm-demo-"))
    started = time.monotonic()
    day = DemoDay(out, say=(lambda _line: None) if args.quiet else print)
    steps = day.run()
    failed = [s for s in steps if not s.ok]
    print()
    print(table(steps))
    print()
    print(f"receipts: {len(day.receipts)} text files in {out / 'receipts'}")
    print(f"data: the host's in {out / 'host'}, the terminal's in {out / 'terminal'}")
    verdict = "every step had the expected result" if not failed else f"{len(failed)} step(s) FAILED"
    print(f"{len(steps)} steps in {time.monotonic() - started:.1f} s: {verdict}")
    return 0 if not failed else 1


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser("demo", help="run a scripted day at a counter on the built-in simulator")
    demo.add_argument("--out", help="directory for the data and receipts (default: a new temporary directory)")
    demo.add_argument("--quiet", action="store_true", help="only the summary table")
    demo.set_defaults(func=_cmd_demo)
