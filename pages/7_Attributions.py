"""Attributions with Captum: which pixels made two models decide, each map on a readable scale."""
from __future__ import annotations

import explorer  # noqa: F401,I001  first: sets OpenMP's spin before torch loads

import math

import pandas as pd
import streamlit as st
import torch

from explorer import ui
from explorer.attribution import (AGREEMENT_GRID, METHODS, agreement, attribute, colorbar, default_pair,
                                  gradcam_grid, gradcam_reach, overlay, robust_scale, transformer_note)
from explorer.classify import tensor_preview
from models import data

ui.page("Attributions", "Which pixels made each model decide? Four Captum methods for two models on the same "
        "image. Each map is scaled to its own 99th percentile, so its pattern is visible whatever the model's "
        "scale; switch on a shared scale to compare strengths across models.")

loaded, missing = ui.zoo_or_stop("there is nothing to explain")
default = default_pair(loaded, ui.deep_link())   # the link and its neighbour, else the best CNN beside the ViT
chosen = ui.pick_models(loaded, key="attr-models", label="Two models", default=default, max_selections=2)
methods = st.multiselect("Methods", list(METHODS), default=list(METHODS), key="attr-methods",
                         format_func=lambda m: METHODS[m].label)
ui.zoo_note(loaded, missing)
c1, c2, c3 = st.columns([2, 2, 2])
with c1:
    target_mode = st.radio("Explain", ["each model's top-1", "one class"], horizontal=True, key="attr-target-mode")
with c2:
    fixed = None
    if target_mode == "one class":
        fixed = st.selectbox("Class", range(len(data.NAMES)), format_func=lambda i: data.NAMES[i], key="attr-class")
with c3:
    shared = st.toggle("Shared scale", key="attr-shared",
                       help="Off: each map scaled to its own 99th percentile of |attribution|. On: both models' maps "
                            "of a method share the wider scale, so strengths compare (the weaker map may fade).")
images = ui.image_inputs("attr", multiple=False)
if not chosen or not methods:
    st.info("Choose one or two models and at least one method.", icon=":material/info:")
    st.stop()
if not images:
    st.stop()
item = images[0]
target_class = fixed


@st.cache_data(show_spinner=False)
def reach(arch: str) -> float | None:
    """Receptive field of the units Grad-CAM reads (the same for every image)."""
    model, _ = loaded[arch]
    return gradcam_reach(model, arch, data.preprocess(images[0].image, model.input_size, model.in_chans))


@st.cache_data(max_entries=512, show_spinner=False)
def attribution(digest: str, arch: str, method: str, target: int, _x):
    """One method's map (numpy) for one image, model and class: computed once per server, so
    another visit, the shared-scale switch or a second look costs nothing."""
    return attribute(loaded[arch][0], _x, target, method).numpy()


# The gradient-path methods run the model 16 to 50 times each (seconds of this server's CPU for
# two models); Grad-CAM needs one pass. The shipped samples' maps are computed once per server,
# for everyone; for an upload the heavy ones wait for the learner's click, so that a class
# uploading at once is answered at once (issue 18).
heavy = [m for m in methods if m != "gradcam"]
is_sample = st.session_state.get("attr-source") == "Sample images"
asked = st.session_state.get("attr-heavy") == item.digest
if heavy and not is_sample and not asked:
    names = " and ".join(METHODS[m].label for m in heavy).replace(" and ", ", ", len(heavy) - 2)
    st.info(f"{names} run each model 16 to 50 times on your image (several seconds); Grad-CAM needs one pass and "
            "is shown below." if "gradcam" in methods else
            f"{names} run each model 16 to 50 times on your image (several seconds).", icon=":material/schedule:")
    if st.button(f"Compute {names}", key="attr-compute", type="primary"):
        st.session_state["attr-heavy"] = item.digest
        st.rerun()
    methods = [m for m in methods if m == "gradcam"]
    if not methods:
        st.stop()

results, bar = {}, st.progress(0.0, text="Attributing...")
total = len(chosen) * len(methods)
for i, arch in enumerate(chosen):
    model, card = loaded[arch]
    x = data.preprocess(item.image, model.input_size, model.in_chans)
    probs = ui.probabilities(loaded, item.digest, arch, x)
    target = max(range(len(probs)), key=probs.__getitem__) if target_class is None else target_class
    results[arch] = {"x": x, "target": target, "p": float(probs[target]), "maps": {}}
    for j, method in enumerate(methods):
        bar.progress((i * len(methods) + j) / total, text=f"{METHODS[method].label} on {ui.title_of(loaded, arch)}...")
        results[arch]["maps"][method] = torch.from_numpy(attribution(item.digest, arch, method, target, x))
