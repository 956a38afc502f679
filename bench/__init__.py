"""Benchmarks: they print figures and write docs/benchmarks.md; they are not tests."""
