"""First-layer kernels and activation maps as image grids (AlexNet's Figure 3, for any model)."""
from __future__ import annotations

import math

import numpy as np
import torch

SORTS = {
    "none": "as stored",
    "colour": "most colourful first (spread across RGB channels)",
    "grey": "most grey first",
    "frequency": "lowest dominant spatial frequency first",
    "norm": "largest weight norm first",
}


def normalise_each(w: torch.Tensor) -> torch.Tensor:
    """Scale every filter (out, in, kh, kw) to [0, 1] on its own, as in the papers' figures."""
    flat = w.flatten(1)
    lo, hi = flat.min(1).values, flat.max(1).values
    return ((flat - lo[:, None]) / (hi - lo).clamp(min=1e-12)[:, None]).view_as(w)


def colourfulness(w: torch.Tensor) -> torch.Tensor:
    """Per filter: mean absolute deviation across input channels, relative to its range."""
    if w.shape[1] < 3:
        return torch.zeros(w.shape[0])
    n = normalise_each(w)
    return (n - n.mean(1, keepdim=True)).abs().mean((1, 2, 3))


def dominant_frequency(w: torch.Tensor) -> torch.Tensor:
    """Per filter: radius (cycles per kernel) of the strongest non-DC 2-D Fourier component."""
    g = w.float().mean(1)
    g = g - g.mean((1, 2), keepdim=True)
    kh, kw = g.shape[-2:]
    mag = torch.fft.fft2(g, s=(max(kh, 8), max(kw, 8))).abs()
    fy = torch.fft.fftfreq(mag.shape[-2])[:, None]
    fx = torch.fft.fftfreq(mag.shape[-1])[None, :]
    radius = (fy ** 2 + fx ** 2).sqrt()
    idx = mag.flatten(1).argmax(1)
    return radius.flatten()[idx]


def order(w: torch.Tensor, sort: str) -> torch.Tensor:
    if sort == "none":
        return torch.arange(w.shape[0])
    if sort == "colour":
        return colourfulness(w).argsort(descending=True)
    if sort == "grey":
        return colourfulness(w).argsort()
    if sort == "frequency":
        return dominant_frequency(w).argsort(stable=True)
    if sort == "norm":
        return w.flatten(1).norm(dim=1).argsort(descending=True)
    raise ValueError(f"unknown sort {sort!r}; choose from {list(SORTS)}")


def tile(images: np.ndarray, columns: int | None = None, pad: int = 1, scale: int = 1,
         background: float = 1.0) -> np.ndarray:
    """(N, h, w[, 3]) floats in [0, 1] -> one (H, W[, 3]) uint8 grid with `pad`-pixel gaps."""
    n, h, w = images.shape[:3]
    cols = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    shape = (rows * (h + pad) + pad, cols * (w + pad) + pad) + images.shape[3:]
    grid = np.full(shape, background, dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, cols)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = images[i]
    if scale > 1:
        grid = grid.repeat(scale, 0).repeat(scale, 1)
    return (grid.clip(0, 1) * 255).round().astype(np.uint8)


def filter_grid(w: torch.Tensor, sort: str = "none", columns: int | None = None, scale: int | None = None):
    """The kernels (out, in, kh, kw) as a grid image, and the order used.

    RGB kernels show as colour; other channel counts show the mean over input channels.
    """
    idx = order(w, sort)
    n = normalise_each(w.float())[idx]
    imgs = n.permute(0, 2, 3, 1).numpy() if n.shape[1] == 3 else n.mean(1).numpy()
    k = w.shape[-1]
    scale = scale or max(1, 48 // k)
    return tile(imgs, columns, pad=1, scale=scale), idx


def activation_grid(acts: torch.Tensor, idx: torch.Tensor | None = None, limit: int = 64, columns: int = 8):
    """(1, C, h, w) maps of one image -> a grid of the first `limit` channels (in `idx` order)."""
    a = acts[0].float()
    if idx is not None:
        a = a[idx]
    a = a[:limit]
    lo = a.flatten(1).min(1).values[:, None, None]
    hi = a.flatten(1).max(1).values[:, None, None]
    a = (a - lo) / (hi - lo).clamp(min=1e-12)
    return tile(a.numpy(), columns, pad=2, scale=max(1, 96 // a.shape[-1]))
