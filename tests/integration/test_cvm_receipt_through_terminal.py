"""A sale through the Terminal facade on a card that asks for online PIN: no receipt claims a PIN (issue 9).

Uses the facade's ``Terminal.receipt`` (the lead's facade rewrite); see
tests/integration/test_cvm_without_pin_pad.py for the kernel and receipt halves.
"""

from __future__ import annotations

import pytest

from terminal.receipts import render_text
from tests.integration.conftest import Rig

PIN_CARD = "visa-qvsdc-online"  # CTQ 8000: online PIN required, nothing else offered
EUR = 978


@pytest.mark.parametrize(("profile", "cvm"), [(PIN_CARD, "failed"), ("mc-cda-online", "signature")])
def test_a_sale_through_the_terminal_never_claims_a_pin(rig: Rig, profile: str, cvm: str) -> None:
    rig.card(profile)
    result = rig.terminal.sale(6000, EUR)
    row = rig.terminal.get(result.txn_id)
    assert row is not None
    tvr = row.details.get("tvr")
    assert tvr is None or not bytes.fromhex(tvr)[2] & 0x04
    assert row.details.get("cvm") in (cvm, None)
    for copy in ("merchant", "customer"):
        data = rig.terminal.receipt(result.txn_id, copy, issue=False)
        assert data.cvm not in ("online_pin", "offline_pin")
        assert "PIN" not in render_text(data, copy)
