"""Captum attributions for any model in the zoo, scaled and coloured so they can be read.

| method              | Captum                                            | map (H, W)                         | sign     |
|---------------------|---------------------------------------------------|------------------------------------|----------|
| integrated_gradients| IntegratedGradients, 32 steps (8 at a time), black baseline | sum over channels | signed |
| smoothgrad          | NoiseTunnel(Saliency), 16 noisy copies            | sum over channels of abs(gradient) | unsigned |
| occlusion           | Occlusion, quarter-image grey patch, half stride  | drop in the class logit            | signed   |
| gradcam             | LayerGradCam on the last spatial feature map;     | ReLU of the class map, upsampled   | unsigned |
|                     | on ViT and Mixer, the last block's patch tokens   |                                    |          |

Attribution values have no common unit across models (logits differ in scale), so each map is
scaled to its own 99th percentile of |value| (`robust_scale`): one hot pixel can no longer
make the rest of the map invisible. `shared=True` puts several maps on one scale instead, to
compare magnitudes. Signed maps use a diverging colour map around zero (red: raises the class
score, blue: lowers it); unsigned maps a sequential one from their minimum; `colorbar` draws
the key.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients, LayerGradCam, NoiseTunnel, Occlusion, Saliency
from torch import nn

from explorer import zoo
from models import TOKEN_MIXERS, data  # token mixers: no feature map, Grad-CAM reads patch tokens
from models.probes import patch_grid, prefix_tokens


@dataclass(frozen=True)
class Method:
    label: str
    signed: bool
    means: str


METHODS = {
    "integrated_gradients": Method(
        "Integrated Gradients", True,
        "Each pixel's share of the change in the class score between a black image and this one, accumulated "
        "along the straight path between them (32 steps). Red pixels raise the score, blue ones lower it."),
    "smoothgrad": Method(
        "SmoothGrad", False,
        "How strongly the class score reacts to each pixel (the gradient's size), averaged over 16 copies of "
        "the image with noise added, which smooths away the gradient's speckle. Brighter: more sensitive."),
    "occlusion": Method(
        "Occlusion", True,
        "How much the class score drops when a grey patch a quarter of the image wide covers each place. "
        "Red: covering it lowers the score (the model relies on it); blue: covering it raises the score."),
    "gradcam": Method(
        "Grad-CAM", False,
        "The last feature maps that still have a spatial layout, each weighted by how much the class score "
        "depends on it; only the positive part, upsampled from that layer's own coarse grid."),
}
PERCENTILE = 99.0


class ToGrid(nn.Module):
    """Identity on values: patch tokens (B, N, C) <-> a (B, C, gh, gw) map Grad-CAM can read."""

    def __init__(self, grid: tuple[int, int]):
        super().__init__()
        self.grid = grid

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b, n, c = tokens.shape
        return tokens.transpose(1, 2).reshape(b, c, *self.grid)


@contextlib.contextmanager
def token_grid(model):
    """Route the last block's input patch tokens through a `ToGrid` module for the call."""
    block = model.trunk.blocks[-1]
    target = getattr(block, "norm1", None) or getattr(block, "norm", None)
    p = prefix_tokens(model)
    grid = ToGrid(patch_grid(model))

    def hook(_m, _i, out):
        g = grid(out[:, p:])
        return torch.cat([out[:, :p], g.flatten(2).transpose(1, 2)], 1)

    h = target.register_forward_hook(hook)
    try:
        yield grid
    finally:
        h.remove()


def is_token_model(model) -> bool:
    """Transformers and Mixers: a patch embedding followed by blocks of tokens."""
    return hasattr(model.trunk, "blocks") and (hasattr(model.trunk, "patch_embed") or hasattr(model.trunk, "stem"))


_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


@torch.no_grad()
def cam_layer(model, x: torch.Tensor) -> tuple[nn.Module, tuple[int, int]]:
    """The module whose output is the network's last feature map with a spatial layout
    (at least 2x2), not counting maps a pooling layer made: conv5's ReLU in AlexNet, layer4 in
    a ResNet, inception5b in GoogLeNet, C3/S4 in LeNet-5 (whose C5 is 1x1). Returns it and its
    map size."""
    seen: list[tuple[nn.Module, torch.Tensor]] = []
    made_by_pool: set[int] = set()

    def hook(m, _i, out):
        if isinstance(out, torch.Tensor):
            if isinstance(m, _POOLS):
                made_by_pool.add(id(out))
            seen.append((m, out))

    handles = [m.register_forward_hook(hook) for m in model.trunk.modules()]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    for m, out in reversed(seen):
        if out.dim() == 4 and min(out.shape[-2:]) >= 2 and id(out) not in made_by_pool and m is not model.trunk:
            return m, tuple(out.shape[-2:])
    raise ValueError("this model has no spatial feature map for Grad-CAM")


