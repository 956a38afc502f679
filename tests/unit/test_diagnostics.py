"""Diagnostics, the device configuration and the log file: every self-test passes, fails and skips for a reason.

Devices are the simulator's reader (``sim:``) and small fake adapters
registered for the test (``fakereader:``, ``fakescan:``, ``fakeprint:``), so
that each failure a real device can show is reproduced in-process.
"""

from __future__ import annotations

import json
import logging
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

from emv.capk import Capk, CapkStore, checksum_of
from terminal import devices as devices_mod
from terminal import diagnostics, registry
from terminal.apdu_trace import ApduTrace
from terminal.bootstrap import load_configuration, open_terminal
from terminal.devices import (
    DEVICES_FILE,
    DeviceConfigError,
    LazyReader,
    load_devices,
    set_device,
    validate_url,
)
from terminal.diagnostics import TEST_NAMES, DiagResult, export_bundle, list_devices, render_test_page, run_diagnostics
from terminal.host import HostNoAnswer, HostUnreachable
from terminal.keystore import MASTER_KEY_ENV
from terminal.logfile import LOG_FILE, PanMaskingFilter, command_logging, log_tail
from terminal.offline import PaymentRefused
from terminal.ports import (
    CancelToken,
    CardSession,
    CollisionDetected,
    DeviceError,
    DeviceGone,
    NoCardError,
    NoCodeError,
    PrinterError,
    PrinterStatus,
    ScannedCode,
)
from tests.integration.conftest import FixedClock, profile_pans

PANS = profile_pans()


# ----------------------------------------------------------------------------- fake adapters


class FakeReader:
    """``fakereader:nocard`` / ``collision`` / ``gone``: a reader whose wait fails that way."""

    kind = "reader"

    def __init__(self, url: str) -> None:
        self.url = url

    @classmethod
    def open(cls, url: str) -> FakeReader:
        if url.endswith("unplugged"):
            raise DeviceError(f"{url}: no such reader")
        return cls(url)

    def wait_for_card(self, timeout: float | None = None, cancel: CancelToken | None = None) -> CardSession:
        mode = self.url.partition(":")[2]
        if mode == "collision":
            raise CollisionDetected("two cards")
        if mode == "gone":
            raise DeviceGone("reader unplugged")
        raise NoCardError("timeout")

    def close(self) -> None:
        pass


class FakeScanner:
    """``fakescan:CODE`` reads CODE (``fakescan:pan``: a PAN); ``fakescan:`` times out; ``fakescan:!`` breaks."""

    kind = "scanner"
    closed: ClassVar[list[str]] = []

    def __init__(self, url: str) -> None:
        self.url = url

    @classmethod
    def open(cls, url: str) -> FakeScanner:
        return cls(url)

    def read(self, timeout: float | None = None, cancel: CancelToken | None = None) -> ScannedCode:
        text = self.url.partition(":")[2]
        if not text:
            raise NoCodeError("timeout")
        if text == "!":
            raise RuntimeError("serial port read failed")
        if text == "pan":
            text = PANS["visa-qvsdc-online"]
        return ScannedCode(text, "QRCODE", text.encode(), self.url)

    def close(self) -> None:
        FakeScanner.closed.append(self.url)


class FakePrinter:
    """``fakeprint:STATUS`` reports STATUS; ``fakeprint:refuse`` reports ready and refuses jobs (cover open)."""

    kind = "printer"
    jobs: ClassVar[list[bytes]] = []

    def __init__(self, url: str) -> None:
        self.url = url

    @classmethod
    def open(cls, url: str) -> FakePrinter:
        return cls(url)

    def status(self) -> PrinterStatus:
        mode = self.url.partition(":")[2]
        if mode == "broken":
            raise ValueError("garbled status byte")
        if mode == "refuse":
            return PrinterStatus.READY
        return PrinterStatus(mode)

    def print_job(self, data: bytes) -> None:
        if self.url.endswith("refuse"):
            raise PrinterError("cover open", PrinterStatus.COVER_OPEN)
        FakePrinter.jobs.append(data)

    def close(self) -> None:
        pass


