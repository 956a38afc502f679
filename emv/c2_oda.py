"""Offline data authentication steps of kernel C-2 done before GENERATE AC: keys, SDA, DDA.

CDA is verified after GENERATE AC by :mod:`emv.kernel_c2` itself.  Each
function returns the name of what failed (:data:`emv.oda.FAILURES`), or None;
the kernel sets the TVR bits for it.
"""

from __future__ import annotations

from collections.abc import Mapping

from emv import apdu, dol, oda
from emv.c2_gac import sdad_of
from emv.kernel_common import KernelContext, OdaKeys, recover_oda_keys, send
from emv.outcome import OdaReport
from emv.pan import pan_of

__all__ = ["choose_oda_method", "dda", "recover_keys", "sda"]

# AIP (82) byte 1
AIP_SDA = 0x40
AIP_DDA = 0x20
AIP_CDA = 0x01
# 9F33 byte 3, security capability
SEC_SDA = 0x80
SEC_DDA = 0x40
SEC_CDA = 0x08


def choose_oda_method(aip: bytes, capabilities: bytes) -> str | None:
    """The ODA method both card (AIP byte 1) and terminal (9F33 byte 3) support: CDA, DDA, SDA.

    >>> choose_oda_method(bytes.fromhex("1980"), bytes.fromhex("E06008"))
    'CDA'
    >>> choose_oda_method(bytes.fromhex("4000"), bytes.fromhex("E06008")) is None
    True
    """
    card = aip[0] if aip else 0
    term = capabilities[2] if len(capabilities) > 2 else 0
    if card & AIP_CDA and term & SEC_CDA:
        return "CDA"
    if card & AIP_DDA and term & SEC_DDA:
        return "DDA"
    if card & AIP_SDA and term & SEC_SDA:
        return "SDA"
    return None


def recover_keys(
    ctx: KernelContext, card: Mapping[int, bytes], oda_records: list[tuple[int, bytes]], aip: bytes, report: OdaReport
) -> OdaKeys:
    """The issuer and ICC keys over the static data to authenticate; the report says how far it got."""
    try:
        static = oda.static_data_to_authenticate(oda_records, aip, card.get(0x9F4A))
    except oda.OdaFailure as exc:
        return OdaKeys(failure=exc.name)
    keys = recover_oda_keys(ctx, card, static)
    report.issuer_key_recovered = keys.issuer_key_recovered
    report.icc_key_recovered = keys.ok
    return keys


def sda(
    ctx: KernelContext, card: dict[int, bytes], oda_records: list[tuple[int, bytes]], aip: bytes, report: OdaReport
) -> str | None:
    """Static data authentication; on success the DAC goes to ``card[9F45]`` and the report says passed."""
    needed = (0x8F, 0x90, 0x9F32, 0x93)
    pan = pan_of(card)
    if any(t not in card for t in needed) or pan is None or len(card[0x8F]) != 1:
        return "icc_data_missing"
    rid, index = ctx.aid[:5], card[0x8F][0]
    today = ctx.txn.on_date()
    try:
        static = oda.static_data_to_authenticate(oda_records, aip, card.get(0x9F4A))
        ca_key = oda.ca_public_key(ctx.config.capks, rid, index, today)
        issuer = oda.recover_issuer_key(
            ca_key,
            card[0x90],
            card.get(0x92),
            card[0x9F32],
            pan,
            today,
            ctx.config.revocation_list,
            rid=rid,
            capk_index=index,
        )
        report.issuer_key_recovered = True
        dac = oda.verify_ssad(issuer, card[0x93], static)
    except oda.OdaFailure as exc:
        return exc.name
    card[0x9F45] = dac
    report.result = "passed"
    return None


def dda(ctx: KernelContext, card: dict[int, bytes], icc_key: oda.PublicKey, values: Mapping[int, bytes]) -> str | None:
    """Dynamic data authentication: INTERNAL AUTHENTICATE with the DDOL (the card's, else the
    combination's default); on success the ICC dynamic number goes to ``card[9F4C]``."""
    ddol_raw = card.get(0x9F49) or ctx.combination.default_ddol
    if not ddol_raw:
        return "icc_data_missing"
    try:
        ddol_values = dol.build(dol.parse(ddol_raw), values)
        command = apdu.internal_authenticate(ddol_values)
    except (dol.DolError, ValueError):
        return "icc_data_missing"
    resp = send(ctx, command, "INTERNAL AUTHENTICATE")
    sdad = sdad_of(resp.data) if resp.ok else None
    try:
        data = oda.verify_sdad(icc_key, sdad, ddol_values)
    except oda.OdaFailure as exc:
        return exc.name
    card[0x9F4C] = data.dynamic_number
    return None
