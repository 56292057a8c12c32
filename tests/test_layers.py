"""The import map has no back edges: a lower layer never imports a higher one, even lazily
inside a function (the three circles the design notes named are kept untied)."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "aerec"

# module -> packages/modules it must never import
FORBIDDEN = {
    "io": ["aerec.models", "aerec.serve", "aerec.cli", "aerec.runner", "aerec.bench"],
    "by_id": ["aerec.io", "aerec.models", "aerec.serve", "aerec.cli", "aerec.runner", "aerec.bench"],
    "model_registry": ["aerec.io", "aerec.models.base"],
    "run_spec": ["aerec.runner", "aerec.runs", "aerec.bench", "aerec.cli", "aerec.serve"],
    "runs": ["aerec.runner", "aerec.models", "aerec.bench", "aerec.cli"],
    "data/cache": ["aerec.data.readers"],
    "distributed": ["aerec.models.neural", "aerec.models.training", "aerec.runner", "aerec.bench"],
    "models/base": ["aerec.models.neural", "aerec.models.training", "aerec.runner"],
    "errors": ["aerec"],
    "fsutil": ["aerec.models", "aerec.io", "aerec.data"],
}


def imported(path: Path) -> set[str]:
    """Every aerec module named by an import anywhere in the file (lazy ones included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)  # from aerec import models
    return {n for n in names if n.startswith("aerec")}


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_no_back_edges(module):
    path = SRC / f"{module}.py"
    bad = sorted(n for n in imported(path) for f in FORBIDDEN[module] if n == f or n.startswith(f + "."))
    assert not bad, f"aerec.{module.replace('/', '.')} imports {bad}"


def test_the_checker_sees_lazy_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def load():\n    from aerec import models\n    import aerec.data.readers\n")
    assert {"aerec.models", "aerec.data.readers"} <= imported(f)
