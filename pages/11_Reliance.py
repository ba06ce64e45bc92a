"""Reliance: what each network relies on. Across the zoo (precomputed by scripts/reliance.py):
shuffled and occluded images (Naseer et al. 2021), FGSM and PGD with their transfer, Fourier
noise (Yin et al. 2019), effective receptive fields (Luo et al. 2016); and on one image, every
model's answer to it shuffled, hidden or attacked. The computing is in explorer/reliance*.py."""
from __future__ import annotations

import explorer  # noqa: F401,I001  first: sets OpenMP's spin before torch loads

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
import torch

from explorer import reliance, sidecar, ui, zoo
from explorer import reliance_zoo as rz
from explorer.attribution import colormap
from explorer.classify import tensor_preview
from models import data

REFRESH = "python scripts/reliance.py"

ui.page("Reliance", "What does each network rely on? Cut images into patches and shuffle them, or hide a growing "
        "share of them (Naseer et al., NeurIPS 2021); change every pixel by a few 1/255 steps in the direction that "
        "hurts a model most (FGSM, PGD) and see whom else it fools; add stripes of one frequency (Yin et al., "
        "NeurIPS 2019); and measure which input pixels actually move a unit (Luo et al., NeurIPS 2016).")

loaded, missing = ui.zoo_or_stop("there is nothing to test")
ui.zoo_note(loaded, missing)
titles = {a: ui.title_of(loaded, a) for a in loaded}


@st.cache_resource(show_spinner="Loading the reliance files...")
def reliance_of(arch: str, weights: str):
    return rz.load(zoo.CHECKPOINTS / arch / rz.FILE, loaded[arch][1])


@st.cache_resource(show_spinner=False)
def transfer_of(weights: tuple):
    return rz.load_transfer(zoo.CHECKPOINTS / rz.TRANSFER, {a: c for a, (_, c) in loaded.items()})


shas = {a: sidecar.weights_sha(card) for a, (_, card) in loaded.items()}
rel = {a: r for a in loaded if (r := reliance_of(a, shas[a])) is not None}
if not rel:
    st.info(f"No reliance file is shipped for the installed models yet; `{REFRESH}` computes them (minutes per "
            "model on a CPU). The parts on one image below work without them.", icon=":material/info:")
else:
    lacking = [titles[a] for a in loaded if a not in rel]
    if lacking:
        st.caption(f"Not in the zoo-wide charts, no reliance file made from their weights yet: {', '.join(lacking)} "
                   f"(`{REFRESH} --arch NAME` computes it).")
    first = next(iter(rel.values())).meta
KEY = tuple(sorted(shas[a] for a in rel))
COLORS = ui.model_colors([titles[a] for a in rel])   # the legends name the models the charts draw


def curve_chart(key: str, y_title: str = "val top-1 (%)", height: int = 300):
    rows = pd.DataFrame(rz.curve_rows(rel, titles, key))
    order = list(dict.fromkeys(rows.sort_values("x")["setting"]))

    def build():
        line = alt.Chart(rows).mark_line(point=alt.OverlayMarkDef(size=50, filled=True)).encode(
            x=alt.X("setting:N", sort=order, title=rz.CURVES[key][1], axis=alt.Axis(labelAngle=0)),
            y=alt.Y("top-1 (%):Q", title=y_title, scale=alt.Scale(domain=[0, 100])),
            color=alt.Color("model:N", scale=COLORS, legend=ui.model_legend()),
            tooltip=["model", "setting", alt.Tooltip("top-1 (%):Q", format=".0f")])
        chance = alt.Chart(pd.DataFrame({"y": [10.0]})).mark_rule(strokeDash=[4, 4], color="#888").encode(y="y:Q")
        return (line + chance).properties(height=ui.height_with_legend(height, rows["model"].nunique()))
    ui.chart_cached(f"reliance-{key}", KEY, build, width="stretch")


# --- shuffled and occluded ------------------------------------------------------------------
st.header("Shuffled and occluded")
if rel:
    st.markdown("**Across the zoo**: val top-1 on the same images, cut into a grid of patches and shuffled, and with "
                "a growing share of the patches replaced by the mean colour.")
    curve_chart("shuffle")
    st.markdown(rz.kept_sentence(rel, titles, "shuffle", 4))
    curve_chart("drop")
    st.markdown(rz.kept_sentence(rel, titles, "drop", 0.5))
    st.caption(f"{first['n_images']} val images, a fixed seeded subset balanced over the classes, in the 128 px "
               "evaluation view, resized to each model's own input size; the dashed line is chance (10 classes). "
               "A network that reads the layout of the whole image loses its answer once the patches move; one "
               "that counts local textures keeps it.")

