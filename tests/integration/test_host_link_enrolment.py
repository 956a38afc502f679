"""Enrolment against a TLS stub of the host, then the enrolled link, and the CLI (enrol, echo, params)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from host_link import parameters
from host_link.client import open_host_link
from host_link.credentials import load_credentials
from host_link.enrolment import CredentialBundle, EnrolmentError, enrol, read_bundle
from terminal.bootstrap import open_host
from terminal.cli import main
from terminal.host import HostNoAnswer, HostRejected, HostUnreachable
from terminal.ports import DeviceError
from tests.integration.host_link_rig import (
    MID,
    TID,
    Action,
    Pki,
    Received,
    TlsHost,
    free_port,
    install_protocol,
    make_pki,
    server_context,
    sign_csr,
)
from tests.unit.test_cbdc_parameters import flip_checksum, section, with_cbdc
from tests.unit.test_host_link_parameters import download


class Enroller:
    """The host's side of POST /v1/enrol: one-time codes, the CSR signed by the CA."""

    def __init__(self, pki: Pki) -> None:
        self.pki = pki
        self.codes = {"GOOD-CODE-1", "GOOD-CODE-2"}
        self.tamper: str | None = None

    def __call__(self, r: Received) -> Action:
        doc = r.json()
        if doc.get("enrolment_code") not in self.codes:
            return Action("json", 403, {"error": "forbidden", "message": "unknown, used or expired enrolment code"})
        self.codes.discard(doc["enrolment_code"])
        public_key = ec.generate_private_key(ec.SECP256R1()).public_key() if self.tamper == "key" else None
        ca = self.pki.other_ca if self.tamper == "issuer" else self.pki.ca
        cert = sign_csr(ca, doc["csr_pem"], public_key=public_key)
        return Action(
            "json",
            201,
            {
                "terminal_id": TID,
                "merchant_id": MID,
                "certificate_pem": cert.public_bytes(serialization.Encoding.PEM).decode(),
                "ca_certificate_pem": self.pki.ca.pem,
            },
        )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def host(pki: Pki) -> Iterator[tuple[TlsHost, Enroller]]:
    server = TlsHost(server_context(pki)).start()
    install_protocol(server)
    enroller = Enroller(pki)
    server.handle("/v1/enrol", enroller)
    yield server, enroller
    server.stop()


def bundle(url: str, pki: Pki, code: str = "GOOD-CODE-1", **kw: Any) -> CredentialBundle:
    doc = {
        "url": url,
        "ca_certificate_pem": pki.ca.pem,
        "enrolment_code": code,
        "terminal_id": TID,
        "merchant_id": MID,
    } | kw
    return CredentialBundle.from_json(doc)


def test_enrol_stores_the_credentials_and_the_link_then_speaks_mutual_tls(
    host: tuple[TlsHost, Enroller], pki: Pki, tmp_path: Path
) -> None:
    server, _ = host
    creds = enrol(bundle(server.url, pki), tmp_path)
    assert (creds.terminal_id, creds.merchant_id, creds.url) == (TID, MID, server.url)
    directory = tmp_path / "host-link"
    assert sorted(p.name for p in directory.iterdir()) == [
        "ca.pem",
        "client-cert.pem",
        "client-key.pem",
        "enrolment.json",
    ]
    assert stat.S_IMODE(os.stat(directory / "client-key.pem").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    doc = json.loads((directory / "enrolment.json").read_text())
    assert set(doc) == {"url", "terminal_id", "merchant_id", "enrolled_at", "certificate_not_after"}
    cert = x509.load_pem_x509_certificate((directory / "client-cert.pem").read_bytes())
    key = serialization.load_pem_private_key((directory / "client-key.pem").read_bytes(), None)
    assert cert.public_key() == key.public_key()
    enrol_request = server.received("/v1/enrol")[0]
    assert enrol_request.peer_cn is None  # no client certificate yet
    assert "PRIVATE" not in enrol_request.body.decode()
    assert "Idempotency-Key" not in enrol_request.headers

    link = open_host("https", tmp_path)  # through the posterm.hostlinks entry point
    assert link is not None and type(link).__name__ == "HttpsHostLink"
    try:
        assert link.echo() > 0  # type: ignore[attr-defined]
    finally:
        link.close()  # type: ignore[attr-defined]
    assert server.received("/v1/echo")[0].peer_cn == TID


def test_enrolling_twice_needs_force_and_force_replaces_the_key(
    host: tuple[TlsHost, Enroller], pki: Pki, tmp_path: Path
) -> None:
    server, _ = host
    enrol(bundle(server.url, pki), tmp_path)
    key_before = (tmp_path / "host-link" / "client-key.pem").read_bytes()
    with pytest.raises(EnrolmentError, match=r"already enrolled as terminal TERM0001.*--force"):
        enrol(bundle(server.url, pki, "GOOD-CODE-2"), tmp_path)
    enrol(bundle(server.url, pki, "GOOD-CODE-2"), tmp_path, force=True)
    assert (tmp_path / "host-link" / "client-key.pem").read_bytes() != key_before


def test_a_refused_code_or_a_dead_host_leaves_the_old_enrolment_working(
    host: tuple[TlsHost, Enroller], pki: Pki, tmp_path: Path
) -> None:
    server, _ = host
    enrol(bundle(server.url, pki), tmp_path)
    before = {p.name: p.read_bytes() for p in (tmp_path / "host-link").iterdir()}
    with pytest.raises(HostRejected, match="403 forbidden: unknown, used or expired enrolment code"):
        enrol(bundle(server.url, pki, "GOOD-CODE-1"), tmp_path, force=True)  # already used
    with pytest.raises(HostUnreachable):
        enrol(bundle(f"https://127.0.0.1:{free_port()}", pki, "GOOD-CODE-2"), tmp_path, force=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "host-link").iterdir()} == before


