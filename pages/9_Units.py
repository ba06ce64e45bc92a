"""Units: what the deeper layers respond to. For every unit of a few layers, the val images that
excite it most (cropped to its receptive field), its mean response per class, and how selective
it is; permalinks per unit (`?arch=&layer=&unit=`)."""
from __future__ import annotations

import explorer  # noqa: F401,I001  first: sets OpenMP's spin before torch loads

import math

import altair as alt
import pandas as pd
import streamlit as st

from explorer import retrieval, ui, units, zoo
from models import data

UNIT_PX = 176   # the largest a top image is drawn

ui.page("Units", "What each network's deeper units respond to, in the spirit of Zeiler & Fergus's figures of "
        "layers 2 to 5 and OpenAI Microscope's dataset examples: for every unit (channel) of a few layers, the "
        "images that excite it most, cropped to what it sees, and how strongly each class drives it.")

loaded, missing = ui.zoo_or_stop("there are no units to show")
arch = ui.pick_one_model(loaded, key="units-model", prefer="alexnet")
ui.zoo_note(loaded, missing)
model, card = loaded[arch]


@st.cache_resource(show_spinner="Loading the unit file...")
def unit_file(arch: str):
    return units.load(zoo.CHECKPOINTS / arch / units.UNITS, loaded[arch][1])


@st.cache_resource(show_spinner=False)
def gallery():
    return retrieval.load_gallery(zoo.CHECKPOINTS / retrieval.GALLERY)


@st.cache_data(show_spinner="Projecting the unit back to the pixels (deconvnet)...", max_entries=64)
def deconv_pictures(arch: str, key: str, unit: int):
    layer = next(ly for ly in unit_file(arch).layers if ly.key == key)
    with zoo.using():
        return units.projections(loaded[arch][0], unit_file(arch), layer, unit, data.default_root())


u = unit_file(arch)
if u is None:
    st.info(f"No unit file is shipped for {card.get('title', arch)} yet; `python scripts/units.py --arch {arch}` "
            "computes it (a few minutes on a CPU).", icon=":material/info:")
    st.stop()

# --- every layer ---------------------------------------------------------------------------
st.header("Layer by layer: how class-selective the units are")
summary = pd.DataFrame(units.layer_summary(u))[["layer", "mean selectivity", "selective (SI > 0.5)", "nearly dead",
                                                   "units", "median selectivity", "key"]]
dist = []
for ly in u.layers:
    v = u.val[ly.key]
    si = units.selectivity(v["class_mean"])
    dead = units.nearly_dead(v["active"], v["top_val"])
    dist += [{"layer": ly.label, "selectivity": float(s)} for s, d in zip(si.tolist(), dead.tolist()) if not d]
order = [ly.label for ly in u.layers]
ui.chart(alt.Chart(pd.DataFrame(dist)).mark_boxplot(extent="min-max", size=28).encode(
    x=alt.X("layer:N", sort=order, title=None, axis=alt.Axis(labelAngle=-45, labelLimit=200, labelOverlap=False)),
    y=alt.Y("selectivity:Q", title="class-selectivity index", scale=alt.Scale(domain=[0, 1])),
    color=alt.value("#4e79a7")).properties(height=340), width="stretch")
st.markdown(units.depth_sentence(u))
st.dataframe(summary.drop(columns=["key"]), hide_index=True, width="stretch", column_config={
    "layer": st.column_config.TextColumn(width=150),
    "mean selectivity": st.column_config.NumberColumn("mean SI", format="%.3f", help="mean selectivity index"),
    "median selectivity": st.column_config.NumberColumn("median SI", format="%.3f", help="median selectivity index"),
    "selective (SI > 0.5)": st.column_config.NumberColumn("SI > 0.5", help="units with a selectivity index over 0.5"),
    "nearly dead": st.column_config.NumberColumn(help="active on fewer than 1% of val images"),
})
st.caption(f"SI, the selectivity index (Morcos et al. 2018): (mean of the best class - mean of the other nine) / (their sum), "
           f"from each unit's mean activation per class over {u.meta.get('val_images')} val images; 0: every class "
           "alike, 1: one class only. Nearly dead: active on fewer than 1% of val images (left out of the box plot).")

