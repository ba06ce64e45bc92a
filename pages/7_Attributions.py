"""Attributions with Captum: which pixels made two models decide, on one colour scale."""
from __future__ import annotations

import streamlit as st
import torch

from explorer import ui
from explorer.attribution import METHODS, attribute, overlay, shared_scale
from explorer.classify import tensor_preview
from models import data

ui.page("Attributions", "Integrated Gradients, SmoothGrad, Occlusion and Grad-CAM (Captum) for two models on "
        "the same image. Each method's maps share one colour scale, so brighter means more, across models.")

loaded, missing = ui.zoo_or_stop("there is nothing to explain")

chosen = ui.pick_models(loaded, key="attr-models", label="Two models", default_count=2, max_selections=2)
methods = st.multiselect("Methods", list(METHODS), default=["integrated_gradients", "gradcam"],
                         format_func=METHODS.get, key="attr-methods")
target_mode = st.radio("Explain", ["each model's top-1", "one class"], horizontal=True, key="attr-target-mode")
fixed = None
if target_mode == "one class":
    fixed = st.selectbox("Class", range(len(data.NAMES)), format_func=lambda i: data.NAMES[i], key="attr-class")
images = ui.image_inputs("attr", multiple=False)
if not chosen or not methods:
    st.info("Choose models and methods.")
    st.stop()
if not images:
    st.info("Upload an image or pick a sample.")
    st.stop()
item = images[0]

results, bar = {}, st.progress(0.0, text="Attributing...")
total = len(chosen) * len(methods)
for i, arch in enumerate(chosen):
    model, card = loaded[arch]
    x = data.preprocess(item.image, model.input_size, model.in_chans)
    with torch.no_grad():
        probs = model(x).softmax(-1)[0]
    target = int(probs.argmax()) if fixed is None else fixed
    results[arch] = {"x": x, "target": target, "p": float(probs[target]), "maps": {}}
    for j, method in enumerate(methods):
        bar.progress((i * len(methods) + j) / total, text=f"{METHODS[method]} on {card.get('title', arch)}...")
        results[arch]["maps"][method] = attribute(model, x, target, method)
bar.progress(1.0, text="Done.")

cols = st.columns(len(chosen))
for col, arch in zip(cols, chosen):
    r = results[arch]
    col.subheader(loaded[arch][1].get("title", arch))
    col.image(tensor_preview(r["x"]), caption=f"explaining {data.NAMES[r['target']]} (p = {r['p']:.1%})",
              width="stretch")
for method in methods:
    st.markdown(f"**{METHODS[method]}**")
    scaled = shared_scale([results[a]["maps"][method] for a in chosen], signed=method == "occlusion")
    cols = st.columns(len(chosen))
    for col, arch, m in zip(cols, chosen, scaled):
        base = tensor_preview(results[arch]["x"])
        if base.ndim == 2:
            base = base[..., None].repeat(3, -1)
        col.image(overlay(base, m), width="stretch")
st.caption("Red: evidence for the class; blue (occlusion only): covering that area raised the class's score. "
           "Models with different input sizes are shown at their own resolution.")
