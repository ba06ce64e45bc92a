"""A network's anatomy, computed from its modules: layer table, cost per stage, receptive
fields, the building block as a graph, and layer-by-layer alignment of two networks.

Everything runs on the meta device (shapes only, no weights), so it works for every
architecture and preset whether or not a checkpoint exists, and takes well under a second
for most networks.

* **Layer table** (`table`): every module call in forward order, with output shape, its
  trainable parameters and its multiply-accumulates. MACs come from the same
  `FlopCounterMode` pass as `models.cost`, read per module, so the column sums to the
  model's total exactly. `group(rows, depth)` folds the table to blocks (depth 2: stages,
  depth 3: blocks, ...) without changing the totals: work a parent does itself (ViT's class
  token and position embedding, attention's two matrix products) gets its own "(own)" row.
* **Receptive field** (`ReceptiveFields`): a `TorchFunctionMode` that follows every tensor
  through the forward pass and, for each spatial map, tracks the receptive field size `rf`
  (input pixels one unit sees), its jump (input pixels between neighbouring units) and the
  centre of unit 0. Convolutions and pools grow it (rf += (k - 1) * dilation * jump);
  merges (residual additions, concatenations) take the largest of their inputs, so
  branches and shortcuts are handled by the graph itself, not by a typed-in table. A
  per-channel gate computed from a global pool (Squeeze-and-Excitation) is counted as
  global context and flagged, not as receptive field. Token tensors (ViT, Mixer) become
  global at the first operation that mixes tokens (attention's products, Mixer's
  token-mixing MLP).
* **Stages** (`stages`): consecutive layers producing maps of one resolution, the grouping
  of the ResNet and MobileNet papers' tables ("output size"); blocks of tokens for ViT and
  Mixer; and the classifier.
"""
from __future__ import annotations

import difflib
import math
import operator
from dataclasses import dataclass, field, replace

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode
from torch.utils.weak import WeakTensorKeyDictionary

import models
from models.cost import MODEL_LOCK
from models.probes import unfused_attention

INF = math.inf


@dataclass
class Row:
    name: str                 # dotted path inside the ZooNet ("trunk.features.0"); "(own)" rows end with " (own)"
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


# --- receptive fields ------------------------------------------------------------------

@dataclass(frozen=True)
class RF:
    rf: float
    jump: float
    start: float
    context: bool = False
    token_axis: int | None = None   # for token tensors: which dimension indexes the tokens


def _pair(v, default):
    if v is None:
        v = default
    if isinstance(v, (list, tuple)):
        return (int(v[0]), int(v[-1]))
    return (int(v), int(v))


def _arg(args, kwargs, i, name, default=None):
    if name in kwargs:
        return kwargs[name]
    return args[i] if len(args) > i else default


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


