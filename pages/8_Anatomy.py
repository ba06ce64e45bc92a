"""Anatomy: every architecture layer by layer, where its cost lives, how far its units see,
its building block, and how it differs from the paper and from its predecessor."""
from __future__ import annotations

import explorer  # noqa: F401,I001  first: sets OpenMP's spin before torch loads

import altair as alt
import pandas as pd
import streamlit as st

import models
from explorer import anatomy, ui

ui.page("Anatomy", "How each network is built, computed from its modules (no weights needed, so every "
        "architecture is here, trained or not): layers in forward order with their parameters and "
        "multiply-accumulates (MACs), where the cost lives, how far each unit sees, the building block as a "
        "graph, and what differs from the paper and from its predecessor.")

specs = {s.name: s for s in models.list_architectures()}
names = list(specs)


@st.cache_data(show_spinner="Tracing the network (shapes only, on the meta device)...")
def table(arch: str, preset: str, num_classes: int) -> anatomy.Table:
    return anatomy.table(arch, preset, num_classes)


@st.cache_data(show_spinner=False)
def graph(arch: str, path: str, preset: str) -> str:
    return anatomy.block_graph(arch, path, preset)


def named(a: str) -> str:
    return f"{specs[a].year} · {specs[a].title}"


c1, c2 = st.columns([2, 3])
with c1:
    arch = ui.pick_one_model(specs, key="anat-arch", label="Architecture", prefer="alexnet", anatomy_link=False,
                             format_func=named)
with c2:
    preset = st.radio("Configuration", ["explorer", "paper"], horizontal=True, key="anat-preset",
                      format_func={"explorer": "explorer (what the checkpoints use)",
                                   "paper": "paper (as published)"}.get)
spec = specs[arch]
t = table(arch, preset, 10)
p_in = spec.presets[preset]
st.markdown(f"**{spec.title}** ({spec.year}): {spec.key_idea}")
st.markdown(f"{preset.capitalize()} configuration: **{t.params:,} parameters**, **{t.macs / 1e9:.3f} GMACs** "
            f"per {p_in.input_size} px {'RGB' if p_in.in_chans == 3 else 'grey'} image, 10 classes.")
if preset == "paper" and p_in.deviations:
    st.markdown("**The paper configuration itself differs from the published network in:**\n"
                + "\n".join(f"- {d}" for d in p_in.deviations))
note = anatomy.blog_note(arch, preset, 10, t.params)
if note:
    st.info(note, icon=":material/menu_book:")
elif arch in ("resnet34", "alexnet", "vgg16") and preset == "explorer":
    st.caption("Switch to the paper configuration to set this network beside the layer table of the vision-hist "
               "blog (the writing this project grew from).")

# --- where the cost lives -------------------------------------------------------------
st.header("Where the cost lives")
configs = {"explorer, 10 classes": table(arch, "explorer", 10), "paper, 10 classes": table(arch, "paper", 10),
           "paper, 1000 classes": table(arch, "paper", 1000)}
totals = pd.DataFrame([{"configuration": k, "input": f"{v.input_size} px", "parameters": f"{v.params:,}",
                        "GMACs": f"{v.macs / 1e9:.3f}"} for k, v in configs.items()])
st.dataframe(totals, hide_index=True, width="stretch")
paper_dev = spec.presets["paper"].deviations
if paper_dev:
    st.caption("The paper configuration differs from the published network in: " + " ".join(paper_dev)
               + (f" With the two-GPU split the paper used (conv2, conv4 and conv5 each reading half the maps), it has "
                  f"{anatomy.two_tower_params(1000):,} parameters at 1000 classes, the paper's \"60 million\"."
                  if arch == "alexnet" else ""))