st.subheader("On one image")
images = ui.image_inputs("reliance", multiple=False)
item = images[0] if images else None
if item is not None:
    x = reliance.pixels(item.image)

    @st.cache_data(max_entries=256, show_spinner=False)
    def answers_of(digest: str, what: str, _x) -> dict:
        """Every model's answer to one (manipulated) image, once per image, manipulation and server."""
        return reliance.answers(loaded, _x)

    def shown(img: torch.Tensor):
        return tensor_preview(data.normalize(img * 255))

    def answer_table(rows: list[dict]) -> None:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", height=ui.table_height(len(rows)),
                     column_config={"p": st.column_config.NumberColumn("p (this answer)", format="%.2f"),
                                    "model": st.column_config.TextColumn(width=150)})

    clean = answers_of(item.digest, "clean", x)
    c1, c2 = st.columns([1, 1])
    with c1:
        how = st.radio("Change", ["shuffle patches", "hide patches"], horizontal=True, key="rel-how")
        if how == "shuffle patches":
            grid = st.select_slider("Grid", [1, 2, 4, 8, 16], value=4, key="rel-grid", format_func=lambda g: f"{g}x{g}")
            changed, what = reliance.shuffle_patches(x, grid, torch.Generator().manual_seed(0)), f"shuffle {grid}"
            said = f"cut into a {grid}x{grid} grid, the patches shuffled (seed 0)"
        else:
            share = st.select_slider("Share hidden", [0.0, 0.1, 0.25, 0.5, 0.75, 0.9], value=0.5, key="rel-share",
                                     format_func=lambda f: f"{f:.0%}")
            changed, what = reliance.drop_patches(x, share, 8, torch.Generator().manual_seed(0)), f"drop {share}"
            said = f"{share:.0%} of its 8x8 patches replaced by the mean colour (seed 0)"
    ui.image(shown(changed), f"{item.label}, {said}", c2)
    rows = reliance.answer_rows(clean, answers_of(item.digest, what, changed), titles)
    answer_table(rows)
    st.markdown(reliance.kept_line(rows))
    st.caption("Each model sees the changed image at its own input size (the 128 px view, resized for LeNet-5). "
               "One image is an anecdote; the curves above are over many.")

# --- adversarial --------------------------------------------------------------------------------
st.header("Adversarial images and their transfer")
if rel:
    st.markdown("**Across the zoo**: val top-1 when every pixel may move by at most ε (L-infinity) in the direction "
                "that raises the model's loss on the true class: one step (FGSM, Goodfellow et al. 2015) or ten "
                "projected steps (PGD, Madry et al. 2018).")
    curve_chart("fgsm")
    curve_chart("pgd")
    st.markdown(rz.adversarial_sentence(rel, titles))
    st.caption(f"Both on the same {first['n_pgd']} val images (the first of the subset above); PGD: 10 steps of "
               "2.5ε/10, no random start; ε = 0 is the clean figure on those images.")
    t = transfer_of(KEY)
    if t is not None:
        trows = pd.DataFrame(rz.transfer_rows(t, titles))
        names = [titles[a] for a in t["models"]]

        def transfer_chart():
            base = alt.Chart(trows).encode(   # every model named on both axes: no label left out for overlap
                x=alt.X("scored by:N", sort=names, title="scored by",
                        axis=alt.Axis(labelAngle=-45, labelLimit=160, labelOverlap=False)),
                y=alt.Y("made for:N", sort=names, title="images made for",
                        axis=alt.Axis(labelLimit=160, labelOverlap=False)))
            cells = base.mark_rect().encode(
                color=alt.Color("fooling rate (%):Q", scale=alt.Scale(scheme="orangered", domain=[0, 100]),
                                legend=alt.Legend(title="fooled (%)")),
                tooltip=["made for", "scored by", alt.Tooltip("fooling rate (%):Q", format=".0f")])
            text = base.mark_text(fontSize=10).encode(
                text=alt.Text("fooling rate (%):Q", format=".0f"),
                color=alt.condition("datum['fooling rate (%)'] > 60", alt.value("white"), alt.value("black")))
            return (cells + text).properties(height=30 * len(names) + 40)
        st.markdown(f"**Transfer**: PGD images at {t['steps']}/255 made for the model of each row, and the share of "
                    "them each column's model gets wrong, among the images it gets right when clean.")
        ui.chart_cached("reliance-transfer", KEY, transfer_chart, width="stretch")
        st.markdown(rz.transfer_sentence(t, titles))
        st.caption(f"{t['n_images']} val images. The diagonal is white-box (the images follow that model's own "
                   "gradient); off it, the images were never shown to the model that scores them.")