bar.empty()

st.markdown(f"Explaining **{item.label}**: each model's view of it, then each method's map.")
ui.show_notes(item)
cols = st.columns(len(chosen))
for col, arch in zip(cols, chosen):
    r = results[arch]
    with col:
        st.subheader(ui.title_of(loaded, arch))
        st.image(ui.magnify(tensor_preview(r["x"]), 180), width=180,   # small inputs kept sharp
                 caption=f"explaining {data.NAMES[r['target']]} (p = {r['p']:.1%}); the {r['x'].shape[-1]} px input")
for method in methods:
    meta = METHODS[method]
    st.markdown(f"#### {meta.label}")
    st.caption(meta.means)
    scaled, spans = robust_scale([results[a]["maps"][method] for a in chosen], shared=shared, signed=meta.signed)
    cols = st.columns(len(chosen))
    for col, arch, m, (lo, top) in zip(cols, chosen, scaled, spans):
        base = tensor_preview(results[arch]["x"])
        with col:
            extra = ""
            if method == "gradcam":
                gh, gw = gradcam_grid(loaded[arch][0], results[arch]["x"])
                extra = f"; computed on a {gh}x{gw} grid"
                rf = reach(arch)
                if rf is not None:
                    size = results[arch]["x"].shape[-1]
                    extra += (" whose units each see the whole image" if math.isinf(rf) else
                              f" whose units each see {rf:g} px" + (f" (more than the {size} px input)"
                                                                     if rf >= size else ""))
            shown = overlay(base, m, meta.signed)
            shown = ui.magnify(shown, 256)                     # shown at 256 px, pixels kept sharp
            low = "≈0" if abs(lo) < 1e-3 * abs(top) else ui.human(lo)
            st.image(shown, width=256,
                     caption=f"{ui.title_of(loaded, arch)}: colour scale ±{ui.human(top)}{extra}" if meta.signed
                     else f"{ui.title_of(loaded, arch)}: colour scale {low} to {ui.human(top)}{extra}")
            note = transformer_note(arch, method)
            if note:
                st.caption(f":material/warning: {note}")
    left, _ = st.columns([1, 1])
    with left:
        st.image(colorbar(meta.signed, width=768), width="stretch",
                 caption=("evidence against the class  ←  0  →  evidence for it" if meta.signed
                          else "lowest in the map  →  strongest"))
st.caption("Scales are in the method's own units: logit change per pixel for Integrated Gradients and Occlusion, "
           "gradient size for SmoothGrad, and for Grad-CAM the layer's activations weighted by gradients, which have no "
           "fixed unit and differ between models. A map's colour reaches full strength at its "
           "99th percentile; unsigned maps start at their own minimum. Models with different input sizes are shown "
           "at their own resolution.")
if len(methods) > 1:
    st.markdown("#### Do the methods agree?")
    pairs = {arch: agreement(results[arch]["maps"]) for arch in chosen}
    table = pd.DataFrame([{"methods": f"{METHODS[p['a']].label} · {METHODS[p['b']].label}",
                           **{ui.title_of(loaded, arch): pairs[arch][k]["rho"] for arch in chosen}}
                          for k, p in enumerate(pairs[chosen[0]])])
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "methods": st.column_config.TextColumn(width="medium"),
        **{ui.title_of(loaded, arch): st.column_config.NumberColumn(format="%.2f") for arch in chosen}})
    lines = []
    for arch in chosen:
        defined = [p for p in pairs[arch] if p["rho"] is not None]
        if len(defined) < 2:
            lines.append(f"{ui.title_of(loaded, arch)}: too many of its maps are flat (the same everywhere) to "
                         "compare.")
            continue
        worst = min(defined, key=lambda p: p["rho"])
        best = max(defined, key=lambda p: p["rho"])
        lines.append(f"{ui.title_of(loaded, arch)}: {METHODS[best['a']].label} and {METHODS[best['b']].label} agree "
                     f"most (ρ = {best['rho']:.2f}), {METHODS[worst['a']].label} and {METHODS[worst['b']].label} least "
                     f"(ρ = {worst['rho']:.2f}).")
    st.markdown("  \n".join(lines))
    st.caption(f"Spearman's rank correlation of two maps over an {AGREEMENT_GRID}x{AGREEMENT_GRID} split of the image "
               "(empty where a map is flat, the same everywhere): "
               "1, both methods rank the regions alike; 0, unrelated; below 0, one puts the evidence where the other "
               "puts the least. Attribution methods often disagree: each answers a different question. Occlusion "
               "is the most direct (it covers each patch and scores the image again); the gradient methods follow "
               "the network's local slope, which can point elsewhere.")
