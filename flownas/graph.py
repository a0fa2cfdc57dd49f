"""Whole networks as ``Architecture``s: a torch module (traced with torch.fx)
or an ONNX file becomes a DAG of operator nodes with attributes.

Nodes are operators (``conv2d``, ``batchnorm2d``, ``relu``, ``add``, ``cat``,
...; see ``OPS``) plus one ``input`` node per network input and one ``output``
node. ``attrs`` hold what defines the operator (channels, kernel, stride,
groups, ...) and its output ``shape`` without the batch dimension, never an
incidental name (module paths, variable names), so that two equal networks hash
equal however they were written. To that end the graph is canonicalized:

- a module and its functional form give the same node (``nn.ReLU`` and
  ``F.relu``, ``nn.Flatten`` and ``x.view(n, -1)``: both ``reshape``);
- identities disappear (``nn.Identity``, ``contiguous``, ``x + 0``, dropout
  with p=0), so a skip connection is an edge;
- sums are n-ary: ``a + b + c``, ``sum([a, b, c])`` and
  ``torch.stack([a, b, c]).sum(0)`` are one ``add`` node with three inputs,
  whatever the order of the terms;
- parameters and constants are not nodes (a functional op records the shapes
  of its constant inputs as ``<arg>_shape``); nodes that do not reach an
  output are dropped.

Tracing runs on a meta-device copy of the module (no compute, no memory for
weights), in eval mode, with concrete shapes: ``x.size(1)`` is a number, so
shape-dependent Python control flow works; data-dependent control flow
(``if x.sum() > 0``) cannot be traced and raises an ``ArchitectureError``
naming the module whose ``forward`` did it.

The NNI adapter (``flownas.spaces.nni_adapter``) and ``flownas graph`` both use
``from_module``; ``from_onnx`` reads ONNX files with the ``onnx`` package.
"""
from __future__ import annotations

import copy
import functools
import importlib
import inspect
import json
import math
import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .arch import Architecture
from .errors import ArchitectureError, ConfigError, DataError

# The operator vocabulary the tracers produce for common layers, in a fixed
# order (predictors one-hot encode by it). Other torch modules and functions
# keep their own lower-cased name (``type(m).__name__.lower()``, underscores
# removed), so nothing is ever lost, only not pre-registered.
OPS: tuple[str, ...] = (
    "input", "output",
    "conv1d", "conv2d", "conv3d", "convtranspose1d", "convtranspose2d", "convtranspose3d",
    "linear", "matmul", "multiheadattention", "embedding",
    "batchnorm1d", "batchnorm2d", "batchnorm3d", "layernorm", "groupnorm",
    "instancenorm1d", "instancenorm2d",
    "relu", "relu6", "leakyrelu", "prelu", "elu", "selu", "gelu", "silu", "mish",
    "sigmoid", "tanh", "hardswish", "hardsigmoid", "hardtanh", "softmax", "logsoftmax",
    "maxpool1d", "maxpool2d", "maxpool3d", "avgpool1d", "avgpool2d", "avgpool3d",
    "adaptiveavgpool1d", "adaptiveavgpool2d", "adaptivemaxpool2d",
    "dropout", "dropout2d", "pad", "upsample",
    "add", "sub", "mul", "div", "neg", "cat", "stack", "sum", "mean", "max",
    "reshape", "permute", "transpose", "getitem", "chunk", "split",
)

# leaf-module or function names that are the same operator under another name
_ALIASES = {
    "iadd": "add", "radd": "add", "isub": "sub", "imul": "mul", "rmul": "mul",
    "truediv": "div", "itruediv": "div", "concat": "cat", "concatenate": "cat",
    "flatten": "reshape", "unflatten": "reshape", "view": "reshape", "squeeze": "reshape",
    "unsqueeze": "reshape", "viewas": "reshape",
    "zeropad1d": "pad", "zeropad2d": "pad", "zeropad3d": "pad", "constantpad1d": "pad",
    "constantpad2d": "pad", "constantpad3d": "pad", "reflectionpad2d": "pad", "replicationpad2d": "pad",
    "interpolate": "upsample", "upsamplingnearest2d": "upsample", "upsamplingbilinear2d": "upsample",
    "maxpool2dwithindices": "maxpool2d", "swish": "silu",
}
# operators that compute nothing: the node is replaced by its input
_IDENTITIES = {"identity", "contiguous", "clone", "detach", "to", "type", "float", "alias"}
_RESHAPES = {"reshape"}
# attributes that do not change what a layer computes (or only its training)
_DROPPED_ATTRS = {"inplace", "momentum", "eps", "track_running_stats", "return_indices",
                  "input", "out", "dtype", "layout", "device", "memory_format", "pin_memory",
                  "requires_grad", "divisor_override", "training", "_stacklevel"}


