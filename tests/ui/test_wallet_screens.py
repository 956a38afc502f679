"""A digital-currency wallet at the cashier's screens (no window): approved, refused in words, not paid."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from terminal import registry
from tests.integration.test_cbdc_payments import WalksAway
from tests.ui.conftest import App
from ui.screens.sale import AmountEntry, PaymentOutcome, PresentCard


@pytest.fixture
def cny(app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> App:
    """The terminal of a shop whose currency is the yuan (a wallet holds CNY), its wallets' state private."""
    monkeypatch.setenv("POSTERM_SIM_STATE", str(tmp_path / "wallets"))
    app.terminal.config = replace(app.terminal.config, currency=156)
    return app


def _charge(app: App, keys: str) -> PaymentOutcome:
    amount = app.session.screen("amount", AmountEntry)
    for key in keys:
        amount.press(key)
    amount.charge()
    app.settle()
    return app.session.screen("result", PaymentOutcome)


def test_a_wallet_is_approved_offline(cny: App) -> None:
    cny.terminal.reader = registry.open_reader("sim:card=cbdc-anon")
    result = _charge(cny, "1234")
    assert result.approved and result.title == "Approved" and "cbdc D1A0********0001" in result.card_text


def test_a_refused_wallet_is_told_in_words_in_chinese_too(cny: App) -> None:
    cny.session.tr.set_language("zh_CN")
    cny.terminal.reader = registry.open_reader("sim:card=cbdc-expired")
    result = _charge(cny, "1234")
    assert not result.approved and result.reason == "钱包证书已过期"


def test_a_torn_payment_never_presented_again_is_not_completed_not_declined(cny: App) -> None:
    cny.session.tr.set_language("zh_CN")
    cny.terminal.reader = WalksAway("sim:card=cbdc-torn")  # type: ignore[assignment]
    result = _charge(cny, "1234")
    assert not result.approved and result.title == cny.session.tr("Not completed")
    # the customer was asked for the same wallet again, in the screen's language
    assert cny.session.screen("present_card", PresentCard).prompt == "请再次出示同一钱包"