# --- one unit ------------------------------------------------------------------------------
st.header("One unit")
keys = [ly.key for ly in u.layers]
q = st.query_params
start_layer = q.get("layer") if q.get("layer") in keys else keys[min(len(keys) - 1, len(keys) // 2)]
c1, c2 = st.columns([1, 1])
with c1:
    key = st.selectbox("Layer", keys, index=keys.index(start_layer), key="units-layer",
                       format_func=lambda k: next(f"{ly.label} ({ly.channels} units)" for ly in u.layers if ly.key == k))
layer = next(ly for ly in u.layers if ly.key == key)
v = u.val[key]
si = units.selectivity(v["class_mean"])
dead = units.nearly_dead(v["active"], v["top_val"])
best = v["class_mean"].argmax(1)
ranked = si.argsort(descending=True).tolist()
with c2:
    try:
        linked_unit = int(q.get("unit", ranked[0]))
    except ValueError:
        linked_unit = ranked[0]
    linked_unit = linked_unit if 0 <= linked_unit < layer.channels else ranked[0]
    unit = st.selectbox("Unit · preferred class · selectivity", ranked, index=ranked.index(linked_unit), key="units-unit",
                        format_func=lambda c: f"unit {c} · {data.NAMES[int(best[c])]} · {float(si[c]):.2f}"
                                              f"{' · nearly dead' if dead[c] else ''}")
if q.get("layer") != key or q.get("unit") != str(unit):
    q["layer"], q["unit"] = key, str(unit)

root = data.default_root()
use_val = root is not None and ui.data_fingerprint() == u.meta.get("data_fingerprint")
crops = units.unit_crops(u, layer, unit, model.input_size, root if use_val else None,
                         None if use_val else gallery())
left, right = st.columns([3, 2])
with left:
    what = ("the whole image" if layer.grid is None else
            f"a {2 * layer.jump:g} px window around the token" if math.isinf(layer.rf) else
            f"the whole image (its receptive field, {layer.rf:g} px, is larger than the {model.input_size} px input)"
            if layer.rf >= model.input_size else f"its {layer.rf:g} px receptive field")
    st.markdown(f"**Top 9 {'val' if use_val else 'gallery'} images** of unit {unit} in {layer.label}, each cropped to "
                f"{what}" + ("" if layer.grid is None or layer.rf >= model.input_size else
                             " around the position where the unit peaks") + ":")
    for row in range(3):
        cols = st.columns(3)
        for col, c in zip(cols, crops[row * 3:row * 3 + 3]):
            # at most ui.MAX_ZOOM times the pixels the crop was cut from (more is only a blur), 96 px at least
            col.image(c["image"], width=min(UNIT_PX, max(96, int(ui.MAX_ZOOM * c["source_px"]))),
                      caption=f"{c['class']} · peak {c['activation']:.2f}")
    st.caption("Under each image: its class, and the unit's peak activation on it (its strongest position). The "
               "chart beside averages the unit over every position and every image of a class, so its values are "
               "smaller.")
    if not use_val:
        why = ("the Imagenette val split is not on this machine (`python scripts/download_data.py` fetches it)"
               if root is None else "the Imagenette copy on this machine is not the one the unit file was computed on")
        st.caption(f"From the 1,000 training images shipped with the app (64 px thumbnails), as {why}.")
    # Zeiler & Fergus's Figure 2: each top image's activation projected back to the pixels
    not_deconv = units.deconv_applicable(model)
    if st.toggle("Deconvnet projections (Zeiler & Fergus 2014)",
                 key="units-deconv", disabled=not use_val or not_deconv is not None,
                 help="What in each top image drives the unit: its activation projected back to the pixels."):
        projs = deconv_pictures(arch, key, unit)
        for row in range(3):
            cols = st.columns(3)
            for col, c, pic in zip(cols, crops[row * 3:row * 3 + 3], projs[row * 3:row * 3 + 3]):
                col.image(pic, width=min(UNIT_PX, max(96, int(ui.MAX_ZOOM * c["source_px"]))),
                          caption=f"{c['class']} · {'projection' if c['activation'] > 0 else 'silent'}")
        st.caption("The unit's strongest activation in each image above, alone (every other activation of the layer "
                   "set to zero), projected back to the pixels by a deconvnet: each convolution undone by its "
                   "transpose with the same filters, each max-pooling by the positions that won it, each ReLU by "
                   "rectifying the reconstruction" + (", each SE gate kept at its value for the image" if
                                                      "Sigmoid" in {type(m).__name__ for m in model.modules()} else "")
                   + ". Grey is zero (all grey: the unit is silent on that image); each picture is scaled to its own "
                   "strongest pixel and cropped like the image above. A large stride in the first layer makes them "
                   "grainy: Zeiler & Fergus found that aliasing in AlexNet and gave ZFNet 7x7 stride-2 filters.")
    elif not_deconv is not None:
        st.caption(f"Deconvnet projections are not shown for {card.get('title', arch)}: {not_deconv}")
    elif not use_val:
        st.caption("Deconvnet projections need the val images at full size, which are not on this machine.")
with right:
    means = pd.DataFrame({"class": data.NAMES, "mean activation": v["class_mean"][unit].tolist()})
    means["preferred"] = means["class"] == data.NAMES[int(best[unit])]
    st.markdown("**Mean activation per class** (val)")
    ui.chart(alt.Chart(means).mark_bar().encode(
        y=alt.Y("class:N", sort=data.NAMES, title=None),
        x=alt.X("mean activation:Q", title="mean activation"),
        color=alt.condition("datum.preferred", alt.value("#e15759"), alt.value("#9aa8bd")),
        tooltip=["class", alt.Tooltip("mean activation:Q", format=".3f")]).properties(height=330), width="stretch")
    st.markdown(f"Selectivity **{float(si[unit]):.2f}** for **{data.NAMES[int(best[unit])]}**; active on "
                f"{float(v['active'][unit]):.0%} of val images{'; nearly dead' if dead[unit] else ''}.")
    rf = "the whole image" if math.isinf(layer.rf) else f"{layer.rf:g} px"
    st.caption(f"Layer `{layer.path or 'pre-logits'}`, {layer.channels} units"
               + (f" on a {layer.grid[0]}x{layer.grid[1]} grid; receptive field {rf}" if layer.grid else "")
               + ". The address bar now links to this unit.")
