"""Attention: the [CLS] token's attention per layer and head, rollout, and the ViT paper's
Figure 7 (attention distance by depth, position-embedding similarity) on our checkpoints,
with the same distance measure for MLP-Mixer's token mixing."""
from __future__ import annotations

import explorer  # noqa: F401,I001  first: sets OpenMP's spin before torch loads

import altair as alt
import pandas as pd
import streamlit as st
import torch
import torch.nn.functional as F

from explorer import attention, provenance, ui, zoo
from explorer.attribution import overlay
from explorer.classify import tensor_preview
from models import data, get_spec
from models.probes import attention_modules

ui.page("Attention", "Where a Vision Transformer looks: the [CLS] token's attention in every layer and head "
        "(captured with Captum's LayerActivation on the attention probabilities), how attention flows from the "
        "patches to the top (attention rollout, Abnar & Zuidema 2020, and its gradient-weighted variant), and "
        "how far each head looks as depth grows (the ViT paper's Figure 7).")

loaded, missing = ui.loaded_zoo()
vits = {a: v for a, v in loaded.items() if attention_modules(v[0])}
mixers = {a: v for a, v in loaded.items() if attention.is_mixer(v[0])}
others = [ui.title_of(loaded, a) for a in loaded if a not in vits and a not in mixers]
if others:
    st.caption(f"Not applicable, no self-attention or token mixing across image positions: {', '.join(others)}.")
if not vits and not mixers:
    st.info("No Vision Transformer or MLP-Mixer checkpoint is shipped yet, so there is no attention to show. "
            f"Train one with `python scripts/train.py --arch vit` (or `--arch mlp_mixer`), then "
            f"`python scripts/attention_figures.py`.", icon=":material/info:")
    st.stop()
# (network, (teacher, its weight in the loss; the trainer's default 0.5)): the pupils of one teacher named once
pupils = provenance.by_teacher(
    (ui.title_of(loaded, a), (provenance.teacher_title(loaded[a][1]),
                              (loaded[a][1].get("recipe") or {}).get("distill_alpha", 0.5)))
    for a in {**vits, **mixers} if provenance.teacher_title(loaded[a][1]))
taught = [f"{provenance.and_list(names)} learned from {teacher}'s answers as well as from the labels ({alpha:.0%} of "
          "each training step's loss)" for (teacher, alpha), names in pupils.items()]
if taught:
    st.caption(f":material/school: {'; '.join(taught)}: hard distillation, as in DeiT. What these networks attend "
               "to was shaped by a convolutional teacher too, not by the architecture alone.")


def figures_for(arch: str):
    return attention.load_figures(zoo.CHECKPOINTS / arch / attention.FIGURES, loaded[arch][1])


