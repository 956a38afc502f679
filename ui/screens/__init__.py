"""The screens' view models, in plain Python: one module per part of the application.

- :mod:`ui.screens.sale`: amount entry with its tenders, "present card", the result.
- the cashier's other verbs: :mod:`ui.screens.menu` (the menu), :mod:`ui.screens.journal` (the list
  and its search), :mod:`ui.screens.receipt` (the receipt, reprint, the e-receipt's QR code),
  :mod:`ui.screens.refund` (refund and void), :mod:`ui.screens.pin` (the supervisor's PIN),
  :mod:`ui.screens.reports` (the X report), :mod:`ui.screens.day_end` (end of day), and
  :mod:`ui.screens.banner` (host unreachable, above every screen); :mod:`ui.screens.describe`
  says payments in words for all of them.
- the customer's PIN on the on-screen PIN pad (``screen:``, simulator and attended tests),
  cashier and kiosk: :mod:`ui.screens.customer_pin`.
"""

__all__: list[str] = []
