"""Slack's documented Block Kit limits, as the fake Web API enforces them.

Slack refuses a whole message whose blocks break any of these (``invalid_blocks``), and a
modal likewise (``invalid_arguments``); the fake does the same, so a test fails where
production would. Limits from Slack's Block Kit reference (blocks, block elements,
composition objects, views) and ``chat.postMessage``.
"""

from __future__ import annotations

from typing import Any

MESSAGE_TEXT = 40_000
MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100

_TEXT_LIMITS = {"section": 3000, "header": 150}


def _text(obj: Any, limit: int, where: str, *, plain: bool = False) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in {"plain_text", "mrkdwn"}:
        return [f"{where}: not a text object"]
    if plain and obj["type"] != "plain_text":
        return [f"{where}: must be plain_text"]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return [f"{where}: text must be a non-empty string"]
    if len(text) > limit:
        return [f"{where}: must be at most {limit} characters ({len(text)})"]
    return []


def _string(value: Any, limit: int, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, str) or len(value) > limit:
        return [f"{where}: must be a string of at most {limit} characters"]
    return []


def _element(element: Any, where: str) -> list[str]:
    kind = element.get("type")
    errors = _string(element.get("action_id"), 255, f"{where}.action_id")
    if kind == "button":
        errors += _text(element.get("text"), 75, f"{where}.text", plain=True)
        errors += _string(element.get("value"), 2000, f"{where}.value")
        errors += _string(element.get("url"), 3000, f"{where}.url")
        if element.get("style") not in {None, "primary", "danger"}:
            errors.append(f"{where}.style: must be primary or danger")
        confirm = element.get("confirm")
        if confirm is not None:
            errors += _text(confirm.get("title"), 100, f"{where}.confirm.title", plain=True)
            errors += _text(confirm.get("text"), 300, f"{where}.confirm.text")
            errors += _text(confirm.get("confirm"), 30, f"{where}.confirm.confirm", plain=True)
            errors += _text(confirm.get("deny"), 30, f"{where}.confirm.deny", plain=True)
    elif kind == "plain_text_input":
        most, least = element.get("max_length", 3000), element.get("min_length", 0)
        if not 0 <= most <= 3000:
            errors.append(f"{where}.max_length: at most 3000")
        if not 0 <= least <= most:
            errors.append(f"{where}.min_length: 0 to max_length")
        initial = element.get("initial_value")
        if initial is not None and (not isinstance(initial, str) or len(initial) > most):
            errors.append(f"{where}.initial_value: a string of at most max_length")
        if not isinstance(element.get("multiline", False), bool):
            errors.append(f"{where}.multiline: a boolean")
    else:
        errors.append(f"{where}: unknown element type {kind!r}")
    return errors


def _input(block: Any, where: str) -> list[str]:
    errors = _text(block.get("label"), 2000, f"{where}.label", plain=True)
    # opsloop reads submissions by block_id and action_id: both must be set.
    if not block.get("block_id"):
        errors.append(f"{where}.block_id: required on an input")
    if not (block.get("element") or {}).get("action_id"):
        errors.append(f"{where}.element.action_id: required on an input")
    if not isinstance(block.get("optional", False), bool):
        errors.append(f"{where}.optional: a boolean")
    if "hint" in block:
        errors += _text(block["hint"], 2000, f"{where}.hint", plain=True)
    return errors + _element(block.get("element") or {}, f"{where}.element")


def block_errors(blocks: Any, *, most: int = MESSAGE_BLOCKS) -> list[str]:
    """Why Slack would refuse ``blocks``; empty when it would take them."""
    if not isinstance(blocks, list):
        return ["blocks: must be a list"]
    errors = [f"blocks: at most {most} ({len(blocks)})"] if len(blocks) > most else []
    for n, block in enumerate(blocks):
        where = f"blocks[{n}]"
        kind = block.get("type")
        errors += _string(block.get("block_id"), 255, f"{where}.block_id")
        if kind in _TEXT_LIMITS:
            errors += _text(block.get("text"), _TEXT_LIMITS[kind], f"{where}.text")
            for i, item in enumerate(block.get("fields") or []):
                errors += _text(item, 2000, f"{where}.fields[{i}]")
            if len(block.get("fields") or []) > 10:
                errors.append(f"{where}.fields: at most 10")
        elif kind == "context":
            elements = block.get("elements") or []
            if not 1 <= len(elements) <= 10:
                errors.append(f"{where}.elements: 1 to 10")
            for i, item in enumerate(elements):
                errors += _text(item, 3000, f"{where}.elements[{i}]")
        elif kind == "actions":
            elements = block.get("elements") or []
            if not 1 <= len(elements) <= 25:
                errors.append(f"{where}.elements: 1 to 25")
            for i, item in enumerate(elements):
                errors += _element(item, f"{where}.elements[{i}]")
        elif kind == "input":
            errors += _input(block, where)
        elif kind != "divider":
            errors.append(f"{where}: unknown block type {kind!r}")
    ids = [b.get("block_id") for b in blocks if b.get("block_id")]
    if len(ids) != len(set(ids)):
        errors.append("blocks: block_id values must be unique")
    return errors


def view_errors(view: Any) -> list[str]:
    """Why Slack would refuse a modal."""
    errors = [] if view.get("type") == "modal" else ["type: must be 'modal'"]
    errors += _text(view.get("title"), 24, "title", plain=True)
    if any(b.get("type") == "input" for b in view.get("blocks") or []) and "submit" not in view:
        errors.append("submit: required when the view has input blocks")
    for name in ("submit", "close"):
        if name in view:
            errors += _text(view[name], 24, name, plain=True)
    errors += _string(view.get("private_metadata"), 3000, "private_metadata")
    errors += _string(view.get("callback_id"), 255, "callback_id")
    return errors + block_errors(view.get("blocks"), most=VIEW_BLOCKS)
