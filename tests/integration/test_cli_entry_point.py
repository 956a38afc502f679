"""Entry Point's outcome processing (Book B 3.5) as ``posterm emv tap`` shows it (real subprocesses)."""

from __future__ import annotations

import json
from typing import Any

from tests.integration.test_cli import run


def _tap(*args: str) -> dict[str, Any]:
    proc = run("emv", "tap", "--currency", "978", "--un", "1A2B3C4D", "--date", "261121", "--amount", "12.34", *args)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_book_b_3_5_c2_end_application_shows_the_kernels_error_indication() -> None:
    """Book B 3.5 with Book C-2: kernel C-2 ends the application (mc-magstripe-afl refuses the read of its
    mag-stripe record when DF811B B0 has it read): the JSON carries C-2's own outcome data, the Error
    Indication naming STATUS BYTES and the card's 6985.  Before: "outcome_data" was null."""
    result = _tap("--card", "mc-magstripe-afl", "--set", "DF811B=B0")
    assert result["outcome"] == "end_application"
    data = result["outcome_data"]
    assert data["DF8129"]["decoded"]["status"] == "END APPLICATION"
    assert data["DF8115"]["decoded"]["l2"] == "STATUS BYTES" and data["DF8115"]["decoded"]["sw12"] == "6985"
    assert result["outcome_parameters"]["start"] is None


def test_book_b_3_5_1_2_torn_card_says_where_entry_point_starts_again() -> None:
    """Book B 3.5.1.2: mc-torn leaves the field during GENERATE AC: Try Again, and the JSON says Start B
    with "present card again" as the UI Request on Restart."""
    result = _tap("--card", "mc-torn")
    assert result["outcome"] == "try_again"
    params = result["outcome_parameters"]
    assert params["start"] == "B" and params["ui_request_on_restart"]["id"] == "21"
    assert params["ui_request_on_restart"]["status"] == "ready_to_read"
    assert (params["field_off_request"], params["removal_timeout"]) == (None, 0)
