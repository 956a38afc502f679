"""The protocol's OpenAPI document (``host_link/openapi.json``) and validation against it.

The document is package data of ``host_link``, read with importlib.resources on
first use. Request and response bodies are checked against its component
schemas (JSON Schema 2020-12, as OpenAPI 3.1 uses) with ``jsonschema``;
``format: date-time`` and ``format: date`` are checked too (jsonschema leaves
them to optional packages).

Speed: jsonschema walks a schema at about 0.2 ms an advice, which made
validation most of the host's time for a batch of advices.  Each component
is therefore also compiled once into plain Python checks (:func:`fast_check`)
that know only the keywords this document uses and answer "valid" or "not
sure".  A body they pass is valid; anything else, and any component with a
keyword they do not know, goes to jsonschema, which gives the verdict and the
message.  So the fast checks must never be more lenient than jsonschema (a
property test compares them on mutated bodies); being stricter only costs
time.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterator
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

__all__ = ["DOCUMENT_URI", "fast_check", "first_error", "openapi_bytes", "openapi_document", "validator"]

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
    check = fast_check(component)
    if check is not None:
        try:
            if check(instance):
                return None
        except Exception:  # not sure: jsonschema decides
            pass
    errors = sorted(
        validator(component).iter_errors(instance), key=lambda e: (len(e.absolute_path), [str(p) for p in e.path])
    )
    if not errors:
        return None
    return f"{_where(errors[0])} {_describe(errors[0])}"


# ----------------------------------------------------------------------------- compiled checks

_Check = Callable[[Any], bool]
#: Keywords that only annotate (they never make an instance invalid).
_ANNOTATIONS = frozenset(
    {"description", "title", "examples", "default", "$comment", "deprecated", "readOnly", "writeOnly"}
)


class _Unsupported(Exception):
    """A keyword or a form the compiled checks do not know: the component is left to jsonschema."""


def _is_integer(value: Any) -> bool:
    # As jsonschema's type checker: 1.0 is an integer, True is not.
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


_TYPES: dict[str, _Check] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": _is_integer,
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}


def _cost(schema: Any) -> int:
    """A rough size of a schema, a reference counting as a large one."""
    if isinstance(schema, dict):
        return sum(20 if k == "$ref" else 1 + _cost(v) for k, v in schema.items())
    if isinstance(schema, list):
        return sum(_cost(v) for v in schema)
    return 0


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Compiler:
    """Compiles the schemas of one document into checks; ``$ref`` targets once each (recursion allowed)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.refs: dict[str, _Check] = {}

    def ref(self, ref: str) -> _Check:
        if ref in self.refs:
            return self.refs[ref]
        if not ref.startswith("#/"):
            raise _Unsupported(ref)
        target: Any = self.document
        for raw in ref[2:].split("/"):
            part = raw.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                raise _Unsupported(ref)
            target = target[part]
        compiled: list[_Check] = []

        def indirect(v: Any) -> bool:  # what a recursive reference calls: the cell is filled by then
            return compiled[0](v)

        self.refs[ref] = indirect
        compiled.append(self.compile(target))
        self.refs[ref] = compiled[0]
        return compiled[0]

    def compile(self, schema: Any) -> _Check:
        if schema is True:
            return lambda v: True
        if schema is False:
            return lambda v: False
        if not isinstance(schema, dict):
            raise _Unsupported(repr(schema))
        checks: list[_Check] = []
        for key, value in schema.items():
            if key in _ANNOTATIONS or key in ("properties", "additionalProperties"):
                continue
            checks.append(self._keyword(key, value, schema))
        if "properties" in schema or "additionalProperties" in schema:
            checks.append(self._properties(schema.get("properties", {}), schema.get("additionalProperties", True)))
        if len(checks) == 1:
            return checks[0]
        conjunction = tuple(checks)
        return lambda v: all(c(v) for c in conjunction)

    def _keyword(self, key: str, value: Any, schema: dict[str, Any]) -> _Check:
        if key == "$ref":
            return self.ref(value)
        if key == "type":
            names = [value] if isinstance(value, str) else value
            if not isinstance(names, list) or not all(n in _TYPES for n in names):
                raise _Unsupported(f"type {value!r}")
            tests = tuple(_TYPES[n] for n in names)
            return tests[0] if len(tests) == 1 else (lambda v: any(t(v) for t in tests))
        if key == "enum":
            options = tuple(value)
            # Stricter than JSON equality (1 and 1.0 differ here): only ever sends more to jsonschema.
            return lambda v: any(type(o) is type(v) and o == v for o in options)
        if key == "pattern":
            regex = re.compile(value)
            anchored = value.endswith("$")
            return lambda v: (
                not isinstance(v, str) or (regex.search(v) is not None and not (anchored and v.endswith("\n")))
            )
        if key in ("minLength", "maxLength"):
            bound = int(value)
            if key == "minLength":
                return lambda v: not isinstance(v, str) or len(v) >= bound
            return lambda v: not isinstance(v, str) or len(v) <= bound
        if key in ("minimum", "maximum"):
            limit = value
            if key == "minimum":
                return lambda v: not _is_number(v) or not v < limit
            return lambda v: not _is_number(v) or not v > limit
        if key in ("minItems", "maxItems"):
            count = int(value)
            if key == "minItems":
                return lambda v: not isinstance(v, list) or len(v) >= count
            return lambda v: not isinstance(v, list) or len(v) <= count
        if key in ("minProperties", "maxProperties"):
            count = int(value)
            if key == "minProperties":
                return lambda v: not isinstance(v, dict) or len(v) >= count
            return lambda v: not isinstance(v, dict) or len(v) <= count
        if key == "required":
            names = tuple(value)
            return lambda v: not isinstance(v, dict) or all(n in v for n in names)
        if key == "items":
            if "prefixItems" in schema:
                raise _Unsupported("prefixItems")
            item = self.compile(value)
            return lambda v: not isinstance(v, list) or all(item(x) for x in v)
        if key == "propertyNames":
            name = self.compile(value)
            return lambda v: not isinstance(v, dict) or all(name(k) for k in v)
        if key == "anyOf":
            # The cheapest first (the order does not change the verdict): an advice list's
            # items are "an Advice, or any object", and each advice is checked on its own later.
            ranked = sorted(value, key=_cost)
            options = tuple(self.compile(s) for s in ranked)
            return lambda v: any(o(v) for o in options)
        if key == "format":
            return self._format(value)
        raise _Unsupported(key)

    @staticmethod
    def _format(name: str) -> _Check:
        checker = _format_checker()
        if name not in checker.checkers:
            return lambda v: True  # an unknown format is an annotation only, as for jsonschema
        func, raises = checker.checkers[name]

        def check(v: Any) -> bool:
            try:
                return bool(func(v))
            except raises:
                return False

        return check

    def _properties(self, properties: dict[str, Any], additional: Any) -> _Check:
        named = {name: self.compile(sub) for name, sub in properties.items()}
        if additional is True:
            return lambda v: not isinstance(v, dict) or all(named[k](x) for k, x in v.items() if k in named)
        rest = self.compile(additional)

        def check(v: Any) -> bool:
            if not isinstance(v, dict):
                return True
            for k, x in v.items():
                sub = named.get(k)
                if not (sub(x) if sub is not None else rest(x)):
                    return False
            return True

        return check


@cache
def fast_check(component: str) -> _Check | None:
    """The compiled check of ``#/components/schemas/<component>`` (True: valid), or None if it has none.

    False means "not sure": ask jsonschema (:func:`first_error` does).
    """
    compiler = _Compiler(openapi_document())
    try:
        return compiler.ref(f"#/components/schemas/{component}")
    except (_Unsupported, re.error, TypeError, ValueError):
        return None
