"""Streamlit glue shared by the pages: cached zoo loading and the common widgets.

The only module of `explorer/` that imports Streamlit; everything it shows is computed by
the Streamlit-free modules beside it, which the tests exercise directly.
"""
from __future__ import annotations

import streamlit as st

from explorer import zoo
from explorer.compare import latency_ms
from explorer.images import UPLOAD_TYPES, ImageError, LoadedImage, load_image


def page(title: str, blurb: str = "") -> None:
    st.set_page_config(page_title=f"{title} · vision-hist", page_icon=":material/history_edu:", layout="wide")
    st.title(title)
    if blurb:
        st.caption(blurb)


@st.cache_resource(show_spinner="Loading every trained model (once per server)...")
def loaded_zoo():
    """({arch: (model, card)}, {arch: why it is missing}); loaded once per server process."""
    return zoo.load_all()


@st.cache_data(show_spinner="Computing parameters and GMACs (once per server)...")
def timeline():
    return zoo.timeline()


@st.cache_data(show_spinner="Timing every model on this CPU (once per server)...")
def latencies() -> dict[str, float]:
    loaded, _ = loaded_zoo()
    return {arch: latency_ms(model) for arch, (model, _) in loaded.items()}


def zoo_or_stop(nothing: str):
    """The loaded zoo for a page; stops the page with one sentence when no checkpoint is installed."""
    loaded, missing = loaded_zoo()
    if not loaded:
        st.error(f"No trained checkpoints are installed, so {nothing}. Train one with "
                 "`python scripts/train.py --arch resnet18`.")
        st.stop()
    missing_note(missing)
    return loaded, missing


def missing_note(missing: dict[str, str]) -> None:
    if missing:
        from models import get_spec
        names = ", ".join(get_spec(a).title for a in missing)
        st.info(f"Not trained yet, so not shown: {names}. Each trains with "
                f"`python scripts/train.py --arch NAME` (see the README).", icon=":material/info:")


def applicable(loaded: dict, keep, why_not: str) -> dict:
    """The loaded models `keep(model)` accepts; names the others and why they do not apply."""
    ok = {a: v for a, v in loaded.items() if keep(v[0])}
    others = [v[1].get("title", a) for a, v in loaded.items() if a not in ok]
    if others:
        st.caption(f"Not applicable, {why_not}: " + ", ".join(others) + ".")
    return ok


def pick_models(loaded: dict, key: str, label: str = "Models", default_count: int | None = None,
                max_selections: int | None = None) -> list[str]:
    """A multiselect of loaded models; default: the ?arch= deep link, else the first
    `default_count` (all when None)."""
    options = list(loaded)
    if not options:
        return []
    preset = st.query_params.get("arch")
    default = [preset] if preset in options else options[:default_count]
    if max_selections:
        default = default[:max_selections]
    return st.multiselect(label, options, default=default, key=key, max_selections=max_selections,
                          format_func=lambda a: loaded[a][1].get("title", a))


def pick_one_model(loaded: dict, key: str, label: str = "Model", prefer=None) -> str | None:
    options = list(loaded)
    if not options:
        return None
    preset = st.query_params.get("arch")
    index = options.index(preset) if preset in options else (options.index(prefer) if prefer in options else 0)
    return st.selectbox(label, options, index=index, key=key, format_func=lambda a: loaded[a][1].get("title", a))


def image_inputs(key: str, multiple: bool = True) -> list[LoadedImage]:
    """Uploaded images and/or shipped samples, decoded safely; bad files get a message each."""
    samples = zoo.sample_images()
    cols = st.columns([3, 2])
    with cols[0]:
        ups = st.file_uploader("Upload images" if multiple else "Upload an image", type=UPLOAD_TYPES,
                               accept_multiple_files=multiple, key=f"{key}-upload",
                               help="JPEG, PNG, WebP, BMP, TIFF or GIF (first frame), up to 20 MB.")
    with cols[1]:
        names = [p.name for p in samples]
        if multiple:
            chosen = st.multiselect("...or pick samples (Imagenette val)", names, key=f"{key}-samples")
        else:
            pick = st.selectbox("...or pick a sample (Imagenette val)", names, key=f"{key}-samples",
                                disabled=bool(ups), help="Used when nothing is uploaded.")
            chosen = [] if ups or pick is None else [pick]
    files = ([ups] if ups and not multiple else list(ups or []))
    out = []
    for f in files:
        try:
            out.append(load_image(f.getvalue(), f.name))
        except ImageError as e:
            st.error(str(e), icon=":material/block:")
    for name in chosen:
        p = zoo.SAMPLES / name
        try:
            out.append(load_image(p.read_bytes(), name))
        except (ImageError, OSError) as e:
            st.error(str(e), icon=":material/block:")
    return out if multiple else out[:1]