def test_a_lost_answer_says_the_code_may_be_spent(host: tuple[TlsHost, Enroller], pki: Pki, tmp_path: Path) -> None:
    server, _ = host
    server.script("/v1/enrol", Action("close"))
    with pytest.raises(HostNoAnswer):
        enrol(bundle(server.url, pki), tmp_path)
    assert len(server.received("/v1/enrol")) == 1  # never retried: the code is good once
    assert load_credentials(tmp_path) is None


@pytest.mark.parametrize(
    ("tamper", "message"), [("key", "not for this terminal's key"), ("issuer", "not issued by the CA")]
)
def test_a_certificate_that_is_not_ours_is_refused_and_nothing_is_stored(
    host: tuple[TlsHost, Enroller], pki: Pki, tmp_path: Path, tamper: str, message: str
) -> None:
    server, enroller = host
    enroller.tamper = tamper
    with pytest.raises(EnrolmentError, match=message):
        enrol(bundle(server.url, pki), tmp_path)
    assert load_credentials(tmp_path) is None


def test_the_bundle_ca_must_have_signed_the_server(host: tuple[TlsHost, Enroller], pki: Pki, tmp_path: Path) -> None:
    server, _ = host
    with pytest.raises(HostUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
        enrol(bundle(server.url, pki, ca_certificate_pem=pki.other_ca.pem), tmp_path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"url": "http://127.0.0.1:1"}, "https"),
        ({"enrolment_code": ""}, "enrolment_code is missing"),
        ({"terminal_id": "T\n1"}, "terminal_id"),
        ({"ca_certificate_pem": "not a certificate"}, "not a PEM certificate"),
    ],
)
def test_bad_bundles(pki: Pki, change: dict[str, str], message: str) -> None:
    doc = {
        "url": "https://127.0.0.1:1",
        "ca_certificate_pem": pki.ca.pem,
        "enrolment_code": "C",
        "terminal_id": TID,
        "merchant_id": MID,
    } | change
    with pytest.raises(EnrolmentError, match=message):
        CredentialBundle.from_json(doc)


def test_the_code_is_not_in_the_bundles_repr(pki: Pki) -> None:
    assert "GOOD-CODE-1" not in repr(bundle("https://127.0.0.1:1", pki))


def test_damaged_enrolment(host: tuple[TlsHost, Enroller], pki: Pki, tmp_path: Path) -> None:
    server, _ = host
    enrol(bundle(server.url, pki), tmp_path)
    (tmp_path / "host-link" / "client-key.pem").unlink()
    with pytest.raises(DeviceError, match="incomplete"):
        open_host_link("https", tmp_path)
    with pytest.raises(DeviceError, match="incomplete"):
        enrol(bundle(server.url, pki, "GOOD-CODE-2"), tmp_path)
    enrol(bundle(server.url, pki, "GOOD-CODE-2"), tmp_path, force=True)
    open_host_link("https", tmp_path).close()
    with pytest.raises(DeviceError, match="expected 'https'"):
        open_host_link("ftp://x", tmp_path)


