"""The one wiring place: a Terminal from its data directory, configuration and device URLs.

Devices come from the driver registry (``posterm.drivers`` entry points) and
the host link from a name: ``none`` (unreachable), a name registered in the
``posterm.hostlinks`` entry point group (``https``: the host this data
directory is enrolled with, or ``https://host:port``; ``memory``: the
simulator's in-process host, its state kept in the data directory so that
separate commands see the same host), or ``auto``: the enrolled host when
there is an enrolment, ``memory`` otherwise. Every registered link is opened
the same way, by its factory ``(name, data_dir) -> HostLink``, so the
terminal never imports a particular host.

The configuration is the parameter version the host last sent, when one was
applied (``parameters/current.json`` in the data directory, written by
host_link's parameter download), else the one shipped in terminal/data.  A
terminal enrolled with a host takes its terminal and merchant ids from its
certificate, through the host link.

The card reader is the one a URL names (``reader_url``), else the one the
device configuration names (:mod:`terminal.devices`: ``posterm devices set
reader URL``), opened only when a card is first needed; ``reader_url="none"``
means no reader at all.
"""

from __future__ import annotations

import os
from dataclasses import replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from emv.config import TerminalConfig
from terminal import registry
from terminal.devices import (
    DEVICES_FILE,
    NONE_WORDS,
    DeviceConfigError,
    LazyPinPad,
    LazyPrinter,
    LazyReader,
    LazyScanner,
    load_devices,
)
from terminal.facade import Clock, Terminal, TerminalSettings
from terminal.files import make_private_dir, secure_tree
from terminal.host import HostLink
from terminal.keystore import FileKeystore
from terminal.limits import MAX_PARAMETERS_FILE_BYTES, MAX_STATE_FILE_BYTES, read_json_input
from terminal.ports import CardReader, CodeScanner, DeviceUrlError, PinPad, ReceiptPrinter
from terminal.settings import (
    SettingsError,
    load_config,
    load_default_config,
    load_default_settings,
    load_settings,
    shipped_document,
)
from terminal.store import StorageCorrupt, StorageError, Store, StoreInUse

__all__ = [
    "DATA_DIR_ENTRIES",
    "ENROLMENT_FILE",
    "HOSTLINK_GROUP",
    "PARAMETERS_POINTER",
    "configuration_document",
    "default_data_dir",
    "load_configuration",
    "open_host",
    "open_terminal",
    "pin_pad_for",
    "printer_for",
    "reader_for",
    "scanner_for",
]

#: What a terminal keeps in its data directory: its owner's only (files 0600, folders 0700),
#: put right at every start (:func:`terminal.files.secure_tree`).  ``memory-host`` is the
#: in-process host's, ``host-link`` and ``parameters`` host_link's.
DATA_DIR_ENTRIES = (
    "journal.sqlite",
    "journal.sqlite-wal",
    "journal.sqlite-shm",
    "journal.sqlite.lock",
    "keys",
    "logs",
    "pins",
    "devices.json",
    "parameters",
    "host-link",
    "memory-host",
    "support",
)
HOSTLINK_GROUP = "posterm.hostlinks"
ENROLMENT_FILE = Path("host-link") / "enrolment.json"  # written by host_link's enrolment
PARAMETERS_POINTER = Path("parameters") / "current.json"  # written by host_link's parameter download


def default_data_dir() -> Path:
    """``$POSTERM_DATA_DIR``, else the platform's user data directory for posterm."""
    env = os.environ.get("POSTERM_DATA_DIR")
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("posterm", appauthor=False))


