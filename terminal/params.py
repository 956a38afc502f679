"""Parameter download and rollback as the terminal's own screens reach them: a seam the host link fills.

The parameter download lives in the host link package (``host_link.parameters``:
versioned, verified, applied atomically, the previous version kept), and
neither terminal nor ui may import it (the import contract: terminal is
below the host link, ui sees terminal only).  So the host link registers its
three functions in the ``posterm.parameters`` entry point group, as host links
register themselves in ``posterm.hostlinks``::

    posterm.parameters =
        status = host_link.parameters:status
        download = host_link.parameters:download_and_apply
        rollback = host_link.parameters:rollback

and this module calls them by name: :func:`parameter_status`,
:func:`download_parameters` (through the terminal's own host link) and
:func:`rollback_parameters`.  Without the group (a terminal installed without
its host link), each raises :class:`ParametersUnavailable`.  Anything the
implementation raises other than the host's own errors
(:class:`~terminal.host.HostError`, which say whether the host was reached)
comes out as :class:`ParameterError` with its message, so a screen needs to
know no host link type.

A version downloaded or rolled back to is what the next start loads
(:func:`terminal.bootstrap.load_configuration`); :func:`reload_configuration`
puts it in force in a running terminal at once, keeping the enrolled
terminal's identity.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Final

from terminal.bootstrap import load_configuration
from terminal.facade import Terminal
from terminal.host import HostError

__all__ = [
    "GROUP",
    "ParameterError",
    "ParameterState",
    "ParametersUnavailable",
    "download_parameters",
    "parameter_status",
    "reload_configuration",
    "rollback_parameters",
]

GROUP: Final = "posterm.parameters"
_log = logging.getLogger(__name__)


class ParameterError(Exception):
    """A download or rollback refused or failed; nothing changed (the version in force stays)."""


class ParametersUnavailable(ParameterError):
    """No parameter download is installed (nothing registered in ``posterm.parameters``)."""


@dataclass(frozen=True)
class ParameterState:
    """The versions on disk: the one in force (None: the shipped configuration) and the one rollback returns to."""

    current: int | None
    previous: int | None
    versions: tuple[int, ...]


def _function(name: str) -> Callable[..., Any]:
    for ep in entry_points(group=GROUP):
        if ep.name == name:
            loaded: Callable[..., Any] = ep.load()
            return loaded
    raise ParametersUnavailable(f"no parameter {name} is installed (nothing named {name!r} in {GROUP})")


def _call(name: str, *args: Any) -> Any:
    function = _function(name)
    try:
        return function(*args)
    except (HostError, ParameterError):
        raise
    except Exception as exc:  # the implementation's own error types, told by their message
        raise ParameterError(str(exc) or type(exc).__name__) from exc


def parameter_status(data_dir: Path) -> ParameterState:
    """The parameter versions of the terminal in ``data_dir``."""
    state = _call("status", Path(data_dir))
    return ParameterState(
        current=getattr(state, "current", None),
        previous=getattr(state, "previous", None),
        versions=tuple(getattr(state, "versions", ())),
    )


def download_parameters(terminal: Terminal, data_dir: Path) -> int | None:
    """Ask the terminal's host for newer parameters and apply them; the new version, or None if up to date.

    Raises :class:`ParameterError` when the host link offers no download (the
    simulator's in-process host) or the download is refused, and the host
    link's :class:`~terminal.host.HostError` when the host cannot be asked.
    """
    link = terminal.host
    if link is None:
        raise ParameterError("no host link (--host none): parameters cannot be downloaded")
    if not callable(getattr(link, "fetch_parameters", None)):
        raise ParameterError(f"the host link {getattr(link, 'url', type(link).__name__)} offers no parameter download")
    version: int | None = _call("download", link, Path(data_dir))
    _log.info("parameters: %s", f"version {version} applied" if version is not None else "up to date")
    return version


def rollback_parameters(data_dir: Path) -> int:
    """Put the previous parameter version back in force; the version now in force."""
    version: int = _call("rollback", Path(data_dir))
    _log.info("parameters rolled back to version %d", version)
    return version


def reload_configuration(terminal: Terminal, data_dir: Path) -> int | None:
    """Put the configuration on disk in force in a running terminal; its parameter version (None: shipped).

    The terminal and merchant ids stay those the terminal has (an enrolled
    terminal's come from its certificate, not from the parameters).  The
    keystore's cipher follows the configuration at once (what was sealed
    before stays readable).
    """
    config, settings, version = load_configuration(Path(data_dir))
    current = terminal.config
    terminal.config = replace(config, terminal_id=current.terminal_id, merchant_id=current.merchant_id)
    terminal.settings = settings
    use_cipher = getattr(terminal.keystore, "use_cipher", None)  # a hardware keystore may have its own
    if callable(use_cipher):
        use_cipher(settings.keystore_cipher)
    return version
