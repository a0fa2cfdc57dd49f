"""Plain-Python spaces: the declarative cell space (flownas.spaces.custom), the
hand-written example (examples/resnet_space.py), and plug-ins found through the
entry-point group ``flownas.spaces``."""
import os
import re
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from flownas.arch import Architecture
from flownas.cli import main
from flownas.errors import ArchitectureError, ConfigError, NotInSpaceError
from flownas.registry import SPACES, get_space
from flownas.spaces.custom import CellSpace, cell_space
from doc_blocks import fenced_blocks
# the shared conformance suite, run here on spaces registered only for the tests
from test_spaces_conformance import test_the_space_follows_the_rule  # noqa: F401 - collected by pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
from resnet_space import ResNetSpace  # noqa: E402


def no_more_than_two_pools(arch):
    if arch.ops.count("maxpool3x3") > 2:
        return "more than two max-pools"
    return None


TinyCells = cell_space("test-tiny-cells", ("conv3x3", "conv1x1", "maxpool3x3"), num_nodes=3, max_edges=6,
                       rules=(no_more_than_two_pools,), channels=8, stacks=2, register=False)
FixedCells = cell_space("test-fixed-cells", ("conv3x3", "identity"), num_nodes=2, prune=False,
                        max_inputs=2, channels=4, stacks=1, register=False)


@pytest.fixture(scope="module", params=[TinyCells, FixedCells, ResNetSpace], ids=lambda c: c.name)
def space(request):
    return request.param()


# -- the declarative cell space ---------------------------------------------------------
def test_declared_space_knows_its_size_and_members():
    space = TinyCells()
    members = list(space.enumerate())
    assert len(members) == space.size() == len(set(members))
    assert all(m.num_edges <= 6 and m.ops.count("maxpool3x3") <= 2 for m in members)
    assert max(m.num_nodes for m in members) == 5 and min(m.num_nodes for m in members) == 3


def test_dead_nodes_are_pruned_and_strings_are_canonical():
    space = TinyCells()
    # node 2 feeds nothing and node 3 gets no input: both are off every path
    arch = space.from_string("conv3x3,conv1x1,maxpool3x3|0-1,0-2,1-4")
    assert arch.ops == ("input", "conv3x3", "output")
    assert space.to_string(arch) == "conv3x3,conv3x3,conv3x3|0-1,1-4"


@pytest.mark.parametrize("text, reason", [
    ("conv3x3,conv3x3,conv3x3|0-2,2-3", "not reachable"),
    ("maxpool3x3,maxpool3x3,maxpool3x3|0-1,1-2,2-3,3-4", "more than two max-pools"),
    ("conv3x3,conv3x3,conv3x3|0-1,0-2,0-3,1-4,2-4,3-4,0-4", "7 edges, at most 6"),
])
def test_rules_are_named_when_broken(text, reason):
    with pytest.raises(NotInSpaceError, match=reason):
        TinyCells().from_string(text)


def test_a_cycle_is_an_error_naming_its_nodes():
    with pytest.raises(ArchitectureError, match=r"cycle: 1\(conv3x3\) -> 2\(conv1x1\) -> 1\(conv3x3\)"):
        TinyCells().from_string("conv3x3,conv1x1,conv3x3|0-1,1-2,2-1,2-4")


def test_unpruned_space_needs_every_node_and_caps_inputs():
    space = FixedCells()
    assert space.size() == len(list(space.enumerate()))
    assert all(m.num_nodes == 4 for m in space.enumerate())
    with pytest.raises(NotInSpaceError, match="at most 2"):
        space.from_string("conv3x3,identity|0-1,0-2,1-2,0-3,2-3,1-3")


@pytest.mark.parametrize("kwargs, message", [
    (dict(ops=()), "at least one operation"),
    (dict(ops=("conv3x3", "conv3x3")), "twice"),
    (dict(ops=("input", "conv3x3")), "ends"),
    (dict(num_nodes=0), "positive integer"),
    (dict(rules=(lambda a, b: None,)), "function of one architecture"),
])
def test_bad_declarations_are_config_errors(kwargs, message):
    spec = dict(name="bad", ops=("conv3x3",), num_nodes=2, register=False) | kwargs
    with pytest.raises(ConfigError, match=message):
        cell_space(**spec)


