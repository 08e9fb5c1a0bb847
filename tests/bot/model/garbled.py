"""Answers no provider should send, as a proxy or a cut connection delivers them."""

from __future__ import annotations

import httpx2
import pytest

GARBLED = [
    pytest.param(
        lambda r: httpx2.Response(
            200,
            text="<html><body>Gateway login</body></html>",
            headers={"content-type": "text/html"},
        ),
        id="html",
    ),
    pytest.param(
        lambda r: httpx2.Response(
            200, text='{"id": "x", "choices": [', headers={"content-type": "application/json"}
        ),
        id="truncated-json",
    ),
    pytest.param(lambda r: httpx2.Response(200, json=[1, 2, 3]), id="json-not-an-object"),
    pytest.param(lambda r: httpx2.Response(200, json={"unexpected": True}), id="wrong-shape"),
]
