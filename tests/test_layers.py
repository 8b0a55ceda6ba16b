"""The package's layers: imports flow one way, ``app`` -> ``vision``/``explain``/``evaluation``/
``training`` -> ``models`` -> ``data`` (and the shared leaf modules ``atomic``, ``detectors``,
``options``, ``tta``), as ``ferkit/__init__.py`` says; the four middle layers do not import each other.
Checked on the source, so an import inside a function counts too."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ferkit"
LEAVES = {"atomic", "backend_names", "detectors", "options", "tta"}
RANK = {**{name: 0 for name in LEAVES}, "data": 1, "models": 2, "vision": 3, "explain": 3, "evaluation": 3,
        "training": 3, "app": 4}


ROOT = "ferkit"  # the package itself: its lazy re-exports (EmotionRecognizer, ...) reach into the top layers


def _imported_layers(path: Path) -> set[str]:
    """The top-level ferkit modules ``path`` imports, relative or absolute (``ROOT`` for a name
    taken from the package itself, such as ``from ferkit import EmotionRecognizer``)."""
    layer_depth = len(path.relative_to(PACKAGE).parts) - 1  # 0 for ferkit/x.py, 1 for ferkit/data/x.py
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            absolute = node.level == 0 and node.module and (node.module + ".").startswith("ferkit.")
            if absolute and node.module != "ferkit":
                found.add(node.module.split(".")[1])
            elif node.level > layer_depth and node.module:  # climbs out of its own layer: ..models
                found.add(node.module.split(".")[0])
            elif absolute or (node.level > layer_depth):  # from ferkit import x / from .. import x
                found.update(alias.name if alias.name in RANK else ROOT for alias in node.names
                             if alias.name != "__version__")  # a constant, no re-export
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "ferkit":
                    found.add(parts[1] if len(parts) > 1 else ROOT)
    return found


def test_imports_flow_one_way():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        own = parts[0] if len(parts) > 1 else path.stem
        if own in ("__init__", "__main__"):
            continue  # the package root re-exports and runs the CLI: it sits above every layer
        if own not in RANK:
            wrong.append(f"{path.relative_to(PACKAGE.parent)}: ferkit.{own} has no layer in this test's RANK")
            continue
        for other in _imported_layers(path) - {own}:
            if other == ROOT or (other in RANK and RANK[other] >= RANK[own]):
                wrong.append(f"{path.relative_to(PACKAGE.parent)} imports ferkit.{other}")
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_imports(tmp_path, monkeypatch):
    """The checker itself, on hand-made modules in a copy's layout: every way of climbing is caught."""
    assert _imported_layers(PACKAGE / "app" / "verbs_predict.py") >= {"vision", "tta"}
    assert "models" in _imported_layers(PACKAGE / "explain" / "faces.py")
    fake = tmp_path / "ferkit"
    (fake / "models").mkdir(parents=True)
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    cases = {"from ferkit import app": {"app"}, "from .. import EmotionRecognizer": {ROOT},
             "from ferkit import EmotionRecognizer": {ROOT}, "import ferkit.vision.recognizer as r": {"vision"},
             "import ferkit": {ROOT}, "from ..app.cli import main": {"app"}, "from .. import app": {"app"},
             "from .registry import x": set(), "from .. import __version__": set(), "def f():\n    from ..training import train": {"training"}}
    for source, expected in cases.items():
        module = fake / "models" / "case.py"
        module.write_text(source + "\n")
        assert _imported_layers(module) == expected, source
