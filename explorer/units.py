"""What the deeper units respond to (OpenAI Microscope's "dataset examples", for any model).

For a few layers of each model, chosen uniformly -- the end of each resolution stage (from
`explorer.anatomy`), a few evenly spaced Transformer or Mixer blocks, and the pre-logit layer
(fc7 for AlexNet, ZFNet and VGG) -- and for every unit (channel) of those layers:

* its top-9 images by activation (the unit's maximum over positions), and where that maximum
  sits, so the page can crop each image to the unit's receptive field around it;
* the same over the shipped retrieval gallery (1,000 train images), so the page works on a
  machine without the dataset;
* its mean activation per class (over positions, then over the class's images), and how often
  it fires at all.

`scripts/units.py` computes this over the val split and ships `checkpoints/<arch>/units.safetensors`
(indices, positions and values, no pixels). The class-selectivity index is Morcos et al.'s
("On the importance of single directions for generalization", ICLR 2018):
SI = (mu_max - mu_rest) / (mu_max + mu_rest), mu_max the largest class mean and mu_rest the mean
of the others; 0 means every class excites the unit alike, 1 that one class alone does.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from explorer import anatomy, sidecar
from models import checkpoint, data

UNITS = "units.safetensors"
TOP = 9
DEAD_FRACTION = 0.01   # a unit active on fewer than 1% of val images is called nearly dead


@dataclass
class Layer:
    key: str              # short id used in URLs: "L1", "L2", ...
    path: str             # module path in the ZooNet ("trunk.layer1"), "" for the pre-logit vector
    label: str            # what a learner reads: "layer1 · 32x32", "fc7"
    channels: int
    grid: tuple[int, int] | None   # the positions a unit has (None for vectors)
    rf: float | None      # receptive field in input pixels (inf: whole image)
    jump: float | None
    start: float | None
    tokens: int = 0       # prefix tokens to skip (ViT's [CLS])


# --- which layers --------------------------------------------------------------------------

def probe_layers(arch: str, preset: str = "explorer", blocks: int = 4) -> list[Layer]:
    """The end of each resolution stage (CNNs) or `blocks` evenly spaced blocks (ViT, Mixer),
    then the pre-logit layer."""
    t = anatomy.table(arch, preset)
    spec_pen = "fc7" if any(r.name.startswith("trunk.fc67") for r in t.rows) else "pre-logits"
    out: list[Layer] = []
    if t.token_model:
        depth = sum(1 for n in t.modules if n.startswith("trunk.blocks.") and n.count(".") == 2)
        picks = sorted({max(0, round(depth * (i + 1) / blocks) - 1) for i in range(blocks)})
        grid = (t.input_size // t.patch, t.input_size // t.patch)
        for b in picks:
            m = t.modules[f"trunk.blocks.{b}"]
            prefix = m.out_shape[0] - grid[0] * grid[1]          # ViT's [CLS] token; 0 for a Mixer
            out.append(Layer(f"L{len(out) + 1}", f"trunk.blocks.{b}", f"block {b + 1} of {depth}", m.out_shape[-1],
                             grid, math.inf, float(t.patch), (t.patch - 1) / 2, prefix))
    else:
        last_row_of: dict[str, str] = {}
        for r in t.rows:
            last_row_of[_part(r.name)] = r.name
        for s in anatomy.stages(t):
            names = {r.name for r in s.rows}
            spatial = [r for r in s.rows if r.spatial and r.kind not in ("MaxPool2d", "AvgPool2d")
                       and not r.name.endswith("(own)") and last_row_of[_part(r.name)] in names]
            if not spatial or s.key == "classifier":
                continue
            path = _stage_end(t, spatial[-1])
            m = t.modules[path]
            out.append(Layer(f"L{len(out) + 1}", path, s.label, m.out_shape[0], tuple(m.out_shape[-2:]),
                             m.rf, m.jump, m.start))
    width = t.modules["trunk"].out_shape[-1]
    out.append(Layer(f"L{len(out) + 1}", "", spec_pen, width, None, math.inf, None, None))
    return out


def _part(name: str) -> str:
    """The block a layer belongs to: the first path part that is not the trunk or one of the zoo's
    generic containers (MobileNet's features.3, ResNet's layer1, AlexNet's features.relu5). A stage
    ends with the last block that finishes inside it, so a block is never cut in two."""
    parts = name.removesuffix(" (own)").split(".")
    for i, part in enumerate(parts):
        if part != "trunk" and part not in anatomy.CONTAINERS:
            return ".".join(parts[:i + 1])
    return name


def _stage_end(t: anatomy.Table, row: anatomy.Row) -> str:
    """The module whose output is the stage's output: climb from its last layer while the parent
    ends with that layer and keeps its resolution (ResNet's layer1, GoogLeNet's inception3b),
    and never to a module called more than once (a ReLU reused inside a block)."""
    name = row.name
    names = [r.name for r in t.rows]
    while "." in name:
        parent = name.rsplit(".", 1)[0]
        if parent == "trunk" or parent not in t.modules:
            break
        inside = [n for n in names if n.startswith(parent + ".")]
        if not inside or inside[-1] != row.name or t.modules[parent].out_shape[-2:] != row.out_shape[-2:]:
            break
        name = parent
    if t.modules[name].calls > 1:
        name = name.rsplit(".", 1)[0]
    return name


# --- computing -----------------------------------------------------------------------------

def _unit_scores(act: torch.Tensor, layer: Layer):
    """(B, C) maximum over positions, (B, C) its flat position, (B, C) mean over positions."""
    if layer.grid is None:
        return act, torch.full_like(act, -1, dtype=torch.long), act
    if act.dim() == 3:                                 # tokens (B, N, C) -> (B, C, N)
        act = act[:, layer.tokens:].transpose(1, 2)
    else:
        act = act.flatten(2)
    mx, pos = act.max(-1)
    return mx, pos, act.mean(-1)


class TopK:
    """Running top-k images per unit."""

    def __init__(self, channels: int, k: int = TOP):
        self.k = k
        self.val = torch.full((channels, 0), -math.inf)
        self.idx = torch.zeros((channels, 0), dtype=torch.long)
        self.pos = torch.zeros((channels, 0), dtype=torch.long)

    def add(self, score: torch.Tensor, pos: torch.Tensor, first: int) -> None:
        b = score.shape[0]
        v = torch.cat([self.val, score.T.float()], 1)
        i = torch.cat([self.idx, torch.arange(first, first + b).expand(score.shape[1], b)], 1)
        p = torch.cat([self.pos, pos.T], 1)
        keep = v.topk(min(self.k, v.shape[1]), dim=1).indices
        self.val, self.idx, self.pos = v.gather(1, keep), i.gather(1, keep), p.gather(1, keep)


@torch.no_grad()
def scan(model, layers: list[Layer], batches, num_classes: int = 10):
    """Run `batches` of (start, normalised x, labels or None) through `model`, recording every
    unit's top images, class means and how often it fires. Returns per layer a dict of tensors."""
    mods = {ly.key: (model.get_submodule(ly.path) if ly.path else None) for ly in layers}
    state = {ly.key: {"top": TopK(ly.channels), "sum": torch.zeros(num_classes, ly.channels),
                      "count": torch.zeros(num_classes), "active": torch.zeros(ly.channels), "n": 0}
             for ly in layers}
    captured: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda _m, _i, o, k=k: captured.__setitem__(k, o))
             for k, m in mods.items() if m is not None]
    try:
        for start, xb, yb in batches:
            feats = model.forward_features(xb)
            for ly in layers:
                act = captured[ly.key] if mods[ly.key] is not None else feats
                mx, pos, mean = _unit_scores(act.float(), ly)
                s = state[ly.key]
                s["top"].add(mx, pos, start)
                s["active"] += (mx > 0).float().sum(0)
                s["n"] += mx.shape[0]
                if yb is not None:
                    s["sum"].index_add_(0, yb, mean)
                    s["count"] += torch.bincount(yb, minlength=num_classes).float()
    finally:
        for h in hooks:
            h.remove()
    out = {}
    for ly in layers:
        s = state[ly.key]
        out[ly.key] = {"top_idx": s["top"].idx.int(), "top_pos": s["top"].pos.int(), "top_val": s["top"].val,
                       "class_mean": (s["sum"] / s["count"].clamp(min=1)[:, None]).T.contiguous(),
                       "active": s["active"] / max(1, s["n"])}
    return out


