"""The ECR benchmark runs and reports its figures (no timing is asserted)."""

from __future__ import annotations

from pathlib import Path

from bench import ecr


def test_the_benchmark_times_payments_from_the_request_to_the_reader(tmp_path: Path) -> None:
    figures = ecr.run(runs=3, base=tmp_path)
    assert len(figures.to_poll_ms) == len(figures.answer_ms) == len(figures.whole_ms) == 3
    assert all(0 < poll <= whole for poll, whole in zip(figures.to_poll_ms, figures.whole_ms, strict=True))
    text = ecr.markdown(figures)
    assert "the reader polls for the card" in text and "Target" in text
