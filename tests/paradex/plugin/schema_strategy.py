"""Hypothesis strategies from the JSON-Schema subset Paradex's OpenAPI response schemas use.

hypothesis-jsonschema 0.23.1 (the latest release) relies on Hypothesis
internals that no longer exist (``cu.many(...).more()``), so it cannot
generate objects with current Hypothesis. The response schemas only use
``type``, ``properties``, ``items``, ``allOf`` and ``enum`` (plus the
``required``, ``minLength``/``maxLength``, ``minimum``/``maximum`` and
decimal ``format`` our tightened variants add), which this module turns into
strategies. Anything else fails loudly instead of being ignored.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

__all__ = ["from_schema", "merge"]

_SUPPORTED = {
    "type",
    "properties",
    "items",
    "allOf",
    "enum",
    "required",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "additionalProperties",
    "format",
}

#: Our own ``format`` values for Paradex decimal strings (faster than a ``pattern``):
#: ``decimal`` (signed), ``unsigned-decimal``; a ``-or-empty`` suffix also allows ``""``.
_DECIMAL_FORMATS = {"decimal", "unsigned-decimal", "decimal-or-empty", "unsigned-decimal-or-empty"}


def _decimal_strings(*, signed: bool) -> st.SearchStrategy[str]:
    integral = st.integers(min_value=0, max_value=10**12)
    fraction = st.one_of(st.just(""), st.integers(min_value=0, max_value=10**8).map(lambda f: f".{f}"))
    sign = st.sampled_from(["", "-"]) if signed else st.just("")
    return st.builds(lambda s, i, f: f"{s}{i}{f}", sign, integral, fraction)


_json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8))


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The schema both ``a`` and ``b`` accept (for the shapes ``allOf`` has in the spec)."""
    out = dict(a)
    for key, value in b.items():
        if key not in out:
            out[key] = value
        elif key == "properties":
            props = dict(out[key])
            for name, schema in value.items():
                props[name] = merge(props[name], schema) if name in props else schema
            out[key] = props
        elif key == "items":
            out[key] = merge(out[key], value)
        elif key == "required":
            out[key] = sorted(set(out[key]) | set(value))
        elif key == "enum":
            out[key] = [v for v in out[key] if v in value]
        elif key == "type" and out[key] != value:
            raise ValueError(f"allOf of incompatible types {out[key]!r} and {value!r}")
        else:
            out[key] = value
    return out


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A strategy for JSON values valid under ``schema``."""
    unsupported = set(schema) - _SUPPORTED
    if unsupported:
        raise ValueError(f"unsupported schema keywords: {sorted(unsupported)}")
    if "allOf" in schema:
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            merged = merge(merged, part)
        return from_schema(merged)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type", "object" if "properties" in schema else None)
    if kind == "object":
        properties = schema.get("properties", {})
        if not properties:
            return st.dictionaries(st.text(max_size=6), _json_scalars, max_size=3)
        required = set(schema.get("required", ()))
        return st.fixed_dictionaries(
            {name: from_schema(sub) for name, sub in properties.items() if name in required},
            optional={name: from_schema(sub) for name, sub in properties.items() if name not in required},
        )
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {"type": "string"})), max_size=4)
    if kind == "string":
        fmt = schema.get("format")
        if fmt in _DECIMAL_FORMATS:
            numbers = _decimal_strings(signed=not fmt.startswith("unsigned"))
            return st.one_of(st.just(""), numbers) if fmt.endswith("-or-empty") else numbers
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True)
        return st.text(min_size=schema.get("minLength", 0), max_size=schema.get("maxLength", 30))
    if kind == "integer":
        return st.integers(min_value=schema.get("minimum"), max_value=schema.get("maximum"))
    if kind == "number":
        return st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False))
    if kind == "boolean":
        return st.booleans()
    if kind is None:
        return _json_scalars
    raise ValueError(f"unsupported schema type {kind!r}")
