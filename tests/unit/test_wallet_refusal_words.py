"""A wallet's refusal is told in words, in the screen's language too (CBDC-SPEC section 5)."""

from __future__ import annotations

import pytest

from terminal.response_codes import WALLET_REFUSALS, refusal_words
from ui.i18n import Translator
from ui.screens.texts import reason_text

# the names cbdc.checks.Refusal has (terminal check before PAY, the wallet's own, after PAY)
SPEC_NAMES = {
    "malformed", "unsupported_version", "untrusted_chain", "certificate_expired", "certificate_not_yet_valid",
    "wallet_blocked", "counter_replayed", "currency_mismatch", "over_wallet_limit", "over_payment_limit",
    "over_count_limit", "over_total_limit", "unsent_too_old", "insufficient_balance", "over_daily_limit",
    "wallet_locked", "record_signature", "wrong_payee", "wrong_challenge", "amount_mismatch", "wrong_wallet",
    "chain_broken",
}  # fmt: skip


def test_every_refusal_of_the_protocol_has_words() -> None:
    from cbdc.checks import Refusal

    assert {r.value for r in Refusal} <= set(WALLET_REFUSALS)
    assert set(WALLET_REFUSALS) == SPEC_NAMES


@pytest.mark.parametrize("name", sorted(WALLET_REFUSALS))
def test_each_refusal_reads_in_chinese_on_the_result_screen(name: str) -> None:
    message = f"declined: {refusal_words(name)}"
    english = reason_text(Translator("en"), message, approved=False)
    chinese = reason_text(Translator("zh_CN"), message, approved=False)
    assert english.lower() == refusal_words(name).lower()
    assert chinese != english and not chinese.isascii()
