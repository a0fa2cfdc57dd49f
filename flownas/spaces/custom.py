"""Your own search space without writing one: a cell space declared from data.

A *cell space* has operations on the nodes of a DAG (NAS-Bench-101 style):
an ``input`` node, up to ``num_nodes`` operation nodes, an ``output`` node, and
edges from earlier to later nodes. Declare one from its operations, number of
nodes and rules, and get sample / mutate / validate / params / enumerate and a
trainable network (``to_model``) for free::

    from flownas.spaces.custom import cell_space

    def at_most_two_pools(arch):
        if arch.ops.count("maxpool3x3") > 2:
            return "more than two max-pools"

    TinyCells = cell_space("tiny-cells", ops=("conv3x3", "conv1x1", "maxpool3x3"),
                           num_nodes=4, max_edges=7, rules=(at_most_two_pools,))

    space = get_space("tiny-cells")          # registered by name

Rules:

- ``max_edges`` / ``max_inputs``: caps on the edges of a cell and on the
  inputs of one node;
- ``prune=True`` (default): nodes off every input -> output path are removed,
  so cells have 1 to ``num_nodes`` operation nodes; ``prune=False``: all
  ``num_nodes`` must be used;
- ``rules``: callables ``rule(arch) -> None | str``; a string is the reason
  the cell is not in the space.

The network (``flownas/spaces/networks/cells.py``) is a stem, ``stacks``
stacks of ``cells_per_stack`` cells (channels doubling and resolution halving
between stacks), global pooling and a classifier. In a cell a node sums its
inputs and applies its operation; the output sums its inputs. Operations come
from ``builders`` (name -> ``f(channels) -> nn.Module``), else from the
built-in library (``conv1x1``, ``conv3x3``, ``conv5x5``, ``sepconv3x3``,
``sepconv5x5``, ``dilconv3x3``, ``maxpool3x3``, ``avgpool3x3``, ``identity``).

Writing a space by hand instead: subclass ``flownas.spaces.base.SearchSpace``
(see its docstrings, ``flownas/spaces/nb201.py`` and
``examples/resnet_space.py``) and register it with ``@SPACES.register(name)``
or the entry-point group ``flownas.spaces``.
"""
from __future__ import annotations

import functools
import inspect
import itertools
from typing import Any, Callable, ClassVar, Iterator, Mapping, Sequence

import numpy as np

from ..arch import Architecture
from ..errors import ArchitectureError, ConfigError
from ..registry import SPACES
from .base import SearchSpace, shown

Rule = Callable[[Architecture], "str | None"]
_ENUMERATION_LIMIT = 200_000    # raw cells walked by enumerate(); above it size() is unknown


