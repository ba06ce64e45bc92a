"""Per-sample augmentation of a whole batch on the training device: TrivialAugment-Wide, random erasing.

Müller, Hutter. "TrivialAugment: Tuning-free Yet State-of-the-Art Data Augmentation." ICCV 2021:
each image gets one op drawn uniformly from a fixed set, at a magnitude drawn uniformly from
that op's range (the "wide" ranges). Zhong, Zheng, Kang, Li, Yang. "Random Erasing Data
Augmentation." AAAI 2020: with probability p, one random rectangle of the image is blanked.

torchvision does both one PIL image or tensor at a time. Here every sample of a (B, C, H, W)
float batch in [0, 255] (what `training.data.random_resized_crop` returns, before `models.data.normalize`)
draws its own op, magnitude and sign, and the batch goes through a fixed sequence of tensor
ops whatever B is: the geometric ops as one `affine_grid` + `grid_sample` with a matrix per
sample, the colour ops as per-sample factors selected by `torch.where` masks. Nothing reads a
value back to the host (no `.item()`, no boolean indexing), so on CUDA the step never waits.

Deviations from torchvision's `TrivialAugmentWide` (same ops, bins and ranges otherwise):
bilinear instead of nearest resampling; translation up to 32/224 of the side (torchvision's
32 px at 224 px) rather than 32 px at any size, so a 32 px LeNet input is not shifted out
of view; the colour ops work on floats, so no rounding to uint8 between steps.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from models.data import MEAN

OPS = ("identity", "shear_x", "shear_y", "translate_x", "translate_y", "rotate",
       "brightness", "color", "contrast", "sharpness", "posterize", "solarize",
       "autocontrast", "equalize")
NUM_BINS = 31                 # magnitudes 0, 1/30, ..., 1 (torchvision's num_bins)
MAX_SHEAR = 0.99              # shear factor
MAX_TRANSLATE = 32 / 224      # fraction of the side
MAX_ROTATE = 135.0            # degrees
MAX_ENHANCE = 0.99            # brightness/colour/contrast/sharpness factor 1 +- this
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as PIL and torchvision


def trivial_augment(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """TrivialAugment-Wide on a float (B, C, H, W) batch in [0, 255]: one op per sample.

    Draws each sample's op (uniform over OPS, identity included), magnitude bin (uniform over
    NUM_BINS) and sign (signed ops only) on x's device, from `generator` or torch's default.
    """
    b, dev = x.shape[0], x.device
    op = torch.randint(len(OPS), (b,), device=dev, generator=generator)
    level = torch.randint(NUM_BINS, (b,), device=dev, generator=generator) / (NUM_BINS - 1)
    sign = torch.randint(2, (b,), device=dev, generator=generator) * 2 - 1
    return apply_ops(x, op, level * sign)


def apply_ops(x: torch.Tensor, op: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """Apply OPS[op[i]] at `magnitude[i]` in [-1, 1] to sample i of a float batch in [0, 255].

    Signed ops (shear, translate, rotate, brightness, colour, contrast, sharpness) go either
    way; posterize and solarize use |magnitude|; identity, autocontrast and equalize ignore it.
    """
    sel = {name: (op == i).view(-1, 1, 1, 1) for i, name in enumerate(OPS)}
    m = magnitude.to(x.dtype)
    x = _geometric(x, op, m)
    f = (1 + MAX_ENHANCE * m).view(-1, 1, 1, 1)
    x = torch.where(sel["brightness"], _blend(x, torch.zeros_like(x), f), x)
    x = torch.where(sel["color"], _blend(x, _grey(x), f), x)
    x = torch.where(sel["contrast"], _blend(x, _grey(x).mean((1, 2, 3), keepdim=True), f), x)
    x = torch.where(sel["sharpness"], _blend(x, _smoothed(x), f), x)
    a = m.abs().view(-1, 1, 1, 1)
    step = torch.exp2(torch.round(a * 6))                 # 8 - bits: 8 bits kept at 0, 2 at 1
    x = torch.where(sel["posterize"], torch.floor(x / step) * step, x)
    x = torch.where(sel["solarize"] & (x >= 255 * (1 - a)), 255 - x, x)
    x = torch.where(sel["autocontrast"], _autocontrast(x), x)
    return torch.where(sel["equalize"], _equalize(x), x)


def _geometric(x, op, m):
    """Shear, translate and rotate about the centre, one grid_sample for the batch; black fill."""
    b, _, h, w = x.shape
    idx = {name: OPS.index(name) for name in OPS}
    zero = torch.zeros_like(m)
    angle = torch.where(op == idx["rotate"], m * math.radians(MAX_ROTATE), zero)
    shx = torch.where(op == idx["shear_x"], MAX_SHEAR * m, zero)
    shy = torch.where(op == idx["shear_y"], MAX_SHEAR * m, zero)
    # affine_grid works in [-1, 1] coordinates of each axis: pixel-space angles and shears
    # are rescaled by the aspect ratio so a non-square batch is not distorted
    theta = torch.stack([
        torch.stack([angle.cos(), (shx - angle.sin()) * h / w,
                     torch.where(op == idx["translate_x"], 2 * MAX_TRANSLATE * m, zero)], -1),
        torch.stack([(shy + angle.sin()) * w / h, angle.cos(),
                     torch.where(op == idx["translate_y"], 2 * MAX_TRANSLATE * m, zero)], -1),
    ], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    warped = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    moved = ((op >= idx["shear_x"]) & (op <= idx["rotate"])).view(-1, 1, 1, 1)
    return torch.where(moved, warped, x)  # the others stay bit-exact


def _blend(x, degenerate, factor):
    """PIL's ImageEnhance: degenerate + factor * (x - degenerate), clipped to [0, 255]."""
    return (degenerate + factor * (x - degenerate)).clamp(0, 255)