sdf = pd.DataFrame(anatomy.stage_rows(configs))
order = list(dict.fromkeys(sdf.sort_values("order")["stage"]))
for what, title in (("params", "parameters"), ("MACs", "multiply-accumulates")):
    ui.chart(alt.Chart(sdf).mark_bar().encode(
        x=alt.X("stage:N", sort=order, title=None, axis=alt.Axis(labelAngle=-35, labelLimit=150, labelOverlap=False)),
        y=alt.Y(f"{what} %:Q", title=f"share of {title} (%)", scale=alt.Scale(domain=[0, 100])),
        xOffset=alt.XOffset("configuration:N", sort=list(configs)),
        color=alt.Color("configuration:N", sort=list(configs), legend=alt.Legend(orient="top", title=None)),
        tooltip=["configuration", "stage", "resolution or block", alt.Tooltip("params:Q", format=","),
                 alt.Tooltip("params %:Q", format=".1f"), alt.Tooltip("MACs:Q", format=","),
                 alt.Tooltip("MACs %:Q", format=".1f")],
    ).properties(height=340, title=f"Where the {title} are"), width="stretch")
st.markdown(anatomy.cost_summary(t))
st.caption("Stages are runs of layers producing maps of one resolution (the grouping of the ResNet and "
           "MobileNet papers' tables), the blocks of a Transformer or Mixer, and the classifier. MACs count "
           "convolutions and matrix products, as torch's FlopCounterMode does; the totals equal the app's "
           "figures everywhere else.")

# --- layer by layer -------------------------------------------------------------------
st.header("Layer by layer")
deepest = anatomy.max_depth(t)
depth = st.select_slider("Detail", options=list(range(1, deepest + 1)), value=deepest, key="anat-depth",
                         format_func=lambda d: "every layer" if d == deepest else f"modules {d} deep",
                         help="Fold the table to blocks: sub-layers merge into their parent; totals do not change.")
hide = st.toggle("Hide layers that do nothing", value=True, key="anat-hide",
                 help="Identity layers and dropout with p=0 (timm's defaults) change nothing.")
rows = pd.DataFrame(anatomy.table_rows(t, None if depth == deepest else depth, hide_trivial=hide))
height = min(ui.table_height(len(rows)), 38 + 35 * 30)
# two narrower views of one table, so that every column fits beside the sidebar at 1024 px
shapes_tab, cost_tab = st.tabs(["Shapes and receptive fields", "Parameters and compute"])
with shapes_tab:
    st.dataframe(rows[["#", "layer", "type", "output", "receptive field"]], hide_index=True, width="stretch",
                 height=height, column_config={
                     "#": st.column_config.NumberColumn(width=40),
                     "layer": st.column_config.TextColumn(width=110),
                     "type": st.column_config.TextColumn(width=250),
                     "output": st.column_config.TextColumn("output (C x H x W)", width=120),
                     "receptive field": st.column_config.TextColumn(width=110)})
with cost_tab:
    st.dataframe(rows[["#", "layer", "params", "params %", "MACs", "MACs %"]], hide_index=True, width="stretch",
                 height=height, column_config={
                     "#": st.column_config.NumberColumn(width=40),
                     "layer": st.column_config.TextColumn(width=110),
                     "params": st.column_config.NumberColumn(format="localized", width=90),
                     "MACs": st.column_config.NumberColumn(format="localized", width=110),
                     "params %": st.column_config.ProgressColumn(format="%.1f%%", min_value=0, max_value=100,
                                                                 width=90),
                     "MACs %": st.column_config.ProgressColumn(format="%.1f%%", min_value=0, max_value=100,
                                                               width=90)})
st.caption(f"{len(rows)} rows (# counts every row of the full table), summing to {t.params:,} parameters and "
           f"{t.macs:,} MACs. A module used twice in one "
           "pass (ResNet's ReLU) appears at each use, its parameters counted once; '(own)' rows are work a "
           "module does outside its sub-layers (ViT's class token and position embeddings, attention's matrix "
           "products).")

