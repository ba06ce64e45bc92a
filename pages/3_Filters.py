"""Filters: every model's first-layer kernels (AlexNet's Figure 3) and an image's activation maps."""
from __future__ import annotations

import streamlit as st

from explorer import ui, zoo
from explorer.classify import tensor_preview
from explorer.filters import SORTS, activation_grid, filter_grid
from models import data, get_spec
from models.probes import first_layer_activations, first_layer_weights

ui.page("First-layer filters", "What each network learned to look for first: its conv1 (or patch-embedding) "
        "kernels, each scaled to its own range as in the papers' figures. AlexNet's 96 kernels split into "
        "colour blobs and grey edge detectors (the paper's Figure 3).")

loaded, missing = ui.zoo_or_stop("there are no learned filters to show")

c1, c2, c3 = st.columns([2, 2, 1])
with c1:
    arch = ui.pick_one_model(loaded, key="filters-model", prefer="alexnet")
with c2:
    sort = st.selectbox("Order", list(SORTS), format_func=SORTS.get, key="filters-sort")
with c3:
    every = st.toggle("Every model", key="filters-all", help="Show every shipped model's first layer.")

model, card = loaded[arch]
w = first_layer_weights(model)
grid, idx = filter_grid(w, sort)
stem = type(model.stem).__name__
st.subheader(f"{card.get('title', arch)}: {w.shape[0]} kernels of {w.shape[2]}x{w.shape[3]}x{w.shape[1]}")
st.caption(f"Layer `{model.stem_path}` ({stem}, stride {getattr(model.stem, 'stride', ('?',))[0]}). "
           f"{'Patch embedding: each kernel is one linear projection of a patch.' if 'patch' in model.stem_path or 'stem.proj' in model.stem_path else ''}")
st.image(grid, width=min(900, grid.shape[1] * 2))

if every:
    st.subheader("Every shipped model's first layer")
    cols = st.columns(3)
    for i, (a, (m, c)) in enumerate(loaded.items()):
        wa = first_layer_weights(m)
        g, _ = filter_grid(wa, sort)
        with cols[i % 3]:
            st.image(g, caption=f"{c.get('title', a)} ({get_spec(a).year}): {wa.shape[0]} x "
                                f"{wa.shape[2]}x{wa.shape[3]}", width="stretch")

st.header("Activation maps of your image")
images = ui.image_inputs("filters", multiple=False)
if images:
    item = images[0]
    x = data.preprocess(item.image, model.input_size, model.in_chans)
    with zoo.using():
        acts = first_layer_activations(model, x)
    left, right = st.columns([1, 3])
    with left:
        st.image(tensor_preview(x), caption=f"{item.name}, as {card.get('title', arch)} sees it", width="stretch")
        ui.show_notes(item)
    with right:
        n = min(64, acts.shape[1])
        st.image(activation_grid(acts, idx, limit=n),
                 caption=f"First {n} of {acts.shape[1]} maps ({acts.shape[2]}x{acts.shape[3]}), in the kernel "
                         "order above; bright = strong response", width="stretch")

