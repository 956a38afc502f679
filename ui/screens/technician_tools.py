"""The technician's tools: devices, host echo and the offline queue, parameters, the log, the support bundle.

Each tool reads and acts through the terminal (its facade, its diagnostics,
its device configuration, :mod:`terminal.params`) on the worker, never on
the UI thread, and says what happened in words.

- Devices: what is configured for each kind and whether it answers, what is
  attached now (discovery), a choice among them, a typed URL (network
  printers are not discovered), or none.  A choice is written to the device
  configuration (``posterm devices set``) and taken by the running terminal
  at once (its reader and printer are opened again on their next use).
- Host: an echo with its round-trip time; the offline queue (what waits,
  since when, the last error) and "Send now".
- Parameters: the version in force and the one kept; download, and roll back
  (asked twice: a rollback changes what every payment is checked against).
- Log: the tail of the terminal's log, card numbers masked.
- Support bundle: written to a folder chosen among the removable media
  mounted now (``/media``, ``/run/media``, ``/mnt``), or typed.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from terminal.devices import KINDS, LazyPrinter, LazyReader, set_device
from terminal.diag_bundle import default_bundle_path
from terminal.diagnostics import export_bundle, list_devices, run_diagnostics
from terminal.logfile import log_tail
from terminal.params import ParameterState, download_parameters, parameter_status, reload_configuration
from terminal.params import rollback_parameters as rollback_to_previous
from ui.screens.technician import touched
from ui.session import Session
from ui.viewmodel import ViewModel

__all__ = [
    "LOG_BYTES",
    "REMOVABLE_ROOTS",
    "TechBundle",
    "TechDevices",
    "TechHost",
    "TechLog",
    "TechParams",
    "removable_folders",
]

#: Where removable media are mounted (udisks: /media/USER/LABEL or /run/media/USER/LABEL; by hand: /mnt/X).
REMOVABLE_ROOTS: Final = ("/media", "/run/media", "/mnt")
#: How much of the log's end the log screen shows.
LOG_BYTES: Final = 8 * 1024
_KIND_LABELS: Final = {"reader": "Card reader", "scanner": "Code scanner", "printer": "Receipt printer"}


class _Tool(ViewModel):
    """What every tool shares: its session, a message line, busy while the worker works, and Back."""

    busy: bool = False
    message: str = ""
    back_label: str = ""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.sampled = False  # a screenshot's sample is shown as it is, not read again when shown
        session.tr.listen(lambda _: self.refresh())

    def refresh(self) -> None:
        self.update(back_label=self.session.tr("Back"))

    def shown(self) -> None:
        if not self.sampled:
            self.read_again()

    def read_again(self) -> None:
        """What the tool reads when it is shown (nothing by default)."""

    def _work(self, call: Any, done: Any, what: str) -> None:
        """``call(terminal)`` on the worker; ``done(result)`` on the UI thread; a failure said in the message line."""
        touched(self.session)
        tr = self.session.tr
        self.update(busy=True, message=tr("Working..."))

        def ok(result: Any) -> None:
            self.update(busy=False, message="")
            done(result)

        def failed(exc: BaseException) -> None:
            self.update(
                busy=False, message=tr("{what} failed: {reason}", what=tr(what), reason=self.session.describe(exc))
            )

        self.session.run(call, ok, failed, name=what)

    def back(self) -> None:
        self.session.navigator.go("technician")


class TechDevices(_Tool):
    """The configured reader, scanner and printer, what is attached, and the choice among them."""

    screen = "tech_devices"
    title: str = ""
    kind: str = "reader"
    kinds: tuple[tuple[str, str], ...] = ()
    configured: str = ""
    status_text: str = ""
    attached: tuple[str, ...] = ()
    typed: str = ""
    use_label: str = ""
    none_label: str = ""
    refresh_label: str = ""

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.listing: dict[str, Any] = {}
        self.refresh()

    def refresh(self) -> None:
        super().refresh()
        tr = self.session.tr
        entry = self.listing.get("configured", {}).get(self.kind, {})
        url = entry.get("url")
        status = {"ok": tr("answers"), "error": tr("does not answer"), "none": tr("none configured")}.get(
            entry.get("status", ""), ""
        )
        self.update(
            title=tr("Devices"),
            kinds=tuple((kind, tr(_KIND_LABELS[kind])) for kind in KINDS),
            configured=url or tr("none"),
            status_text=f"{status}: {entry.get('reason', '')}" if status and entry.get("reason") else status,
            attached=tuple(self.listing.get("discovered", {}).get(self.kind, [])),
            use_label=tr("Use this URL"),
            none_label=tr("No device"),
            refresh_label=tr("Look again"),
        )

    def read_again(self) -> None:
        self.look()

    def look(self) -> None:
        """What is configured (each probed) and what is attached now."""
        reader = self.session.terminal.reader
        include_sim = str(getattr(reader, "url", "")).startswith("sim:")

        def done(listing: dict[str, Any]) -> None:
            self.listing = listing
            self.refresh()

        self._work(lambda _t: list_devices(self.session.data_dir, include_sim=include_sim), done, "Looking for devices")

    def show_kind(self, kind: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown device kind {kind!r}")
        self.update(kind=kind, typed="")
        self.refresh()

    def type_url(self, text: str) -> None:
        self.update(typed=text.strip())

    def choose(self, url: str | None) -> None:
        """Use ``url`` (None: no device) for the kind shown: configured, and in force at once."""
        kind = self.kind
        data_dir = self.session.data_dir
        tr = self.session.tr

        def apply(terminal: Any) -> str | None:
            config = set_device(data_dir, kind, url)
            chosen = config.url(kind)
            if kind == "reader":
                old, terminal.reader = terminal.reader, LazyReader(chosen) if chosen else None
            elif kind == "printer":
                old, terminal.printer = terminal.printer, LazyPrinter(chosen) if chosen else None
            else:
                old = None  # the scanner is opened by whoever scans, from the configuration
            close = getattr(old, "close", None)
            if callable(close):
                close()
            return chosen

        def done(chosen: str | None) -> None:
            self.update(typed="")
            self.look()
            self.update(message=tr("{kind}: {url}", kind=tr(_KIND_LABELS[kind]), url=chosen or tr("none")))

        self._work(apply, done, "Setting the device")

    def use_typed(self) -> None:
        if self.typed:
            self.choose(self.typed)

    def sample(self) -> None:
        self.sampled = True
        self.listing = {
            "configured": {"reader": {"url": "pcsc:Virtual PCD 00 00", "status": "ok", "reason": "opened"}},
            "discovered": {"reader": ["pcsc:Virtual PCD 00 00", "pcsc:Virtual PCD 00 01", "nfc:usb:001:004"]},
        }
        self.update(kind="reader")
        self.refresh()


class TechHost(_Tool):
    """The host link's echo and round trip; the offline (store-and-forward) queue and "Send now"."""

    screen = "tech_host"
    title: str = ""
    echo_text: str = ""
    echo_passed: bool | None = None
    round_trip_text: str = ""
    queue_lines: tuple[str, ...] = ()
    echo_label: str = ""
    send_label: str = ""
    can_send: bool = False

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.refresh()

    def refresh(self) -> None:
        super().refresh()
        tr = self.session.tr
        self.update(title=tr("Host and offline queue"), echo_label=tr("Echo"), send_label=tr("Send now"))

    def read_again(self) -> None:
        self.read_queue()

    def echo(self) -> None:
        """An echo to the host, with its round-trip time (the diagnostics' host test)."""
        tr = self.session.tr

        def call(terminal: Any) -> Any:
            results = run_diagnostics(self.session.data_dir, host=terminal.host, tests=["host_link"])
            return next(r for r in results if r.name == "host_link")

        def done(result: Any) -> None:
            trip = result.details.get("round_trip_ms")
            self.update(
                echo_passed=result.passed,
                echo_text=result.reason,
                round_trip_text=tr("Round trip: {ms} ms", ms=trip) if trip is not None else "",
            )

        self._work(call, done, "Echo")

    def read_queue(self) -> None:
        def done(status: Any) -> None:
            self._show_queue(status)

        self._work(lambda terminal: terminal.offline_status(), done, "Reading the offline queue")

    def _show_queue(self, status: Any) -> None:
        tr = self.session.tr
        lines = [tr("Waiting to be sent: {n}", n=status.queued)]
        for code, (count, amount) in sorted(status.totals.items()):
            lines.append(f"  {count} × {tr.amount(amount, code)}")
        if status.oldest_at:
            lines.append(tr("Oldest since {when}", when=_when(status.oldest_at, tr)))
        if status.reversals_queued:
            lines.append(tr("Reversals waiting: {n}", n=status.reversals_queued))
        if status.last_attempt_at:
            lines.append(tr("Last attempt {when}", when=_when(status.last_attempt_at, tr)))
        if status.last_error:
            lines.append(tr("Last error: {error}", error=status.last_error))
        if status.declined_after_forwarding:
            lines.append(tr("Declined after sending: {n}", n=len(status.declined_after_forwarding)))
        self.update(queue_lines=tuple(lines), can_send=status.queued > 0 or status.reversals_queued > 0)

    def send_now(self) -> None:
        """Forward what waits, now (the backoff is not waited for)."""
        tr = self.session.tr

        def call(terminal: Any) -> tuple[Any, Any]:
            return terminal.forward_now(), terminal.offline_status()

        def done(out: tuple[Any, Any]) -> None:
            report, status = out
            self._show_queue(status)
            text = tr(
                "Sent: {accepted} accepted, {declined} declined, {failed} not sent",
                accepted=report.accepted,
                declined=report.declined,
                failed=report.failed,
            )
            if report.stopped_by:
                text += " · " + report.stopped_by
            self.update(message=text)

        self._work(call, done, "Sending")

    def sample(self) -> None:
        self.sampled = True
        tr = self.session.tr
        self.update(
            echo_passed=True,
            echo_text="https://host.example:8443: echo answered in 42 ms",
            round_trip_text=tr("Round trip: {ms} ms", ms=42.3),
            queue_lines=(
                tr("Waiting to be sent: {n}", n=3),
                f"  3 × {tr.amount(4575, self.session.currency)}",
                tr("Last error: {error}", error="host unreachable: connection refused"),
            ),
            can_send=True,
        )


