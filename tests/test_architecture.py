"""The package's layers: each module imports only its own layer or lower ones, and no import cycle exists.

The graph is read from the source (every ``import`` statement, including those inside functions, but not
those under ``if TYPE_CHECKING:``, which never run), so a lazy import that climbs a layer is caught as well
as a top-level one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "neurospec"

# Lowest first. A module may import from its own layer and from any layer before it.
LAYERS: list[tuple[str, ...]] = [
    ("neurospec.version", "neurospec.util"),
    ("neurospec.core", "neurospec.data"),
    ("neurospec.neurons",),
    ("neurospec.measure",),
    ("neurospec.select",),
    ("neurospec.interventions",),
    ("neurospec.results",),
    ("neurospec.evaluate",),
    ("neurospec.train", "neurospec.toy", "neurospec.report", "neurospec.integrations"),
    ("neurospec.verbs",),
    ("neurospec.pipeline",),
    ("neurospec.cli",),
]
# Imports a lower layer makes of a higher one on purpose, each with its reason.
ALLOWED_UPWARD = {
    # a model named toy:NAME is trained on first use: loading resolves it through the toy recipes
    ("neurospec.core.model_sources", "neurospec.toy"),
    ("neurospec.core.provenance", "neurospec.toy"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in ROOT.rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The neurospec modules ``name`` imports, anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only = {id(inner) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                 for inner in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in type_only:   # imports for type annotations only never run
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                target = f"{source}.{alias.name}"
                found.add(target if target in known else source)
    return {target for target in found if target in known and target != name}


def layer_of(name: str) -> int | None:
    for index, layer in enumerate(LAYERS):
        if any(name == prefix or name.startswith(prefix + ".") for prefix in layer):
            return index
    return None


GRAPH = {name: imports_of(name, path, set(modules())) for name, path in modules().items()}


def test_every_module_has_a_layer():
    placed = {name for name in GRAPH if name != "neurospec" and name != "neurospec.moved"}
    assert [name for name in sorted(placed) if layer_of(name) is None] == []


@pytest.mark.parametrize("name", sorted(n for n in GRAPH if n not in ("neurospec", "neurospec.moved")))
def test_imports_stay_in_lower_layers(name):
    upward = sorted(target for target in GRAPH[name]
                    if target not in ("neurospec", "neurospec.moved")
                    and layer_of(target) is not None and layer_of(target) > layer_of(name)
                    and (name, target) not in ALLOWED_UPWARD)
    assert upward == [], f"{name} (layer {layer_of(name)}) imports higher layers: {upward}"


def test_only_the_package_root_imports_the_root():
    """``from neurospec import X`` inside the package would tie every module to the public API's imports."""
    assert sorted(name for name, targets in GRAPH.items() if "neurospec" in targets and name != "neurospec") == []


def test_no_import_cycle():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:   # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in GRAPH:
        if node not in index:
            visit(node)
    assert cycles == []


def test_the_checker_sees_a_cycle_and_an_upward_import():
    """The checks above are not vacuous: a fabricated graph with a cycle and a climb is caught."""
    assert layer_of("neurospec.core.hooks") < layer_of("neurospec.cli.main")
    known = {"neurospec.core.hooks", "neurospec.cli.main"}
    fake = ROOT.parent / "neurospec" / "core" / "hooks.py"
    assert "neurospec.core.sites" in imports_of("neurospec.core.hooks", fake, set(GRAPH))
    assert imports_of("neurospec.core.hooks", fake, known) == set()


def private_imports(path: Path) -> list[str]:
    """``from neurospec.x import _name`` anywhere in ``path``: a module reaching into another's internals."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("neurospec"):
            found += [f"{node.module}.{alias.name}" for alias in node.names
                      if alias.name.startswith("_") and not alias.name.startswith("__")]
    return found


def test_no_private_name_crosses_a_module():
    crossing = {module: names for module, path in modules().items() if (names := private_imports(path))}
    assert crossing == {}


def test_the_private_import_check_sees_one(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from neurospec.measure.stats import _commit\n")
    assert private_imports(sample) == ["neurospec.measure.stats._commit"]
