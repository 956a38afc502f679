"""The protocol's OpenAPI document: complete, strict, and in agreement with docs/host-protocol.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from simulator.host.schema import first_error, openapi_document

PROTOCOL = Path(__file__).resolve().parents[2] / "docs" / "host-protocol.md"


def _walk(node: Any, where: str = "") -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        out.append((where, node))
        for key, value in node.items():
            out += _walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _walk(value, f"{where}/{i}")
    return out


def test_every_path_of_the_protocol_page_is_documented() -> None:
    doc = openapi_document()
    assert doc["openapi"].startswith("3.1")
    page = PROTOCOL.read_text(encoding="utf-8")
    described = set(re.findall(r"^#{3,4} `(GET|POST) (/v1/[a-z/._{}-]+)", page, flags=re.MULTILINE))
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    assert described == documented


def test_schemas_are_valid_and_strict() -> None:
    doc = openapi_document()
    for name, schema in doc["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
        for where, node in _walk(schema, name):
            if node.get("type") == "object" and "properties" in node:
                assert node.get("additionalProperties") is False, where
    refs = {node["$ref"] for _, node in _walk(doc) if "$ref" in node}
    for ref in refs:
        kind, name = ref.split("/")[-2:]
        assert name in doc["components"][kind], ref


def test_state_changing_operations_require_an_idempotency_key() -> None:
    doc = openapi_document()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            keyed = any(p.get("$ref", "").endswith("/IdempotencyKey") for p in op.get("parameters", []))
            assert keyed == (method == "post" and path != "/v1/enrol"), (method, path)
            if path not in ("/v1/enrol", "/v1/openapi.json"):
                assert "401" in op["responses"], (method, path)


def test_ranges_of_the_protocol() -> None:
    base = {"txn_id": "t", "kind": "sale", "amount": 1, "currency": 978, "terminal_id": "T", "merchant_id": "M",
            "emv_data": "9F0206000000000100", "pan_token": "p"}
    assert first_error("AuthorisationRequest", base) is None
    for field, value in [("amount", 999_999_999_999), ("currency", 1), ("currency", 999), ("original_txn_id", None)]:
        assert first_error("AuthorisationRequest", {**base, field: value}) is None, field
    for field, value in [("amount", 0), ("amount", 10**12), ("currency", 1000), ("emv_data", "F"),
                         ("kind", "void"), ("txn_id", ""), ("txn_id", "x" * 65)]:
        assert first_error("AuthorisationRequest", {**base, field: value}) is not None, (field, value)
