"""The terminal's side of the terminal <-> acquiring host protocol (coming: HTTPS with mutual TLS)."""
