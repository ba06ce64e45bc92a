"""The layer table, computed from the modules on the meta device: the service other modules
use (`table`, `Table`, `Row`).

`table` lists every module call in forward order, with output shape, its trainable parameters
and its multiply-accumulates. MACs come from the same `FlopCounterMode` pass as `models.cost`,
read per module, so the column sums to the model's total exactly. `group(rows, depth)` folds
the table to blocks (depth 2: stages, depth 3: blocks, ...) without changing the totals: work a
parent does itself (ViT's class token and position embedding, attention's two matrix products)
gets its own "(own)" row. Each row carries its receptive field, from
`explorer.anatomy.fields.ReceptiveFields` run in the same pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import models
from explorer.anatomy.fields import INF, RF, ReceptiveFields, _pair, _tensors
from models.cost import MODEL_LOCK
from models.probes import unfused_attention


@dataclass
class Row:
    name: str                 # dotted path inside the ZooNet ("trunk.features.conv1"); "(own)" rows end with " (own)"
    kind: str                 # module class, e.g. "Conv2d"
    detail: str               # key hyper-parameters, e.g. "11x11 /4, 3->96"
    depth: int                # number of dots + 1 ("trunk" is 1)
    out_shape: tuple          # output shape without the batch dimension
    params: int               # trainable parameters in this row (own parameters for "(own)" rows)
    macs: int                 # multiply-accumulates of one forward pass on one image
    leaf: bool
    rf: float | None = None   # receptive field in input pixels (INF: the whole image); None: not spatial
    jump: float | None = None
    start: float | None = None
    context: bool = False     # a global per-channel gate (SE) also feeds this output
    calls: int = 1

    @property
    def layer(self) -> str:
        return self.name.removeprefix("trunk.") if self.name != "trunk" else "trunk"

    @property
    def spatial(self) -> tuple[int, int] | None:
        return tuple(self.out_shape[-2:]) if len(self.out_shape) == 3 else None


@dataclass
class Table:
    arch: str
    preset: str
    num_classes: int
    input_size: int
    in_chans: int
    rows: list[Row]           # leaf-level rows (plus "(own)" rows), forward order
    modules: dict[str, Row]   # every called module, by name, with its total params and MACs
    params: int               # == models.cost.count_params
    macs: int                 # == models.cost.gmacs * 1e9
    token_model: bool = False
    patch: int | None = None
    uncalled: list[str] = field(default_factory=list)


def describe(m: nn.Module) -> str:
    """A short, readable summary of a module's hyper-parameters."""
    if isinstance(m, nn.Conv2d):
        k = "x".join(map(str, m.kernel_size))
        s = f" /{m.stride[0]}" if m.stride[0] > 1 else ""
        g = " depthwise" if m.groups == m.in_channels == m.out_channels and m.groups > 1 else (
            f" groups {m.groups}" if m.groups > 1 else "")
        return f"{k}{s}, {m.in_channels}->{m.out_channels}{g}"
    if isinstance(m, nn.Linear):
        return f"{m.in_features}->{m.out_features}"
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        k, s = _pair(m.kernel_size, 1)[0], _pair(m.stride, 1)[0]
        return f"{k}x{k} /{s}"
    if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
        return f"{m.num_features} ch"
    if isinstance(m, nn.LayerNorm):
        return f"{m.normalized_shape[0]}"
    if isinstance(m, nn.LocalResponseNorm):
        return f"n={m.size}, k={m.k:g}, beta={m.beta:g}"
    if isinstance(m, nn.Dropout):
        return f"p={m.p:g}"
    if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return f"to {m.output_size}"
    if hasattr(m, "num_heads"):
        return f"{m.num_heads} heads"
    if hasattr(m, "out_channels") and hasattr(m, "in_channels"):
        return f"{m.in_channels}->{m.out_channels}"
    return ""


def _shape(out) -> tuple:
    t = next(_tensors(out), None)
    return tuple(t.shape[1:]) if t is not None else ()


