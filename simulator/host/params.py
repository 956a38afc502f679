"""Parameters per terminal: a common part shared by all, each terminal's own part, a version per terminal.

What ``GET /v1/parameters`` serves a terminal is its own document: the
**common part** (:func:`publish`, ``posterm host params publish``), the
terminal's **own part** over it key by key (:func:`set_terminal_part`,
``posterm host params set-terminal``: its merchant's name and address, or any
other setting of its own), and always the ids the host knows the terminal by
(its client certificate's ``terminal_id`` and ``merchant_id``), which no part
may set. So every enrolled terminal downloads parameters that name itself.

Versions are per terminal (:func:`for_terminal`): a terminal's version moves
when the common part or its own part changes (the served document's
``basis``: the common version and a digest of the own part with the ids).
A new version is one more than the highest ever served to that terminal id
and than the common version, so it is always above what the terminal holds,
also after a transfer to another merchant or an upgrade from the single
document that older hosts served. ``sign-on`` answers the terminal's current
version; each version served is kept (``served_parameters``).

The common part: version 1 is built on first start from the terminal's
shipped configuration (``terminal/data/terminal.json`` without
``capk_files``, ``devices`` and the ids) and the CA public keys of the kinds
it trusts (``capk_kinds``: test and simulator) from
``terminal/data/capks-*.json``. :func:`publish` makes the next version from a
JSON object, either merged key by key over the current ``config`` or, when it
has a ``config`` key, a full document (``{"config": {...}, "capks": [...]}``;
``capks`` left out keeps the current ones). A CA key without a ``checksum``
gets the SHA-1 of EMV Book 2 5.2 computed.

Every common version, and every terminal's document made of it, is checked
against the ``ParametersResponse`` schema of the OpenAPI document;
``checked=True`` (the default) also loads it with the terminal's own
configuration loader and verifies the CA key checksums, so a tester who wants
to serve a version the terminal must refuse (a wrong checksum, a limit the
kernel rejects) passes ``checked=False``. Publishing a common part checks it
with each terminal's own part too, and is refused (naming the terminal) when
one of them would not load.
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

from simulator.host.cbdc_operator import Operator, cbdc_section
from simulator.host.schema import first_error
from simulator.host.store import HostStore
from simulator.host.store_issuer import Served

__all__ = [
    "ID_KEYS",
    "ParametersError",
    "capk_checksum",
    "default_document",
    "ensure_initial",
    "for_terminal",
    "publish",
    "set_terminal_part",
]

#: The keys that are always the terminal's own ids (its certificate's), set by no part.
ID_KEYS = ("terminal_id", "merchant_id")


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
    # capk_files name the terminal's own files; devices are the terminal's hardware, not the host's business;
    # the ids are each terminal's own (for_terminal)
    # the cbdc section is served beside config, from the digital-currency operator (cbdc_operator.cbdc_section)
    config = {k: v for k, v in shipped.items() if k not in ("capk_files", "devices", "cbdc", *ID_KEYS)}
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


def _no_ids(config: Any, where: str) -> None:
    if isinstance(config, Mapping):
        named = [k for k in ID_KEYS if k in config]
        if named:
            raise ParametersError(
                f"{where}{named[0]}: the ids are each terminal's own (its certificate's); leave them out"
            )
        if "cbdc" in config:
            raise ParametersError(
                f"{where}cbdc: the digital-currency section is the operator's, served beside config "
                "(posterm host cbdc block|unblock)"
            )


def _served_config(common: Mapping[str, Any], own: Mapping[str, Any], merchant_id: str, terminal_id: str) -> Any:
    config = {k: v for k, v in common.items() if k not in (*ID_KEYS, "cbdc")}  # cbdc: served beside config
    return {**config, **copy.deepcopy(dict(own)), "terminal_id": terminal_id, "merchant_id": merchant_id}


def _check_terminals(store: HostStore, common: Mapping[str, Any], *, checked: bool) -> None:
    """The common part with each terminal's own part over it, as it would be served."""
    for merchant_id, terminal_id, own in store.terminal_parts():
        document = {**common, "config": _served_config(common["config"], own, merchant_id, terminal_id)}
        try:
            _check(document, checked=checked)
        except ParametersError as exc:
            raise ParametersError(f"for terminal {terminal_id} of merchant {merchant_id}: {exc}") from None


def _store_version(store: HostStore, body: Mapping[str, Any], *, checked: bool, issued_at: str | None) -> int:
    with store.transaction():
        version = store.parameters_version() + 1
        stamp = issued_at or _utc_now()
        document = {"version": version, "issued_at": stamp, "config": body["config"], "capks": body["capks"]}
        _check(document, checked=checked)
        _check_terminals(store, document, checked=checked)
        store.add_parameters(version, stamp, json.dumps(document, separators=(",", ":")).encode("utf-8"))
    return version


