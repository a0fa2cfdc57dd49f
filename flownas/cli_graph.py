"""``flownas graph TARGET``: a torch module or an ONNX file as an ``Architecture``,
printed as JSON (canonical node order, with its key) or drawn as a PNG."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .errors import FlownasError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "graph", help="a torch module (package.module:factory) or an ONNX file as an architecture graph",
        description="Trace a torch module (a class or function named package.module:name, called with "
                    "--kwargs) or read an ONNX file, and print the operator graph as flownas JSON "
                    "(canonical node order, with its key), or draw it with --png.")
    p.add_argument("target", help="package.module:factory, or a path to a .onnx file")
    p.add_argument("--kwargs", type=_json_object, default=None, metavar="JSON",
                   help="keyword arguments for the factory, a JSON object")
    p.add_argument("--input-shape", type=_shape, default=(3, 32, 32), metavar="C,H,W",
                   help="one input without the batch dimension (default 3,32,32)")
    p.add_argument("--png", metavar="OUT",
                   help="draw the graph into this PNG file instead of printing JSON; .png is appended to a "
                        "name that does not end in it, and a directory is an error (name a file in it)")
    p.add_argument("--compact", action="store_true", help="JSON on one line")
    p.set_defaults(func=_cmd_graph)


def _cmd_graph(args) -> int:
    from . import graph
    png = png_path(args.png) if args.png else None
    if os.getcwd() not in sys.path:      # modules next to the user, as `python -m` would find them
        sys.path.insert(0, os.getcwd())
    arch = graph.load(args.target, kwargs=args.kwargs, input_shape=args.input_shape)
    if png is not None:
        from .data import save_output
        title = f"{args.target}: {arch.num_nodes} nodes, key {arch.key[:12]}"
        png = save_output(png, "--png", lambda p: graph.draw(arch, str(p), title=title))
        print(f"wrote {png} ({arch.num_nodes} nodes, {arch.num_edges} edges, key {arch.key})")
        return 0
    print(json.dumps(graph.describe(arch), indent=None if args.compact else 1))
    return 0


def png_path(text: str) -> Path:
    """The file ``--png OUT`` writes: OUT, with ``.png`` appended unless it ends in
    it (matplotlib would append it, or take another suffix for another format);
    checked before the module is traced. A directory is an error."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise FlownasError(f"--png {text} is a directory: name a file, e.g. {path / 'graph.png'}")
    if path.suffix.lower() != ".png":
        path = path.with_name(path.name + ".png")
    from .data import check_output
    return check_output(path, "--png")


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, e.g. '{\"width\": 16}'")
    return value


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(x) for x in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 3,32,32, got {text!r}") from None
    if not shape or any(s < 1 for s in shape):
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return shape