class CellSpace(SearchSpace):
    """Operations on the nodes of a DAG, declared by ``cell_space()``."""

    name: ClassVar[str] = "cells"
    cell_ops: ClassVar[tuple[str, ...]] = ()
    num_nodes: ClassVar[int] = 0
    max_edges: ClassVar[int | None] = None
    max_inputs: ClassVar[int | None] = None
    prune: ClassVar[bool] = True
    rules: ClassVar[tuple[Rule, ...]] = ()
    builders: ClassVar[Mapping[str, Callable]] = {}
    network: ClassVar[Mapping[str, Any]] = {}
    edge_probability: ClassVar[float] = 0.5
    max_tries: ClassVar[int] = 10_000

    def __init__(self):
        if not self.cell_ops or self.num_nodes < 1:
            raise ConfigError("declare a cell space with cell_space(name, ops, num_nodes, ...)")
        n = self.num_nodes
        self._output = n + 1
        self._pairs = [(i, j) for j in range(1, n + 2) for i in range(j)]
        self._op_names = tuple(f"op_{i}" for i in range(1, n + 1))
        self._edge_names = tuple(f"edge_{i}_{j}" for i, j in self._pairs)

    # -- raw cells (fixed numbering, n + 2 nodes) <-> members --------------------
    def _raw(self, ops: Sequence[str], edges: Sequence[tuple[int, int]]) -> Architecture:
        """Nodes: input, the ops, output (numbered 0 .. len(ops) + 1)."""
        return Architecture.from_edges(("input", *ops, "output"), edges, self.name)

    def _member(self, raw: Architecture) -> Architecture:
        """The normalized cell; raises ``NotInSpaceError`` naming the broken rule."""
        arch = self.normalize(raw)
        self.validate(arch)
        return arch

    def normalize(self, arch: Architecture) -> Architecture:
        """Drop operation nodes that are off every input -> output path."""
        if not self.prune or "input" not in arch.ops or "output" not in arch.ops:
            return arch
        reach = arch.reachability()
        src, dst = arch.ops.index("input"), arch.ops.index("output")
        if not reach[src, dst]:
            raise self._error("the output is not reachable from the input")
        keep = [i for i in range(arch.num_nodes)
                if i in (src, dst) or (reach[src, i] and reach[i, dst])]
        if len(keep) == arch.num_nodes:
            return arch
        pos = {v: k for k, v in enumerate(keep)}
        edges = [(pos[i], pos[j]) for i, j in arch.edges if i in pos and j in pos]
        return Architecture.from_edges([arch.ops[i] for i in keep], edges, arch.space, None)

    def _params_of(self, arch: Architecture) -> tuple[list[str], set[tuple[int, int]]]:
        """Node ops and edges of ``arch`` in the fixed numbering (unused nodes padded)."""
        self.validate(arch)
        order = arch.canonical_order()       # topological: input first, output last
        k = arch.num_nodes - 2
        slot = {v: p for p, v in enumerate(order)}
        slot[order[-1]] = self._output
        ops = [arch.ops[v] for v in order[1:-1]] + [self.cell_ops[0]] * (self.num_nodes - k)
        edges = {(slot[i], slot[j]) for i, j in arch.edges}
        return ops, edges

    # -- the interface -------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Architecture:
        for _ in range(self.max_tries):
            ops = [self.cell_ops[i] for i in rng.integers(len(self.cell_ops), size=self.num_nodes)]
            present = rng.random(len(self._pairs)) < self.edge_probability
            try:
                return self._member(self._raw(ops, [e for e, p in zip(self._pairs, present) if p]))
            except ArchitectureError:
                continue
        raise ConfigError(f"space {self.name!r}: no valid cell in {self.max_tries} random tries; "
                          "are the rules satisfiable?")

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        ops, edges = self._params_of(arch)
        for _ in range(self.max_tries):
            new_ops, new_edges = list(ops), set(edges)
            k = int(rng.integers(self.num_nodes + len(self._pairs)))
            if k < self.num_nodes:
                others = [o for o in self.cell_ops if o != ops[k]]
                if not others:
                    continue
                new_ops[k] = others[int(rng.integers(len(others)))]
            else:
                new_edges ^= {self._pairs[k - self.num_nodes]}
            try:
                child = self._member(self._raw(new_ops, sorted(new_edges)))
            except ArchitectureError:
                continue
            if child != arch:
                return child
        raise ArchitectureError(f"space {self.name!r}: no different neighbour in {self.max_tries} tries")

    def validate(self, arch: Architecture) -> None:
        self.check_common(arch)             # one input, one output, every node on a path
        k = arch.num_nodes - 2
        if k < 1:
            raise self._error("a cell needs at least one operation node")
        if k > self.num_nodes:
            raise self._error(f"{k} operation nodes, at most {self.num_nodes}")
        if not self.prune and k != self.num_nodes:
            raise self._error(f"{k} operation nodes, exactly {self.num_nodes} (prune=False)")
        if self.max_edges is not None and arch.num_edges > self.max_edges:
            raise self._error(f"{arch.num_edges} edges, at most {self.max_edges}")
        if self.max_inputs is not None:
            for v in range(arch.num_nodes):
                if len(arch.predecessors(v)) > self.max_inputs:
                    raise self._error(f"node {v} ({arch.ops[v]}) has {len(arch.predecessors(v))} inputs, "
                                      f"at most {self.max_inputs}")
        if arch.attrs:
            raise self._error("cells carry no node attributes")
        for rule in self.rules:
            verdict = rule(arch)
            if verdict:
                reason = verdict if isinstance(verdict, str) else f"rule {_rule_name(rule)} fails"
                raise self._error(reason)

    def param_space(self) -> dict[str, tuple]:
        space = {name: self.cell_ops for name in self._op_names}
        space.update({name: (0, 1) for name in self._edge_names})
        return space

    def to_params(self, arch: Architecture) -> dict[str, Any]:
        ops, edges = self._params_of(arch)
        params: dict[str, Any] = dict(zip(self._op_names, ops))
        params.update({name: int(pair in edges) for name, pair in zip(self._edge_names, self._pairs)})
        return params

    def from_params(self, params: Mapping[str, Any]) -> Architecture:
        choices = self.param_space()
        missing = [n for n in choices if n not in params]
        if missing:
            raise ArchitectureError(f"space {self.name!r}: parameters lack {', '.join(missing)}")
        for name, value in params.items():
            if name not in choices:
                raise ArchitectureError(f"space {self.name!r}: unknown parameter {name!r}")
            if value not in choices[name]:
                raise ArchitectureError(f"space {self.name!r}: {name}={value!r} is not one of {choices[name]}")
        ops = [params[n] for n in self._op_names]
        edges = [pair for name, pair in zip(self._edge_names, self._pairs) if params[name]]
        return self._member(self._raw(ops, edges))

    def to_string(self, arch: Architecture) -> str:
        """``op_a,op_b,...|i-j,i-j,...`` in the canonical numbering (0 input, n+1 output)."""
        ops, edges = self._params_of(arch)
        return ",".join(ops) + "|" + ",".join(f"{i}-{j}" for i, j in sorted(edges))

    def from_string(self, text: str) -> Architecture:
        head, sep, tail = text.strip().partition("|")
        try:
            if not sep:
                raise ValueError("no '|' between ops and edges")
            ops = head.split(",")
            edges = [tuple(int(x) for x in e.split("-")) for e in tail.split(",") if e]
            if any(len(e) != 2 for e in edges):
                raise ValueError("edges are written i-j")
        except ValueError as exc:
            raise ArchitectureError(f"not a {self.name} cell string ({exc}): {shown(text)}") from None
        if len(ops) != self.num_nodes:
            raise ArchitectureError(f"a {self.name} cell string lists {self.num_nodes} ops, got {len(ops)}")
        unknown = [o for o in ops if o not in self.cell_ops]
        if unknown:
            raise ArchitectureError(f"unknown op {unknown[0]!r} in {shown(text)} (known: {', '.join(self.cell_ops)})")
        return self._member(self._raw(ops, edges))

    def enumerate(self) -> Iterator[Architecture]:
        raw = self._raw_count()
        if raw > _ENUMERATION_LIMIT:
            raise NotImplementedError(f"space {self.name!r} has {raw:,} raw cells: too many to enumerate")
        seen: set[str] = set()
        for nodes, edges in self._structures():
            for ops in itertools.product(self.cell_ops, repeat=nodes):
                try:
                    arch = self._member(self._raw(ops, edges).with_space(self.name))
                except ArchitectureError:
                    continue
                if arch.key not in seen:
                    seen.add(arch.key)
                    yield arch

    def _structures(self) -> Iterator[tuple[int, list[tuple[int, int]]]]:
        """Each distinct edge set after pruning, as (operation nodes, edges in
        the numbering 0 input .. nodes + 1 output); ops do not change pruning."""
        n, done = self.num_nodes, set()
        for mask in itertools.product((0, 1), repeat=len(self._pairs)):
            edges = [e for e, m in zip(self._pairs, mask) if m]
            forward, backward = {0}, {n + 1}
            for i, j in edges:                   # pairs are sorted by target: one pass
                if i in forward:
                    forward.add(j)
            for i, j in reversed(edges):
                if j in backward:
                    backward.add(i)
            live = sorted(forward & backward) if self.prune else list(range(n + 2))
            if n + 1 not in forward:
                continue
            pos = {v: k for k, v in enumerate(live)}
            kept = tuple(sorted((pos[i], pos[j]) for i, j in edges if i in pos and j in pos))
            if kept not in done:
                done.add(kept)
                yield len(live) - 2, list(kept)

    def size(self) -> int | None:
        return _count(type(self)) if self._raw_count() <= _ENUMERATION_LIMIT else None

    def _raw_count(self) -> int:
        return len(self.cell_ops) ** self.num_nodes * 2 ** len(self._pairs)

    def to_model(self, arch: Architecture, **options: Any):
        from .networks.cells import CellNetwork
        self.validate(arch)
        network = {**self.network, **options}
        try:
            return CellNetwork(arch, builders=self.builders, in_channels=self.input_shape[0], **network)
        except TypeError as exc:
            raise TypeError(f"space {self.name!r}: bad network options: {exc}") from None

    def __reduce__(self):
        return (_instance, (self._spec,))


