"""What every diagnostic test gives back, and how a run of them is judged and shown.

A test ends in a :class:`DiagResult`, made by :func:`make_result` so that its
reason and warnings are masked (a device's or a host's message could quote a
card number).  :func:`summary` is the verdict of a run, :func:`results_json`
the one JSON object of ``posterm diag --json`` and :func:`text_report` its
text.  The tests themselves are in :mod:`terminal.diag_devices` and
:mod:`terminal.diag_checks`; :mod:`terminal.diagnostics` runs them.

>>> results = [make_result("reader", True, "ok"), make_result("scanner", None, "no scanner configured")]
>>> summary(results)["passed"], [r.status for r in results]
(True, ['pass', 'skip'])
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from emv.pan import mask_text

__all__ = [
    "DiagResult",
    "error_text",
    "make_result",
    "posterm_version",
    "results_json",
    "summary",
    "text_report",
]


@dataclass(frozen=True)
class DiagResult:
    """One self-test: ``passed`` True, False, or None (skipped / not applicable), with its reason."""

    name: str
    passed: bool | None
    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """``pass``, ``fail`` or ``skip``."""
        return "skip" if self.passed is None else ("pass" if self.passed else "fail")

    @property
    def warnings(self) -> list[str]:
        return list(self.details.get("warnings", []))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "status": self.status,
            "reason": self.reason,
            "details": self.details,
        }


def make_result(
    name: str, passed: bool | None, reason: str, details: dict[str, Any] | None = None, *, mask: bool = True
) -> DiagResult:
    """Reasons are masked: a device's or a host's message could quote card data.

    ``mask=False`` is for a reason built only from parts known to hold no card
    number (an AID such as A0000000031010 looks like one to the masking).
    """
    out = dict(details or {})
    if out.get("warnings"):
        out["warnings"] = [mask_text(w) for w in out["warnings"]]
    else:
        out.pop("warnings", None)
    return DiagResult(name, passed, mask_text(reason) if mask else reason, out)


def error_text(exc: BaseException) -> str:
    """An exception's message for a reason, or its class name when it has none."""
    text = str(exc).strip()
    return text if text else type(exc).__name__


def posterm_version() -> str:
    """The installed distribution's version (``unknown`` when running from a tree that is not installed)."""
    try:
        return metadata.version("posterm")
    except metadata.PackageNotFoundError:
        return "unknown"


def summary(results: Collection[DiagResult]) -> dict[str, Any]:
    """Counts and the overall verdict: passed when no test that ran failed."""
    failed = [r.name for r in results if r.passed is False]
    return {
        "passed": not failed,
        "failed": failed,
        "counts": {
            "pass": sum(1 for r in results if r.passed is True),
            "fail": len(failed),
            "skip": sum(1 for r in results if r.passed is None),
        },
    }


def results_json(results: Collection[DiagResult], **extra: Any) -> dict[str, Any]:
    """The one JSON object of ``posterm diag --json``."""
    return {**summary(results), **extra, "tests": [r.to_json() for r in results]}


def text_report(results: Collection[DiagResult]) -> str:
    """One line per test (``PASS`` / ``FAIL`` / ``SKIP``), warnings indented under it, and the verdict."""
    lines = []
    for r in results:
        lines.append(f"{r.status.upper():<5} {r.name:<14} {r.reason}")
        lines.extend(f"{'':<20}warning: {w}" for w in r.warnings)
    verdict = summary(results)
    counts = verdict["counts"]
    lines.append(
        f"{'all tests passed' if verdict['passed'] else 'FAILED: ' + ', '.join(verdict['failed'])} "
        f"({counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped)"
    )
    return "\n".join(lines)