@dataclass
class _Node:
    op: str
    source: str                         # where it came from, for error messages only
    inputs: list[int] = field(default_factory=list)   # producer nodes, in argument order
    attrs: dict[str, Any] = field(default_factory=dict)


# -- shared graph assembly ------------------------------------------------------
def _assemble(nodes: list[_Node], outputs: Sequence[int], space: str) -> Architecture:
    """Canonicalize the operator graph and build the ``Architecture``."""
    order = _topological(nodes)
    alias: dict[int, int] = {}           # removed node -> the node that stands for it

    def find(i):
        while i in alias:
            i = alias[i]
        return i

    for i in order:                      # identities vanish, stack+sum becomes a sum
        node = nodes[i]
        node.inputs = [find(j) for j in node.inputs]
        if _is_identity(node) and len(node.inputs) == 1:
            alias[i] = node.inputs[0]
        elif node.op == "sum" and len(node.inputs) == 1 and _stacked(nodes[node.inputs[0]], node):
            node.op, node.attrs = "add", {"shape": node.attrs.get("shape")}
            node.inputs = list(nodes[node.inputs[0]].inputs)
    outputs = [find(j) for j in outputs]
    kept = [i for i in order if i not in alias]
    users = Counter(j for i in kept for j in nodes[i].inputs) + Counter(outputs)
    for i in kept:                       # nested sums used once merge into one n-ary sum
        if _plain_sum(nodes[i]):
            terms = []
            for j in nodes[i].inputs:
                merge = _plain_sum(nodes[j]) and users[j] == 1
                terms.extend(nodes[j].inputs if merge else [j])
            nodes[i].inputs = terms

    # keep what is computed from an input and reaches an output
    from_input = set()
    for i in kept:
        if nodes[i].op == "input" or any(j in from_input for j in nodes[i].inputs):
            from_input.add(i)
    live, stack = set(), [j for j in outputs if j in from_input]
    while stack:
        i = stack.pop()
        if i not in live:
            live.add(i)
            stack.extend(j for j in nodes[i].inputs if j in from_input)
    live |= {i for i in kept if nodes[i].op == "input"}   # an unused input is still an input
    final = [i for i in kept if i in live]
    index = {i: k for k, i in enumerate(final)}
    ops = [nodes[i].op for i in final] + ["output"]
    attrs = [{k: v for k, v in nodes[i].attrs.items() if v is not None} for i in final] + [{}]
    edges = {(index[j], index[i]) for i in final for j in nodes[i].inputs if j in index}
    edges |= {(index[j], len(final)) for j in outputs if j in index}
    return Architecture.from_edges(ops, edges, space, attrs)


def _plain_sum(node: _Node) -> bool:
    """A sum of tensors only (no scalar operand, no alpha)."""
    return node.op == "add" and set(node.attrs) <= {"shape"}


def _stacked(stack: _Node, reduce: _Node) -> bool:
    """``torch.stack(xs).sum(0)``: a sum over the stacking dimension."""
    return (stack.op == "stack" and _dims(stack.attrs.get("dim", 0)) == [0]
            and _dims(reduce.attrs.get("dim")) == [0] and not reduce.attrs.get("keepdim"))


def _is_identity(node: _Node) -> bool:
    a = node.attrs
    if node.op in _IDENTITIES:
        return True
    if node.op.startswith("dropout"):
        return a.get("p") == 0
    if node.op in ("add", "sub"):
        return a.get("other") == 0
    if node.op in ("mul", "div"):
        return a.get("other") == 1
    return False


def _topological(nodes: list[_Node]) -> list[int]:
    """A topological order (creation order where possible); a cycle raises,
    naming its nodes by where they came from."""
    edges = {(j, i) for i, node in enumerate(nodes) for j in node.inputs}
    try:
        return list(Architecture.from_edges([n.op for n in nodes], edges).topological_order())
    except ArchitectureError:
        raise ArchitectureError("the network graph has a cycle: " + _cycle(nodes)) from None


