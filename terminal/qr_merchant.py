"""The terminal's merchant-presented QR code: an EMV MPM code (:mod:`emv.qr_mpm`) from its configuration.

What the code carries comes from the configuration in force (the shipped
terminal.json, or the parameter version the host last sent):

- MCC (52) ``merchant_category_code``; currency (53) the sale's, by default
  ``currency``; the terminal label (62/07) ``terminal_id`` and the merchant
  id ``merchant_id`` (those of the enrolment when the terminal is enrolled);
- an optional ``qr`` object, for what EMV card configuration does not hold::

      "qr": {
        "merchant_name": "POSTERM TEST SHOP",   59, at most 25 characters
        "merchant_city": "BERLIN",              60, at most 15
        "country": "DE",                        58, ISO 3166 alpha-2
        "postal_code": "10115",                 61, at most 10 (optional)
        "accounts": {                           02-51: what the acquirer configures
          "15": "2551000000520446104540000000123",
          "26": {"00": "org.posterm.wallet", "01": "POSTERM0000001"}
        }
      }

Each field left out has a default: the name is the settings' ``merchant_name``
and the city the last comma-separated part of ``merchant_address`` (both cut
to their maximum length); the country follows ``country_code`` (ISO 3166
numeric) through :data:`COUNTRIES`; the accounts default to one template 26
of the simulator's wallet (:data:`DEFAULT_WALLET_GUI`) whose sub-ID 01 is
the merchant id.  A dynamic code (point of initiation 12) carries the amount
(54) and the order's reference (62/05); a static one (11) neither, unless
asked.

>>> from emv.config import TerminalConfig
>>> from terminal.facade import TerminalSettings
>>> from terminal.money import currency
>>> qr = qr_settings({}, TerminalConfig.example(capks=None), TerminalSettings(merchant_address="1 Main St, Berlin"))
>>> code = merchant_code(qr, amount=1234, currency=currency("EUR"), reference="R1")
>>> code.amount, code.merchant_city, code.country, code.template("26").field("01")
('12.34', 'Berlin', 'DE', 'POSTERM0000001')
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from emv.config import TerminalConfig
from emv.qr_mpm import AdditionalData, MerchantPresentedCode, Template
from terminal.money import Currency
from terminal.settings import SettingsError

__all__ = [
    "COUNTRIES",
    "DEFAULT_WALLET_GUI",
    "FAST_MASK",
    "QrMerchant",
    "merchant_code",
    "new_reference",
    "qr_settings",
    "render",
]

#: The globally unique identifier of the simulator's wallet, in the default merchant account template 26.
DEFAULT_WALLET_GUI: Final = "org.posterm.wallet"

#: ISO 3166 numeric -> alpha-2, for the countries the terminal's markets name (extend as needed).
COUNTRIES: Final = {
    36: "AU", 40: "AT", 56: "BE", 76: "BR", 104: "MM", 116: "KH", 124: "CA", 144: "LK", 156: "CN", 158: "TW",
    203: "CZ", 208: "DK", 246: "FI", 250: "FR", 276: "DE", 288: "GH", 300: "GR", 344: "HK", 348: "HU", 356: "IN",
    360: "ID", 372: "IE", 376: "IL", 380: "IT", 392: "JP", 404: "KE", 410: "KR", 418: "LA", 446: "MO", 458: "MY",
    484: "MX", 496: "MN", 524: "NP", 528: "NL", 554: "NZ", 566: "NG", 578: "NO", 586: "PK", 608: "PH", 616: "PL",
    620: "PT", 643: "RU", 682: "SA", 702: "SG", 704: "VN", 710: "ZA", 724: "ES", 752: "SE", 756: "CH", 764: "TH",
    784: "AE", 792: "TR", 818: "EG", 826: "GB", 840: "US", 860: "UZ",
}  # fmt: skip


@dataclass(frozen=True)
class QrMerchant:
    """What every code of this terminal carries, whatever the sale."""

    merchant_name: str
    merchant_city: str
    country: str
    merchant_category_code: str
    currency: int  # the terminal's, ISO 4217 numeric
    terminal_id: str
    merchant_id: str
    accounts: tuple[tuple[str, str], ...]
    templates: tuple[Template, ...]
    postal_code: str | None = None


def _text(qr: Mapping[str, Any], key: str, default: str, most: int) -> str:
    value = qr.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(f"qr.{key}: expected a non-empty string")
    value = value.strip()
    if key in qr and len(value) > most:
        raise SettingsError(f"qr.{key}: {len(value)} characters, at most {most} fit in a QR code")
    return value[:most]


def _accounts(raw: Any, merchant_id: str) -> tuple[tuple[tuple[str, str], ...], tuple[Template, ...]]:
    if raw is None:
        return (), (Template("26", DEFAULT_WALLET_GUI, (("01", merchant_id or "UNKNOWN"),)),)
    if not isinstance(raw, Mapping) or not raw:
        raise SettingsError("qr.accounts: expected an object of merchant accounts by ID (02 to 51)")
    primitive: list[tuple[str, str]] = []
    templates: list[Template] = []
    for ident, value in raw.items():
        number = int(ident) if isinstance(ident, str) and ident.isascii() and ident.isdigit() else -1
        if len(ident) == 2 and 2 <= number <= 25 and isinstance(value, str):
            primitive.append((ident, value))
        elif len(ident) == 2 and 26 <= number <= 51 and isinstance(value, Mapping) and isinstance(value.get("00"), str):
            fields = tuple((str(k), str(v)) for k, v in value.items() if k != "00")
            templates.append(Template(ident, value["00"], fields))
        else:
            raise SettingsError(
                f"qr.accounts.{ident}: 02-25 take a string, 26-51 an object of sub-IDs with its '00' (the GUI)"
            )
    return tuple(primitive), tuple(templates)


def qr_settings(
    doc: Mapping[str, Any],
    config: TerminalConfig,
    settings: Any,
    *,
    terminal_id: str | None = None,
    merchant_id: str | None = None,
) -> QrMerchant:
    """The terminal's QR merchant data from a terminal.json mapping, its EMV configuration and settings.

    ``terminal_id`` / ``merchant_id`` are the enrolled terminal's when it is
    enrolled (they win over the configuration's).  SettingsError names the
    field that cannot be used.
    """
    qr = doc.get("qr") or {}
    if not isinstance(qr, Mapping):
        raise SettingsError("qr: expected an object")
    address = str(getattr(settings, "merchant_address", "") or "")
    city = address.rsplit(",", 1)[-1].strip() or "UNKNOWN"
    country = qr.get("country", COUNTRIES.get(config.country_code))
    if not isinstance(country, str) or len(country) != 2 or not country.isascii() or not country.isalpha():
        raise SettingsError(
            f"qr.country: no ISO 3166 alpha-2 country for country_code {config.country_code}; set qr.country"
        )
    merchant = merchant_id or config.merchant_id
    accounts, templates = _accounts(qr.get("accounts"), merchant)
    postal = qr.get("postal_code")
    return QrMerchant(
        merchant_name=_text(qr, "merchant_name", str(getattr(settings, "merchant_name", "") or "MERCHANT"), 25),
        merchant_city=_text(qr, "merchant_city", city, 15),
        country=country.upper(),
        merchant_category_code=config.merchant_category_code,
        currency=config.currency,
        terminal_id=terminal_id or config.terminal_id,
        merchant_id=merchant,
        accounts=accounts,
        templates=templates,
        postal_code=_text(qr, "postal_code", "", 10) if postal is not None else None,
    )


def _amount_text(minor: int, cur: Currency) -> str:
    if cur.exponent == 0:
        return str(minor)
    return f"{Decimal(minor).scaleb(-cur.exponent):.{cur.exponent}f}"


def merchant_code(
    qr: QrMerchant,
    *,
    amount: int | None,
    currency: Currency,
    reference: str | None = None,
    static: bool = False,
) -> MerchantPresentedCode:
    """The code of one sale (dynamic: point of initiation 12), or the store's (``static``: 11).

    ``amount`` is in minor units of ``currency``; a dynamic code needs one.
    What cannot be put in a code (a reference over 25 characters, say) is
    refused by :func:`emv.qr_mpm.encode` with an error naming the field.
    """
    if amount is not None and amount <= 0:
        raise ValueError(f"amount {amount}: a QR code's amount must be more than zero")
    if amount is None and not static:
        raise ValueError("a dynamic QR code needs an amount (a static one may go without)")
    extra = AdditionalData(reference_label=reference, terminal_label=qr.terminal_id or None)
    return MerchantPresentedCode(
        merchant_category_code=qr.merchant_category_code,
        currency=f"{currency.numeric:03d}",
        country=qr.country,
        merchant_name=qr.merchant_name,
        merchant_city=qr.merchant_city,
        accounts=qr.accounts,
        templates=qr.templates,
        point_of_initiation="11" if static else "12",
        amount=_amount_text(amount, currency) if amount is not None else None,
        postal_code=qr.postal_code,
        additional_data=extra if extra != AdditionalData() else None,
    )


def new_reference(now: datetime | None = None) -> str:
    """An order reference for a dynamic code (62/05): UTC time to the second and 6 random hex digits.

    >>> len(new_reference()), new_reference(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))[:14]
    (20, '20260102030405')
    """
    moment = now or datetime.now(UTC)
    return f"{moment:%Y%m%d%H%M%S}{secrets.token_hex(3).upper()}"


#: The mask pattern of a code drawn for one sale (see :func:`render`).
FAST_MASK: Final = 2


def render(payload: str, *, png: bool = False, border: int = 2, best_mask: bool = False) -> tuple[str, bytes | None]:
    """The QR code of ``payload`` drawn with text (qrcode's ``print_ascii``), and as PNG bytes when asked.

    The payload goes in byte mode, UTF-8, as the EMV specification asks (no
    numeric or alphanumeric segments), error correction level M.  ISO/IEC
    18004 picks the one of eight mask patterns that scores best against
    patterns that could confuse a reader; qrcode scores them in pure Python,
    16 ms of the 20 a code takes.  A code for one sale is drawn with the
    fixed mask :data:`FAST_MASK` (scanners read any mask; tests and the bench
    read every code back with zbar); ``best_mask`` scores all eight, for a
    code printed once and read for years (the store's static code).
    """
    import qrcode
    from qrcode.util import MODE_8BIT_BYTE, QRData

    code = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M, border=border, mask_pattern=None if best_mask else FAST_MASK
    )
    code.add_data(QRData(payload.encode("utf-8"), mode=MODE_8BIT_BYTE))
    code.make(fit=True)
    out = io.StringIO()
    code.print_ascii(out=out, invert=True)
    image = None
    if png:
        buffer = io.BytesIO()
        code.make_image().save(buffer, format="PNG")
        image = buffer.getvalue()
    return out.getvalue(), image