class ReceptiveFields(TorchFunctionMode):
    """Follow the input through a forward pass, recording each tensor's receptive field."""

    def __init__(self, x: torch.Tensor):
        super().__init__()
        self.info = WeakTensorKeyDictionary()
        self.info[x] = RF(1.0, 1.0, 0.0)

    def get(self, t) -> RF | None:
        return self.info.get(t) if isinstance(t, torch.Tensor) else None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        try:
            self._propagate(func, args, kwargs, out)
        except Exception:  # noqa: BLE001 -- bookkeeping must never break the forward pass
            pass
        return out

    def _window(self, src: RF, k, s, p, d) -> RF:
        keff = (k - 1) * d + 1
        return RF(src.rf + (keff - 1) * src.jump, src.jump * s, src.start + ((keff - 1) / 2 - p) * src.jump,
                  src.context)

    def _propagate(self, func, args, kwargs, out):
        name = getattr(func, "__name__", "")
        outs = [t for t in _tensors(out)]
        if not outs:
            return
        first = args[0] if args else None
        src = self.get(first)
        if name == "conv2d" and src is not None:
            w = _arg(args, kwargs, 1, "weight")
            kh, kw = w.shape[-2:]
            s = _pair(_arg(args, kwargs, 3, "stride"), 1)[0]
            pad = _arg(args, kwargs, 4, "padding", 0)
            d = _pair(_arg(args, kwargs, 5, "dilation"), 1)[0]
            if isinstance(pad, str):
                pad = (d * (kh - 1)) // 2 if pad == "same" else 0
            self.info[outs[0]] = self._window(src, kh, s, _pair(pad, 0)[0], d)
            return
        if ("max_pool2d" in name or name == "avg_pool2d") and src is not None:
            k = _pair(_arg(args, kwargs, 1, "kernel_size"), 1)[0]
            s = _pair(_arg(args, kwargs, 2, "stride") or k, k)[0]
            p = _pair(_arg(args, kwargs, 3, "padding"), 0)[0]
            d = _pair(_arg(args, kwargs, 4, "dilation"), 1)[0] if "max" in name else 1
            for t in outs:
                self.info[t] = self._window(src, k, s, p, d)
            return
        if name.startswith("adaptive_") and src is not None:
            oh = outs[0].shape[-1]
            ih = first.shape[-1]
            if oh == 1 or ih % oh:
                res = RF(INF, src.jump * ih, 0.0, src.context)
            else:
                k = ih // oh
                res = self._window(src, k, k, 0, 1)
            for t in outs:
                self.info[t] = res
            return
        ins = [(t, self.get(t)) for t in _tensors((args, kwargs))]
        ins = [(t, i) for t, i in ins if i is not None]
        if not ins:
            return
        o = outs[0]
        # token tensors: attention's products and token-mixing linears make them global
        if name in ("matmul", "bmm", "__matmul__", "baddbmm", "scaled_dot_product_attention") and len(ins) >= 2:
            self.info[o] = replace(ins[0][1], rf=INF)
            return
        if o.dim() == 4:
            same = [i for t, i in ins if t.dim() == 4 and tuple(t.shape[-2:]) == tuple(o.shape[-2:])]
            gates = [i for t, i in ins if t.dim() == 4 and tuple(t.shape[-2:]) == (1, 1) and o.shape[-1] > 1]
            if same:
                best = max(same, key=lambda i: i.rf)
                self.info[o] = replace(best, context=best.context or bool(gates) or any(i.context for i in same))
            return
        base = ins[0][1]
        if base.token_axis is None and ins[0][0].dim() == 4 and o.dim() == 3 and name == "flatten":
            self.info[o] = replace(base, token_axis=2)          # (B, C, H*W): tokens on the last axis
            return
        if name in ("transpose", "swapaxes") and base.token_axis is not None:
            a, b = (_arg(args, kwargs, 1, "dim0"), _arg(args, kwargs, 2, "dim1"))
            nd = ins[0][0].dim()
            a, b = a % nd, b % nd
            ax = b if base.token_axis == a else a if base.token_axis == b else base.token_axis
            self.info[o] = replace(base, token_axis=ax)
            return
        if name == "linear" and ((base.token_axis is not None and base.token_axis == ins[0][0].dim() - 1)
                                 or ins[0][0].dim() == 2):
            self.info[o] = replace(base, rf=INF, token_axis=None)  # mixes tokens (Mixer) or a whole map (fc6)
            return
        if o.dim() == 2 and ins[0][0].dim() == 4:
            self.info[o] = replace(base, token_axis=None)          # a flattened map: still local until a linear
            return
        best = max((i for _, i in ins), key=lambda i: i.rf)
        for t in outs:
            self.info[t] = best


# --- the layer table -------------------------------------------------------------------

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


# --- stages ----------------------------------------------------------------------------

@dataclass
class Stage:
    label: str
    rows: list[Row]
    params: int
    macs: int
    size: str


