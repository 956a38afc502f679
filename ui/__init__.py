"""Kivy screens for cashier, kiosk and diagnostics (coming); they talk only to the terminal facade."""
