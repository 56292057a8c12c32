"""Optional dependencies: checked up front by bench/train/tune, one line and exit 2, before any work."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import block_interactions, write_csv

from aerec import deps, models
from aerec.bench import suites
from aerec.cli import main
from aerec.errors import AerecError

BIG_BLOCKS = (30, 24, 18)


def hide(monkeypatch, *modules):
    """Make `import m` fail for each module, as if it were not installed."""
    for m in modules:
        for name in [n for n in sys.modules if n == m or n.startswith(m + ".")]:
            monkeypatch.delitem(sys.modules, name)
        monkeypatch.setitem(sys.modules, m, None)


@pytest.fixture
def no_data(monkeypatch):
    """Any attempt to load a data set fails the test: the check must come first."""
    import aerec.data

    def boom(*a, **k):
        raise AssertionError("data was loaded before the dependency check")

    monkeypatch.setattr(aerec.data, "load", boom)


@pytest.fixture(scope="module")
def implicit_csv(tmp_path_factory):
    return write_csv(block_interactions(block_users=BIG_BLOCKS), tmp_path_factory.mktemp("data") / "blocks.csv")


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_require_returns_the_module_or_names_the_extra(monkeypatch):
    assert deps.require("json", "core") is sys.modules["json"]
    hide(monkeypatch, "threadpoolctl")
    with pytest.raises(deps.MissingDependency) as e:
        deps.require("threadpoolctl", "peers", "model 'wmf'")
    assert str(e.value) == "model 'wmf' needs threadpoolctl: pip install 'aerec[peers]'"
    assert isinstance(e.value, AerecError) and e.value.exit_code == 2


def test_check_reports_every_missing_module_in_one_line(monkeypatch):
    hide(monkeypatch, "implicit", "threadpoolctl", "sklearn")
    with pytest.raises(deps.MissingDependency) as e:
        deps.check(models.get("pop"), models.get("wmf"), models.get("slim"))
    msg = str(e.value)
    assert msg == ("model 'wmf' needs implicit and threadpoolctl, model 'slim' needs scikit-learn: "
                   "pip install 'aerec[peers]'")
    deps.check(models.get("pop"), models.get("multvae"))  # nothing optional: passes


def test_a_library_missing_its_own_dependency_is_named(monkeypatch):
    class Needy:
        name = "needy"
        requires = (("json", "x"),)

    def fake_import(name, *a, **k):
        raise ModuleNotFoundError("No module named 'threadpoolctl'", name="threadpoolctl")

    monkeypatch.setattr(importlib, "import_module", fake_import)
    with pytest.raises(deps.MissingDependency, match="model 'needy' needs threadpoolctl: pip install 'aerec\\[x\\]'"):
        deps.check(Needy)


def test_fit_checks_before_training(monkeypatch):
    hide(monkeypatch, "threadpoolctl")
    x = sp.random(20, 10, density=0.3, format="csr", random_state=0, dtype=np.float32)
    with pytest.raises(deps.MissingDependency, match="model 'wmf' needs threadpoolctl"):
        models.create("wmf").fit(x)


@pytest.mark.parametrize("argv", [
    ["bench", "--models", "pop,wmf", "--datasets", "ml-100k"],
    ["train", "wmf", "--dataset", "ml-100k", "--protocol", "strong"],
    ["tune", "wmf", "--dataset", "ml-100k", "--trials", "1"],
])
def test_commands_fail_up_front_with_one_line(argv, capsys, monkeypatch, tmp_path, no_data):
    hide(monkeypatch, "implicit")
    out_dir = tmp_path / "out"
    flag = ["--out", out_dir / "best.toml"] if argv[0] == "tune" else ["--out", out_dir]
    code, out, err = run_cli(capsys, *argv, *flag)
    assert code == 2
    assert err.strip() == "error: model 'wmf' needs implicit: pip install 'aerec[peers]'"
    assert not out_dir.exists()  # no folder, no cell: nothing ran


def test_bench_checks_before_any_cell(tmp_path, monkeypatch):
    from aerec.bench import run_bench

    loaded = []
    hide(monkeypatch, "sklearn")
    with pytest.raises(deps.MissingDependency, match="model 'slim' needs scikit-learn"):
        run_bench(tmp_path / "b", suite="quick", datasets=["x"], models=["pop", "slim"], folds=3,
                  loader=lambda name: loaded.append(name))
    assert loaded == [] and not (tmp_path / "b").exists()


# Modules a model may import without declaring them: the standard library and the core dependencies.
CORE = {"numpy", "scipy", "pandas", "pyarrow", "click", "tqdm", "safetensors", "torch", "matplotlib", "aerec"}
SHIPS_WITH = {"joblib": "sklearn"}  # scikit-learn depends on joblib


def _imports(module) -> set[str]:
    """Top-level names a module imports anywhere (also inside functions) or asks deps.require for."""
    found = set()
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "require"
              and node.args and isinstance(node.args[0], ast.Constant)):
            found.add(node.args[0].value.split(".")[0])
    return found - set(sys.stdlib_module_names) - CORE


@pytest.mark.parametrize("name", models.names())
def test_every_optional_import_of_a_model_is_declared(name):
    cls = models.get(name)
    declared = {m.split(".")[0] for m, _ in cls.requires}
    optional = {SHIPS_WITH.get(m, m) for m in _imports(sys.modules[cls.__module__])}
    assert optional <= declared, f"{name} imports {sorted(optional - declared)} without listing them in requires"


@pytest.mark.parametrize("name", list(suites.SUITES["quick"]))
def test_smoke_budget_is_a_valid_and_smaller_config(name):
    quick = suites.SUITES["quick"][name]
    smoke = suites.smoke_config(name, quick)
    model = models.create(name, smoke)  # validates, e.g. RaCT's phases adding up
    fields = {f.name for f in dataclasses.fields(model.Config)}
    if "epochs" in fields:
        assert 1 <= model.config.epochs <= 3
