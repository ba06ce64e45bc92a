"""Filters: every model's first-layer kernels (AlexNet's Figure 3), how structured they are, how they
formed during training (when the checkpoint kept snapshots), and an image's activation maps."""
from __future__ import annotations

import explorer  # noqa: F401,I001  first: sets OpenMP's spin before torch loads

import altair as alt
import pandas as pd
import streamlit as st

from explorer import ui, zoo
from explorer.classify import tensor_preview
from explorer.filters import (SNAPSHOTS, SORTS, activation_grid, filter_grid, load_snapshots, structure_ratio,
                              structure_verdict, teaching_default)
from models import data, get_spec
from models.probes import first_layer_activations, first_layer_weights

ui.page("Filters", "What each network learned to look for first: its conv1 (or patch-embedding) kernels, each "
        "scaled to its own range as in the papers' figures. In the AlexNet paper (Figure 3) the 96 kernels split "
        "into smooth colour blobs and grey oriented edges; here you can see whether, and when, each network's "
        "kernels reach that structure.")

loaded, missing = ui.zoo_or_stop("there are no learned filters to show")



@st.cache_data(show_spinner=False)
def stem_ratios(archs: tuple[str, ...]) -> dict[str, float]:
    """Every shipped model's first-layer structure ratio, once per server and zoo."""
    with zoo.using():
        return {a: structure_ratio(first_layer_weights(loaded[a][0])) for a in archs}


ratios = stem_ratios(tuple(loaded))
start = teaching_default(ratios)
linked = ui.deep_link()   # read before the picker writes its choice back to the address
c1, c2 = st.columns([1, 1])
with c1:
    arch = ui.pick_one_model(loaded, key="filters-model", prefer=start)
with c2:
    sort = st.selectbox("Order", list(SORTS), format_func=SORTS.get, key="filters-sort")
every = st.toggle("Show every model's first layer", key="filters-all")
ui.zoo_note(loaded, missing)
if start != "alexnet" and "alexnet" in ratios and linked is None and arch == start:
    st.caption(f":material/info: The page opens on {ui.title_of(loaded, start)}, whose first-layer kernels show the "
               f"most structure of the shipped models ({ratios[start]:.1f}x a random init's low-frequency energy), "
               f"not on AlexNet: its kernels measure {ratios['alexnet']:.1f}x, close to noise at the budget it was "
               "trained with here. Choose AlexNet above to see them.")


model, card = loaded[arch]
w = first_layer_weights(model)
total = w.shape[0]   # snapshots keep the first SNAPSHOT_KERNELS of them
snaps = load_snapshots(zoo.CHECKPOINTS / arch / SNAPSHOTS)
epoch = None
if snaps:
    epochs = [e for e, _ in snaps]
    epoch = st.select_slider("Training epoch", options=epochs, value=epochs[-1], key="filters-epoch",
                             help="First-layer kernels saved by the trainer during training.")
    w = dict(snaps)[epoch].float()
grid, idx = filter_grid(w, sort)
ratio = structure_ratio(w)
title = card.get("title", arch)
count = f"{w.shape[0]} kernels" if w.shape[0] == total else f"the first {w.shape[0]} of its {total} kernels"
st.subheader(f"{title}: {count} of {w.shape[2]}x{w.shape[3]}x{w.shape[1]}"
             + (f", after epoch {epoch}" if epoch is not None else ""))
stride = getattr(model.stem, "stride", ("?",))[0]
st.caption(f"Layer `{model.stem_path}` ({type(model.stem).__name__}, stride {stride})."
           + (" A patch embedding: each kernel is one linear projection of a 16x16 patch." if "patch" in model.stem_path
              or "stem.proj" in model.stem_path else ""))
big = ui.magnify(grid, min(900, 2 * grid.shape[1]))   # kernels magnified with sharp pixels, not the browser's blur
st.image(big, width=big.shape[1])
ui.save_png(big, f"vision-hist-{arch}-conv1" + (f"-epoch{epoch}" if epoch is not None else "") + ".png", "filters-save")
st.markdown(f"**Structure:** these kernels hold **{ratio:.1f}x** the low-frequency energy of random kernels of the "
            f"same shape, {structure_verdict(ratio, tuple(w.shape))}."
            + ("" if ratio >= 1.3 or epoch is not None else
               f" This checkpoint was trained for {card.get('epochs')} epochs on "
               f"{str(card.get('hardware', 'an unknown device')).removeprefix('1x ')}; "
               "the paper's Figure 3 came from 90 epochs on two GPUs."))
st.caption("Low-frequency energy: the share of each kernel's spectral energy (mean removed) at spatial frequencies up "
           "to a quarter of a cycle per pixel, averaged over kernels, divided by the same for a Kaiming-normal "
           "random init (1.0). Smooth colour blobs and slow edges score 3 to 5; noise scores about 1.")
if snaps:
    traj = pd.DataFrame([{"epoch": e, "structure (x random init)": structure_ratio(s.float())} for e, s in snaps])
    ui.chart(alt.Chart(traj).mark_line(point=True).encode(
        x=alt.X("epoch:Q", title="epoch", axis=alt.Axis(tickMinStep=1, format="d")),
        y=alt.Y("structure (x random init):Q", scale=alt.Scale(zero=True)),
        tooltip=["epoch", alt.Tooltip("structure (x random init):Q", format=".2f")]).properties(height=220),
        width="stretch")
else:
    st.caption("This checkpoint was trained before the trainer kept first-layer snapshots, so only its final kernels "
               "can be shown; a model trained now keeps them at epochs 0, 1, 2, 5, 10, 20, 40 and the last, and "
               "this page then steps through them.")

if every:
    st.subheader("Every shipped model's first layer")
    cols = st.columns(3)
    for i, (a, (m, c)) in enumerate(loaded.items()):
        wa = first_layer_weights(m)
        g, _ = filter_grid(wa, sort)
        with cols[i % 3]:
            st.image(g, width="stretch", caption=f"{c.get('title', a)} ({get_spec(a).year}): {wa.shape[0]} x "
                                                 f"{wa.shape[2]}x{wa.shape[3]}; structure {structure_ratio(wa):.1f}x")
            ui.save_png(g, f"vision-hist-{a}-conv1.png", f"filters-save-{a}")

st.header("Activation maps of your image")
images = ui.image_inputs("filters", multiple=False)
if images:
    item = images[0]
    x = data.preprocess(item.image, model.input_size, model.in_chans)
    with zoo.using():
        acts = first_layer_activations(model, x)
    left, right = st.columns([1, 3])
    with left:
        ui.image(tensor_preview(x), f"{item.label}, as {title} sees it")
        ui.show_notes(item)
    with right:
        n = min(64, acts.shape[1])
        agrid = activation_grid(acts, idx, limit=n)
        ui.image(agrid,   # stretched at most MAX_ZOOM times: a wide column would blow a small grid into a blur
                 caption=f"First {n} of {acts.shape[1]} maps ({acts.shape[2]}x{acts.shape[3]}) of the shipped weights, "
                         "in the kernel order above; bright = strong response")
        ui.save_png(agrid, f"vision-hist-{arch}-conv1-maps.png", "filters-save-maps")
