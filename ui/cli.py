"""``posterm ui``: the cashier application, ``--kiosk`` the kiosk, ``--screenshots DIR`` every screen as PNG.

The devices are the terminal's configured ones (``posterm devices set``), so
the same application runs on the simulator and on real readers, scanners and
printers; ``--reader``/``--card`` name another reader for this run.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["ECR_KIOSK_PORT", "FIRST_FRAME_ENV", "add_commands"]


def _cmd_ui(args: argparse.Namespace) -> int:
    from terminal.cli_output import CommandError, Unavailable
    from ui.kivy_env import FontMissing, cjk_font, has_display, prepare

    if args.card and args.reader:
        raise CommandError("give either --card or --reader, not both")
    try:
        cjk_font()
    except FontMissing as exc:
        raise Unavailable(str(exc)) from None
    from terminal.bootstrap import default_data_dir

    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    offscreen = bool(args.screenshots) or not has_display()
    if args.screenshots:
        from ui.screenshots import write_screenshots

        prepare(data_dir / "kivy", offscreen=True)
        written = write_screenshots(Path(args.screenshots), data_dir, kiosk=args.kiosk)
        print(f"{len(written)} screenshots written to {args.screenshots}")
        return 0
    if not has_display() and not args.offscreen:
        raise Unavailable("no display (DISPLAY is not set): run on a screen, or use --screenshots DIR")
    prepare(data_dir / "kivy", offscreen=offscreen)
    from terminal.bootstrap import open_terminal
    from ui.app import PostermApp, kivy_dispatcher
    from ui.session import Session

    reader = f"sim:card={args.card}" if args.card else args.reader
    terminal = open_terminal(data_dir, reader_url=reader, host=args.host)
    session = Session(terminal, kivy_dispatcher, language=args.lang, kiosk=args.kiosk)
    server = None
    try:
        server = _ecr(args, session)
        PostermApp(session, on_started=_first_frame_probe() if os.environ.get(FIRST_FRAME_ENV) else None).run()
    finally:
        if server is not None:
            server.stop(timeout=10.0)
        terminal.close()
    return 0


def _ecr(args: argparse.Namespace, session: Any) -> Any:
    """The ECR interface in this process (:mod:`ui.kiosk_ecr`): the kiosk's by default, the cashier's if asked."""
    from terminal.cli_output import CommandError, Unavailable

    if args.no_ecr and args.ecr_port is not None:
        raise CommandError("give either --ecr-port or --no-ecr, not both")
    port = args.ecr_port if args.ecr_port is not None else (ECR_KIOSK_PORT if args.kiosk and not args.no_ecr else None)
    if port is None:
        return None
    from ui.ecr.server import EcrBindError
    from ui.kiosk_ecr import serve_ecr

    try:
        server = serve_ecr(session, port)
    except EcrBindError as exc:
        raise Unavailable(f"the ECR interface cannot listen: {str(exc).replace('--port', '--ecr-port')}") from None
    print(f"ECR interface: {server.url}", flush=True)
    return server


#: Where the kiosk serves the ECR interface unless told otherwise (``posterm ecr serve``'s default too).
ECR_KIOSK_PORT = 8780


#: Set, the application prints ``first frame`` once its first frame is drawn, and exits (the start-up benchmark).
FIRST_FRAME_ENV = "POSTERM_UI_FIRST_FRAME_EXIT"


def _first_frame_probe() -> Any:
    def started(app: Any) -> None:
        from kivy.core.window import Window  # type: ignore[import-untyped]

        def flipped(*_: Any) -> None:  # the first frame drawn and shown
            Window.unbind(on_flip=flipped)
            print("first frame", flush=True)
            app.stop()

        Window.bind(on_flip=flipped)

    return started


def add_commands(sub: Any) -> None:
    """Add ``posterm ui`` to the parser's subcommands."""
    p: argparse.ArgumentParser = sub.add_parser(
        "ui", help="the cashier application (Kivy); --kiosk the kiosk; --screenshots DIR every screen as PNG"
    )
    p.add_argument("--kiosk", action="store_true", help="the unattended kiosk: full screen, no way out without PIN")
    p.add_argument("--lang", default="en", choices=["en", "zh_CN"], help="the language to start in (default en)")
    p.add_argument("--screenshots", metavar="DIR", help="render every screen in both languages to PNG files, and exit")
    p.add_argument("--offscreen", action="store_true", help="run without a display (for tests)")
    p.add_argument("--card", help="a simulated card profile (short for --reader sim:card=PROFILE)")
    p.add_argument("--reader", metavar="URL", help="device URL of the card reader (default: the configured one)")
    p.add_argument("--host", default="auto", help="auto (default), memory, none, https, or https://HOST:PORT")
    p.add_argument(
        "--ecr-port",
        type=_port,
        metavar="PORT",
        help="serve the ECR interface in this process on 127.0.0.1:PORT (0: a free one); "
        f"the kiosk does on {ECR_KIOSK_PORT} unless --no-ecr",
    )
    p.add_argument("--no-ecr", action="store_true", help="a kiosk without the ECR interface (payments: demo_amount)")
    p.add_argument(
        "--data-dir",
        type=Path,
        help="where the journal and keys live (default: $POSTERM_DATA_DIR, else the user data directory)",
    )
    p.set_defaults(func=_cmd_ui)


def _port(text: str) -> int:
    from ui.ecr.cli import port_or_zero

    return port_or_zero(text)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run 'posterm ui'")