def _cycle(nodes: list[_Node]) -> str:
    """One cycle, found by a depth-first walk along the inputs."""
    state = [0] * len(nodes)                  # 0 new, 1 on the current path, 2 done
    for start in range(len(nodes)):
        if state[start]:
            continue
        path, stack = [], [(start, iter(nodes[start].inputs))]
        while stack:
            v, inputs = stack[-1]
            if state[v] == 0:
                state[v] = 1
                path.append(v)
            u = next(inputs, None)
            if u is None:
                state[v] = 2
                path.pop()
                stack.pop()
            elif state[u] == 1:
                cycle = path[path.index(u):] + [u]
                return " <- ".join(f"{nodes[i].source} ({nodes[i].op})" for i in cycle)
            elif state[u] == 0:
                stack.append((u, iter(nodes[u].inputs)))
    return "?"


def _dims(d) -> list[int] | None:
    if d is None:
        return None
    return list(d) if isinstance(d, (list, tuple)) else [d]


def _canon(v: Any) -> Any:
    """A JSON value for an attribute; equal tuples collapse ((3, 3) is 3)."""
    import torch
    if isinstance(v, (bool, int, str)) or v is None:
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, (torch.Size, list, tuple)):
        items = [_canon(x) for x in v]
        if items and all(x == items[0] for x in items) and not isinstance(items[0], list) \
                and not isinstance(v, torch.Size):
            return items[0]
        return items
    if isinstance(v, slice):
        return ":".join("" if x is None else str(_canon(x)) for x in (v.start, v.stop, v.step))
    if v is Ellipsis:
        return "..."
    if isinstance(v, (torch.dtype, torch.device, torch.memory_format)):
        return str(v)
    if hasattr(v, "item") and callable(v.item) and getattr(v, "ndim", 1) == 0:
        return _canon(v.item())
    return type(v).__name__


def _op_name(name: str) -> str:
    """``ReLU``, ``relu_``, ``__add__``, ``max_pool2d`` -> ``relu``, ``add``, ``maxpool2d``."""
    name = name.strip("_").lower().replace("_", "")
    return _ALIASES.get(name, name)


# -- torch ----------------------------------------------------------------------
def from_module(module, input_shape: Sequence[int] = (3, 32, 32), *, space: str = "",
                example_inputs: Sequence[Any] | None = None, copy_module: bool = True) -> Architecture:
    """The operator graph of a torch module.

    ``input_shape`` is one example's shape without the batch dimension
    (a batch of one is traced); pass ``example_inputs`` (tensors or shapes
    with the batch dimension) for modules with several inputs. The module is
    not changed unless ``copy_module=False`` (then it is moved to the meta
    device: pass a throwaway module to skip the copy).
    """
    import torch
    if not isinstance(module, torch.nn.Module):
        raise ArchitectureError(f"expected a torch.nn.Module, got {type(module).__name__}")
    if example_inputs is None:
        example_inputs = [(1, *input_shape)]
    metas = [torch.empty(x.shape if isinstance(x, torch.Tensor) else tuple(x), device="meta",
                         dtype=x.dtype if isinstance(x, torch.Tensor) else torch.float32)
             for x in example_inputs]
    model = copy.deepcopy(module) if copy_module else module
    model = model.to("meta").eval()
    graph, tracer = _trace(model, metas)
    return _from_fx(graph, tracer, space)


def _trace(model, metas):
    import torch
    from torch import fx

    tracer = _tracer_class()(metas)
    try:
        with warnings.catch_warnings(), torch.device("meta"), torch.no_grad():
            warnings.simplefilter("ignore")
            graph = tracer.trace(model, concrete_args=_defaulted_args(model, len(metas)))
    except Exception as exc:
        where = _where(tracer, model)
        hint = ""
        if isinstance(exc, fx.proxy.TraceError) or "symbolically traced" in str(exc):
            hint = " (data-dependent control flow cannot be traced: make it depend on shapes or constants)"
        if tracer.meta_errors:
            hint += f"; shape propagation failed first at {tracer.meta_errors[0]}"
        raise ArchitectureError(f"cannot trace {where}: {type(exc).__name__}: {exc}{hint}") from exc
    return graph, tracer


def _where(tracer, model) -> str:
    """The innermost module being traced when tracing stopped."""
    stack = list(getattr(tracer, "module_stack", {}).values())
    path, cls = stack[-1] if stack else ("", type(model))
    name = getattr(cls, "__name__", str(cls))
    return f"module {path!r} ({name})" if path else f"the root module ({name})"


@functools.lru_cache(maxsize=None)
def _torch_class(cls) -> type | None:
    """The torch.nn layer class a module is (or derives from); None for
    containers and user modules, which are traced through."""
    from torch import nn
    containers = (nn.Module, nn.Sequential, nn.ModuleList, nn.ModuleDict, nn.ParameterList, nn.ParameterDict)
    for c in cls.__mro__:
        if c in containers:
            return None
        if c.__module__.startswith("torch.nn.") or c.__module__ == "torch.nn":
            return c
    return None


