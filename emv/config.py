"""Terminal and combination configuration (EMV Contactless Book A/B terms).

A *combination* is an AID with the kernel that processes it and the limits
Entry Point applies to it.  :class:`TerminalConfig` holds the terminal's own
data objects, the combinations, the CA public keys, the exception file and the
certificate revocation list.

Configuration comes from files that ``terminal/`` reads; here it is only
validated: :meth:`TerminalConfig.from_dict` raises :class:`ConfigError` naming
the field that is wrong, and :meth:`TerminalConfig.to_dict` gives the same
shape back.

>>> cfg = TerminalConfig.example(capks=None)
>>> [c.label for c in cfg.combinations]
['VISA', 'MASTERCARD']
>>> TerminalConfig.from_dict(cfg.to_dict(), capks=None) == cfg
True
>>> bad = cfg.to_dict(); bad["combinations"][0]["ttq"] = "3600"
>>> TerminalConfig.from_dict(bad, capks=None)
Traceback (most recent call last):
...
emv.config_fields.ConfigError: combinations[0].ttq: must be 4 bytes of hex, got 2
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from emv import c2_data
from emv.capabilities import without_pin_claims
from emv.capk import CapkStore
from emv.config_fields import (
    ConfigError,
    ExceptionFile,
    _bool,
    _check_keys,
    _hex,
    _int,
    _n_bytes,
    _opt_int,
    _str,
    _tag_key,
)
from emv.oda import CertificateRevocationList

__all__ = [
    "CapkStore",
    "CertificateRevocationList",
    "Combination",
    "ConfigError",
    "ExceptionFile",
    "TerminalConfig",
]


# --------------------------------------------------------------------------- combination


def _kernel_id_value(path: str, value: Any) -> int:
    """A kernel identifier: an international kernel's short id, or a domestic kernel's three bytes.

    >>> hex(_kernel_id_value("k", 0x810156)), _kernel_id_value("k", 3)
    ('0x810156', 3)
    >>> _kernel_id_value("k", 0x0156)
    Traceback (most recent call last):
    ...
    emv.config_fields.ConfigError: k: 342 is neither a short kernel id (1..255) nor a domestic kernel's 3 bytes (b8 set)
    """
    kid = _int(path, value, 1, 0xFFFFFF)
    if kid > 0xFF and not kid & 0x800000:
        raise ConfigError(path, f"{kid} is neither a short kernel id (1..255) nor a domestic kernel's 3 bytes (b8 set)")
    return kid


@dataclass(frozen=True)
class Combination:
    """An AID, the kernel for it, and the Entry Point / kernel parameters (Book B 3.1.1).

    Limits are in minor units of the terminal currency; ``None`` means the
    limit is absent (the terminal floor limit 9F1B stands in for an absent
    reader floor limit).  The ``C-2`` fields are used by kernel 2 only.
    """

    aid: bytes
    kernel_id: int
    label: str = ""
    tac_denial: bytes = bytes(5)
    tac_online: bytes = bytes(5)
    tac_default: bytes = bytes(5)
    floor_limit: int | None = None
    transaction_limit: int | None = None
    cvm_required_limit: int | None = None
    ttq: bytes = bytes(4)
    status_check: bool = False
    zero_amount_allowed: bool = True
    extended_selection_supported: bool = False
    application_version: bytes = b"\x00\x02"
    # C-2
    card_data_input_capability: bytes | None = None  # DF8117
    cvm_capability_cvm_required: bytes | None = None  # DF8118
    cvm_capability_no_cvm_required: bytes | None = None  # DF8119
    security_capability: bytes | None = None  # DF811F
    kernel_configuration: bytes | None = None  # DF811B
    # random transaction selection (Book 3 10.6.2)
    target_percent: int = 0
    max_target_percent: int = 0
    threshold: int = 0
    default_ddol: bytes = b""
    default_tdol: bytes = b""
    extra: Mapping[int, bytes] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash((self.aid, self.kernel_id, self.label))

    @property
    def rid(self) -> bytes:
        return self.aid[:5]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str = "combination") -> Combination:
        """Validate one combination; errors name ``path.field``.

        >>> Combination.from_dict({"aid": "A0000000041010", "kernel_id": 2}).aid.hex().upper()
        'A0000000041010'
        >>> Combination.from_dict({"aid": "A0000000031010", "kernel_id": 3})
        Traceback (most recent call last):
        ...
        emv.config_fields.ConfigError: combination.ttq: kernel 3 needs TTQ byte 1 b6 (qVSDC supported)
        """
        _check_keys(path, d, [f.name for f in fields(cls)], ("aid", "kernel_id"))

        def p(name: str) -> str:
            return f"{path}.{name}"

        def opt_hex(name: str, length: int) -> bytes | None:
            v = d.get(name)
            return None if v is None else _hex(p(name), v, length)

        extra_raw = d.get("extra", {})
        if not isinstance(extra_raw, Mapping):
            raise ConfigError(p("extra"), "expected an object of hex tag -> hex value")
        extra = {_tag_key(f"{p('extra')}.{k}", k): _hex(f"{p('extra')}.{k}", v) for k, v in extra_raw.items()}
        _check_c2_objects(p("extra"), extra)
        target = _int(p("target_percent"), d.get("target_percent", 0), 0, 99)
        max_target = _int(p("max_target_percent"), d.get("max_target_percent", 0), 0, 99)
        if max_target < target:
            raise ConfigError(p("max_target_percent"), "must not be below target_percent")
        combo = cls(
            aid=_hex(p("aid"), d["aid"], range(5, 17)),
            # a short id (1..63, Book B) or a domestic kernel's three bytes (0x810156: b8 of byte 1 set)
            kernel_id=_kernel_id_value(p("kernel_id"), d["kernel_id"]),
            label=_str(p("label"), d.get("label", ""), 16),
            tac_denial=_hex(p("tac_denial"), d.get("tac_denial", "0000000000"), 5),
            tac_online=_hex(p("tac_online"), d.get("tac_online", "0000000000"), 5),
            tac_default=_hex(p("tac_default"), d.get("tac_default", "0000000000"), 5),
            floor_limit=_opt_int(p("floor_limit"), d.get("floor_limit")),
            transaction_limit=_opt_int(p("transaction_limit"), d.get("transaction_limit")),
            cvm_required_limit=_opt_int(p("cvm_required_limit"), d.get("cvm_required_limit")),
            ttq=_hex(p("ttq"), d.get("ttq", "00000000"), 4),
            status_check=_bool(p("status_check"), d.get("status_check", False)),
            zero_amount_allowed=_bool(p("zero_amount_allowed"), d.get("zero_amount_allowed", True)),
            extended_selection_supported=_bool(
                p("extended_selection_supported"), d.get("extended_selection_supported", False)
            ),
            application_version=_hex(p("application_version"), d.get("application_version", "0002"), 2),
            card_data_input_capability=opt_hex("card_data_input_capability", 1),
            cvm_capability_cvm_required=opt_hex("cvm_capability_cvm_required", 1),
            cvm_capability_no_cvm_required=opt_hex("cvm_capability_no_cvm_required", 1),
            security_capability=opt_hex("security_capability", 1),
            kernel_configuration=opt_hex("kernel_configuration", 1),
            target_percent=target,
            max_target_percent=max_target,
            threshold=_int(p("threshold"), d.get("threshold", 0)),
            default_ddol=_hex(p("default_ddol"), d.get("default_ddol", "")),
            default_tdol=_hex(p("default_tdol"), d.get("default_tdol", "")),
            extra=extra,
        )
        if combo.kernel_id == 3 and not combo.ttq[0] & 0x20:
            raise ConfigError(p("ttq"), "kernel 3 needs TTQ byte 1 b6 (qVSDC supported)")
        if combo.kernel_id == 7 and not combo.ttq[0] & 0x20:
            raise ConfigError(p("ttq"), "kernel 7 needs TTQ byte 1 b6 (qPBOC supported)")
        return combo

    def to_dict(self) -> dict[str, Any]:
        def h(b: bytes | None) -> str | None:
            return None if b is None else b.hex().upper()

        return {
            "aid": h(self.aid),
            "kernel_id": self.kernel_id,
            "label": self.label,
            "tac_denial": h(self.tac_denial),
            "tac_online": h(self.tac_online),
            "tac_default": h(self.tac_default),
            "floor_limit": self.floor_limit,
            "transaction_limit": self.transaction_limit,
            "cvm_required_limit": self.cvm_required_limit,
            "ttq": h(self.ttq),
            "status_check": self.status_check,
            "zero_amount_allowed": self.zero_amount_allowed,
            "extended_selection_supported": self.extended_selection_supported,
            "application_version": h(self.application_version),
            "card_data_input_capability": h(self.card_data_input_capability),
            "cvm_capability_cvm_required": h(self.cvm_capability_cvm_required),
            "cvm_capability_no_cvm_required": h(self.cvm_capability_no_cvm_required),
            "security_capability": h(self.security_capability),
            "kernel_configuration": h(self.kernel_configuration),
            "target_percent": self.target_percent,
            "max_target_percent": self.max_target_percent,
            "threshold": self.threshold,
            "default_ddol": h(self.default_ddol),
            "default_tdol": h(self.default_tdol),
            "extra": {f"{t:02X}": v.hex().upper() for t, v in self.extra.items()},
        }


def _check_c2_objects(path: str, extra: Mapping[int, bytes]) -> None:
    """Book C-2 data objects given by tag in ``extra``: their format and length (Annex A).

    Where a named key stands for the same object (``tac_default`` and DF8120), the
    one in ``extra`` is the one kernel 2 uses (:func:`emv.c2_data.combination_objects`).
    """
    for tag, value in extra.items():
        why = c2_data.check(tag, value)
        if why is not None:
            raise ConfigError(f"{path}.{tag:X}", why)


# --------------------------------------------------------------------------- terminal


@dataclass(frozen=True)
class TerminalConfig:
    """The terminal's data objects and everything Entry Point and the kernels consult.

    ``terminal_type`` is written in decimal as the book prints it (22 -> 9F35 ``22``);
    ``country_code`` and ``currency`` are ISO numeric codes; limits are minor units.

    ``pin_pad``: is a PIN pad present (default no)?  Without one, every PIN claim
    is masked off on construction, whatever the path (see :mod:`emv.capabilities`
    for which bits, and why masking rather than refusing), one line per change
    in ``capability_notes`` for the caller to log.  ``replace(cfg, pin_pad=True)``
    does not bring masked bits back: build the configuration with its PIN pad.

    >>> cfg = TerminalConfig.example(capks=None)
    >>> cfg.terminal_capabilities.hex().upper(), cfg.combinations[0].ttq.hex().upper()
    ('E028C8', '32004000')
    >>> TerminalConfig.example(capks=None, pin_pad=True).terminal_capabilities.hex().upper()
    'E068C8'
    >>> print(cfg.capability_notes[0])
    terminal_capabilities: E068C8 claims enciphered PIN online without a PIN pad (pin_pad false); advertised as E028C8
    """

    terminal_type: int
    terminal_capabilities: bytes
    additional_capabilities: bytes
    country_code: int
    currency: int
    currency_exponent: int
    terminal_floor_limit: int
    merchant_category_code: str
    merchant_id: str
    terminal_id: str
    merchant_name_location: str
    acquirer_id: str
    ifd_serial: str
    online_capable: bool
    combinations: tuple[Combination, ...]
    capks: CapkStore = field(default_factory=CapkStore, compare=False)
    exception_file: ExceptionFile = field(default_factory=ExceptionFile)
    revocation_list: CertificateRevocationList = field(
        default_factory=CertificateRevocationList, compare=False
    )
    pin_pad: bool = False
    capability_notes: tuple[str, ...] = field(default=(), compare=False)

    _REQUIRED = (
        "terminal_type",
        "terminal_capabilities",
        "additional_capabilities",
        "country_code",
        "currency",
        "combinations",
    )

    def __post_init__(self) -> None:
        if self.pin_pad:
            return
        caps, combos, notes = without_pin_claims(self.terminal_capabilities, self.combinations)
        object.__setattr__(self, "terminal_capabilities", caps)
        object.__setattr__(self, "combinations", combos)
        object.__setattr__(self, "capability_notes", (*self.capability_notes, *notes))

    # -- data objects ---------------------------------------------------------------------------

    def terminal_type_byte(self) -> bytes:
        """9F35 (n2)."""
        return _n_bytes(self.terminal_type, 1)

    def country_code_bcd(self) -> bytes:
        """9F1A (n3 in 2 bytes)."""
        return _n_bytes(self.country_code, 2)

    def data_objects(self) -> dict[int, bytes]:
        """The terminal's own data objects that do not depend on the transaction.

        >>> cfg = TerminalConfig.example(capks=None)
        >>> cfg.data_objects()[0x9F1A].hex(), cfg.data_objects()[0x9F35].hex()
        ('0276', '22')
        """
        return {
            0x9F35: self.terminal_type_byte(),
            0x9F33: self.terminal_capabilities,
            0x9F40: self.additional_capabilities,
            0x9F1A: self.country_code_bcd(),
            0x9F1B: self.terminal_floor_limit.to_bytes(4, "big"),
            0x9F15: bytes.fromhex(self.merchant_category_code),
            0x9F16: self.merchant_id.encode("ascii").ljust(15, b" "),
            0x9F1C: self.terminal_id.encode("ascii").ljust(8, b" "),
            0x9F4E: self.merchant_name_location.encode("ascii"),
            0x9F01: _n_bytes(int(self.acquirer_id or "0"), 6),
            0x9F1E: self.ifd_serial.encode("ascii").ljust(8, b" "),
        }

    # -- (de)serialisation ------------------------------------------------------------------------

    @classmethod
    def from_dict(
        cls,
        d: Mapping[str, Any],
        capks: CapkStore | None,
        revocation_list: CertificateRevocationList | None = None,
    ) -> TerminalConfig:
        """Validate a configuration mapping (as read from JSON/TOML); errors name the field.

        ``capks`` is the CA key store (``None``: an empty store, so ODA fails
        with ``ca_key_missing``).  The revocation list comes from ``revocation_list``
        in the mapping (``[{"rid": hex, "index": int, "serial": hex}]``) unless a
        ready-made one is passed.
        """
        _check_keys("", d, [f.name for f in fields(cls)], cls._REQUIRED)
        combos_raw = d["combinations"]
        if not isinstance(combos_raw, (list, tuple)) or not combos_raw:
            raise ConfigError("combinations", "expected a non-empty list")
        combos = tuple(Combination.from_dict(c, f"combinations[{i}]") for i, c in enumerate(combos_raw))
        seen: set[tuple[bytes, int]] = set()
        for i, c in enumerate(combos):
            if (c.aid, c.kernel_id) in seen:
                what = f"AID {c.aid.hex().upper()} with kernel {c.kernel_id} configured twice"
                raise ConfigError(f"combinations[{i}]", what)
            seen.add((c.aid, c.kernel_id))
        ef_raw = d.get("exception_file", [])
        if not isinstance(ef_raw, (list, tuple)):
            raise ConfigError("exception_file", "expected a list of 'sha256:<hex>' entries")
        if revocation_list is None:
            revocation_list = cls._parse_revocations(d.get("revocation_list", []))
        mcc = _str("merchant_category_code", d.get("merchant_category_code", "0000"), 4, "n")
        if len(mcc) != 4:
            raise ConfigError("merchant_category_code", "must be 4 digits")
        return cls(
            terminal_type=cls._parse_terminal_type(d["terminal_type"]),
            terminal_capabilities=_hex("terminal_capabilities", d["terminal_capabilities"], 3),
            additional_capabilities=_hex("additional_capabilities", d["additional_capabilities"], 5),
            country_code=_int("country_code", d["country_code"], 0, 999),
            currency=_int("currency", d["currency"], 0, 999),
            currency_exponent=_int("currency_exponent", d.get("currency_exponent", 2), 0, 9),
            terminal_floor_limit=_int(
                "terminal_floor_limit", d.get("terminal_floor_limit", 0), 0, 0xFFFFFFFF
            ),
            merchant_category_code=mcc,
            merchant_id=_str("merchant_id", d.get("merchant_id", ""), 15),
            terminal_id=_str("terminal_id", d.get("terminal_id", ""), 8),
            merchant_name_location=_str("merchant_name_location", d.get("merchant_name_location", ""), 64),
            acquirer_id=_str("acquirer_id", d["acquirer_id"], 11, "n") if d.get("acquirer_id") else "",
            ifd_serial=_str("ifd_serial", d.get("ifd_serial", ""), 8),
            online_capable=_bool("online_capable", d.get("online_capable", True)),
            combinations=combos,
            capks=capks if capks is not None else CapkStore(),
            exception_file=ExceptionFile.from_entries(ef_raw),
            revocation_list=revocation_list,
            pin_pad=_bool("pin_pad", d.get("pin_pad", False)),
        )

    @staticmethod
    def _parse_terminal_type(value: Any) -> int:
        tt = _int("terminal_type", value, 11, 36)
        if tt // 10 not in (1, 2, 3) or tt % 10 not in range(1, 7):
            raise ConfigError("terminal_type", f"{tt} is not a terminal type of Book 4 Annex A1")
        return tt

    @staticmethod
    def _parse_revocations(raw: Any) -> CertificateRevocationList:
        if not isinstance(raw, (list, tuple)):
            raise ConfigError("revocation_list", "expected a list of {rid, index, serial}")
        out = set()
        for i, entry in enumerate(raw):
            path = f"revocation_list[{i}]"
            _check_keys(path, entry, ("rid", "index", "serial"), ("rid", "index", "serial"))
            out.add(
                (
                    _hex(f"{path}.rid", entry["rid"], 5),
                    _int(f"{path}.index", entry["index"], 0, 0xFF),
                    _hex(f"{path}.serial", entry["serial"], 3),
                )
            )
        return CertificateRevocationList(out)

    def to_dict(self) -> dict[str, Any]:
        """The mapping :meth:`from_dict` accepts (CAPKs are not part of it)."""
        out: dict[str, Any] = {
            "terminal_type": self.terminal_type,
            "terminal_capabilities": self.terminal_capabilities.hex().upper(),
            "additional_capabilities": self.additional_capabilities.hex().upper(),
            "country_code": self.country_code,
            "currency": self.currency,
            "currency_exponent": self.currency_exponent,
            "terminal_floor_limit": self.terminal_floor_limit,
            "merchant_category_code": self.merchant_category_code,
            "merchant_id": self.merchant_id,
            "terminal_id": self.terminal_id,
            "merchant_name_location": self.merchant_name_location,
            "acquirer_id": self.acquirer_id,
            "ifd_serial": self.ifd_serial,
            "online_capable": self.online_capable,
            "pin_pad": self.pin_pad,
            "combinations": [c.to_dict() for c in self.combinations],
            "exception_file": self.exception_file.to_entries(),
        }
        out["revocation_list"] = [
            {"rid": rid.hex().upper(), "index": idx, "serial": f"{serial:06X}"}
            for rid, idx, serial in sorted(self.revocation_list.entries)
        ]
        return out

    # -- example -----------------------------------------------------------------------------------

    @classmethod
    def example(
        cls,
        capks: CapkStore | None,
        exception_file: ExceptionFile | None = None,
        revocation_list: CertificateRevocationList | None = None,
        pin_pad: bool = False,
    ) -> TerminalConfig:
        """The default configuration of docs/card-profiles.md, for tests.

        EUR (978, exponent 2), country 0276, terminal type 22; per combination a
        transaction limit of 1000.00, floor limit 50.00, CVM required limit 50.00.
        The capabilities below claim online PIN; without ``pin_pad`` they are
        masked as the class says, which gives the shipped terminal.json's values.
        """
        visa = Combination(
            aid=bytes.fromhex("A0000000031010"),
            kernel_id=3,
            label="VISA",
            floor_limit=5000,
            transaction_limit=100000,
            cvm_required_limit=5000,
            # b1: qVSDC, contact chip, online PIN, signature; b3: consumer device CVM
            ttq=bytes.fromhex("36004000"),
            application_version=bytes.fromhex("0096"),
        )
        mastercard = Combination(
            aid=bytes.fromhex("A0000000041010"),
            kernel_id=2,
            label="MASTERCARD",
            tac_denial=bytes.fromhex("0000000000"),
            tac_online=bytes.fromhex("F45084800C"),
            tac_default=bytes.fromhex("F45084800C"),
            floor_limit=5000,
            transaction_limit=100000,
            cvm_required_limit=5000,
            application_version=bytes.fromhex("0002"),
            card_data_input_capability=b"\xe0",  # manual, magnetic stripe, IC with contacts
            cvm_capability_cvm_required=b"\x60",  # enciphered PIN online, signature
            cvm_capability_no_cvm_required=b"\x08",  # no CVM
            security_capability=b"\x08",  # CDA
            kernel_configuration=b"\x30",  # on-device cardholder verification, relay resistance supported
            default_ddol=bytes.fromhex("9F3704"),
            extra={0xDF811D: b"\x02"},  # Book C-2: keep up to two torn transactions to recover
        )
        return cls(
            terminal_type=22,
            terminal_capabilities=bytes.fromhex("E068C8"),
            additional_capabilities=bytes.fromhex("6000F0A001"),
            country_code=276,
            currency=978,
            currency_exponent=2,
            terminal_floor_limit=5000,
            merchant_category_code="5411",
            merchant_id="POSTERM0000001",
            terminal_id="TERM0001",
            merchant_name_location="posterm test shop, Berlin",
            acquirer_id="123456",
            ifd_serial="SIM00001",
            online_capable=True,
            combinations=(visa, mastercard),
            capks=capks if capks is not None else CapkStore(),
            exception_file=exception_file or ExceptionFile(),
            revocation_list=revocation_list if revocation_list is not None else CertificateRevocationList(),
            pin_pad=pin_pad,
        )