# --- receptive field ------------------------------------------------------------------
st.header("Receptive field and resolution")
rf = pd.DataFrame(anatomy.rf_rows(t))
if not rf.empty and not t.token_model:
    x = alt.X("#:Q", title="layer (the # column of the table above)", axis=alt.Axis(tickMinStep=1, format="d"),
              scale=alt.Scale(domain=[int(rf["#"].min()), int(rf["#"].max())], nice=False))
    long = rf.melt(id_vars=["#", "layer"], value_vars=["receptive field (px)", "jump (px)"],
                   var_name="quantity", value_name="pixels")
    base = alt.Chart(long).mark_line(point=True).encode(
        x=x, y=alt.Y("pixels:Q", scale=alt.Scale(type="log"), title="input pixels (log scale)",
                     axis=alt.Axis(values=[1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000], format="d")),
        color=alt.Color("quantity:N", legend=alt.Legend(orient="bottom", title=None)),
        tooltip=["#", "layer", "quantity", alt.Tooltip("pixels:Q", format="g")])
    rule = alt.Chart(pd.DataFrame({"y": [t.input_size], "label": [f"input side ({t.input_size} px)"]})).encode(y="y:Q")
    st.markdown("**How far one unit sees, and how far apart neighbouring units are**")
    ui.chart((base + rule.mark_rule(strokeDash=[4, 4], color="grey")
                     + rule.mark_text(align="left", dx=4, dy=-6, color="grey").encode(text="label:N", x=alt.value(0)))
                    .properties(height=340), width="stretch")
    st.markdown("**The feature map shrinks as the receptive field grows**")
    ui.chart(alt.Chart(rf).mark_line(point=True, color="#59a14f").encode(
        x=x, y=alt.Y("map side (units):Q", title="feature-map side (units)", scale=alt.Scale(zero=True)),
        tooltip=["#", "layer", "map side (units)"]).properties(height=220), width="stretch")
st.markdown(anatomy.rf_summary(t))
st.caption("Computed by following the input through the forward pass: each convolution or pooling of kernel k "
           "widens the receptive field by (k - 1) x jump, each stride multiplies the jump; where branches "
           "meet (residual additions, concatenations) the widest wins, and only the convolutional paths "
           "count (a global pool's output sees everything). Nothing is typed in."
           + (" A dip is a shortcut projection or a side branch: it sees less of the image than the main path "
              "beside it." if anatomy.has_dips(t) else ""))

# --- the building block -------------------------------------------------------------------
st.header("The building block")
for path, caption in spec.blocks:
    st.markdown(caption)
    st.graphviz_chart(graph(arch, path, preset), width="content")
    st.caption(f"Traced from the module `{path}` with torch.fx; identity and dropout layers are left out.")

# --- paper against explorer ---------------------------------------------------------------------
st.header("Paper against explorer")
paper_t, expl_t = table(arch, "paper", 10), table(arch, "explorer", 10)
pairs = anatomy.align(paper_t.rows, expl_t.rows)
counts = anatomy.align_counts(pairs)
design = sum(counts[k] for k in anatomy.STATUS_DESIGN)
dev = spec.presets["explorer"].deviations
st.markdown("**The explorer differs from the paper in:**\n" + "\n".join(f"- {d}" for d in dev) if dev else
            "The explorer configuration is the paper's.")
st.markdown(f"Layer by layer (A = paper at {paper_t.input_size} px, B = explorer at {expl_t.input_size} px): "
            f"**{design}** of {len(pairs)} rows differ in design; {counts['resized']} only in size (their output "
            "shrinks with the smaller input).")
STATUS_COLOURS = {"changed": "#fff1d6", "moved": "#ece4f7", "only in A": "#fde2e1", "only in B": "#e1f5e4",
                  "resized": "#f4f6fa"}


def align_frame(pairs) -> pd.DataFrame:
    df = pd.DataFrame(anatomy.align_rows(pairs))
    df["A"] = (df["A layer"] + "  " + df["A"]).str.strip()
    df["B"] = (df["B layer"] + "  " + df["B"]).str.strip()
    return df[["A", "A output", "status", "what changed", "B", "B output"]]


