"""Representations: how alike the layers of two networks are (CKA), how much of the class a linear
read-out finds at each depth (probes), and the val split as each model's pre-logit layer arranges
it (t-SNE). Everything is precomputed by scripts/representations.py; see explorer/representations.py."""
from __future__ import annotations

import explorer  # noqa: F401,I001  first: sets OpenMP's spin before torch loads

import altair as alt
import pandas as pd
import streamlit as st

from explorer import representations as reps_mod
from explorer import sidecar, ui, zoo
from models import data

REFRESH = "python scripts/representations.py"
MAP_PX = 560   # the maps' height, legends included; t-SNE's axes have no units, so each spans its dots
CROSS = "M-1,-0.6L-0.6,-1L0,-0.4L0.6,-1L1,-0.6L0.4,0L1,0.6L0.6,1L0,0.4L-0.6,1L-1,0.6L-0.4,0Z"   # a filled x

ui.page("Representations", "What the networks' layers have in common: how alike two networks' layers are "
        "(CKA, Kornblith et al. 2019), how much of the class a linear classifier can read off each layer "
        "(linear probes, Alain & Bengio 2016), and a map of val images as each network's last layer sees them "
        "(t-SNE).")

loaded, missing = ui.zoo_or_stop("there are no representations to compare")


@st.cache_resource(show_spinner="Loading the representation files...")
def reps_of(arch: str, weights: str):
    return reps_mod.load(zoo.CHECKPOINTS / arch / reps_mod.FILE, loaded[arch][1])


@st.cache_data(show_spinner="Drawing the thumbnails for the map's tooltips (once per server)...")
def thumbs(root: str, files: tuple[str, ...]) -> list[str | None]:
    return reps_mod.thumbnails(root, list(files))


reps = {a: reps_of(a, sidecar.weights_sha(card)) for a, (_, card) in loaded.items()}
have = {a: loaded[a] for a, r in reps.items() if r is not None}
titles = {a: ui.title_of(loaded, a) for a in loaded}
ui.zoo_note(loaded, missing)
if not have:
    st.info(f"No representation file is shipped for the installed models yet; `{REFRESH}` computes them "
            "(a few minutes on a CPU).", icon=":material/info:")
    st.stop()
lacking = [titles[a] for a in loaded if a not in have]
if lacking:
    st.caption(f"Not shown, no representation file made from their weights yet: {', '.join(lacking)} "
               f"(`{REFRESH} --arch NAME` computes it).")
options = list(have)


PAIRED = ("se_resnet18", "alexnet")   # the second network a pair opens on: the first of these that differs


# --- CKA -----------------------------------------------------------------------------------
st.header("How alike are two networks' layers?")
st.markdown("Each cell compares one layer of the first network (rows) with one layer of the second (columns) on "
            "the same val images: **1** means the two layers hold the same information up to a rotation and a "
            "scaling, **0** that they have nothing in common. Look for a bright diagonal (the networks build their "
            "features in the same order) and for bright blocks (runs of layers that change little).")
c1, c2 = st.columns(2)
with c1:
    arch_a = ui.pick_one_model(have, key="rep-a", label="First network (rows)", prefer="alexnet", anatomy_link=False)
with c2:
    arch_b = ui.pick_second(options, arch_a, "rep-b", "Second network (columns); pick the same one to see its "
                            "layers against each other", titles.get, prefer=(*PAIRED, *options))
ra, rb = reps[arch_a], reps[arch_b]
matrix = reps_mod.pair_cka(ra, rb)
if matrix is None:
    st.info(f"The files of {titles[arch_a]} and {titles[arch_b]} were made on different val images, so their "
            f"layers cannot be compared; `{REFRESH}` remakes both on the same ones.", icon=":material/info:")
