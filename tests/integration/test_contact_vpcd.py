"""A simulated contact card through the real stacks: vpcd -> pcscd -> pyscard -> the contact kernel.

The card reports its own T=1 contact ATR; the transaction read through pcscd
ends exactly as in process, command for command (EMV Book 3 end to end).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from drivers.pcsc import PcscReader
from emv.contact import ContactKernel, HostAnswer
from emv.outcome import Outcome
from simulator.contact.card import CONTACT_ATR, ContactCard
from simulator.transport import as_transport
from tests.contact_rig import Pad, config, host_arpc, txn
from tests.integration.pcscd_rig import PcscdRig, pcscd, vpcd  # noqa: F401


def test_contact_card_through_pcscd_speaks_t1_and_pays_as_in_process(vpcd: PcscdRig) -> None:  # noqa: F811
    served = vpcd.card("contact-offline-pin")
    assert served.atr == CONTACT_ATR
    reader = PcscReader.open(vpcd.url)
    with reader.wait_for_card(timeout=5) as session:
        assert session.protocol == "T=1" and session.atr == CONTACT_ATR
        through = ContactKernel(session, config(), txn(6000), cardholder=Pad("1234"), entropy=b"x")
        first = through.start()
    local_card = ContactCard("contact-offline-pin")
    local = ContactKernel(as_transport(local_card), config(), txn(6000), cardholder=Pad("1234"), entropy=b"x")
    expected = local.start()
    assert first.outcome is Outcome.ONLINE_REQUEST and first.commands == expected.commands
    assert first.cryptogram == expected.cryptogram and first.tvr == expected.tvr


def test_contact_card_through_pcscd_completes_online(vpcd: PcscdRig) -> None:  # noqa: F811
    served = vpcd.card("contact-scripts")
    reader = PcscReader.open(vpcd.url)
    with reader.wait_for_card(timeout=5) as session:
        kernel = ContactKernel(session, config(), txn(), entropy=b"x")
        r = kernel.start()
        assert r.outcome is Outcome.ONLINE_REQUEST
        card = served.card
        assert isinstance(card, ContactCard)
        done = kernel.complete(HostAnswer.approved(arpc=host_arpc(card, r)))
    assert done.outcome is Outcome.APPROVED and done.issuer_authentication == "passed"


def test_a_posterm_sale_on_a_pcsc_reader_runs_the_contact_kernel(vpcd: PcscdRig, tmp_path: Path) -> None:  # noqa: F811
    """`posterm sale --reader pcsc:... --pin-pad sim:pin=1234` (a subprocess): the ATR says contact, offline PIN."""
    vpcd.card("contact-offline-pin")
    env = dict(os.environ, POSTERM_SIM_STATE=str(tmp_path / "sim"))
    posterm = str(Path(sys.executable).with_name("posterm"))
    done = subprocess.run(
        [posterm, "sale", "12.34", "--reader", vpcd.url, "--pin-pad", "sim:pin=1234", "--host", "memory",
         "--data-dir", str(tmp_path / "till"), "--json"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["approved"] and out["kernel"] == "contact" and out["pin"] == "offline_verified"
