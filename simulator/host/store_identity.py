"""The host store's part about who terminals are: enrolment codes, terminals, certificates, the audit trail.

A mixin of :class:`simulator.host.store.HostStore` (it uses the store's
``_one`` / ``_all`` / ``_exec`` / ``transaction`` only), kept apart so that
each module stays readable.

Certificates. Every terminal certificate the host issues is registered here
by serial with its (merchant, terminal). A request over HTTPS is accepted only
with a certificate registered and not revoked for exactly the pair in its
subject (:mod:`simulator.host.app`). Revocation happens on re-enrolment
(``re-enrolled``), on a rotation (``superseded``: the old certificate may
still fetch that rotation's answer again, nothing else), by the operator
(``revoked``) and when a terminal id moves to another merchant
(``transferred``).
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

__all__ = ["Certificate", "EnrolmentCode", "TerminalIdentities"]


@dataclass(frozen=True)
class EnrolmentCode:
    terminal_id: str
    merchant_id: str
    expires_at: str
    used_at: str | None
    csr_digest: str | None
    response: bytes | None
    transfer: bool = False


@dataclass(frozen=True)
class Certificate:
    """A terminal certificate the host issued (``serial``: upper-case hex, no leading zeros).

    ``revoked_reason``: ``"re-enrolled"``, ``"superseded"`` (replaced by a
    rotation; its ``rotation_*`` fields keep that rotation's answer for a
    retry), ``"revoked"`` (by the operator) or ``"transferred"`` (the terminal
    id went to another merchant).
    """

    serial: str
    merchant_id: str
    terminal_id: str
    issued_at: str
    not_after: str | None
    revoked_at: str | None
    revoked_reason: str | None
    rotation_key: str | None
    rotation_public_key: str | None
    rotation_response: bytes | None

    @property
    def valid(self) -> bool:
        return self.revoked_at is None


class TerminalIdentities:
    """Enrolment codes, terminals, certificates and the audit trail (mixed into the host store)."""

    if TYPE_CHECKING:

        def _one(self, sql: str, args: tuple[Any, ...] = ()) -> tuple[Any, ...] | None: ...

        def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]: ...

        def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> int: ...

        def transaction(self) -> contextlib.AbstractContextManager[None]: ...

        def lock(self, *name: str) -> None: ...

    # ------------------------------------------------------------------ enrolment

    @staticmethod
    def _code_hash(code: str) -> str:
        return hashlib.sha256(code.strip().upper().encode("utf-8")).hexdigest()

    def add_enrolment_code(
        self, code: str, terminal_id: str, merchant_id: str, created_at: str, expires_at: str, *, transfer: bool = False
    ) -> None:
        """Store a code (its hash); ``transfer``: its use takes the terminal id from any other merchant."""
        with self.transaction():
            self._exec(
                "INSERT INTO enrolment_codes (code_hash, terminal_id, merchant_id, created_at, expires_at, transfer) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (self._code_hash(code), terminal_id, merchant_id, created_at, expires_at, int(transfer)),
            )

    def enrolment_code(self, code: str) -> EnrolmentCode | None:
        row = self._one(
            "SELECT terminal_id, merchant_id, expires_at, used_at, csr_digest, response, transfer "
            "FROM enrolment_codes WHERE code_hash = ?",
            (self._code_hash(code),),
        )
        if row is None:
            return None
        tid, mid, expires_at, used_at, csr_digest, response, transfer = row
        response = None if response is None else bytes(response)
        return EnrolmentCode(tid, mid, expires_at, used_at, csr_digest, response, bool(transfer))

    def terminal_id_holders(self, terminal_id: str, now: str) -> list[str]:
        """The merchants that hold ``terminal_id``: a valid certificate for it, or an open code (unused, unexpired)."""
        rows = self._all(
            "SELECT merchant_id FROM certificates WHERE terminal_id = ? AND revoked_at IS NULL "
            "UNION SELECT merchant_id FROM enrolment_codes WHERE terminal_id = ? AND used_at IS NULL "
            "AND expires_at >= ? ORDER BY merchant_id",
            (terminal_id, terminal_id, now),
        )
        return [str(r[0]) for r in rows]

    def withdraw_codes(self, terminal_id: str, other_than: str, at: str) -> int:
        """Spend the open codes for ``terminal_id`` of every merchant but ``other_than`` (as if used); how many."""
        where = "terminal_id = ? AND merchant_id <> ? AND used_at IS NULL AND expires_at >= ?"
        args = (terminal_id, other_than, at)
        with self.transaction():
            return self._exec(f"UPDATE enrolment_codes SET used_at = ? WHERE {where}", (at, *args))

    def use_enrolment_code(
        self,
        code: str,
        used_at: str,
        csr_digest: str,
        response: bytes,
        certificate_serial: str,
        not_after: str | None = None,
    ) -> str:
        """Mark the code used with the answer given and register the certificate; ``"enrolled"`` or why not.

        ``"refused"``: unknown, used (by another request first) or expired;
        ``"held"``: the terminal id has a valid certificate under another
        merchant and the code is not a transfer. On ``"enrolled"`` the
        terminal's earlier certificates are revoked (``re-enrolled``), and for
        a transfer code those of the same terminal id under other merchants
        (``transferred``).
        """
        with self.transaction():
            row = self._one(
                "SELECT terminal_id, merchant_id, used_at, expires_at, transfer FROM enrolment_codes "
                "WHERE code_hash = ?",
                (self._code_hash(code),),
            )
            if row is None or row[2] is not None or str(row[3]) < used_at:
                return "refused"
            terminal_id, merchant_id, transfer = str(row[0]), str(row[1]), bool(row[4])
            # PostgreSQL workers: enrolments of one terminal id (under any merchant) one at a time, and
            # "AND used_at IS NULL": of two uses of one code at once only the first changes the row.
            self.lock("terminal id", terminal_id)
            others = [m for m in self.terminal_id_holders(terminal_id, used_at) if m != merchant_id]
            held = [m for m in others if self._valid_serials(m, terminal_id)]
            if held and not transfer:
                return "held"
            spent = self._exec(
                "UPDATE enrolment_codes SET used_at = ?, csr_digest = ?, response = ? "
                "WHERE code_hash = ? AND used_at IS NULL",
                (used_at, csr_digest, response, self._code_hash(code)),
            )
            if spent != 1:
                return "refused"
            revoked = self._revoke(merchant_id, terminal_id, used_at, "re-enrolled")
            for other in held:
                moved = self._revoke(other, terminal_id, used_at, "transferred")
                self.add_audit(
                    used_at, "transferred", other, terminal_id, f"to merchant {merchant_id}; revoked {', '.join(moved)}"
                )
            self.add_certificate(certificate_serial, merchant_id, terminal_id, used_at, not_after)
            self._exec(
                "INSERT INTO terminals (merchant_id, terminal_id, certificate_serial, enrolled_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(merchant_id, terminal_id) DO UPDATE SET certificate_serial = excluded.certificate_serial, "
                "enrolled_at = excluded.enrolled_at",
                (merchant_id, terminal_id, certificate_serial, used_at),
            )
            detail = f"certificate {certificate_serial}" + (f"; revoked {', '.join(revoked)}" if revoked else "")
            self.add_audit(used_at, "enrolled", merchant_id, terminal_id, detail)
        return "enrolled"

    def record_sign_on(self, terminal_id: str, merchant_id: str, software_version: str, at: str) -> None:
        with self.transaction():
            self._exec(
                "INSERT INTO terminals (merchant_id, terminal_id, certificate_serial, enrolled_at, software_version, "
                "last_sign_on) VALUES (?, ?, '', ?, ?, ?) ON CONFLICT(merchant_id, terminal_id) DO UPDATE SET "
                "software_version = excluded.software_version, last_sign_on = excluded.last_sign_on",
                (merchant_id, terminal_id, at, software_version, at),
            )

    def terminals(self) -> list[dict[str, Any]]:
        """Every terminal (merchant, terminal id) with its current certificate and whether it is still valid."""
        rows = self._all(
            "SELECT t.terminal_id, t.merchant_id, t.certificate_serial, t.enrolled_at, t.software_version, "
            "t.last_sign_on, c.not_after, c.revoked_at, c.revoked_reason FROM terminals t "
            "LEFT JOIN certificates c ON c.serial = t.certificate_serial "
            "ORDER BY t.terminal_id, t.merchant_id"
        )
        out = []
        for tid, mid, serial, enrolled, software, sign_on, not_after, revoked_at, reason in rows:
            status = "no certificate" if not serial else "active" if revoked_at is None else str(reason or "revoked")
            out.append(
                {
                    "terminal_id": tid,
                    "merchant_id": mid,
                    "certificate_serial": serial,
                    "certificate_status": status,
                    "certificate_not_after": not_after,
                    "enrolled_at": enrolled,
                    "software_version": software,
                    "last_sign_on": sign_on,
                }
            )
        return out

    # ------------------------------------------------------------------ certificates

    _CERTIFICATE_COLUMNS = (
        "serial, merchant_id, terminal_id, issued_at, not_after, revoked_at, revoked_reason, rotation_key, "
        "rotation_public_key, rotation_response"
    )

    def certificate(self, serial: str) -> Certificate | None:
        """The certificate with this serial (upper-case hex), if the host issued it to a terminal."""
        row = self._one(f"SELECT {self._CERTIFICATE_COLUMNS} FROM certificates WHERE serial = ?", (serial,))
        if row is None:
            return None
        values = list(row)
        values[9] = None if values[9] is None else bytes(values[9])
        return Certificate(*values)

    def add_certificate(
        self, serial: str, merchant_id: str, terminal_id: str, issued_at: str, not_after: str | None = None
    ) -> None:
        """Register a certificate issued to the terminal (valid until revoked)."""
        self._exec(
            "INSERT INTO certificates (serial, merchant_id, terminal_id, issued_at, not_after) VALUES (?, ?, ?, ?, ?)",
            (serial, merchant_id, terminal_id, issued_at, not_after),
        )

    def _valid_serials(self, merchant_id: str, terminal_id: str) -> list[str]:
        rows = self._all(
            "SELECT serial FROM certificates WHERE merchant_id = ? AND terminal_id = ? AND revoked_at IS NULL "
            "ORDER BY issued_at, serial",
            (merchant_id, terminal_id),
        )
        return [str(r[0]) for r in rows]

    def _revoke(self, merchant_id: str, terminal_id: str, at: str, reason: str) -> list[str]:
        """Revoke the terminal's valid certificates (inside a transaction); their serials."""
        serials = self._valid_serials(merchant_id, terminal_id)
        self._exec(
            "UPDATE certificates SET revoked_at = ?, revoked_reason = ? WHERE merchant_id = ? AND terminal_id = ? "
            "AND revoked_at IS NULL",
            (at, reason, merchant_id, terminal_id),
        )
        return serials

    def revoke_terminal(self, merchant_id: str, terminal_id: str, at: str, reason: str = "revoked") -> list[str]:
        """Revoke every certificate of the terminal, a pending rotation's answer included; the serials revoked."""
        with self.transaction():
            serials = self._revoke(merchant_id, terminal_id, at, reason)
            self._exec(  # a replaced certificate can no longer fetch its rotation's answer either
                "UPDATE certificates SET rotation_response = NULL, rotation_key = NULL, rotation_public_key = NULL "
                "WHERE merchant_id = ? AND terminal_id = ?",
                (merchant_id, terminal_id),
            )
            self.add_audit(at, reason, merchant_id, terminal_id, f"revoked {', '.join(serials) or 'nothing'}")
        return serials

    def rotate_certificate(
        self,
        old_serial: str,
        new_serial: str,
        not_after: str,
        key: str,
        public_key_digest: str,
        response: bytes,
        at: str,
    ) -> bool:
        """Replace the valid certificate ``old_serial`` by ``new_serial``; False when it is no longer valid.

        The old one is revoked (``superseded``) and keeps the answer, so that
        a retry of the same rotation with it gets that answer again.
        """
        with self.transaction():
            old = self.certificate(old_serial)
            if old is None or not old.valid:
                return False
            # "AND revoked_at IS NULL": of two rotations of one certificate at once (PostgreSQL workers)
            # only the first replaces it
            if not self._exec(
                "UPDATE certificates SET revoked_at = ?, revoked_reason = 'superseded', rotation_key = ?, "
                "rotation_public_key = ?, rotation_response = ? WHERE serial = ? AND revoked_at IS NULL",
                (at, key, public_key_digest, response, old_serial),
            ):
                return False
            self.add_certificate(new_serial, old.merchant_id, old.terminal_id, at, not_after)
            self._exec(
                "UPDATE terminals SET certificate_serial = ? WHERE merchant_id = ? AND terminal_id = ?",
                (new_serial, old.merchant_id, old.terminal_id),
            )
            self.add_audit(at, "rotated", old.merchant_id, old.terminal_id, f"certificate {old_serial} -> {new_serial}")
        return True

    def terminal_merchants(self, terminal_id: str) -> list[str]:
        """The merchants that have (or had) a terminal with this id."""
        rows = self._all(
            "SELECT merchant_id FROM terminals WHERE terminal_id = ? UNION "
            "SELECT merchant_id FROM certificates WHERE terminal_id = ? ORDER BY merchant_id",
            (terminal_id, terminal_id),
        )
        return [str(r[0]) for r in rows]

    # ------------------------------------------------------------------ audit

    def add_audit(self, at: str, action: str, merchant_id: str, terminal_id: str, detail: str) -> None:
        """One line of the audit trail (enrolments, rotations, revocations, transfers)."""
        self._exec(
            "INSERT INTO audit (at, action, merchant_id, terminal_id, detail) VALUES (?, ?, ?, ?, ?)",
            (at, action, merchant_id, terminal_id, detail),
        )

    def audit(self, terminal_id: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT seq, at, action, merchant_id, terminal_id, detail FROM audit"
        args: tuple[Any, ...] = ()
        if terminal_id is not None:
            sql, args = sql + " WHERE terminal_id = ?", (terminal_id,)
        names = ("seq", "at", "action", "merchant_id", "terminal_id", "detail")
        return [dict(zip(names, row, strict=True)) for row in self._all(sql + " ORDER BY seq", args)]