# --- reading ---------------------------------------------------------------------------

@dataclass
class Units:
    layers: list[Layer]
    val: dict[str, dict[str, torch.Tensor]]      # per layer: top_idx, top_pos, top_val, class_mean, active
    gallery: dict[str, dict[str, torch.Tensor]]  # per layer: top_idx, top_pos, top_val
    meta: dict


def save(path: Path, layers: list[Layer], val: dict, gallery: dict, card: dict, meta: dict) -> None:
    tensors = {}
    for ly in layers:
        v, g = val[ly.key], gallery[ly.key]
        tensors[f"{ly.key}.top_idx"] = v["top_idx"].contiguous()
        tensors[f"{ly.key}.top_pos"] = v["top_pos"].to(torch.int16).contiguous()
        tensors[f"{ly.key}.top_val"] = v["top_val"].half().contiguous()
        tensors[f"{ly.key}.class_mean"] = v["class_mean"].half().contiguous()
        tensors[f"{ly.key}.active"] = v["active"].half().contiguous()
        tensors[f"{ly.key}.gal_idx"] = g["top_idx"].to(torch.int16).contiguous()
        tensors[f"{ly.key}.gal_pos"] = g["top_pos"].to(torch.int16).contiguous()
        tensors[f"{ly.key}.gal_val"] = g["top_val"].half().contiguous()
    layer_meta = [{k: (list(v) if isinstance(v, tuple) else (None if isinstance(v, float) and math.isinf(v) else v))
                   for k, v in ly.__dict__.items()} for ly in layers]
    sidecar.save(path, tensors, card, meta, layers=json.dumps(layer_meta))


