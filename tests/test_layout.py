"""Rules of the code base that a reviewer would otherwise have to remember."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from bot.config import Settings
from bot.plugins import load_plugins

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_the_core_imports_no_plugin_package() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            m
            for m in imported_modules(path)
            if m.split(".")[0] in {"channels", "agents", "workers"}
        )
        for path in sources("bot")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_vendor_sdks_stay_at_the_edge() -> None:
    allowed = {
        "anthropic": "bot/model/_anthropic.py",
        "openai": "bot/model/_openai.py",
        "slack_bolt": "channels/slack",
        "slack_sdk": "channels/slack",
        "discord": "channels/discord",
        "mcp": "bot/mcp",
    }
    found = []
    for package in ("bot", "channels", "agents", "workers"):
        for path in sources(package):
            rel = str(path.relative_to(ROOT))
            for module in imported_modules(path):
                top = module.split(".")[0]
                if top in allowed and not rel.startswith(allowed[top]):
                    found.append(f"{rel} imports {module}")
    assert found == []


def test_env_example_lists_every_setting() -> None:
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    listed = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", example, re.MULTILINE))
    models = [Settings, *(p.settings for p in load_plugins() if p.settings is not None)]
    names = set()
    for model in models:
        for field in model.model_fields.values():
            alias = field.validation_alias
            names.add(alias.choices[0] if hasattr(alias, "choices") else str(alias))
    assert names - listed == set()
    assert listed - names <= {"OPSLOOP_USER"}


def test_no_module_is_past_the_size_where_it_should_be_split() -> None:
    too_long = {
        str(p.relative_to(ROOT)): n
        for package in ("bot", "channels", "agents", "workers")
        for p in sources(package)
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 450
    }
    assert too_long == {}