if item is not None:
    st.subheader("On one image")
    c1, c2, c3 = st.columns([2, 1, 2])
    with c1:
        arch = ui.pick_one_model(loaded, key="rel-model", label="Made against", prefer="resnet18", anatomy_link=False)
    with c2:
        method = st.radio("Method", ["fgsm", "pgd"], horizontal=True, key="rel-method", format_func=str.upper,
                          help="FGSM: one step of size ε along the sign of the gradient. PGD: ten smaller steps, each "
                               "projected back into the ε ball (a stronger attack).")
    with c3:
        steps = st.slider("Size ε (steps of 1/255 per pixel)", 1, 16, 4, key="rel-eps")

    @st.cache_data(max_entries=64, show_spinner=False)
    def adversarial(digest: str, arch: str, method: str, steps: int, target: int, _x) -> torch.Tensor:
        return reliance.attack(loaded[arch][0], _x, target, method, steps / 255)

    target = clean[arch][0]
    if st.session_state.get("rel-asked") != (item.digest, arch, method, steps):
        st.info(f"Making the image runs {titles[arch]} {'once' if method == 'fgsm' else '10 times'} forward and "
                "backward on it (a second or two).", icon=":material/schedule:")
        if st.button("Make the adversarial image", type="primary", key="rel-make"):
            st.session_state["rel-asked"] = (item.digest, arch, method, steps)
            st.rerun()
    else:
        adv = adversarial(item.digest, arch, method, steps, target, x)
        delta = adv - x
        fooled = answers_of(item.digest, f"{method} {arch} {steps}", adv)
        amp = 0.5 / max(float(delta.abs().max()), 1e-8)
        c1, c2, c3 = st.columns(3)
        ui.image(shown(x), f"{item.label}: {titles[arch]} says {data.NAMES[target]} ({clean[arch][1]:.0%})", c1)
        ui.image(tensor_preview(data.normalize((0.5 + amp * delta).clamp(0, 1) * 255)),
                 f"the change, amplified {amp:.0f}x (grey: none); at most "
                 f"{reliance.linf_steps(float(delta.abs().max())):g}/255 per pixel", c2)
        ui.image(shown(adv), f"the adversarial image: {titles[arch]} says {data.NAMES[fooled[arch][0]]} "
                 f"({fooled[arch][1]:.0%})", c3)
        answer_table(reliance.answer_rows(clean, fooled, titles))
        st.markdown(reliance.transfer_line(clean, fooled, arch, titles))
        st.caption("Fooling the model it was made for is expected: the change follows that model's own gradient. "
                   "Whether it fools the others (transfer) says how alike their decision boundaries are near this "
                   "image (Mahmood, Mahmood & van Dijk, ICCV 2021, found little transfer between ViTs and CNNs).")

