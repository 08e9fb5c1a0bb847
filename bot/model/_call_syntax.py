"""``call TOOL key=value …``: a tool call typed by a person, for models without a brain.

The offline model understands it, so a custom tool can be tried with no API key::

    call TOOL                              no arguments
    call TOOL key=value key2="two words"   words as a shell splits them
    call TOOL {"key": "value", "n": 3}     one JSON object

A ``key=value`` value is typed by the tool's JSON schema where that is clear: a string
stays text (``version=1.10`` is ``"1.10"``), an integer or number is parsed, a boolean is
``true``/``false`` (or yes/no), an array or object is JSON (an array also ``a,b,c``),
``null`` is null where the schema allows it. Where the schema does not say, a JSON number,
``true``, ``false`` or ``null`` is that, and anything else is text. The tool itself then
validates the call like any other.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from typing import Any

from pydantic import JsonValue

__all__ = ["CALL", "parse_arguments", "schema_types"]

CALL = re.compile(r"^\s*call\s+([A-Za-z0-9_-]{1,64})(?:\s+(.*))?$", re.DOTALL)
"""``call TOOL rest``: the tool's name and the arguments' text."""

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def schema_types(prop: Mapping[str, Any], schema: Mapping[str, Any]) -> set[str]:
    """The JSON types a property's schema allows (``$ref`` and ``anyOf`` followed)."""
    ref = prop.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = schema.get("$defs", {}).get(ref.removeprefix("#/$defs/"), {})
        return schema_types(target, schema) if target is not prop else set()
    found: set[str] = set()
    kind = prop.get("type")
    if isinstance(kind, str):
        found.add(kind)
    elif isinstance(kind, list):
        found |= {k for k in kind if isinstance(k, str)}
    for key in ("anyOf", "oneOf", "allOf"):
        for part in prop.get(key, ()):
            if isinstance(part, Mapping):
                found |= schema_types(part, schema)
    values = list(prop.get("enum", ()))
    if "const" in prop:
        values.append(prop["const"])
    found |= {_json_type(value) for value in values}
    return found


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string" if isinstance(value, str) else "object"


def _guess(text: str) -> JsonValue:
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if value is None or isinstance(value, bool | int | float) else text


def _typed(text: str, types: set[str]) -> JsonValue:
    if text == "null" and "null" in types:
        return None
    kinds = types - {"null"}
    if len(kinds) != 1:
        if kinds == {"integer", "number"}:
            kinds = {"number"}
        else:
            return text if "string" in kinds else _guess(text)
    kind = next(iter(kinds))
    if kind == "string":
        return text
    if kind == "boolean":
        lowered = text.lower()
        if lowered in {"true", "yes", "on", "1"}:
            return True
        if lowered in {"false", "no", "off", "0"}:
            return False
        return text
    if kind in {"integer", "number"}:
        guessed = _guess(text)
        return guessed if isinstance(guessed, int | float) else text
    try:
        value: JsonValue = json.loads(text)
    except ValueError:
        if kind == "array":
            return [part.strip() for part in text.split(",") if part.strip()]
        return text
    return value


def parse_arguments(text: str, schema: Mapping[str, Any]) -> dict[str, JsonValue]:
    """The arguments ``text`` gives (``key=value …`` or a JSON object), typed by ``schema``.

    Raises:
        ValueError: the text is neither; the message says what is wrong.
    """
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            found = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"the JSON object does not parse ({exc})") from None
        if not isinstance(found, dict):
            raise ValueError("give one JSON object")
        return found
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise ValueError(f'{exc} (quote values with spaces as key="two words")') from None
    props = schema.get("properties", {})
    arguments: dict[str, JsonValue] = {}
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or not _KEY.match(key):
            raise ValueError(f"{word!r} is not key=value")
        if key in arguments:
            raise ValueError(f"{key} is given twice")
        prop = props.get(key)
        types = schema_types(prop, schema) if isinstance(prop, Mapping) else set()
        arguments[key] = _typed(value, types)
    return arguments