else:
    cells = pd.DataFrame(reps_mod.cka_rows(ra, rb, titles[arch_a], titles[arch_b], matrix))
    rows_order = [f"{i + 1}. {ly.label}" for i, ly in enumerate(ra.layers)]
    cols_order = [f"{j + 1}. {ly.label}" for j, ly in enumerate(rb.layers)]
    cells["dark"] = cells["CKA"] > 0.55
    base = alt.Chart(cells).encode(
        x=alt.X("column:N", sort=cols_order, title=f"{titles[arch_b]} (first layer left)",
                axis=alt.Axis(labelAngle=-35, labelLimit=170, labelOverlap=False)),
        y=alt.Y("row:N", sort=list(reversed(rows_order)), title=f"{titles[arch_a]} (first layer at the bottom)",
                axis=alt.Axis(labelLimit=180)))
    heat = base.mark_rect().encode(
        color=alt.Color("CKA:Q", scale=alt.Scale(scheme="viridis", domain=[0, 1]),
                        legend=alt.Legend(title="CKA", orient="right", gradientLength=200)),
        tooltip=[alt.Tooltip("row model:N", title="rows"), alt.Tooltip("row:N", title="row layer"),
                 alt.Tooltip("column model:N", title="columns"), alt.Tooltip("column:N", title="column layer"),
                 alt.Tooltip("CKA:Q", format=".3f")])
    text = base.mark_text(fontSize=13).encode(
        text=alt.Text("CKA:Q", format=".2f"),
        color=alt.condition("datum.dark", alt.value("#111111"), alt.value("#ffffff")))
    ui.chart((heat + text).properties(height=60 * len(ra.layers) + 110), width="stretch")
    st.markdown(reps_mod.cka_sentence(ra, rb, titles[arch_a], titles[arch_b], matrix))
    st.caption("Linear CKA (centred kernel alignment) of each pair of layers over the same "
               f"{ra.meta.get('val_images')} "
               f"val images, in minibatches of {ra.batch} with the unbiased HSIC estimator (Nguyen, Raghu & Kornblith "
               "2021); every activation of a layer counts (all positions and channels). The layers are those the Units "
               "page shows: the end of each resolution stage, or a few Transformer/Mixer blocks, and the pre-logit "
               "layer.")

# --- probes --------------------------------------------------------------------------------
st.header("Where does the class become readable?")
st.markdown("A linear classifier (a *probe*) is fitted on each layer's features and scored on val images it never "
            "saw. The higher the line, the more plainly that layer already holds the answer; the networks never "
            "trained these probes, only their own last layer.")
probe_rows = pd.DataFrame(reps_mod.probe_rows({a: reps[a] for a in have}, titles))
colors = ui.model_colors(list(probe_rows["model"].unique()))
tip = [alt.Tooltip("model:N"), alt.Tooltip("layer:N"), alt.Tooltip("relative depth:Q", format=".2f"),
       alt.Tooltip("probe top-1:Q", format=".1f", title="probe val top-1 (%)"),
       alt.Tooltip("probe train top-1:Q", format=".1f", title="probe train top-1 (%)")]
enc = dict(x=alt.X("relative depth:Q", scale=alt.Scale(domain=[0, 1]),
                 title="relative depth (share of the weight layers)",
                 axis=alt.Axis(format=".0%", values=[0, 0.2, 0.4, 0.6, 0.8, 1.0])),
           y=alt.Y("probe top-1:Q", scale=alt.Scale(domain=[0, 100]), title="probe val top-1 (%)"),
           color=alt.Color("model:N", scale=colors, legend=ui.model_legend()), tooltip=tip)
probe_rows["picked"] = probe_rows["arch"].isin([arch_a, arch_b])
lines = alt.Chart(probe_rows).mark_line(point=alt.OverlayMarkDef(size=70, filled=True)).encode(
    order="order:Q", strokeWidth=alt.condition("datum.picked", alt.value(3.5), alt.value(1.5)),
    opacity=alt.condition("datum.picked", alt.value(1.0), alt.value(0.55)), **enc)
chance = alt.Chart(pd.DataFrame({"y": [10.0], "label": ["chance (10 classes)"]})).encode(y="y:Q")
chance_layer = chance.mark_rule(strokeDash=[4, 4], color="#888") + chance.mark_text(
    align="left", dx=4, dy=-7, color="#666", fontSize=11).encode(x=alt.value(4), text="label:N")
ui.chart((lines + chance_layer).properties(height=ui.height_with_legend(320, len(have))), width="stretch")
st.markdown(reps_mod.probe_sentence({a: reps[a] for a in have}, titles))
first = reps[next(iter(have))]
st.caption(f"Each probe: multinomial logistic regression (scikit-learn, standardised features, L2 strength "
           f"C = {first.meta.get('probe_c')}, no tuning) on the layer's output averaged over positions, fitted on "
           f"{first.meta.get('train_count')} train images and scored on {first.meta.get('val_images')} val images, "
           "both fixed seeded subsets balanced over the classes. Relative depth: the share of the network's "
           "convolutions and fully connected layers, classifier included, at or before the layer. The networks "
           "picked above are drawn bold.")