@functools.lru_cache(maxsize=None)
def _init_parameters(cls) -> frozenset[str]:
    try:
        return frozenset(inspect.signature(cls.__init__).parameters)
    except (TypeError, ValueError):
        return frozenset()


def _module_attrs(module) -> dict[str, Any]:
    cls = _torch_class(type(module)) or type(module)
    attrs = {}
    for name in getattr(cls, "__constants__", ()):
        if name not in _DROPPED_ATTRS and hasattr(module, name):
            attrs[name] = _canon(getattr(module, name))
    if "bias" in getattr(module, "_parameters", {}) and "bias" in _init_parameters(cls):
        attrs["bias"] = module._parameters["bias"] is not None
    if attrs.get("output_padding") == 0 and not getattr(module, "transposed", False):
        del attrs["output_padding"]
    if attrs.get("padding_mode") == "zeros":
        del attrs["padding_mode"]
    return attrs


def _defaulted_args(model, n_inputs: int) -> dict[str, Any] | None:
    """Parameters of ``forward`` past the example inputs keep their defaults."""
    params = list(inspect.signature(model.forward).parameters.values())[n_inputs:]
    concrete = {p.name: p.default for p in params
                if p.default is not p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return concrete or None


@functools.lru_cache(maxsize=None)
def _tracer_class():
    """fx Tracer whose proxies carry meta tensors: shapes are concrete
    (made on first use: importing this module does not import torch)."""
    import torch
    from torch import fx

    def meta_of(a):
        return a.meta if isinstance(a, ShapeProxy) else a

    class ShapeProxy(fx.Proxy):
        meta = None

        def size(self, dim=None):
            if isinstance(self.meta, torch.Tensor):
                return self.meta.size() if dim is None else self.meta.size(dim)
            return self.tracer.create_proxy("call_method", "size", (self,) if dim is None else (self, dim), {})

        def dim(self):
            if isinstance(self.meta, torch.Tensor):
                return self.meta.dim()
            return self.tracer.create_proxy("call_method", "dim", (self,), {})

        def __len__(self):
            if self.meta is not None:
                return len(self.meta)
            return super().__len__()

        def __getattr__(self, k):
            if k in ("shape", "ndim", "dtype", "device", "is_cuda") and self.__dict__.get("meta") is not None:
                return getattr(self.meta, k)
            return super().__getattr__(k)

    class Tracer(fx.Tracer):
        def __init__(self, metas):
            super().__init__()
            self.example_metas = list(metas)
            self.meta_errors: list[str] = []
            self._placeholders = 0
            self._raw_getattr = False

        def getattr(self, attr, attr_val, parameter_proxy_cache):
            if self._raw_getattr:
                return attr_val
            return super().getattr(attr, attr_val, parameter_proxy_cache)

        def is_leaf_module(self, m, qualname):
            return _torch_class(type(m)) is not None

        def proxy(self, node):
            return ShapeProxy(node, self)

        def create_proxy(self, kind, target, args, kwargs, name=None, type_expr=None, proxy_factory_fn=None):
            rv = super().create_proxy(kind, target, args, kwargs, name, type_expr, proxy_factory_fn)
            if isinstance(rv, ShapeProxy):
                rv.meta = self._meta(kind, target, args, kwargs, rv.node)
                rv.node.meta["flownas_meta"] = rv.meta
            return rv

        def _meta(self, kind, target, args, kwargs, node):
            if kind == "placeholder":
                k = self._placeholders
                self._placeholders += 1
                return self.example_metas[k] if k < len(self.example_metas) else None
            if kind == "output":
                return None
            try:
                a = fx.node.map_aggregate(args, meta_of)
                kw = fx.node.map_aggregate(kwargs, meta_of)
                if any(isinstance(x, fx.Proxy) for x in _leaves((a, kw))) or _has_none_meta(args, kwargs):
                    return None
                if kind == "call_module":   # forward itself: __call__ is the tracer's hook
                    self._raw_getattr = True
                    try:
                        return self.root.get_submodule(target).forward(*a, **kw)
                    finally:
                        self._raw_getattr = False
                if kind == "call_function":
                    return target(*a, **kw)
                if kind == "call_method":
                    return getattr(a[0], target)(*a[1:], **kw)
                if kind == "get_attr":
                    self._raw_getattr = True
                    try:
                        return _attr_path(self.root, target)
                    finally:
                        self._raw_getattr = False
            except Exception as exc:  # noqa: BLE001 - any failure only loses the shape
                self.meta_errors.append(f"{node.format_node()}: {type(exc).__name__}: {exc}")
            return None

    def _has_none_meta(args, kwargs):
        return any(isinstance(x, ShapeProxy) and x.meta is None for x in _leaves((args, kwargs)))

    return Tracer


def _attr_path(obj, dotted: str):
    for atom in dotted.split("."):
        obj = getattr(obj, atom)
    return obj


def _leaves(obj):
    if isinstance(obj, (list, tuple)):
        for x in obj:
            yield from _leaves(x)
    elif isinstance(obj, dict):
        for x in obj.values():
            yield from _leaves(x)
    else:
        yield obj


def _from_fx(graph, tracer, space: str) -> Architecture:
    from torch import fx

    nodes: list[_Node] = []
    index: dict[Any, int] = {}         # fx node -> operator node
    consts: dict[Any, Any] = {}        # fx node -> meta value of a constant (no input upstream)
    outputs: list[int] = []
    inputs = len(tracer.example_metas)     # later placeholders are defaulted arguments
    for n in graph.nodes:
        meta = n.meta.get("flownas_meta")
        if n.op == "placeholder" and inputs:
            inputs -= 1
            index[n] = len(nodes)
            nodes.append(_Node("input", f"input {n.name!r}", attrs={"shape": _shape(meta)}))
            continue
        if n.op == "output":
            outputs = [index[x] for x in _leaves(n.args) if isinstance(x, fx.Node) and x in index]
            continue
        producers = [x for x in _leaves((n.args, n.kwargs)) if isinstance(x, fx.Node)]
        if not any(x in index for x in producers):
            consts[n] = meta
            continue
        if n.op == "call_module":
            module = tracer.root.get_submodule(n.target)
            cls = _torch_class(type(module)) or type(module)
            op, attrs = _op_name(cls.__name__), _module_attrs(module)
            source = f"module {n.target!r} ({type(module).__name__})"
        else:
            op, attrs = _call(n, consts)
            source = f"{n.op} {n.target if isinstance(n.target, str) else getattr(n.target, '__name__', n.target)!s}" \
                     f" in {_scope_of(n)}"
        if op in _RESHAPES:
            attrs = {}                       # the output shape says it all
        attrs["shape"] = _shape(meta)
        index[n] = len(nodes)
        nodes.append(_Node(op, source, [index[x] for x in producers if x in index], attrs))
    if not outputs:
        raise ArchitectureError("the traced network returns no tensor computed from its inputs")
    return _assemble(nodes, outputs, space)


def _scope_of(n) -> str:
    stack = n.meta.get("nn_module_stack") or {}
    if stack:
        path, cls = list(stack.values())[-1]
        return f"module {path!r} ({getattr(cls, '__name__', cls)})"
    return "the root module"


def _shape(meta) -> list[int] | None:
    import torch
    if isinstance(meta, torch.Tensor):
        return [int(s) for s in meta.shape[1:]]
    return None


def _call(n, consts) -> tuple[str, dict[str, Any]]:
    """Name and attributes of a function or method call node."""
    import torch
    from torch import fx
    from torch.fx.operator_schemas import normalize_function

    target, args, kwargs = n.target, tuple(n.args), dict(n.kwargs)
    if n.op == "call_method":
        name = target
        fn = getattr(torch, target, None) or getattr(torch, target.rstrip("_"), None)
    else:
        name = getattr(target, "__name__", str(target))
        fn = target
    op = _op_name(name)
    if op in ("add", "mul") and args and not isinstance(args[0], fx.Node) and len(args) == 2:
        args = (args[1], args[0])            # commutative: tensor first
    if op in _BINARY and callable(getattr(torch, op, None)):
        fn = getattr(torch, op)
    if op == "getitem":
        return op, {"index": _canon(_constant_repr(args[1], consts))}
    normalized = None
    if callable(fn) and op not in _RESHAPES:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                normalized = normalize_function(
                    fn, args, kwargs, arg_types=tuple(_arg_type(a) for a in args),
                    kwarg_types={k: _arg_type(v) for k, v in kwargs.items()},
                    normalize_to_only_use_kwargs=True)
        except Exception:  # noqa: BLE001 - no schema: keep positional values
            normalized = None
    attrs: dict[str, Any] = {}
    if normalized is not None:
        items = normalized.kwargs.items()
    else:
        items = [(f"arg{i}", a) for i, a in enumerate(args)] + list(kwargs.items())
    for key, value in items:
        if key in _DROPPED_ATTRS:
            continue
        if isinstance(value, fx.Node):
            if value in consts:
                attrs[f"{key}_shape"] = _shape_full(consts[value])
            continue
        if isinstance(value, (list, tuple)) and any(isinstance(x, fx.Node) for x in _leaves(value)):
            continue                         # a list of tensors (cat, stack): they are the edges
        if value is not None:
            attrs[key] = _canon(value)
    if op in ("add", "sub") and attrs.get("alpha") == 1:
        del attrs["alpha"]
    return op, attrs


_BINARY = {"add", "sub", "mul", "div", "matmul"}


def _arg_type(a):
    """The type an overloaded torch schema is matched against (fx nodes are tensors)."""
    import torch
    from torch import fx
    if isinstance(a, fx.Node):
        return torch.Tensor
    if isinstance(a, (list, tuple)) and a and all(isinstance(x, fx.Node) for x in a):
        return list[torch.Tensor]
    return type(a)


def _constant_repr(v, consts):
    from torch import fx
    if isinstance(v, fx.Node):
        return "tensor"
    if isinstance(v, (list, tuple)):
        return [_constant_repr(x, consts) for x in v]
    return v


def _shape_full(meta) -> list[int] | None:
    import torch
    return [int(s) for s in meta.shape] if isinstance(meta, torch.Tensor) else None


# -- ONNX -------------------------------------------------------------------------
_ONNX_OPS = {
    "Conv": "conv", "ConvTranspose": "convtranspose", "Gemm": "linear", "MatMul": "matmul",
    "BatchNormalization": "batchnorm", "LayerNormalization": "layernorm",
    "InstanceNormalization": "instancenorm", "GroupNormalization": "groupnorm",
    "Relu": "relu", "LeakyRelu": "leakyrelu", "PRelu": "prelu", "Elu": "elu", "Selu": "selu",
    "Gelu": "gelu", "Sigmoid": "sigmoid", "Tanh": "tanh", "HardSwish": "hardswish",
    "HardSigmoid": "hardsigmoid", "Softmax": "softmax", "LogSoftmax": "logsoftmax", "Mish": "mish",
    "MaxPool": "maxpool", "AveragePool": "avgpool", "GlobalAveragePool": "adaptiveavgpool",
    "GlobalMaxPool": "adaptivemaxpool", "Dropout": "dropout", "Pad": "pad", "Resize": "upsample",
    "Upsample": "upsample", "Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Neg": "neg",
    "Concat": "cat", "Sum": "add", "ReduceMean": "mean", "ReduceSum": "sum", "ReduceMax": "max",
    "Flatten": "reshape", "Reshape": "reshape", "Squeeze": "reshape", "Unsqueeze": "reshape",
    "Transpose": "permute", "Identity": "identity", "Split": "split", "Slice": "getitem",
    "Gather": "getitem",
}
# ONNX ops whose name gets the spatial rank appended (Conv on 4-d weights -> conv2d)
_RANKED = {"conv", "convtranspose", "batchnorm", "instancenorm", "maxpool", "avgpool",
           "adaptiveavgpool", "adaptivemaxpool"}
_ONNX_ATTR_NAMES = {"kernel_shape": "kernel_size", "strides": "stride", "dilations": "dilation",
                    "group": "groups", "pads": "padding", "axis": "dim", "axes": "dim", "alpha": "alpha"}


def from_onnx(model_or_path, *, space: str = "") -> Architecture:
    """The operator graph of an ONNX model (a path or an ``onnx.ModelProto``)."""
    try:
        import onnx
        from onnx import numpy_helper, shape_inference
    except ImportError:
        raise ConfigError("reading ONNX files needs the onnx package: pip install onnx") from None
    if isinstance(model_or_path, (str, os.PathLike)):
        if not os.path.isfile(model_or_path):
            raise DataError(f"no ONNX file at {os.fspath(model_or_path)!r}")
        try:
            model = onnx.load(os.fspath(model_or_path))
        except Exception as exc:  # noqa: BLE001 - protobuf errors vary
            raise ArchitectureError(f"{os.fspath(model_or_path)!r} is not an ONNX model: {exc}") from None
    else:
        model = model_or_path
    try:
        model = shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - shapes are optional
        pass
    g = model.graph
    init = {t.name: list(t.dims) for t in g.initializer}
    const_values = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    for node in g.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    arr = numpy_helper.to_array(a.t)
                    init[node.output[0]] = list(arr.shape)
                    const_values[node.output[0]] = arr
    shapes = {}
    for vi in list(g.value_info) + list(g.input) + list(g.output):
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else -1 for d in dims]

    nodes: list[_Node] = []
    producer: dict[str, int] = {}
    for vi in g.input:
        if vi.name not in init:
            producer[vi.name] = len(nodes)
            nodes.append(_Node("input", f"input {vi.name!r}", attrs={"shape": shapes.get(vi.name, [])[1:] or None}))
    # node k is nodes[len(inputs) + k], in any order the file lists them (a
    # cycle is reported by node name); constants are attributes, not inputs
    for k, node in enumerate(g.node):
        for out in node.output:
            producer.setdefault(out, len(nodes) + k)
    for k, node in enumerate(g.node):
        if node.op_type == "Constant":     # computed from no input: dropped with the dead nodes
            nodes.append(_Node("constant", f"ONNX node {node.name or str(k)!r} (Constant)"))
            continue
        inputs = [producer[x] for x in node.input if x and x in producer and x not in init]
        attrs = _onnx_attrs(node, init, const_values)
        op = _onnx_op(node, init, attrs)
        if op in _RESHAPES:
            attrs = {}
        out = node.output[0] if node.output else ""
        attrs["shape"] = shapes.get(out, [])[1:] or None
        nodes.append(_Node(op, f"ONNX node {node.name or str(k)!r} ({node.op_type})", inputs, attrs))
    outputs = [producer[o.name] for o in g.output if o.name in producer]
    if not outputs:
        raise ArchitectureError("the ONNX graph has no output computed by its nodes")
    return _assemble(nodes, outputs, space)