def stages(t: Table) -> list[Stage]:
    """Consecutive rows grouped by what they produce: maps of one resolution (CNNs),
    the tokens of one block (ViT, Mixer), or a vector (the classifier).

    A detour through 1x1 maps that returns to the same resolution (a Squeeze-and-Excitation
    gate) stays in its stage; a stage with neither parameters nor compute (the 1x1 output of
    a global pool) joins the next."""
    def raw(r: Row, seen_block: bool) -> str:
        if t.token_model:
            parts = r.name.split(".")
            if "blocks" in parts and len(parts) > parts.index("blocks") + 1:
                return f"block {int(parts[parts.index('blocks') + 1]) + 1}"
            if r.name.startswith("head"):
                return "classifier"
            return "final norm + pool" if seen_block else "patch embedding"
        if r.spatial:
            return f"{r.spatial[0]}x{r.spatial[1]}"
        return "classifier" if r.out_shape or r.name.startswith("head") else None

    keys, seen = [], False
    for r in t.rows:
        k = raw(r, seen)
        seen = seen or (k or "").startswith("block")
        keys.append(k if k is not None else (keys[-1] if keys else "input"))
    i = 0
    while i < len(keys):  # 1x1 detours
        if keys[i] == "1x1" and i:
            j = i
            while j < len(keys) and keys[j] == "1x1":
                j += 1
            if j < len(keys) and keys[j] == keys[i - 1]:
                keys[i:j] = [keys[i - 1]] * (j - i)
            i = j
        else:
            i += 1
    out: list[Stage] = []
    for r, k in zip(t.rows, keys):
        if out and out[-1].size == k:
            s = out[-1]
            s.rows.append(r)
            s.params += r.params
            s.macs += r.macs
        else:
            out.append(Stage(k, [r], r.params, r.macs, k))
    merged: list[Stage] = []
    for i, s in enumerate(out):
        if not s.params and not s.macs and i + 1 < len(out):
            out[i + 1].rows[:0] = s.rows
            continue
        merged.append(s)
    names = unit_names(t)
    for s in merged:
        if t.token_model:
            continue
        units = list(dict.fromkeys(names[r.name] for r in s.rows if names.get(r.name)))
        span = _span(units)
        if s.size == "classifier":
            s.label = f"classifier · {span}" if span and span != "head" else "classifier"
        elif span:
            s.label = f"{s.size} · {span}"
    return merged


def _span(units: list[str]) -> str:
    if not units:
        return ""
    if len(units) == 1:
        return units[0]
    a, b = units[0], units[-1]
    if a.startswith("block ") and b.startswith("block "):
        return f"blocks {a[6:]}-{b[6:]}"
    return f"{a}-{b}"


_CONTAINERS = ("features", "fc67")   # the zoo's generic containers: name what is inside them


def unit_names(t: Table) -> dict[str, str]:
    """Row name -> the name a learner would use for the unit it belongs to.

    Named children of the trunk (ResNet's layer1, GoogLeNet's inception3a, LeNet's c1) name
    themselves. Inside a container of numbered layers (AlexNet's and VGG's `features`) the
    weight layers are numbered in forward order, as the papers number them (conv1 ... conv5,
    fc6 ... fc8); a container of numbered blocks (NiN's mlpconv blocks, MobileNet's inverted
    residuals) numbers its blocks 1, 2, ... Only convolutions and linear layers are named."""
    def ordinal(prefix: str) -> int:
        parent, idx = prefix.rsplit(".", 1)
        sibs = [n for n in t.modules if n.startswith(parent + ".") and n.count(".") == parent.count(".") + 1
                and not t.modules[n].leaf]
        sibs.sort(key=lambda n: int(n.rsplit(".", 1)[1]))
        return sibs.index(prefix) + 1

    out, k, last = {}, 0, ""
    for r in t.rows:
        if not r.params or r.name.endswith("(own)") or "Norm" in r.kind:
            continue
        weighted = any(w in r.kind for w in ("Conv", "Linear"))
        k += weighted
        parts = r.name.split(".")
        name = None
        for depth in range(len(parts)):
            prefix = ".".join(parts[:depth + 1])
            if parts[depth] == "trunk" or (depth < len(parts) - 1 and parts[depth] in _CONTAINERS):
                continue
            if parts[depth].isdigit():
                mod = t.modules.get(prefix)
                name = f"block {ordinal(prefix)}" if mod is not None and not mod.leaf else \
                    (f"conv{k}" if "Conv" in r.kind else f"fc{k}")
            else:
                name = parts[depth]
            break
        if name == "head" and last.startswith("fc"):
            name = f"fc{k}"
        out[r.name] = name
        last = name or ""
    return out


