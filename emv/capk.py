"""Certification Authority Public Keys (CAPKs): the terminal's trust roots.

A CAPK is named by its RID (5 bytes) and index (1 byte, tag 8F on the card).
Each key arrives with a SHA-1 checksum over ``RID | index | modulus |
exponent`` (EMV Book 2, 11.2.2); the store verifies it on load, so that a key
damaged in transit or in a configuration file is never used.  Expiry and
revocation are checked on lookup, because they depend on the transaction date.

The entry format is that of ``capks.json``: hex strings for ``rid``, ``index``,
``modulus``, ``exponent`` and ``checksum``; optional ``expiry`` ("YYYY-MM-DD",
valid through that day), ``scheme`` and ``kind``.

>>> import hashlib
>>> rid, mod, exp = "A000000003", "C1" * 64, "03"
>>> csum = hashlib.sha1(bytes.fromhex(rid + "50" + mod + exp)).hexdigest()
>>> store = CapkStore.from_entries([{"rid": rid, "index": "50", "modulus": mod,
...                                  "exponent": exp, "checksum": csum, "expiry": "2030-12-31"}])
>>> from datetime import date
>>> store.get(bytes.fromhex(rid), 0x50, date(2025, 1, 1)).index
80
>>> try:
...     store.get(bytes.fromhex(rid), 0x51, date(2025, 1, 1))
... except CapkError as exc:
...     print(exc.name, "|", exc)
ca_key_missing | ca_key_missing: no CA public key A000000003 index 51
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

__all__ = ["INVALID", "LOOKUP_ERRORS", "Capk", "CapkError", "CapkStore", "checksum_of"]

#: The ``CapkError.name`` values a lookup can raise (they are also ODA failure names).
LOOKUP_ERRORS = ("ca_key_missing", "ca_key_expired", "ca_key_revoked")
#: The name of an error found while loading entries.
INVALID = "ca_key_invalid"


class CapkError(Exception):
    """A CA key that cannot be used.  ``name`` says why (see LOOKUP_ERRORS, INVALID)."""

    def __init__(self, name: str, message: str, rid: bytes | None = None, index: int | None = None) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message
        self.rid = rid
        self.index = index


def checksum_of(rid: bytes, index: int, modulus: bytes, exponent: bytes) -> bytes:
    """SHA-1 over RID | index | modulus | exponent (the CAPK check value).

    >>> checksum_of(bytes(5), 1, b"\\x01", b"\\x03").hex()[:8]
    'ce124c7b'
    """
    return hashlib.sha1(bytes(rid) + bytes([index]) + bytes(modulus) + bytes(exponent)).digest()


def _label(rid: bytes, index: int) -> str:
    return f"{rid.hex().upper()} index {index:02X}"


@dataclass(frozen=True)
class Capk:
    """One CA public key."""

    rid: bytes
    index: int
    modulus: bytes
    exponent: bytes
    checksum: bytes
    expiry: date | None = None
    scheme: str | None = None
    kind: str | None = None

    @property
    def label(self) -> str:
        """``'A000000003 index 92'``: how errors and logs name the key."""
        return _label(self.rid, self.index)

    def checksum_ok(self) -> bool:
        return checksum_of(self.rid, self.index, self.modulus, self.exponent) == self.checksum

    def expired(self, on_date: date) -> bool:
        """True after the expiry date (the key is valid through that day)."""
        return self.expiry is not None and on_date > self.expiry

    def to_entry(self) -> dict[str, str]:
        """The key as a ``capks.json`` entry."""
        out = {
            "rid": self.rid.hex().upper(),
            "index": f"{self.index:02X}",
            "modulus": self.modulus.hex().upper(),
            "exponent": self.exponent.hex().upper(),
            "checksum": self.checksum.hex().upper(),
        }
        if self.expiry is not None:
            out["expiry"] = self.expiry.isoformat()
        if self.scheme is not None:
            out["scheme"] = self.scheme
        if self.kind is not None:
            out["kind"] = self.kind
        return out

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> Capk:
        """Parse and verify one entry; raise CapkError(``ca_key_invalid``) naming rid+index.

        ``index`` may be a hex string (as in capks.json) or an int.
        """
        rid_text = str(entry.get("rid", "?"))
        index_raw = entry.get("index", "?")
        where = f"CA key {rid_text} index {index_raw}"
        try:
            rid = bytes.fromhex(str(entry["rid"]))
            index = index_raw if isinstance(index_raw, int) else int(str(index_raw), 16)
            modulus = bytes.fromhex(str(entry["modulus"]))
            exponent = bytes.fromhex(str(entry["exponent"]))
            checksum = bytes.fromhex(str(entry["checksum"]))
            expiry_text = entry.get("expiry")
            expiry = date.fromisoformat(str(expiry_text)) if expiry_text else None
        except KeyError as exc:
            raise CapkError(INVALID, f"{where}: missing field {exc.args[0]!r}") from None
        except ValueError as exc:
            raise CapkError(INVALID, f"{where}: {exc}") from None
        if len(rid) != 5:
            raise CapkError(INVALID, f"{where}: RID must be 5 bytes, not {len(rid)}")
        if not 0 <= index <= 0xFF:
            raise CapkError(INVALID, f"{where}: index must be one byte", rid)
        if not 16 <= len(modulus) <= 248 or modulus[0] == 0:
            raise CapkError(INVALID, f"{where}: modulus of {len(modulus)} bytes is not usable", rid, index)
        if int.from_bytes(exponent, "big") not in (3, 65537):
            raise CapkError(INVALID, f"{where}: exponent {exponent.hex()} is not 3 or 65537", rid, index)
        scheme = entry.get("scheme")
        kind = entry.get("kind")
        capk = cls(
            rid,
            index,
            modulus,
            exponent,
            checksum,
            expiry,
            str(scheme) if scheme is not None else None,
            str(kind) if kind is not None else None,
        )
        if not capk.checksum_ok():
            raise CapkError(INVALID, f"checksum mismatch for CA key {capk.label}", rid, index)
        return capk


class CapkStore:
    """CA keys by (RID, index), with the set of revoked (RID, index).

    Build it with :meth:`from_entries`.  A revoked key is refused even when it
    is loaded (and even when it is not): revocation wins over presence.
    """

    def __init__(self, keys: Iterable[Capk] = (), revoked: Iterable[tuple[bytes, int]] = ()) -> None:
        self._keys: dict[tuple[bytes, int], Capk] = {}
        for key in keys:
            self._keys[(key.rid, key.index)] = key
        self.revoked: frozenset[tuple[bytes, int]] = frozenset((bytes(r), int(i)) for r, i in revoked)
        #: Errors of entries skipped by a non-strict load.
        self.rejected: list[CapkError] = []

    @classmethod
    def from_entries(
        cls,
        entries: Iterable[Mapping[str, Any]],
        revoked: Iterable[tuple[bytes | str, int | str]] = (),
        strict: bool = True,
    ) -> CapkStore:
        """Load and verify entries.

        ``strict=True`` refuses the whole load at the first bad entry (bad
        checksum, malformed field, duplicate RID+index) with a CapkError
        naming RID and index.  ``strict=False`` skips bad entries and lists
        their errors in ``store.rejected``, for a terminal that must keep
        working with the keys that are good.  ``revoked`` holds (rid, index)
        pairs as bytes/int or hex strings.
        """
        keys: list[Capk] = []
        seen: set[tuple[bytes, int]] = set()
        rejected: list[CapkError] = []
        for entry in entries:
            try:
                key = Capk.from_entry(entry)
                if (key.rid, key.index) in seen:
                    raise CapkError(INVALID, f"duplicate CA key {key.label}", key.rid, key.index)
            except CapkError as exc:
                if strict:
                    raise
                rejected.append(exc)
                continue
            seen.add((key.rid, key.index))
            keys.append(key)
        revoked_pairs: list[tuple[bytes, int]] = []
        for rid, index in revoked:
            rid_b = bytes.fromhex(rid) if isinstance(rid, str) else bytes(rid)
            index_i = int(index, 16) if isinstance(index, str) else int(index)
            revoked_pairs.append((rid_b, index_i))
        store = cls(keys, revoked_pairs)
        store.rejected = rejected
        return store

    def get(self, rid: bytes, index: int, on_date: date) -> Capk:
        """The usable key for (rid, index) on ``on_date``.

        Raises CapkError named ``ca_key_revoked``, ``ca_key_missing`` or
        ``ca_key_expired`` (checked in that order).
        """
        rid = bytes(rid)
        label = _label(rid, index) if 0 <= index <= 0xFF else f"{rid.hex().upper()} index {index}"
        if (rid, index) in self.revoked:
            raise CapkError("ca_key_revoked", f"CA public key {label} is revoked", rid, index)
        key = self._keys.get((rid, index))
        if key is None:
            raise CapkError("ca_key_missing", f"no CA public key {label}", rid, index)
        if key.expired(on_date):
            raise CapkError("ca_key_expired", f"CA public key {label} expired on {key.expiry}", rid, index)
        return key

    def to_entries(self) -> list[dict[str, str]]:
        """The keys as ``capks.json`` entries (round trip of :meth:`from_entries`)."""
        return [key.to_entry() for key in self]

    def __iter__(self) -> Iterator[Capk]:
        return iter(sorted(self._keys.values(), key=lambda k: (k.rid, k.index)))

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, item: object) -> bool:
        return item in self._keys
