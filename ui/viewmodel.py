"""View models: what a screen shows and what it offers, in plain Python (no Kivy).

Each screen has one :class:`ViewModel`.  Its public attributes are what the
screen shows; its methods are the actions (a key pressed, "Charge", "Cancel").
A Kivy view binds to it (:func:`ui.views.bind`) and holds no logic, so every
behaviour is tested without a window.  A change of an attribute, made with
:meth:`ViewModel.update`, is told to the observers, on the UI thread.

:class:`Navigator` is how view models move between screens: they ask for a
screen by name; the application shows it (and tests read where it went).

>>> class Counter(ViewModel):
...     count: int = 0
...     def press(self) -> None:
...         self.update(count=self.count + 1)
>>> vm, seen = Counter(), []
>>> _ = vm.observe(lambda name, value: seen.append((name, value)))
>>> vm.press(); seen
[('count', 1)]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Navigator", "Screen", "ViewModel"]

Observer = Callable[[str, Any], None]


class ViewModel:
    """Observable state of one screen; subclasses declare their fields as class attributes with defaults."""

    #: The screen's name, as the navigator and the views know it.
    screen: str = ""

    def __init__(self) -> None:
        self._observers: list[Observer] = []

    def observe(self, observer: Observer) -> Callable[[], None]:
        """Call ``observer(name, value)`` for every change from now on; returns the function that stops it."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer) if observer in self._observers else None

    def update(self, **changes: Any) -> None:
        """Set attributes and tell the observers of those that changed (on the caller's thread: the UI's)."""
        changed = []
        for name, value in changes.items():
            if not hasattr(self, name):
                raise AttributeError(f"{type(self).__name__} has no field {name!r}")
            if getattr(self, name) != value:
                setattr(self, name, value)
                changed.append((name, value))
        for name, value in changed:
            for observer in list(self._observers):
                observer(name, value)

    def state(self) -> dict[str, Any]:
        """Every public field and its value (for tests, logs and screenshots)."""
        names = [n for n in dir(type(self)) if not n.startswith("_") and not callable(getattr(type(self), n, None))]
        return {n: getattr(self, n) for n in names if n != "screen"}

    def shown(self) -> None:
        """The screen was just shown (refresh what it reads from the terminal); nothing by default."""

    def sample(self) -> None:
        """Fill the screen as a customer or cashier would typically see it (for screenshots); nothing by default.

        Called on a session whose terminal is a throwaway one on the simulator,
        so a sample may make payments.
        """


@dataclass
class Screen:
    """A screen shown: its name and the arguments it was asked for with."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)


class Navigator:
    """Where the application is: view models call :meth:`go`; the application listens."""

    def __init__(self, first: str = "") -> None:
        self.current = Screen(first)
        self.history: list[Screen] = [self.current]
        self._listeners: list[Callable[[Screen], None]] = []

    def listen(self, listener: Callable[[Screen], None]) -> None:
        self._listeners.append(listener)

    def go(self, name: str, **args: Any) -> None:
        self.current = Screen(name, args)
        self.history.append(self.current)
        for listener in list(self._listeners):
            listener(self.current)
