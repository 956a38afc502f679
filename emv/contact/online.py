"""Online processing and issuer-to-card script processing (EMV Book 3 10.9, 10.10).

- Issuer authentication: the Issuer Authentication Data (91) goes to the card
  in EXTERNAL AUTHENTICATE when the AIP says the card supports issuer
  authentication (byte 1 b3) and its CDOL2 does not ask for 91; when CDOL2 asks
  for 91 it travels in the second GENERATE AC instead (at the length CDOL2
  gives it, Book 3 5.4).  91 is carried as the host sent it, whichever ARPC
  method made it (Book 2 8.2): method 1, ARPC (8) || ARC (2); method 2, ARPC
  (4) || card status update (4) || proprietary data (0-8), so 8 to 16 bytes
  (Book 3 6.5.4); other lengths are not sent and count as failed.  TSI
  "issuer authentication was performed" is set whenever 91 was there for a
  card that supports it; a refused EXTERNAL AUTHENTICATE sets TVR "issuer
  authentication failed" (in CDOL2 only the card knows, and its cryptogram
  says it).
- Issuer scripts: the 71 templates run before the second GENERATE AC, the 72
  templates after it.  Each command (86) is sent in order; SW1 90, 62 or 63 lets
  the script go on, anything else stops it (10.10).  The result of each script
  is 5 bytes of 9F5B: result nibble (0 not performed, 1 failed, 2 performed) and
  the sequence number of the failing command, then the script identifier (9F18).

>>> scripts = bytes.fromhex("7113 9F1804 00000001 860A 84DA9F1404 0A11223344")
>>> [(t, ident.hex(), [c.hex().upper() for c in cmds]) for t, ident, cmds, ok in parse_scripts(scripts)]
[(113, '00000001', ['84DA9F14040A11223344'])]
"""

from __future__ import annotations

from emv import dol, tlv
from emv.apdu import CardCommunicationError
from emv.contact.processing import AIP_ISSUER_AUTHENTICATION
from emv.contact.session import Session, send
from emv.kernel_common import KernelError
from emv.tvr import Tsi, Tvr

__all__ = ["MAX_SCRIPT_BYTES", "cdol2_carries_arpc", "external_authenticate", "parse_scripts", "run_scripts"]

MAX_SCRIPT_BYTES = 512  # more than the 128 bytes a card usually takes, less than a runaway host

_RESULT_FAILED = 0x10
_RESULT_PERFORMED = 0x20


def cdol2_carries_arpc(session: Session) -> bool:
    """True when the card's CDOL2 asks for 91 (issuer authentication in the second GENERATE AC)."""
    try:
        return any(entry.tag == 0x91 for entry in dol.parse(session.card_data.get(0x8D, b"")))
    except dol.DolError:
        return False


def external_authenticate(session: Session) -> None:
    """Book 3 10.9: EXTERNAL AUTHENTICATE with 91, or leave 91 to CDOL2; sets the TSI and TVR bits."""
    data = session.issuer_authentication_data
    if data is None or not session.aip_bit(AIP_ISSUER_AUTHENTICATION):
        return
    session.tsi.set(Tsi.ISSUER_AUTHENTICATION_PERFORMED)
    if cdol2_carries_arpc(session):
        return
    if not 8 <= len(data) <= 16:
        session.tvr.set(Tvr.ISSUER_AUTHENTICATION_FAILED)
        return
    resp = send(session, bytes([0x00, 0x82, 0x00, 0x00, len(data)]) + data, "EXTERNAL AUTHENTICATE")
    if not resp.ok:
        session.tvr.set(Tvr.ISSUER_AUTHENTICATION_FAILED)


def parse_scripts(data: bytes) -> list[tuple[int, bytes, list[bytes], bool]]:
    """(template 71/72, script identifier, commands, well formed) for each template in ``data``.

    A template that is not well formed stays in the list (with ``False``) so that
    its failure is reported; data that is not TLV at all is one malformed 71.
    """
    try:
        objs = tlv.decode(data)
    except tlv.TlvError:
        return [(0x71, bytes(4), [], False)]
    out: list[tuple[int, bytes, list[bytes], bool]] = []
    for obj in objs:
        if obj.tag not in (0x71, 0x72):
            continue
        ident = bytes(4)
        commands: list[bytes] = []
        ok = obj.children is not None
        for child in obj.children or ():
            if child.tag == 0x9F18 and len(child.value) == 4:
                ident = child.value
            elif child.tag == 0x86 and 4 <= len(child.value) <= 261:
                commands.append(child.value)
            else:
                ok = False
        out.append((obj.tag, ident, commands, ok and bool(commands)))
    return out


def run_scripts(session: Session, scripts: bytes, template: int) -> None:
    """Send the commands of every ``template`` (0x71 or 0x72) script; record 9F5B and the TVR bits."""
    if not scripts:
        return
    parsed = parse_scripts(scripts[:MAX_SCRIPT_BYTES] if len(scripts) > MAX_SCRIPT_BYTES else scripts)
    failed_bit = Tvr.SCRIPT_FAILED_BEFORE_FINAL_GAC if template == 0x71 else Tvr.SCRIPT_FAILED_AFTER_FINAL_GAC
    for tag, ident, commands, ok in parsed:
        if tag != template:
            continue
        session.tsi.set(Tsi.SCRIPT_PROCESSING_PERFORMED)
        if not ok or len(scripts) > MAX_SCRIPT_BYTES:
            session.script_results.append(bytes([_RESULT_FAILED]) + ident)
            session.tvr.set(failed_bit)
            continue
        result = _RESULT_PERFORMED
        for number, command in enumerate(commands, start=1):
            try:
                sw = send(session, command, "issuer script command").sw
            except (KernelError, CardCommunicationError):
                sw = 0x6F00
            if sw >> 8 not in (0x90, 0x62, 0x63):
                result = _RESULT_FAILED | min(number, 0x0F)
                session.tvr.set(failed_bit)
                break
        session.script_results.append(bytes([result]) + ident)
