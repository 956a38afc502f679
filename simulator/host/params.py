"""Parameter versions: what ``GET /v1/parameters`` serves.

Version 1 is built on first start from the terminal's shipped configuration
(``terminal/data/terminal.json`` without ``capk_files``) and the CA public keys
of the kinds it trusts (``capk_kinds``: test and simulator) from
``terminal/data/capks-*.json``. :func:`publish` makes the next version from a
JSON object, either merged key by key over the current ``config`` or, when it
has a ``config`` key, a full document (``{"config": {...}, "capks": [...]}``;
``capks`` left out keeps the current ones). A CA key without a ``checksum``
gets the SHA-1 of EMV Book 2 5.2 computed.

Every version is checked against the ``ParametersResponse`` schema of the
OpenAPI document; ``checked=True`` (the default) also loads it with the
terminal's own configuration loader and verifies the CA key checksums, so a
tester who wants to serve a version the terminal must refuse (a wrong
checksum, a limit the kernel rejects) passes ``checked=False``.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

from simulator.host.schema import first_error
from simulator.host.store import HostStore

__all__ = ["ParametersError", "capk_checksum", "default_document", "ensure_initial", "publish"]


class ParametersError(ValueError):
    """A parameters document the host will not publish (the message names the field)."""


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _terminal_json(name: str) -> Any:
    return json.loads(resources.files("terminal").joinpath("data", name).read_text(encoding="utf-8"))


def capk_checksum(entry: Mapping[str, Any]) -> str:
    """SHA-1 over RID || index || modulus || exponent, upper-case hex."""
    data = b"".join(bytes.fromhex(str(entry[k])) for k in ("rid", "index", "modulus", "exponent"))
    return hashlib.sha1(data).hexdigest().upper()


def _capk(entry: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("scheme", "kind", "rid", "index", "exponent", "modulus", "expiry", "checksum")
    out = {k: entry[k] for k in keys if k in entry}
    if "checksum" not in out:
        with contextlib.suppress(KeyError, ValueError, TypeError):  # the schema check names what is missing
            out["checksum"] = capk_checksum(out)
    return out


def default_document() -> dict[str, Any]:
    """``config`` and ``capks`` of version 1, from the terminal package's data."""
    shipped = _terminal_json("terminal.json")
    kinds = set(shipped.get("capk_kinds", ["test", "simulator"]))
    capks: list[dict[str, Any]] = []
    for name in shipped.get("capk_files", []):
        capks.extend(_capk(k) for k in _terminal_json(name).get("keys", []) if k.get("kind") in kinds)
    # capk_files name the terminal's own files; devices are the terminal's hardware, not the host's business
    config = {k: v for k, v in shipped.items() if k not in ("capk_files", "devices")}
    return {"config": config, "capks": capks}


def _check(document: Mapping[str, Any], *, checked: bool) -> None:
    error = first_error("ParametersResponse", document)
    if error is not None:
        raise ParametersError(error)
    if not checked:
        return
    for i, entry in enumerate(document["capks"]):
        if capk_checksum(entry) != str(entry["checksum"]).upper():
            raise ParametersError(f"capks.{i}.checksum does not match the key (use --unchecked to serve it anyway)")
    from terminal.settings import SettingsError, load_config, load_settings

    try:
        load_config(document["config"])
        load_settings(document["config"])
    except SettingsError as exc:
        raise ParametersError(f"{exc} (use --unchecked to serve it anyway)") from None


def _store_version(store: HostStore, body: Mapping[str, Any], *, checked: bool, issued_at: str | None) -> int:
    with store.transaction():
        version = store.parameters_version() + 1
        stamp = issued_at or _utc_now()
        document = {"version": version, "issued_at": stamp, "config": body["config"], "capks": body["capks"]}
        _check(document, checked=checked)
        store.add_parameters(version, stamp, json.dumps(document, separators=(",", ":")).encode("utf-8"))
    return version


def ensure_initial(store: HostStore) -> int:
    """Make version 1 from the shipped data if there is no version yet; the current version."""
    with store.transaction():
        store.lock("parameters")  # workers starting together store version 1 once
        if store.parameters_version() == 0:
            _store_version(store, default_document(), checked=True, issued_at=None)
        return store.parameters_version()


def publish(store: HostStore, update: Mapping[str, Any], *, checked: bool = True) -> int:
    """Make and store the next version from ``update`` (see the module docstring); its number."""
    if not isinstance(update, Mapping):
        raise ParametersError("a parameters update is a JSON object")
    with store.transaction():
        store.lock("parameters")
        ensure_initial(store)
        raw = store.parameters()
        assert raw is not None
        current = json.loads(raw)
        if "config" in update:
            unknown = sorted(set(update) - {"config", "capks", "version", "issued_at"})
            if unknown:
                raise ParametersError(f"unexpected keys in a full parameters document: {', '.join(unknown)}")
            config = update["config"]
            if isinstance(config, Mapping):
                config = copy.deepcopy(dict(config))
            capks = update.get("capks", current["capks"])
        else:
            config = {**current["config"], **copy.deepcopy(dict(update))}
            capks = current["capks"]
        if isinstance(capks, list):
            capks = [_capk(c) if isinstance(c, Mapping) else c for c in capks]
        return _store_version(store, {"config": config, "capks": capks}, checked=checked, issued_at=None)
