"""The host operator's actions on a data directory, with or without the server running.

Terminals: enrolment codes (a terminal id moves to another merchant only by
an explicit transfer), the list of terminals with their certificates,
revocation, and the audit trail of all of it.

Everything here works on the host's database and the CA files directly, so the
``posterm host`` commands and :class:`~simulator.host.service.HostService`
share one implementation and take effect on a running server at once (the
server reads blocked cards, velocity, refund allowances, parameters and
enrolment codes from the database on every request). Faults go through
:mod:`simulator.host.faults`.

The database is ``host.db`` in the data directory unless ``store`` names
another (``--store`` / ``POSTERM_HOST_STORE``: a ``postgresql://`` URL, see
:func:`~simulator.host.store.store_location`); the data directory still holds
the CA, the host's secrets (``keys/``, whatever the store), the server's files
and its faults.

A card is named by its PAN or by the host's own token of it (32 hex digits,
the ``pan_token`` of ``posterm host records --json``; not the terminal's
token, which the host no longer trusts): a PAN is turned into the token at
once and never stored or printed (masked at most).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emv.pan import PAN_MAX_DIGITS, PAN_MIN_DIGITS, mask_pan
from simulator.host.ca import load_or_create_ca
from simulator.host.faults import read_faults, running_server
from simulator.host.files import tighten
from simulator.host.keys import CARD_TOKEN_HEX_DIGITS
from simulator.host.params import ParametersError, for_terminal, publish, set_terminal_part
from simulator.host.ratelimit import ENROL_LIMITS_KEY, EnrolmentLimits
from simulator.host.schema import first_error
from simulator.host.storage import describe
from simulator.host.store import DB_NAME, HostStore, StoreMissing, host_keys, store_location
from simulator.host.store_issuer import DEFAULT_MERCHANT

if TYPE_CHECKING:
    from simulator.host.acquirer import SalePosition

__all__ = [
    "AdminError",
    "AdminRefused",
    "CardBlock",
    "audit_log",
    "block_card",
    "card_of",
    "credential_bundle",
    "enrol_terminals",
    "host_status",
    "make_enrolment_code",
    "open_store",
    "publish_parameters",
    "records",
    "revoke_terminal",
    "sale_positions",
    "set_enrolment_limits",
    "set_refund_allowance",
    "set_terminal_parameters",
    "set_velocity",
    "terminal_parameters",
    "terminals",
    "unblock_card",
]

ENROLMENT_CODE_TTL = dt.timedelta(hours=24)
#: 32 letters (no 0/O, 1/I): a code of 16 of them is one of 32**16 = 2**80 (see simulator.host.ratelimit).
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_log = logging.getLogger("posterm.host")


class AdminError(ValueError):
    """An operator action that cannot be carried out (one line)."""


class AdminRefused(AdminError):
    """An operator action refused as it stands (a terminal id of another merchant without a transfer)."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


@contextlib.contextmanager
def open_store(data_dir: Path, *, create: bool = True, store: str | None = None) -> Iterator[HostStore]:
    """The host's database (created if needed, unless ``create`` is False), closed afterwards.

    ``store``: a PostgreSQL URL (or a SQLite file) instead of the data
    directory's ``host.db``. The commands that only look (``status``,
    ``records``, ``issuer show``, ``params show``) pass ``create=False``: a
    folder or a database named by mistake gets a clear error, not a new empty
    host that then says "0 records".
    """
    try:
        location = store_location(data_dir, store)
    except ValueError as exc:
        raise AdminError(f"--store: {exc}") from None
    if create or Path(data_dir).is_dir():
        tighten(Path(data_dir))  # 0700 / 0600, also for a data directory an older host left readable
    try:
        opened = HostStore(location, create=create, keys=host_keys(data_dir))
    except StoreMissing:
        if store:
            raise AdminError(
                f"no simulated host in the database {describe(location)}: give the --store of a host "
                f"('posterm host serve --store URL' sets one up)"
            ) from None
        raise AdminError(
            f"no simulated host in {data_dir} (it has no {DB_NAME}): give the --data-dir of a host "
            f"('posterm host serve --data-dir DIR' sets one up)"
        ) from None
    try:
        yield opened
    finally:
        opened.close()


