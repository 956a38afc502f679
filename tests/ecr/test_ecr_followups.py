"""After the payment: refunds, voids, receipts (text and printed), the day's totals and the status.

Refunds are payments too (started, followed and keyed like a sale); a void
is answered when done and is one void however often it is asked; a receipt
given out is recorded, so the second says DUPLICATE; whatever the payment
rules refuse is refused with their reason in words.
"""

from __future__ import annotations

from collections.abc import Callable

from terminal.ports import PrinterError, PrinterStatus
from tests.ecr.conftest import Ecr, sale


class Printer:
    """A receipt printer that keeps its jobs (or fails every one with ``fault``)."""

    url = "test:printer"

    def __init__(self, fault: PrinterStatus | None = None) -> None:
        self.jobs: list[bytes] = []
        self.fault = fault

    def print_job(self, data: bytes) -> None:
        if self.fault is not None:
            raise PrinterError(f"the printer says {self.fault.value}", self.fault)
        self.jobs.append(data)

    def status(self) -> PrinterStatus:
        return self.fault or PrinterStatus.READY

    def close(self) -> None:
        pass


def _approved_sale(ecr: Ecr, key: str, amount: int = 2000) -> dict[str, object]:
    assert ecr.start(key, sale(amount)).status_code == 202
    done = ecr.final(key)
    assert done["status"] == "approved"
    return done


def test_a_refund_against_a_sale_needs_no_card_and_never_pays_back_more(ecr: Ecr) -> None:
    original = _approved_sale(ecr, "s-1", 2000)
    body = {"kind": "refund", "amount": 500, "currency": "EUR", "original_txn_id": original["txn_id"]}
    assert ecr.start("r-1", body).status_code == 202
    refund = ecr.final("r-1")
    assert refund["status"] == "approved" and refund["kind"] == "refund"
    assert refund["original_txn_id"] == original["txn_id"]
    # No card was asked for: the money goes back to the sale's card.
    assert "Present card" not in [m["text"] for m in refund["messages"]]
    too_much = {**body, "amount": 1501}
    ecr.start("r-2", too_much)
    refused = ecr.final("r-2")
    assert refused["status"] == "refused" and refused["reason"] == "amount"
    assert "1500" in refused["message"].replace(".", "") and refused["txn_id"] is None
    assert [r.kind for r in ecr.terminal.transactions()] == ["sale", "refund"]


def test_an_unreferenced_refund_goes_to_the_card_presented(ecr: Ecr) -> None:
    ecr.start("r-unref", {"kind": "refund", "amount": 300, "currency": "EUR", "unreferenced": True})
    refund = ecr.final("r-unref")
    assert refund["status"] == "approved" and refund["original_txn_id"] is None
    assert refund["result"]["masked_pan"].endswith("0010")


def test_a_refund_of_an_unknown_sale_is_refused_in_words(ecr: Ecr) -> None:
    ecr.start("r-unknown", {"kind": "refund", "amount": 300, "currency": "EUR", "original_txn_id": "no-such-sale"})
    refused = ecr.final("r-unknown")
    assert refused["status"] == "refused" and "no transaction no-such-sale" in refused["message"]


def test_a_void_is_done_once_however_often_it_is_asked(ecr: Ecr) -> None:
    done = _approved_sale(ecr, "v-1")
    answer = ecr.http.post("/v1/payments/v-1/void")
    assert answer.status_code == 200 and "idempotent-replay" not in answer.headers
    voided = answer.json()
    assert voided["status"] == "voided" and voided["state"] in ("voided", "void_pending") and not voided["approved"]
    again = ecr.http.post(f"/v1/payments/{done['txn_id']}/void")  # by the terminal's id: the same payment
    assert again.status_code == 200 and again.headers["idempotent-replay"] == "true"
    assert ecr.get("v-1")["status"] == "voided"
    assert ecr.host.is_reversed(str(done["txn_id"]))
    assert len([r for r in ecr.terminal.transactions() if r.kind == "sale"]) == 1


def test_what_cannot_be_voided_is_refused_with_the_reason(ecr: Ecr) -> None:
    ecr.start("v-declined", sale(1051))
    assert ecr.final("v-declined")["status"] == "declined"
    refused = ecr.http.post("/v1/payments/v-declined/void")
    assert refused.status_code == 409 and refused.json()["error"] == "refused"
    assert "declined" in refused.json()["message"]
    with_refund = _approved_sale(ecr, "v-2")
    ecr.start("v-2-r", {"kind": "refund", "amount": 100, "currency": "EUR", "original_txn_id": with_refund["txn_id"]})
    ecr.final("v-2-r")
    refused = ecr.http.post("/v1/payments/v-2/void")
    assert refused.status_code == 409 and "refund" in refused.json()["message"]
    missing = ecr.http.post("/v1/payments/v-none/void")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_receipts_as_text_the_second_one_a_duplicate(ecr: Ecr) -> None:
    done = _approved_sale(ecr, "rc-1", 1234)
    first = ecr.http.get("/v1/payments/rc-1/receipt")
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/plain")
    assert first.headers["receipt-duplicate"] == "false"
    text = first.text
    assert "12.34 EUR" in text and "APPROVED" in text and "CUSTOMER COPY" in text and str(done["txn_id"]) in text
    assert "476173******0010" in text and "DUPLICATE" not in text
    assert max(len(line) for line in text.splitlines()) <= 42
    second = ecr.http.get("/v1/payments/rc-1/receipt")
    assert second.headers["receipt-duplicate"] == "true" and "DUPLICATE" in second.text
    merchant = ecr.http.get("/v1/payments/rc-1/receipt", params={"copy": "merchant"})
    assert "MERCHANT COPY" in merchant.text and merchant.headers["receipt-duplicate"] == "false"
    bad = ecr.http.get("/v1/payments/rc-1/receipt", params={"copy": "everyone"})
    assert bad.status_code == 400 and bad.json()["error"] == "bad_request"