FAKES: dict[str, Any] = {"fakereader": FakeReader, "fakescan": FakeScanner, "fakeprint": FakePrinter}


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Register the fake adapters next to the installed ones."""
    real_adapter, real_schemes = registry.adapter_for, registry.schemes
    monkeypatch.setattr(registry, "adapter_for", lambda s: FAKES[s] if s in FAKES else real_adapter(s))
    monkeypatch.setattr(registry, "schemes", lambda: real_schemes() | {s: f"tests:{s}" for s in FAKES})
    FakePrinter.jobs.clear()
    FakeScanner.closed.clear()
    yield


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(MASTER_KEY_ENV, raising=False)
    return tmp_path / "terminal"


def by_name(results: list[DiagResult]) -> dict[str, DiagResult]:
    return {r.name: r for r in results}


def run(data_dir: Path, **kw: Any) -> dict[str, DiagResult]:
    kw.setdefault("host", "memory")
    results = run_diagnostics(data_dir, **kw)
    assert [r.name for r in results] == list(TEST_NAMES)
    for r in results:
        assert r.reason, r
        text = json.dumps(r.to_json())
        for pan in PANS.values():
            assert pan not in text, (r.name, text)
    return by_name(results)


def make_sale(data_dir: Path, card: str = "visa-qvsdc-online", amount: int = 2000, **kw: Any) -> None:
    terminal = open_terminal(data_dir, reader_url=f"sim:card={card}", host=kw.pop("host", "memory"), **kw)
    try:
        terminal.sale(amount, 978)
    finally:
        terminal.store.close()


# ----------------------------------------------------------------------------- device configuration


def test_default_devices_without_a_file(data_dir: Path) -> None:
    config = load_devices(data_dir)
    assert (config.reader, config.scanner, config.printer) == ("sim:card=visa-qvsdc-online", None, None)
    assert config.to_json()["reader"] == {"url": "sim:card=visa-qvsdc-online", "source": "default"}


def test_set_none_and_default(data_dir: Path, fakes: None) -> None:
    config = set_device(data_dir, "reader", "sim:card=mc-cda-online")
    assert config.reader == "sim:card=mc-cda-online" and config.sources["reader"] == DEVICES_FILE
    config = set_device(data_dir, "printer", "fakeprint:ready")
    assert json.loads((data_dir / DEVICES_FILE).read_text()) == {
        "reader": "sim:card=mc-cda-online",
        "printer": "fakeprint:ready",
    }
    assert set_device(data_dir, "reader", "none").reader is None
    assert json.loads((data_dir / DEVICES_FILE).read_text())["reader"] is None
    config = set_device(data_dir, "reader", "default")
    assert config.reader == "sim:card=visa-qvsdc-online" and config.sources["reader"] == "default"
    assert config.printer == "fakeprint:ready"
    assert not list(data_dir.glob(".devices-*"))  # no temporary file left behind


@pytest.mark.parametrize(
    ("kind", "url", "words"),
    [
        ("reader", "nosuch:thing", "no driver for scheme 'nosuch'"),
        ("reader", "no-scheme-here", "has no scheme"),
        ("scanner", "sim:card=visa-qvsdc-online", "names a reader, not a scanner"),
        ("printer", "fakescan:x", "names a scanner, not a printer"),
        ("reader", "fakeprint:ready", "names a printer, not a reader"),
    ],
)
def test_urls_are_checked_against_the_registry(data_dir: Path, fakes: None, kind: str, url: str, words: str) -> None:
    with pytest.raises(DeviceConfigError, match=words):
        set_device(data_dir, kind, url)
    assert not (data_dir / DEVICES_FILE).exists()


def test_unknown_kind_is_refused(data_dir: Path) -> None:
    with pytest.raises(DeviceConfigError, match="unknown device kind 'modem'"):
        validate_url("modem", "sim:card=x")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", "cannot be read"),
        ("[1, 2]", "expected a JSON object"),
        ('{"modem": "x:"}', "unknown device kind 'modem'"),
        ('{"reader": 5}', "expected a device URL or null"),
    ],
)
def test_a_damaged_devices_file_is_named(data_dir: Path, content: str, words: str) -> None:
    data_dir.mkdir(parents=True)
    (data_dir / DEVICES_FILE).write_text(content)
    with pytest.raises(DeviceConfigError, match=words) as raised:
        load_devices(data_dir)
    assert DEVICES_FILE in str(raised.value)


def test_shipped_devices_key_is_the_default(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When terminal.json has a ``devices`` object, it is the default (and the EMV configuration ignores it)."""
    from terminal.settings import load_config, shipped_document

    doc = shipped_document() | {"devices": {"reader": "sim:card=mc-cda-online", "printer": None}}
    monkeypatch.setattr(devices_mod, "shipped_document", lambda: doc)
    assert load_devices(data_dir).reader == "sim:card=mc-cda-online"
    assert load_config(doc).terminal_id == "TERM0001"