# --- the building block as a graph ----------------------------------------------------

_COMPOSITE_LEAVES = ("Attention", "Mlp", "SqueezeExcitation", "_DenseLayer", "BasicConv2d",
                     "Conv2dNormActivation", "PatchEmbed")
_HIDE = ("Identity", "Dropout", "DropPath")


def _block_module(model, path: str) -> nn.Module:
    """`path` is a dotted module path, optionally sliced: "trunk.features[0:7]", or
    "trunk.features[:MaxPool2d]" for the children up to and including the first MaxPool2d."""
    if "[" not in path:
        return model.get_submodule(path)
    base, sl = path[:-1].split("[")
    kids = list(model.get_submodule(base).children())
    a, b = sl.split(":")
    if b and not b.lstrip("-").isdigit():
        end = next(i for i, k in enumerate(kids) if type(k).__name__ == b) + 1
    else:
        end = int(b) if b else None
    return nn.Sequential(*kids[int(a) if a else None:end])


def _label(m: nn.Module) -> str:
    kind = type(m).__name__
    if kind in ("Conv2dNormActivation", "BasicConv2d") or (isinstance(m, nn.Sequential) and len(m) <= 3):
        parts = []
        for c in m.children():
            if isinstance(c, nn.Conv2d):
                parts.append(f"conv {describe(c)}")
            elif isinstance(c, nn.BatchNorm2d):
                parts.append("BN")
            elif not isinstance(c, (nn.Identity, nn.Dropout)):
                parts.append(type(c).__name__)
        if kind == "BasicConv2d":
            parts.append("ReLU")
        return " · ".join(parts)
    if kind == "Attention":
        return f"multi-head self-attention\\n{m.num_heads} heads, dim {m.qkv.in_features}"
    if kind == "Mlp":
        return f"MLP {m.fc1.in_features}->{m.fc1.out_features}->{m.fc2.out_features}\\n({type(m.act).__name__})"
    if kind == "SqueezeExcitation":
        return f"squeeze-and-excitation\\n{m.fc1.in_channels}->{m.fc1.out_channels}->{m.fc2.out_channels}"
    if kind == "_DenseLayer":
        return f"dense layer\\nBN·ReLU·conv 1x1->{m.conv1.out_channels}\\nBN·ReLU·conv 3x3->{m.conv2.out_channels}"
    d = describe(m)
    return f"{kind}\\n{d}" if d else kind


_FN_LABELS = {"add": "+", "iadd": "+", "mul": "x", "cat": "concat", "transpose": "transpose",
              "flatten": "flatten", "sigmoid": "sigmoid", "relu": "ReLU", "matmul": "matmul"}


_FOLD = {"ReLU": "ReLU", "ReLU6": "ReLU6", "GELU": "GELU", "Sigmoid": "sigmoid", "Squash": "scaled tanh",
         "LocalResponseNorm": "LRN", "BatchNorm2d": "BN", "MaxPool2d": "max-pool", "AvgPool2d": "avg-pool"}


