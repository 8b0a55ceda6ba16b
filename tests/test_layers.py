"""The package's layers: imports flow one way, ``app`` -> ``vision``/``explain``/``evaluation``/
``training`` -> ``models`` -> ``data`` (and the shared leaf modules ``atomic``, ``detectors``,
``options``, ``tta``), as ``ferkit/__init__.py`` says; the four middle layers do not import each other.
Checked on the source, so an import inside a function counts too."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ferkit"
LEAVES = {"atomic", "detectors", "options", "tta"}
RANK = {**{name: 0 for name in LEAVES}, "data": 1, "models": 2, "vision": 3, "explain": 3, "evaluation": 3,
        "training": 3, "app": 4}


def _imported_layers(path: Path) -> set[str]:
    """The top-level ferkit modules ``path`` imports, relative or absolute."""
    layer_depth = len(path.relative_to(PACKAGE).parts) - 1  # 0 for ferkit/x.py, 1 for ferkit/data/x.py
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and node.module.startswith("ferkit."):
                found.add(node.module.split(".")[1])
            elif node.level > layer_depth:  # climbs out of its own layer: ..models, or from .. import x
                if node.module:
                    found.add(node.module.split(".")[0])
                else:
                    found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("ferkit."))
    return found


def test_imports_flow_one_way():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        own = parts[0] if len(parts) > 1 else path.stem
        if own not in RANK:
            continue  # __init__.py, __main__.py of the package root
        for other in _imported_layers(path) - {own}:
            if other in RANK and RANK[other] >= RANK[own]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)} imports ferkit.{other}")
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_imports():
    """The checker itself: a module that climbs to a sibling or an upper layer is caught."""
    assert _imported_layers(PACKAGE / "app" / "verbs_predict.py") >= {"vision", "tta"}
    assert "models" in _imported_layers(PACKAGE / "explain" / "faces.py")
