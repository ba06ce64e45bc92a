"""Streamlit glue shared by the pages: navigation, cached zoo loading and the common widgets.

The only module of `explorer/` that imports Streamlit; everything it shows is computed by
the Streamlit-free modules beside it, which the tests exercise directly.
"""
from __future__ import annotations

import copy
import functools
import os
import threading

import numpy as np
import streamlit as st
from PIL import Image

import models
from explorer import text, zoo
from explorer.images import ACCEPTED, LIMIT, ImageError, LoadedImage, load_image, natural_width, png_bytes
from explorer.images import magnify  # noqa: F401  (the pages draw with ui.magnify)

DEFAULT_SAMPLE = "golf_ball-1.jpg"

# --- navigation ------------------------------------------------------------------------


@functools.cache
def icon():
    """The favicon, drawn here (a 3x3 grid of first-layer-filter-like tiles), so the browser
    never asks a font server for one."""
    tiles = [(214, 69, 65), (240, 173, 78), (92, 184, 92), (66, 139, 202), (120, 120, 120),
             (153, 102, 204), (240, 173, 78), (66, 139, 202), (214, 69, 65)]
    img = np.full((48, 48, 3), 255, dtype=np.uint8)
    for i, c in enumerate(tiles):
        r, k = divmod(i, 3)
        img[2 + r * 15: 2 + r * 15 + 14, 2 + k * 15: 2 + k * 15 + 14] = c
    return Image.fromarray(img)


NAV = {
    "": [("app.py", "Home", ":material/home:")],
    "Explore": [("pages/1_Classify.py", "Classify", ":material/image:"),
                ("pages/2_Compare.py", "Compare", ":material/monitoring:"),
                ("pages/8_Anatomy.py", "Anatomy", ":material/account_tree:")],
    "Inside the networks": [(f, label, ic) for f, (label, ic, _, _) in zoo.PAGES.items()
                            if f not in ("pages/1_Classify.py", "pages/8_Anatomy.py")],
}


def sidebar() -> None:
    """The navigation, drawn here (Streamlit's own list would name the home page "app")."""
    with st.sidebar:
        for section, links in NAV.items():
            if section:
                st.caption(section)
            for f, label, ic in links:
                st.page_link(f, label=label, icon=ic)


# Streamlit's wide layout keeps 5rem of margin on each side of the page; beside the 300 px
# sidebar at 1024 px that leaves 560 px for tables and charts. Narrow windows get 1.5rem.
# A picture given a width in pixels keeps it even in a narrower column (it would spill over its
# neighbours): never wider than its column. The uploader's own "200MB per file" is the browser's cap,
# not the app's (20 MB, said under the uploader): it is hidden, so the page names one limit.
PAGE_STYLE = """<style>
@media (max-width: 1400px) {
  [data-testid="stMainBlockContainer"] { padding-left: 1.5rem; padding-right: 1.5rem; }
}
[data-testid="stMain"] [data-testid="stImage"], [data-testid="stMain"] [data-testid="stImageContainer"] { max-width: 100%; }
[data-testid="stMain"] [data-testid="stImage"] img { max-width: 100%; height: auto; }
[data-testid="stMain"] [data-testid="stFileUploaderDropzoneInstructions"] { display: none; }
</style>"""


def page(title: str, blurb: str = "", layout: str = "wide") -> None:
    import explorer
    explorer.started()
    st.session_state["_svg_n"] = 0   # the charts' Save-as-SVG buttons, numbered in page order
    st.session_state["_svg_page"] = "home" if title == "vision-hist" else title.lower().replace(" ", "-")
    st.set_page_config(page_title=f"{title} · vision-hist" if title != "vision-hist" else title,
                       page_icon=icon(), layout=layout)
    st.html(PAGE_STYLE)
    sidebar()
    st.title(title)
    if blurb:
        st.caption(blurb)


# one colour per architecture, the same in every chart (ordered by year, like the legends)
PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#17becf", "#1f3b73", "#bcbd22", "#7f7f7f", "#000000"]


def model_colors(present=None):
    """An Altair colour scale that gives each architecture the same colour on every page;
    `present` (titles) limits the legend to the models a chart shows, in historical order."""
    import altair as alt

    import models
    titles = [s.title for s in models.list_architectures()]
    keep = [t for t in titles if present is None or t in set(present)]
    return alt.Scale(domain=keep, range=[PALETTE[titles.index(t)] for t in keep])


LEGEND_COLUMNS = 4