def test_a_payment_that_was_never_made_has_no_receipt(make_ecr: Callable[..., Ecr]) -> None:
    ecr = make_ecr("sim:card=visa-qvsdc-online?present-after=30")
    ecr.start("rc-none", sale())
    ecr.wait_for("rc-none", lambda p: p["status"] == "waiting_for_card")
    ecr.http.post("/v1/payments/rc-none/cancel")
    answer = ecr.http.get("/v1/payments/rc-none/receipt")
    assert answer.status_code == 404 and "nothing was recorded" in answer.json()["message"]


def test_printing_a_receipt_on_the_terminal_printer(ecr: Ecr) -> None:
    _approved_sale(ecr, "pr-1")
    none = ecr.http.post("/v1/payments/pr-1/receipt/print")
    assert none.status_code == 503 and none.json()["error"] == "no_printer"
    printer = Printer()
    ecr.terminal.printer = printer
    answer = ecr.http.post("/v1/payments/pr-1/receipt/print", json={"copy": "merchant"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["printed"] is True and answer.json()["copy"] == "merchant"
    assert len(printer.jobs) == 1 and b"MERCHANT COPY" in printer.jobs[0]
    ecr.terminal.printer = Printer(PrinterStatus.PAPER_OUT)
    failed = ecr.http.post("/v1/payments/pr-1/receipt/print")
    assert failed.status_code == 503 and "paper_out" in failed.json()["message"]
    bad = ecr.http.post("/v1/payments/pr-1/receipt/print", json={"copy": "both"})
    assert bad.status_code == 422 and bad.json()["message"].startswith("copy ")


def test_the_days_totals_count_what_was_approved(ecr: Ecr) -> None:
    empty = ecr.http.get("/v1/totals").json()
    assert empty["lines"] == [] and empty["saf"]["queued"] == 0
    first = _approved_sale(ecr, "t-1", 1000)
    _approved_sale(ecr, "t-2", 2500)
    ecr.start("t-3", sale(1051))  # declined: not counted
    ecr.final("t-3")
    ecr.start("t-r", {"kind": "refund", "amount": 400, "currency": "EUR", "original_txn_id": first["txn_id"]})
    ecr.final("t-r")
    totals = ecr.http.get("/v1/totals").json()
    assert {(t["kind"], t["count"], t["amount"]) for t in totals["totals"]} == {("sale", 2, 3500), ("refund", 1, 400)}
    assert totals["lines"][0]["scheme"] == "visa" and totals["lines"][0]["currency"] == "EUR"
    assert {t["amount_text"] for t in totals["totals"]} == {"35.00 EUR", "4.00 EUR"}


def test_totals_and_receipts_wait_for_no_one_while_a_payment_runs(make_ecr: Callable[..., Ecr]) -> None:
    ecr = make_ecr("sim:card=visa-qvsdc-online?present-after=30")
    ecr.start("busy-t", sale())
    ecr.wait_for("busy-t", lambda p: p["status"] == "waiting_for_card")
    for answer in (ecr.http.get("/v1/totals"), ecr.http.post("/v1/payments/busy-t/void")):
        assert answer.status_code in (404, 409)
        assert answer.json()["error"] in ("busy", "not_found")
    assert ecr.http.get("/v1/totals").json()["error"] == "busy"
    ecr.http.post("/v1/payments/busy-t/cancel")
    assert ecr.http.get("/v1/totals").status_code == 200


def test_the_status_says_what_a_register_needs_before_it_starts(ecr: Ecr) -> None:
    status = ecr.http.get("/v1/status").json()
    assert status["accepting"] is True and status["busy"] is False and status["running"] is None
    assert status["reader"]["configured"] is True and status["printer"]["configured"] is False
    assert status["host"]["configured"] is True and status["saf"]["queued"] == 0
    checked = ecr.http.get("/v1/status", params={"check_host": "true"}).json()
    assert checked["host"]["echo"]["passed"] is True
    assert ecr.http.get("/v1/status", params={"check_host": "maybe"}).status_code == 400
