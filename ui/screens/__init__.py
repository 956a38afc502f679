"""The screens' view models, in plain Python: one module per part of the application.

- :mod:`ui.screens.sale`: amount entry with its tenders, "present card", the result.
"""

__all__: list[str] = []