def highlight(row):
    colour = STATUS_COLOURS.get(row["status"], "")
    return [f"background-color: {colour}" if colour else "" for _ in row]


def differences(pairs) -> None:
    """The rows that differ in design as a table that wraps its text (readable at any width),
    then every row, resized and unchanged ones included, in a scrollable table on demand."""
    df = align_frame(pairs)
    design = df[df["status"].isin(anatomy.STATUS_DESIGN)]
    if design.empty:
        st.markdown("No layer differs in design; every row is the same layer, at most with another output size.")
    else:
        st.table(design.style.apply(highlight, axis=1), hide_index=True)
    with st.expander(f"Every row ({len(df)}), resized and unchanged ones included"):
        st.dataframe(df.style.apply(highlight, axis=1), hide_index=True, width="stretch",
                     height=min(ui.table_height(len(df)), 38 + 35 * 25))


differences(pairs)

# --- two architectures -----------------------------------------------------------------
st.header("Side by side with another architecture")
partners = [b for a, b in anatomy.PAIRS if a == arch] + [a for a, b in anatomy.PAIRS if b == arch]
predecessor = names[max(0, names.index(arch) - 1)]
b_arch = ui.pick_second(names, arch, "anat-other", "Compare with", named, prefer=(*partners, predecessor),
                        include_first=False,
                        help="The pairs the papers themselves draw come first: AlexNet -> ZFNet, VGG-16 -> ResNet-34, "
                                 "ResNet-18 -> SE-ResNet-18.")
first, second = sorted([arch, b_arch], key=names.index)
ta, tb = table(first, preset, 10), table(second, preset, 10)
pairs = anatomy.align(ta.rows, tb.rows)
st.markdown(f"A = **{specs[first].title}** ({ta.params:,} params, {ta.macs / 1e9:.3f} GMACs), "
            f"B = **{specs[second].title}** ({tb.params:,} params, {tb.macs / 1e9:.3f} GMACs), both {preset}.")
if specs[second].builds_on == first:
    st.markdown(f"**What changed.** {specs[second].changed}")
counts = anatomy.align_counts(pairs)
if anatomy.comparable(pairs):
    st.caption(" · ".join(f"{v} {k}" for k, v in counts.items() if v) + " (rows matched in order by layer; "
               "'resized': the same layer with another output size; 'moved': the same layer a little earlier or "
               "later)")
    differences(pairs)
else:
    st.info(f"{specs[first].title} and {specs[second].title} are built differently, so matching them layer by "
            "layer would pair unrelated layers; they are compared stage by stage below, and each one's own layer "
            "table is above (switch the architecture).", icon=":material/info:")
both = pd.DataFrame(anatomy.stage_rows({specs[first].title: ta, specs[second].title: tb}))
both["GMACs"] = both["MACs"] / 1e9
both["stage number"] = both["order"] + 1
st.markdown("**Compute per stage**")
ui.chart(alt.Chart(both).mark_bar().encode(
    x=alt.X("stage number:O", title="stage, in forward order (hover for its name)", axis=alt.Axis(labelAngle=0)),
    y=alt.Y("GMACs:Q", title="GMACs per image"),
    xOffset="configuration:N", color=alt.Color("configuration:N", title=None,
                                               scale=ui.model_colors([specs[first].title, specs[second].title]),
                                               legend=alt.Legend(orient="bottom")),
    tooltip=["configuration", "stage", "resolution or block", alt.Tooltip("params:Q", format=","),
             alt.Tooltip("GMACs:Q", format=".3f")]).properties(height=340), width="stretch")
st.caption("Each network's own stages (runs of layers at one resolution, or blocks), numbered in forward order: the "
           "two bars of a number are the two networks' stages at the same depth, not necessarily the same layers. "
           + " · ".join(f"{specs[n].title}: " + ", ".join(f"{i + 1} {st_.label}" for i, st_ in
                                                          enumerate(anatomy.stages(tt)))
                        for n, tt in ((first, ta), (second, tb))))
