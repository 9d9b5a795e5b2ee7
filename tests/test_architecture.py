"""The import direction of the design: cli → study/worker/report/launch → train, tracking → model, data → spec."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "tornadostudy"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _modules(sub: str = "") -> dict[str, set[str]]:
    root = PACKAGE / sub if sub else PACKAGE
    files = [root] if root.suffix == ".py" else root.rglob("*.py")
    return {str(p.relative_to(PACKAGE)): _imports(p) for p in files}


def _top(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


def test_only_the_tracking_module_imports_mlflow():
    offenders = [m for m, names in _modules().items() if "mlflow" in _top(names) and m != "tracking.py"]
    assert offenders == []


def test_only_the_study_side_imports_optuna():
    offenders = [m for m, names in _modules().items() if "optuna" in _top(names) and not m.startswith("study/")]
    assert offenders == []


def test_lower_layers_do_not_import_upper_layers():
    rules = {
        "train": ("tornadostudy.study", "tornadostudy.tracking", "tornadostudy.cli", "tornadostudy.launch",
                  "tornadostudy.report"),
        "data": ("tornadostudy.study", "tornadostudy.tracking", "tornadostudy.train", "tornadostudy.model",
                 "tornadostudy.cli"),
        "model.py": ("tornadostudy.study", "tornadostudy.tracking", "tornadostudy.train", "tornadostudy.cli"),
        "spec.py": ("tornadostudy.data", "tornadostudy.study", "tornadostudy.train", "tornadostudy.tracking"),
        "tracking.py": ("tornadostudy.study", "tornadostudy.train", "tornadostudy.cli"),
        # The paper's published numbers and the cost model fitted to them: below everything that uses them.
        "paper": ("tornadostudy.study", "tornadostudy.tracking", "tornadostudy.train", "tornadostudy.report",
                  "tornadostudy.data", "tornadostudy.cli", "tornadostudy.launch", "tornadostudy.model"),
    }  # fmt: skip
    for sub, forbidden in rules.items():
        for module, names in _modules(sub).items():
            bad = sorted(n for n in names if n.startswith(forbidden))
            assert not bad, f"{module} imports {bad}"


def test_heavy_libraries_are_imported_lazily():
    heavy = ("tensorflow", "keras", "mlflow", "optuna", "sqlalchemy")
    code = (
        "import sys, tornadostudy, tornadostudy.cli, tornadostudy.spec, tornadostudy.report, tornadostudy.launch\n"
        "import tornadostudy.study.worker, tornadostudy.study.create, tornadostudy.train, tornadostudy.tracking\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
