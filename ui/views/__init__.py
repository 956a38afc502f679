"""The Kivy views: one kv file a screen, bound to its view model; no logic.

Imported only by :mod:`ui.app` (which prepares Kivy's environment first):
the view models never import Kivy.  A screen ``name`` is drawn by the kv rule
of the class ``<Name>Screen`` (e.g. ``present_card`` -> ``PresentCardScreen``),
a dynamic class of :class:`ui.views.base.VmScreen`, in ``ui/views/<name>.kv``.
"""

__all__: list[str] = []