def black_baseline(model) -> torch.Tensor:
    """A black image in the model's normalised space."""
    s = model.input_size
    return data.normalize(torch.zeros(1, 3, s, s, dtype=torch.uint8), model.in_chans)


def attribute(model, x: torch.Tensor, target: int, method: str, steps: int = 32) -> torch.Tensor:
    """(H, W) attribution map of `target` for one normalised image x (1, C, H, W); signed for
    Integrated Gradients and Occlusion, non-negative for SmoothGrad and Grad-CAM."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {list(METHODS)}")
    with zoo.using():
        model.eval()
        x = x.detach().clone()
        size = x.shape[-2:]
        if method == "integrated_gradients":
            a = IntegratedGradients(model).attribute(x, baselines=black_baseline(model), target=target,
                                                     n_steps=steps, internal_batch_size=8)
            m = a.sum(1)[0]
        elif method == "smoothgrad":
            with torch.random.fork_rng():   # the same noise every time: the same map for the same image
                torch.manual_seed(0)
                a = NoiseTunnel(Saliency(model)).attribute(x, nt_type="smoothgrad", nt_samples=16,
                                                           nt_samples_batch_size=8, stdevs=0.15, target=target)
            m = a.abs().sum(1)[0]
        elif method == "occlusion":
            w = max(4, size[-1] // 4)
            a = Occlusion(model).attribute(x, sliding_window_shapes=(x.shape[1], w, w),
                                           strides=(x.shape[1], w // 2, w // 2), baselines=0.0, target=target,
                                           perturbations_per_eval=16)
            m = a.mean(1)[0]
        else:
            if is_token_model(model):
                with token_grid(model) as grid:
                    cam = LayerGradCam(model, grid).attribute(x, target=target, relu_attributions=True)
            else:
                layer, _ = cam_layer(model, x)
                cam = LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)
            m = F.interpolate(cam.detach(), size=size, mode="bilinear", align_corners=False)[0, 0]
        model.zero_grad(set_to_none=True)
    return m.detach().float()


AGREEMENT_GRID = 8   # regions the methods are compared on (Grad-CAM's own grid is 4x4 to 8x8)


def region_ranks(m: torch.Tensor, grid: int = AGREEMENT_GRID) -> torch.Tensor:
    """The (grid*grid,) ranks of a map's regions by their mean evidence for the class; tied
    regions (Grad-CAM's zeros) share the mean of their ranks."""
    v = F.adaptive_avg_pool2d(m[None, None].float(), grid).flatten()
    less = (v[None, :] < v[:, None]).sum(1).float()
    ties = (v[None, :] == v[:, None]).sum(1).float()
    return less + (ties - 1) / 2


def agreement(maps: dict[str, torch.Tensor], grid: int = AGREEMENT_GRID) -> list[dict]:
    """For every pair of methods, Spearman's rank correlation of their maps over a grid x grid
    split of the image: 1, both rank the regions alike; 0, unrelated; below 0, opposite.

    Each map counts evidence for the class as larger (signed maps as they are: evidence
    against is lowest), so a method that puts the class on the ball and one that puts it on
    the grass above it come out near 0 or below. A pair with a flat map gets None."""
    ranks = {k: region_ranks(m, grid) for k, m in maps.items()}
    out, keys = [], list(ranks)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            ra, rb = ranks[a] - ranks[a].mean(), ranks[b] - ranks[b].mean()
            # a flat map (every region alike) ranks nothing: no correlation, rather than 0
            rho = float((ra * rb).sum() / (ra.norm() * rb.norm())) if ra.norm() > 0 and rb.norm() > 0 else None
            out.append({"a": a, "b": b, "rho": rho})
    return out


def gradcam_grid(model, x: torch.Tensor) -> tuple[int, int]:
    """The resolution Grad-CAM works at for this model (shown beside its map)."""
    if is_token_model(model):
        return patch_grid(model)
    with zoo.using():
        return cam_layer(model, x)[1]


def gradcam_reach(model, arch: str, x: torch.Tensor) -> float | None:
    """The receptive field (input pixels; inf: the whole image) of the units in the map Grad-CAM
    works on, from the Anatomy page's per-layer table; None for token models, whose every token
    sees every other."""
    if is_token_model(model):
        return None
    from explorer import anatomy
    with zoo.using():
        layer, _ = cam_layer(model, x)
    name = next(n for n, m in model.named_modules() if m is layer)
    # the module's own row, or (a block's rows carry none) the last of its sub-layers
    rows = [r for r in anatomy.table(arch, "explorer", 10).rows
            if (r.name == name or r.name.startswith(name + ".")) and r.rf is not None]
    return rows[-1].rf if rows else None


def robust_max(m: torch.Tensor) -> float:
    """The 99th percentile of |m| (falling back to the max when most of the map is zero)."""
    a = m.abs().flatten().float()
    v = float(torch.quantile(a, PERCENTILE / 100)) if a.numel() else 0.0
    return v if v > 0 else float(a.max()) if a.numel() else 0.0


def robust_scale(maps: list[torch.Tensor], shared: bool = False,
                 signed: bool = True) -> tuple[list[torch.Tensor], list[tuple[float, float]]]:
    """Maps on a readable colour scale, and the (low, high) value each one's scale spans.

    Signed maps are divided by their 99th percentile of |value| and clipped to [-1, 1], so zero
    stays the midpoint. Unsigned maps are stretched from their minimum (no colour) to their
    99th percentile (full colour), as Grad-CAM is usually drawn: a map that is positive
    everywhere (LeNet-5's 5x5 Grad-CAM) would otherwise paint the whole image. `shared` gives
    every map the widest span among them, so strengths compare across models."""
    if signed:
        spans = [(0.0, robust_max(m)) for m in maps]
    else:
        spans = [(float(m.min()), robust_max(m)) for m in maps]
    if shared:
        spans = [(min(lo for lo, _ in spans), max(hi for _, hi in spans))] * len(maps)
    out = []
    for m, (lo, hi) in zip(maps, spans):
        if hi - lo <= 0:
            out.append(torch.zeros_like(m))
        elif signed:
            out.append((m / hi).clamp(-1, 1))
        else:
            out.append(((m - lo) / (hi - lo)).clamp(0, 1))
    return out, spans


def colormap(signed: bool):
    import matplotlib
    return matplotlib.colormaps["RdBu_r" if signed else "inferno"]


def overlay(image_u8: np.ndarray, heat: torch.Tensor, signed: bool, alpha: float = 0.75) -> np.ndarray:
    """A scaled map ([-1, 1] signed, [0, 1] unsigned) coloured and laid over a grey copy of the
    image; where the map is near zero the photo shows through. Returns (H, W, 3) uint8."""
    h = heat.clamp(-1, 1).numpy()
    rgb = colormap(signed)((h + 1) / 2 if signed else h)[..., :3]
    strength = (np.abs(h) if signed else h)[..., None]
    img = image_u8.astype(np.float32) / 255
    if img.ndim == 2:
        img = img[..., None]
    grey = img.mean(-1, keepdims=True).repeat(3, -1) if img.shape[-1] in (1, 3) else img
    out = grey * (1 - alpha * strength) + rgb * alpha * strength
    return (out.clip(0, 1) * 255).astype(np.uint8)


def colorbar(signed: bool, width: int = 256, height: int = 12) -> np.ndarray:
    """The colour key as an image: left to right from -1 (or 0) to +1."""
    v = np.linspace(0, 1, width)
    strip = colormap(signed)(v)[..., :3]
    return (np.repeat(strip[None], height, 0) * 255).astype(np.uint8)


def coverage(scaled: torch.Tensor, threshold: float = 0.1) -> float:
    """Share of pixels whose scaled |value| exceeds `threshold`: near 0 is an empty-looking map,
    near 1 a map painted in one colour."""
    return float((scaled.abs() > threshold).float().mean())


def default_pair(loaded: dict, link: str | None = None) -> list[str]:
    """The two models the Attributions page opens on: the linked model and its neighbour in
    history when there is a link; otherwise the best CNN (by val top-1) beside the ViT, so the
    page sets the two kinds of network side by side; failing a ViT, the two best CNNs."""
    order = list(loaded)
    if link in loaded:
        i = order.index(link)
        return [link, order[i - 1] if i > 0 else order[min(i + 1, len(order) - 1)]]
    top1 = {a: (card.get("metrics") or {}).get("val_top1") or 0.0 for a, (_, card) in loaded.items()}
    cnns = sorted((a for a in order if a not in TOKEN_MIXERS), key=lambda a: -top1[a])
    if "vit" in loaded and cnns:
        return [cnns[0], "vit"]
    return (cnns + [a for a in order if a in TOKEN_MIXERS])[:2]


def transformer_note(arch: str, method: str) -> str | None:
    """Where a method does not suit a token-mixing network, what to read instead."""
    if arch in TOKEN_MIXERS and method == "gradcam":
        return ("Grad-CAM was made for convolutional feature maps. Here it weights the last block's patch tokens by "
                "their gradients, but in a transformer the evidence is gathered into the [CLS] token (or the mean "
                "of all tokens) across every layer, so the map can light patches the answer did not come from. "
                "Read the Attention page's rollouts beside it." if arch == "vit" else
                "Grad-CAM was made for convolutional feature maps. Here it weights the Mixer's last patch tokens "
                "by their gradients, but every token-mixing MLP has mixed the patches already, so the map can "
                "light patches the answer did not come from; Integrated Gradients and Occlusion work on the "
                "input pixels and suit any network.")
    return None
