"""Simulated contact (inserted) EMV cards: profiles ``contact-*`` and the card that answers for them.

Card side only: independent of ``emv`` (an import contract keeps it so).
"""

__all__: list[str] = []