with st.expander("The numbers, and each model's own val top-1"):
    own = {a: loaded[a][1].get("metrics", {}).get("val_top1") for a in have}
    table = probe_rows.assign(**{"model's own top-1": [own[a] for a in probe_rows["arch"]]})
    st.dataframe(table[["model", "layer", "relative depth", "probe top-1", "probe train top-1", "model's own top-1"]],
                 hide_index=True, width="stretch", column_config={
                     "model": st.column_config.TextColumn(width=130),
                     "layer": st.column_config.TextColumn(width=170),
                     "relative depth": st.column_config.NumberColumn("depth", format="%.2f",
                                                                     help="share of the weight layers"),
                     "probe top-1": st.column_config.NumberColumn("probe val (%)", format="%.1f"),
                     "probe train top-1": st.column_config.NumberColumn("probe train (%)", format="%.1f"),
                     "model's own top-1": st.column_config.NumberColumn("model (%)", format="%.1f",
                                                                        help="the network's own val top-1, all val"),
                 })

# --- the map -------------------------------------------------------------------------------
st.header("The val images as the last layer sees them")
st.markdown("Each dot is one val image, placed by t-SNE so that images the network's pre-logit layer describes alike "
            "lie close together; the colour is the true class and a cross marks an image the network gets wrong. "
            "Tight, separate clusters mean the last layer keeps the classes apart; hover a dot to see the image.")
root = data.default_root()
files = first.val_files
use_images = root is not None and ui.data_fingerprint() == first.meta.get("data_fingerprint")
urls = thumbs(str(root), tuple(files)) if use_images else [None] * len(files)
url_of = dict(zip(files, urls))
m1, m2 = st.columns(2)
picks = [(m1, "rep-map-a", arch_a), (m2, "rep-map-b", ui.second_choice(options, arch_a, (*PAIRED, *options)) if arch_b == arch_a else arch_b)]
class_scale = alt.Scale(domain=data.NAMES, scheme="tableau10")
for col, key, default in picks:
    with col:
        arch = st.selectbox("Network", options, index=options.index(default), key=key, format_func=lambda a: titles[a])
        r = reps[arch]
        pts = pd.DataFrame(reps_mod.map_rows(r))
        pts["image"] = [url_of.get(f) for f in pts["file"]]
        pts["mark"] = ["correct" if c else "misclassified" for c in pts["correct"]]
        tooltip = ([alt.Tooltip("image:N")] if use_images else []) + [
            alt.Tooltip("class:N"), alt.Tooltip("predicted:N"), alt.Tooltip("mark:N", title="answer")]
        chart = alt.Chart(pts).mark_point(filled=True, opacity=0.8).encode(
            x=alt.X("x:Q", axis=None, scale=alt.Scale(zero=False, nice=False, padding=8)),
            y=alt.Y("y:Q", axis=None, scale=alt.Scale(zero=False, nice=False, padding=8)),
            color=alt.Color("class:N", scale=class_scale,
                            legend=alt.Legend(orient="bottom", columns=2, title=None, labelLimit=150)),
            shape=alt.Shape("mark:N", scale=alt.Scale(domain=["correct", "misclassified"], range=["circle", CROSS]),
                            legend=alt.Legend(orient="top", title=None, direction="horizontal")),
            size=alt.condition("datum.correct", alt.value(30), alt.value(90)),
            tooltip=tooltip)
        ui.chart(chart.properties(height=MAP_PX, title=titles[arch]), width="stretch")
        wrong = int((~pts["correct"]).sum())
        st.caption(f"{titles[arch]}: {wrong} of {len(pts)} images misclassified (crosses); on average "
                   f"{reps_mod.neighbour_agreement(r):.0f}% of an image's 10 nearest dots share its class.")
        st.download_button(f"Coordinates (CSV), {titles[arch]}", reps_mod.map_csv(pts.to_dict("records")),
                           f"vision-hist-tsne-{arch}.csv", "text/csv", on_click="ignore",
                           icon=":material/download:", key=f"{key}-csv")
st.caption(f"t-SNE (scikit-learn, perplexity 30, seed {first.meta.get('seed')}) of the pre-logit features of "
           f"{first.meta.get('val_images')} val images, the same images in both maps; its axes have no units, and "
           "only who lies near whom means something (distances between clusters far apart do not)."
           + ("" if use_images else " The images are not shown on hover: " + (
               "the Imagenette val split is not on this machine." if root is None else
               "the Imagenette copy on this machine is not the one the maps were made on.")))