def _check_ids(terminal_id: str, merchant_id: str | None) -> None:
    for component, value in (("TerminalId", terminal_id), ("MerchantId", merchant_id)):
        if value is None:
            continue
        error = first_error(component, value)
        if error is not None:
            name = "terminal id" if component == "TerminalId" else "merchant id"
            raise AdminError(f"{name} {value!r} {error.removeprefix('body ')}")


def make_enrolment_code(
    data_dir: Path, terminal_id: str, merchant_id: str, *, transfer: bool = False, store: str | None = None
) -> str:
    """A one-time enrolment code for the terminal, valid 24 hours (``XXXX-XXXX-XXXX-XXXX``).

    A terminal id is unique within a merchant: one that another merchant
    holds (a valid certificate, or an open code) is refused unless
    ``transfer``, which moves it: the other merchant's certificates for it are
    revoked and its open codes withdrawn now, the move is written to the audit
    trail and logged, and the code's use revokes anything issued meanwhile.
    The other merchant's records and batches stay its own.
    """
    _check_ids(terminal_id, merchant_id)
    code = "-".join("".join(secrets.choice(_CODE_ALPHABET) for _ in range(4)) for _ in range(4))
    now = _stamp(_now())
    with open_store(data_dir, store=store) as db, db.transaction():
        db.lock("terminal id", terminal_id)  # PostgreSQL workers: one merchant's code for a terminal id at a time
        others = [m for m in db.terminal_id_holders(terminal_id, now) if m != merchant_id]
        if others and not transfer:
            raise AdminRefused(
                f"terminal id {terminal_id} belongs to merchant {', '.join(others)}: give another terminal id, or "
                f"--transfer to move it to merchant {merchant_id} (its certificate there is revoked)"
            )
        if others:
            revoked = [s for other in others for s in db.revoke_terminal(other, terminal_id, now, "transferred")]
            withdrawn = db.withdraw_codes(terminal_id, merchant_id, now)
            detail = (
                f"from merchant {', '.join(others)}: revoked {', '.join(revoked) or 'no certificate'}, "
                f"{withdrawn} open code(s) withdrawn"
            )
            db.add_audit(now, "transfer", merchant_id, terminal_id, detail)
            _log.warning("terminal id %s transferred to merchant %s %s", terminal_id, merchant_id, detail)
        db.add_enrolment_code(
            code, terminal_id, merchant_id, now, _stamp(_now() + ENROLMENT_CODE_TTL), transfer=transfer
        )
    return code


def credential_bundle(
    data_dir: Path,
    terminal_id: str,
    merchant_id: str,
    url: str | None = None,
    *,
    transfer: bool = False,
    store: str | None = None,
) -> dict[str, str]:
    """What a terminal needs to enrol: the host's URL, its CA certificate and a fresh code.

    ``url`` defaults to the running server's (``server.json``); without a
    running server it must be given. ``transfer``: see :func:`make_enrolment_code`.
    """
    if url is None:
        info = running_server(data_dir)
        if info is None:
            raise AdminError(f"no host is running on {data_dir}: start 'posterm host serve' or give --url")
        url = info.url
    ca = load_or_create_ca(Path(data_dir) / "tls")
    code = make_enrolment_code(data_dir, terminal_id, merchant_id, transfer=transfer, store=store)
    return {
        "url": url,
        "ca_certificate_pem": ca.certificate_pem.decode("ascii"),
        "enrolment_code": code,
        "terminal_id": terminal_id,
        "merchant_id": merchant_id,
    }


