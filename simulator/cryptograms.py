"""Application cryptograms (ARQC / TC / AAC) and ARPCs, shared by the simulated card and host.

Built on pyemv's CVN classes:

* Visa CVN 10 (0x0A): ICC master key option A, no session key, Visa padding;
  IAD ``06 | DKI | 0A | CVR(4)``, CVR ``03 | byte 2 | byte 3 | byte 4``.
* Visa CVN 18 (0x12): common session key (ATC), the whole IAD in the MAC input;
  IAD ``06 | DKI | 12 | CVR(4)``.
* Mastercard CVN 16 (0x10): Mastercard session key (ATC + UN), EMV padding;
  IAD ``DKI | 10 | CVR(6) | DAC/IDN(2) | counters(8)`` (18 bytes).
* UnionPay-style CVN 01 (0x01, a guess: PBOC 3.0 is not public, see docs/internals.md "Kernel C-7"):
  ICC master key option A, EMV common session key (ATC), ISO 9797-1 method 2 padding and
  MAC algorithm 3 over the data below and the CVR; IAD ``07 | DKI | 01 | CVR(4) | 01``
  (the last byte: algorithm identifier, 01 triple DES; 04 would be SM4, not simulated).

The input data are always 9F02, 9F03, 9F1A, 95, 5F2A, 9A, 9C, 9F37, 82, 9F36 and the
CVR (CVN 10/16) or the whole IAD (CVN 18).  A host verifies an ARQC with
:func:`verify_arqc` given the card's PAN, PAN sequence number and the tags of the
authorisation request (:meth:`CryptogramData.from_tags`).

pyemv uses cryptography's TripleDES, which warns that it is deprecated; exactly that
warning is filtered, inside the calls only.
"""

from __future__ import annotations

import hmac
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from simulator.issuer_keys import IssuerMasterKeys, issuer_master_keys

__all__ = [
    "CVN_MC_16",
    "CVN_UNIONPAY_01",
    "CVN_VISA_10",
    "CVN_VISA_18",
    "CryptogramData",
    "arpc",
    "build_iad",
    "command_mac",
    "compute",
    "cvr_from_iad",
    "issuer_authentication_data",
    "uses_arpc_method_2",
    "verify_arqc",
]

CVN_VISA_10 = 0x0A
CVN_VISA_18 = 0x12
CVN_MC_16 = 0x10
CVN_UNIONPAY_01 = 0x01
_CVR_LENGTH = {CVN_VISA_10: 4, CVN_VISA_18: 4, CVN_MC_16: 6, CVN_UNIONPAY_01: 4}
_UNIONPAY_ALGORITHM_TDES = 0x01


@dataclass(frozen=True)
class CryptogramData:
    """The data objects an application cryptogram covers (values as on the wire)."""

    amount: bytes  # 9F02
    amount_other: bytes  # 9F03
    country: bytes  # 9F1A
    tvr: bytes  # 95
    currency: bytes  # 5F2A
    date: bytes  # 9A
    transaction_type: bytes  # 9C
    unpredictable_number: bytes  # 9F37
    aip: bytes  # 82
    atc: bytes  # 9F36
    iad: bytes  # 9F10

    @classmethod
    def from_tags(cls, tags: Mapping[int, bytes]) -> CryptogramData:
        """Pick the inputs out of a tag -> value map (missing 9F03 counts as zero)."""
        try:
            return cls(
                amount=tags[0x9F02],
                amount_other=tags.get(0x9F03, bytes(6)),
                country=tags[0x9F1A],
                tvr=tags[0x95],
                currency=tags[0x5F2A],
                date=tags[0x9A],
                transaction_type=tags[0x9C],
                unpredictable_number=tags[0x9F37],
                aip=tags[0x82],
                atc=tags[0x9F36],
                iad=tags[0x9F10],
            )
        except KeyError as exc:
            raise ValueError(f"cryptogram input tag {exc.args[0]:X} missing") from None


def _resolve(keys: IssuerMasterKeys | str) -> IssuerMasterKeys:
    return issuer_master_keys(keys) if isinstance(keys, str) else keys


@contextmanager
def _quiet_tdes() -> Iterator[None]:
    from cryptography.utils import CryptographyDeprecationWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*TripleDES.*", category=CryptographyDeprecationWarning)
        yield