def _when(iso: str, tr: Any) -> str:
    try:
        return str(tr.when(datetime.fromisoformat(iso)))
    except (TypeError, ValueError):
        return iso


class TechParams(_Tool):
    """The parameter version in force, download, and rollback (asked twice)."""

    screen = "tech_params"
    title: str = ""
    version_text: str = ""
    kept_text: str = ""
    can_rollback: bool = False
    confirming: bool = False
    download_label: str = ""
    rollback_label: str = ""

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.parameters: ParameterState | None = None
        self.refresh()

    def refresh(self) -> None:
        super().refresh()
        tr = self.session.tr
        state = self.parameters
        if state is None:
            version = ""
        elif state.current is None:
            version = tr("The shipped configuration is in force")
        else:
            version = tr("Parameters version {version} in force", version=state.current)
        kept = tr("Version {version} kept for rollback", version=state.previous) if state and state.previous else ""
        self.update(
            title=tr("Parameters"),
            version_text=version,
            kept_text=kept,
            can_rollback=bool(state and state.previous is not None),
            download_label=tr("Download"),
            rollback_label=tr("Press again to roll back") if self.confirming else tr("Roll back"),
        )

    def read_again(self) -> None:
        self.update(confirming=False)
        self.read()

    def read(self) -> None:
        def done(state: ParameterState) -> None:
            self.parameters = state
            self.refresh()

        self._work(lambda _t: parameter_status(self.session.data_dir), done, "Reading the parameters")

    def download(self) -> None:
        tr = self.session.tr
        data_dir = self.session.data_dir

        def call(terminal: Any) -> tuple[int | None, ParameterState]:
            version = download_parameters(terminal, data_dir)
            if version is not None:
                reload_configuration(terminal, data_dir)
            return version, parameter_status(data_dir)

        def done(out: tuple[int | None, ParameterState]) -> None:
            version, self.parameters = out
            self.update(confirming=False)
            self.refresh()
            self.update(
                message=tr("Parameters version {version} downloaded and in force", version=version)
                if version is not None
                else tr("The parameters are up to date")
            )

        self._work(call, done, "Parameter download")

    def rollback(self) -> None:
        """The first press asks for a second; the second rolls back."""
        if not self.can_rollback:
            return
        if not self.confirming:
            self.update(confirming=True)
            self.refresh()
            return
        tr = self.session.tr
        data_dir = self.session.data_dir

        def call(terminal: Any) -> tuple[int, ParameterState]:
            version = rollback_to_previous(data_dir)
            reload_configuration(terminal, data_dir)
            return version, parameter_status(data_dir)

        def done(out: tuple[int, ParameterState]) -> None:
            version, self.parameters = out
            self.update(confirming=False)
            self.refresh()
            self.update(message=tr("Parameters version {version} is in force again", version=version))

        self.update(confirming=False)
        self._work(call, done, "Rollback")

    def sample(self) -> None:
        self.sampled = True
        self.parameters = ParameterState(current=7, previous=6, versions=(6, 7))
        self.refresh()


