"""Classify: one or several images, every model's answer side by side, and how a corruption changes it."""
from __future__ import annotations

import explorer  # noqa: F401,I001  first: sets OpenMP's spin before torch loads

import altair as alt
import pandas as pd
import streamlit as st

import models
from explorer import robustness, ui
from explorer.classify import (agreement, classify, matrix_rows, severity_sweep, tensor_preview, to_csv, to_json,
                               to_rows)
from models import data

ui.page("Classify", "Drop in a photo and watch a quarter-century of architectures answer it. The models know "
        "10 Imagenette classes: " + ", ".join(data.NAMES) + ".")

loaded, missing = ui.zoo_or_stop("there is nothing to classify with")
YEARS = {s.name: s.year for s in models.list_architectures()}

chosen = ui.pick_models(loaded, key="classify-models")
ui.zoo_note(loaded, missing)
images = ui.image_inputs("classify")
c1, c2 = st.columns([2, 1])
with c1:
    corruption = st.selectbox("Corrupt the image (how each network fails)", ["none", *robustness.CORRUPTIONS],
                              key="classify-corruption",
                              format_func=lambda c: "none: the image as it is" if c == "none"
                              else robustness.CORRUPTIONS[c][0])
with c2:
    severity = st.slider("Severity", 1, len(robustness.SEVERITIES), 2, key="classify-severity",
                         disabled=corruption == "none")
corruption = None if corruption == "none" else corruption
sev = severity if corruption else 0
if not chosen:
    st.info("Choose at least one model.", icon=":material/info:")
    st.stop()
if not images:
    st.stop()
subset = {a: loaded[a] for a in chosen}


@st.cache_data(max_entries=64, show_spinner="Running every model...")
def results_for(digest: str, archs: tuple, corruption: str | None, severity: int, _image, _subset):
    return classify(_subset, _image, corruption=corruption, severity=severity)


@st.cache_data(max_entries=16, show_spinner="Running every model at every severity...")
def sweep_for(digest: str, archs: tuple, corruption: str, _image, _subset):
    return severity_sweep(_subset, _image, corruption)


all_rows = []
heat = alt.Scale(scheme="blues", domain=[0, 1])


def grid(df: pd.DataFrame, order: tuple) -> alt.LayerChart:
    """Models (rows, oldest first) x classes: the probability in each cell, the answer outlined."""
    base = alt.Chart(df).encode(
        x=alt.X("class:N", sort=data.NAMES, title=None,
                axis=alt.Axis(orient="top", labelAngle=-40, labelLimit=120, labelOverlap=False)),
        y=alt.Y("model:N", sort=list(order), title=None, axis=alt.Axis(labelLimit=200)))
    cells = base.mark_rect().encode(
        color=alt.Color("probability:Q", scale=heat, legend=None),
        tooltip=["model", "class", alt.Tooltip("probability:Q", format=".2%")])
    numbers = base.mark_text(fontSize=11).encode(
        text=alt.Text("label:N"),
        color=alt.condition("datum.probability > 0.55", alt.value("white"), alt.value("#333"))
    ).transform_calculate(label="datum.probability < 0.005 ? '<1' : format(datum.percent, 'd')")
    top1 = base.transform_filter("datum.top1").mark_rect(fill=None, stroke="#d62728", strokeWidth=2.5)
    return (cells + numbers + top1).properties(height=34 * len(order) + 90)


