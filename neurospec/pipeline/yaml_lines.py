"""YAML with line numbers: every mapping remembers the line of each key, so errors can name it.

    document = load_yaml_with_lines(Path("study.yaml"))
    document["steps"].line_of("collect")        # 1-based line of the key ``collect``

Duplicate keys, which PyYAML would silently overwrite, are refused with both lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from neurospec.errors import ConfigError


class LineMap(dict):
    """A dict from a YAML mapping, with the line of the mapping and of each of its keys."""

    line: int = 0
    key_lines: dict

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class _LineLoader(yaml.SafeLoader):
    """SafeLoader whose mappings are LineMaps (no Python object tags, as with yaml.safe_load)."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineMap:
    loader.flatten_mapping(node)
    mapping = LineMap()
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, (str, int, float, bool)) or key is None:
            raise ConfigError(f"{loader.name}:{line}: a key must be a plain name, not {key!r}")
        if key in mapping:
            raise ConfigError(f"{loader.name}:{line}: key {key!r} is given twice (first on line "
                                 f"{mapping.key_lines[key]}); keep one")
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = line
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml_with_lines(path: Path) -> Any:
    """The YAML document at ``path``; mappings are :class:`LineMap`. Syntax errors name the line."""
    text = path.read_text(encoding="utf-8")
    loader = _LineLoader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {err.problem or err.context}") from None
    finally:
        loader.dispose()