def model_legend():
    """A legend of model names under a chart, wrapped into rows of LEGEND_COLUMNS, so that 14
    models fit at 1024 px (a one-row legend runs off the chart's right edge)."""
    import altair as alt
    return alt.Legend(orient="bottom", title=None, columns=LEGEND_COLUMNS, labelLimit=160, symbolLimit=0)


def labelled_scatter(df, x: str, y: str, x_title: str, y_title: str, tooltip: list, colors, log_x: bool = False,
                     height: int = 380, ring: str | None = None, x_format: str | None = None) -> None:
    """Draw a scatter of models with each name written beside its dot where it overlaps no other
    name or dot (explorer.compare.label_positions); the names left out are listed under it (and
    are in the tooltips). The axes' domains are set here, so the placement is where Vega draws."""
    import math

    import altair as alt

    from explorer.compare import label_positions

    def domain(v, log):
        lo, hi = float(v.min()), float(v.max())
        if log:
            lo, hi = math.log10(lo), math.log10(hi)
        pad = max(hi - lo, 0.3 if log else 1.0) * 0.08
        return lo - pad, hi + pad

    (x0, x1), (y0, y1) = domain(df[x], log_x), domain(df[y], False)
    xs = [(math.log10(v) if log_x else v) for v in df[x]]
    pos = label_positions([((a - x0) / (x1 - x0), (b - y0) / (y1 - y0), str(n))
                           for a, b, n in zip(xs, df[y], df["model"])], height_px=height)
    df = df.assign(placement=[f"{p['dx']},{p['dy']},{p['align']}" if p else "" for p in pos])
    xscale = alt.Scale(type="log", domain=[10 ** x0, 10 ** x1], nice=False) if log_x else \
        alt.Scale(domain=[x0, x1], nice=False, zero=False)
    base = alt.Chart().encode(   # the data is given once, to the layer (Altair hashes each layer's copy otherwise)
        x=alt.X(f"{x}:Q", scale=xscale, title=x_title, axis=alt.Axis(format=x_format) if x_format else alt.Axis()),
        y=alt.Y(f"{y}:Q", title=y_title, scale=alt.Scale(domain=[y0, y1], nice=False, zero=False)), tooltip=tooltip)
    layers = [base.mark_circle(size=140).encode(color=alt.Color("model:N", scale=colors, legend=None))]
    if ring:
        layers.append(base.transform_filter(f"datum.{ring}").mark_point(size=520, color="#d62728", strokeWidth=2.5))
    for where in sorted({p for p in df["placement"] if p}):
        dx, dy, align = where.split(",")
        layers.append(base.transform_filter(alt.datum.placement == where).mark_text(
            dx=int(dx), dy=int(dy), align=align, fontSize=12).encode(text="model:N"))
    chart(alt.layer(*layers, data=df).properties(height=height), width="stretch")
    hidden = [n for n, p in zip(df["model"], pos) if p is None]
    if hidden:
        st.caption(f"Too close to name on the chart (hover the dots): {', '.join(hidden)}.")


def chart(c, **kwargs) -> None:
    """st.altair_chart without Altair's JSON-schema validation of the finished spec, which is server
    CPU spent per chart on every run of a page; the specs are the same. The tests also validate every chart first (VH_VALIDATE_CHARTS=1, tests/conftest.py)."""
    if os.environ.get("VH_VALIDATE_CHARTS") == "1":
        import altair as alt
        with alt.data_transformers.enable("default", max_rows=None):   # Streamlit ships the rows as Arrow
            c.to_dict(validate=True)        # raises on an invalid spec
    # an Altair object takes attributes set on it for chart parameters: set this one past that
    object.__setattr__(c, "to_dict", functools.partial(type(c).to_dict, c, validate=False))
    st.altair_chart(c, **kwargs)
    save_svg(lambda: c.to_dict(validate=False))


_specs: dict[tuple, dict] = {}   # chart_cached: (name, key) -> Vega-Lite spec
_specs_lock = threading.Lock()


