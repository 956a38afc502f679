"""docs/cbdc-protocol.md's worked example is what the code produces (every byte of it)."""

from __future__ import annotations

from tests.unit.cbdc.doc_example import PAGE, section, worked_example


def test_the_page_holds_the_example_the_code_produces() -> None:
    assert section(PAGE.read_text(encoding="utf-8")) == worked_example()
