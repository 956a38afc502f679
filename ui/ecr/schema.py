"""The ECR interface's OpenAPI document (``ui/ecr/openapi.json``) and the checks of request bodies against it.

The same approach as the host protocol's (``simulator.host.schema``, which ui
may not import): the document is package data, read on first use; a body is
checked against a component schema (JSON Schema 2020-12, as OpenAPI 3.1 uses)
with jsonschema, and the first violation is told as ``<field> <rule>``,
naming the field and the rule and never the value sent.  The bodies are a few
hundred bytes, so no compiled fast path is needed here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

__all__ = ["DOCUMENT_URI", "KEY_PATTERN", "first_error", "openapi_bytes", "openapi_document"]

DOCUMENT_URI = "urn:posterm:ecr-protocol:v1"
#: An Idempotency-Key, and so a payment id: what a URL path carries as it is (a UUID fits).
KEY_PATTERN = re.compile(r"[A-Za-z0-9._:~-]{1,64}", re.ASCII)


@cache
def openapi_bytes() -> bytes:
    """The document as shipped (served as is at ``GET /v1/openapi.json``)."""
    return resources.files("ui.ecr").joinpath("openapi.json").read_bytes()


@cache
def openapi_document() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(openapi_bytes())
    return doc


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    """``pattern`` as JSON Schema means it: ``$`` is the end of the string, not before a final newline."""
    if not isinstance(instance, str):
        return
    if not re.search(pattern, instance) or (pattern.endswith("$") and instance.endswith("\n")):
        yield ValidationError(f"does not match {pattern!r}")


@cache
def _validator(component: str) -> Draft202012Validator:
    if component not in openapi_document()["components"]["schemas"]:
        raise KeyError(f"no component schema {component!r} in ui/ecr/openapi.json")
    resource: Resource[Any] = DRAFT202012.create_resource(openapi_document())
    registry: Registry[Any] = Registry().with_resource(DOCUMENT_URI, resource)
    cls = validators.extend(Draft202012Validator, {"pattern": _pattern})
    made: Draft202012Validator = cls({"$ref": f"{DOCUMENT_URI}#/components/schemas/{component}"}, registry=registry)
    return made


_NAME = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


def _extra_name(error: ValidationError) -> str | None:
    """The first unexpected field's name, when it is a plain name (never echo arbitrary text)."""
    extra = [p for p in error.instance if p not in error.schema.get("properties", {})]
    return extra[0] if extra and isinstance(extra[0], str) and _NAME.match(extra[0]) else None


def _where(error: ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    if error.validator == "required" and "'" in error.message:
        name = error.message.split("'")[1]
        parts.append(name if _NAME.match(name) else "?")
    if error.validator == "additionalProperties":
        parts.append(_extra_name(error) or "")
    return ".".join(p for p in parts if p) or "body"


def _describe(error: ValidationError) -> str:
    kind = str(error.validator)
    expected: Any = error.validator_value
    if kind == "required":
        return "is required"
    if kind == "additionalProperties":
        if _extra_name(error) is None:
            return "holds a field that is not one of this request's"
        return "is not a field of this request"
    if kind == "maxProperties" and expected == 0:
        return "must be empty ({})"
    if kind == "type":
        return f"must be of type {expected}"
    if kind == "pattern":
        return f"must match {expected}"
    if kind in ("enum", "const"):
        return f"must be one of {expected if kind == 'enum' else [expected]}"
    if kind in ("minimum", "maximum"):
        return f"must be {'>=' if kind == 'minimum' else '<='} {expected}"
    if kind in ("minLength", "maxLength"):
        return f"must have {'at least' if kind == 'minLength' else 'at most'} {expected} characters"
    if kind in ("anyOf", "oneOf"):
        return "matches none of the allowed forms"
    return f"fails {kind}"


def first_error(component: str, instance: Any) -> str | None:
    """``"<field> <what is wrong>"`` for the first violation (shallowest first), or None when valid.

    >>> first_error("PaymentRequest", {"kind": "sale", "amount": 0, "currency": "EUR"})
    'amount must be >= 1'
    >>> first_error("PaymentRequest", {"kind": "sale", "amount": 100, "currency": "EUR"}) is None
    True
    """
    errors = sorted(
        _validator(component).iter_errors(instance), key=lambda e: (len(e.absolute_path), [str(p) for p in e.path])
    )
    if not errors:
        return None
    return f"{_where(errors[0])} {_describe(errors[0])}"
