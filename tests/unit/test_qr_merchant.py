"""terminal.qr_merchant: the terminal's MPM code from its configuration, and its drawing read back by zbar."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from emv.config import TerminalConfig
from emv.qr_mpm import decode, encode
from terminal.facade import TerminalSettings
from terminal.money import currency
from terminal.qr_merchant import merchant_code, new_reference, qr_settings, render
from terminal.settings import SettingsError

CONFIG = TerminalConfig.example(capks=None)
SETTINGS = TerminalSettings(merchant_name="posterm test shop", merchant_address="1 Example Street, Berlin")


def settings_of(qr: Any) -> Any:
    return qr_settings({"qr": qr}, CONFIG, SETTINGS)


def test_defaults_come_from_the_configuration() -> None:
    qr = qr_settings({}, CONFIG, SETTINGS)
    assert (qr.merchant_name, qr.merchant_city, qr.country) == ("posterm test shop", "Berlin", "DE")
    assert (qr.merchant_category_code, qr.terminal_id, qr.merchant_id) == ("5411", "TERM0001", "POSTERM0000001")
    (wallet,) = qr.templates
    assert wallet.id == "26" and wallet.gui == "org.posterm.wallet" and wallet.field("01") == "POSTERM0000001"


def test_enrolled_ids_win() -> None:
    qr = qr_settings({}, CONFIG, SETTINGS, terminal_id="T2", merchant_id="M2")
    assert (qr.terminal_id, qr.merchant_id, qr.templates[0].field("01")) == ("T2", "M2", "M2")


def test_long_defaults_are_cut_to_fit() -> None:
    long = TerminalSettings(merchant_name="N" * 40, merchant_address="Somewhere, " + "C" * 30)
    qr = qr_settings({}, CONFIG, long)
    assert len(qr.merchant_name) == 25 and len(qr.merchant_city) == 15


@pytest.mark.parametrize(
    ("qr", "field"),
    [
        ({"merchant_name": "N" * 26}, "qr.merchant_name"),
        ({"merchant_city": ""}, "qr.merchant_city"),
        ({"country": "DEU"}, "qr.country"),
        ({"accounts": {}}, "qr.accounts"),
        ({"accounts": {"26": "a string"}}, "qr.accounts.26"),
        ({"accounts": {"15": {"00": "x"}}}, "qr.accounts.15"),
        ({"accounts": {"52": "x"}}, "qr.accounts.52"),
        ("not an object", "qr:"),
    ],
)
def test_unusable_qr_settings_name_the_field(qr: Any, field: str) -> None:
    with pytest.raises(SettingsError, match=field):
        settings_of(qr)


def test_a_country_code_without_alpha_2_asks_for_qr_country() -> None:
    from dataclasses import replace

    with pytest.raises(SettingsError, match=r"set qr\.country"):
        qr_settings({}, replace(CONFIG, country_code=999), SETTINGS)


@pytest.mark.parametrize(("code", "minor", "text"), [("EUR", 1234, "12.34"), ("JPY", 500, "500"), ("BHD", 1, "0.001")])
def test_amounts_in_the_currency_s_decimals(code: str, minor: int, text: str) -> None:
    qr = qr_settings({}, CONFIG, SETTINGS)
    made = merchant_code(qr, amount=minor, currency=currency(code), reference="R")
    assert made.amount == text and made.currency == f"{currency(code).numeric:03d}"
    assert decode(encode(made)) == made


def test_dynamic_needs_a_positive_amount() -> None:
    qr = qr_settings({}, CONFIG, SETTINGS)
    with pytest.raises(ValueError, match="needs an amount"):
        merchant_code(qr, amount=None, currency=currency("EUR"))
    with pytest.raises(ValueError, match="more than zero"):
        merchant_code(qr, amount=0, currency=currency("EUR"))


def test_static_code() -> None:
    qr = qr_settings({}, CONFIG, SETTINGS)
    made = merchant_code(qr, amount=None, currency=currency("EUR"), static=True)
    assert made.point_of_initiation == "11" and made.amount is None
    assert made.additional_data is not None and made.additional_data.terminal_label == "TERM0001"


def test_every_drawing_reads_back() -> None:
    from pyzbar import pyzbar

    qr = qr_settings({"qr": {"merchant_name": "上海测试商店", "country": "CN"}}, CONFIG, SETTINGS)
    for n in range(30):
        payload = encode(merchant_code(qr, amount=100 + n * 7919, currency=currency("CNY"), reference=new_reference()))
        for best in (False, True) if n < 3 else (False,):
            text, png = render(payload, png=True, best_mask=best)
            assert png is not None and "█" in text
            (found,) = pyzbar.decode(Image.open(io.BytesIO(png)), symbols=[pyzbar.ZBarSymbol.QRCODE])
            assert found.data.decode("utf-8") == payload