def _grey(x):
    if x.shape[1] == 1:
        return x
    return (x * torch.tensor(LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True)


def _smoothed(x):
    """PIL's SMOOTH kernel (1 1 1 / 1 5 1 / 1 1 1) / 13 inside, the image itself on the border."""
    c = x.shape[1]
    k = torch.ones(3, 3, device=x.device, dtype=x.dtype)
    k[1, 1] = 5
    k = (k / k.sum()).expand(c, 1, 3, 3)
    out = x.clone()
    out[..., 1:-1, 1:-1] = F.conv2d(x, k, groups=c)
    return out


def _autocontrast(x):
    """Stretch each channel of each image to [0, 255]; flat channels unchanged."""
    lo = x.amin((2, 3), keepdim=True)
    hi = x.amax((2, 3), keepdim=True)
    flat = hi <= lo
    scale = torch.where(flat, torch.ones_like(hi), 255 / (hi - lo).clamp(min=1e-6))
    return ((x - torch.where(flat, torch.zeros_like(lo), lo)) * scale).clamp(0, 255)


def _equalize(x):
    """Histogram equalisation per channel of each image, PIL's (and torchvision's) lookup table."""
    b, c, h, w = x.shape
    v = x.round().clamp(0, 255).long().flatten(2)                        # (B, C, HW)
    hist = torch.zeros(b, c, 256, device=x.device, dtype=x.dtype).scatter_add_(2, v, torch.ones_like(x).flatten(2))
    last = ((hist > 0) * torch.arange(256, device=x.device)).amax(-1, keepdim=True)  # brightest level used
    step = torch.floor((hist.sum(-1, keepdim=True) - hist.gather(2, last)) / 255)
    lut = torch.floor((hist.cumsum(-1) + torch.floor(step / 2)) / step.clamp(min=1))
    lut = F.pad(lut, (1, 0))[..., :-1].clamp(0, 255)
    out = lut.gather(2, v).view(b, c, h, w)
    return torch.where((step == 0).unsqueeze(-1), x, out)  # one level only: nothing to spread


def random_erase(x: torch.Tensor, p: float, scale=(0.02, 1 / 3), ratio=(0.3, 3.3),
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Random erasing: with probability p per sample, one rectangle becomes the data's mean colour.

    Area fraction uniform in `scale`, aspect ratio log-uniform in `ratio`, position uniform,
    as torchvision's RandomErasing; its default fill value 0 on a normalised tensor is the
    mean colour here, before normalisation. A rectangle larger than the image is clipped to
    it rather than redrawn. x is a float (B, 3, H, W) batch in [0, 255].
    """
    if p <= 0:
        return x
    b, _, h, w = x.shape
    dev = x.device
    rnd = lambda: torch.rand(b, device=dev, generator=generator)  # noqa: E731
    area = (scale[0] + (scale[1] - scale[0]) * rnd()) * h * w
    r = torch.exp(math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * rnd())
    eh, ew = (area * r).sqrt().clamp(max=h), (area / r).sqrt().clamp(max=w)
    top, left = rnd() * (h - eh), rnd() * (w - ew)
    on = rnd() < p
    ys = torch.arange(h, device=dev, dtype=x.dtype).view(1, h, 1)
    xs = torch.arange(w, device=dev, dtype=x.dtype).view(1, 1, w)
    v = lambda t: t.view(-1, 1, 1)  # noqa: E731
    inside = (ys >= v(top)) & (ys < v(top + eh)) & (xs >= v(left)) & (xs < v(left + ew)) & v(on)
    fill = torch.tensor(MEAN, device=dev, dtype=x.dtype).view(1, 3, 1, 1) * 255
    return torch.where(inside.unsqueeze(1), fill, x)