def chart_cached(name: str, key: tuple, build, rows=None, **kwargs) -> None:
    """Draw an Altair chart built once per server and `key`, instead of on every run of a page.

    Building Altair's objects (and their spec) is server CPU spent on every run of a page that
    draws the chart, for a chart that changes only when `key` does. `build()` makes a chart that depends only on `key` (a
    checkpoint's figures, say); with `rows`, `build(rows)` makes one whose shape depends only
    on `key` (its model list, its height) and each call draws it with its own `rows` (a
    DataFrame), sent to the browser as st.altair_chart sends them."""
    spec = _specs.get((name, key))
    if spec is None:
        c = build() if rows is None else build(rows)
        if os.environ.get("VH_VALIDATE_CHARTS") == "1":   # the tests validate every spec once
            import altair as alt
            with alt.data_transformers.enable("default", max_rows=None):
                c.to_dict(validate=True)
        spec = c.to_dict(validate=False)
        if rows is not None:   # the first call's rows out: every call sends its own
            top = spec.pop("data", None)
            if isinstance(top, dict) and "name" in top:
                spec.get("datasets", {}).pop(top["name"], None)
        with _specs_lock:
            if len(_specs) > 512:   # model lists a server has seen: bounded all the same
                _specs.clear()
            _specs[(name, key)] = spec
    st.vega_lite_chart(rows, copy.deepcopy(spec), **kwargs)

    def full_spec() -> dict:
        out = copy.deepcopy(spec)
        if rows is not None:
            out["data"] = {"values": rows.to_dict("records")}
        return out
    save_svg(full_spec)


def svg_bytes(spec: dict) -> bytes:
    """A Vega-Lite spec drawn as SVG on the server (vl-convert: Vega itself, no browser, no network)."""
    import vl_convert
    return vl_convert.vegalite_to_svg(spec).encode()


def save_svg(make_spec) -> None:
    """A small "Save as SVG" under a chart, for slides: the vector drawing is made only when it is
    clicked. (PNG is the chart toolbar's own "Download as PNG", on hover.)"""
    n = st.session_state.get("_svg_n", 0)
    st.session_state["_svg_n"] = n + 1
    page = st.session_state.get("_svg_page", "page")
    st.download_button("Save as SVG", data=lambda: svg_bytes(make_spec()),
                       file_name=f"vision-hist-{page}-chart-{n + 1}.svg", mime="image/svg+xml", key=f"_svg_{n}", on_click="ignore", type="tertiary",
                       icon=":material/download:", help="The chart as a vector drawing (PNG: the chart's toolbar)")


def table_height(rows: int) -> int:
    """A st.dataframe height that shows every row: no model hidden in a scroll box."""
    return 38 + 35 * rows


