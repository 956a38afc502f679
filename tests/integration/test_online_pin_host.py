"""Online PIN at the simulated issuer, over real HTTPS with mutual TLS on loopback, on both store engines.

One host process (``start_host``) per engine; a terminal enrols through the real enrolment and sends
authorisations through the real client (``HttpsHostLink``) with simulated cards' data (real cryptograms)
and PIN blocks from the simulated PIN pad's DUKPT keys. The issuer answers approved, 55 (incorrect PIN) or
75 (PIN tries exceeded, after three wrong in a row); a right PIN sets the count back; the operator's
``posterm host issuer pin-reset`` (a subprocess) lifts 75. Afterwards nothing the host wrote (database,
WAL, logs, keys) and nothing the PIN pad wrote holds a PIN that was entered or a PIN block that was sent.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from host_link import wire
from host_link.client import HttpsHostLink, IdempotentRetry
from host_link.credentials import load_credentials
from host_link.enrolment import CredentialBundle, enrol
from host_link.tls import client_context
from simulator.card_data import card_emv_data
from simulator.host.service import HostService, start_host
from simulator.pinpad import PinKeys, answer, parse_action
from terminal.host import AuthorisationRequest, HostRejected
from terminal.pinblock import EncryptedPin, PinFormat
from terminal.ports import PinRequest
from terminal.response_codes import decline_reason
from tests.integration.host_store import engine_store
from tests.postgres_rig import ENGINES

EUR = 978
POSTERM = str(Path(sys.executable).with_name("posterm"))
VISA_PAN = "4761739001010010"  # visa-qvsdc-online: PIN 1234 (card_emv_data's "visa")
MC_PAN = "5413330089010012"  # mc-cda-online: PIN 4321 (card_emv_data's "mastercard")
WRONG = "97531864"  # a wrong PIN nobody's card has: what the scan looks for


@pytest.fixture(scope="module", params=ENGINES)
def host(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostService]:
    with engine_store(request.param, request) as store, start_host(
        tmp_path_factory.mktemp("host") / "data", store=store
    ) as service:
        yield service


@pytest.fixture(scope="module")
def link(host: HostService, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsHostLink]:
    data_dir = tmp_path_factory.mktemp("till")
    enrol(CredentialBundle.from_json(host.credential_bundle("PIN00001", "POSTERM0000001")), data_dir)
    creds = load_credentials(data_dir)
    assert creds is not None
    client = HttpsHostLink(
        creds.url,
        terminal_id=creds.terminal_id,
        merchant_id=creds.merchant_id,
        ssl_context=client_context(ca_file=creds.ca_file, cert_file=creds.cert_file, key_file=creds.key_file),
        retry=IdempotentRetry(attempts=1),
    )
    yield client
    client.close()


@pytest.fixture(scope="module")
def pad_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pinpad-state")


class Till:
    def __init__(self, link: HttpsHostLink, pad_state: Path) -> None:
        self.link = link
        self.keys = PinKeys(pad_state)
        self.blocks: list[EncryptedPin] = []

    def pin(self, digits: str, pan: str, amount: int, fmt: PinFormat) -> EncryptedPin:
        entry = answer(parse_action(digits, "test"), PinRequest(amount, EUR, pan, format=fmt), self.keys)
        assert entry.pin is not None
        self.blocks.append(entry.pin)
        return entry.pin

    def sale(
        self, digits: str | None, *, card: str = "visa", pan: str = VISA_PAN, amount: int = 8000,
        fmt: PinFormat = PinFormat.ISO_4,
    ) -> str:  # fmt: skip
        """A sale of ``amount`` with the card's data and an online PIN (None: none); its response code."""
        txn = uuid.uuid4().hex[:16]
        pin = None if digits is None else self.pin(digits, pan, amount, fmt)
        request = AuthorisationRequest(
            txn, txn, "sale", amount, EUR, self.link.terminal_id, self.link.merchant_id,
            card_emv_data(amount, EUR, card=card), "tok", pin=pin,
        )  # fmt: skip
        return self.link.authorise(request).response_code


@pytest.fixture(scope="module")
def till(link: HttpsHostLink, pad_state: Path) -> Till:
    return Till(link, pad_state)


