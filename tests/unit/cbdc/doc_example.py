"""The worked examples of docs/cbdc-protocol.md, produced by the code (run this module to print them).

``python -m tests.unit.cbdc.doc_example`` prints the markdown, ``--write`` puts it
into the page between its markers; a test checks that the page holds exactly
what the code produces today.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cbdc import kernel, sm2, tlv
from cbdc.envelope import Envelope
from cbdc.kernel import Exchange, OfflineState
from cbdc.protocol import PaymentRecord
from tests.unit.cbdc.wallet import NOW, WALLET, FakeWallet, WalletGone, parameters
from tests.unit.cbdc.wallet import request as make_request

NAMES = {
    0x6F: "FCI template", 0x84: "DF name (the AID)", 0xA5: "FCI proprietary template", 0x50: "application label",
    0xE1: "wallet info", 0xE2: "certificate", 0xE3: "payment request", 0xE4: "payment record",
    0xE6: "envelope to the host",
    0xDF40: "protocol version", 0xDF41: "wallet id", 0xDF42: "counter", 0xDF43: "previous record hash",
    0xDF44: "currency", 0xDF45: "balance (informative)", 0xDF51: "amount", 0xDF52: "merchant id",
    0xDF53: "terminal challenge", 0xDF54: "date and time (UTC)", 0xDF56: "terminal id", 0xDF5F: "signature r ‖ s",
    0xDF71: "certificate version", 0xDF72: "subject id", 0xDF73: "issuer id", 0xDF74: "role",
    0xDF75: "subject public key x ‖ y", 0xDF76: "not before", 0xDF77: "not after", 0xDF78: "wallet tier",
    0xDF79: "per-payment limit", 0xDF7A: "daily limit", 0xDF7B: "balance limit",
}  # fmt: skip
CONSTRUCTED = {0x6F, 0xA5, 0xE1, 0xE2, 0xE3, 0xE4, 0xE6}
WIDTH = 64  # hex digits per line of a long value


def tree(data: bytes, depth: int = 0, parent: int = 0, *, expand: bool = True) -> list[str]:
    """One line per element, values of constructed templates indented below their tag (if ``expand``)."""
    lines: list[str] = []
    for element in tlv.decode(data):
        header = data[element.start : element.end - len(element.value)].hex().upper()
        pad = "  " * depth
        name = NAMES.get(element.tag, "")
        if (parent, element.tag) == (0xE1, 0xDF43):
            name = "hash of the last record"
        if (parent, element.tag) == (0xE6, 0xDF42):
            name = "expected counter"
        if element.tag in CONSTRUCTED and not expand:
            lines.append(f"{pad}{header:<10}  {name} ({len(element.value)} bytes, as above)")
            continue
        if element.tag in CONSTRUCTED:
            lines.append(f"{pad}{header:<10}  {name}")
            lines += tree(element.value, depth + 1, element.tag, expand=element.tag != 0xE6)
            continue
        value = element.value.hex().upper()
        chunks = [value[i : i + WIDTH] for i in range(0, len(value), WIDTH)] or [""]
        lines.append(f"{pad}{header:<10}{chunks[0]:<{WIDTH}}  {name}".rstrip())
        lines += [f"{pad}{'':<10}{chunk}" for chunk in chunks[1:]]
    return lines


def _exchange(e: Exchange, title: str) -> list[str]:
    lines = [f"**{title}**", "", "```", f"C-APDU  {e.command.hex().upper()}"]
    if e.response is None:
        lines.append("R-APDU  (none: the wallet left the field)")
    else:
        data, sw = e.response[:-2], e.response[-2:]
        lines.append(f"R-APDU  {len(data)} data bytes, SW {sw.hex().upper()}")
        if data:
            lines += ["        " + line for line in tree(data)]
    return [*lines, "```", ""]


def _hex_block(label: str, value: bytes) -> list[str]:
    text = value.hex().upper()
    return [f"{label}"] + ["    " + text[i : i + WIDTH] for i in range(0, len(text), WIDTH)]


def worked_example() -> str:
    out: list[str] = []
    params = parameters()
    out += ["The trust store of the example (the `cbdc` section of the parameters; test keys, public and",
            "derived from seeds in tests/unit/cbdc/wallet.py):", "", "```json",
            json.dumps(params, indent=2), "```", ""]  # fmt: skip
    wallet = FakeWallet()
    req = make_request()
    intents: list[kernel.Intent] = []
    outcome = kernel.pay(wallet, req, trust_store(), OfflineState(), NOW, intents.append)
    assert outcome.approved and outcome.record is not None
    titles = ["SELECT", "GET WALLET INFO", "READ CERTIFICATE 01 (the wallet's)",
              "READ CERTIFICATE 02 (the operator's)", "PAY"]  # fmt: skip
    out += [f"A payment of 12.34 CNY (1234 minor units, currency 156) to merchant `{req.merchant_id}`, terminal "
            f"`{req.terminal_id}`, challenge {req.challenge.hex().upper()}, at {NOW.isoformat()} UTC, from a new "
            "anonymous wallet (counter 0, balance 5,000.00):", ""]  # fmt: skip
    for exchange, title in zip(outcome.exchanges, titles, strict=True):
        out += _exchange(exchange, title)
    record = outcome.record
    za = sm2.za(WALLET.public)
    out += ["The record's signature, checked by the terminal:", "", "```"]
    out += _hex_block("M = the signed bytes (E4's value up to DF5F)", record.signed_bytes)
    out += _hex_block("ZA = SM3(0080 ‖ '1234567812345678' ‖ a ‖ b ‖ xG ‖ yG ‖ wallet key)", za)
    out += _hex_block("e = SM3(ZA ‖ M)", sm2.digest(WALLET.public, record.signed_bytes))
    out += _hex_block("r", record.signature[:32]) + _hex_block("s", record.signature[32:])
    out += _hex_block("record hash = SM3(the whole E4, 198 bytes)", record.hash)
    out += ["```", "", "The intent the terminal journalled before PAY (`Intent.to_dict()`):", "", "```json",
            json.dumps(intents[0].to_dict(), indent=2), "```", "",
            "The outcome (`WalletOutcome.to_json()`):", "", "```json",
            json.dumps(outcome.to_json(), indent=2), "```", "",
            "The advice's `emv_data` for the host (`Envelope.for_intent(intent, record.raw).encode()`):", "", "```",
            *tree(Envelope.for_intent(intents[0], record.raw).encode()), "```", ""]  # fmt: skip
    # a torn payment: the wallet leaves after debiting, then comes back
    torn_wallet = FakeWallet(leave_after_debit=True)
    torn = kernel.pay(torn_wallet, req, trust_store(), OfflineState(), NOW, lambda intent: None,
                      transport_errors=(WalletGone,))  # fmt: skip
    assert torn.intent is not None
    out += ["A torn payment: the same request, and the wallet leaves the field during PAY after it debited.",
            f"`pay` returns `{torn.kind.value}` with the intent; on the re-tap `resume` reads the wallet",
            "again, finds its counter at the expected one, and fetches that record:", ""]  # fmt: skip
    again = kernel.resume(torn_wallet, torn.intent, trust_store(), OfflineState(), transport_errors=(WalletGone,))
    assert again.approved and again.record is not None
    for exchange, title in zip(again.exchanges, ["SELECT", "GET WALLET INFO", "GET RECORD 00000001"], strict=True):
        if title == "SELECT":
            continue
        out += _exchange(exchange, title)
    digest = again.record.hash.hex().upper()[:16]
    out += [f"The record is the one the wallet signed at the first tap (hash {digest}…); its checks are those",
            "of PAY's answer, and the outcome is `approved`: the same payment, once."]  # fmt: skip
    return "\n".join(out)


def trust_store() -> kernel.TrustStore:
    from cbdc.checks import TrustStore

    return TrustStore.from_parameters(parameters())


def record_layout() -> str:
    """The record of the example as a bare TLV tree (for the record section)."""
    wallet = FakeWallet()
    outcome = kernel.pay(wallet, make_request(), trust_store(), OfflineState(), NOW, lambda intent: None)
    assert isinstance(outcome.record, PaymentRecord)
    return "\n".join(tree(outcome.record.raw))


PAGE = Path(__file__).resolve().parents[3] / "docs" / "cbdc-protocol.md"
BEGIN, END = "<!-- example:begin -->", "<!-- example:end -->"


def section(page: str) -> str:
    """What the page holds between its example markers."""
    return page.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n")


def write_into(path: Path = PAGE) -> None:
    page = path.read_text(encoding="utf-8")
    head, rest = page.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    path.write_text(f"{head}{BEGIN}\n{worked_example()}\n{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_into()
    else:
        print(worked_example())
