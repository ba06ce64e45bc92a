"""Compare: accuracy against cost (training compute included), how each model was trained, the
papers' ImageNet order against ours, training curves, robustness to corruptions, per-class accuracy,
confusions, and the val images two models disagree on."""
from __future__ import annotations

import explorer  # noqa: F401,I001  first: sets OpenMP's spin before torch loads

import altair as alt
import pandas as pd
import streamlit as st

import models
from explorer import provenance, robustness, ui, zoo
from explorer.compare import (confusion_rows, curve_vs_card, disagreements, orders_sentence, paper_rows, per_class_rows,
                              scatter_rows)
from models import data

ui.page("Compare", "Which model is better, and at what cost? Accuracy is Imagenette val top-1 (all 3,925 "
        "images, one centre crop); latency is measured on this server's CPU.")

loaded, missing = ui.zoo_or_stop("there is nothing to compare")
ui.zoo_note(loaded, missing)
link = ui.deep_link(loaded)
titles = {s.name: s.title for s in models.list_architectures()}
years = {s.name: s.year for s in models.list_architectures()}
LABELS = {"params_M": "parameters (millions)", "gmacs": "GMACs per image", "latency_ms": "CPU latency (ms)",
          "train_pflops": "training compute (PFLOP)",
          "top1": "val top-1 (%)", "top5": "val top-5 (%)", "input_px": "input (px)"}
COLORS = ui.model_colors([ui.title_of(loaded, a) for a in loaded])

# --- accuracy against cost --------------------------------------------------------------
st.header("Accuracy against cost")
lat = ui.latencies()
rows = scatter_rows(loaded, lat["ms"])
df = pd.DataFrame(rows)
axis = st.radio("Horizontal axis", ["params_M", "gmacs", "latency_ms", "train_pflops"], horizontal=True,
                format_func=LABELS.get,
                key="cmp-axis")
if df.empty:
    st.info("No checkpoint has evaluation metrics yet: run `python scripts/evaluate.py`.", icon=":material/info:")
else:
    df["linked"] = df["arch"] == link
    tooltip = [alt.Tooltip("model:N"), alt.Tooltip("year:Q", title="year"),
               alt.Tooltip("top1:Q", format=".2f", title=LABELS["top1"]),
               alt.Tooltip("top5:Q", format=".2f", title=LABELS["top5"]),
               alt.Tooltip("params_M:Q", format=".2f", title=LABELS["params_M"]),
               alt.Tooltip("gmacs:Q", format=".3f", title=LABELS["gmacs"]),
               alt.Tooltip("latency_ms:Q", format=".1f", title=LABELS["latency_ms"]),
               alt.Tooltip("input_px:Q", title=LABELS["input_px"]),
               alt.Tooltip("epochs:Q", title="epochs trained"), alt.Tooltip("crops:N", title="training crops"),
               alt.Tooltip("train_pflops:Q", format=".3f", title=LABELS["train_pflops"]),
               alt.Tooltip("hardware:N", title="trained on"), alt.Tooltip("teacher:N", title="teacher")]
    ui.labelled_scatter(df, axis, "top1", LABELS[axis], LABELS["top1"], tooltip, COLORS, log_x=True, ring="linked")
    # short headers (the long ones are their tooltips), so that every column fits beside the sidebar at 1024 px
    SHORT = {"top1": "top-1 (%)", "top5": "top-5 (%)", "params_M": "params (M)", "gmacs": "GMACs",
             "latency_ms": "latency (ms)", "input_px": "input (px)"}
    FORMATS = {"top1": "%.2f", "top5": "%.2f", "params_M": "%.2f", "gmacs": "%.3f", "latency_ms": "%.1f",
               "input_px": "%d"}
    st.dataframe(df[["model", *SHORT]].rename(columns=SHORT), hide_index=True, width="stretch",
                 height=ui.table_height(len(df)),   # every model in view, no scrolling inside the table
                 column_config={"model": st.column_config.TextColumn(width=150),
                                **{SHORT[k]: st.column_config.NumberColumn(format=FORMATS[k], help=LABELS[k])
                                   for k in SHORT}})
    st.caption(f"Latency: {lat['note']}. Parameters and GMACs are computed from the models, at each model's own "
               "input size (LeNet-5 reads 32 px images, the others 128 px). Training compute: epochs x training "
               "images x 3 x forward FLOPs at each epoch's crop size (a backward pass costs about two forwards), "
               "plus the teacher's forward passes where there was one.")

    st.subheader("How each was trained")
    # the teachers are named in the caption below, not in a column: two of fourteen had one, and
    # "ConvNet + BatchNorm" in a seventh column was cut off beside the sidebar at 1024 px
    TRAINED = {"epochs": "epochs", "crops": "crops", "hardware": "hardware", "minutes": "minutes",
               "train_pflops": "PFLOP", "storage": "stored"}
    one_storage = df["storage"].nunique() == 1   # then said once below instead of a column of one value
    if one_storage:
        TRAINED.pop("storage")
    st.dataframe(df[["model", *TRAINED]].rename(columns=TRAINED), hide_index=True, width="stretch",
                 height=ui.table_height(len(df)),
                 column_config={"model": st.column_config.TextColumn(width=150),
                                "minutes": st.column_config.NumberColumn(format="%.0f", help="wall time of the run"),
                                "PFLOP": st.column_config.NumberColumn(format="%.3f", help=LABELS["train_pflops"])})
    taught = df[df["teacher"] != "none"]
    said = ["Crops: the sizes trained on, in order; every card scores the input size above."]
    if one_storage:
        said.append(f"Every model's weights are stored {df['storage'].iloc[0]}.")
    if len(taught):
        said.insert(0, f"{provenance.pupils(zip(taught['model'], taught['teacher']))} "
                       "learned from a teacher's top-1 answers as well as the labels (hard distillation; each card "
                       "says the teacher's weight in the loss): their accuracy is not a figure of the architecture "
                       "alone.")
    st.caption(" ".join(said))