def test_unknown_operation_needs_a_builder():
    Custom = cell_space("test-custom-op", ("gelu_block",), num_nodes=1, register=False, channels=4, stacks=1)
    arch = Custom().sample(np.random.default_rng(0))
    with pytest.raises(ConfigError, match="gelu_block"):
        Custom().to_model(arch)
    WithBuilder = cell_space("test-custom-op", ("gelu_block",), num_nodes=1, register=False, channels=4,
                             stacks=1, builders={"gelu_block": lambda c: torch.nn.Sequential(
                                 torch.nn.Conv2d(c, c, 1), torch.nn.GELU())})
    model = WithBuilder().to_model(arch)
    assert model(torch.randn(1, 3, 8, 8)).shape == (1, 10)


def test_declared_space_pickles_for_workers():
    space = TinyCells()
    arch = space.sample(np.random.default_rng(3))
    clone = pickle.loads(pickle.dumps(space))
    assert isinstance(clone, CellSpace) and clone.name == space.name
    assert clone.to_string(arch) == space.to_string(arch)


def test_empty_cell_space_cannot_be_instantiated():
    with pytest.raises(ConfigError, match="cell_space"):
        CellSpace()


# -- the hand-written example --------------------------------------------------------------
def test_resnet_example_decodes_its_chain():
    space = ResNetSpace()
    arch = space.from_string("2x16k3-1x48k5-2x64k3-max")
    assert arch.ops.count("block_k3") == 4 and arch.ops[-2:] == ("pool_max", "output")
    bad = arch.with_ops(arch.ops, [dict(a, width=999) if "width" in a and a.get("stride") == 2 else a
                                   for a in arch.attrs])
    with pytest.raises(NotInSpaceError, match="width 999"):
        space.validate(bad)


# -- registration: by name, and through an installed plug-in ---------------------------------
@pytest.fixture
def fresh_registry(monkeypatch):
    """SPACES as if nothing had been discovered yet; restored afterwards."""
    monkeypatch.setattr(SPACES, "_entries", dict(SPACES._entries))
    monkeypatch.setattr(SPACES, "_discovered", False)
    return SPACES


def test_registered_declaration_is_found_by_name(fresh_registry):
    cell_space("test-registered-cells", ("conv3x3",), num_nodes=2)
    assert "test-registered-cells" in fresh_registry.names()
    assert get_space("test-registered-cells").sample(np.random.default_rng(0)).space == "test-registered-cells"


def _pip_install(src: Path, site: Path) -> None:
    """pip installs the package at ``src`` into the folder ``site``, not into this
    environment; offline: no index, no build isolation (setuptools is here)."""
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(src)], check=True, capture_output=True)


def test_installed_plugin_appears_in_flownas_spaces(tmp_path, monkeypatch, fresh_registry, capsys):
    # a plug-in package, installed by pip (into a folder put on sys.path, not into this environment)
    pytest.importorskip("setuptools")      # pip builds the package with it (no download: no build isolation)
    src = tmp_path / "src"
    (src / "flownas_demo_plugin").mkdir(parents=True)
    (src / "flownas_demo_plugin" / "__init__.py").write_text(textwrap.dedent("""
        from flownas.spaces.custom import cell_space
        DemoCells = cell_space("demo-cells", ("conv3x3", "avgpool3x3"), num_nodes=2,
                               register=False, doc="demo plug-in cells")
    """))
    (src / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "flownas-demo-plugin"
        version = "0.1"

        [project.entry-points."flownas.spaces"]
        demo-cells = "flownas_demo_plugin:DemoCells"
    """))
    site = tmp_path / "site"
    _pip_install(src, site)
    monkeypatch.syspath_prepend(str(site))

    assert main(["spaces", "demo*"]) == 0
    out = capsys.readouterr().out
    assert "demo-cells" in out and "demo plug-in cells" in out
    assert main(["sample", "demo-cells", "-n", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and Architecture.from_json(lines[0]).space == "demo-cells"


def test_the_examples_folder_installs_as_a_plugin(tmp_path):
    """examples/pyproject.toml (docs/custom_spaces.md: `pip install -e examples`):
    a fresh process, which registers nothing in code, knows `resnet` by name."""
    pytest.importorskip("setuptools")
    import shutil
    src = tmp_path / "src"      # a copy, so that the build leaves nothing in examples/
    src.mkdir()
    for name in ("pyproject.toml", "resnet_space.py", "resnet_nni.py"):
        shutil.copy(ROOT / "examples" / name, src / name)
    site = tmp_path / "site"
    _pip_install(src, site)
    entry_points = next(site.glob("flownas_examples-*.dist-info")) / "entry_points.txt"
    assert "resnet = resnet_space:ResNetSpace" in entry_points.read_text()
    script = textwrap.dedent("""
        import sys
        from flownas.cli import main
        sys.exit(main(["spaces", "resnet*"]) or main(["sample", "resnet", "-n", "2", "--seed", "0"]))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(site)}, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].split()[:2] == ["resnet", "1,024"] and len(lines) == 3
    assert Architecture.from_json(lines[1]).space == "resnet"


