"""Kivy screens for cashier, kiosk and diagnostics (coming); they talk only to the terminal facade."""

__all__: list[str] = []  # the modules are the public face (pinned in tests/unit/test_public_names.py)