def enrol_terminals(
    data_dir: Path, requests: Sequence[tuple[str, str, str]], *, store: str | None = None
) -> list[str]:
    """Enrol many terminals at once, without the network: for each (terminal id, merchant id, CSR PEM), its certificate.

    What ``POST /v1/enrol`` does with a fresh one-time code, for a fleet the
    operator sets up in bulk (the load generator enrols a thousand terminals
    with it): each code made and used at once with the CSR, the certificate
    registered with its serial, all in one database transaction. A terminal id
    another merchant holds is refused, as a code for it would be. ``store``: as :func:`open_store`.
    """
    from simulator.host.ca import CsrError

    for terminal_id, merchant_id, _ in requests:
        _check_ids(terminal_id, merchant_id)
    ca = load_or_create_ca(Path(data_dir) / "tls")
    now = _stamp(_now())
    expires = _stamp(_now() + ENROLMENT_CODE_TTL)
    certificates: list[str] = []
    with open_store(data_dir, store=store) as db, db.transaction():
        for terminal_id, merchant_id, csr_pem in requests:
            code = "-".join("".join(secrets.choice(_CODE_ALPHABET) for _ in range(4)) for _ in range(4))
            db.add_enrolment_code(code, terminal_id, merchant_id, now, expires)
            try:
                issued = ca.issue_terminal_certificate(csr_pem, terminal_id, merchant_id)
            except CsrError as exc:
                raise AdminError(f"terminal {terminal_id}: {exc}") from None
            answer = json.dumps(
                {
                    "terminal_id": terminal_id,
                    "merchant_id": merchant_id,
                    "certificate_pem": issued.pem.decode("ascii"),
                    "ca_certificate_pem": ca.certificate_pem.decode("ascii"),
                },
                separators=(",", ":"),
            ).encode("ascii")
            digest = db.digest(csr_pem.strip())
            outcome = db.use_enrolment_code(code, now, digest, answer, issued.serial, _stamp(issued.not_after))
            if outcome == "held":
                raise AdminRefused(f"terminal id {terminal_id} is enrolled under another merchant")
            if outcome != "enrolled":  # pragma: no cover - the code was made just above, in this transaction
                raise AdminError(f"terminal {terminal_id}: its enrolment code was refused ({outcome})")
            certificates.append(issued.pem.decode("ascii"))
    return certificates


def terminals(data_dir: Path, *, store: str | None = None) -> list[dict[str, Any]]:
    """Every terminal (per merchant) with its current certificate and that certificate's status."""
    with open_store(data_dir, create=False, store=store) as db:
        return db.terminals()


def revoke_terminal(
    data_dir: Path, terminal_id: str, merchant_id: str | None = None, *, store: str | None = None
) -> tuple[str, list[str]]:
    """Revoke every certificate of the terminal: (its merchant, the serials revoked).

    Without ``merchant_id`` the terminal id must belong to one merchant only.
    The terminal's next request is refused (``401 certificate_revoked``); it
    needs a new enrolment code to come back.
    """
    _check_ids(terminal_id, merchant_id)
    with open_store(data_dir, create=False, store=store) as db:
        merchants = db.terminal_merchants(terminal_id)
        if merchant_id is None:
            if not merchants:
                raise AdminError(f"no terminal {terminal_id} on this host ('posterm host terminal list')")
            if len(merchants) > 1:
                raise AdminError(
                    f"terminal id {terminal_id} exists under merchants {', '.join(merchants)}: give --merchant"
                )
            merchant_id = merchants[0]
        elif merchant_id not in merchants:
            raise AdminError(f"no terminal {terminal_id} of merchant {merchant_id} on this host")
        serials = db.revoke_terminal(merchant_id, terminal_id, _stamp(_now()))
    _log.info("terminal %s of merchant %s revoked: %s", terminal_id, merchant_id, ", ".join(serials) or "nothing")
    return merchant_id, serials


def audit_log(data_dir: Path, terminal_id: str | None = None, *, store: str | None = None) -> list[dict[str, Any]]:
    """The audit trail: enrolments, rotations, revocations and transfers, oldest first."""
    with open_store(data_dir, create=False, store=store) as db:
        return db.audit(terminal_id)


def set_enrolment_limits(
    data_dir: Path,
    per_client_per_minute: int,
    overall_per_minute: int,
    failure_delay_seconds: float = 1.0,
    *,
    store: str | None = None,
) -> EnrolmentLimits:
    """How fast enrolment may be tried (see :mod:`simulator.host.ratelimit`); read when the host starts."""
    try:
        limits = EnrolmentLimits(per_client_per_minute, overall_per_minute, failure_delay_seconds)
    except ValueError as exc:
        raise AdminError(str(exc)) from None
    with open_store(data_dir, store=store) as db:
        db.set_meta(ENROL_LIMITS_KEY, limits.to_json())
    return limits