for item in images:
    results, inputs = results_for(item.digest, tuple(chosen), corruption, sev, item.image, subset)
    st.divider()
    left, right = st.columns([1, 3])
    with left:
        if corruption:
            x = next(iter(inputs.values()))
            ui.image(tensor_preview(x), f"{item.label}, {robustness.describe(corruption, sev)}")
        else:
            ui.image(item.image, item.label)
        ui.show_notes(item)
    with right:
        agr = agreement(results)
        if agr["split"]:   # no answer leads: say so, and name no answer as the models' verdict
            if agr["votes"] == 1:
                st.markdown(f"**The {agr['models']} models disagree**: each gives a different answer, so no "
                            "answer wins.")
                st.markdown("Their answers: " + "; ".join(f"{ts[0]} → {lab}" for lab, ts in agr["answers"]))
            else:
                tied = agr["tied"]
                st.markdown(f"**The {agr['models']} models disagree**: "
                            f"{', '.join(tied[:-1])} and {tied[-1]} get {agr['votes']} votes each, so no "
                            "answer wins.")
                st.markdown("Their answers: " + "; ".join(f"{lab} ({len(ts)}): {', '.join(ts)}"
                                                          for lab, ts in agr["answers"]))
        else:
            st.markdown(f"**{agr['votes']} of {agr['models']}** models say **{agr['label']}**.")
            if agr["disagree"]:
                st.markdown("Disagreeing: " + "; ".join(f"{t} → {lab}" for t, lab in agr["disagree"]))
        st.caption("Each row is one model (oldest first), each column a class; the number is the probability "
                   "in percent, and the outlined cell is the model's answer.")
    df = pd.DataFrame(matrix_rows(results, YEARS))
    order = tuple(dict.fromkeys(df["model"]))
    ui.chart_cached("classify-grid", order, lambda d: grid(d, order), rows=df, width="stretch")
    lat = ui.latencies()
    detail = pd.DataFrame([{"model": r.title, "year": YEARS.get(r.arch),
                            **{f"#{k}": f"{lab} ({p:.0%})" for k, (lab, p) in enumerate(r.top, 1)},
                            "latency (ms)": lat["ms"].get(r.arch)} for r in results])
    with st.expander("Top-5 of each model, and its latency"):
        st.dataframe(detail, hide_index=True, width="stretch",
                     column_config={"year": st.column_config.NumberColumn(format="%d"),
                                    "latency (ms)": st.column_config.NumberColumn(format="%.1f")})
        st.caption(f"Latency: {lat['note']}. The same numbers appear on Compare and in the downloads.")
    if corruption:
        with st.expander(f"{robustness.CORRUPTIONS[corruption][0]} at every severity: watch the answers change",
                         expanded=True):
            sw = pd.DataFrame(sweep_for(item.digest, tuple(chosen), corruption, item.image, subset))
            sw["severity label"] = sw["severity"].map(lambda s: "clean" if s == 0 else f"{s}: "
                                                      + robustness.describe(corruption, s))
            sbase = alt.Chart(sw).encode(
                x=alt.X("severity label:N", sort=list(dict.fromkeys(sw["severity label"])), title=None,
                        axis=alt.Axis(orient="top", labelAngle=0, labelLimit=160)),
                y=alt.Y("model:N", sort=list(dict.fromkeys(sw["model"])), title=None, axis=alt.Axis(labelLimit=200)))
            ui.chart((sbase.mark_rect().encode(
                color=alt.Color("p(clean answer):Q", scale=heat, legend=alt.Legend(
                    title="probability of its clean answer", orient="bottom", gradientLength=220)),
                tooltip=["model", "severity label", "answer", alt.Tooltip("confidence:Q", format=".1%"),
                         alt.Tooltip("p(clean answer):Q", format=".1%")])
                + sbase.mark_text(fontSize=10).encode(
                    text="answer:N",
                    color=alt.condition("datum['clean answer kept']", alt.value("#222"), alt.value("#c0392b"))))
                .properties(height=30 * sw["model"].nunique() + 110), width="stretch")
            st.caption("Cell text: the model's answer (red where it changed from the clean image); colour: how much "
                       "probability it still gives its clean answer.")
    with st.expander("What each model saw: exact preprocessing and the input tensor"):
        cols = st.columns(max(1, len(inputs)))
        for col, ((size, chans), x) in zip(cols, inputs.items()):
            users = ", ".join(r.title for r in results if (r.input_size, r.in_chans) == (size, chans))
            with col:
                st.image(ui.magnify(tensor_preview(x), 192), caption=f"{size}x{size}x{chans} tensor: {users}",
                         width=192)
                steps = data.describe_preprocess(size, chans)
                if corruption:
                    steps.insert(3, f"between the two crops, corrupt: {robustness.describe(corruption, sev)}")
                st.markdown("\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1)))
    all_rows += to_rows(item.name, results, lat["ms"], robustness.describe(corruption, sev) if corruption
                        else "clean")

st.divider()
c1, c2 = st.columns(2)
c1.download_button("Download results (CSV)", to_csv(all_rows), "vision-hist-predictions.csv", "text/csv",
                   on_click="ignore", icon=":material/download:")
c2.download_button("Download results (JSON)", to_json(all_rows), "vision-hist-predictions.json", "application/json",
                   on_click="ignore", icon=":material/download:")
