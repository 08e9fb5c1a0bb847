"""Hiding secrets: every form a secret may take, and cuts that never leave half of one."""

from __future__ import annotations

import pytest

from bot.declared._secrets import Lookups
from bot.errors import ToolError

SECRET = 'p@ss w/rd"é'


def test_every_form_of_a_secret_is_hidden() -> None:
    lookups = Lookups({"T": SECRET}, {"V": "plain"})
    text = f"raw {SECRET} url p%40ss%20w%2Frd%22%C3%A9 form p%40ss+w%2Frd%22%C3%A9 json "
    text += 'p@ss w/rd\\"\\u00e9 json8 p@ss w/rd\\"é'
    assert lookups.scrub(text) == "raw *** url *** form *** json *** json8 ***"
    assert lookups.scrub_json({SECRET: [SECRET, 1, None, {"k": f"x{SECRET}"}]}) == {
        "***": ["***", 1, None, {"k": "x***"}]
    }
    assert lookups.var("V") == "plain"
    assert lookups.scrub("plain") == "plain"  # settings are not secrets


@pytest.mark.parametrize("start", range(90, 101))
def test_a_cut_moves_back_to_where_a_secret_starts(start: int) -> None:
    lookups = Lookups({"T": SECRET}, {})
    data = b"a" * start + SECRET.encode() + b"b" * 50
    text, cut = lookups.capped(data[: 100 + lookups.margin], 100, more=True)
    assert cut is True
    assert text in ("a" * start, "a" * start + "***")
    assert len(text.encode()) <= 100
    assert not any(SECRET[:n] in text for n in range(1, len(SECRET)))


def test_an_uncut_text_is_scrubbed_whole() -> None:
    lookups = Lookups({"T": SECRET}, {})
    assert lookups.capped(f"x{SECRET}y".encode(), 100) == ("x***y", False)


def test_missing_settings_are_named_and_defaults_fill_in_vars() -> None:
    with pytest.raises(ToolError) as caught:
        Lookups.read(["A", "B"], ["C", "D"], {"D": "d"}, environ={"OPSLOOP_SECRET_A": "x"})
    assert str(caught.value) == (
        "not configured: set OPSLOOP_SECRET_B, OPSLOOP_VAR_C in opsloop's environment"
    )
    read = Lookups.read(
        ["A"], ["D"], {"D": "default"}, environ={"OPSLOOP_SECRET_A": "x", "OPSLOOP_VAR_D": ""}
    )
    assert (read.secret("A"), read.var("D")) == ("x", "default")
    environ = {"OPSLOOP_SECRET_A": "x", "OPSLOOP_VAR_D": "set"}
    assert Lookups.read(["A"], ["D"], {"D": "default"}, environ=environ).var("D") == "set"
