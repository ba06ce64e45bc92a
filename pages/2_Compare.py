"""Compare: accuracy against cost, training curves, per-class accuracy, confusions, disagreements."""
from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from explorer import ui, zoo
from explorer.compare import confusion_rows, disagreements, per_class_rows, scatter_rows
from models import data

ui.page("Compare", "Which model is better, and at what cost? Accuracy is Imagenette val top-1 (3,925 "
        "images, one centre crop); latency is measured on this server's CPU, batch of one.")

loaded, missing = ui.zoo_or_stop("there is nothing to compare")

# --- accuracy against cost --------------------------------------------------------------
st.header("Accuracy against cost")
rows = scatter_rows(loaded, ui.latencies())
df = pd.DataFrame(rows)
axis = st.radio("Horizontal axis", ["params_M", "gmacs", "latency_ms"], horizontal=True,
                format_func={"params_M": "Parameters (millions)", "gmacs": "GMACs",
                             "latency_ms": "CPU latency (ms)"}.get)
if df.empty:
    st.info("No checkpoint has evaluation metrics yet (run scripts/evaluate.py).")
else:
    base = alt.Chart(df).encode(
        x=alt.X(f"{axis}:Q", scale=alt.Scale(type="log"), title=axis),
        y=alt.Y("top1:Q", title="val top-1 (%)", scale=alt.Scale(zero=False)),
        tooltip=["model", alt.Tooltip("top1:Q", format=".2f"), alt.Tooltip("top5:Q", format=".2f"),
                 alt.Tooltip("params_M:Q", format=".2f", title="params (M)"),
                 alt.Tooltip("gmacs:Q", format=".3f"), alt.Tooltip("latency_ms:Q", format=".1f"),
                 "epochs", "hardware"],
    )
    st.altair_chart((base.mark_circle(size=120) + base.mark_text(dx=8, align="left").encode(text="model"))
                    .properties(height=380).interactive(), width="stretch")
    st.dataframe(df.drop(columns=["arch", "year"]), hide_index=True, width="stretch")

# --- training curves --------------------------------------------------------------------
st.header("Training curves")
curves = pd.DataFrame(zoo.training_curves())
if curves.empty:
    st.info("No shipped metrics.csv yet.")
else:
    metric = st.selectbox("Metric", ["val_top1", "train_loss", "train_acc", "val_top5", "lr", "img_s"])
    sel = curves[curves.metric == metric]
    st.altair_chart(alt.Chart(sel).mark_line(point=True).encode(
        x="epoch:Q", y=alt.Y("value:Q", title=metric), color="model:N",
        tooltip=["model", "epoch", alt.Tooltip("value:Q", format=".4g")]).properties(height=320),
        width="stretch")

# --- two models side by side ------------------------------------------------------------
st.header("Two models side by side")
archs = list(loaded)
c1, c2 = st.columns(2)
a = c1.selectbox("Model A", archs, index=0, format_func=lambda k: loaded[k][1].get("title", k))
b = c2.selectbox("Model B", archs, index=min(1, len(archs) - 1), format_func=lambda k: loaded[k][1].get("title", k))
cards = {a: loaded[a][1], b: loaded[b][1]}
pc = pd.DataFrame(per_class_rows(cards))
if not pc.empty:
    st.altair_chart(alt.Chart(pc).mark_bar().encode(
        x=alt.X("accuracy:Q", title="per-class top-1 (%)"), y=alt.Y("model:N", title=None),
        color="model:N", row=alt.Row("class:N", title=None, header=alt.Header(labelAngle=0, labelAlign="left")),
        tooltip=["model", "class", "accuracy"]).properties(height=36, width=520))
cols = st.columns(2)
for col, arch in zip(cols, (a, b)):
    conf = pd.DataFrame(confusion_rows(loaded[arch][1]))
    with col:
        st.subheader(f"Confusion: {loaded[arch][1].get('title', arch)}")
        if conf.empty:
            st.info("No confusion matrix in this card.")
            continue
        heat = alt.Chart(conf).mark_rect().encode(
            x=alt.X("predicted:N", sort=data.NAMES), y=alt.Y("true:N", sort=data.NAMES),
            color=alt.Color("share:Q", scale=alt.Scale(scheme="blues", domain=[0, 1]), title="row share"),
            tooltip=["true", "predicted", "count", alt.Tooltip("share:Q", format=".2f")])
        text = heat.mark_text(fontSize=9).encode(text="count:Q", color=alt.value("black"))
        st.altair_chart((heat + text).properties(height=360), width="stretch")

if a != b:
    st.subheader("Where they disagree")
    d = disagreements(cards[a], cards[b], data.default_root())
    if "count" in d:
        st.markdown(f"**{d['count']}** of {d['total']} val images get different top-1 answers.")
    if d.get("items"):
        st.caption(f"Of those, {loaded[a][1]['title']} is right on {d['a_right']}, "
                   f"{loaded[b][1]['title']} on {d['b_right']}. First {len(d['items'])} shown.")
        grid = st.columns(6)
        for i, item in enumerate(d["items"]):
            with grid[i % 6]:
                st.image(item["path"], width="stretch")
                st.caption(f"true: **{item['true']}**  \nA: {item['a']}  \nB: {item['b']}")
    elif d.get("reason"):
        st.info(d["reason"])