def _fold_chains(nodes: dict, edges: list, kinds: dict) -> tuple[dict, list]:
    """Fold a parameter-free follow-up layer (activation, LRN, pooling, BN) into the layer before
    it when it is that layer's only consumer: AlexNet's stack reads conv1 · ReLU · LRN · max-pool
    instead of four boxes in a row. Branches and merges are left as they are."""
    changed = True
    while changed:
        changed = False
        outs: dict[str, list] = {}
        ins: dict[str, list] = {}
        for a, b in edges:
            outs.setdefault(a, []).append(b)
            ins.setdefault(b, []).append(a)
        for n, m in kinds.items():
            if n not in nodes or type(m).__name__ not in _FOLD or len(ins.get(n, [])) != 1:
                continue
            p = ins[n][0]
            if p not in kinds or outs.get(p) != [n]:
                continue
            short = _FOLD[type(m).__name__]
            if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
                short += f" {describe(m)}"
            nodes[p] = (nodes[p][0] + "\\n" + short, nodes[p][1])
            edges = [(p if a == n else a, b) for a, b in edges if b != n]
            del nodes[n]
            changed = True
            break
    return nodes, edges


def block_graph(arch: str, path: str, preset: str = "explorer") -> str:
    """Graphviz DOT of the module at `path`, traced with torch.fx from the module itself."""
    import torch.fx as fx

    with torch.device("meta"):
        model = models.create(arch, preset)
    block = _block_module(model, path)

    class Tracer(fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return (type(m).__name__ in _COMPOSITE_LEAVES or not any(True for _ in m.children())
                    or super().is_leaf_module(m, qualname))

    graph = Tracer().trace(block)
    nodes, edges, kinds = {}, [], {}
    alias: dict[str, str] = {}

    def src(n) -> str:
        return alias.get(n.name, n.name)

    first_input = True
    for n in graph.nodes:
        ins = [a for a in n.all_input_nodes]
        if n.op == "placeholder":
            if first_input:    # the block's input; optional ones (ViT's attention mask, None) are left out
                nodes[n.name] = ("input", "oval")
                first_input = False
            else:
                alias[n.name] = None
            continue
        if n.op == "output":
            nodes[n.name] = ("output", "oval")
            edges += [(src(a), n.name) for a in ins]
            continue
        if n.op == "get_attr":
            alias[n.name] = None
            continue
        if n.op == "call_module":
            m = block.get_submodule(n.target)
            if type(m).__name__ in _HIDE or (isinstance(m, nn.Dropout)):
                alias[n.name] = src(ins[0]) if ins else None
                continue
            nodes[n.name] = (_label(m), "box")
            kinds[n.name] = m
        else:
            fname = getattr(n.target, "__name__", str(n.target)).strip("_")
            if fname in ("getitem", "size", "dim", "getattr", "contiguous", "expand", "view", "reshape",
                         "permute", "unbind", "chunk"):
                alias[n.name] = src(ins[0]) if ins else None
                continue
            nodes[n.name] = (_FN_LABELS.get(fname, fname), "circle" if fname in ("add", "iadd", "mul") else "box")
        edges += [(src(a), n.name) for a in ins if src(a) is not None]
    nodes, edges = _fold_chains(nodes, list(dict.fromkeys(edges)), kinds)
    lines = ["digraph G {", 'rankdir=TB; bgcolor="transparent";',
             'node [fontname="sans-serif", fontsize=11, style="rounded,filled", fillcolor="#eef2f8", '
             'color="#5a6b8c"];', 'edge [color="#5a6b8c"];']
    for name, (label, shape) in nodes.items():
        style = ', style="filled", fillcolor="#ffe9c7"' if shape == "circle" else ""
        if label in ("input", "output"):
            style = ', style="filled", fillcolor="#ffffff"'
        lines.append(f'"{name}" [label="{label}", shape={"box" if shape == "box" else shape}{style}];')
    for a, b in dict.fromkeys(edges):
        if a in nodes and b in nodes:
            lines.append(f'"{a}" -> "{b}";')
    lines.append("}")
    return "\n".join(lines)


# --- alignment of two tables -----------------------------------------------------------

@dataclass
class Pair:
    a: Row | None
    b: Row | None
    status: str     # "same", "resized", "changed", "moved", "only in A", "only in B"
    what: str = ""  # what differs


STATUS_DESIGN = ("changed", "moved", "only in A", "only in B")   # differences of design, not of size


def _kind(r: Row) -> str:
    return r.kind


def _signature(r: Row) -> str:
    """What must agree for two rows to be the same layer: its type and hyper-parameters."""
    return f"{r.kind} {r.detail.replace(' (again)', '')}"


def align(a: list[Row], b: list[Row]) -> list[Pair]:
    """Rows of two tables matched in order, each difference named: "resized" when only the output
    shape (or the parameters that follow from it) differ, "changed" when the layer's type or
    hyper-parameters differ, "moved" when the identical layer sits a few rows earlier or later
    (ZFNet pools before its contrast norm, AlexNet after; SE-ResNet runs its shortcut first),
    "only in A" / "only in B" for layers one network lacks.

    Two matchings are tried, by layer type (keeps a changed conv paired with its counterpart)
    and by type and hyper-parameters (keeps inserted blocks, like SE's, from shifting the rest),
    and the one that pairs more layers wins."""
    tries = [_align(a, b, _kind), _align(a, b, _signature)]
    return max(tries, key=lambda ps: sum(p.status in ("same", "resized") for p in ps))


def _align(a: list[Row], b: list[Row], key) -> list[Pair]:
    sm = difflib.SequenceMatcher(a=[key(r) for r in a], b=[key(r) for r in b], autojunk=False)
    out: list[Pair] = []
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        pa, pb = a[i1:i2], b[j1:j2]
        for k in range(max(len(pa), len(pb))):
            ra = pa[k] if k < len(pa) else None
            rb = pb[k] if k < len(pb) else None
            if ra is None:
                out.append(Pair(None, rb, "only in B"))
            elif rb is None:
                out.append(Pair(ra, None, "only in A"))
            elif _signature(ra) != _signature(rb):
                what = f"{ra.detail} -> {rb.detail}" if ra.kind == rb.kind else f"{ra.kind} -> {rb.kind}"
                out.append(Pair(ra, rb, "changed", what))
            elif ra.out_shape != rb.out_shape or ra.params != rb.params:
                what = f"output {fmt_shape(ra.out_shape)} -> {fmt_shape(rb.out_shape)}" \
                    if ra.out_shape != rb.out_shape else f"params {ra.params:,} -> {rb.params:,}"
                out.append(Pair(ra, rb, "resized", what))
            else:
                out.append(Pair(ra, rb, "same"))
    # the identical layer on both sides within a few rows of each other has moved, not vanished:
    # the two rows become one
    gone: set[int] = set()
    for i, p in enumerate(out):
        if i in gone or p.status not in ("only in A", "only in B"):
            continue
        sig = _signature(p.a or p.b)
        for j in range(max(0, i - 8), min(len(out), i + 9)):
            q = out[j]
            if j != i and j not in gone and q.status in ("only in A", "only in B") and q.status != p.status \
                    and _signature(q.a or q.b) == sig:
                p.a, p.b = p.a or q.a, p.b or q.b
                p.status, p.what = "moved", f"{p.a.kind} earlier or later"
                gone.add(j)
                break
    return [p for i, p in enumerate(out) if i not in gone]


def comparable(pairs: list[Pair]) -> bool:
    """Whether a layer-by-layer match says anything: most rows must pair with a layer of the
    same kind (AlexNet/ZFNet, ResNet-18/SE-ResNet-18, paper/explorer presets), not VGG-16
    against ResNet-34, which are built differently and compare stage by stage."""
    matched = sum(p.status in ("same", "resized") for p in pairs)
    return matched >= 0.5 * len(pairs)


def align_counts(pairs: list[Pair]) -> dict[str, int]:
    return {s: sum(p.status == s for p in pairs) for s in ("same", "resized", *STATUS_DESIGN)}


def fmt_shape(shape: tuple) -> str:
    return " x ".join(str(s) for s in shape) if shape else "-"


def fmt_rf(r: Row, input_size: int) -> str:
    if r.rf is None:
        return "-"
    if r.rf == INF:
        return "whole image"
    return f"{r.rf:g} px"


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
                        if " · " in s.label else s.label, "resolution": s.size, "params": s.params,
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
