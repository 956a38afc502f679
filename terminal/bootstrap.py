"""The one wiring place: a Terminal from its data directory, configuration and device URLs.

Devices come from the driver registry (``posterm.drivers`` entry points) and
the host link from a name: ``memory`` (the in-process host of
:mod:`terminal.memory_host`, its state kept in the data directory so that
separate commands see the same host), ``none`` (unreachable), or a scheme
registered in the ``posterm.hostlinks`` entry point group.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from pathlib import Path

from terminal import registry
from terminal.facade import Clock, Terminal, TerminalSettings
from terminal.host import HostLink
from terminal.keystore import FileKeystore
from terminal.memory_host import MemoryHost
from terminal.ports import DeviceError
from terminal.settings import load_default_config, load_default_settings
from terminal.store import Store

__all__ = ["HOSTLINK_GROUP", "default_data_dir", "open_host", "open_terminal"]

HOSTLINK_GROUP = "posterm.hostlinks"


def default_data_dir() -> Path:
    """``$POSTERM_DATA_DIR``, else the platform's user data directory for posterm."""
    env = os.environ.get("POSTERM_DATA_DIR")
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("posterm", appauthor=False))


def open_host(name: str, data_dir: Path) -> HostLink | None:
    if name == "none":
        return None
    if name == "memory":
        return MemoryHost(state_file=data_dir / "memory-host.json")
    scheme = name.partition(":")[0]
    for ep in entry_points(group=HOSTLINK_GROUP):
        if ep.name == scheme:
            link: HostLink = ep.load()(name, data_dir)
            return link
    raise DeviceError(f"unknown host {name!r}: use 'memory', 'none' or a registered host link URL")


def open_terminal(
    data_dir: Path | None = None,
    *,
    reader_url: str | None = None,
    host: str = "memory",
    clock: Clock | None = None,
    settings: TerminalSettings | None = None,
    recover: bool = True,
) -> Terminal:
    """Open (creating on first use) the terminal whose state lives in ``data_dir``."""
    directory = Path(data_dir) if data_dir is not None else default_data_dir()
    directory.mkdir(parents=True, exist_ok=True)
    journal = directory / "journal.sqlite"
    # Keys are made only with a new journal: a terminal whose key file went
    # missing must say so, not start over with a key that cannot read its data.
    keystore = FileKeystore.open(directory / "keys", create=not journal.exists())
    store = Store.open(journal, keystore)
    terminal = Terminal(
        config=load_default_config(),
        store=store,
        keystore=keystore,
        host=open_host(host, directory),
        reader=registry.open_reader(reader_url) if reader_url else None,
        clock=clock,
        settings=settings or load_default_settings(),
    )
    if recover:
        terminal.recover()
    return terminal
