"""The ``pin_on_refund`` setting and the refund's PIN decision (terminal/refund_pin.py), one piece at a time.

The refunds themselves, with the PIN pad, the host over mutual TLS and the books, are in
tests/integration/test_pin_refund.py.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from terminal.core import TerminalSettings
from terminal.offline import OfflineBehavior, PaymentRefused
from terminal.refund_pin import refund_pin_needed, tvr_online_pin_entered
from terminal.settings import SettingsError, load_settings, shipped_document


def test_the_default_is_never_and_online_is_read_from_the_configuration() -> None:
    assert TerminalSettings().pin_on_refund == "never"
    assert load_settings(shipped_document()).pin_on_refund == "never"
    assert load_settings(shipped_document() | {"pin_on_refund": "online"}).pin_on_refund == "online"


@pytest.mark.parametrize(
    "value",
    ["ONLINE", "Online", "", " online", "always", "offline", 0, 1, True, False, None, 2.5, ["online"],
     {"online": True}, "online\nnever", "\x00", "é" * 10_000, "x" * 100_000],
)  # fmt: skip
def test_a_hostile_value_refuses_the_configuration_in_one_short_line(value: Any) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings({"pin_on_refund": value})
    text = str(refused.value)
    assert text.startswith("terminal settings: pin_on_refund is ") and text.endswith("expected 'never' or 'online'")
    assert "\n" not in text and len(text) < 120


def _core(setting: str, pad: object | None) -> Any:
    return SimpleNamespace(settings=TerminalSettings(pin_on_refund=setting), pin_pad=pad)


@pytest.mark.parametrize("behavior", list(OfflineBehavior))
def test_never_asks_no_pin_whatever_the_pad_and_the_behaviour(behavior: OfflineBehavior) -> None:
    for pad in (None, object()):
        assert refund_pin_needed(_core("never", pad), reads_card=True, behavior=behavior) is False


def test_online_asks_only_when_a_card_is_read() -> None:
    core = _core("online", object())
    assert refund_pin_needed(core, reads_card=True, behavior=OfflineBehavior.PREFER_ONLINE) is True
    assert refund_pin_needed(core, reads_card=True, behavior=OfflineBehavior.REQUIRE_ONLINE) is True
    # a refund against a sale that reads no card: to the sale's card, no PIN (and no PIN pad needed)
    assert refund_pin_needed(_core("online", None), reads_card=False, behavior=OfflineBehavior.FORCE_OFFLINE) is False


def test_online_without_a_pin_pad_or_offline_is_refused_in_words() -> None:
    with pytest.raises(PaymentRefused) as no_pad:
        refund_pin_needed(_core("online", None), reads_card=True, behavior=OfflineBehavior.PREFER_ONLINE)
    assert no_pad.value.reason == "pin_pad" and "no PIN pad is configured" in str(no_pad.value)
    with pytest.raises(PaymentRefused) as offline:
        refund_pin_needed(_core("online", object()), reads_card=True, behavior=OfflineBehavior.FORCE_OFFLINE)
    assert offline.value.reason == "pin_offline" and "cannot be stored offline" in str(offline.value)
    for refusal in (no_pad.value, offline.value):
        assert "nothing was refunded" in str(refusal) and "\n" not in str(refusal)


def test_the_journal_tvr_says_online_pin_entered() -> None:
    assert tvr_online_pin_entered("8000008000") == "8000048000"
    assert tvr_online_pin_entered("0000040000") == "0000040000"  # already set
    assert tvr_online_pin_entered("zz") == "zz"  # not a TVR: left as it is
    assert tvr_online_pin_entered("00") == "00"
