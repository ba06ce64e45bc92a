"""What the Anatomy page shows, computed from the modules and the layer table: display rows
(`table_rows`, `stage_rows`, `rf_rows`, `align_rows`), its sentences (`cost_summary`,
`rf_summary`, `blog_note`) and the facts it quotes (`BLOG_TOTALS`, `conv_biases_dropped`,
`two_tower_params`, `PAIRS`).
"""
from __future__ import annotations

import operator

import torch
from torch import nn

import models
from explorer.anatomy.alignment import Pair
from explorer.anatomy.fields import INF
from explorer.anatomy.layers import Row, Table, fmt_rf, fmt_shape, group
from explorer.anatomy.staging import stages


# --- explanations computed from the modules --------------------------------------------

def conv_biases_dropped(arch: str, preset: str = "paper", num_classes: int = 10) -> dict:
    """Parameters a bias in every convolution would add (what torchsummary-style blog
    implementations that keep `bias=True` before batch norm count), from the modules."""
    with torch.device("meta"):
        m = models.create(arch, preset, num_classes=num_classes)
    convs = [c for c in m.modules() if isinstance(c, nn.Conv2d)]
    missing = sum(c.out_channels for c in convs if c.bias is None)
    params = sum(p.numel() for p in m.parameters() if p.requires_grad)
    return {"params": params, "convs": len(convs), "bias_free_convs": sum(c.bias is None for c in convs),
            "missing_biases": missing, "with_biases": params + missing}


def biggest(rows: list[Row], key=operator.attrgetter("params"), n: int = 3) -> list[Row]:
    return sorted(rows, key=key, reverse=True)[:n]


# --- what the page shows ---------------------------------------------------------------

# Totals printed by the vision-hist blog's layer tables (../shared/reference, torchsummary
# style, 10 classes), quoted so the page can set this build's computed totals beside them.
BLOG_TOTALS = {
    ("alexnet", "paper", 10): 58_322_314,
    ("vgg16", "paper", 10): 134_301_514,
    ("resnet34", "paper", 10): 21_298_314,
}


def does_nothing(r: Row) -> bool:
    """Identity layers and dropout with p=0 (timm's defaults in ViT and Mixer): no effect at all."""
    return r.kind in ("Identity",) or (r.kind in ("Dropout", "DropPath") and r.detail in ("p=0", ""))


def table_rows(t: Table, depth: int | None = None, hide_trivial: bool = False) -> list[dict]:
    """The layer table as display rows: shares of the totals, receptive fields in pixels.
    Row numbers (#) are those of the full table, so the receptive-field chart can refer to them."""
    rows = group(t, depth) if depth else t.rows
    out = []
    for i, r in enumerate(rows, 1):
        if hide_trivial and does_nothing(r):
            continue
        out.append({
            "#": i, "layer": r.layer, "type": f"{r.kind} {r.detail}".strip(), "output": fmt_shape(r.out_shape),
            "params": r.params, "params %": 100 * r.params / t.params if t.params else 0.0,
            "MACs": r.macs, "MACs %": 100 * r.macs / t.macs if t.macs else 0.0,
            "receptive field": fmt_rf(r, t.input_size), "jump (px)": r.jump,
        })
    return out


def stage_rows(tables: dict[str, Table]) -> list[dict]:
    """Long rows (configuration, stage, params, MACs, shares) for the cost-by-stage chart."""
    out = []
    for config, t in tables.items():
        for i, s in enumerate(stages(t)):
            out.append({"configuration": config, "order": i, "stage": s.label.split(" · ", 1)[-1]
                        if " · " in s.label else s.label, "resolution or block": s.key, "params": s.params,
                        "MACs": s.macs, "params %": 100 * s.params / t.params if t.params else 0.0,
                        "MACs %": 100 * s.macs / t.macs if t.macs else 0.0})
    return out


def cost_summary(t: Table) -> str:
    """One sentence on where the parameters and the compute sit, computed from the stages."""
    st = stages(t)
    name = lambda s: s.label.split(" · ", 1)[-1] if " · " in s.label else s.label  # noqa: E731
    pct = lambda v, total: 100 * v / total if total else 0.0  # noqa: E731
    p = max(st, key=lambda s: s.params)
    m = max(st, key=lambda s: s.macs)
    twins = [s for s in st if s.params == p.params and s.macs == p.macs]
    if len(twins) > 1:
        return (f"Its {len(twins)} blocks are identical: each holds {pct(p.params, t.params):.1f}% of the "
                f"parameters and does {pct(p.macs, t.macs):.1f}% of the multiply-accumulates; together "
                f"{pct(p.params * len(twins), t.params):.0f}% of the parameters and "
                f"{pct(p.macs * len(twins), t.macs):.0f}% of the MACs.")
    if p is m:
        return (f"The biggest stage, {name(p)}, has {pct(p.params, t.params):.0f}% of the parameters and "
                f"{pct(p.macs, t.macs):.0f}% of the multiply-accumulates.")
    return (f"Most parameters sit in {name(p)} ({pct(p.params, t.params):.0f}%), which does only "
            f"{pct(p.macs, t.macs):.1f}% of the multiply-accumulates; most compute happens in {name(m)} "
            f"({pct(m.macs, t.macs):.0f}% of the MACs, {pct(m.params, t.params):.1f}% of the parameters).")