def ensure_initial(store: HostStore) -> int:
    """Make common version 1 from the shipped data if there is no version yet; the current common version."""
    with store.transaction():
        if store.parameters_version() == 0:  # the lock only then: every sign-on comes here
            store.lock("parameters")  # workers starting together store version 1 once
            if store.parameters_version() == 0:  # read again under the lock (a new snapshot on PostgreSQL)
                _store_version(store, default_document(), checked=True, issued_at=None)
        return store.parameters_version()


def _common(store: HostStore) -> dict[str, Any]:
    raw = store.parameters()
    assert raw is not None
    current: dict[str, Any] = json.loads(raw)
    return current


def publish(store: HostStore, update: Mapping[str, Any], *, checked: bool = True) -> int:
    """Make and store the next common version from ``update`` (see the module docstring); its number."""
    if not isinstance(update, Mapping):
        raise ParametersError("a parameters update is a JSON object")
    with store.transaction():
        store.lock("parameters")
        ensure_initial(store)
        current = _common(store)
        # older hosts kept the ids there (and the digital-currency section, before the operator served it)
        shared = {k: v for k, v in current["config"].items() if k not in (*ID_KEYS, "cbdc")}
        if "config" in update:
            unknown = sorted(set(update) - {"config", "capks", "version", "issued_at"})
            if unknown:
                raise ParametersError(f"unexpected keys in a full parameters document: {', '.join(unknown)}")
            _no_ids(update["config"], "config.")
            config = update["config"]
            if isinstance(config, Mapping):
                config = copy.deepcopy(dict(config))
            capks = update.get("capks", current["capks"])
        else:
            _no_ids(update, "")
            config = {**shared, **copy.deepcopy(dict(update))}
            capks = current["capks"]
        if isinstance(capks, list):
            capks = [_capk(c) if isinstance(c, Mapping) else c for c in capks]
        return _store_version(store, {"config": config, "capks": capks}, checked=checked, issued_at=None)


# ----------------------------------------------------------------------------- per terminal


def set_terminal_part(
    store: HostStore, merchant_id: str, terminal_id: str, update: Mapping[str, Any], *, checked: bool = True
) -> dict[str, Any]:
    """Merge ``update`` over the terminal's own part (a key set to null leaves it); the own part now.

    Checked as it will be served (with the current common part); the
    terminal's version moves on its next sign-on or download.
    """
    if not isinstance(update, Mapping):
        raise ParametersError("a terminal's parameters are a JSON object")
    if "config" in update or "capks" in update:
        raise ParametersError("a terminal's own part is config keys only (the CA keys are common)")
    _no_ids(update, "")
    with store.transaction():
        ensure_initial(store)
        own = {**store.terminal_part(merchant_id, terminal_id), **copy.deepcopy(dict(update))}
        own = {k: v for k, v in own.items() if v is not None}
        common = _common(store)
        document = {**common, "config": _served_config(common["config"], own, merchant_id, terminal_id)}
        _check(document, checked=checked)
        store.set_terminal_part(merchant_id, terminal_id, own, _utc_now())
    return own


def _basis(common_version: int, own: Mapping[str, Any], merchant_id: str, terminal_id: str, cbdc: int) -> str:
    what = json.dumps({"own": own, "ids": [merchant_id, terminal_id]}, sort_keys=True, separators=(",", ":"))
    return f"{common_version}:{hashlib.sha256(what.encode('utf-8')).hexdigest()[:32]}:c{cbdc}"


def for_terminal(
    store: HostStore, merchant_id: str, terminal_id: str, *, operator: Operator | None = None
) -> Served:
    """The terminal's current parameters (its version and the document as served), made if they moved.

    The document's ``cbdc`` section is the digital-currency operator's
    (:func:`~simulator.host.cbdc_operator.cbdc_section`): trusted roots, block
    lists, limits, with a version of their own that is a part of the basis, so
    a wallet blocked moves every terminal's version.
    """
    operator = operator or Operator(store)
    with store.transaction():
        store.lock("terminal", merchant_id, terminal_id)  # (a sign-on holds it already) one new version at once
        common_version = ensure_initial(store)
        own = store.terminal_part(merchant_id, terminal_id)
        operator.ensure_seeded(_utc_now())
        cbdc = cbdc_section(store)  # its version read before its lists: see cbdc_section
        basis = _basis(common_version, own, merchant_id, terminal_id, cbdc["version"])
        latest = store.served(merchant_id, terminal_id)
        if latest is not None and latest.basis == basis:
            return latest
        common = _common(store)
        version = max(store.highest_served(terminal_id), common_version) + 1
        stamp = _utc_now()
        document = {
            "version": version,
            "issued_at": stamp,
            "config": _served_config(common["config"], own, merchant_id, terminal_id),
            "capks": common["capks"],
            "cbdc": cbdc,
        }
        served = Served(version, basis, stamp, json.dumps(document, separators=(",", ":")).encode("utf-8"))
        store.add_served(merchant_id, terminal_id, served)
        return store.served(merchant_id, terminal_id, version) or served
