"""PyYAML's safe loader (libyaml's parser when installed), building plain documents without its generic machinery.

`yaml.CSafeLoader` parses in C but constructs every node in Python, through a generator per mapping and list and
bookkeeping for anchors; that is most of the time a descriptor or a runbook's front matter takes to load. Plain
documents (strings, numbers, booleans, dates, null, lists and mappings with scalar keys) are built here directly,
with the loader's own scalar constructors; anything else (aliases, merge keys, explicit or unknown tags) goes
through PyYAML unchanged, from the start of that document, so results and errors are exactly PyYAML's.
"""

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_PREFIX = "tag:yaml.org,2002:"
_SEQ, _MAP = _PREFIX + "seq", _PREFIX + "map"
# Scalar tags whose safe constructors are plain functions of the node (no generator, no state).
_SCALARS = {_PREFIX + name for name in ("null", "bool", "int", "float", "binary", "timestamp", "str")}


class _NotPlain(Exception):
    """This document needs PyYAML's full constructor."""


class Loader(_Base):  # type: ignore[valid-type,misc]
    """Use as `yaml.load(text, Loader=Loader)` or `yaml.load_all(...)`, like yaml.CSafeLoader."""

    def construct_document(self, node: Node) -> Any:
        try:
            return self._plain(node, set())
        except _NotPlain:
            return super().construct_document(node)

    def _plain(self, node: Node, seen: set[int]) -> Any:
        if id(node) in seen:  # an alias: PyYAML shares the object (and refuses recursion)
            raise _NotPlain
        seen.add(id(node))
        kind, tag = type(node), node.tag
        if kind is ScalarNode and tag in _SCALARS:
            return self.yaml_constructors[tag](self, node)
        if kind is SequenceNode and tag == _SEQ:
            return [self._plain(child, seen) for child in node.value]
        if kind is MappingNode and tag == _MAP:
            data = {}
            for key_node, value_node in node.value:
                # Merge (<<) and value (=) keys get special treatment; non-scalar keys may be unhashable.
                if type(key_node) is not ScalarNode or key_node.tag not in _SCALARS:
                    raise _NotPlain
                data[self._plain(key_node, seen)] = self._plain(value_node, seen)
            return data
        raise _NotPlain