def table(arch: str, preset: str = "explorer", num_classes: int = 10) -> Table:
    """The layer table of `arch` at `preset`; see the module docstring."""
    with torch.device("meta"):
        model = models.create(arch, preset, num_classes=num_classes)
    model.eval()
    names = {m: n for n, m in model.named_modules() if n}
    order: list[nn.Module] = []
    seen_out: dict[nn.Module, tuple] = {}
    calls: dict[nn.Module, int] = {}
    rf_of: dict[nn.Module, RF | None] = {}
    x = torch.zeros(1, model.in_chans, model.input_size, model.input_size, device="meta")
    tracker = ReceptiveFields(x)

    events: list[tuple[nn.Module, tuple, RF | None]] = []   # every leaf call, in order

    def pre(m, _inp):
        if m not in calls:
            order.append(m)
        calls[m] = calls.get(m, 0) + 1

    def post(m, _inp, out):
        seen_out[m] = _shape(out)
        t = next(_tensors(out), None)
        rf_of[m] = tracker.get(t)
        if not any(True for _ in m.children()):
            events.append((m, seen_out[m], rf_of[m]))

    handles = []
    for m in names:
        handles.append(m.register_forward_pre_hook(pre))
        handles.append(m.register_forward_hook(post))
    counter = FlopCounterMode(display=False)
    try:
        with MODEL_LOCK, unfused_attention(model), counter, tracker, torch.no_grad():   # see models.cost
            model(x)
    finally:
        for h in handles:
            h.remove()
    flops = {k.removeprefix("ZooNet."): sum(v.values()) for k, v in counter.get_flop_counts().items()}
    total_macs = sum(counter.get_flop_counts().get("Global", {}).values()) // 2

    def own_params(m):
        return sum(p.numel() for p in m.parameters(recurse=False) if p.requires_grad)

    def all_params(m):
        return sum(p.numel() for p in m.parameters() if p.requires_grad)

    token_model = hasattr(model.trunk, "blocks") and (hasattr(model.trunk, "patch_embed")
                                                       or hasattr(model.trunk, "stem"))
    def make(m, n, shape, r) -> Row:
        spatial = len(shape) == 3
        return Row(
            name=n, kind=type(m).__name__, detail=describe(m), depth=n.count(".") + 1, out_shape=shape,
            params=all_params(m), macs=flops.get(n, 0) // 2, leaf=not any(True for _ in m.children()),
            rf=(r.rf if r is not None else None) if spatial else (
                (r.rf if r is not None else INF) if shape else None),
            jump=r.jump if (r is not None and spatial) else None,
            start=r.start if (r is not None and spatial) else None,
            context=bool(r and r.context), calls=calls[m])

    infos: dict[str, Row] = {names[m]: make(m, names[m], seen_out.get(m, ()), rf_of.get(m)) for m in order}
    # leaf rows, plus "(own)" rows for work a parent does itself
    rows: list[Row] = []
    children_of: dict[str, list[str]] = {}
    for n in infos:
        parent = n.rsplit(".", 1)[0] if "." in n else ""
        children_of.setdefault(parent, []).append(n)
    own: dict[str, Row] = {}
    for n, info in infos.items():
        if info.leaf:
            continue
        m = model.get_submodule(n)
        kids = children_of.get(n, [])
        op = own_params(m)
        om = info.macs - sum(infos[k].macs for k in kids)
        if op or om:
            own[n] = replace(info, name=f"{n} (own)", params=op, macs=om, leaf=True, out_shape=(),
                             rf=None, jump=None, start=None, detail=_own_detail(m, op, om))
    # leaves row by row, one per call (a ReLU module used twice shows twice, its parameters
    # and MACs on the first); a parent's own parameters go before its first leaf
    first_leaf: dict[str, int] = {}
    done: set[nn.Module] = set()
    leaf_rows: list[Row] = []
    for m, shape, r in events:
        n = names[m]
        row = make(m, n, shape, r)
        if m in done:
            row = replace(row, params=0, macs=0, detail=(row.detail + " (again)").strip())
        done.add(m)
        leaf_rows.append(row)
    for m in order:
        n = names[m]
        if n in own and own_params(m):
            first_leaf.setdefault(n, next((i for i, x in enumerate(leaf_rows)
                                           if x.name.startswith(n + ".")), len(leaf_rows)))
    for i, row in enumerate(leaf_rows):
        rows += [own[n] for n, j in first_leaf.items() if j == i]
        rows.append(row)
    rows += [own[n] for n, j in first_leaf.items() if j == len(leaf_rows)]
    # "(own)" rows that hold only compute go after the module's last leaf
    for n, r in own.items():
        if r in rows:
            continue
        last = max(i for i, x in enumerate(rows) if x.name.startswith(n + ".") or x.name == n)
        rows.insert(last + 1, r)
    uncalled = [n for m, n in names.items() if m not in calls and own_params(m)]
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Table(arch, preset, num_classes, model.input_size, model.in_chans, rows, infos, params,
                 total_macs, token_model, _patch(model) if token_model else None, uncalled)


def _own_detail(m: nn.Module, own_params: int, own_macs: int) -> str:
    if own_params:
        names = [n for n, p in m.named_parameters(recurse=False) if p.requires_grad]
        return "own parameters: " + ", ".join(names)
    if hasattr(m, "num_heads"):
        return "attention's two matrix products (q·k, weights·v)"
    return "operations outside its sub-modules"


def _patch(model) -> int | None:
    stem = model.stem
    return int(stem.kernel_size[0]) if isinstance(stem, nn.Conv2d) else None


def group(t: Table, depth: int) -> list[Row]:
    """The table folded to `depth` (1: trunk and head; 2: the trunk's children; ...).

    Rows deeper than `depth` merge into their ancestor at `depth`, which keeps its own
    output shape and receptive field; totals are unchanged."""
    out: list[Row] = []
    index: dict[str, int] = {}
    for r in t.rows:
        base = r.name.removesuffix(" (own)")
        parts = base.split(".")
        if r.name.endswith(" (own)") and len(parts) < depth:
            out.append(r)
            continue
        if len(parts) <= depth:
            out.append(r)
            continue
        key = ".".join(parts[:depth])
        if key in index:
            agg = out[index[key]]
            agg.params += r.params
            agg.macs += r.macs
            continue
        info = t.modules[key]
        agg = replace(info, params=r.params, macs=r.macs, leaf=False)
        index[key] = len(out)
        out.append(agg)
    return out


def max_depth(t: Table) -> int:
    return max(r.name.removesuffix(" (own)").count(".") + 1 for r in t.rows)


def fmt_shape(shape: tuple) -> str:
    return " x ".join(str(s) for s in shape) if shape else "-"


def fmt_rf(r: Row, input_size: int) -> str:
    if r.rf is None:
        return "-"
    if r.rf == INF:
        return "whole image"
    return f"{r.rf:g} px"
