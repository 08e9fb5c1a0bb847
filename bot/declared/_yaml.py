"""YAML declarations, read as strictly as a careful peer would read them.

PyYAML's ``safe_load`` keeps the last of two equal keys without a word and reads ``on``,
``off``, ``yes`` and ``no`` as booleans (YAML 1.1). A declaration is configuration that
decides what a bot may do, so here a repeated key is an error, only ``true``/``false``
are booleans (as in YAML 1.2 and TOML), and a file holds exactly one document. Every
error is a :class:`ConfigError` naming the file and the line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from bot.errors import ConfigError

__all__ = ["load_yaml"]

_BOOL = "tag:yaml.org,2002:bool"


class _StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses repeated keys and reads only true/false as booleans."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue  # a merge (<<) may be overridden; other odd keys the base handles
            key = self.construct_object(key_node)
            first = seen.get(key)
            seen[key] = key_node.start_mark.line + 1
            if first is not None:
                raise yaml.MarkedYAMLError(
                    problem=f"key {key!r} appears twice (first on line {first})",
                    problem_mark=key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml(path: Path, text: str) -> Any:
    """The one document in ``text`` (``None`` when it is empty).

    Raises:
        ConfigError: not valid YAML, a key repeated in one mapping, or more than one
            document; the message names the file and the line.
    """
    loader = _StrictLoader(text)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}, line {mark.line + 1}" if mark is not None else str(path)
        what = exc.problem or exc.context or "not valid YAML"
        if "expected a single document" in str(exc.context):
            what = "more than one YAML document; a declaration is one document"
        raise ConfigError(f"{where}: {what}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    finally:
        loader.dispose()