def build_iad(keys: IssuerMasterKeys | str, cvr: bytes) -> bytes:
    """Issuer application data 9F10 for ``keys``' CVN around ``cvr``."""
    k = _resolve(keys)
    if len(cvr) != _CVR_LENGTH[k.cvn]:
        raise ValueError(f"CVN {k.cvn:02X} wants a {_CVR_LENGTH[k.cvn]}-byte CVR")
    if k.cvn == CVN_MC_16:
        return bytes([k.dki, k.cvn]) + cvr + bytes(2) + bytes(8)
    if k.cvn == CVN_UNIONPAY_01:
        return bytes([0x07, k.dki, k.cvn]) + cvr + bytes([_UNIONPAY_ALGORITHM_TDES])
    return bytes([0x06, k.dki, k.cvn]) + cvr


def cvr_from_iad(cvn: int, iad: bytes) -> bytes:
    """The card verification results inside an IAD of cryptogram version ``cvn``."""
    if cvn == CVN_MC_16:
        if len(iad) < 8:
            raise ValueError("IAD too short for CVN 16")
        return iad[2:8]
    if len(iad) < 7:
        raise ValueError("IAD too short for a Visa or UnionPay CVN")
    return iad[3:7]


class _UnionPayCvn01:
    """CVN 01 as simulated here (see the module docstring): built from pyemv's primitives."""

    def __init__(self, *, iss_mk_ac: bytes, pan: str, psn: str) -> None:
        from pyemv import kd

        self._icc_mk_ac = kd.derive_icc_mk_a(iss_mk_ac, pan, psn)

    def _session_key(self, atc: bytes) -> bytes:
        from pyemv import kd

        return kd.derive_common_sk(self._icc_mk_ac, atc + bytes(6))

    def generate_ac(self, *, cvr: bytes, tag_9f36: bytes, **tags: bytes) -> bytes:
        from pyemv import ac

        order = ("tag_9f02", "tag_9f03", "tag_9f1a", "tag_95", "tag_5f2a", "tag_9a", "tag_9c", "tag_9f37", "tag_82")
        data = b"".join(tags[name] for name in order) + tag_9f36 + cvr
        return bytes(ac.generate_ac(self._session_key(tag_9f36), data, ac.PaddingType.EMV))

    def generate_arpc(self, *, tag_9f26: bytes, tag_9f36: bytes, arpc_rc: bytes) -> bytes:
        from pyemv import ac

        return bytes(ac.generate_arpc_1(self._session_key(tag_9f36), tag_9f26, arpc_rc))


def _cvn_object(k: IssuerMasterKeys, pan: str, psn: str) -> Any:
    import pyemv

    if k.cvn == CVN_UNIONPAY_01:
        return _UnionPayCvn01(iss_mk_ac=k.mk_ac, pan=pan, psn=psn)

    classes = {
        CVN_VISA_10: pyemv.cvn.VisaCVN10,
        CVN_VISA_18: pyemv.cvn.VisaCVN18,
        CVN_MC_16: pyemv.cvn.MasterCardCVN16,
    }
    try:
        cls = classes[k.cvn]
    except KeyError:
        raise ValueError(f"unsupported CVN {k.cvn:02X}") from None
    return cls(iss_mk_ac=k.mk_ac, iss_mk_smi=k.mk_smi, iss_mk_smc=k.mk_smc, pan=pan, psn=psn)


def compute(keys: IssuerMasterKeys | str, pan: str, psn: str, data: CryptogramData) -> bytes:
    """The 8-byte application cryptogram over ``data`` for the card (``pan``, ``psn``).

    ``psn`` is the PAN sequence number as two decimal digits (``"01"``).
    """
    k = _resolve(keys)
    with _quiet_tdes():
        cvn = _cvn_object(k, pan, psn)
        common: dict[str, bytes] = {
            "tag_9f02": data.amount,
            "tag_9f03": data.amount_other,
            "tag_9f1a": data.country,
            "tag_95": data.tvr,
            "tag_5f2a": data.currency,
            "tag_9a": data.date,
            "tag_9c": data.transaction_type,
            "tag_9f37": data.unpredictable_number,
            "tag_82": data.aip,
            "tag_9f36": data.atc,
        }
        if k.cvn == CVN_VISA_18:
            result = cvn.generate_ac(tag_9f10=data.iad, **common)
        else:
            result = cvn.generate_ac(cvr=cvr_from_iad(k.cvn, data.iad), **common)
    return bytes(result)