# ----------------------------------------------------------------------------- the reader of open_terminal


def test_open_terminal_uses_the_configured_reader_lazily(data_dir: Path, fakes: None) -> None:
    set_device(data_dir, "reader", "sim:card=mc-cda-online")
    terminal = open_terminal(data_dir, host="memory")
    try:
        reader = terminal.reader
        assert isinstance(reader, LazyReader) and reader.url == "sim:card=mc-cda-online" and not reader.opened
        result = terminal.sale(1000, 978)
        assert result.approved and result.scheme == "mastercard" and reader.opened
    finally:
        terminal.store.close()


def test_open_terminal_reader_none_and_explicit(data_dir: Path) -> None:
    set_device(data_dir, "reader", "none")
    terminal = open_terminal(data_dir, host="memory")
    terminal.store.close()
    assert terminal.reader is None
    terminal = open_terminal(data_dir, host="memory", reader_url="sim:card=visa-qvsdc-online")
    terminal.store.close()
    assert terminal.reader is not None and not isinstance(terminal.reader, LazyReader)


def test_an_unplugged_configured_reader_does_not_stop_other_work(data_dir: Path, fakes: None) -> None:
    set_device(data_dir, "reader", "fakereader:unplugged")
    terminal = open_terminal(data_dir, host="memory")  # opens: the reader is not needed yet
    try:
        assert terminal.offline_status().queued == 0
        with pytest.raises(PaymentRefused, match="no such reader") as refused:
            terminal.sale(1000, 978)
        assert refused.value.reason == "reader_error"
    finally:
        terminal.store.close()


def test_lazy_reader_opens_again_after_the_reader_went_away() -> None:
    opened: list[str] = []

    def opener(url: str) -> Any:
        opened.append(url)
        return FakeReader(url)

    reader = LazyReader("fakereader:gone", opener)
    assert opened == []
    for _ in range(2):
        with pytest.raises(DeviceGone):
            reader.wait_for_card(0.1)
        assert not reader.opened
    assert opened == ["fakereader:gone", "fakereader:gone"]


# ----------------------------------------------------------------------------- the self-tests


def test_a_fresh_terminal_with_the_simulator(data_dir: Path) -> None:
    results = run(data_dir)
    reader = results["reader"]
    assert reader.passed is True and "3B80800101" in reader.reason and "A0000000031010" in reader.reason
    apps = reader.details["applications"]
    assert apps == [{"aid": "A0000000031010", "label": "VISA CREDIT", "priority": 1, "kernel_id": 3, "supported": True}]
    assert reader.details["ppse_sw"] == "9000" and reader.details["trace"]
    assert results["scanner"].passed is None and "no scanner configured" in results["scanner"].reason
    assert results["printer"].passed is None and "no printer configured" in results["printer"].reason
    # the in-process host is tested like any link: it answers the echo
    assert results["host_link"].passed is True and "in-process host" in results["host_link"].reason
    assert results["saf_queue"].passed is True and "no payment" in results["saf_queue"].reason
    assert results["configuration"].passed is True and "shipped configuration" in results["configuration"].reason
    assert results["keys"].passed is None and "no keys yet" in results["keys"].reason
    assert not data_dir.exists() or not (data_dir / "keys").exists()  # diagnostics made no keys
    assert not (data_dir / "memory-host").exists()  # nor a host database
    assert diagnostics.summary(list(results.values()))["passed"] is True


