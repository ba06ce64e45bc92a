"""Squeeze-and-Excitation: every block's channel gates for an image, and class-average profiles."""
from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from explorer import se, ui, zoo
from models import data
from models.probes import se_gates, se_modules

ui.page("Squeeze-and-Excitation weights", "An SE block squeezes each channel to one number and learns a gate "
        "in (0, 1) for every channel. Early blocks gate much the same way for every image; deep blocks become "
        "class-specific (the SENet paper's Figure 6).")

loaded, missing = ui.loaded_zoo()
with_se = ui.applicable(loaded, se_modules, "no SE blocks")
if not with_se:
    why = missing.get("se_resnet18", "")
    st.info("No shipped model has Squeeze-and-Excitation blocks. " + (why or ""))
    st.stop()

arch = ui.pick_one_model(with_se, key="se-model")
model, card = with_se[arch]
blocks = len(se_modules(model))

st.header("Gates for your images")
images = ui.image_inputs("se")[:2]
if not images:
    st.info("Upload or pick one image (two to compare them).")
else:
    frames = []
    for item in images:
        x = data.preprocess(item.image, model.input_size, model.in_chans)
        gates = se_gates(model, x)
        frames.append(pd.DataFrame(se.gate_rows(gates)).assign(image=item.name))
    df = pd.concat(frames)
    if len(images) == 2:
        a, b = (f.set_index(["block", "channel"])["gate"] for f in frames)
        diff = (a - b).reset_index().assign(image=f"{images[0].name} minus {images[1].name}")
        st.altair_chart(alt.Chart(diff).mark_rect().encode(
            x=alt.X("channel:O", axis=None), y="block:O",
            color=alt.Color("gate:Q", scale=alt.Scale(scheme="redblue", domainMid=0), title="difference"),
            tooltip=["block", "channel", alt.Tooltip("gate:Q", format=".3f")]).properties(
            height=220, title=diff["image"].iloc[0]), width="stretch")
    for name, part in df.groupby("image", sort=False):
        st.altair_chart(alt.Chart(part).mark_rect().encode(
            x=alt.X("channel:O", axis=None, title="channel"), y=alt.Y("block:O", title="SE block"),
            color=alt.Color("gate:Q", scale=alt.Scale(scheme="viridis", domain=[0, 1])),
            tooltip=["block", "channel", alt.Tooltip("gate:Q", format=".3f")]).properties(height=200, title=name),
            width="stretch")
    st.caption(f"{blocks} blocks; each row holds that block's channels (64 to 512).")

st.header("Class-average excitation")
prof = se.load_profiles(zoo.CHECKPOINTS / arch / se.PROFILES, card)
if prof is None:
    st.info(f"No class profiles shipped for {card.get('title', arch)}; build them with "
            f"`python scripts/se_profiles.py --arch {arch}`.")
else:
    profiles, meta = prof
    block = st.slider("Block", 1, len(profiles), len(profiles) - 1, key="se-block")
    classes = st.multiselect("Classes", data.NAMES, default=data.NAMES[:4], key="se-classes")
    rows = pd.DataFrame(se.profile_rows(profiles, block))
    rows = rows[rows["class"].isin(classes)]
    st.altair_chart(alt.Chart(rows).mark_line(strokeWidth=1).encode(
        x=alt.X("channel:Q"), y=alt.Y("gate:Q", scale=alt.Scale(domain=[0, 1])), color="class:N",
        tooltip=["class", "channel", alt.Tooltip("gate:Q", format=".3f")]).properties(height=300), width="stretch")
    st.caption(f"Mean gate of each channel over the val images of each class ({meta.get('val_images')} images).")