def _onnx_attrs(node, init, const_values) -> dict[str, Any]:
    from onnx import helper
    attrs: dict[str, Any] = {}
    for a in node.attribute:
        value = helper.get_attribute_value(a)
        if isinstance(value, bytes):
            value = value.decode()
        if not isinstance(value, (int, float, str, list)):
            continue
        name = _ONNX_ATTR_NAMES.get(a.name, a.name)
        if name in _DROPPED_ATTRS or name in ("auto_pad", "transA", "beta"):
            continue
        if name == "padding" and isinstance(value, list) and len(value) % 2 == 0:
            half = len(value) // 2      # ONNX [begin..., end...]: symmetric pads become torch's
            if value[:half] == value[half:]:
                value = value[:half]
        attrs[name] = _canon(value)
    weights = [init[x] for x in node.input[1:] if x in init]
    t = node.op_type
    if t in ("Conv", "ConvTranspose") and weights:
        w = weights[0]
        groups = attrs.get("groups", 1)
        attrs.setdefault("groups", 1)
        attrs.setdefault("stride", 1)
        attrs.setdefault("padding", 0)
        attrs.setdefault("dilation", 1)
        attrs["kernel_size"] = _canon(w[2:])
        if t == "Conv":
            attrs["out_channels"], attrs["in_channels"] = w[0], w[1] * groups
        else:
            attrs["in_channels"], attrs["out_channels"] = w[0], w[1] * groups
        attrs["bias"] = len([x for x in node.input[1:] if x]) > 1
    elif t == "Gemm" and weights:
        w = weights[0]
        trans_b = attrs.pop("transB", 0)
        attrs["in_features"], attrs["out_features"] = (w[1], w[0]) if trans_b else (w[0], w[1])
        attrs["bias"] = len([x for x in node.input[1:] if x]) > 1
        attrs.pop("alpha", None)
    elif t == "BatchNormalization" and weights:
        attrs = {"num_features": weights[0][0], "affine": True, "bias": True}
    elif t.startswith("Reduce"):
        if "dim" not in attrs and len(node.input) > 1 and node.input[1] in const_values:
            attrs["dim"] = _canon(const_values[node.input[1]].tolist())   # opset 18: axes is an input
        attrs["keepdim"] = bool(attrs.pop("keepdims", 1))
    elif t == "Clip":
        lo = next((const_values[x] for x in node.input[1:2] if x in const_values), None)
        hi = next((const_values[x] for x in node.input[2:3] if x in const_values), None)
        attrs.update({"min_val": _canon(lo), "max_val": _canon(hi)})
    elif t == "GlobalAveragePool":
        attrs["output_size"] = 1
    elif t in ("MaxPool", "AveragePool"):
        attrs.setdefault("stride", attrs.get("kernel_size"))
        attrs.setdefault("padding", 0)
        attrs.setdefault("ceil_mode", 0)
        attrs["ceil_mode"] = bool(attrs["ceil_mode"])
        if t == "AveragePool":
            attrs["count_include_pad"] = bool(attrs.get("count_include_pad", 0))
        if t == "MaxPool":
            attrs.setdefault("dilation", 1)
            attrs.pop("storage_order", None)
    elif t in ("Add", "Sub", "Mul", "Div") and len(node.input) == 2:
        for x in node.input:
            if x in const_values:
                v = const_values[x]
                attrs["other"] = _canon(v.item()) if v.size == 1 else None
                if v.size != 1:
                    attrs["other_shape"] = list(v.shape)
    return {k: v for k, v in attrs.items() if v is not None}


