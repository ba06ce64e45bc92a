"""Reliance: what each network relies on. Shuffled and occluded images (Naseer et al. 2021) and
adversarial images (FGSM, PGD) with their transfer, on your image, for every model at once."""
from __future__ import annotations

import explorer  # noqa: F401,I001  first: sets OpenMP's spin before torch loads

import pandas as pd
import streamlit as st
import torch

from explorer import reliance, ui
from explorer.classify import tensor_preview
from models import data

ui.page("Reliance", "What does each network rely on? Cut your image into patches and shuffle them, or hide a "
        "growing share of them (Naseer et al., NeurIPS 2021: transformers degrade more gracefully than CNNs), "
        "or change every pixel by a few 1/255 steps in the direction that hurts one model most (FGSM, PGD) and "
        "see which of the other networks the same image fools.")

loaded, missing = ui.zoo_or_stop("there is nothing to test")
ui.zoo_note(loaded, missing)
images = ui.image_inputs("reliance", multiple=False)
if not images:
    st.stop()
item = images[0]
x = reliance.pixels(item.image)


@st.cache_data(max_entries=256, show_spinner=False)
def answers_of(digest: str, what: str, _x) -> dict:
    """Every model's answer to one (manipulated) image, once per image, manipulation and server."""
    return reliance.answers(loaded, _x)


@st.cache_data(max_entries=64, show_spinner=False)
def adversarial(digest: str, arch: str, method: str, steps: int, target: int, _x) -> torch.Tensor:
    return reliance.attack(loaded[arch][0], _x, target, method, steps / 255)


def answer_table(clean: dict, now: dict) -> pd.DataFrame:
    return pd.DataFrame([{"model": ui.title_of(loaded, a), "clean image": data.NAMES[clean[a][0]],
                          "this image": data.NAMES[now[a][0]], "p": now[a][1],
                          "kept": "yes" if now[a][0] == clean[a][0] else "changed"} for a in loaded])


def shown(img: torch.Tensor):
    return tensor_preview(data.normalize(img * 255))


clean = answers_of(item.digest, "clean", x)

# --- shuffled and occluded ------------------------------------------------------------------
st.header("Shuffled and occluded")
c1, c2 = st.columns([1, 1])
with c1:
    how = st.radio("Change", ["shuffle patches", "hide patches"], horizontal=True, key="rel-how")
    if how == "shuffle patches":
        grid = st.select_slider("Grid", [1, 2, 4, 8], value=4, key="rel-grid", format_func=lambda g: f"{g}x{g}")
        changed, what = reliance.shuffle_patches(x, grid, torch.Generator().manual_seed(0)), f"shuffle {grid}"
        said = f"cut into a {grid}x{grid} grid, the patches shuffled (seed 0)"
    else:
        share = st.select_slider("Share hidden", [0.0, 0.1, 0.25, 0.5, 0.75, 0.9], value=0.5, key="rel-share",
                                 format_func=lambda f: f"{f:.0%}")
        changed, what = reliance.drop_patches(x, share, 8, torch.Generator().manual_seed(0)), f"drop {share}"
        said = f"{share:.0%} of its 8x8 patches replaced by the mean colour (seed 0)"
ui.image(shown(changed), f"{item.label}, {said}", c2)
now = answers_of(item.digest, what, changed)
table = answer_table(clean, now)
kept = table[table["kept"] == "yes"]["model"].tolist()
st.dataframe(table, hide_index=True, width="stretch", height=ui.table_height(len(table)),
             column_config={"p": st.column_config.NumberColumn("p (this answer)", format="%.2f"),
                            "model": st.column_config.TextColumn(width=150)})
st.markdown(f"**{len(kept)} of {len(table)}** models keep their answer to the clean image"
            + (f": {', '.join(kept)}." if 0 < len(kept) <= 8 else "." if kept else "; every one changes it."))
st.caption("Each model sees the changed image at its own input size (the 128 px view, resized for LeNet-5). A "
           "network that reads the layout of the whole image loses its answer once the patches move; one that "
           "counts local textures keeps it. One image is an anecdote: curves over many val images for the "
           "whole zoo are not on this page yet.")

# --- adversarial --------------------------------------------------------------------------------
st.header("Adversarial images and their transfer")
c1, c2, c3 = st.columns([2, 1, 2])
with c1:
    arch = ui.pick_one_model(loaded, key="rel-model", label="Made against", prefer="resnet18", anatomy_link=False)
with c2:
    method = st.radio("Method", ["fgsm", "pgd"], horizontal=True, key="rel-method", format_func=str.upper,
                      help="FGSM: one step of size ε along the sign of the gradient. PGD: ten smaller steps, each "
                           "projected back into the ε ball (a stronger attack).")
with c3:
    steps = st.slider("Size ε (steps of 1/255 per pixel)", 1, 16, 4, key="rel-eps")
target = clean[arch][0]
if st.session_state.get("rel-asked") != (item.digest, arch, method, steps):
    st.info(f"Making the image runs {ui.title_of(loaded, arch)} {'once' if method == 'fgsm' else '10 times'} "
            "forward and backward on it (a second or two).", icon=":material/schedule:")
    if st.button("Make the adversarial image", type="primary", key="rel-make"):
        st.session_state["rel-asked"] = (item.digest, arch, method, steps)
        st.rerun()
    st.stop()
adv = adversarial(item.digest, arch, method, steps, target, x)
delta = adv - x
fooled = answers_of(item.digest, f"{method} {arch} {steps}", adv)
amp = 0.5 / max(float(delta.abs().max()), 1e-8)
c1, c2, c3 = st.columns(3)
ui.image(shown(x), f"{item.label}: {ui.title_of(loaded, arch)} says {data.NAMES[target]} "
         f"({clean[arch][1]:.0%})", c1)
ui.image(tensor_preview(data.normalize((0.5 + amp * delta).clamp(0, 1) * 255)),
         f"the change, amplified {amp:.0f}x (grey: none); at most {reliance.linf_steps(float(delta.abs().max())):g}/255 "
         "per pixel", c2)
ui.image(shown(adv), f"the adversarial image: {ui.title_of(loaded, arch)} says {data.NAMES[fooled[arch][0]]} "
         f"({fooled[arch][1]:.0%})", c3)
table = answer_table(clean, fooled)
st.dataframe(table, hide_index=True, width="stretch", height=ui.table_height(len(table)),
             column_config={"p": st.column_config.NumberColumn("p (this answer)", format="%.2f"),
                            "model": st.column_config.TextColumn(width=150)})
others = [a for a in loaded if a != arch]
moved = [ui.title_of(loaded, a) for a in others if fooled[a][0] != clean[a][0]]
own = "fools it" if fooled[arch][0] != target else "does not change its answer"
st.markdown(f"Made against {ui.title_of(loaded, arch)}, the image {own}; it changes the answer of "
            f"**{len(moved)} of the {len(others)} other models**" + (f" ({', '.join(moved)})." if moved else "."))
st.caption("Fooling the model it was made for is expected: the change follows that model's own gradient. "
           "Whether it fools the others (transfer) says how alike their decision boundaries are near this "
           "image (Mahmood, Mahmood & van Dijk, ICCV 2021, found little transfer between ViTs and CNNs).")
