"""PyYAML's safe loader (libyaml's parser when installed), building plain documents without its generic machinery.

`yaml.CSafeLoader` parses in C but constructs every node in Python, through a generator per mapping and list and
bookkeeping for anchors; that is most of the time a descriptor or a runbook's front matter takes to load. Plain
documents (strings, numbers, booleans, dates, null, lists and mappings with scalar keys) are built here directly,
with the loader's own scalar constructors; anything else (aliases, merge keys, explicit or unknown tags) goes
through PyYAML unchanged, from the start of that document, so results and errors are exactly PyYAML's.

Nesting is bounded (`MAX_DEPTH`): building a document recurses once per level, and a few hundred `[` in a small
file would otherwise raise RecursionError out of the loader, past every handler of YAML errors. A deeper document
raises `NestingTooDeep`, a `yaml.MarkedYAMLError` naming the line, like any other YAML mistake.
"""

from typing import Any

import yaml
from yaml.nodes import CollectionNode, MappingNode, Node, ScalarNode, SequenceNode

_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_PREFIX = "tag:yaml.org,2002:"
_SEQ, _MAP = _PREFIX + "seq", _PREFIX + "map"
# Scalar tags whose safe constructors are plain functions of the node (no generator, no state).
_SCALARS = {_PREFIX + name for name in ("null", "bool", "int", "float", "binary", "timestamp", "str")}


# Real descriptors and front matter nest a handful of levels (an inline OpenAPI definition a few dozen); PyYAML's
# own constructor spends several Python frames per level, so this stays well inside the interpreter's limit.
MAX_DEPTH = 100


class NestingTooDeep(yaml.MarkedYAMLError):
    """A document nests lists and mappings deeper than MAX_DEPTH."""

    def __init__(self, node: Node) -> None:
        super().__init__(
            problem=f"lists and mappings are nested more than {MAX_DEPTH} levels deep; flatten the document",
            problem_mark=node.start_mark,
        )


def _depth_check(root: Node) -> None:
    """Raise NestingTooDeep if any node lies deeper than MAX_DEPTH, without recursing."""
    stack = [(root, 1)]
    seen: set[int] = set()
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise NestingTooDeep(node)
        if not isinstance(node, CollectionNode) or id(node) in seen:  # an alias is walked once
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            stack.extend((child, depth + 1) for pair in node.value for child in pair)
        else:
            stack.extend((child, depth + 1) for child in node.value)


class _NotPlain(Exception):
    """This document needs PyYAML's full constructor."""


class Loader(_Base):  # type: ignore[valid-type,misc]
    """Use as `yaml.load(text, Loader=Loader)` or `yaml.load_all(...)`, like yaml.CSafeLoader."""

    def construct_document(self, node: Node) -> Any:
        try:
            return self._plain(node, set(), 1)
        except _NotPlain:
            _depth_check(node)  # PyYAML's constructor recurses too
            return super().construct_document(node)

    def _plain(self, node: Node, seen: set[int], depth: int) -> Any:
        if id(node) in seen:  # an alias: PyYAML shares the object (and refuses recursion)
            raise _NotPlain
        seen.add(id(node))
        kind, tag = type(node), node.tag
        if kind is ScalarNode and tag in _SCALARS:
            return self.yaml_constructors[tag](self, node)
        if depth > MAX_DEPTH:
            raise NestingTooDeep(node)
        if kind is SequenceNode and tag == _SEQ:
            return [self._plain(child, seen, depth + 1) for child in node.value]
        if kind is MappingNode and tag == _MAP:
            data = {}
            for key_node, value_node in node.value:
                # Merge (<<) and value (=) keys get special treatment; non-scalar keys may be unhashable.
                if type(key_node) is not ScalarNode or key_node.tag not in _SCALARS:
                    raise _NotPlain
                data[self._plain(key_node, seen, depth + 1)] = self._plain(value_node, seen, depth + 1)
            return data
        raise _NotPlain
