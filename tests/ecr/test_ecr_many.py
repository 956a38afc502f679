"""Two hundred payments in a row through the ECR interface, as a busy register makes them.

Each is started, followed by long poll to its result, its receipt fetched,
and the next started at once: the one-payment slot is free as soon as the
answer is out, nothing is charged twice, and the journal, the host and the
totals agree.  The amounts end in 0 (amounts ending in .05, .51 or .54 are
the simulated host's declines).
"""

from __future__ import annotations

import time

from tests.ecr.conftest import Ecr, sale

COUNT = 200


def test_two_hundred_payments_in_a_row(ecr: Ecr) -> None:
    began = time.monotonic()
    txn_ids = []
    for n in range(COUNT):
        key = f"row-{n:04d}"
        answer = ecr.start(key, sale(1000 + 10 * n, reference=f"T-{n}"))
        assert answer.status_code == 202, answer.text
        done = ecr.final(key)
        assert done["status"] == "approved", done
        txn_ids.append(done["txn_id"])
        # The receipt, then at once the next payment: the terminal is free as soon as the receipt is out.
        receipt = ecr.http.get(f"/v1/payments/{key}/receipt")
        assert receipt.status_code == 200 and done["txn_id"] in receipt.text
    elapsed = time.monotonic() - began
    assert len(set(txn_ids)) == COUNT
    rows = ecr.terminal.transactions()
    assert [r.txn_id for r in rows] == txn_ids and all(r.state.value == "approved" for r in rows)
    assert ecr.host.duplicates() == {} and len(ecr.host.records) == COUNT
    totals = ecr.http.get("/v1/totals").json()["totals"]
    assert totals == [
        {
            "currency": "EUR",
            "kind": "sale",
            "count": COUNT,
            "amount": sum(1000 + 10 * n for n in range(COUNT)),
            "amount_text": f"{sum(1000 + 10 * n for n in range(COUNT)) / 100:.2f} EUR",
        }
    ]
    assert ecr.terminal.verify_journal().ok
    print(f"{COUNT} payments through the ECR interface in {elapsed:.2f} s ({elapsed / COUNT * 1000:.1f} ms each)")