def _onnx_op(node, init, attrs) -> str:
    t = node.op_type
    if t == "Clip" and attrs.get("min_val") == 0 and attrs.get("max_val") == 6:
        attrs.clear()
        return "relu6"
    if t == "Dropout":
        return "identity"              # exported models are in eval mode
    op = _ONNX_OPS.get(t, _op_name(t))
    if op in _RANKED:
        rank = None
        if "kernel_size" in attrs:
            rank = len(attrs["kernel_size"]) if isinstance(attrs["kernel_size"], list) else 2
        weights = [init[x] for x in node.input[1:] if x in init]
        if op in ("conv", "convtranspose") and weights:
            rank = len(weights[0]) - 2
        op += f"{rank or 2}d"
    return op


# -- targets and drawing ------------------------------------------------------------
def load(target: str, *, kwargs: Mapping[str, Any] | None = None,
         input_shape: Sequence[int] = (3, 32, 32), space: str = "") -> Architecture:
    """``pkg.module:factory`` (called with ``kwargs``) or a path to an ``.onnx`` file."""
    if target.endswith(".onnx") or os.path.isfile(target):
        if kwargs:
            raise ConfigError("--kwargs applies to a torch factory, not to an ONNX file")
        return from_onnx(target, space=space)
    factory = import_object(target)
    try:
        obj = factory(**dict(kwargs or {})) if callable(factory) and not _is_module(factory) else factory
    except TypeError as exc:
        raise ConfigError(f"calling {target} failed: {exc}") from None
    if not _is_module(obj):
        raise ConfigError(f"{target} gave a {type(obj).__name__}, not a torch.nn.Module")
    return from_module(obj, input_shape, space=space, copy_module=False)


