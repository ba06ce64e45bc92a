"""Retrieval: nearest training images in fc7 / penultimate space (AlexNet's Figure 4) vs raw pixels."""
from __future__ import annotations

import explorer  # noqa: F401,I001  first: sets OpenMP's spin before torch loads


import pandas as pd
import streamlit as st

from explorer import retrieval, ui, zoo
from explorer.retrieval import RetrievalError
from models import data

ui.page("Retrieval", "The AlexNet paper's Figure 4: images whose fc7 activations are close are of the "
        "same kind, even when their pixels are not. Left: the training images nearest to yours by the model's "
        "features; right: nearest by raw pixels.")

loaded, missing = ui.zoo_or_stop("there is nothing to retrieve with")


@st.cache_resource(show_spinner="Loading the retrieval gallery...")
def gallery():
    return retrieval.load_gallery(zoo.CHECKPOINTS / retrieval.GALLERY)


@st.cache_resource(show_spinner="Loading the index...")
def index(arch: str):
    return retrieval.load_index(zoo.CHECKPOINTS / arch / retrieval.INDEX, loaded[arch][1])


try:
    gal = gallery()
except RetrievalError as e:
    st.warning(str(e), icon=":material/warning:")
    st.stop()

indexed, reasons = {}, {}
for a in loaded:
    try:
        indexed[a] = index(a)
    except RetrievalError as e:
        reasons[a] = str(e)
if reasons:
    st.info(" ".join(reasons.values()), icon=":material/info:")
if not indexed:
    st.stop()

n_gal = len(gal.labels)
k_eval = next(iter(indexed.values())).meta.get("k", 10)
st.subheader(f"How often the {k_eval} nearest neighbours share the query's class")
rows = [{"model": ui.title_of(loaded, a), "features": f"{ix.meta.get('layer')}, {ix.meta.get('dim')}-d",
         "Euclidean (%)": ix.meta.get("precision_euclidean"), "cosine (%)": ix.meta.get("precision_cosine"),
         "raw pixels (%)": ix.meta.get("precision_pixels")} for a, ix in indexed.items()]
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", height=ui.table_height(len(rows)),
             column_config={
    "model": st.column_config.TextColumn(width="small"), "features": st.column_config.TextColumn(width="small"),
    **{c: st.column_config.NumberColumn(format="%.1f", width="small")
       for c in ("Euclidean (%)", "cosine (%)", "raw pixels (%)")}})
st.caption(f"Precision@{k_eval}: for each of the {next(iter(indexed.values())).meta.get('val_images')} val images, the "
           f"share of its {k_eval} nearest neighbours among the {n_gal:,} gallery images ({n_gal // 10} training "
           "images per class) that are of the same class, by each model's features (Euclidean or cosine distance) "
           "and by raw pixels, which do not depend on the model; chance is 10%.")

c1, c2, c3 = st.columns([2, 1, 1])
with c1:
    arch = ui.pick_one_model({a: loaded[a] for a in indexed}, key="retr-model", prefer="alexnet")
with c2:
    metric = st.radio("Distance", ["euclidean", "cosine"], horizontal=True, key="retr-metric",
                      format_func=str.capitalize,
                      help="Euclidean: straight-line distance between feature vectors. Cosine: 1 - cos(angle), "
                           "which ignores their lengths.")
with c3:
    k = st.slider("Neighbours", 4, 16, k_eval, key="retr-k")
ui.zoo_note(loaded, missing)

images = ui.image_inputs("retrieval", multiple=False)
if not images:
    st.stop()
item = images[0]
model, card = loaded[arch]
dist, idx, search_ms = retrieval.search(model, item.image, indexed[arch].feats, k, metric)
pdist, pidx = retrieval.neighbours(retrieval.query_pixels(item.image, gal.thumbs.shape[-1]), gal.pixels, k, metric)

left, right = st.columns([1, 3])
with left:
    ui.image(item.image, f"query: {item.label}")
    ui.show_notes(item)
with right:
    st.markdown(f"Nearest {k} of the {n_gal:,} gallery images, by **{card.get('title', arch)}**'s "
                f"{indexed[arch].meta.get('layer')} features and by raw pixels (32x32x3). Under each image: its class "
                f"and its {metric.capitalize()} distance to the query (smaller is closer; the two columns' distances are on "
                "different scales).")
    st.caption(f"Searching the {n_gal:,} images takes {search_ms:.2f} ms (median of 5); the features "
               f"cost about one forward pass of the model, {ui.latencies()['ms'][arch]:.1f} ms on this server "
               "(Compare lists every model's).")
root = data.default_root()
full = st.toggle("Full resolution", value=False, disabled=root is None, key="retr-full",
                 help="Show the original training images (needs the dataset on this machine).")
left, right = st.columns(2)
for col, title, (d, i) in ((left, f"{card.get('title', arch)}, {indexed[arch].meta.get('layer')}", (dist, idx)),
                           (right, "raw pixels (32x32x3)", (pdist, pidx))):
    with col:
        st.subheader(title)
        cols = st.columns(3)   # three a row: a class name and its distance fit under each at 1024 px
        for n, (dd, ii) in enumerate(zip(d[0].tolist(), i[0].tolist())):
            with cols[n % 3]:
                path = root / gal.files[ii] if full and root is not None else None
                img = str(path) if path is not None and path.exists() else retrieval.thumb_image(gal.thumbs, ii)
                ui.image(img)
                st.caption(f"{data.NAMES[int(gal.labels[ii])]}  \n{dd:.2f}")
