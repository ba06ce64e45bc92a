"""Text a user controls (an uploaded file's name, anything read from the query string), made
safe to show in a page and to export.

Streamlit renders captions, headings, alerts and st.markdown as Markdown with its own
extensions: links and images, emphasis, KaTeX between dollars, `:red[...]` colours,
`:material/...:` icons and emoji shortcodes, and GitHub's autolinks, which find bare URLs,
`www.` names and e-mail addresses in the text *after* Markdown's escapes are read. So `plain`
does three things: control and format characters (newlines, the bidirectional overrides that
reorder a name on screen, zero-width characters) become a visible `[U+XXXX]`; every ASCII
punctuation character is backslash-escaped (CommonMark allows it for all of them); and an
invisible word joiner (U+2060) goes after every `:`, before every `@` and between `www` and its
dot, which breaks `https://`, `a@b`, `www.` and `:name:` for every autolink, icon and shortcode
pattern. The name reads as typed, and a plain `photo.jpg` is the same characters in the page
(find-in-page and copying work).

`csv_cell` keeps a spreadsheet from reading an exported cell as a formula (OWASP's advice:
a leading `=`, `+`, `-`, `@`, tab or carriage return gets a `'` in front).
"""
from __future__ import annotations

import re
import unicodedata

WORD_JOINER = "\u2060"
_PUNCT = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character
_COLON, _AT, _WWW = re.compile(r"(\\:)"), re.compile(r"(\\@)"), re.compile(r"(?i)(www)(\\\.)")


def visible_controls(text: str) -> str:
    """Control and format characters (categories Cc and Cf) written as [U+XXXX]."""
    return "".join(f"[U+{ord(c):04X}]" if unicodedata.category(c) in ("Cc", "Cf") else c for c in text)


def plain(text: str) -> str:
    """`text` for any Streamlit element that renders Markdown, shown exactly as typed."""
    text = _PUNCT.sub(r"\\\1", visible_controls(str(text)))
    text = _COLON.sub(r"\1" + WORD_JOINER, text)
    text = _AT.sub(WORD_JOINER + r"\1", text)
    return _WWW.sub(r"\1" + WORD_JOINER + r"\2", text)


def shown(text: str) -> str:
    """What a page shows for `plain(text)`: the text with its controls made visible (tests)."""
    return visible_controls(str(text))


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """A value for a CSV a spreadsheet may open: strings that start like a formula get a `'`."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")


def unescape(markdown: str) -> str:
    """What a page shows for Markdown that `plain` escaped: the escapes and word joiners gone."""
    return _ESCAPED.sub(r"\1", str(markdown)).replace(WORD_JOINER, "")