def load(path: Path, card: dict) -> Units | None:
    """The shipped unit file of a checkpoint, or None if absent or made from other weights."""
    with sidecar.opened(path, card) as f:
        if f is None:
            return None
        preset = card.get("preset", "explorer")
        live = {ly.path: ly for ly in probe_layers(card["arch"], preset)}
        layers = []
        for d in json.loads(f.metadata["layers"]):
            d["grid"] = tuple(d["grid"]) if d["grid"] else None
            d["rf"] = math.inf if d["rf"] is None else d["rf"]
            d["path"] = checkpoint.current_path(card["arch"], d["path"], preset)  # older files numbered layers
            d["label"] = live[d["path"]].label if d["path"] in live else d["label"]  # today's names
            layers.append(Layer(**d))
        val, gal = {}, {}
        for ly in layers:
            g = lambda n: f.get_tensor(f"{ly.key}.{n}")  # noqa: E731
            val[ly.key] = {"top_idx": g("top_idx").long(), "top_pos": g("top_pos").long(),
                           "top_val": g("top_val").float(), "class_mean": g("class_mean").float(),
                           "active": g("active").float()}
            gal[ly.key] = {"top_idx": g("gal_idx").long(), "top_pos": g("gal_pos").long(),
                           "top_val": g("gal_val").float()}
    return Units(layers, val, gal, f.meta)


# --- what the page shows -------------------------------------------------------------------

def selectivity(class_mean: torch.Tensor) -> torch.Tensor:
    """(C, classes) class means -> (C,) class-selectivity index in [0, 1] (Morcos et al. 2018).

    Units that can be negative (tanh, Transformer tokens) are first shifted so that their
    smallest class mean is 0, which keeps the index in [0, 1] and its meaning: how much the
    best class stands out from the rest."""
    cm = class_mean.float()
    cm = cm - cm.min(1, keepdim=True).values.clamp(max=0)
    top, arg = cm.max(1)
    rest = (cm.sum(1) - top) / (cm.shape[1] - 1)
    return ((top - rest) / (top + rest).clamp(min=1e-12)).clamp(0, 1)


