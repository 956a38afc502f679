"""What every view shares: the bound view model's state as a Kivy property.

``VmScreen.s`` mirrors the view model's fields: kv rules read
``v(root.s, 'field')`` (see :func:`value`) and Kivy redraws what depends on a
field when it changes; actions call the view model
(``on_release: root.vm.charge('card')``).

Kivy is imported when :func:`register` runs (by :func:`ui.app.load_views`),
not when this module is: importing it needs no display and no Kivy.
"""

from __future__ import annotations

from functools import cache
from typing import Any

__all__ = ["class_name", "register", "value"]


def value(state: dict[str, Any], name: str, default: Any = "") -> Any:
    """A field of a view's state, for kv rules: ``v(root.s, 'title')``.

    Written as a call on ``root.s`` (not ``root.s.get(...)``) because kv binds
    to the names in an expression: ``root.s.get`` would bind to ``get`` and
    never see a change.
    """
    return state.get(name, default)


def class_name(screen: str, suffix: str = "Screen") -> str:
    """The kv class that draws screen ``screen``: ``present_card`` -> ``PresentCardScreen``
    (a bar's: ``class_name("banner", "Bar")`` -> ``BannerBar``)."""
    return "".join(part.capitalize() for part in screen.split("_")) + suffix


@cache
def register() -> type:
    """Define ``VmScreen`` (a Kivy Screen bound to one view model) and ``VmBar`` (a bar above the
    screens, bound likewise), and register them with Kivy's factory."""
    from kivy.factory import Factory  # type: ignore[import-untyped]
    from kivy.properties import DictProperty, ObjectProperty  # type: ignore[import-untyped]
    from kivy.uix.boxlayout import BoxLayout  # type: ignore[import-untyped]
    from kivy.uix.screenmanager import Screen  # type: ignore[import-untyped]

    class VmScreen(Screen):  # type: ignore[misc]
        s = DictProperty({})
        vm = ObjectProperty(None, allownone=True)

        def attach(self, vm: Any) -> None:
            self.vm = vm
            self.s = vm.state()
            vm.observe(self._changed)

        def _changed(self, name: str, value: Any) -> None:
            self.s[name] = value

        def on_pre_enter(self, *_: Any) -> None:
            if self.vm is not None:
                self.vm.shown()
                self.s = self.vm.state()

    class VmBar(BoxLayout):  # type: ignore[misc]
        """A bar above every screen (the offline banner), bound to its view model as a screen is."""

        s = DictProperty({})
        vm = ObjectProperty(None, allownone=True)

        def attach(self, vm: Any) -> None:
            self.vm = vm
            self.s = vm.state()
            vm.observe(self._changed)

        def _changed(self, name: str, value: Any) -> None:
            self.s[name] = value

    Factory.register("VmScreen", cls=VmScreen)
    Factory.register("VmBar", cls=VmBar)
    return VmScreen
