"""Squeeze-and-Excitation: every block's channel gates for an image, and class-average profiles."""
from __future__ import annotations

import explorer  # noqa: F401,I001  first: sets OpenMP's spin before torch loads

import altair as alt
import pandas as pd
import streamlit as st

from explorer import se, ui, zoo
from models import data
from models.probes import se_gates, se_modules

ui.page("SE gates", "An SE block squeezes each channel to one number and learns a gate "
        "in (0, 1) for every channel. Averaged over the images of each class, early blocks gate much the same way "
        "for every class and deep blocks become class-specific (the SENet paper's Figure 6); single images can differ "
        "anywhere.")

loaded, missing = ui.loaded_zoo()
with_se = ui.applicable(loaded, se_modules, "no SE blocks")
if not with_se:
    st.info("No shipped model has Squeeze-and-Excitation blocks yet; train SE-ResNet-18 with "
            "`python scripts/train.py --arch se_resnet18`.", icon=":material/info:")
    st.stop()

arch = ui.pick_one_model(with_se, key="se-model")
model, card = with_se[arch]
blocks = len(se_modules(model))
gate_scale = alt.Scale(scheme="viridis", domain=[0, 1])

@st.cache_data(max_entries=64, show_spinner=False)
def gates_of(digest: str, arch: str, _x):
    """Every SE block's gates for one image (once per image and model, for every session)."""
    with zoo.using():
        return se_gates(with_se[arch][0], _x)


st.header("Gates for your images")
images = ui.image_inputs("se", default=["golf_ball-1.jpg", "church-1.jpg"])[:2]
if images:
    frames = []
    for item in images:
        x = data.preprocess(item.image, model.input_size, model.in_chans)
        gates = gates_of(item.digest, arch, x)
        frames.append(pd.DataFrame(se.gate_rows(gates)).assign(image=item.name))
    cols = st.columns(len(images))
    for col, item in zip(cols, images):
        ui.image(item.image, item.label, target=col, max_width=160)   # a 64 px GIF is not blown up to 160
        ui.show_notes(item, col)
    for name, part in pd.concat(frames).groupby("image", sort=False):
        st.markdown(f"**{ui.plain(name)}**: each row one block, each column one channel")
        ui.chart(alt.Chart(part).mark_rect().encode(
            x=alt.X("channel:O", axis=None, title="channel"), y=alt.Y("block:O", title="SE block"),
            color=alt.Color("gate:Q", scale=gate_scale, legend=alt.Legend(orient="bottom", title="gate", gradientLength=220)),
            tooltip=["block", "channel", alt.Tooltip("gate:Q", format=".3f")]).properties(height=270),
            width="stretch")
    if len(images) == 2:
        a, b = (f.set_index(["block", "channel"])["gate"] for f in frames)
        diff = (a - b).reset_index()
        st.markdown(f"**{images[0].label} minus {images[1].label}**")
        ui.chart(alt.Chart(diff).mark_rect().encode(
            x=alt.X("channel:O", axis=None), y=alt.Y("block:O", title="SE block"),
            color=alt.Color("gate:Q", scale=alt.Scale(scheme="redblue", domainMid=0, reverse=True),
                            legend=alt.Legend(orient="bottom", title="difference", gradientLength=220)),
            tooltip=["block", "channel", alt.Tooltip("gate:Q", format=".3f", title="difference")]).properties(
            height=270), width="stretch")
        st.caption("Red: the first image opens the channel more; blue: the second. "
                   + se.difference_sentence(*(f.to_dict("records") for f in frames)))
    st.caption(f"{blocks} blocks; each row holds that block's channels (64 to 512).")

st.header("Class-average excitation")
prof = se.load_profiles(zoo.CHECKPOINTS / arch / se.PROFILES, card)
if prof is None:
    st.info(f"No class profiles shipped for {card.get('title', arch)}; build them with "
            f"`python scripts/se_profiles.py --arch {arch}`.", icon=":material/info:")
else:
    profiles, meta = prof
    spread = pd.DataFrame(se.specificity(profiles))
    st.markdown("**How class-specific each block's gates are**")
    ui.chart(alt.Chart(spread).mark_bar().encode(
        x=alt.X("block:O", title="SE block", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("spread across classes:Q", title="spread of class-mean gates"),
        tooltip=["block", alt.Tooltip("spread across classes:Q", format=".3f"), alt.Tooltip("mean gate:Q", format=".3f")])
        .properties(height=240), width="stretch")
    st.caption(f"For each channel, the standard deviation of its mean gate across the 10 classes, averaged over the "
               f"block's channels ({meta.get('val_images')} val images). Small: every class excites the block alike.")
    block = st.select_slider("Block", options=list(range(1, len(profiles) + 1)), value=len(profiles), key="se-block")
    rows = pd.DataFrame(se.sorted_profile_rows(profiles, block))
    st.markdown(f"**Block {block}: mean gate per class (rows) and channel (columns)**")
    ui.chart(alt.Chart(rows).mark_rect().encode(
        x=alt.X("rank:O", axis=None, title="channels, most class-specific first"),
        y=alt.Y("class:N", sort=data.NAMES, title=None),
        color=alt.Color("gate:Q", scale=gate_scale, legend=alt.Legend(orient="bottom", title="mean gate",
                                                                       gradientLength=220)),
        tooltip=["class", "channel", alt.Tooltip("gate:Q", format=".3f")]).properties(height=340), width="stretch")
    st.caption("Channels are sorted by how much their class means differ, most class-specific on the left; a "
               "column with one bright cell is a channel this block opens for one class.")