def nearly_dead(active: torch.Tensor, top_val: torch.Tensor) -> torch.Tensor:
    """Units that fire (> 0 at some position) on fewer than 1% of val images, or never reach
    a thousandth of the layer's strongest unit."""
    peak = top_val[:, 0]
    return (active < DEAD_FRACTION) | (peak <= 1e-3 * peak.max().clamp(min=1e-12))


def layer_summary(u: Units) -> list[dict]:
    rows = []
    for ly in u.layers:
        v = u.val[ly.key]
        si = selectivity(v["class_mean"])
        dead = nearly_dead(v["active"], v["top_val"])
        rows.append({"layer": ly.label, "key": ly.key, "units": ly.channels, "nearly dead": int(dead.sum()),
                     "mean selectivity": round(float(si[~dead].mean()) if (~dead).any() else 0.0, 3),
                     "median selectivity": round(float(si[~dead].median()) if (~dead).any() else 0.0, 3),
                     "selective (SI > 0.5)": int(((si > 0.5) & ~dead).sum())})
    return rows


def crop_box(layer: Layer, pos: int, input_size: int) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) in the model's input pixels: the unit's receptive field centred on
    grid position `pos` (flat index), clipped to the image; the whole image for vectors and for
    global units (a token's own patch, twice the patch size, for ViT and Mixer blocks)."""
    if layer.grid is None or pos < 0:
        return 0, 0, input_size, input_size
    gy, gx = divmod(int(pos), layer.grid[1])
    cy, cx = layer.start + gy * layer.jump, layer.start + gx * layer.jump
    size = 2 * layer.jump if math.isinf(layer.rf) else layer.rf
    half = size / 2
    top, left = max(0, math.floor(cy - half + 0.5)), max(0, math.floor(cx - half + 0.5))
    bottom, right = min(input_size, math.floor(cy + half + 0.5)), min(input_size, math.floor(cx + half + 0.5))
    return top, left, max(bottom, top + 1), max(right, left + 1)


def input_view(image, input_size: int) -> torch.Tensor:
    """(3, s, s) uint8: exactly the pixels the model sees (the evaluation crop), for cropping."""
    sq = torch.from_numpy(data.to_square_uint8(image, data.eval_store_size(input_size))).permute(2, 0, 1)
    return data.center_crop(sq, input_size)


def thumb_box(box: tuple[int, int, int, int], input_size: int, thumb: int) -> tuple[int, int, int, int]:
    """The same box on a gallery thumbnail (the whole square the evaluation crop is taken from)."""
    store = data.eval_store_size(input_size)
    off = (store - input_size) / 2
    s = thumb / store
    t, left, b, r = box
    return (int((t + off) * s), int((left + off) * s), max(int((b + off) * s), int((t + off) * s) + 1),
            max(int((r + off) * s), int((left + off) * s) + 1))



def unit_crops(u: Units, layer: Layer, unit: int, input_size: int, root: Path | None = None,
               gallery=None, size: int = 128) -> list[dict]:
    """The unit's top-9 images, each cropped to its receptive field around the strongest
    position, as (size, size, 3) uint8 arrays with their class, activation and the width in
    pixels of the crop they were resized from (`source_px`).

    From the val split at full resolution when `root` is given (the data set the file was
    computed on), else from the gallery's thumbnails (coarser, but shipped with the app)."""
    import numpy as np
    import torch.nn.functional as F
    from PIL import Image

    src = u.val if root is not None else u.gallery
    idx, pos, val = (src[layer.key][k][unit].tolist() for k in ("top_idx", "top_pos", "top_val"))
    paths = labels = None
    if root is not None:
        paths, labels = data.list_split(root, "val")
    out = []
    for i, p, v in zip(idx, pos, val):
        box = crop_box(layer, p, input_size)
        if root is not None:
            with Image.open(paths[i]) as im:
                view = input_view(im, input_size)
            crop = view[:, box[0]:box[2], box[1]:box[3]]
            label = data.NAMES[labels[i]]
        else:
            thumb = gallery.thumbs[i]
            t, left, b, r = thumb_box(box, input_size, thumb.shape[-1])
            crop = thumb[:, t:b, left:r]
            label = data.NAMES[int(gallery.labels[i])]
        img = F.interpolate(crop[None].float(), size=(size, size), mode="bilinear", align_corners=False,
                            antialias=True)[0]
        out.append({"image": img.clamp(0, 255).byte().permute(1, 2, 0).numpy().astype(np.uint8),
                    "class": label, "activation": v, "box": box, "index": i, "source_px": int(crop.shape[-1])})
    return out


def depth_sentence(u: Units) -> str:
    """What the selectivity does with depth in this model, from the numbers the table shows."""
    rows = layer_summary(u)
    if len(rows) < 2:
        return ""
    return "Mean class selectivity " + trend([(r["layer"], r["mean selectivity"]) for r in rows], digits=3) + "."


LEVEL = 0.05   # trend(): a spread this small, relative to the largest value, reads as level


def trend(points: list[tuple[str, float]], digits: int = 2) -> str:
    """How a quantity moves along ordered layers, judged on the values as shown (rounded to
    `digits`): "rises with every layer, from ...", a peak or a dip inside, level, nearly level (a
    spread within LEVEL of the largest value), or no single direction; it always names the first
    and last layers and the extremes it speaks of."""
    vals = [round(v, digits) for _, v in points]
    f = f"{{:.{digits}f}}"
    at = lambda i: f"{f.format(vals[i])} in {points[i][0]}"  # noqa: E731
    first, last = at(0), at(len(vals) - 1)
    steps = [b - a for a, b in zip(vals, vals[1:])]
    if all(d == 0 for d in steps):
        return f"is the same in every layer shown ({f.format(vals[0])})"
    hi = max(range(len(vals)), key=lambda i: (vals[i], -i))   # the first of tied maxima
    lo = min(range(len(vals)), key=lambda i: (vals[i], i))
    spread = (vals[hi] - vals[lo]) / max(abs(vals[hi]), abs(vals[lo]))
    if spread <= LEVEL:      # a wiggle of a few percent is no direction (the MLP-Mixer's 0.348 to 0.360)
        # rounded up, so that "within" stays true (3.3% reads "within 4%")
        return (f"stays nearly level with depth, every layer within {math.ceil(100 * spread - 1e-9)}% of the highest: "
                f"from {first} to {last}, lowest {at(lo)}")
    if all(d >= 0 for d in steps):
        word = "rises with every layer" if all(d > 0 for d in steps) else "never falls with depth"
        return f"{word}: from {first} to {last}"
    if all(d <= 0 for d in steps):
        word = "falls with every layer" if all(d < 0 for d in steps) else "never rises with depth"
        return f"{word}: from {first} to {last}"
    if 0 < hi < len(vals) - 1 and all(d >= 0 for d in steps[:hi]) and all(d <= 0 for d in steps[hi:]):
        return f"rises from {first} to a peak of {at(hi)}, then falls to {last}"
    if 0 < lo < len(vals) - 1 and all(d <= 0 for d in steps[:lo]) and all(d >= 0 for d in steps[lo:]):
        return f"falls from {first} to a low of {at(lo)}, then rises to {last}"
    net = "ends higher" if vals[-1] > vals[0] else "ends lower" if vals[-1] < vals[0] else "ends where it starts"
    return (f"goes up and down with depth and {net}: {first}, lowest {at(lo)}, highest {at(hi)}, {last}")


# --- deconvnet projections (Zeiler & Fergus 2014) -----------------------------------------

class _DeconvReLU(torch.autograd.Function):
    """ReLU going up; on the way down the deconvnet's rule: rectify the signal itself (not masked by
    where the forward ReLU was active, which would be plain backpropagation)."""

    @staticmethod
    def forward(ctx, x, upper):
        return x.clamp(min=0) if upper is None else x.clamp(0, upper)

    @staticmethod
    def backward(ctx, grad):
        return grad.clamp(min=0), None


def deconv_applicable(model) -> str | None:
    """None when the deconvnet applies to the model (its nonlinearities are ReLU modules), else why not."""
    from torch import nn
    relus = [m for m in model.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))]
    others = [type(m).__name__ for m in model.modules() if isinstance(m, (nn.GELU, nn.Tanh, nn.SiLU, nn.Hardswish))]
    if not relus or others:
        return ("the deconvnet is defined for networks of convolutions, ReLUs and max-pooling; this one's "
                "nonlinearities are " + (", ".join(sorted(set(others))) if others else "not ReLU layers") + ".")
    return None


