"""``posterm host wallet ...`` and ``posterm sim wallet code|pay`` as a user runs them: real processes, a real host.db.

The terminal's side of an order is made in-process (the acquirer on the same
data directory, as the server would); everything the operator and the
customer's app do goes through the command line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from PIL import Image

from simulator.host.acquirer import Acquirer, Peer
from simulator.host.admin import open_store

ROOT = Path(__file__).resolve().parents[2]
PEER = Peer("T1", "M1")


def posterm(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTERM_")}
    env.update(PYTHONPATH=str(ROOT), HOME=str(home), XDG_DATA_HOME=str(home / "data"),
               POSTERM_HOST_DIR=str(home / "host"))  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "terminal.cli", *args], capture_output=True, text=True, env=env, timeout=60,
        check=False,
    )  # fmt: skip


def done(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return json.loads(proc.stdout)


def one_line_error(proc: subprocess.CompletedProcess[str], status: int) -> str:
    assert proc.returncode == status, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("posterm: error: ") and "Traceback" not in proc.stderr
    return lines[0]


def terminal_sends(home: Path, what: str, body: dict[str, Any], key: str) -> dict[str, Any]:
    """What a terminal's request does at the host (processed on the host's own store, in this process)."""
    with open_store(home / "host") as db:
        full = {"terminal_id": PEER.terminal_id, "merchant_id": PEER.merchant_id, **body}
        answer: dict[str, Any] = Acquirer(db).handle(what, full, PEER, key).json()
        return answer


def balance(home: Path, account: str, currency: int = 978) -> int:
    rows = done(posterm("host", "wallet", "accounts", "--json", home=home))["accounts"]
    (found,) = [a for a in rows if a["account"] == account]
    return next((b["balance"] for b in found["balances"] if b["currency"] == currency), 0)


def test_accounts_topup_and_a_payment_code_with_its_png(tmp_path: Path) -> None:
    nothing = posterm("host", "wallet", "accounts", home=tmp_path)  # a look creates no host
    assert "no simulated host" in one_line_error(nothing, 2) and not (tmp_path / "host" / "host.db").exists()
    assert done(posterm("host", "wallet", "topup", "empty", "2500", "--json", home=tmp_path))["balances"] == [
        {"currency": 978, "balance": 2500}
    ]
    accounts = done(posterm("host", "wallet", "accounts", "--json", home=tmp_path))["accounts"]
    assert {a["account"]: a["wallet"] for a in accounts} == {
        "alice": "simpay", "bob": "simchat", "dora": "simdc", "empty": "simpay",
    }  # fmt: skip
    png = tmp_path / "code.png"
    made = done(posterm("sim", "wallet", "code", "--account", "dora", "--png", str(png), "--json", home=tmp_path))
    assert made["code"].isdigit() and len(made["code"]) == 18 and made["code"][:2] == "93"
    assert made["wallet"] == "simdc" and made["expires_at"] > "2026"
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size[0] == image.size[1]
    text = posterm("sim", "wallet", "code", "--account", "dora", home=tmp_path)
    assert text.returncode == 0 and "simdc" in text.stdout
    paid = terminal_sends(tmp_path, "qr-payment", {"reference": "r1", "amount": 300, "currency": 978,
                                                   "code": made["code"]}, "k1")  # fmt: skip
    assert paid["status"] == "paid" and balance(tmp_path, "dora") == 30000 - 300


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    assert "nobody" in one_line_error(posterm("sim", "wallet", "code", "--account", "nobody", home=tmp_path), 2)
    assert "--wallet" in one_line_error(posterm("host", "wallet", "topup", "zed", "1", home=tmp_path), 2)
    one_line_error(posterm("host", "wallet", "topup", "alice", "-5", home=tmp_path), 2)
    one_line_error(posterm("host", "wallet", "mode", "sometimes", home=tmp_path), 2)
    assert "no QR order" in one_line_error(posterm("host", "wallet", "confirm", "Q0000000001AB", home=tmp_path), 2)
    garbage = posterm("sim", "wallet", "pay", "garbage", "--account", "alice", home=tmp_path)
    assert "merchant-presented" in one_line_error(garbage, 2)


def test_mode_confirm_then_confirm_late(tmp_path: Path) -> None:
    assert done(posterm("host", "wallet", "mode", "confirm", "--json", home=tmp_path)) == {"mode": "confirm"}
    code = done(posterm("sim", "wallet", "code", "--account", "bob", "--json", home=tmp_path))["code"]
    waiting = terminal_sends(tmp_path, "qr-payment", {"reference": "r1", "amount": 250, "currency": 978,
                                                      "code": code}, "k1")  # fmt: skip
    assert waiting["status"] == "user_paying" and balance(tmp_path, "bob") == 50000
    confirmed = done(posterm("host", "wallet", "confirm", waiting["order_id"], "--json", home=tmp_path))
    assert confirmed["status"] == "paid" and balance(tmp_path, "bob") == 50000 - 250
    again = posterm("host", "wallet", "confirm", waiting["order_id"], home=tmp_path)
    assert "not waiting" in one_line_error(again, 1)
    orders = done(posterm("host", "wallet", "orders", "--json", home=tmp_path))["orders"]
    assert [(o["reference"], o["state"]) for o in orders] == [("r1", "paid")] and "code_hash" not in orders[0]
    status = done(posterm("host", "status", "--json", home=tmp_path))
    assert (status["qr_orders"], status["wallet_mode"]) == ({"paid": 1}, "confirm")


def test_the_app_pays_a_scanned_code_once_and_never_a_closed_order(tmp_path: Path) -> None:
    from emv.qr_mpm import AdditionalData, MerchantPresentedCode, Template, encode

    def payload(order: dict[str, Any], with_order_id: bool = True, amount: str = "4.00") -> str:
        fields = order["mpm"]["templates"]["26"]
        template = Template("26", fields["00"], tuple((k, v) for k, v in fields.items() if k != "00" and
                                                      (with_order_id or k != "02")))  # fmt: skip
        return encode(MerchantPresentedCode(
            merchant_category_code="5812", currency="978", country="DE", merchant_name="SHOP", merchant_city="BERLIN",
            templates=(template,), point_of_initiation="12", amount=amount,
            additional_data=AdditionalData(reference_label=order["mpm"]["reference_label"],
                                           terminal_label=order["mpm"]["terminal_label"]),
        ))  # fmt: skip

    first = terminal_sends(tmp_path, "qr-order", {"reference": "m1", "amount": 400, "currency": 978}, "o1")
    shows_less = posterm("sim", "wallet", "pay", payload(first, amount="0.40"), "--account", "bob", home=tmp_path)
    assert "the code shows 0.40" in one_line_error(shows_less, 1)  # the app pays no code that misstates its order
    paid = done(posterm("sim", "wallet", "pay", payload(first), "--account", "bob", "--json", home=tmp_path))
    assert (paid["status"], paid["order_id"], paid["wallet"]) == ("paid", first["order_id"], "simchat")
    twice = posterm("sim", "wallet", "pay", payload(first), "--account", "bob", home=tmp_path)
    assert "paid" in one_line_error(twice, 1)
    second = terminal_sends(tmp_path, "qr-order", {"reference": "m2", "amount": 400, "currency": 978}, "o2")
    by_label = posterm("sim", "wallet", "pay", payload(second, False), "--account", "alice", home=tmp_path)
    assert by_label.returncode == 0 and "paid order" in by_label.stdout  # found by 62/05 and 62/07
    third = terminal_sends(tmp_path, "qr-order", {"reference": "m3", "amount": 400, "currency": 978}, "o3")
    assert terminal_sends(tmp_path, "qr-close", {"order_id": third["order_id"]}, "c3")["status"] == "closed"
    closed = posterm("sim", "wallet", "pay", payload(third), "--account", "bob", home=tmp_path)
    assert "closed by the terminal" in one_line_error(closed, 1)
    assert balance(tmp_path, "bob") == 50000 - 400 and balance(tmp_path, "alice") == 100000 - 400


def test_the_terminal_s_own_mpm_code_is_paid_by_its_reference_and_terminal_labels(tmp_path: Path) -> None:
    """A code made by terminal.qr_merchant (its default template 26 has no order id) names its order by 62/05, 62/07."""
    from emv.config import TerminalConfig
    from emv.qr_mpm import encode
    from terminal.facade import TerminalSettings
    from terminal.money import currency
    from terminal.qr_merchant import merchant_code, qr_settings

    order = terminal_sends(tmp_path, "qr-order", {"reference": "SALE-0042", "amount": 1234, "currency": 978}, "o1")
    settings = TerminalSettings(merchant_address="1 Main St, Berlin")
    merchant = qr_settings({}, TerminalConfig.example(capks=None), settings, terminal_id=PEER.terminal_id,
                           merchant_id=PEER.merchant_id)  # fmt: skip
    payload = encode(merchant_code(merchant, amount=1234, currency=currency("EUR"), reference="SALE-0042"))
    paid = done(posterm("sim", "wallet", "pay", payload, "--account", "dora", "--json", home=tmp_path))
    assert (paid["order_id"], paid["status"], paid["wallet"]) == (order["order_id"], "paid", "simdc")
