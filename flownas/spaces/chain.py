"""Whole-network spaces whose architecture is a chain of layers.

A chain architecture has one node per layer in forward order (``input`` first,
``output`` last), an edge from each layer to the next, and the layer's
attributes (kernel, channels, stride, ...) on its node. Any node numbering
is accepted: ``ChainSpace.chain`` walks the path from the input node.
"""
from __future__ import annotations

from typing import Any, Sequence

from ..arch import Architecture, same_json
from .base import SearchSpace

Node = tuple[str, dict[str, Any]]


def chain_arch(space: str, nodes: Sequence[Node]) -> Architecture:
    """The chain architecture of ``(op, attrs)`` layers, numbered in forward order."""
    ops = [op for op, _ in nodes]
    return Architecture.from_edges(ops, [(i, i + 1) for i in range(len(ops) - 1)], space,
                                   [attrs for _, attrs in nodes])


class ChainSpace(SearchSpace):
    """Shared checks of chain spaces; subclasses decode the layers."""

    def chain(self, arch: Architecture) -> list[Node]:
        """The ``(op, attrs)`` layers of ``arch`` in forward order."""
        self.check_common(arch)
        n = arch.num_nodes
        if arch.edges != tuple((i, i + 1) for i in range(n - 1)):
            if arch.num_edges != n - 1 or any(len(arch.successors(i)) > 1 for i in range(n)):
                raise self._error("the graph is not a chain of layers (each layer feeds exactly the next)")
            order = arch.topological_order()   # the unique one, the graph being a path
        else:
            order = range(n)
        attrs = arch.attrs or [{}] * n
        return [(arch.ops[i], dict(attrs[i])) for i in order]

    def check_chain(self, nodes: Sequence[Node], want: Sequence[Node]) -> None:
        """Raise naming the first layer of ``nodes`` that differs from the layers ``want``."""
        if len(nodes) != len(want):
            raise self._error(f"the network has {len(nodes)} layers, its choices imply {len(want)}")
        for i, ((op, attrs), (op_w, attrs_w)) in enumerate(zip(nodes, want)):
            if op != op_w:
                raise self._error(f"layer {i} is {op!r}, expected {op_w!r}")
            # equal values of another type (204.0 for 204, 1 for True) give another key: not a member
            if attrs != attrs_w or any(type(v) is not type(attrs_w[k]) for k, v in attrs.items()) \
                    and not same_json(attrs, attrs_w):
                bad = sorted(k for k in set(attrs) | set(attrs_w) if not same_json(attrs.get(k), attrs_w.get(k)))
                shown = ", ".join(f"{k}={attrs.get(k)!r} (expected {attrs_w.get(k)!r})" for k in bad)
                raise self._error(f"layer {i} ({op}) has {shown}")