def _check_code(code: str) -> None:
    if first_error("ResponseCode", code) is not None or code == "00":
        raise AdminError(f"response code {code!r}: two characters of [0-9A-Z], not 00")


@dataclass(frozen=True)
class CardBlock:
    """A card as the operator named it: the host's token, and how to show it (masked PAN, or the token)."""

    token: str
    shown: str


def _card_text(card: str) -> tuple[str | None, str | None]:
    """(PAN, token) from what the operator typed: one of them, or AdminError (the input is never quoted)."""
    text = card.strip()
    digits = text.replace(" ", "").replace("-", "")
    if digits.isascii() and digits.isdigit() and PAN_MIN_DIGITS <= len(digits) <= PAN_MAX_DIGITS:
        return digits, None
    token = text.lower()
    if len(token) == CARD_TOKEN_HEX_DIGITS and all(c in "0123456789abcdef" for c in token):
        return None, token
    raise AdminError(  # not quoted: it may be (part of) a card number
        f"not a card: give its PAN ({PAN_MIN_DIGITS} to {PAN_MAX_DIGITS} digits) or the host's card token "
        f"({CARD_TOKEN_HEX_DIGITS} hex digits, the pan_token of 'posterm host records --json')"
    )


def card_of(store: HostStore, card: str) -> CardBlock:
    """The host's token of ``card``: a PAN (spaces and dashes allowed) or a host card token."""
    pan, token = _card_text(card)
    if pan is not None:
        return CardBlock(store.card_token(pan), mask_pan(pan))
    assert token is not None
    return CardBlock(token, token)


def block_card(data_dir: Path, card: str, code: str = "62", *, store: str | None = None) -> CardBlock:
    """Decline this card's authorisations with ``code`` (62 restricted, 43 stolen, ...), on every terminal.

    ``card``: its PAN (never stored) or the host's card token.
    """
    _check_code(code)
    _card_text(card)  # before a host is made for nothing
    with open_store(data_dir, store=store) as db:
        named = card_of(db, card)
        db.block_card(named.token, code, _stamp(_now()))
    return named


def unblock_card(data_dir: Path, card: str, *, store: str | None = None) -> tuple[CardBlock, bool]:
    """Stop declining this card (PAN or host card token); whether it was blocked."""
    with open_store(data_dir, create=False, store=store) as db:
        named = card_of(db, card)
        return named, db.unblock_card(named.token)


def reset_pin_tries(data_dir: Path, card: str, *, store: str | None = None) -> tuple[CardBlock, int]:
    """Forget a card's wrong online PIN tries (PAN or host card token): its PIN is checked again; how many it had."""
    with open_store(data_dir, create=False, store=store) as db, db.transaction():
        named = card_of(db, card)
        tries = db.wrong_pin_tries(named.token)
        db.reset_pin_tries(named.token)
        return named, tries


def set_refund_allowance(data_dir: Path, merchant_id: str, daily_amount: int, *, store: str | None = None) -> None:
    """Let the merchant refund up to ``daily_amount`` minor units per currency per 24 h no sale covers (0: none).

    ``merchant_id`` ``*`` sets the default of every merchant without an allowance of its own.
    """
    error = None if merchant_id == DEFAULT_MERCHANT else first_error("MerchantId", merchant_id)
    if error is not None:
        raise AdminError(f"merchant id {merchant_id!r} {error.removeprefix('body ')}")
    if daily_amount < 0:
        raise AdminError("refund allowance: an amount in minor units, >= 0 (0 = none)")
    with open_store(data_dir, store=store) as db, db.transaction():
        db.set_refund_allowance(merchant_id, daily_amount, _stamp(_now()))


def set_velocity(data_dir: Path, max_approvals: int, window_seconds: int, *, store: str | None = None) -> None:
    """At most ``max_approvals`` approvals per card per ``window_seconds``; 0 switches the check off."""
    if max_approvals < 0 or window_seconds < 0:
        raise AdminError("velocity: max approvals and window are >= 0 (0 = off)")
    with open_store(data_dir, store=store) as db:
        db.set_velocity(max_approvals, window_seconds)