class TechLog(_Tool):
    """The end of the terminal's log, card numbers masked (as the support bundle has it)."""

    screen = "tech_log"
    title: str = ""
    text: str = ""
    refresh_label: str = ""

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.refresh()

    def refresh(self) -> None:
        super().refresh()
        tr = self.session.tr
        self.update(title=tr("Log"), refresh_label=tr("Read again"))

    def read_again(self) -> None:
        self.read()

    def read(self) -> None:
        tr = self.session.tr

        def done(text: str) -> None:
            self.update(text=text.rstrip("\n") or tr("The log is empty"))

        self._work(lambda _t: log_tail(self.session.data_dir, LOG_BYTES), done, "Reading the log")

    def sample(self) -> None:
        self.sampled = True
        self.update(
            text="\n".join(
                [
                    "2026-12-06 12:00:01 INFO terminal.payments: sale 20261206120001-5a1c approved online",
                    "2026-12-06 12:00:01 INFO terminal.receipting: receipt printed for 476173******0010",
                    "2026-12-06 12:03:12 WARNING ui.kiosk: out of order: receipt printer: offline",
                    "2026-12-06 12:03:40 INFO ui.kiosk.devices: printer escpos:net:192.0.2.10:9100: answers",
                    "2026-12-06 12:05:02 INFO terminal.diagnostics: diag host_link: pass: echo answered in 3 ms",
                ]
            )
        )


