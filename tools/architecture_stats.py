"""Size facts of the package, for docs/architecture.md: modules per folder, lines, the longest functions.

    python tools/architecture_stats.py                 # this checkout's neurospec/
    python tools/architecture_stats.py OTHER/neurospec # another tree (e.g. a git worktree of an older commit)
"""

from __future__ import annotations

import ast
import json
import sys
from collections import Counter
from pathlib import Path


def stats(root: Path) -> dict:
    modules = sorted(root.rglob("*.py"))
    functions = []
    for path in modules:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.append((node.end_lineno - node.lineno + 1, f"{path.relative_to(root.parent)}:{node.name}"))
    functions.sort(reverse=True)
    folders = Counter(str(p.parent.relative_to(root.parent)) for p in modules)
    return {
        "modules": len(modules),
        "top_level_modules": sum(1 for p in modules if p.parent == root and p.name != "__init__.py"),
        "lines": sum(len(p.read_text(encoding="utf-8").splitlines()) for p in modules),
        "largest_modules": sorted(((len(p.read_text(encoding="utf-8").splitlines()), str(p.relative_to(root.parent)))
                                   for p in modules), reverse=True)[:8],
        "functions": len(functions),
        "functions_over_80_lines": sum(1 for length, _ in functions if length > 80),
        "longest_functions": functions[:8],
        "modules_per_folder": dict(sorted(folders.items())),
    }


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "neurospec"
    print(json.dumps(stats(root), indent=1))