def deconv_projection(model, layer: Layer, unit: int, x: torch.Tensor, pos: int) -> torch.Tensor:
    """Zeiler & Fergus's deconvnet ("Visualizing and understanding convolutional networks", ECCV 2014):
    the unit's single activation at grid position `pos` (all other activations of the layer set to
    zero) projected back to the input pixels. Convolutions are undone by their transposes with the
    same filters, max-pooling by the switches of the forward pass, ReLUs by rectifying the
    reconstruction -- autograd's backward pass with the ReLU rule swapped; SE gates count as the fixed
    channel scales they were for this image. (C, H, W), signed.

    `x` is one normalised (1, C, H, W) image; the model is left as it was (hooks removed)."""
    from torch import nn
    stash: dict[int, torch.Tensor] = {}
    hooks = []
    for m in model.modules():
        if isinstance(m, (nn.ReLU, nn.ReLU6)):
            upper = 6.0 if isinstance(m, nn.ReLU6) else None
            hooks.append(m.register_forward_pre_hook(lambda mod, inp: stash.__setitem__(id(mod), inp[0].clone())))
            hooks.append(m.register_forward_hook(
                lambda mod, inp, out, upper=upper: _DeconvReLU.apply(stash.pop(id(mod)), upper)))
        elif isinstance(m, nn.Sigmoid):     # an SE gate: a fixed per-channel scale on the way down
            hooks.append(m.register_forward_hook(lambda _m, _i, out: out.detach()))
    captured: list[torch.Tensor] = []
    if layer.path:
        hooks.append(model.get_submodule(layer.path).register_forward_hook(lambda _m, _i, o: captured.append(o)))
    try:
        with torch.enable_grad():
            x = x.detach().clone().requires_grad_(True)
            feats = model.forward_features(x)
            act = captured[-1] if layer.path else feats
            if layer.grid is None or pos < 0:
                target = act.reshape(act.shape[0], -1)[0, unit] if act.dim() == 2 else act[0, unit].flatten()[0]
            else:
                target = act[0, unit].flatten()[int(pos)]
            if float(target.detach()) <= 0:   # a silent unit projects nothing
                return torch.zeros_like(x[0]).detach()
            (grad,) = torch.autograd.grad(target, x)
    finally:
        for h in hooks:
            h.remove()
    return grad[0].detach()


