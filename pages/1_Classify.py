"""Classify: one or several images, every model's top-5 side by side."""
from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from explorer import ui
from explorer.classify import agreement, classify, tensor_preview, to_csv, to_json, to_rows
from models import data

ui.page("Classify", "Drop in a photo and watch a quarter-century of architectures answer it. "
        "The models know 10 Imagenette classes: " + ", ".join(data.NAMES) + ".")

loaded, missing = ui.zoo_or_stop("there is nothing to classify with")

chosen = ui.pick_models(loaded, key="classify-models")
images = ui.image_inputs("classify")
if not chosen:
    st.info("Choose at least one model.")
    st.stop()
if not images:
    st.info("Upload an image or pick a sample to start.")
    st.stop()

subset = {a: loaded[a] for a in chosen}
all_rows = []
for item in images:
    results, inputs = classify(subset, item.image)
    all_rows += to_rows(item.name, results)
    st.divider()
    left, right = st.columns([1, 3])
    with left:
        st.image(item.image, caption=item.name, width="stretch")
        for note in item.notes:
            st.caption(f"Note: {note}.")
        agr = agreement(results)
        st.metric("Agreement", f"{agr['votes']} of {agr['models']} models",
                  help="How many models give the most common top-1 answer.")
        st.markdown(f"Most say **{agr['label']}**.")
        if agr["disagree"]:
            st.caption("Disagreeing: " + "; ".join(f"{t} → {lab}" for t, lab in agr["disagree"]))
    with right:
        df = pd.DataFrame([{"model": f"{r.title} ({r.latency_ms:.0f} ms)", "rank": k, "class": lab,
                            "probability": p} for r in results for k, (lab, p) in enumerate(r.top, 1)])
        order = [f"{r.title} ({r.latency_ms:.0f} ms)" for r in results]
        chart = alt.Chart(df).mark_bar().encode(
            x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), title=None),
            y=alt.Y("class:N", sort=alt.EncodingSortField("rank"), title=None),
            color=alt.Color("probability:Q", scale=alt.Scale(scheme="blues", domain=[0, 1]), legend=None),
            tooltip=["model", "rank", "class", alt.Tooltip("probability:Q", format=".3f")],
        ).properties(width=150, height=110).facet(
            facet=alt.Facet("model:N", sort=order, title=None), columns=3,
        ).resolve_scale(y="independent")
        st.altair_chart(chart)
    with st.expander("What each model saw: exact preprocessing and the input tensor"):
        cols = st.columns(max(1, len(inputs)))
        for col, ((size, chans), x) in zip(cols, inputs.items()):
            users = ", ".join(r.title for r in results if (r.input_size, r.in_chans) == (size, chans))
            with col:
                st.image(tensor_preview(x), caption=f"{size}x{size}x{chans} tensor: {users}", width=192)
                st.markdown("\n".join(f"{i}. {s}" for i, s in enumerate(data.describe_preprocess(size, chans), 1)))

st.divider()
c1, c2 = st.columns(2)
c1.download_button("Download results (CSV)", to_csv(all_rows), "vision-hist-predictions.csv", "text/csv")
c2.download_button("Download results (JSON)", to_json(all_rows), "vision-hist-predictions.json", "application/json")