def configuration_document(data_dir: Path) -> tuple[dict[str, Any], Path | None, int | None]:
    """The terminal.json in force as a mapping, its version's directory and version (None, None: shipped).

    A parameter version that cannot be read is an error, not a silent fall
    back: it was verified when it was applied, so it is damaged.
    """
    pointer = data_dir / PARAMETERS_POINTER
    if not pointer.exists():
        return shipped_document(), None, None
    try:
        current = read_json_input(pointer, MAX_STATE_FILE_BYTES, "parameters pointer")
        version, directory = int(current["version"]), data_dir / "parameters" / str(current["dir"])
        doc = read_json_input(directory / "terminal.json", MAX_PARAMETERS_FILE_BYTES, "parameters file")
        if not isinstance(doc, dict):
            raise ValueError("terminal.json is not an object")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SettingsError(
            f"parameters in {pointer.parent} cannot be read ({exc}); 'posterm params rollback' returns to the "
            "previous version"
        ) from None
    return doc, directory, version


def load_configuration(data_dir: Path) -> tuple[TerminalConfig, TerminalSettings, int | None]:
    """The configuration in force: the applied parameter version if any, else the shipped one.

    Returns (EMV configuration, terminal settings, parameter version or None).
    A parameter version that cannot be read is an error, not a silent fall
    back: it was verified when it was applied, so it is damaged.
    """
    if not (data_dir / PARAMETERS_POINTER).exists():
        return load_default_config(), load_default_settings(), None
    doc, directory, version = configuration_document(data_dir)
    return load_config(doc, base=directory), load_settings(doc), version


def open_host(name: str, data_dir: Path) -> HostLink | None:
    """The host link ``name`` names (see the module docstring); None for ``none``."""
    if name == "auto":
        name = "https" if (data_dir / ENROLMENT_FILE).exists() else "memory"
    if name == "none":
        return None
    scheme = name.partition(":")[0]
    registered = entry_points(group=HOSTLINK_GROUP)
    for ep in registered:
        if ep.name == scheme:
            link: HostLink = ep.load()(name, data_dir)
            return link
    known = ", ".join(sorted({ep.name for ep in registered}))
    raise DeviceUrlError(f"unknown host {name!r}: use 'auto', 'none' or a registered host link ({known})")


def reader_for(data_dir: Path, reader_url: str | None = None) -> CardReader | None:
    """The reader ``reader_url`` names (opened now), or the configured one (opened when first used).

    ``None`` when the URL (or the configuration) says ``none`` (an empty URL too, as before).  An
    unreadable device configuration is raised when a card is first waited for, not here.
    """
    if reader_url is not None:
        if reader_url.strip().lower() in NONE_WORDS or not reader_url.strip():
            return None
        return registry.open_reader(reader_url)
    try:
        configured = load_devices(data_dir).reader
    except DeviceConfigError as exc:
        # Not fatal here: journal, SAF and settlement must work with a damaged devices.json;
        # a payment gets the error when it asks for the reader.
        error = exc

        def refuse(url: str) -> CardReader:
            raise error

        return LazyReader(DEVICES_FILE, opener=refuse)
    return LazyReader(configured) if configured is not None else None


def _prepare(directory: Path) -> Path:
    """The journal's path in ``directory``, checked (and the directory and journal made when new)."""
    if directory.exists() and not directory.is_dir():
        raise StorageError(f"the data directory {directory} is a file, not a directory")
    try:
        make_private_dir(directory)
    except OSError as exc:
        raise StorageError(f"cannot create the data directory {directory}: {exc.strerror or exc}") from None
    secure_tree(directory, DATA_DIR_ENTRIES)  # what an older posterm left readable by others
    journal = directory / "journal.sqlite"
    keys_made = (directory / "keys" / "data.key").exists()
    try:
        size = journal.stat().st_size if journal.exists() else None
    except OSError as exc:
        raise StorageCorrupt(f"the journal {journal} cannot be read ({exc.strerror})") from None
    if keys_made and not size:
        what = "missing" if size is None else "empty (0 bytes)"
        raise StorageCorrupt(
            f"the journal {journal} is {what}, but this terminal's keys exist: its payments would be lost. "
            f"Restore journal.sqlite from a backup, or move {directory} aside to set up a new terminal"
        )
    if size is None or (size == 0 and not keys_made):
        Store.initialise(journal)
    return journal