def _is_module(obj) -> bool:
    import torch
    return isinstance(obj, torch.nn.Module)


def import_object(spec: str) -> Any:
    """The object named ``package.module:attribute`` (attribute may be dotted)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"expected 'package.module:name', got {spec!r}")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r} (from {spec!r}): {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


def describe(arch: Architecture) -> dict[str, Any]:
    """The JSON record ``flownas graph`` prints: the canonical form plus its key."""
    record = arch.canonical().to_dict()
    record["key"] = arch.key
    return record


def draw(arch: Architecture, path: str, *, title: str | None = None) -> str:
    """Draw the graph as a PNG, top to bottom by depth; returns the path."""
    import networkx as nx

    from .report import figure

    g = nx.DiGraph()
    depths = arch.depths()
    for i, op in enumerate(arch.ops):
        g.add_node(i, layer=int(depths[i]))
    g.add_edges_from(arch.edges)
    pos = nx.multipartite_layout(g, subset_key="layer", align="horizontal")
    pos = {i: (x, -y) for i, (x, y) in pos.items()}       # inputs at the top
    n_layers = int(depths.max()) + 1
    width = max(4.0, 1.2 * max(list(depths).count(d) for d in set(depths.tolist())))
    fig = figure(min(width, 40), min(1.0 + 0.6 * n_layers, 200))
    ax = fig.subplots()
    labels = {i: _label(arch, i) for i in range(arch.num_nodes)}
    nx.draw_networkx_edges(g, pos, ax=ax, arrows=True, arrowsize=8, width=0.8, edge_color="#888888")
    nx.draw_networkx_labels(g, pos, labels, ax=ax, font_size=7,
                            bbox=dict(boxstyle="round,pad=0.25", fc="#eef3fb", ec="#4a6fa5", lw=0.6))
    ax.set_title(title or f"{arch.space or 'network'}: {arch.num_nodes} nodes, key {arch.key[:12]}", fontsize=9)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def _label(arch: Architecture, i: int) -> str:
    a = arch.attrs[i] if arch.attrs else {}
    parts = [arch.ops[i]]
    if "kernel_size" in a:
        parts.append(f"k{json.dumps(a['kernel_size'])}")
    if a.get("stride", 1) not in (1, None):
        parts.append(f"s{json.dumps(a['stride'])}")
    for key in ("out_channels", "out_features"):
        if key in a:
            parts.append(f"{a[key]}")
    if a.get("groups", 1) not in (1, None):
        parts.append(f"g{a['groups']}")
    return " ".join(parts)