# --- the papers' order against ours -----------------------------------------------------
st.header("The papers' ImageNet order against ours")
prow = pd.DataFrame(paper_rows(loaded))
if len(prow) < 2:
    st.info("Fewer than two shipped models have a paper ImageNet top-1 to set beside ours.", icon=":material/info:")
else:
    ui.labelled_scatter(prow, "paper_top1", "ours_top1", "the paper's ImageNet top-1 (%)",
                        "our Imagenette val top-1 (%)", [alt.Tooltip("model:N"),
                        alt.Tooltip("paper_top1:Q", format=".1f", title="paper, ImageNet (%)"),
                        alt.Tooltip("ours_top1:Q", format=".2f", title="ours, Imagenette (%)"),
                        alt.Tooltip("paper_source:N", title="paper figure")], COLORS, height=340)
    st.markdown(orders_sentence(prow.to_dict("records"), {a: c for a, (_, c) in loaded.items()}))
    left_out = [ui.title_of(loaded, a) for a in loaded if a not in set(prow["arch"])]
    st.caption("ImageNet has 1,000 classes and Imagenette 10 easy ones, so the two axes are not on one scale: read "
               "the order, not the distance." + (f" Left out, their papers give no ImageNet top-1: {', '.join(left_out)} "
                                                 "(Home's timeline gives what they report instead)." if left_out else ""))

# --- training curves --------------------------------------------------------------------
st.header("Training curves")
curves = pd.DataFrame(zoo.training_curves())
METRICS = {"val_top1": "val top-1 (%)", "holdout_top1": "held-out train slice top-1 (%)", "train_loss": "train loss",
           "train_acc": "train accuracy (fraction)", "val_top5": "val top-5 (%)",
           "holdout_top5": "held-out train slice top-5 (%)", "lr": "learning rate",
           "img_s": "training images per second"}
if curves.empty:
    st.info("No shipped metrics.csv yet.", icon=":material/info:")