def printer_for(data_dir: Path) -> ReceiptPrinter | None:
    """The configured receipt printer (opened when the first receipt is printed), or None."""
    try:
        url = load_devices(data_dir).printer
    except DeviceConfigError as exc:
        error = exc

        def refuse(url: str) -> ReceiptPrinter:
            raise error

        return LazyPrinter(DEVICES_FILE, opener=refuse)
    return LazyPrinter(url) if url is not None else None


def scanner_for(data_dir: Path) -> CodeScanner | None:
    """The configured code scanner (opened when a code is first awaited), or None."""
    try:
        url = load_devices(data_dir).scanner
    except DeviceConfigError:
        return None  # the reader's and printer's errors say what is wrong with the file
    return LazyScanner(url) if url is not None else None


def pin_pad_for(data_dir: Path, url: str | None = None) -> PinPad | None:
    """The PIN pad ``url`` names, else the configured one (``posterm devices set pin-pad URL``); None: none.

    Opened when a PIN is first asked for.  A URL is checked now (a bad one is
    one clear line before any card is read); a damaged device configuration
    leaves the terminal without a PIN pad (the reader's error says what is wrong).
    """
    if url is not None:
        if url.strip().lower() in NONE_WORDS or not url.strip():
            return None
        registry.check_url(url, "pin-pad")
        return LazyPinPad(url)
    try:
        configured = load_devices(data_dir).pin_pad
    except DeviceConfigError:
        return None
    return LazyPinPad(configured) if configured is not None else None


def open_terminal(
    data_dir: Path | None = None,
    *,
    reader_url: str | None = None,
    host: str = "auto",
    clock: Clock | None = None,
    settings: TerminalSettings | None = None,
    recover: bool = True,
    shared: bool = False,
    pin_pad_url: str | None = None,
) -> Terminal:
    """Open (creating on first use) the terminal whose state lives in ``data_dir``.

    One process at a time makes payments on a data directory (it holds the
    journal's lock, and runs start-up recovery).  When another holds it, the
    terminal is refused (:class:`~terminal.store.StoreInUse`) unless
    ``shared``: then it opens to read (reports, the queue's status, receipts),
    without recovery, and refuses to make payments.

    ``reader_url`` not given: the reader of the device configuration (see
    :func:`reader_for`); the receipt printer is the configured one (none by
    default).  A data directory whose keys exist but whose journal is missing
    or empty is refused (:class:`~terminal.store.StorageCorrupt`): its
    payments would be lost, and a new journal would hide that.
    """
    directory = Path(data_dir) if data_dir is not None else default_data_dir()
    journal = _prepare(directory)
    config, configured, _ = load_configuration(directory)
    cipher = (settings or configured).keystore_cipher
    keystore = FileKeystore.open(directory / "keys", create=Store.is_blank(journal), cipher=cipher)
    try:
        store = Store.open(journal, keystore, create=False)
    except StoreInUse:
        if not shared:
            raise
        store = Store.open(journal, keystore, create=False, exclusive=False)
        recover = False
    try:
        reader = reader_for(directory, reader_url)
        pin_pad = pin_pad_for(directory, pin_pad_url)
        link = open_host(host, directory)
    except BaseException:
        store.close()
        raise
    # An enrolled terminal is who its certificate says it is.
    terminal_id, merchant_id = getattr(link, "terminal_id", None), getattr(link, "merchant_id", None)
    if isinstance(terminal_id, str) and isinstance(merchant_id, str):
        config = replace(config, terminal_id=terminal_id, merchant_id=merchant_id)
    terminal = Terminal(
        config=config,
        store=store,
        keystore=keystore,
        host=link,
        reader=reader,
        printer=printer_for(directory),
        scanner=scanner_for(directory),
        clock=clock,
        settings=settings or configured,
        pin_pad=pin_pad,
    )
    if recover:
        terminal.recover()
    return terminal
