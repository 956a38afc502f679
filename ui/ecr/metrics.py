"""``GET /metrics``: the terminal's figures in Prometheus' text format, on the ECR interface's own port.

A terminal that runs as a service (``posterm ecr serve``, the kiosk, which
serves the ECR interface in its process) is scraped where registers reach
it: loopback, unless the server was told otherwise.  The figures are
:func:`terminal.metrics.snapshot`'s, read from the journal on each scrape
(nothing is sent to the host, no device is opened), plus the payments by
outcome since the process started and each device as its last use left it
(:class:`terminal.metrics.UsageTracker`).  docs/operations.md, "The terminal" says
what each means and what to alert on.

Each scrape builds a registry of its own (no global state, two servers in
one process do not mix), with one collector that yields the families of one
reading.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from terminal.metrics import TerminalMetrics

__all__ = ["CONTENT_TYPE", "PREFIX", "exposition"]

PREFIX: Final = "posterm_terminal"
CONTENT_TYPE: Final = CONTENT_TYPE_PLAIN_0_0_4  # the classic text format, which every Prometheus reads


def _timestamp(moment: str) -> float:
    return datetime.fromisoformat(moment).timestamp()


def _families(m: TerminalMetrics) -> Iterator[Metric]:
    info = GaugeMetricFamily(
        f"{PREFIX}_info", "The terminal's identity (value 1).", labels=["terminal_id", "merchant_id"]
    )
    info.add_metric([m.terminal_id, m.merchant_id], 1)
    yield info
    yield GaugeMetricFamily(f"{PREFIX}_saf_depth", "Payments waiting in the store-and-forward queue.", m.saf_depth)
    yield GaugeMetricFamily(
        f"{PREFIX}_saf_oldest_age_seconds",
        "Age of the oldest payment in the store-and-forward queue (0 when it is empty).",
        value=m.saf_oldest_age_seconds or 0.0,
    )
    amounts = GaugeMetricFamily(
        f"{PREFIX}_saf_amount", "Amount waiting in the queue, in minor units, per currency.", labels=["currency"]
    )
    for code, (_count, amount) in sorted(m.saf_amounts.items()):
        amounts.add_metric([_currency(code)], amount)
    yield amounts
    yield GaugeMetricFamily(f"{PREFIX}_saf_max_depth", "The offline limit on queued payments.", value=m.saf_max_depth)
    yield GaugeMetricFamily(
        f"{PREFIX}_saf_max_age_seconds",
        "The offline limit on the oldest queued payment's age: beyond it, no new offline payment.",
        value=m.saf_max_age_seconds,
    )
    yield GaugeMetricFamily(
        f"{PREFIX}_saf_declined_after_forwarding",
        "Queued payments the host declined or rejected when they were forwarded (money not collected).",
        value=m.declined_after_forwarding,
    )
    yield GaugeMetricFamily(
        f"{PREFIX}_reversals_pending", "Reversals waiting to be sent to the host.", value=m.reversals_pending
    )
    contact = GaugeMetricFamily(
        f"{PREFIX}_host_last_contact_timestamp_seconds",
        "When the terminal last tried the host, labelled with the result (answered, no_answer, unreachable, "
        "failed) and what was sent.",
        labels=["result", "what"],
    )
    if m.host_last_contact is not None:
        last = m.host_last_contact
        contact.add_metric([str(last.get("result")), str(last.get("what"))], _timestamp(str(last["at"])))
    yield contact
    answered = GaugeMetricFamily(
        f"{PREFIX}_host_last_answer_timestamp_seconds", "When the host last answered the terminal.", labels=[]
    )
    if m.host_last_answer is not None:
        answered.add_metric([], _timestamp(str(m.host_last_answer["at"])))
    yield answered
    yield CounterMetricFamily(
        f"{PREFIX}_host_certificate_rejections",
        "Times the host's certificate was rejected (a security event: someone may be in between).",
        value=m.security_events,
    )
    up = GaugeMetricFamily(
        f"{PREFIX}_device_up",
        "1 when the device worked at its last use or test, 0 when it failed (absent: not known yet).",
        labels=["device", "url"],
    )
    state = GaugeMetricFamily(
        f"{PREFIX}_device_state",
        "Each configured device's state (value 1): up, down, unknown or not_configured.",
        labels=["device", "state"],
    )
    for kind, device in m.devices.items():
        state.add_metric([kind, device.state], 1)
        if device.state in ("up", "down"):
            up.add_metric([kind, device.url or ""], 1 if device.state == "up" else 0)
    yield up
    yield state
    expiry = GaugeMetricFamily(
        f"{PREFIX}_certificate_expiry_days",
        "Days left on the terminal's certificate for the host (absent when not enrolled).",
        labels=[],
    )
    if m.certificate_days_left is not None:
        expiry.add_metric([], m.certificate_days_left)
    yield expiry
    yield GaugeMetricFamily(
        f"{PREFIX}_payments_unshown",
        "Payments with an outcome nobody was shown (a process stopped between the payment and its screen).",
        value=m.payments_unshown,
    )
    payments = CounterMetricFamily(
        f"{PREFIX}_payments",
        "Payments since the process started, by kind and outcome (approved, declined, refused, not_completed).",
        labels=["kind", "outcome"],
    )
    for (kind, outcome), count in sorted(m.payments.items()):
        payments.add_metric([kind, outcome], count)
    yield payments


def _currency(numeric: int) -> str:
    from terminal.money import currency

    try:
        return currency(numeric).code
    except ValueError:
        return f"{numeric:03d}"


class _Reading:
    """A collector of one reading (registered in a registry of its own for one scrape)."""

    def __init__(self, metrics: TerminalMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return _families(self._metrics)

    def describe(self) -> list[Any]:
        return []


def exposition(metrics: TerminalMetrics) -> bytes:
    """The figures in Prometheus' text exposition format (``CONTENT_TYPE``)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Reading(metrics))
    return generate_latest(registry)