def height_with_legend(plot: int, models: int) -> int:
    """A chart's height with room for model_legend's rows (Streamlit fits the legend inside it)."""
    return plot + 60 + 24 * -(-models // LEGEND_COLUMNS)


def macs_text(gmacs: float) -> str:
    """0.265 -> '0.265 GMACs', 0.00065 -> '0.65 MMACs' (LeNet-5 is too small for GMACs)."""
    return f"{gmacs:.3f} GMACs" if gmacs >= 0.01 else f"{gmacs * 1000:.2f} MMACs"


def human(v: float) -> str:
    """A number without scientific notation: 0.000036 -> '3.6 x 10^-5' written out as a learner reads it."""
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e5:
        return f"{v:.3g}"
    mant, exp = f"{v:.2e}".split("e")
    sup = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
    return f"{float(mant):.2g}×10{str(int(exp)).translate(sup)}"


# --- the zoo, once per server ----------------------------------------------------------

@st.cache_resource(show_spinner="Loading every trained model (once per server)...")
def loaded_zoo():
    """({arch: (model, card)}, {arch: why it is missing}); loaded once per server process."""
    return zoo.load_all()


@st.cache_data(show_spinner="Computing parameters and GMACs (once per server)...")
def timeline():
    return zoo.timeline()


@st.cache_resource(show_spinner="Timing every model once on this server's CPU (median of 9 warm runs)...")
def latencies() -> dict:
    """Measured once per server process, then the same numbers everywhere (see zoo.latencies)."""
    loaded, _ = loaded_zoo()
    return zoo.latencies(loaded)


def zoo_or_stop(nothing: str):
    """The loaded zoo for a page; stops the page with one sentence when no checkpoint is installed."""
    loaded, missing = loaded_zoo()
    if not loaded:
        st.error(f"No trained checkpoints are installed, so {nothing}. Train one with "
                 "`python scripts/train.py --arch resnet18`.", icon=":material/block:")
        st.stop()
    return loaded, missing


def zoo_note(loaded: dict, missing: dict) -> None:
    """One line under a model picker: how many models are shown, and why not the others."""
    if missing:
        st.caption(f"{len(loaded)} of {len(loaded) + len(missing)} architectures have a trained checkpoint; "
                   f"the other {len(missing)} appear here once trained (Home lists them, with the command "
                   "that trains each).")


def applicable(loaded: dict, keep, why_not: str) -> dict:
    """The loaded models `keep(model)` accepts; names the others and why they do not apply."""
    ok = {a: v for a, v in loaded.items() if keep(v[0])}
    others = [v[1].get("title", a) for a, v in loaded.items() if a not in ok]
    if others:
        st.caption(f"Not applicable, {why_not}: " + ", ".join(others) + ".")
    return ok


def title_of(loaded: dict, arch: str) -> str:
    return loaded[arch][1].get("title", arch) if arch in loaded else arch


def deep_link(options=None, quiet: bool = False) -> str | None:
    """The ?arch= of the address. Given the models a page can show, a link to none of them is
    said in one sentence (the name escaped; `quiet`: not said, the page has said it already) and
    dropped, so the page's own default is shown."""
    link = st.query_params.get("arch")
    if link is None or options is None or link in options:
        return link
    if quiet:
        return None
    spec = next((s for s in models.list_architectures() if s.name == link), None)
    if spec is not None:
        st.caption(f":material/link_off: The link asks for {spec.title}, which this page cannot show (no "
                   "checkpoint it can use); it shows its default instead.")
    else:
        st.caption(f":material/link_off: The link asks for a model called “{plain(link)}”, and the zoo has no "
                   "architecture of that name; the page shows its default instead.")
    return None


def pick_models(loaded: dict, key: str, label: str = "Models", default: list[str] | None = None,
                max_selections: int | None = None) -> list[str]:
    """A multiselect of loaded models; the ?arch= deep link is selected first."""
    options = list(loaded)
    if not options:
        return []
    chosen = list(default if default is not None else options)
    link = deep_link(loaded)
    if link in options:
        chosen = [link] + [a for a in chosen if a != link]
    if max_selections:
        chosen = chosen[:max_selections]
    return st.multiselect(label, options, default=[a for a in chosen if a in options], key=key,
                          max_selections=max_selections, format_func=lambda a: title_of(loaded, a))


def pick_one_model(loaded: dict, key: str, label: str = "Model", prefer=None, anatomy_link: bool = True,
                   format_func=None, permalink: bool = True, link_said: bool = False, **kwargs) -> str | None:
    """A selectbox of models (the keys of `loaded`): the ?arch= deep link, else `prefer`, else the
    first. With `permalink` the choice is written back to the address bar, so the page's URL is a
    permalink. `format_func` names a model (default: its card's title). `link_said`: the page has
    already said that its link shows nothing (`deep_link`), so the picker does not say it again."""
    options = list(loaded)
    if not options:
        return None
    link = deep_link(loaded, quiet=link_said)
    index = options.index(link) if link in options else (options.index(prefer) if prefer in options else 0)
    arch = st.selectbox(label, options, index=index, key=key,
                        format_func=format_func or (lambda a: title_of(loaded, a)), **kwargs)
    if permalink and arch != link:
        st.query_params["arch"] = arch
    if anatomy_link:
        anatomy(arch, title_of(loaded, arch))
    return arch


def second_choice(options: list[str], first: str, prefer=()) -> str:
    """The model a second picker opens on: the first of `prefer` that is an option other than
    `first`, else the option after `first` (wrapping), else `first` itself."""
    for cand in prefer:
        if cand in options and cand != first:
            return cand
    if first in options and len(options) > 1:
        return options[(options.index(first) + 1) % len(options)]
    return options[0] if options and first not in options else first


def pick_second(options: list[str], first: str, key: str, label: str, format_func, prefer=(),
                include_first: bool = True, **kwargs) -> str:
    """A selectbox for the second model of a pair, opening on `second_choice` (it never follows
    the address bar: the first picker owns ?arch=). Without `include_first` the first model is
    not offered."""
    choices = [o for o in options if include_first or o != first]
    default = second_choice(choices if include_first else [first, *choices], first, prefer)
    return st.selectbox(label, choices, index=choices.index(default) if default in choices else 0, key=key,
                        format_func=format_func, **kwargs)


def anatomy(arch: str, title: str) -> None:
    st.page_link("pages/8_Anatomy.py", label=f"Anatomy of {title}", icon=":material/account_tree:",
                 query_params={"arch": arch})


# --- images ----------------------------------------------------------------------------

plain = text.plain   # every user-controlled string goes through it (explorer/text.py)


def image_inputs(key: str, multiple: bool = True, default: list[str] | None = None) -> list[LoadedImage]:
    """Images from the shipped samples or the user's upload, decoded safely.

    The source is an explicit choice: a page shows a preselected sample on a first visit, and
    an upload that is refused says why and shows nothing else -- a sample never stands in
    for a rejected upload. The uploader takes any file: a wrong type is refused by
    explorer.images in a sentence in the page (the uploader's own refusal is only a red mark on
    the file's chip). It is drawn on every run, hidden while samples are chosen, because a
    widget left out of a run loses its state, and with it the user's files."""
    samples = [p.name for p in zoo.sample_images()]
    default = [d for d in (default or [DEFAULT_SAMPLE]) if d in samples] or samples[:1]
    source = st.radio("Image source", ["Sample images", "Your upload"], horizontal=True, key=f"{key}-source",
                      help="Samples are Imagenette val images shipped with the app. Your uploads stay in the "
                      "uploader while you look at the samples.")
    with st.container(key=f"{key}-upload-box"):
        ups = st.file_uploader("Upload images" if multiple else "Upload an image", type=None,
                               accept_multiple_files=multiple, key=f"{key}-upload",
                               help=f"{ACCEPTED} (an animated GIF: its first frame), {LIMIT}, in the MB the "
                               "list of files shows (1 MB = 1,000,000 bytes).")
        if source == "Sample images":   # hidden with the box it hides: no gap left in the page
            st.html(f"<style>.st-key-{key}-upload-box, [data-testid='stLayoutWrapper']:has(> .st-key-{key}-upload-box)"
                    " { display: none; }</style>")
    out: list[LoadedImage] = []
    if source == "Sample images":
        if multiple:
            chosen = st.multiselect("Samples (Imagenette val)", samples, default=default, key=f"{key}-samples")
        else:
            chosen = [st.selectbox("Sample (Imagenette val)", samples, index=samples.index(default[0]),
                                   key=f"{key}-samples")]
        for name in chosen:
            try:
                out.append(load_image((zoo.SAMPLES / name).read_bytes(), name))
            except (ImageError, OSError) as e:
                st.error(plain(str(e)), icon=":material/block:")
        if not out:
            st.info("Pick at least one sample.", icon=":material/info:")
        return out
    files = list(ups or []) if multiple else ([ups] if ups else [])
    for f in files:
        try:
            out.append(load_image(f.getvalue(), f.name))
        except ImageError as e:
            st.error(plain(str(e)), icon=":material/block:")
    if not out:
        browser_cap = st.get_option("server.maxUploadSize")
        st.info(("Nothing to show until an image is accepted. " if files else "Upload an image to start. ")
                + f"The app reads {ACCEPTED}, {LIMIT}; a file of another type or size is named here with the "
                f"reason. Files over {browser_cap} MB are stopped by the browser before they reach the app "
                "(a red mark on the file).", icon=":material/upload:")
    return out if multiple else out[:1]


MAX_ZOOM = 1.5   # an image is drawn at most this many times its own pixel width: larger is only a blur


def image(img, caption: str | None = None, target=None, max_width: int | None = None) -> None:
    """st.image at most MAX_ZOOM times the image's own width and at most `max_width` px (narrower
    when the column is)."""
    width = int(natural_width(img) * MAX_ZOOM)
    (target or st).image(img, caption=caption, width=max(1, min(width, max_width or width)))


def save_png(img: np.ndarray, file_name: str, key: str, target=None, label: str = "Save as PNG") -> None:
    """A button that saves a figure grid as the PNG the page draws (for slides); the bytes are made
    only when it is clicked. Charts have their own: the toolbar's "Download as PNG" on hover."""
    (target or st).download_button(label, data=lambda: png_bytes(img), file_name=file_name, mime="image/png",
                                   key=key, on_click="ignore", type="tertiary", icon=":material/download:")


def show_notes(item: LoadedImage, target=None) -> None:
    """What was done to an image to read it (an animation's first frame, CMYK, EXIF rotation...),
    one caption each, under the picture; every page that shows an input image calls this."""
    for note in item.notes:
        (target or st).caption(f"Note: {note}.")


@st.cache_data(show_spinner=False)
def data_fingerprint() -> str | None:
    """The fingerprint of the data set this server reads (None without a copy), once per server:
    a side file's pictures are shown only when they come from the same data."""
    from models import data
    root = data.default_root()
    return data.fingerprint(root) if root is not None else None


@st.cache_data(max_entries=256, show_spinner=False)
def _probabilities(digest: str, arch: str, _model, _x) -> list[float]:
    import torch
    with zoo.using(), torch.no_grad():
        return _model(_x).float().softmax(-1)[0].tolist()


def probabilities(loaded: dict, digest: str, arch: str, x) -> list[float]:
    """One model's class probabilities for one image (its preprocessed tensor `x`), computed once
    per image and model for every session of the server."""
    return _probabilities(digest, arch, loaded[arch][0], x)
