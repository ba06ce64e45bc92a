"""explorer.ui helpers that hold no page: charts built once per server."""
from __future__ import annotations

import altair as alt
import pandas as pd
import pytest

from explorer import ui


@pytest.fixture
def drawn(monkeypatch):
    calls = []
    monkeypatch.setattr(ui.st, "vega_lite_chart", lambda rows, spec, **kw: calls.append((rows, spec, kw)))
    monkeypatch.setattr(ui, "_specs", {})
    return calls


def test_a_chart_with_rows_is_built_once_per_key_and_drawn_with_each_calls_rows(drawn):
    built = []

    def grid(df):
        built.append(len(df))
        base = alt.Chart(df).encode(x="c:N", y="m:N")
        rule = alt.Chart(pd.DataFrame({"y": [0.5]})).mark_rule().encode(y="y:Q")   # a layer with its own data
        return base.mark_rect().encode(color="p:Q") + base.mark_text().encode(text="p:Q") + rule

    first = pd.DataFrame({"c": ["a", "b"], "m": ["x", "x"], "p": [0.1, 0.9]})
    second = pd.DataFrame({"c": ["a", "b"], "m": ["x", "x"], "p": [0.7, 0.3]})
    ui.chart_cached("grid", ("x",), grid, rows=first, width="stretch")
    ui.chart_cached("grid", ("x",), grid, rows=second, width="stretch")
    assert built == [2]                                   # Altair ran once
    (rows1, spec1, kw), (rows2, spec2, _) = drawn
    assert rows1 is first and rows2 is second and kw == {"width": "stretch"}
    assert spec1 == spec2 and spec1 is not spec2          # Streamlit may change the copy it is given
    assert "data" not in spec1                            # the first call's rows are not drawn again...
    shown = spec1["datasets"].values()
    assert [{"y": 0.5}] in shown and not any(v and "p" in v[0] for v in shown)   # ...a layer's own data stays
    ui.chart_cached("grid", ("x", "y"), grid, rows=second)   # another model list: built again
    assert built == [2, 2]


def test_a_fixed_chart_keeps_its_own_data(drawn):
    built = []

    def fixed():
        built.append(1)
        return alt.Chart(pd.DataFrame({"d": [1, 2], "v": [3.0, 4.0]})).mark_circle().encode(x="d:Q", y="v:Q")

    ui.chart_cached("fixed", ("vit", 1.0), fixed)
    ui.chart_cached("fixed", ("vit", 1.0), fixed)
    assert built == [1]
    rows, spec, _ = drawn[1]
    assert rows is None and spec["datasets"][spec["data"]["name"]] == [{"d": 1, "v": 3.0}, {"d": 2, "v": 4.0}]


def test_a_second_picker_opens_on_a_preferred_other_model():
    from explorer.ui import second_choice
    opts = ["alexnet", "resnet18", "se_resnet18"]
    assert second_choice(opts, "resnet18", ("se_resnet18", "alexnet")) == "se_resnet18"
    assert second_choice(opts, "se_resnet18", ("se_resnet18", "alexnet")) == "alexnet"    # never the first again
    assert second_choice(opts, "se_resnet18") == "alexnet"                               # else the next, wrapping
    assert second_choice(["vit"], "vit") == "vit"                                         # one model: itself
    assert second_choice(opts, "lenet5") == "alexnet"                                     # first not offered
