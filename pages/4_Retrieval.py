"""Retrieval: nearest training images in fc7 / penultimate space (AlexNet's Figure 4) vs raw pixels."""
from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from explorer import retrieval, ui, zoo
from explorer.retrieval import RetrievalError
from models import data

ui.page("Feature retrieval", "The AlexNet paper's Figure 4: images whose fc7 activations are close are of the "
        "same kind, even when their pixels are not. Left: nearest training images by the model's features; "
        "right: by raw pixels.")

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
    st.warning(str(e))
    st.stop()

indexed, reasons = {}, {}
for a in loaded:
    try:
        indexed[a] = index(a)
    except RetrievalError as e:
        reasons[a] = str(e)
if reasons:
    st.info("Without a retrieval index: " + " ".join(reasons.values()))
if not indexed:
    st.stop()

st.subheader(f"Retrieval precision@{next(iter(indexed.values())).meta.get('k', 10)} over the val split")
rows = [{"model": loaded[a][1].get("title", a), "layer": ix.meta.get("layer"), "dims": ix.meta.get("dim"),
         "features, Euclidean (%)": ix.meta.get("precision_euclidean"),
         "features, cosine (%)": ix.meta.get("precision_cosine"), "raw pixels (%)": ix.meta.get("precision_pixels")}
        for a, ix in indexed.items()]
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
st.caption(f"For each of the {next(iter(indexed.values())).meta.get('val_images')} val images, the share of its "
           f"nearest {len(gal.labels)}-image-gallery neighbours of the same class (chance: 10%). "
           "Computed by `python scripts/build_index.py`.")

c1, c2, c3 = st.columns([2, 1, 1])
with c1:
    arch = ui.pick_one_model({a: loaded[a] for a in indexed}, key="retr-model", prefer="alexnet")
with c2:
    metric = st.radio("Distance", ["euclidean", "cosine"], horizontal=True, key="retr-metric")
with c3:
    k = st.slider("Neighbours", 4, 16, 8, key="retr-k")

images = ui.image_inputs("retrieval", multiple=False)
if not images:
    st.info("Upload an image or pick a sample to query the gallery.")
    st.stop()
item = images[0]
model, card = loaded[arch]
x = data.preprocess(item.image, model.input_size, model.in_chans)
t0 = time.perf_counter()
feat = model.forward_features(x)
t1 = time.perf_counter()
dist, idx = retrieval.neighbours(feat.float(), indexed[arch].feats, k, metric)
t2 = time.perf_counter()
pdist, pidx = retrieval.neighbours(retrieval.query_pixels(item.image, gal.thumbs.shape[-1]), gal.pixels, k, metric)

st.image(item.image, caption=f"query: {item.name}", width=160)
st.caption(f"Features in {1000 * (t1 - t0):.1f} ms, search of {len(gal.labels)} images in {1000 * (t2 - t1):.2f} ms.")
root = data.default_root()
full = st.toggle("Full resolution", value=False, disabled=root is None,
                 help="Show the original training images (needs the dataset on this machine).")
left, right = st.columns(2)
for col, title, (d, i) in ((left, f"{card.get('title', arch)} {indexed[arch].meta.get('layer')}", (dist, idx)),
                           (right, "raw pixels (32x32x3)", (pdist, pidx))):
    with col:
        st.subheader(title)
        cols = st.columns(4)
        for n, (dd, ii) in enumerate(zip(d[0].tolist(), i[0].tolist())):
            with cols[n % 4]:
                path = root / gal.files[ii] if full and root is not None else None
                img = str(path) if path is not None and path.exists() else retrieval.thumb_image(gal.thumbs, ii)
                st.image(img, width="stretch")
                st.caption(f"{data.NAMES[int(gal.labels[ii])]} · {dd:.2f}")