# --- Fourier ------------------------------------------------------------------------------------
st.header("Frequencies")
if rel:
    st.markdown("How much error stripes of one spatial frequency add: (u, v) cycles per image added to every val "
                "image (Yin et al. 2019), in points of error above the model's clean error on the same images (red: "
                "more errors, blue: fewer). The centre is the clean image itself; far from it, fine stripes.")
    opts = list(rel)
    c1, c2 = st.columns(2)
    fa = c1.selectbox("Left", opts, index=opts.index("resnet18") if "resnet18" in opts else 0, key="rel-fa",
                      format_func=titles.get)
    fb = c2.selectbox("Right", opts, index=opts.index("vit") if "vit" in opts else min(1, len(opts) - 1),
                      key="rel-fb", format_func=titles.get)
    added = {a: rz.added_error(rel[a]) for a in (fa, fb)}
    top = max(1.0, *(float(np.nanmax(np.abs(m))) for m in added.values()))

    def heat(arch: str):
        f = rel[arch].meta["freqs"]
        rows = pd.DataFrame([{"u": u, "v": v, "added error (points)": float(added[arch][i, j]),
                              "error (%)": float(rel[arch].fourier[i, j])}
                             for i, u in enumerate(f) for j, v in enumerate(f)])
        return alt.Chart(rows).mark_rect().encode(
            x=alt.X("v:O", sort=f, title="v (cycles per image, across)", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("u:O", sort=list(reversed(f)), title="u (cycles per image, down)"),
            color=alt.Color("added error (points):Q", scale=alt.Scale(scheme="redblue", reverse=True,
                                                                      domain=[-top, top]),
                            legend=alt.Legend(title="error added")),
            tooltip=["u", "v", alt.Tooltip("added error (points):Q", format="+.0f"),
                     alt.Tooltip("error (%):Q", format=".0f")]).properties(height=330, title=titles[arch])
    for col, arch in ((c1, fa), (c2, fb)):
        with col:
            ui.chart_cached("reliance-fourier", (shas[arch], top), lambda arch=arch: heat(arch), width="stretch")
    st.markdown(rz.fourier_sentence(rel[fa], rel[fb], titles[fa], titles[fb]))
    st.caption(f"{first['n_fourier']} val images at 128 px; each stripe image has a root-mean-square of "
               f"{first['fourier_rms']} per pixel (about {first['fourier_rms'] * 255:.0f}/255: Yin et al.'s ImageNet "
               "size, an L2 norm of 15.7 at 224 px, spread over the three colour channels, where they gave each "
               "channel that norm, so their stripes are 1.7x stronger), a random sign per image and colour channel, "
               "and (u, v) and (-u, -v) are the same stripes. "
               "The grid is coarse (every 8 cycles) so the zoo can be computed on a CPU; one colour scale for both maps.")

# --- effective receptive field -------------------------------------------------------------------
st.header("Effective receptive fields")
if rel:
    st.markdown("Which input pixels actually move the centre unit of a stage's output: the gradient's size, "
                "averaged over images (Luo et al. 2016). The theoretical receptive field (the Anatomy page's) says "
                "which pixels *can* reach it.")
    erows = pd.DataFrame(rz.erf_rows(rel, titles))

    def erf_chart():
        return alt.Chart(erows).mark_line(point=alt.OverlayMarkDef(size=50, filled=True)).encode(
            x=alt.X("depth:Q", title="stage (share of the network's stages)", scale=alt.Scale(domain=[0, 1]),
                    axis=alt.Axis(format="%")),
            y=alt.Y("trained:Q", title="90% radius (% of input)",
                    scale=alt.Scale(domain=[0, 55])),
            color=alt.Color("model:N", scale=COLORS, legend=ui.model_legend()),
            tooltip=["model", "stage", alt.Tooltip("trained:Q", format=".0f", title="trained (%)"),
                     alt.Tooltip("random init:Q", format=".0f", title="random init (%)"),
                     alt.Tooltip("theoretical:Q", format=".0f", title="theoretical (%)")]).properties(
            height=ui.height_with_legend(300, erows["model"].nunique()))
    ui.chart_cached("reliance-erf", KEY, erf_chart, width="stretch")
    st.markdown(rz.erf_sentence(rel, titles))
    opts = list(rel)
    arch = st.selectbox("The maps of one model", opts, index=opts.index("resnet18") if "resnet18" in opts else 0,
                        key="rel-erf", format_func=titles.get)
    r = rel[arch]
    cols = st.columns(len(r.layers))
    for i, (col, ly) in enumerate(zip(cols, r.layers)):
        with col:
            for random in (False, True):
                m = (r.erf_random if random else r.erf)[i]
                pic = (colormap(False)(np.sqrt(m / max(float(m.max()), 1e-30)))[..., :3] * 255).astype(np.uint8)
                rad = rz.theoretical_radius(ly)
                where = "whole input" if rad >= ly["input"] / 2 else f"theoretical field {ly['rf']:g} px"
                ui.image(pic, f"{ly['label']}, {'random init' if random else 'trained'}: 90% within "
                         f"{r.radius(i, random):.0f} px ({where})", max_width=180)
    st.caption(f"{first['n_erf']} val images, each map at the model's own input size ({r.layers[0]['input']} px "
               "here), brightness the square root of the gradient's size so the faint tails show. The random init is "
               "the same architecture with seeded initial weights.")
