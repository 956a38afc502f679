"""Shared fixtures: the default terminal configuration and simulated cards."""

from __future__ import annotations

import warnings

import pytest

from emv.config import TerminalConfig


def pytest_configure(config: pytest.Config) -> None:
    # pyemv's use of TripleDES warns with recent cryptography; only that warning is filtered.
    warnings.filterwarnings("ignore", message=".*TripleDES.*")


@pytest.fixture(scope="session")
def terminal_config() -> TerminalConfig:
    from terminal.settings import load_default_config

    return load_default_config()