else:
    metric = st.selectbox("Metric", [m for m in METRICS if m in set(curves.metric)], format_func=METRICS.get,
                          key="cmp-metric")
    sel = curves[curves.metric == metric]
    ui.chart(alt.Chart(sel).mark_line(point=True).encode(
        x=alt.X("epoch:Q", title="epoch", axis=alt.Axis(format="d", tickMinStep=1)),
        y=alt.Y("value:Q", title=METRICS[metric], scale=alt.Scale(zero=False)),
        color=alt.Color("model:N", scale=COLORS, legend=ui.model_legend()),
        tooltip=["model", "epoch", alt.Tooltip("value:Q", format=".4g", title=METRICS[metric])]).properties(
            height=ui.height_with_legend(320, sel["model"].nunique())),
        width="stretch")
    st.caption(" ".join(["As logged after every epoch of training: val accuracy on the centre crop, as on the "
                         "cards (a run tuned on a held-out slice of train logs its accuracy on that slice instead, "
                         "and never reads val).",
                         *curve_vs_card(loaded, zoo.training_curves())]))

# --- robustness -------------------------------------------------------------------------
st.header("How they fail: common corruptions")
table = robustness.load(zoo.CHECKPOINTS / robustness.ROBUSTNESS)
if table is None:
    st.info("No robustness table is shipped yet; `python scripts/robustness.py` computes it.", icon=":material/info:")
