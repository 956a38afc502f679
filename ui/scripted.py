"""The application driven by a script, really rendering: how the tests use it as a person would.

``python -m ui.scripted SCRIPT.json REPORT.json`` runs the application
offscreen on the terminal the script names, performs each step on the UI
thread between frames, and writes a report: after each step, the screen
shown, its view model's state, the texts of the widgets drawn on it, and a
PNG of the window.  A step is one of:

- ``{"do": "amount.press", "args": ["1"]}``: call an action of a screen's (or a bar's) view model;
- ``{"touch": "charge"}``: press the widget with that id on the current screen,
  as a finger would (its ``on_release``), refused if it is disabled;
  ``{"touch": "banner.send_now"}``: the same on a bar above the screens;
- ``{"wait": "result"}``: wait (up to ``timeout`` s) until that screen is shown and the worker is idle;
  ``{"wait": "present_card", "state": {"prompt": "Present card again"}}``: until it is shown with
  those values (the worker may be busy: a payment under way);
- ``{"sleep": 0.5}``; ``{"language": "zh_CN"}``;
- ``{"close": true}``: the window asked to close, as by its close button (it closes unless refused);
  ``{"key": "escape"}``: the Escape key pressed;
- ``{"call": "package.module:function", "args": [...]}``: call a function in the application's process
  (a test's rig: a device stopped or started while the application runs).

The report also says whether every step ran (``completed``: false when the
application ended before, as a kiosk left with the technician PIN does), the
screen it ended on (``ended_on``), and the window's ``borderless`` and
``fullscreen``.

The script: ``{"data_dir": ..., "reader": ..., "host": "memory", "kiosk": false,
"language": "en", "ecr_port": null, "steps": [...]}``; with ``ecr_port`` the
ECR interface runs in the application's process as the kiosk serves it
(:mod:`ui.kiosk_ecr`; 0: a free port, which the report gives as ``ecr_url``).  Run it with
:func:`run_script` from a test (a subprocess: Kivy owns its process).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["run_script"]


def run_script(script: dict[str, Any], workdir: Path, timeout: float = 120.0) -> dict[str, Any]:
    """Run ``script`` in a child process; the report (``steps``: one entry per step, ``error``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    script_path, report_path = workdir / "script.json", workdir / "report.json"
    script_path.write_text(json.dumps(script), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "ui.scripted", str(script_path), str(report_path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if not report_path.exists():
        raise RuntimeError(f"the scripted application wrote no report (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(report_path.read_text(encoding="utf-8"))
    report["exit_status"] = proc.returncode
    report["stderr"] = proc.stderr[-3000:]
    return report


def _reached(session: Any, step: dict[str, Any]) -> bool:
    """Whether a ``wait`` step's screen is shown (with its ``state`` values, else with the worker idle)."""
    name = step["wait"]
    if session.navigator.current.name != name:
        return False
    wanted = step.get("state")
    if not wanted:
        return not session.worker.busy
    target = session.screens.get(name) or session.bars.get(name)
    state = target.state() if target is not None else {}
    # compared as the report shows them (JSON: a tuple is a list), so a script can name any field
    return all(json.loads(json.dumps(state.get(key))) == value for key, value in dict(wanted).items())


def _texts(widget: Any) -> list[str]:
    out: list[str] = []
    stack = [widget]
    while stack:
        current = stack.pop()
        text = getattr(current, "text", None)
        if isinstance(text, str) and text.strip():
            out.append(text)
        stack.extend(current.children)
    return out


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except TypeError:
        return repr(value)
    return value


def main(argv: list[str]) -> int:
    script = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    report_path = Path(argv[2])
    data_dir = Path(script["data_dir"])
    from ui.kivy_env import prepare

    prepare(data_dir.parent / "kivy-home", offscreen=True)
    from kivy.clock import Clock  # type: ignore[import-untyped]

    from terminal.bootstrap import open_terminal
    from ui.app import PostermApp, kivy_dispatcher
    from ui.session import Session

    terminal = open_terminal(data_dir, reader_url=script.get("reader"), host=script.get("host", "memory"))
    session = Session(terminal, kivy_dispatcher, language=script.get("language", "en"), kiosk=bool(script.get("kiosk")))
    steps: list[dict[str, Any]] = script["steps"]
    report: dict[str, Any] = {"steps": [], "error": None, "completed": False}
    shots = report_path.parent / "shots"
    shots.mkdir(exist_ok=True)

    def record(app: Any, index: int, step: dict[str, Any]) -> None:
        name = session.navigator.current.name
        vm = session.screens.get(name)
        view = app.views.get(name)
        path = shots / f"{index:03d}-{name}.png"
        app.root_window.screenshot(name=str(path))
        taken = sorted(shots.glob(f"{index:03d}-{name}*.png"), key=lambda p: p.stat().st_mtime)
        if taken and taken[-1] != path:
            taken[-1].replace(path)
        report["steps"].append(
            {
                "step": step,
                "screen": name,
                "state": {k: _jsonable(v) for k, v in (vm.state() if vm else {}).items()},
                "texts": _texts(view) if view is not None else [],
                "bars": {
                    bar: {"state": {k: _jsonable(v) for k, v in session.bars[bar].state().items()}, "texts": _texts(w)}
                    for bar, w in app.bars.items()
                },
                "png": str(path),
            }
        )

    if script.get("ecr_port") is not None:
        from ui.kiosk_ecr import serve_ecr

        report["ecr_url"] = serve_ecr(session, int(script["ecr_port"])).url

    def started(app: Any) -> None:
        window = app.root_window
        report["window"] = {"borderless": bool(window.borderless), "fullscreen": window.fullscreen}

        def run(index: int, deadline: float | None = None) -> None:
            if index >= len(steps):
                report["completed"] = True
                app.stop()
                return
            step = steps[index]
            try:
                if "wait" in step:
                    limit = deadline or time.monotonic() + float(step.get("timeout", 30))
                    if not _reached(session, step):
                        if time.monotonic() > limit:
                            raise TimeoutError(f"step {index}: {step['wait']} not shown in time")
                        Clock.schedule_once(lambda _dt: run(index, limit), 0.05)
                        return
                elif "do" in step:
                    screen, _, action = step["do"].partition(".")
                    target = session.screens[screen] if screen in session.screens else session.bars[screen]
                    getattr(target, action)(*step.get("args", []))
                elif "touch" in step:
                    bar, _, wid = str(step["touch"]).rpartition(".")
                    view = app.bars[bar] if bar else app.views[session.navigator.current.name]
                    widget = view.ids[wid]
                    if widget.disabled:
                        raise RuntimeError(f"step {index}: {step['touch']} is disabled")
                    widget.dispatch("on_release")
                elif "sleep" in step:
                    Clock.schedule_once(lambda _dt: after(index), float(step["sleep"]))
                    return
                elif "language" in step:
                    session.tr.set_language(step["language"])
                elif "close" in step:
                    if not window.dispatch("on_request_close"):  # what the window does when nobody refuses
                        app.stop()
                        return
                elif "key" in step:
                    codes = {"escape": (27, 41)}
                    key, scancode = codes[str(step["key"])]
                    window.dispatch("on_keyboard", key, scancode, None, [])
                elif "call" in step:
                    module, _, function = str(step["call"]).partition(":")
                    getattr(importlib.import_module(module), function)(*step.get("args", []))
            except Exception as exc:  # reported, and the run ends
                report["error"] = f"{type(exc).__name__}: {exc}"
                app.stop()
                return
            Clock.schedule_once(lambda _dt: after(index), 0.1)  # a frame drawn after the change

        def after(index: int) -> None:
            record(app, index, steps[index])
            Clock.schedule_once(lambda _dt: run(index + 1), 0)

        Clock.schedule_once(lambda _dt: run(0), 0.2)

    try:
        PostermApp(session, on_started=started).run()
    finally:
        report["ended_on"] = session.navigator.current.name
        terminal.close()
        report_path.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0 if report["error"] is None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
