"""explorer.text: user-controlled strings made safe for Markdown-rendering elements and for CSV."""
from __future__ import annotations

import pytest

from explorer import text


@pytest.mark.parametrize("name", [
    "[x](https://example.com) ![i](https://e.com/p.png).png", ":red[r] $x^2$ ~~s~~.png", ":material/home:.png",
    "see www.example.com or a@b.co.png", "# heading", "1. list", "- item", "<b>html</b>", "back\\slash",
])
def test_plain_escapes_every_ascii_punctuation_and_breaks_autolinks(name):
    out = text.plain(name)
    assert out.replace("\\", "").replace(text.WORD_JOINER, "") == name.replace("\\", "")
    for i, c in enumerate(out):
        if c in "[]()!:$~*_#<>`-.@" and (i == 0 or out[i - 1] != "\\"):
            raise AssertionError(f"{c!r} unescaped at {i} in {out!r}")
    for pattern in (":", ".", "@"):
        assert all(part.endswith(text.WORD_JOINER + "\\") for part in out.split(pattern)[:-1])


def test_controls_and_bidi_overrides_become_visible():
    assert text.shown("a\u202egnp.exe") == "a[U+202E]gnp.exe"
    assert text.shown("line\nbreak\t") == "line[U+000A]break[U+0009]"
    assert "\u202e" not in text.plain("x\u202ey") and "\n" not in text.plain("a\nb")
    assert text.shown("naïve café 猫.png") == "naïve café 猫.png"   # letters are letters


@pytest.mark.parametrize("cell,want", [("=1+1", "'=1+1"), ("+cmd", "'+cmd"), ("-2", "'-2"), ("@SUM(A1)", "'@SUM(A1)"),
                                       ("\tx", "'\tx"), ("plain.png", "plain.png"), (0.5, 0.5), (None, None)])
def test_csv_cell_neutralises_formulas_only(cell, want):
    assert text.csv_cell(cell) == want


def test_classify_csv_writes_formula_names_neutralised():
    from explorer.classify import to_csv
    csv = to_csv([{"image": "=HYPERLINK(\"x\")", "model": "resnet18", "probability": 0.5}])
    assert csv.splitlines()[1].startswith("\"'=HYPERLINK") or csv.splitlines()[1].startswith("'=HYPERLINK")