else:
    in_zoo = {a: m for a, m in table.get("models", {}).items() if a in loaded}
    curve, summary = robustness.rows({**table, "models": in_zoo}, titles, years)
    if not curve:
        st.info("The shipped robustness table does not cover the shipped models; rerun `python scripts/robustness.py`.",
                icon=":material/info:")
    else:
        cdf = pd.DataFrame(curve)
        names = list(dict.fromkeys(cdf["corruption"]))
        which = st.selectbox("Corruption", ["mean over all"] + names, key="cmp-corruption")
        if which == "mean over all":
            view = cdf.groupby(["model", "severity"], as_index=False)["top-1 (%)"].mean()
        else:
            view = cdf[cdf["corruption"] == which]
        ui.chart(alt.Chart(view).mark_line(point=True).encode(
            x=alt.X("severity:O", title="severity (0 = clean)", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("top-1 (%):Q", title="corrupted top-1 (%)", scale=alt.Scale(domain=[0, 100])),
            color=alt.Color("model:N", scale=COLORS, legend=ui.model_legend()),
            tooltip=["model", "severity", alt.Tooltip("top-1 (%):Q", format=".1f")]).properties(
                height=ui.height_with_legend(300, view["model"].nunique())),
            width="stretch")
        if which != "mean over all":
            key = next(k for k, v in robustness.CORRUPTIONS.items() if v[0] == which)
            st.caption("Severities: " + "; ".join(f"{s}: {robustness.describe(key, s)}" for s in robustness.SEVERITIES))
        sdf = pd.DataFrame(summary)
        st.markdown("**Relative robustness against year**")
        ui.labelled_scatter(sdf, "year", "relative robustness", "year", "corrupted top-1 / clean top-1",
                            ["model", "year", alt.Tooltip("clean top-1 (%):Q", format=".1f"),
                             alt.Tooltip("corrupted top-1 (%):Q", format=".1f"),
                             alt.Tooltip("drop (points):Q", format=".1f"),
                             alt.Tooltip("relative robustness:Q", format=".3f")], COLORS, height=320, x_format="d")
        st.dataframe(sdf[["model", "year", "clean top-1 (%)", "corrupted top-1 (%)", "drop (points)",
                          "relative robustness"]], hide_index=True, width="stretch", height=ui.table_height(len(sdf)),
                     column_config={
                         "model": st.column_config.TextColumn(width=150),
                         "year": st.column_config.NumberColumn(format="%d", width=50),
                         "clean top-1 (%)": st.column_config.NumberColumn("clean (%)", format="%.1f"),
                         "corrupted top-1 (%)": st.column_config.NumberColumn(
                             "corrupted (%)", format="%.1f", help="mean top-1 over every corruption and severity"),
                         "drop (points)": st.column_config.NumberColumn("drop (points)", format="%.1f"),
                         "relative robustness": st.column_config.NumberColumn(
                             "corrupted / clean", format="%.3f", help="relative robustness: 1.0 is no loss")})
        n = table.get("per_class")
        st.caption(robustness.subset_sentence(summary, {a: loaded[a][1] for a in in_zoo}, table.get("images") or 0))
        st.caption(f"On the first {n} val image{'s' if n != 1 else ''} of each class ({table.get('images')} images), each corrupted at three "
                   "severities; relative robustness is the mean top-1 over every corruption and severity divided by the "
                   "clean top-1 on the same images (1.0: no loss at all). Read it with the drop: a weak model close to "
                   "chance (10%) has less to lose, and a model that reads small images (LeNet-5's 32 px) has noise and "
                   "blur averaged away before it sees them. Try the same "
                   "corruptions on your own image on Classify.")

# --- two models side by side ------------------------------------------------------------
st.header("Two models side by side")
archs = list(loaded)
c1, c2 = st.columns(2)
with c1:
    a = ui.pick_one_model(loaded, key="cmp-a", label="Model A", anatomy_link=False, link_said=True,
                          permalink=False)   # the link rings a model on the charts above: only when given
with c2:
    b = ui.pick_second(archs, a, "cmp-b", "Model B", lambda k: ui.title_of(loaded, k))
cards = {a: loaded[a][1], b: loaded[b][1]}
pc = pd.DataFrame(per_class_rows(cards))
if not pc.empty:
    st.markdown("**Accuracy per class**")
    pair_colors = ui.model_colors([ui.title_of(loaded, a), ui.title_of(loaded, b)])
    dots = alt.Chart(pc).encode(y=alt.Y("class:N", sort=data.NAMES, title=None),
                                x=alt.X("accuracy:Q", title="per-class val top-1 (%)", scale=alt.Scale(zero=False)))
    ui.chart((dots.mark_line(color="#bbbbbb").encode(detail="class:N")
                     + dots.mark_circle(size=120).encode(
                         color=alt.Color("model:N", scale=pair_colors, legend=alt.Legend(orient="bottom", title=None)),
                         tooltip=["model", "class", alt.Tooltip("accuracy:Q", format=".1f")]))
                    .properties(height=400), width="stretch")
tabs = st.tabs([f"Confusions: {ui.title_of(loaded, arch)}" for arch in dict.fromkeys((a, b))])
for tab, arch in zip(tabs, dict.fromkeys((a, b))):
    conf = pd.DataFrame(confusion_rows(loaded[arch][1]))
    with tab:
        if conf.empty:
            st.info("No confusion matrix in this card.", icon=":material/info:")
            continue
        heat = alt.Chart(conf).encode(
            x=alt.X("predicted:N", sort=data.NAMES, title="predicted class",
                    axis=alt.Axis(labelAngle=-45, labelOverlap=False, labelLimit=120)),
            y=alt.Y("true:N", sort=data.NAMES, title="true class"))
        ui.chart((heat.mark_rect().encode(
            color=alt.Color("share:Q", scale=alt.Scale(scheme="blues", domain=[0, 1]), title="share of the row"),
            tooltip=["true", "predicted", "count", alt.Tooltip("share:Q", format=".1%")])
            + heat.mark_text(fontSize=10).encode(
                text="count:Q", color=alt.condition("datum.share > 0.5", alt.value("white"), alt.value("black"))))
            .properties(height=520), width="stretch")
        st.caption("Rows: the true class of each val image; columns: what the model answered; numbers are image counts.")

if a != b:
    st.subheader("Where they disagree")
    d = disagreements(cards[a], cards[b], data.default_root())
    if "count" in d:
        st.markdown(f"**{d['count']}** of {d['total']} val images get different top-1 answers.")
    if d.get("items"):
        st.caption(f"Of those, {ui.title_of(loaded, a)} is right on {d['a_right']}, {ui.title_of(loaded, b)} "
                   f"on {d['b_right']}. {len(d['items'])} shown, taken in turn from each true class.")
        grid = st.columns(4)
        for i, item in enumerate(d["items"]):
            with grid[i % 4]:
                ui.image(item["path"])
                st.caption(f"true: **{item['true']}**  \n{ui.title_of(loaded, a)}: {item['a']}  \n"
                           f"{ui.title_of(loaded, b)}: {item['b']}")
    elif d.get("reason"):
        st.info(d["reason"][:1].upper() + d["reason"][1:], icon=":material/info:")