@functools.lru_cache(maxsize=None)
def _count(cls) -> int:
    return sum(1 for _ in cls().enumerate())


def _instance(spec: Mapping[str, Any]) -> CellSpace:
    """Rebuild a declared space from its declaration (pickling, Ray workers)."""
    name = spec["name"]
    if name in SPACES:
        cls = SPACES.get(name)
        if getattr(cls, "_spec", None) == spec:
            return cls()
    return cell_space(**{**spec, "register": False})()


def _rule_name(rule) -> str:
    return getattr(rule, "__qualname__", None) or repr(rule)


def cell_space(name: str, ops: Sequence[str], num_nodes: int, *, max_edges: int | None = None,
               max_inputs: int | None = None, prune: bool = True, rules: Sequence[Rule] = (),
               builders: Mapping[str, Callable] | None = None, channels: int = 16, stacks: int = 3,
               cells_per_stack: int = 1, num_classes: int = 10,
               input_shape: Sequence[int] = (3, 32, 32), edge_probability: float = 0.5,
               register: bool = True, doc: str | None = None) -> type[CellSpace]:
    """Declare a cell space (see the module docstring); registered as ``name``
    in ``flownas.registry.SPACES`` unless ``register=False``."""
    ops = tuple(ops)
    if not ops:
        raise ConfigError(f"cell space {name!r} needs at least one operation")
    if len(set(ops)) != len(ops):
        raise ConfigError(f"cell space {name!r} lists an operation twice: {ops}")
    reserved = {"input", "output"} & set(ops)
    if reserved:
        raise ConfigError(f"cell space {name!r}: {sorted(reserved)} name the cell's ends, not operations")
    if not isinstance(num_nodes, int) or num_nodes < 1:
        raise ConfigError(f"cell space {name!r}: num_nodes must be a positive integer, got {num_nodes!r}")
    for rule in rules:
        if not callable(rule) or len(inspect.signature(rule).parameters) != 1:
            raise ConfigError(f"cell space {name!r}: a rule is a function of one architecture, got {rule!r}")
    if not 0 < edge_probability < 1:
        raise ConfigError(f"cell space {name!r}: edge_probability must be in (0, 1)")
    spec = dict(name=name, ops=ops, num_nodes=num_nodes, max_edges=max_edges, max_inputs=max_inputs,
                prune=prune, rules=tuple(rules), builders=dict(builders or {}), channels=channels,
                stacks=stacks, cells_per_stack=cells_per_stack, num_classes=num_classes,
                input_shape=tuple(input_shape), edge_probability=edge_probability, doc=doc)
    cls = type(f"CellSpace[{name}]", (CellSpace,), {
        "__doc__": doc or f"cell space: {num_nodes} nodes of {', '.join(ops)}",
        "__module__": __name__,
        "name": name,
        "ops": ("input", *ops, "output"),
        "cell_ops": ops,
        "num_nodes": num_nodes,
        "max_edges": max_edges,
        "max_inputs": max_inputs,
        "prune": prune,
        "rules": tuple(rules),
        "builders": dict(builders or {}),
        "network": dict(channels=channels, stacks=stacks, cells_per_stack=cells_per_stack,
                        num_classes=num_classes),
        "input_shape": tuple(input_shape),
        "edge_probability": edge_probability,
        "_spec": spec,
    })
    if register:
        SPACES.register(name, cls)
    return cls
