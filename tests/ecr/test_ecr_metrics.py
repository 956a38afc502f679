"""``GET /metrics`` on the ECR interface, over HTTP on loopback, read as Prometheus reads it.

The figures follow what the terminal lives through: payments by outcome, the
store-and-forward queue filling while the host is down (its depth, the age
of its oldest entry, the amount per currency), a reversal waiting after an
answer lost, the host's last contact with its result, the reader as its last
use left it, and a payment nobody was shown.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.ecr.conftest import Ecr, sale


def scrape(ecr: Ecr) -> dict[str, list[tuple[dict[str, str], float]]]:
    answer = ecr.http.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    return samples


def value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float | None:
    for got, number in samples.get(name, []):
        if all(got.get(k) == v for k, v in labels.items()):
            return number
    return None


def pay(ecr: Ecr, key: str, amount: int, **more: Any) -> dict[str, Any]:
    assert ecr.start(key, sale(amount, **more)).status_code == 202
    return ecr.final(key)


def test_the_figures_follow_payments_the_queue_and_the_host(ecr: Ecr) -> None:
    first = scrape(ecr)
    assert value(first, "posterm_terminal_saf_depth") == 0
    assert value(first, "posterm_terminal_device_state", device="reader", state="unknown") == 1
    assert value(first, "posterm_terminal_info", terminal_id=ecr.terminal.config.terminal_id) == 1
    assert "posterm_terminal_host_last_answer_timestamp_seconds" not in first  # never heard from yet

    before = time.time()
    assert pay(ecr, "m-1", 2000)["status"] == "approved"
    assert pay(ecr, "m-2", 1051)["status"] == "declined"
    online = scrape(ecr)
    assert value(online, "posterm_terminal_payments_total", kind="sale", outcome="approved") == 1
    assert value(online, "posterm_terminal_payments_total", kind="sale", outcome="declined") == 1
    answered = value(online, "posterm_terminal_host_last_answer_timestamp_seconds")
    assert answered is not None and answered >= before - 1
    assert value(online, "posterm_terminal_host_last_contact_timestamp_seconds", result="answered",
                 what="authorisation") == answered  # fmt: skip
    assert value(online, "posterm_terminal_device_up", device="reader") == 1

    ecr.host.faults.down = True
    assert pay(ecr, "m-3", 2000)["state"] == "deferred_approved"
    assert pay(ecr, "m-4", 3000)["state"] == "deferred_approved"
    down = scrape(ecr)
    assert value(down, "posterm_terminal_saf_depth") == 2
    assert value(down, "posterm_terminal_saf_amount", currency="EUR") == 5000
    oldest = value(down, "posterm_terminal_saf_oldest_age_seconds")
    assert oldest is not None and oldest > 0
    assert value(down, "posterm_terminal_host_last_contact_timestamp_seconds", result="unreachable") is not None
    assert value(down, "posterm_terminal_host_last_answer_timestamp_seconds") == answered  # unchanged
    assert value(down, "posterm_terminal_saf_max_age_seconds") == ecr.terminal.settings.offline_limits.max_age_seconds

    ecr.host.faults.down = False
    ecr.host.faults.no_answer = 2  # the answer is lost, and the reversal's too: the reversal waits
    assert pay(ecr, "m-5", 4000)["state"] == "reversal_pending"
    lost = scrape(ecr)
    assert value(lost, "posterm_terminal_reversals_pending") == 1
    assert value(lost, "posterm_terminal_payments_total", kind="sale", outcome="not_completed") == 1
    assert value(lost, "posterm_terminal_host_last_contact_timestamp_seconds", result="no_answer",
                 what="reversal") is not None  # fmt: skip

    ecr.terminal.forward_now()
    sent = scrape(ecr)
    assert value(sent, "posterm_terminal_saf_depth") == 0 and value(sent, "posterm_terminal_reversals_pending") == 0
    assert value(sent, "posterm_terminal_saf_oldest_age_seconds") == 0
    assert value(sent, "posterm_terminal_host_last_contact_timestamp_seconds", result="answered") is not None


def test_a_payment_nobody_fetched_counts_until_it_is_fetched(ecr: Ecr) -> None:
    assert ecr.start("u-1", sale(900)).status_code == 202
    deadline = time.monotonic() + 30
    while ecr.terminal.payment_for_request("u-1") is None or not ecr.terminal.unshown_payments():
        assert time.monotonic() < deadline, "the payment never ended"
        time.sleep(0.02)
    assert value(scrape(ecr), "posterm_terminal_payments_unshown") == 1
    ecr.final("u-1")
    while value(scrape(ecr), "posterm_terminal_payments_unshown") != 0:
        assert time.monotonic() < deadline, "the fetched payment stayed unshown"
        time.sleep(0.02)


def test_metrics_refuse_web_pages_as_every_endpoint_does(ecr: Ecr) -> None:
    answer = ecr.http.get("/metrics", headers={"Origin": "http://evil.example"})
    assert answer.status_code == 403 and answer.json()["error"] == "forbidden"