def publish_parameters(
    data_dir: Path, update: Mapping[str, Any], *, checked: bool = True, store: str | None = None
) -> int:
    """Publish the next parameters version (see :mod:`simulator.host.params`); its number."""
    with open_store(data_dir, store=store) as db:
        try:
            return publish(db, update, checked=checked)
        except ParametersError as exc:
            raise AdminError(f"parameters refused: {exc}") from None


def _merchant_of(store: HostStore, terminal_id: str, merchant_id: str | None) -> str:
    """The merchant of the terminal's own part: given, else the one merchant the terminal id is enrolled under."""
    _check_ids(terminal_id, merchant_id)
    if merchant_id is not None:
        return merchant_id
    merchants = store.terminal_merchants(terminal_id)
    if len(merchants) != 1:
        why = "is not enrolled" if not merchants else f"exists under merchants {', '.join(merchants)}"
        raise AdminError(f"terminal {terminal_id} {why}: give --merchant-id")
    return merchants[0]


def set_terminal_parameters(
    data_dir: Path,
    terminal_id: str,
    update: Mapping[str, Any],
    *,
    merchant_id: str | None = None,
    checked: bool = True,
    store: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """Merge ``update`` over the terminal's own part of its parameters; (its merchant, the own part now)."""
    with open_store(data_dir, store=store) as db:
        merchant = _merchant_of(db, terminal_id, merchant_id)
        try:
            return merchant, set_terminal_part(db, merchant, terminal_id, update, checked=checked)
        except ParametersError as exc:
            raise AdminError(f"parameters refused: {exc}") from None


def terminal_parameters(
    data_dir: Path, terminal_id: str, merchant_id: str | None = None, *, store: str | None = None
) -> bytes:
    """The parameters document the terminal gets now (its version made if the parts moved)."""
    with open_store(data_dir, create=False, store=store) as db:
        return for_terminal(db, _merchant_of(db, terminal_id, merchant_id), terminal_id).document


def records(data_dir: Path, *, store: str | None = None) -> list[dict[str, Any]]:
    """Every authorisation, advice and reversal the host processed, oldest first (no PAN)."""
    with open_store(data_dir, create=False, store=store) as db:
        return [r.to_json() for r in db.records()]


def sale_positions(
    data_dir: Path, terminal_id: str | None = None, *, store: str | None = None
) -> dict[str, SalePosition]:
    """Per sale ``txn_id``: what the host holds as charged and as refunded against it (money checks).

    See :func:`simulator.host.acquirer.sale_positions`; the in-process host
    offers the same through :meth:`~simulator.host.inprocess.InProcessHost.sale_positions`.
    """
    from simulator.host.acquirer import sale_positions as positions

    with open_store(data_dir, store=store) as db:
        return positions(db.records(terminal_id), terminal_id)


def host_status(data_dir: Path, *, store: str | None = None) -> dict[str, Any]:
    """Running or not, URL, faults, parameters version, velocity, blocked cards, terminals, counts."""
    with open_store(data_dir, create=False, store=store) as db:
        info = running_server(data_dir)
        _, faults = read_faults(data_dir)
        max_approvals, window = db.velocity()
        rows = db.records()
        orders = db.qr_orders()
        return {
            "running": info is not None,
            "pid": info.pid if info else None,
            "url": info.url if info else None,
            "workers": info.workers if info else None,
            "metrics_url": info.metrics_url if info else None,
            "faults": faults.to_json() if info else None,
            "store": db.where,
            "parameters_version": db.parameters_version(),
            "velocity": {"max_approvals": max_approvals, "window_seconds": window},
            "enrol_limits": asdict(EnrolmentLimits.from_json(db.meta(ENROL_LIMITS_KEY))),
            "blocked_cards": db.blocked_cards(),
            "pin_tries": db.pin_tries(),
            "pin_keys": db.keys.pin_key_checks(),
            "refund_allowances": db.refund_allowances(),
            "terminals": db.terminals(),
            "wallet_mode": db.wallet_mode(),
            "qr_orders": {state: sum(o.state == state for o in orders) for state in sorted({o.state for o in orders})},
            "records": {
                "authorisations": sum(1 for r in rows if r.method == "authorise"),
                "advices": sum(1 for r in rows if r.method == "advise"),
                "reversals": sum(1 for r in rows if r.method == "reverse"),
            },
        }