def distance_chart(dist: torch.Tensor, uniform: float, what: str):
    rows = [{"depth": layer + 1, "head": f"head {h + 1}", "distance (px)": float(dist[layer, h])}
            for layer in range(dist.shape[0]) for h in range(dist.shape[1])]
    df = pd.DataFrame(rows)
    points = alt.Chart(df).mark_circle(size=70).encode(
        x=alt.X("depth:Q", title=f"network depth ({what})", scale=alt.Scale(domain=[0.5, dist.shape[0] + 0.5]),
                axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("distance (px):Q", title="mean attention distance (px)", scale=alt.Scale(zero=True)),
        # one colour per head; a Mixer's token mixing has no heads, so no legend for it
        color=(alt.Color("head:N", legend=alt.Legend(orient="bottom", title=None, columns=6))
               if dist.shape[1] > 1 else alt.value("#4e79a7")),
        tooltip=["depth", "head", alt.Tooltip("distance (px):Q", format=".1f")])
    rule = alt.Chart(pd.DataFrame({"y": [uniform]})).mark_rule(strokeDash=[4, 4], color="grey").encode(y="y:Q")
    text = alt.Chart(pd.DataFrame({"y": [uniform], "t": ["uniform (attending everywhere)"]})).mark_text(
        align="right", dx=-4, dy=-6, color="grey").encode(y="y:Q", x=alt.value("width"), text="t:N")
    return (points + rule + text).properties(height=300)


@st.cache_data(max_entries=64, show_spinner="Reading the attention (a forward and a backward pass)...")
def looked_at(digest: str, arch: str, target: int, _x):
    """Attention weights and the two rollouts for one image and class, computed once per server:
    a second visit, another session on the same image, or the layer slider cost no pass."""
    with zoo.using():
        return attention.capture_attention(vits[arch][0], _x), attention.rollout_maps(vits[arch][0], _x, target)


linked_mixer = ui.deep_link(mixers, quiet=True) if mixers else None
if linked_mixer:
    st.caption(f":material/link: The link asks for {ui.title_of(loaded, linked_mixer)}, which has no attention to "
               "draw per image: its token mixing is the same for every image, and its section below measures how "
               "far it reaches" + (", with the distance measured for the Vision Transformer's heads." if vits else "."))
if vits:
    arch = ui.pick_one_model(vits, key="att-model", link_said=bool(linked_mixer))
    model, card = vits[arch]
    images = ui.image_inputs("attention", multiple=False)
    if images:
        item = images[0]
        x = data.preprocess(item.image, model.input_size, model.in_chans)
        probs = torch.tensor(ui.probabilities(vits, item.digest, arch, x))
        names = [c["name"] for c in card.get("classes", [])] or data.NAMES
        top = int(probs.argmax())
        target = st.selectbox("Explain class", range(len(names)), index=top, key="att-target",
                              format_func=lambda i: f"{names[i]} ({probs[i]:.1%}){' — top-1' if i == top else ''}")
        base = tensor_preview(x)
        size = base.shape[:2]

        def up(m: torch.Tensor) -> torch.Tensor:
            m = m / m.max().clamp(min=1e-12)
            return F.interpolate(m[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]

        att, maps = looked_at(item.digest, arch, target, x)
        c1, c2, c3 = st.columns(3)
        ui.image(base, f"{item.label}, the {size[0]} px input", c1)
        ui.image(overlay(base, up(maps["rollout"][0]), signed=False), "attention rollout", c2)
        ui.image(overlay(base, up(maps["grad_rollout"][0]), signed=False), f"gradient rollout for {names[target]}", c3)
        ui.show_notes(item)

        st.subheader("[CLS] attention per layer and head")
        cls = attention.cls_maps(att, model)[0]          # (L, heads, gh, gw)
        layers, heads = cls.shape[:2]
        layer = st.slider("Layer", 1, layers, layers, key="att-layer")
        cols = st.columns(heads + 1)
        ui.image(overlay(base, up(cls[layer - 1].mean(0)), signed=False), f"layer {layer}, mean of heads", cols[0])
        for h in range(heads):
            ui.image(overlay(base, up(cls[layer - 1, h]), signed=False), f"head {h + 1}", cols[h + 1])
        st.caption("Each map is scaled to its own maximum; bright = the [CLS] token attends there.")
        with st.expander("Every layer (mean over heads)"):
            grid = st.columns(6)
            for i in range(layers):
                ui.image(overlay(base, up(cls[i].mean(0)), signed=False), f"layer {i + 1}", grid[i % 6])

    st.subheader(f"How far {ui.title_of(loaded, arch)} looks, layer by layer")
    figs = figures_for(arch)
    if figs is None:
        st.info(f"No attention figures shipped for this checkpoint; `python scripts/attention_figures.py --arch {arch}` "
                "computes them.", icon=":material/info:")
    else:
        f, meta = figs
        ui.chart_cached("attention-distance", (arch, *f["distance"].flatten().tolist()), lambda: distance_chart(
            f["distance"], meta["uniform_distance"], "transformer block"), width="stretch")
        st.caption(f"Mean attention distance: for every patch, the pixel distance to each other patch weighted by the "
                   f"attention it pays it, averaged over {meta.get('images')} val images. Early heads that look near "
                   "and far at once, and deep heads that all look far, is what the ViT paper found at scale.")
        st.markdown(attention.distance_reading(f["distance"], meta["uniform_distance"]))
        left, right = st.columns([1, 1])
        with left:
            gh, gw = meta["grid"]
            sim_grid = attention.position_tiles(f["position_similarity"], (gh, gw))
            ui.image(sim_grid,
                     caption="Position-embedding similarity (the ViT paper's Figure 7, centre): tile (r, c) shows how "
                             "similar the embedding of the patch at row r, column c is to every other patch's "
                             "(each tile on its own scale).")
            ui.save_png(sim_grid, f"vision-hist-{arch}-position-similarity.png", f"attn-save-pos-{arch}")
        with right:
            hit, chance = attention.neighbour_fraction(f["position_similarity"], (gh, gw))
            st.markdown("A learned position embedding starts as noise; if training teaches it the image's 2-D "
                        "layout, each tile shows a bright spot at its own place fading with distance, and rows and "
                        "columns share structure.")
            st.markdown(f"Here, for **{100 * hit:.0f}%** of the {gh * gw} patches the most similar other embedding "
                        f"is one of its 8 neighbours (a random choice: {100 * chance:.0f}%): "
                        + ("the embedding has learned much of the layout." if hit >= 0.5 else
                           "some of the layout, not all of it." if hit >= 2 * chance else
                           "it has learned little of the layout."))

for arch in mixers:
    st.subheader(f"{ui.title_of(loaded, arch)}: how far its token mixing reaches")
    figs = figures_for(arch)
    if figs is None:
        st.info(f"No token-mixing figures shipped; `python scripts/attention_figures.py --arch {arch}` computes them.",
                icon=":material/info:")
        continue
    f, meta = figs
    ui.chart_cached("attention-distance", (arch, *f["distance"].flatten().tolist()), lambda: distance_chart(
        f["distance"], meta["uniform_distance"], "Mixer block"), width="stretch")
    st.caption("The same distance measure on each block's token-mixing weights |W2·W1| (rows normalised, GELU left "
               "out): how far, on average, the patches an output token draws on lie from it. "
               f"{get_spec(arch).title} mixes with fixed weights, the same for every image.")
    st.markdown(attention.distance_reading(f["distance"], meta["uniform_distance"]))
