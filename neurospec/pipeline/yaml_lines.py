"""YAML with line numbers: every mapping remembers the line of each key, so errors can name it.

    document = load_yaml_with_lines(Path("study.yaml"))
    document["steps"].line_of("collect")        # 1-based line of the key ``collect``

Duplicate keys, which PyYAML would silently overwrite, are refused with both lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from neurospec.util.errors import ConfigError
from neurospec.util.extras import require

yaml = require("yaml", "reading a study config")


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


MAX_VALUES = 100_000  # values of a document with every alias expanded; a study config has a few hundred


def _check_size(root: yaml.Node, path: Path) -> None:
    """Refuse a document whose aliases expand to more than MAX_VALUES values (a "billion laughs" file: a
    kilobyte of nested aliases that would take gigabytes once every step reads its options)."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = 1  # a node that contains itself (a recursive alias) counts once while being measured
        children = node.value if isinstance(node, yaml.SequenceNode) else (
            [item for pair in node.value for item in pair] if isinstance(node, yaml.MappingNode) else [])
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_VALUES:
                break
        sizes[id(node)] = total
        return total

    if size(root) > MAX_VALUES:
        raise ConfigError(f"{path}:{root.start_mark.line + 1}: this YAML expands to more than {MAX_VALUES:,} values "
                          "through its aliases (*name); a study config needs no more: write the values out")


def load_yaml_with_lines(path: Path) -> Any:
    """The YAML document at ``path``; mappings are :class:`LineMap`. Syntax errors name the line."""
    text = path.read_text(encoding="utf-8")
    loader = _LineLoader(text)
    loader.name = str(path)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_size(node, path)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {err.problem or err.context}") from None
    finally:
        loader.dispose()
