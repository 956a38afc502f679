"""The kiosk on a real PC/SC reader (pcscd with vpcd) that goes away and comes back: "out of order: card
reader", then idle again and paying, with nothing restarted.  No window: the view models, as the screens see them.
"""

from __future__ import annotations

from pathlib import Path

from tests.integration.pcscd_rig import PcscdRig, pcscd, vpcd  # noqa: F401
from tests.ui.test_kiosk_screens import kiosk, until
from ui.screens.kiosk import KioskIdle, OutOfOrder
from ui.screens.kiosk_payment import KioskResult


def test_the_reader_unplugged_puts_the_kiosk_out_of_order_until_it_is_back(
    vpcd: PcscdRig,  # noqa: F811
    data_dir: Path,
) -> None:
    app = kiosk(data_dir, reader=vpcd.url, demo_amount=300)
    try:
        idle = app.session.screen("idle", KioskIdle)
        until(app, lambda: "reader" in idle.watch.states)
        assert idle.watch.states["reader"].present and app.at == "idle"
        vpcd.card("visa-qvsdc-online")
        idle.pay()
        until(app, lambda: app.at == "kiosk_result", timeout=30)
        assert app.session.screen("kiosk_result", KioskResult).approved

        vpcd.unplug()  # pcscd and its reader gone
        until(app, lambda: app.at == "out_of_order", timeout=30)  # back from the result, then out of order
        out = app.session.screen("out_of_order", OutOfOrder)
        assert out.devices == ("Out of order: card reader / 暂停服务：读卡器",)
        assert not idle.can_pay and "pcscd" in idle.watch.states["reader"].reason

        vpcd.replug()
        until(app, lambda: app.at == "idle", timeout=30)
        assert idle.can_pay and out.devices == ()
        vpcd.card("visa-qvsdc-online")
        idle.pay()  # the terminal's reader opens again by itself
        until(app, lambda: app.at == "kiosk_result", timeout=30)
        assert app.session.screen("kiosk_result", KioskResult).approved
    finally:
        app.close()
