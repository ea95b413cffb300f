"""YAML from users, loaded safely and within bounds: the config file and dataset cards' front matter.

`yaml.safe_load` constructs no arbitrary objects, but it still recurses once per nesting level
(10,000 levels: RecursionError) and lets aliases multiply a document ("billion laughs": a few
hundred bytes that expand to 10^9 values and hang whatever walks them). Here nesting is limited
while the document is composed, and the size it would expand to is counted (each distinct node
once, so the count itself is linear) before anything is constructed.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_DEPTH = 64
MAX_VALUES = 100_000


class _BoundedLoader(yaml.SafeLoader):
    def __init__(self, stream) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        if self._depth >= MAX_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def compose(text: str) -> yaml.Node | None:
    """The document's node graph, checked for depth and expanded size; yaml.YAMLError if refused."""
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
    finally:
        loader.dispose()
    if node is not None:
        _check_size(node)
    return node


def construct(node: yaml.Node | None) -> Any:
    """Plain Python values (dict, list, str, int, float, bool, None) of a node from `compose`."""
    if node is None:
        return None
    loader = _BoundedLoader("")
    try:
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load(text: str) -> Any:
    return construct(compose(text))


def _check_size(root: yaml.Node) -> None:
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:  # depth is bounded by MAX_DEPTH, so recursion is safe
        known = sizes.get(id(node))
        if known is not None:
            if known < 0:
                raise yaml.YAMLError("an alias refers to a value that contains it")
            return known
        sizes[id(node)] = -1
        children = (
            node.value
            if isinstance(node, yaml.SequenceNode)
            else [part for pair in node.value for part in pair]
            if isinstance(node, yaml.MappingNode)
            else []
        )
        total = 1 + sum(size(child) for child in children)
        if total > MAX_VALUES:
            raise yaml.MarkedYAMLError(
                None, None, f"expands to more than {MAX_VALUES} values (an alias bomb?)", node.start_mark
            )
        sizes[id(node)] = total
        return total

    size(root)
