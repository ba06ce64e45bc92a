"""The codebase's shape, as README's Layout describes it: packages import downward only
(models <- explorer <- pages; training and sidefiles beside the scripts), nothing imports
scripts/, no module edits sys.path (pyproject.toml installs the packages), and no module of the
packages or scripts outgrows 500 lines."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("models", "explorer", "training", "sidefiles")
# what each may import of the project's own packages (the arrows point down)
MAY_IMPORT = {"models": {"models"}, "explorer": {"models", "explorer"},
              "training": {"models", "explorer", "training"}, "sidefiles": {"models", "explorer", "sidefiles"},
              "scripts": {"models", "explorer", "training", "sidefiles"}}
SCRIPTS = {p.stem for p in (REPO / "scripts").glob("*.py")}


def sources(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (REPO / f).rglob("*.py"))


def imported(path: Path) -> set[str]:
    """Top-level names of the modules a file imports (absolute imports; relative ones are its own package's)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("folder", list(MAY_IMPORT))
def test_imports_point_down(folder):
    own = set(PACKAGES)
    bad = {str(p.relative_to(REPO)): sorted((imported(p) & own) - MAY_IMPORT[folder]) for p in sources(folder)}
    assert not {k: v for k, v in bad.items() if v}


# bench_serve.py drives the app with the tests' Chromium helpers (tests/browser.py) and deploy/serve.py,
# which are folders of files, not packages
PATH_EDITS_ALLOWED = {"bench/bench_serve.py"}


def test_nothing_imports_scripts_and_nothing_edits_sys_path():
    for p in sources(*PACKAGES, "scripts", "bench", "pages") + [REPO / "app.py"]:
        rel = str(p.relative_to(REPO))
        assert not imported(p) & ((SCRIPTS | {"scripts"}) - {p.stem}), f"{rel} imports a script"
        assert rel in PATH_EDITS_ALLOWED or "sys.path" not in p.read_text(), f"{rel} edits sys.path"


def test_no_module_over_500_lines():
    long = {str(p.relative_to(REPO)): n for p in sources(*PACKAGES, "scripts")
            if (n := len(p.read_text().splitlines())) > 500}
    assert not long
