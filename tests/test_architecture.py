"""The import direction of the design (docs/architecture.md): every part of the package has its layer."""

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


def test_only_the_tracker_imports_mlflow():
    offenders = [m for m, names in _modules().items() if "mlflow" in _top(names) and m != "tracking/tracker.py"]
    assert offenders == []


def test_only_the_study_side_imports_optuna():
    offenders = [m for m, names in _modules().items() if "optuna" in _top(names) and not m.startswith("study/")]
    assert offenders == []


# Each part of the package and what it must not import: imports go one way,
# cli → cluster → report, study → tracking, train → model, data, paper → spec, errors, urls.
LAYERS = {
    "cli": (),
    "cluster": ("tornadostudy.cli",),
    "report": (
        "tornadostudy.cli",
        "tornadostudy.cluster",
        "tornadostudy.study",
        "tornadostudy.train",
        "tornadostudy.tracking",
    ),
    "study": ("tornadostudy.cli", "tornadostudy.cluster", "tornadostudy.report"),
    "tracking": (
        "tornadostudy.cli",
        "tornadostudy.cluster",
        "tornadostudy.report",
        "tornadostudy.study",
        "tornadostudy.train",
        "tornadostudy.data",
        "tornadostudy.model",
        "tornadostudy.paper",
    ),
    "train": (
        "tornadostudy.cli",
        "tornadostudy.cluster",
        "tornadostudy.report",
        "tornadostudy.study",
        "tornadostudy.tracking",
    ),
    "model.py": (
        "tornadostudy.cli",
        "tornadostudy.cluster",
        "tornadostudy.report",
        "tornadostudy.study",
        "tornadostudy.tracking",
        "tornadostudy.train",
    ),
    "data": (
        "tornadostudy.cli",
        "tornadostudy.cluster",
        "tornadostudy.report",
        "tornadostudy.study",
        "tornadostudy.tracking",
        "tornadostudy.train",
        "tornadostudy.model",
        "tornadostudy.paper",
    ),
    "paper": (
        "tornadostudy.cli",
        "tornadostudy.cluster",
        "tornadostudy.report",
        "tornadostudy.study",
        "tornadostudy.tracking",
        "tornadostudy.train",
        "tornadostudy.data",
        "tornadostudy.model",
    ),
    "spec.py": (
        "tornadostudy.cli",
        "tornadostudy.cluster",
        "tornadostudy.report",
        "tornadostudy.study",
        "tornadostudy.tracking",
        "tornadostudy.train",
        "tornadostudy.data",
        "tornadostudy.model",
        "tornadostudy.paper",
    ),
}


def test_every_part_of_the_package_has_a_layer():
    parts = {p.name for p in PACKAGE.iterdir() if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"}
    base = {"__init__.py", "__main__.py", "errors.py", "urls.py"}  # below everything
    assert parts - base == set(LAYERS), "a new module or subpackage needs its place in LAYERS"


def test_lower_layers_do_not_import_upper_layers():
    for sub, forbidden in LAYERS.items():
        for module, names in _modules(sub).items():
            bad = sorted(n for n in names if forbidden and n.startswith(forbidden))
            assert not bad, f"{module} imports {bad}"


def test_no_import_cycles_between_modules():
    graph = {}
    for module, names in _modules().items():
        dotted = "tornadostudy." + module.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        graph[dotted] = {n for n in names if n.startswith("tornadostudy.")}
    modules = set(graph)

    def resolve(name):  # "from tornadostudy.x import y" names the module x (or x's package)
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    edges = {m: {resolve(n) for n in deps} - {m, "tornadostudy", ""} for m, deps in graph.items()}
    # A package's __init__ re-exporting its own modules is not a cycle of design.
    edges = {m: {d for d in ds if not m.startswith(d + ".") and not d.startswith(m + ".")} for m, ds in edges.items()}
    seen, stack = set(), []

    def visit(node, path):
        if node in path:
            raise AssertionError("import cycle: " + " → ".join([*path[path.index(node) :], node]))
        if node in seen:
            return
        seen.add(node)
        for nxt in edges.get(node, ()):
            visit(nxt, [*path, node])

    for module in sorted(edges):
        visit(module, stack)


def test_heavy_libraries_are_imported_lazily():
    heavy = ("tensorflow", "keras", "mlflow", "optuna", "sqlalchemy")
    code = (
        "import sys, tornadostudy, tornadostudy.cli, tornadostudy.spec, tornadostudy.report\n"
        "import tornadostudy.cluster.launch, tornadostudy.cluster.submit, tornadostudy.paper.profile\n"
        "import tornadostudy.study.worker, tornadostudy.study.create, tornadostudy.train, tornadostudy.tracking\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