def test_the_reader_trace_is_masked_and_collected(data_dir: Path) -> None:
    trace = ApduTrace()
    run(data_dir, reader_url="sim:card=mc-cda-online", trace=trace)
    assert len(trace) >= 1
    text = "\n".join(trace.lines())
    assert "00A404000E 325041592E5359532E4444463031 00" in text  # SELECT 2PAY.SYS.DDF01


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("fakereader:nocard", "no card was presented within 0.2 s"),
        ("fakereader:collision", "more than one card"),
        ("fakereader:gone", "the reader failed while waiting: reader unplugged"),
        ("fakereader:unplugged", "cannot be opened"),
        ("nosuch:", "cannot be opened: no driver for scheme 'nosuch'"),
        ("sim:card=no-such-card", "unknown card profile"),
    ],
)
def test_reader_failures_have_reasons(data_dir: Path, fakes: None, url: str, words: str) -> None:
    result = run(data_dir, reader_url=url, card_timeout=0.2)["reader"]
    assert result.passed is False and words in result.reason, result.reason


def test_reader_none_skips(data_dir: Path) -> None:
    result = run(data_dir, reader_url="none")["reader"]
    assert result.passed is None


def test_scanner(data_dir: Path, fakes: None) -> None:
    prompts: list[str] = []
    result = run(data_dir, scanner_url="fakescan:https://pay.example/q?id=7", prompt=prompts.append)["scanner"]
    assert prompts == [
        "present a card to sim:card=visa-qvsdc-online (within 5 s)",
        "scan a code with fakescan:https://pay.example/q?id=7 (within 10 s)",
    ]
    assert result.passed is True and "QRCODE" in result.reason and result.details["length"] == 26
    assert FakeScanner.closed == ["fakescan:https://pay.example/q?id=7"]
    timeout = run(data_dir, scanner_url="fakescan:", scan_timeout=0.1)["scanner"]
    assert timeout.passed is False and "no code was scanned within 0.1 s" in timeout.reason
    broken = run(data_dir, scanner_url="fakescan:!")["scanner"]
    assert broken.passed is False and "serial port read failed" in broken.reason


def test_a_scanned_pan_is_masked(data_dir: Path, fakes: None) -> None:
    result = run(data_dir, scanner_url="fakescan:pan")["scanner"]
    assert result.passed is True and result.details["text"] == "476173******0010"


def test_printer_ready_prints_a_test_page(data_dir: Path, fakes: None) -> None:
    set_device(data_dir, "printer", "fakeprint:ready")
    result = run(data_dir)["printer"]
    assert result.passed is True and "test page printed" in result.reason and result.details["status"] == "ready"
    (job,) = FakePrinter.jobs
    assert job.startswith(b"\x1b@") and b"TEST PAGE" in job and job.endswith(b"\x1dV\x42\x00")
    assert run(data_dir, print_test_page=False)["printer"].details["test_page"] is False
    assert len(FakePrinter.jobs) == 1


@pytest.mark.parametrize("status", ["paper_out", "cover_open", "offline"])
def test_an_unhealthy_printer_fails_without_printing(data_dir: Path, fakes: None, status: str) -> None:
    result = run(data_dir, printer_url=f"fakeprint:{status}")["printer"]
    assert result.passed is False and status.replace("_", " ") in result.reason and FakePrinter.jobs == []