def rf_rows(t: Table) -> list[dict]:
    """Per spatial layer: receptive field, jump and feature-map side, for the curve."""
    out = []
    for i, r in enumerate(t.rows, 1):
        if r.spatial is None or r.rf is None or r.rf == INF:
            continue
        out.append({"#": i, "layer": r.layer, "receptive field (px)": r.rf, "jump (px)": r.jump,
                    "map side (units)": r.spatial[0], "global context": r.context})
    return out


def has_dips(t: Table) -> bool:
    """Does the receptive field shrink somewhere along the forward order (a shortcut or a branch)?"""
    rfs = [r["receptive field (px)"] for r in rf_rows(t)]
    return any(b < a for a, b in zip(rfs, rfs[1:]))


def rf_summary(t: Table) -> str:
    """What the receptive-field curve says, in a sentence or two, computed from the table."""
    spatial = [r for r in t.rows if r.spatial is not None and r.rf not in (None, INF)]
    if t.token_model:
        return (f"Each token starts as one {t.patch}x{t.patch} patch. The first block's "
                + ("self-attention" if t.arch == "vit" else "token-mixing MLP")
                + " lets every token read every other token, so from block 1 on every unit's receptive "
                "field is the whole image: there is no receptive field to grow, only what the network "
                "learns to attend to (the attention page's mean attention distance shows how far it looks).")
    if not spatial:
        return ""
    last = spatial[-1]
    first_full = next((r for r in spatial if r.rf >= t.input_size), None)
    if last.rf >= t.input_size:
        s = (f"The last spatial layer ({last.layer}, {last.kind}) has a theoretical receptive field of {last.rf:g} px, "
             f"{last.rf / t.input_size:.1f}x the {t.input_size} px input: each of its units can draw on the whole image "
             f"(units are {last.jump:g} px apart). ")
    else:
        s = (f"The last spatial layer ({last.layer}, {last.kind}) sees {last.rf:g} px of the {t.input_size} px input, "
             f"with neighbouring units {last.jump:g} px apart. ")
    if first_full is not None:
        s += f"Units cover the whole input from {first_full.layer} on. "
    if any(r.context for r in t.rows):
        s += ("Squeeze-and-excitation gates also feed every block a summary of the whole image (global "
              "pooling); the curve counts only the convolutional paths.")
    return s.strip()


def blog_note(arch: str, preset: str, num_classes: int, params: int) -> str | None:
    """This build's total against the vision-hist blog's table, with the difference explained."""
    blog = BLOG_TOTALS.get((arch, preset, num_classes))
    if blog is None:
        return None
    if blog == params:
        return (f"The vision-hist blog (the writing this project grew from) lists this network's layers with "
                f"{blog:,} parameters at {num_classes} classes: the same.")
    b = conv_biases_dropped(arch, preset, num_classes)
    if b["with_biases"] == blog:
        return (f"The vision-hist blog (the writing this project grew from) lists {blog:,} parameters; this build "
                f"has {params:,}, "
                f"{blog - params:,} fewer. The blog's implementation keeps a bias in every one of the "
                f"{b['convs']} convolutions ({b['missing_biases']:,} numbers, one per output channel); each "
                "convolution here feeds a batch norm, which subtracts the mean over the batch and so cancels "
                "any constant a bias adds, so torchvision (and this build) leave it out: "
                f"{params:,} + {b['missing_biases']:,} = {blog:,}.")
    return f"The vision-hist blog's table totals {blog:,} parameters; this build has {params:,}."


def align_rows(pairs: list[Pair]) -> list[dict]:
    def cell(r: Row | None, what: str) -> str:
        if r is None:
            return ""
        return {"layer": r.layer, "type": f"{r.kind} {r.detail}".strip(), "output": fmt_shape(r.out_shape),
                "params": f"{r.params:,}"}[what]
    return [{"A layer": cell(p.a, "layer"), "A": cell(p.a, "type"), "A output": cell(p.a, "output"),
             "A params": cell(p.a, "params"), "status": p.status, "what changed": p.what,
             "B layer": cell(p.b, "layer"), "B": cell(p.b, "type"), "B output": cell(p.b, "output"),
             "B params": cell(p.b, "params")} for p in pairs]


# predecessor -> successor pairs the papers themselves draw
PAIRS = [("alexnet", "zfnet"), ("vgg16", "resnet34"), ("resnet18", "se_resnet18"), ("lenet5", "alexnet"),
         ("resnet18", "resnet34"), ("vit", "mlp_mixer")]


def two_tower_params(num_classes: int = 1000) -> int:
    """AlexNet's parameters as the paper trained it on two GPUs: conv2, conv4 and conv5 each see
    only the half of the previous layer's maps on their own GPU (groups = 2). Computed from the
    one-tower paper configuration by halving those layers' weights (60,965,224 at 1000 classes:
    the paper's "60 million")."""
    with torch.device("meta"):
        m = models.create("alexnet", "paper", num_classes=num_classes)
    convs = [c for c in m.trunk.features if isinstance(c, nn.Conv2d)]
    halved = sum(c.weight.numel() // 2 for i, c in enumerate(convs) if i in (1, 3, 4))
    return sum(p.numel() for p in m.parameters() if p.requires_grad) - halved