def projection_picture(proj: torch.Tensor, box: tuple[int, int, int, int], size: int = 128):
    """A projection as Zeiler & Fergus draw it: grey is zero, each image scaled to its own largest
    magnitude; cropped to `box` and resized to (size, size, 3) uint8."""
    import numpy as np
    import torch.nn.functional as F
    crop = proj[:, box[0]:box[2], box[1]:box[3]].float()
    if crop.shape[0] == 1:
        crop = crop.expand(3, -1, -1)
    peak = crop.abs().max().clamp(min=1e-12)
    img = (crop / peak * 0.5 + 0.5) * 255
    img = F.interpolate(img[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
    return img.clamp(0, 255).byte().permute(1, 2, 0).numpy().astype(np.uint8)


def projections(model, u: Units, layer: Layer, unit: int, root: Path, size: int = 128) -> list:
    """The deconvnet projection of the unit in each of its top-9 val images, cropped like `unit_crops`."""
    from PIL import Image
    paths, _ = data.list_split(root, "val")
    v = u.val[layer.key]
    out = []
    for i, p in zip(v["top_idx"][unit].tolist(), v["top_pos"][unit].tolist()):
        with Image.open(paths[i]) as im:
            x = data.preprocess(im, model.input_size, model.in_chans)
        proj = deconv_projection(model, layer, unit, x, p)
        out.append(projection_picture(proj, crop_box(layer, p, model.input_size), size))
    return out