def test_printer_refusing_the_page_or_garbling_its_status(data_dir: Path, fakes: None) -> None:
    refused = run(data_dir, printer_url="fakeprint:refuse")["printer"]
    assert refused.passed is False and "cover_open" in refused.reason and refused.details["status"] == "cover_open"
    broken = run(data_dir, printer_url="fakeprint:broken")["printer"]
    assert broken.passed is False and "garbled status byte" in broken.reason
    low = run(data_dir, printer_url="fakeprint:paper_low")["printer"]
    assert low.passed is True and low.warnings == ["paper low"]


def test_the_test_page_cannot_carry_printer_commands() -> None:
    page = render_test_page(printer_url="escpos:net:x\x1b@\x1dV\x00", status=None, terminal_id="T\x1b1")
    body = page[page.index(b"TEST PAGE") :]
    assert b"\x1b@" not in body and b"\x1dV\x00" not in body


class EchoLink:
    """A host link with an echo, as host_link's client has."""

    url = "https://host.example:8443"
    terminal_id = "TERM0001"

    def __init__(self, error: Exception | None = None, seconds: float = 0.012) -> None:
        self.error = error
        self.seconds = seconds
        self.last_error: str | None = None
        self.forced: list[bool] = []

    def echo(self, *, force: bool = False) -> float:
        self.forced.append(force)
        if self.error is not None:
            self.last_error = str(self.error)
            raise self.error
        return self.seconds


def test_host_link(data_dir: Path) -> None:
    link = EchoLink()
    result = run(data_dir, host=link)["host_link"]
    assert result.passed is True and result.details["round_trip_ms"] == 12.0 and link.forced == [True]
    slow = run(data_dir, host=EchoLink(seconds=3.5))["host_link"]
    assert slow.passed is True and "slow link" in slow.warnings[0]
    down = run(data_dir, host=EchoLink(HostUnreachable("connection refused")))["host_link"]
    assert down.passed is False and "host unreachable: connection refused" in down.reason
    assert down.details["last_error"] == "connection refused"
    lost = run(data_dir, host=EchoLink(HostNoAnswer("read timeout")))["host_link"]
    assert lost.passed is False and "no answer" in lost.reason
    none = run(data_dir, host="none")["host_link"]
    assert none.passed is False and "no host link" in none.reason
    assert run(data_dir, host=object())["host_link"].passed is None
    bad = run(data_dir, host="ftp://nowhere")["host_link"]
    assert bad.passed is False and "cannot be used" in bad.reason


def test_keys_show_check_values_never_keys(data_dir: Path) -> None:
    make_sale(data_dir)
    result = run(data_dir)["keys"]
    assert result.passed is True
    assert sorted(result.details["key_check_values"]) == [
        "data:aes-256-gcm",
        "data:sm4-gcm",
        "mac:journal",
        "mac:pan-token",
        "master",
    ]
    assert [(k["cipher"], k["in_use"]) for k in result.details["data_keys"]] == [
        ("aes-256-gcm", True),
        ("sm4-gcm", False),
    ]
    assert result.details["sealed_values"] == {"aes-256-gcm": 1}
    master = (data_dir / "keys" / "master.key").read_text().strip().lower()
    assert master not in json.dumps(result.to_json()).lower()


