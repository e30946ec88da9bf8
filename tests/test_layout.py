"""The package's layout rules (README, "How the code is organised"): each stage imports only
from the stages before it and the shared modules; the on-disk contract and the GPU path stay
free of the preprocessing libraries; modules stay small; nothing outside ``serve/`` reads
the Dataset's private state."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import ROOT

PACKAGE = ROOT / "src" / "era5cache"
SHARED = {"errors", "grid", "timeaxis", "process", "__init__"}
# each stage may import the ones listed before it (and the shared modules)
ORDER = ["config", "read", "regrid", "format", "store", "serve", "train", "sample", "bench",
         "cli"]
NO_HEAVY = {"format", "serve", "config", "train"}  # no zarr, dask, distributed, netCDF4


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        yield rel, ast.parse(path.read_text())


def _imports(rel: Path, tree: ast.AST):
    """(module of era5cache imported, or a top-level library name, line) for each import."""
    package = [p for p in rel.parts[:-1]]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = [*base, *(node.module.split(".") if node.module else [])]
                names = [target] if node.module else [[*base, a.name] for a in node.names]
                for t in names:
                    yield "era5cache", t, node.lineno
            elif node.module.startswith("era5cache"):
                yield "era5cache", node.module.split(".")[1:], node.lineno
            else:
                yield node.module.split(".")[0], None, node.lineno
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("era5cache."):
                    yield "era5cache", a.name.split(".")[1:], node.lineno
                else:
                    yield a.name.split(".")[0], None, node.lineno


def _stage(parts: list[str]) -> str | None:
    return parts[0] if parts and parts[0] in ORDER else None


def test_imports_point_downstream_only():
    bad = []
    for rel, tree in _modules():
        here = _stage(list(rel.parts[:-1]))
        for lib, target, line in _imports(rel, tree):
            if lib != "era5cache" or here is None:
                continue
            there = _stage(target)
            if there is not None and ORDER.index(there) > ORDER.index(here):
                bad.append(f"{rel}:{line} imports era5cache.{'.'.join(target)}")
    assert bad == []


def test_top_level_is_shared_modules_only():
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top == SHARED and len(top) <= 10
    stages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert set(ORDER) <= stages


@pytest.mark.parametrize("stage", sorted(NO_HEAVY))
def test_contract_and_gpu_path_never_import_the_preprocessing_libraries(stage):
    heavy = {"zarr", "dask", "distributed", "netCDF4"}
    found = [f"{rel}:{line} {lib}" for rel, tree in _modules() if rel.parts[0] == stage
             for lib, _, line in _imports(rel, tree) if lib in heavy]
    assert found == []


def test_modules_stay_small():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 450}
    assert long == {}


def test_no_private_dataset_state_read_outside_serve():
    """``ds._x`` on a Dataset-looking name (``ds``, ``dataset``, ``self.train_ds``...)."""
    bad = []
    for rel, tree in _modules():
        if rel.parts[0] == "serve":
            continue
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                owner = node.value
                name = (owner.id if isinstance(owner, ast.Name)
                        else owner.attr if isinstance(owner, ast.Attribute) else "")
                if name in ("ds", "dataset") or name.endswith("_ds"):
                    bad.append(f"{rel}:{node.lineno} {name}.{node.attr}")
    assert bad == []


def test_cited_contracts_are_in_the_repository():
    """Docstrings, the README and the recipes cite ``docs/contracts.md`` section N, which
    exists; nothing cites the design notes outside the repository."""
    import re

    contracts = (ROOT / "docs" / "contracts.md").read_text()
    sections = set(re.findall(r"^## (\d+)\.", contracts, flags=re.MULTILINE))
    texts = [*PACKAGE.rglob("*.py"), ROOT / "README.md", *(ROOT / "pipeline").glob("*.yaml")]
    cited = set()
    for path in texts:
        text = re.sub(r"\s+", " ", path.read_text())
        assert "DESIGN.md" not in text, path
        cited |= set(re.findall(r"docs/contracts\.md section (\d+)", text))
    assert cited and cited <= sections, sorted(cited - sections)


def _functions():
    for rel, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield rel, node


def test_functions_stay_short():
    """At most 60 lines a function outside ``bench/`` (the benchmarks' reports excepted)."""
    long = [f"{rel}:{fn.lineno} {fn.name} ({fn.end_lineno - fn.lineno + 1} lines)"
            for rel, fn in _functions()
            if rel.parts[0] != "bench" and fn.end_lineno - fn.lineno + 1 > 60]
    assert long == []


def test_pipeline_functions_take_few_parameters():
    """At most 7 parameters (``self`` not counted) in ``read/``, ``regrid/``, ``format/``
    and ``store/``: more travel together in a frozen settings object."""
    wide = []
    for rel, fn in _functions():
        a = fn.args
        names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
        names += [x.arg for x in (a.vararg, a.kwarg) if x is not None]
        n = len(names) - (names[:1] in (["self"], ["cls"]))
        if rel.parts[0] in ("read", "regrid", "format", "store") and n > 7:
            wide.append(f"{rel}:{fn.lineno} {fn.name} ({n} parameters)")
    assert wide == []


def _mutable(value: ast.expr) -> bool:
    """A module-level value that can change: a list, dict or set (literal, comprehension or
    call), or an instance made by a call other than a known immutable (frozen dataclasses,
    compiled patterns, tuples, frozensets)."""
    if isinstance(value, (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp,
                          ast.SetComp)):
        return True
    if isinstance(value, ast.Call):
        name = ast.unparse(value.func)
        return name.split(".")[-1] in ("list", "dict", "set", "OrderedDict", "defaultdict",
                                       "Counter", "Lock", "RLock", "local", "deque")
    return False


def test_no_module_state_in_read_and_store():
    """``read/`` and ``store/`` keep no module-level mutable state (no caches, registries or
    settings in globals; ``global`` never assigned): per-worker state lives in a Dask
    ``WorkerPlugin``, per-job state in the job's objects."""
    bad = []
    for rel, tree in _modules():
        if rel.parts[0] not in ("read", "store"):
            continue
        for node in tree.body:
            targets = (node.targets if isinstance(node, ast.Assign) else
                       [node.target] if isinstance(node, ast.AnnAssign) and node.value else [])
            if targets and _mutable(node.value):
                bad.append(f"{rel}:{node.lineno} {ast.unparse(targets[0])}")
        bad += [f"{rel}:{n.lineno} global {', '.join(n.names)}" for n in ast.walk(tree)
                if isinstance(n, ast.Global)]
    assert bad == []


NETCDF_ATTRS = {"_FillValue"}  # a netCDF variable attribute, not a private name


def test_tests_use_public_names_only():
    """No test imports a private name from the package, or reads or patches one (``x._y``
    on an object of the package; Python's own dunders and other libraries' names aside)."""
    bad = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("era5cache"):
                bad += [f"{path.name}:{node.lineno} {a.name}" for a in node.names
                        if a.name.startswith("_")]
            elif (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                  and not node.attr.startswith("__") and node.attr not in NETCDF_ATTRS):
                bad.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
            elif (isinstance(node, ast.Call) and ast.unparse(node.func).endswith("setattr")
                  and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
                  and str(node.args[1].value).startswith("_")):
                bad.append(f"{path.name}:{node.lineno} setattr {node.args[1].value}")
    assert bad == []