def verify_arqc(
    keys: IssuerMasterKeys | str, pan: str, psn: str, data: CryptogramData, cryptogram: bytes
) -> bool:
    """True when ``cryptogram`` is the one the card with ``pan``/``psn`` computes over ``data``."""
    return hmac.compare_digest(compute(keys, pan, psn, data), cryptogram)


def uses_arpc_method_2(keys: IssuerMasterKeys | str) -> bool:
    """Whether the key set's cryptogram version answers with ARPC method 2 (CVN 18) rather than method 1."""
    return _resolve(keys).cvn == CVN_VISA_18


def arpc(
    keys: IssuerMasterKeys | str,
    pan: str,
    psn: str,
    *,
    arqc: bytes,
    atc: bytes,
    response: bytes,
    proprietary: bytes = b"",
) -> bytes:
    """Authorisation response cryptogram.

    Method 1 (CVN 10, 16): ``response`` is the 2-byte ARPC response code, 8-byte result.
    Method 2 (CVN 18, EMV Book 2 8.2.2): ``response`` is the 4-byte card status update,
    ``proprietary`` the 0 to 8 bytes of proprietary authentication data; a 4-byte MAC
    (ISO 9797-1 algorithm 3, padding method 2) over ARQC || CSU || proprietary data under
    the common session key of the ATC.
    """
    k = _resolve(keys)
    if proprietary and k.cvn != CVN_VISA_18:
        raise ValueError("proprietary authentication data is for ARPC method 2")
    with _quiet_tdes():
        cvn = _cvn_object(k, pan, psn)
        if k.cvn == CVN_VISA_18:
            extra = bytes(proprietary) or None
            return bytes(cvn.generate_arpc(tag_9f26=arqc, tag_9f36=atc, csu=response, proprietary_auth_data=extra))
        if k.cvn == CVN_UNIONPAY_01:
            return bytes(cvn.generate_arpc(tag_9f26=arqc, tag_9f36=atc, arpc_rc=response))
        return bytes(cvn.generate_arpc(tag_9f26=arqc, arpc_rc=response))


def issuer_authentication_data(
    keys: IssuerMasterKeys | str,
    pan: str,
    psn: str,
    *,
    arqc: bytes,
    atc: bytes,
    response_code: str,
    csu: bytes | None = None,
    proprietary: bytes = b"",
) -> bytes:
    """Issuer Authentication Data (91) as the card takes it, for the issuer's ``response_code``.

    Method 1: ARPC (8) || ARC (the response code in ASCII), 10 bytes.  Method 2:
    ARPC (4) || CSU (4) || proprietary data (0-8), 8 to 16 bytes; ``csu`` defaults
    to "approved" for ``00`` and to "declined" otherwise.
    """
    if uses_arpc_method_2(keys):
        from simulator.csu import CSU_APPROVED, CSU_DECLINED

        status = csu if csu is not None else CSU_APPROVED if response_code == "00" else CSU_DECLINED
        mac = arpc(keys, pan, psn, arqc=arqc, atc=atc, response=status, proprietary=proprietary)
        return mac + status + bytes(proprietary)
    code = response_code.encode("ascii")
    return arpc(keys, pan, psn, arqc=arqc, atc=atc, response=code) + code


def command_mac(
    keys: IssuerMasterKeys | str, pan: str, psn: str, *, header: bytes, arqc: bytes, atc: bytes, data: bytes = b""
) -> bytes:
    """The 8-byte MAC of an issuer script command (secure messaging for integrity).

    ``header`` is CLA INS P1 P2 Lc of the command as sent (Lc counting the MAC),
    ``data`` the command data before the MAC; the session key comes from the ATC
    and the MAC input carries the ARQC of the transaction, as pyemv's CVN classes do.
    """
    k = _resolve(keys)
    with _quiet_tdes():
        cvn = _cvn_object(k, pan, psn)
        return bytes(cvn.generate_command_mac(header, arqc, atc, data))