def test_keys_with_the_wrong_master_key_fail(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_sale(data_dir)
    monkeypatch.setenv(MASTER_KEY_ENV, "11" * 32)
    results = run(data_dir)
    assert results["keys"].passed is False and "master key" in results["keys"].reason
    assert results["saf_queue"].passed is False and "cannot be opened" in results["saf_queue"].reason


def test_saf_queue_counts_and_passes(data_dir: Path) -> None:
    make_sale(data_dir, card="visa-qvsdc-offline", amount=1234)
    result = run(data_dir)["saf_queue"]
    assert result.passed is True and result.details["queued"] == 1 and "1 payment(s) queued" in result.reason


def test_saf_queue_older_than_the_offline_limit_fails(data_dir: Path) -> None:
    clock = FixedClock(datetime.now(UTC).replace(microsecond=0) - timedelta(days=4))
    make_sale(data_dir, card="visa-qvsdc-offline", amount=1234, clock=clock)
    result = run(data_dir)["saf_queue"]
    assert result.passed is False and "over the 72.0 h offline limit" in result.reason


def test_saf_decline_after_forwarding_fails_until_settled(data_dir: Path) -> None:
    make_sale(data_dir, amount=1251, host="none")  # deferred; the host declines 12.51 (51) when it gets it
    terminal = open_terminal(data_dir, host="memory")
    try:
        assert terminal.forward_now().declined == 1
    finally:
        terminal.store.close()
    result = run(data_dir)["saf_queue"]
    assert result.passed is False and "declined or rejected after forwarding" in result.reason
    terminal = open_terminal(data_dir, host="memory")
    try:
        terminal.settle()
    finally:
        terminal.store.close()
    settled = run(data_dir)["saf_queue"]
    assert settled.passed is True and "settled batches" in settled.warnings[0]


def _capk(rid: str, index: int, expiry: date | None, *, tamper: bool = False) -> Capk:
    modulus, exponent = bytes([0xC1] * 64), b"\x03"
    checksum = checksum_of(bytes.fromhex(rid), index, modulus, exponent)
    if tamper:
        checksum = bytes(20)
    return Capk(bytes.fromhex(rid), index, modulus, exponent, checksum, expiry, "Visa", "test")


def test_configuration_checks_every_ca_key(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, settings, _ = load_configuration(data_dir)
    today = date(2030, 1, 1)
    keys = [
        _capk("A000000003", 0x50, date(2030, 2, 1)),
        _capk("A000000003", 0x51, date(2029, 1, 1)),
        _capk("A000000004", 0x52, None),
    ]
    monkeypatch.setattr(
        diagnostics, "load_configuration", lambda d: (replace(config, capks=CapkStore(keys)), settings, 7)
    )
    good = run(data_dir, today=today)["configuration"]
    assert good.passed is True and "parameters version 7" in good.reason
    assert [k["checksum_ok"] for k in good.details["capks"]] == [True, True, True]
    assert any("expires on 2030-02-01" in w for w in good.warnings)
    assert any("expired on 2029-01-01" in w for w in good.warnings)
    assert all("modulus" not in key for key in good.details["capks"])
    monkeypatch.setattr(
        diagnostics,
        "load_configuration",
        lambda d: (
            replace(config, capks=CapkStore([*keys, _capk("A000000004", 0x53, None, tamper=True)])),
            settings,
            7,
        ),
    )
    bad = run(data_dir, today=today)["configuration"]
    assert bad.passed is False and "A000000004 index 53: checksum does not match" in bad.reason
    monkeypatch.setattr(
        diagnostics, "load_configuration", lambda d: (replace(config, capks=CapkStore()), settings, None)
    )
    assert "no CA public key" in run(data_dir)["configuration"].reason


def test_configuration_names_shipped_file_checksums(data_dir: Path) -> None:
    result = run(data_dir)["configuration"]
    files = result.details["files"]
    assert set(files) == {
        "terminal/data/terminal.json",
        "terminal/data/capks-public.json",
        "terminal/data/capks-simulator.json",
    }
    assert all(isinstance(v, str) and len(v) == 64 for v in files.values())


def test_damaged_parameters_fail_the_configuration_test(data_dir: Path) -> None:
    (data_dir / "parameters").mkdir(parents=True)
    (data_dir / "parameters" / "current.json").write_text('{"version": 2, "dir": "v0000002"}')
    result = run(data_dir)["configuration"]
    assert result.passed is False and "cannot be loaded" in result.reason and "rollback" in result.reason


def test_a_damaged_device_file_fails_devices_and_configuration_not_the_rest(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    (data_dir / DEVICES_FILE).write_text("{oops")
    results = run(data_dir)
    assert results["reader"].passed is False and "device configuration cannot be read" in results["reader"].reason
    assert results["configuration"].passed is False and "device configuration" in results["configuration"].reason
    assert results["saf_queue"].passed is True


def test_nothing_escapes(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("something nobody expected, card 4761739001010010")

    monkeypatch.setattr(diagnostics, "_saf_test", boom)
    result = run(data_dir)["saf_queue"]
    assert result.passed is False and "unexpected error: RuntimeError" in result.reason
    assert "476173******0010" in result.reason


def test_only_some_tests(data_dir: Path) -> None:
    results = run(data_dir, tests=["configuration"])
    assert [r.name for r in results.values() if r.passed is not None] == ["configuration"]
    assert results["reader"].reason == "not run"
    with pytest.raises(ValueError, match="unknown diagnostic"):
        run_diagnostics(data_dir, tests=["modem"])


def test_a_broken_prompt_does_not_fail_a_test(data_dir: Path) -> None:
    def prompt(message: str) -> None:
        raise BrokenPipeError("stdout closed")

    assert run(data_dir, prompt=prompt)["reader"].passed is True


def test_cancel_stops_the_card_wait(data_dir: Path) -> None:
    token = CancelToken()
    token.cancel()
    result = run(data_dir, cancel=token)["reader"]
    assert result.passed is False and "cancelled" in result.reason


# ----------------------------------------------------------------------------- posterm devices


def test_list_devices(data_dir: Path, fakes: None) -> None:
    set_device(data_dir, "printer", "fakeprint:paper_out")
    set_device(data_dir, "scanner", "fakescan:x")
    listing = list_devices(data_dir)
    configured = listing["configured"]
    assert configured["reader"] == {
        "url": "sim:card=visa-qvsdc-online",
        "source": "default",
        "status": "ok",
        "reason": "opened",
    }
    assert configured["printer"]["status"] == "error" and "paper out" in configured["printer"]["reason"]
    assert configured["scanner"]["status"] == "ok" and configured["scanner"]["source"] == DEVICES_FILE
    assert "sim:card=visa-qvsdc-online" not in listing["discovered"]["reader"]
    assert listing["drivers"]["sim"]["kind"] == "reader"
    with_sim = list_devices(data_dir, include_sim=True, probe=False)
    assert "sim:card=visa-qvsdc-online" in with_sim["discovered"]["reader"]
    assert with_sim["configured"]["reader"]["status"] == "unknown"


def test_list_devices_says_why_a_device_does_not_open(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    (data_dir / DEVICES_FILE).write_text('{"reader": "sim:card=no-such-card"}')
    entry = list_devices(data_dir)["configured"]["reader"]
    assert entry["status"] == "error" and "unknown card profile" in entry["reason"]


# ----------------------------------------------------------------------------- the log file


def test_log_records_are_masked(tmp_path: Path) -> None:
    logger = logging.getLogger("tests.diagnostics.masking")
    with command_logging(tmp_path) as handler:
        assert handler is not None
        logger.info("card %s tapped", PANS["visa-qvsdc-offline"])
        try:
            raise ValueError(f"bad card {PANS['mc-cda-online']}")
        except ValueError:
            logger.exception("failed")
    assert handler not in logging.getLogger().handlers
    text = (tmp_path / LOG_FILE).read_text()
    assert "476173******0028" in text and "541333******0012" in text and "Traceback" in text
    for pan in PANS.values():
        assert pan not in text
    assert PANS["visa-qvsdc-offline"] not in log_tail(tmp_path)


def test_the_filter_masks_what_other_handlers_see() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "pan %s", ("4761739001010010",), None)
    assert PanMaskingFilter().filter(record)
    assert record.getMessage() == "pan 476173******0010"


def test_log_tail_reads_rotated_files_and_keeps_whole_lines(tmp_path: Path) -> None:
    log = tmp_path / LOG_FILE
    log.parent.mkdir(parents=True)
    log.with_name("posterm.log.1").write_text("older line 1\nolder line 2\n")
    log.write_text("newest line\n")
    assert log_tail(tmp_path) == "older line 1\nolder line 2\nnewest line\n"
    assert log_tail(tmp_path, max_bytes=20) == "newest line\n"
    assert log_tail(tmp_path / "nothing") == ""


def test_no_log_file_without_a_writable_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with command_logging(blocker / "sub") as handler:  # cannot make a directory under a file
        assert handler is None


# ----------------------------------------------------------------------------- the support bundle


def _bcd(pan: str) -> bytes:
    digits = pan + ("F" if len(pan) % 2 else "")
    return bytes.fromhex(digits)


def assert_no_pan(data: bytes, where: str) -> None:
    for name, pan in PANS.items():
        assert pan.encode() not in data, (where, name, "ASCII")
        assert _bcd(pan) not in data, (where, name, "BCD")
        assert pan.encode("utf-16-le") not in data, (where, name, "UTF-16")


def test_support_bundle(data_dir: Path, tmp_path: Path) -> None:
    make_sale(data_dir, card="visa-qvsdc-offline", amount=1234)
    with command_logging(data_dir):
        logging.getLogger("tests.bundle").info("a payment with %s", PANS["visa-qvsdc-offline"])
    out = tmp_path / "bundle.zip"
    info = export_bundle(data_dir, out, host="memory", reader_url="sim:card=visa-qvsdc-offline")
    assert info.path == out and out.exists()
    raw = out.read_bytes()
    assert_no_pan(raw, "zip")
    with zipfile.ZipFile(out) as bundle:
        names = set(bundle.namelist())
        assert names == {
            "manifest.json",
            "versions.json",
            "configuration.json",
            "devices.json",
            "diagnostics.json",
            "apdu-trace.txt",
            "apdu-trace.json",
            "saf.json",
            "logs/posterm.log",
        }
        contents = {name: bundle.read(name) for name in names}
    for name, data in contents.items():
        assert_no_pan(data, name)
    master = (data_dir / "keys" / "master.key").read_text().strip().lower()
    assert all(master.encode() not in data.lower() for data in contents.values())
    blocked = load_configuration(data_dir)[0].exception_file.to_entries()  # hashes of PANs: brute-forceable
    assert blocked and all(entry.encode() not in data for entry in blocked for data in contents.values())
    assert b"476173******0028" in contents["logs/posterm.log"]
    assert b"00A404000E 325041592E5359532E4444463031 00" in contents["apdu-trace.txt"]
    config = json.loads(contents["configuration.json"])
    assert config["parameters_version"] == "shipped" and config["capks"] and '"modulus":' not in json.dumps(config)
    assert config["terminal"]["exception_file"] == {"entries": 1}  # a count, not the PAN hashes
    versions = json.loads(contents["versions.json"])
    assert versions["python"] == sys.version.split()[0] and "cryptography" in versions["packages"]
    saf = json.loads(contents["saf.json"])
    assert saf["name"] == "saf_queue" and saf["details"]["queued"] == 1
    diag = json.loads(contents["diagnostics.json"])
    assert [t["name"] for t in diag["tests"]] == list(TEST_NAMES)
    assert diag["tests"][1]["reason"].startswith("not run for the support bundle")


def test_support_bundle_default_path(data_dir: Path) -> None:
    info = export_bundle(data_dir, host="memory")
    assert info.path.parent == data_dir / "support" and info.path.name.startswith("posterm-support-")
    assert zipfile.is_zipfile(info.path)


def test_results_json_and_text(data_dir: Path, fakes: None) -> None:
    results = run_diagnostics(data_dir, host="none", printer_url="fakeprint:paper_low")
    obj = diagnostics.results_json(results, at="now")
    assert obj["passed"] is False and obj["failed"] == ["host_link"] and obj["at"] == "now"
    assert obj["counts"] == {"pass": 4, "fail": 1, "skip": 3}  # the journal too: no payment was made here
    text = diagnostics.text_report(results)
    assert "FAIL  host_link" in text and "warning: paper low" in text and "FAILED: host_link" in text