def removable_folders(roots: tuple[str, ...] = REMOVABLE_ROOTS) -> list[str]:
    """The mounted removable media that exist now: ``/media/USER/LABEL``, ``/run/media/USER/LABEL``, ``/mnt/X``.

    One level below ``/mnt``; below ``/media`` and ``/run/media`` a user's
    folder holds the labels (udisks), and a folder that is itself a mount
    point counts too.  Only folders this process may write to.
    """
    found: list[str] = []
    for root in roots:
        base = Path(root)
        try:
            children = sorted(p for p in base.iterdir() if p.is_dir())
        except OSError:
            continue
        for child in children:
            candidates = [child]
            if base.name != "mnt" and not os.path.ismount(child):
                try:
                    candidates = sorted(p for p in child.iterdir() if p.is_dir())
                except OSError:
                    candidates = []
            found.extend(str(p) for p in candidates if os.access(p, os.W_OK | os.X_OK))
    return found


class TechBundle(_Tool):
    """The support bundle, written to a folder on a USB stick (chosen among those mounted, or typed)."""

    screen = "tech_bundle"
    title: str = ""
    folders: tuple[str, ...] = ()
    folder: str = ""
    written: str = ""
    write_label: str = ""
    refresh_label: str = ""
    hint: str = ""

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.roots: tuple[str, ...] = REMOVABLE_ROOTS
        self.refresh()

    def refresh(self) -> None:
        super().refresh()
        tr = self.session.tr
        self.update(
            title=tr("Support bundle"),
            write_label=tr("Write the bundle"),
            refresh_label=tr("Look again"),
            hint=tr("Plug in a USB stick, choose its folder (or type one), then write") if not self.folders else "",
        )

    def read_again(self) -> None:
        self.look()

    def look(self) -> None:
        """The removable media mounted now."""

        def done(folders: list[str]) -> None:
            self.update(folders=tuple(folders))
            if self.folder not in folders and folders and not self.folder:
                self.update(folder=folders[0])
            self.refresh()

        self._work(lambda _t: removable_folders(self.roots), done, "Looking for removable media")

    def choose(self, folder: str) -> None:
        self.update(folder=folder.strip(), written="")

    def write(self) -> None:
        """The bundle (a zip: versions, configuration, devices, diagnostics, queue, masked log) into the folder."""
        tr = self.session.tr
        folder = Path(self.folder).expanduser() if self.folder else None
        if folder is None or not folder.is_dir():
            self.update(message=tr("Choose a folder that exists first"))
            return
        data_dir = self.session.data_dir

        def call(terminal: Any) -> tuple[str, int]:
            target = folder / default_bundle_path(data_dir, datetime.now(UTC)).name
            reader = _reader_url(terminal.reader)
            info = export_bundle(data_dir, target, host=terminal.host, reader_url=reader, card_timeout=3.0)
            os.sync()  # a USB stick pulled out right after must have the file
            return str(info.path), info.path.stat().st_size

        def done(out: tuple[str, int]) -> None:
            path, size = out
            self.update(written=path, message=tr("Written: {path} ({kb} KB)", path=path, kb=max(1, size // 1024)))

        self._work(call, done, "Writing the bundle")

    def sample(self) -> None:
        self.sampled = True
        self.update(folders=("/media/tech/POSTERM-USB", "/mnt/usb"), folder="/media/tech/POSTERM-USB")
        self.refresh()
        self.update(
            message=self.session.tr(
                "Written: {path} ({kb} KB)", kb=38, path="/media/tech/POSTERM-USB/posterm-support-20261206T120501Z.zip"
            )
        )


def _reader_url(reader: Any) -> str | None:
    """The reader the bundle's reader test opens: the terminal's own; "none"; None: the configured one."""
    if reader is None:
        return "none"
    url = getattr(reader, "url", None)
    return url if isinstance(url, str) and ":" in url else None
