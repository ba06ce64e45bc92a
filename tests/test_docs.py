"""The README stays true: its zoo table is what scripts/zoo_table.py makes from the cards."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

from sidefiles import zoo_table


def test_readme_zoo_table_is_current():
    readme = (REPO / "README.md").read_text()
    assert zoo_table.render(readme, zoo_table.table()) == readme, "run python scripts/zoo_table.py"


def test_readme_gives_the_two_commands():
    readme = (REPO / "README.md").read_text()
    assert "make app " in readme and "make test " in readme
    assert "make test" in (REPO / ".ci" / "run").read_text()