# ----------------------------------------------------------------------------- the command line


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_enrol_echo_params(
    host: tuple[TlsHost, Enroller], pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, _ = host
    offer = {"doc": download(1)}
    server.handle(
        "/v1/parameters",
        lambda r: (
            Action("raw", 304) if r.query == f"have={offer['doc']['version']}" else Action("json", 200, offer["doc"])
        ),
    )
    data = str(tmp_path / "terminal")
    bundle_file = tmp_path / "bundle.json"
    bundle_file.write_text(
        json.dumps(
            {
                "url": server.url,
                "ca_certificate_pem": pki.ca.pem,
                "enrolment_code": "GOOD-CODE-1",
                "terminal_id": TID,
                "merchant_id": MID,
            }
        )
    )

    code, out, err = run(capsys, "echo", "--data-dir", data)
    assert code == 2 and err.strip() == "posterm: error: not enrolled with a host: run 'posterm enrol BUNDLE' first"

    code, out, _ = run(capsys, "enrol", str(bundle_file), "--data-dir", data)
    assert code == 0 and f"enrolled as terminal {TID}" in out
    code, _, err = run(capsys, "enrol", str(bundle_file), "--data-dir", data)
    assert code == 2 and "already enrolled" in err and len(err.strip().splitlines()) == 1

    code, out, _ = run(capsys, "echo", "--data-dir", data, "--json")
    assert code == 0 and json.loads(out)["terminal_id"] == TID and json.loads(out)["round_trip_ms"] > 0

    code, out, _ = run(capsys, "params", "status", "--data-dir", data)
    assert "shipped configuration" in out
    code, out, _ = run(capsys, "params", "download", "--data-dir", data)
    assert code == 0 and "version 1 downloaded" in out
    code, out, _ = run(capsys, "params", "download", "--data-dir", data, "--json")
    assert json.loads(out) == {"applied": None, "current": 1, "previous": None, "versions": [1]}
    offer["doc"] = download(2)
    run(capsys, "params", "download", "--data-dir", data)
    code, out, _ = run(capsys, "params", "status", "--data-dir", data)
    assert out.strip().splitlines() == [
        "parameters version 2 in force; version 1 kept for rollback",
        "digital currency: none (no cbdc section in force)",
    ]
    code, out, _ = run(capsys, "params", "rollback", "--data-dir", data)
    assert code == 0 and "version 1 is in force again" in out
    code, _, err = run(capsys, "params", "rollback", "--data-dir", data)
    assert code == 2 and "nothing to roll back to" in err
    assert parameters.current_version(Path(data)) == 1

    bad = download(3)
    bad["capks"][0]["checksum"] = "00" * 20
    offer["doc"] = bad
    code, _, err = run(capsys, "params", "download", "--data-dir", data)
    assert code == 2 and "checksum mismatch" in err
    assert parameters.current_version(Path(data)) == 1

    # the digital-currency section travels with the rest over mutual TLS; a bad root checksum refuses it all
    bad = with_cbdc(3, section(2))
    flip_checksum(bad["cbdc"])
    offer["doc"] = bad
    code, _, err = run(capsys, "params", "download", "--data-dir", data)
    assert code == 2 and "digital-currency parameters refused: cbdc.roots[1] (00000002): the checksum" in err
    assert len(err.strip().splitlines()) == 1 and parameters.current_version(Path(data)) == 1
    offer["doc"] = with_cbdc(3, section(2))
    code, out, _ = run(capsys, "params", "download", "--data-dir", data)
    assert code == 0 and "version 3 downloaded" in out
    code, out, _ = run(capsys, "params", "status", "--data-dir", data, "--json")
    assert json.loads(out)["cbdc"]["version"] == 2 and json.loads(out)["cbdc"]["source"] == "downloaded"

    code, _, err = run(capsys, "enrol", str(tmp_path / "missing.json"), "--data-dir", data, "--force")
    assert code == 2 and "not found" in err

    # what enrolment and the parameters wrote (under the test's umask, 022 here) is the owner's only
    for path in [Path(data) / "host-link", *(Path(data) / "host-link").rglob("*")]:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


def test_read_bundle_errors(tmp_path: Path) -> None:
    (tmp_path / "b.json").write_text("{nope")
    with pytest.raises(EnrolmentError, match="is not JSON"):
        read_bundle(tmp_path / "b.json")
    (tmp_path / "c.json").write_text("[]")
    with pytest.raises(EnrolmentError, match="expected a JSON object"):
        read_bundle(tmp_path / "c.json")
