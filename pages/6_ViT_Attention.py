"""ViT attention: the [CLS] token's attention per layer and head, rollout and gradient rollout."""
from __future__ import annotations

import streamlit as st
import torch
import torch.nn.functional as F

from explorer import attention, ui
from explorer.attribution import overlay
from explorer.classify import tensor_preview
from models import data
from models.probes import attention_modules

ui.page("ViT attention", "Where the [CLS] token looks, in every layer and head (captured with Captum's "
        "LayerActivation on the attention probabilities), and how attention flows from the patches to the "
        "top: attention rollout (Abnar & Zuidema 2020) and its gradient-weighted variant.")

loaded, missing = ui.loaded_zoo()
vits = ui.applicable(loaded, attention_modules, "no self-attention")
if not vits:
    st.info("No shipped model has self-attention layers. " + missing.get("vit", ""))
    st.stop()

arch = ui.pick_one_model(vits, key="att-model")
model, card = vits[arch]
images = ui.image_inputs("attention", multiple=False)
if not images:
    st.info("Upload an image or pick a sample.")
    st.stop()
item = images[0]
x = data.preprocess(item.image, model.input_size, model.in_chans)
with torch.no_grad():
    probs = model(x).softmax(-1)[0]
names = [c["name"] for c in card.get("classes", [])] or data.NAMES
top = int(probs.argmax())
target = st.selectbox("Explain class", range(len(names)), index=top, key="att-target",
                      format_func=lambda i: f"{names[i]} ({probs[i]:.1%}){' — top-1' if i == top else ''}")
base = tensor_preview(x)
size = base.shape[:2]


def up(m: torch.Tensor) -> torch.Tensor:
    return F.interpolate(m[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]


att = attention.capture_attention(model, x)
maps = attention.rollout_maps(model, x, target)
c1, c2, c3 = st.columns(3)
c1.image(base, caption="input", width="stretch")
c2.image(overlay(base, up(maps["rollout"][0])), caption="attention rollout", width="stretch")
c3.image(overlay(base, up(maps["grad_rollout"][0])), caption=f"gradient rollout for {names[target]}", width="stretch")

st.subheader("[CLS] attention per layer and head")
cls = attention.cls_maps(att, model)[0]          # (L, heads, gh, gw)
layers, heads = cls.shape[:2]
layer = st.slider("Layer", 1, layers, layers, key="att-layer")
cols = st.columns(heads + 1)
mean = cls[layer - 1].mean(0)
cols[0].image(overlay(base, up(mean / mean.max())), caption=f"layer {layer}, mean of heads", width="stretch")
for h in range(heads):
    m = cls[layer - 1, h]
    cols[h + 1].image(overlay(base, up(m / m.max())), caption=f"head {h + 1}", width="stretch")
with st.expander("Every layer (mean over heads)"):
    grid = st.columns(6)
    for i in range(layers):
        m = cls[i].mean(0)
        grid[i % 6].image(overlay(base, up(m / m.max())), caption=f"layer {i + 1}", width="stretch")