def pin_reset(host: HostService, pan: str) -> str:
    store = ["--store", host.store] if host.store else []
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTERM_")}
    done = subprocess.run(
        [POSTERM, "host", "issuer", "pin-reset", "-", "--data-dir", str(host.data_dir), *store],
        input=pan + "\n", capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_right_pin_is_approved_in_both_formats(till: Till) -> None:
    assert till.sale("1234") == "00"
    assert till.sale("1234", fmt=PinFormat.ISO_0) == "00"
    assert till.sale("4321", card="mastercard", pan=MC_PAN) == "00"  # the PIN is the card profile's


def test_a_wrong_pin_is_55_and_the_third_in_a_row_75_until_the_operator_resets(till: Till, host: HostService) -> None:
    assert till.sale("1234", card="mastercard", pan=MC_PAN) == "55"  # another card's PIN
    assert till.sale(WRONG, card="mastercard", pan=MC_PAN, fmt=PinFormat.ISO_0) == "55"
    assert till.sale(WRONG, card="mastercard", pan=MC_PAN) == "75"
    assert till.sale("4321", card="mastercard", pan=MC_PAN) == "75"  # right, but the card is at its limit
    assert "3 wrong PIN tries forgotten" in pin_reset(host, MC_PAN)
    assert till.sale("4321", card="mastercard", pan=MC_PAN) == "00"
    assert decline_reason("55") == "incorrect PIN (55)" and decline_reason("75") == "PIN tries exceeded (75)"


def test_a_right_pin_sets_the_count_back(till: Till) -> None:
    assert till.sale(WRONG) == "55"
    assert till.sale(WRONG) == "55"
    assert till.sale("1234") == "00"
    assert till.sale(WRONG) == "55"  # one wrong since the right one: not 75
    assert till.sale("1234") == "00"


def test_a_sale_without_a_pin_is_decided_as_before(till: Till) -> None:
    assert till.sale(None) == "00"
    assert till.sale(None, amount=8051) == "51"


def test_a_block_the_host_cannot_read_is_55_and_no_try(till: Till, host: HostService) -> None:
    good = till.pin("1234", VISA_PAN, 8000, PinFormat.ISO_4)
    for damaged in (
        EncryptedPin(bytes(16), good.ksn, PinFormat.ISO_4),  # not enciphered under the KSN's key
        EncryptedPin(good.block, bytes.fromhex("AABBCCDD9012345600000001"), PinFormat.ISO_4),  # a BDK it has not
    ):
        txn = uuid.uuid4().hex[:16]
        request = AuthorisationRequest(
            txn, txn, "sale", 8000, EUR, till.link.terminal_id, till.link.merchant_id,
            card_emv_data(8000, EUR), "tok", pin=damaged,
        )  # fmt: skip
        assert till.link.authorise(request).response_code == "55"
    assert till.sale(WRONG) == "55"  # the first counted try: the third wrong would be 75
    assert till.sale(WRONG) == "55"
    assert till.sale("1234") == "00"


def test_the_host_refuses_a_pin_whose_block_and_ksn_do_not_fit_its_format(till: Till) -> None:
    """A body the terminal's own client would never build (format 0 with format 4's lengths): 422."""
    txn = uuid.uuid4().hex[:16]
    request = AuthorisationRequest(
        txn, txn, "sale", 100, EUR, till.link.terminal_id, till.link.merchant_id, card_emv_data(100, EUR), "tok"
    )
    payload = wire.authorisation_json(request)
    payload["pin"] = {"format": 0, "block": "00" * 16, "ksn": "00" * 12}
    with pytest.raises(HostRejected, match="422 invalid: pin"):
        till.link._call(  # the client's one way to send a body as it is
            "POST", "/v1/authorisations", what="authorisation", body=payload, key=txn, idempotent=False,
            decode=lambda response: response,
        )  # fmt: skip


def test_nothing_written_holds_a_pin_or_a_pin_block(till: Till, host: HostService, pad_state: Path) -> None:
    assert till.sale(WRONG) == "55"
    assert till.sale("1234") == "00"
    assert till.blocks
    wanted = [WRONG.encode(), bytes.fromhex(WRONG), ("48" + WRONG).encode(), bytes.fromhex("48" + WRONG)]
    for pin in till.blocks:
        wanted += [pin.block, pin.block.hex().encode(), pin.block.hex().upper().encode()]
    files = [p for folder in (host.data_dir, pad_state) for p in folder.rglob("*") if p.is_file()]
    assert any(p.name.startswith("host.db") for p in files) or host.store
    assert any(p.name == "host.log" for p in files)
    for path in files:
        data = path.read_bytes()
        found = [w for w in wanted if w in data]
        assert not found, f"{path} holds a PIN or a PIN block"
    if host.store:  # PostgreSQL: every table's rows, as text
        import psycopg

        with psycopg.connect(host.store) as db:
            tables = [r[0] for r in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
            for table in tables:
                for row in db.execute(f'SELECT CAST(t AS TEXT) FROM "{table}" AS t'):
                    text = str(row[0]).upper()
                    assert WRONG not in text
                    assert not any(p.block.hex().upper() in text for p in till.blocks)
