"""The protocol's OpenAPI document (``host_link/openapi.json``) and validation against it.

The document is package data of ``host_link``, read with importlib.resources on
first use. Request and response bodies are checked against its component
schemas (JSON Schema 2020-12, as OpenAPI 3.1 uses) with ``jsonschema``;
``format: date-time`` and ``format: date`` are checked too (jsonschema leaves
them to optional packages).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

__all__ = ["DOCUMENT_URI", "first_error", "openapi_bytes", "openapi_document", "validator"]

DOCUMENT_URI = "urn:posterm:host-protocol:v1"


@cache
def openapi_bytes() -> bytes:
    """The document as shipped (served as is at ``GET /v1/openapi.json``)."""
    return resources.files("host_link").joinpath("openapi.json").read_bytes()


@cache
def openapi_document() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(openapi_bytes())
    return doc


def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    if "T" not in text.upper() or len(text) < 20:
        raise ValueError("expected an RFC 3339 date-time such as 2025-01-31T12:00:00Z")
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError("a date-time needs a UTC offset (Z or +00:00)")
    return True


def _date(value: object) -> bool:
    if isinstance(value, str):
        if len(value) != 10:
            raise ValueError("expected a date YYYY-MM-DD")
        dt.date.fromisoformat(value)
    return True


@cache
def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())
    checker.checks("date-time", raises=ValueError)(_date_time)
    checker.checks("date", raises=ValueError)(_date)
    return checker


@cache
def _registry() -> Registry[Any]:
    resource: Resource[Any] = DRAFT202012.create_resource(openapi_document())
    registry: Registry[Any] = Registry().with_resource(DOCUMENT_URI, resource)
    return registry


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    """``pattern`` as JSON Schema means it (ECMA 262): ``$`` is the end of the string.

    Python's ``$`` also matches before a final newline, so ``"T1\n"`` would pass
    ``^[A-Z0-9]+$``; none of the document's patterns admits a newline, so an
    anchored pattern never accepts a string that ends in one.
    """
    if not isinstance(instance, str):
        return
    if not re.search(pattern, instance) or (pattern.endswith("$") and instance.endswith("\n")):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@cache
def _validator_class() -> Any:
    return validators.extend(Draft202012Validator, {"pattern": _pattern})


@cache
def validator(component: str) -> Draft202012Validator:
    """A validator for ``#/components/schemas/<component>`` of the document."""
    if component not in openapi_document()["components"]["schemas"]:
        raise KeyError(f"no component schema {component!r} in host_link/openapi.json")
    schema = {"$ref": f"{DOCUMENT_URI}#/components/schemas/{component}"}
    made: Draft202012Validator = _validator_class()(schema, registry=_registry(), format_checker=_format_checker())
    return made


_NAME = re.compile(r"^[A-Za-z0-9_]{1,32}$")


def _where(error: ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    if error.validator == "required" and "'" in error.message:
        name = error.message.split("'")[1]
        parts.append(name if _NAME.match(name) else "?")
    return ".".join(p for p in parts if p) or "body"


def _describe(error: ValidationError) -> str:
    """What is wrong, from the schema's side only: never the value sent (it may be card data)."""
    kind = str(error.validator)
    expected: Any = error.validator_value
    if kind == "required":
        return "is required"
    if kind == "additionalProperties":
        return "holds an unexpected property"
    if kind == "type":
        return f"must be of type {expected}"
    if kind == "pattern":
        return f"must match {expected}"
    if kind in ("enum", "const"):
        return f"must be one of {expected if kind == 'enum' else [expected]}"
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        sign = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[kind]
        return f"must be {sign} {expected}"
    if kind in ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"):
        what = "characters" if "Length" in kind else "items" if "Items" in kind else "properties"
        return f"must have {'at least' if kind.startswith('min') else 'at most'} {expected} {what}"
    if kind == "format":
        return f"is not a valid {expected}"
    if kind in ("anyOf", "oneOf"):
        return "matches none of the allowed forms"
    return f"fails {kind}"


def first_error(component: str, instance: Any) -> str | None:
    """``"<field>: <what is wrong>"`` for the first violation (shallowest first), or None.

    The text names the field and the rule, never the value, so it can be
    returned and stored without carrying card data.
    """
    errors = sorted(
        validator(component).iter_errors(instance), key=lambda e: (len(e.absolute_path), [str(p) for p in e.path])
    )
    if not errors:
        return None
    return f"{_where(errors[0])} {_describe(errors[0])}"