def test_the_nni_example_imports_nni_without_warnings():
    """docs/custom_spaces.md: nni's torch-version warnings are silenced, also
    when the example imports nni itself (a fresh process: nni not yet imported)."""
    script = textwrap.dedent("""
        import sys, warnings
        sys.path.insert(0, "examples")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import resnet_nni
        for w in caught:
            print(f"{w.filename}: {w.category.__name__}: {w.message}")
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "nni" not in done.stdout, done.stdout


def test_a_plugin_named_like_a_built_in_space_is_ignored_with_a_warning(monkeypatch, fresh_registry):
    """Before: silently shadowed by the built-in."""
    import importlib.metadata

    from flownas.spaces.nb201 import NB201Space
    clash = importlib.metadata.EntryPoint("nb201", "flownas.toys:ToySpace", "flownas.spaces")
    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group: [clash] if group == "flownas.spaces" else real(group=group))
    with pytest.warns(RuntimeWarning, match=r"plug-in 'nb201' \(flownas.toys:ToySpace\) is ignored: 'nb201' is "
                                            r"flownas.spaces.nb201.NB201Space \(give the plug-in another name\)"):
        assert fresh_registry.get("nb201") is NB201Space


def test_a_broken_plugin_is_named_and_the_other_spaces_still_work(monkeypatch, fresh_registry, capsys):
    import importlib.metadata
    broken = importlib.metadata.EntryPoint("broken-cells", "flownas_no_such_plugin:Cells", "flownas.spaces")
    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group: [broken] if group == "flownas.spaces" else real(group=group))
    monkeypatch.setattr(fresh_registry, "_broken", {})
    with pytest.warns(RuntimeWarning, match="plug-in 'broken-cells' failed to load"):
        assert "nb201" in fresh_registry.names()
    assert main(["sample", "nb201", "-n", "1"]) == 0
    capsys.readouterr()
    assert main(["sample", "broken-cells"]) == 1
    err = capsys.readouterr().err
    assert "space 'broken-cells' is an installed plug-in that failed to load" in err
    assert "ModuleNotFoundError" in err and "flownas_no_such_plugin" in err


# -- docs/custom_spaces.md, executed ------------------------------------------------------------


def test_the_custom_spaces_guide_runs(nni_import_warnings, fresh_registry, tmp_path, monkeypatch, capsys):
    """Every block, in order, in a scratch directory that sees the examples
    (so the searches' run directories land there): the two forms of the
    space, a predictor-guided search of each with the training evaluator on
    cifar10-mini, their ledgers and reports."""
    import shlex
    import warnings

    from flownas.store import Ledger
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT))
    namespace: dict = {"__name__": "guide"}
    ran = {"python": 0, "bash": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")        # training may warn; nni's import is checked in a fresh process below
        for lang, code in fenced_blocks((ROOT / "docs" / "custom_spaces.md").read_text()):
            if lang == "python":
                exec(compile(code, "docs/custom_spaces.md", "exec"), namespace)
            elif lang == "bash":
                for line in code.splitlines():
                    argv = shlex.split(line, comments=True)
                    if not argv:
                        continue
                    assert argv[0] == "flownas", line
                    assert main(argv[1:]) == 0, line
            else:
                continue
            ran[lang] += 1
    assert ran["python"] >= 7 and ran["bash"] >= 3
    out = capsys.readouterr().out
    assert "resnet-nni" in out and (tmp_path / "resnet.png").is_file()
    assert namespace["tiny"].ops == ("input", "conv2d", "relu", "mean", "add", "mean", "linear", "output")
    for name in ("resnet", "resnet-nni"):
        run = tmp_path / "runs" / f"{name}-search"
        assert {"ledger.db", "config.yaml", "history.csv", "best.json", "best_so_far.png",
                "predicted_vs_true.png"} <= {p.name for p in run.iterdir()}
        ledger = Ledger.open(run / "ledger.db", f"{name}-search")
        records = ledger.records()
        ledger.close()
        assert len(records) == 4 and all(r.state == "complete" and r.arch.space == name for r in records)
        assert all(0 <= r.metrics["val_acc"] <= 100 and r.metrics["epochs"] == 1 for r in records)
        # the first two are random, the others chosen by the fitted predictor
        assert ["predicted" in r.info for r in records] == [False, False, True, True]


# -- walkthrough X7: plug-ins that are not space classes, or cannot be built -------------------
NOT_A_CLASS = 42


class NeedsArgs(TinyCells):
    def __init__(self, x):
        self.x = x


class NotASpace:
    """a class, but no SearchSpace"""


def _plugins(monkeypatch, registry, **targets):
    import importlib.metadata
    eps = [importlib.metadata.EntryPoint(name, f"test_custom_spaces:{target}", "flownas.spaces")
           for name, target in targets.items()]
    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group: eps if group == "flownas.spaces" else real(group=group))
    monkeypatch.setattr(registry, "_broken", {})


def test_a_plugin_that_is_no_space_class_is_refused_when_loaded(monkeypatch, fresh_registry, capsys):
    _plugins(monkeypatch, fresh_registry, **{"int-space": "NOT_A_CLASS", "plain-class": "NotASpace",
                                              "args-cells": "NeedsArgs"})
    with pytest.warns(RuntimeWarning) as caught:
        names = fresh_registry.names()
    warned = sorted(str(w.message) for w in caught)
    assert len(warned) == 2
    assert "plug-in 'int-space' failed to load" in warned[0] and "must name a SearchSpace subclass, it names int 42" \
        in warned[0]
    assert "plug-in 'plain-class' failed to load" in warned[1] and "it names the class test_custom_spaces.NotASpace" \
        in warned[1]
    assert "int-space" not in names and "plain-class" not in names and "args-cells" in names
    assert main(["sample", "plain-class"]) == 1
    assert "space 'plain-class' is an installed plug-in that failed to load" in capsys.readouterr().err
    # the listing names the space it cannot build, and goes on to the others
    assert main(["spaces"]) == 0
    out = capsys.readouterr().out
    assert "args-cells     (cannot be built: TypeError: NeedsArgs.__init__() missing 1 required positional" in out
    assert out.splitlines()[-1].startswith("transnas_micro")
    assert main(["spaces", "--check", "args-cells"]) == 1
    out, err = capsys.readouterr()
    assert "args-cells: cannot be built without arguments" in out
    assert err.strip() == "flownas: error: space 'args-cells' cannot be built (above)"


# -- walkthrough X8, X9: a space of your own whose sample / mutate / from_params misbehave -------
class BrokenCells(TinyCells):
    """TinyCells with one method broken (``how``), as written outside flownas."""
    how = None
    name = "test-broken-cells"

    def sample(self, rng):
        arch = super().sample(rng)
        if self.how == "none":
            return None
        if self.how == "str":
            return "abcd"
        if self.how == "raises":
            return 1 / 0
        if self.how == "flownas-error":
            raise NotInSpaceError(self.name, "my own refusal")
        if self.how == "bad-op":
            return arch.with_ops(arch.ops[:1] + ("zzz",) + arch.ops[2:])
        return arch

    def mutate(self, arch, rng):
        if self.how == "mutate-raises":
            raise KeyError("boom")
        return super().mutate(arch, rng)

    def from_params(self, params):
        if self.how == "params-bad-op":
            arch = super().from_params(params)
            return arch.with_ops(arch.ops[:1] + ("zzz",) + arch.ops[2:])
        return super().from_params(params)


def broken(how):
    return type(f"Broken_{how}", (BrokenCells,), {"how": how})()


@pytest.mark.parametrize("how, method, message", [
    ("none", "sample", "sample() returned NoneType, not an Architecture"),
    ("str", "sample", "sample() returned str, not an Architecture"),
    ("raises", "sample", "sample() raised ZeroDivisionError: division by zero"),
    ("bad-op", "sample", "sample() returned a non-member: unknown op 'zzz' at node 1"),
    ("mutate-raises", "mutate", "mutate() raised KeyError: 'boom'"),
])
def test_a_broken_method_is_an_error_naming_the_space_and_method(how, method, message):
    from flownas.spaces.base import SpaceMethodError
    space = broken(how)
    rng = np.random.default_rng(0)
    with pytest.raises(SpaceMethodError) as exc:
        space.mutate(TinyCells().sample(rng).with_space(space.name), rng) if method == "mutate" else space.sample(rng)
    assert str(exc.value).startswith(f"space 'test-broken-cells': {message}")
    assert str(exc.value).endswith("(flownas spaces --check test-broken-cells checks the space)")
    if "raise" in message:
        assert isinstance(exc.value.__cause__, (ZeroDivisionError, KeyError))


def test_flownas_errors_of_a_space_pass_unchanged_and_from_params_refuses_a_non_member():
    rng = np.random.default_rng(0)
    with pytest.raises(NotInSpaceError, match="^not in space 'test-broken-cells': my own refusal$"):
        broken("flownas-error").sample(rng)
    space = broken("params-bad-op")
    params = space.to_params(space.sample(rng))
    # from_params refuses an assignment with ArchitectureError (Optuna's strategy skips it): a non-member is one
    with pytest.raises(ArchitectureError, match="space 'test-broken-cells': from_params\\(\\) returned a non-member"):
        space.from_params(params)


def test_the_search_stops_at_the_first_broken_proposal_without_evaluating_it():
    from flownas.registry import STRATEGIES
    from flownas.search.loop import Budget, SearchLoop
    from flownas.spaces.base import SpaceMethodError
    from flownas.store import Ledger
    from flownas.toys import ToyEvaluator

    class Counting(ToyEvaluator):
        calls = 0

        def evaluate(self, arch, fidelity=None):
            Counting.calls += 1
            return super().evaluate(arch, fidelity)

    for how, message in [("bad-op", "sample() returned a non-member: unknown op 'zzz'"),
                         ("none", "sample() returned NoneType")]:
        space = broken(how)
        loop = SearchLoop(space, STRATEGIES.get("random")(space, seed=0), Counting(),
                          Ledger.create(None, "t", {}), budget=Budget(20))
        with pytest.raises(SpaceMethodError, match=re.escape(message)):
            loop.run()
    assert Counting.calls == 0


def test_spaces_built_into_flownas_are_not_rechecked():
    from flownas.spaces.nb201 import NB201Space
    assert not getattr(NB201Space.sample, "_flownas_checked", False)     # their members are valid by construction
    assert not getattr(TinyCells.sample, "_flownas_checked", False)      # declared by flownas.spaces.custom
    assert BrokenCells.sample._flownas_checked and BrokenCells.mutate._flownas_checked
    assert BrokenCells.from_params._flownas_checked
    assert not getattr(BrokenCells.validate, "_flownas_checked", False)


def test_a_space_whose_normalize_completes_what_sample_returns_still_searches():
    """A user's NB101 variant whose sample leaves dead vertices for normalize() to prune (as NB101's own
    normalize does): strategies normalize what they propose, so the check validates the normalized form."""
    from flownas.arch import Architecture
    from flownas.registry import STRATEGIES
    from flownas.spaces.nb101 import NB101Space

    class Unpruned(NB101Space):
        name = "test-unpruned-101"

        def sample(self, rng):
            while True:
                upper = np.triu(rng.integers(0, 2, (7, 7)), 1)
                ops = ["input", *rng.choice(["conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"], 5), "output"]
                arch = Architecture.from_edges(ops, [(i, j) for i in range(7) for j in range(7) if upper[i, j]],
                                               self.name)
                try:
                    pruned = self.normalize(arch)
                    self.validate(pruned)
                except ArchitectureError:
                    continue
                if pruned.num_nodes < arch.num_nodes:   # a dead vertex left for normalize
                    return arch

    space = Unpruned()
    strategy = STRATEGIES.get("random")(space, seed=0)
    assert len({a.key for a in (strategy.ask(1)[0] for _ in range(5))}) == 5
