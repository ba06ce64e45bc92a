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
    assert all(part.startswith(text.WORD_JOINER) for part in out.split("\\:")[1:])      # after every colon
    assert all(part.endswith(text.WORD_JOINER) for part in out.split("\\@")[:-1])      # before every @
    assert "www\\." not in out.lower()                                                # www and its dot apart


def test_an_ordinary_name_is_the_same_characters_in_the_page():
    """Find-in-page and copying see the name itself: no invisible joiner in `photo_2.jpg`."""
    assert text.unescape(text.plain("photo_2 (1).jpg")) == "photo_2 (1).jpg"
    assert text.WORD_JOINER not in text.plain("photo_2 (1).jpg")


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
