"""First-layer kernels and activation maps as image grids (AlexNet's Figure 3, for any model)."""
from __future__ import annotations

import functools
import json
import math
import os
from pathlib import Path

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


# --- the kernels as they form: snapshots saved by scripts/train.py -------------------------

SNAPSHOTS = "filters.safetensors"   # beside a checkpoint's weights: checkpoints/<arch>/filters.safetensors


SNAPSHOT_KERNELS = 96   # kernels kept per epoch: AlexNet's 96 (Figure 3); a Mixer's 512 patch kernels were 6 MB


def save_snapshots(snapshots: dict[int, torch.Tensor], path: str | Path, arch: str, layer: str) -> Path:
    """Write first-layer weights at several epochs as one safetensors file, atomically.

    Tensors are named `epoch_<n>` (fp16, as the checkpoints), the first SNAPSHOT_KERNELS
    kernels of each epoch; the metadata holds `arch`, `layer` (the stem's dotted path) and
    `epochs`, a JSON list of the epochs stored.
    """
    from safetensors.torch import save_file
    path = Path(path)
    tensors = {f"epoch_{e}": w.detach()[:SNAPSHOT_KERNELS].to("cpu", torch.float16).contiguous()
               for e, w in sorted(snapshots.items())}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"arch": arch, "layer": layer, "epochs": json.dumps(sorted(snapshots))})
    os.replace(tmp, path)
    return path


def load_snapshots(path: str | Path) -> list[tuple[int, torch.Tensor]]:
    """[(epoch, fp16 weights)] sorted by epoch from a `save_snapshots` file; [] when it is absent.

    Reads safetensors only (nothing unpickled); tensors not named `epoch_<n>` are ignored.
    """
    from safetensors.torch import load_file
    if not Path(path).is_file():
        return []
    out = [(int(k[len("epoch_"):]), v) for k, v in load_file(str(path)).items()
           if k.startswith("epoch_") and k[len("epoch_"):].isdigit()]
    return sorted(out, key=lambda t: t[0])


# --- structure or noise: how much of a kernel's energy is at low spatial frequencies -------

LOW_FREQUENCY = 0.25   # cycles per pixel; Nyquist is 0.5


def low_frequency_share(w: torch.Tensor, cutoff: float = LOW_FREQUENCY) -> torch.Tensor:
    """Per kernel of w (out, in, kh, kw): the share of its spectral energy at radius <= `cutoff`.

    Each input channel's kernel has its mean removed (a constant offset says nothing about
    structure), is zero-padded to n x n with n = max(16, 2 * max(kh, kw)) and transformed
    with a 2-D FFT; |F|^2 is summed over input channels, and the share is the energy at
    frequencies sqrt(fx^2 + fy^2) <= cutoff cycles/pixel over the total. Smooth colour blobs
    and slow oriented edges (AlexNet's Figure 3) put nearly all their energy inside, white
    noise spreads it over the whole band (0.1 to 0.2 inside at the default cutoff, from 3x3 to
    16x16 kernels). A kernel with no energy once its means are removed has no share: NaN.
    """
    g = w.detach().float()
    g = g - g.mean((-2, -1), keepdim=True)
    n = max(16, 2 * max(g.shape[-2:]))
    energy = torch.fft.fft2(g, s=(n, n)).abs().square().sum(1)          # (out, n, n)
    f = torch.fft.fftfreq(n)
    low = (f[:, None] ** 2 + f[None, :] ** 2).sqrt() <= cutoff
    total = energy.sum((1, 2))
    return torch.where(total > 0, (energy * low).sum((1, 2)) / total.clamp(min=1e-30), float("nan"))


@functools.lru_cache(maxsize=64)
def random_init_share(shape: tuple, kernels: int = 2048, seed: int = 0, cutoff: float = LOW_FREQUENCY) -> float:
    """Mean `low_frequency_share` of Kaiming-normal kernels of this (out, in, kh, kw) shape.

    Averaged over at least `kernels` kernels from a fixed seed (deterministic, leaves torch's
    global generator alone; cached per shape). The share does not depend on the weights'
    scale, so any i.i.d. Gaussian init (Kaiming, LeCun, truncated normal alike) has this same
    expected share.
    """
    draws = max(1, math.ceil(kernels / shape[0]))
    w = torch.randn((draws * shape[0], *shape[1:]), generator=torch.Generator().manual_seed(seed))
    return float(low_frequency_share(w, cutoff).mean())


def structure_ratio(w: torch.Tensor, cutoff: float = LOW_FREQUENCY) -> float:
    """Mean low-frequency share of w's kernels over that of a random init of the same shape.

    About 1 for a random init (or kernels that stayed noise), well above 1 for smooth,
    oriented or blob-like kernels (about 4 to 5 for pure blobs at the default cutoff), below
    1 for kernels dominated by fine checkerboard-like detail. A layer of few kernels scatters:
    one random init of LeNet-5's 6 kernels gives 1 +- 0.1 (one s.d.), of 64 or more +- 0.05.
    """
    return float(low_frequency_share(w, cutoff).nanmean()) / random_init_share(tuple(w.shape), cutoff=cutoff)


def structure_verdict(ratio: float, shape: tuple) -> str:
    """`structure_ratio` in words, for kernels of this (out, in, kh, kw) shape. Above 2x the words
    follow the low-frequency share itself: at 2.4x a 7x7 layer holds 42% of its energy there
    (random kernels: 18%), so smooth blobs show through, but fine detail still holds the most."""
    if ratio < 1.3:
        return "close to random noise"
    if ratio < 2:
        return "partly structured"
    rand = random_init_share(tuple(shape))
    share = min(ratio * rand, 1.0)
    if share >= 0.5:
        return (f"structured: smooth blobs and slow edges hold most of their energy ({share:.0%} at low "
                f"frequencies, against {rand:.0%} for random kernels)")
    return (f"structured: smooth blobs and slow edges stand out, though fine detail still holds most of their "
            f"energy ({share:.0%} at low frequencies, against {rand:.0%} for random kernels)")


def teaching_default(ratios: dict[str, float], prefer: str = "alexnet", enough: float = 2.0) -> str | None:
    """The model the Filters page opens on: `prefer` (AlexNet, whose Figure 3 the page is about)
    when its kernels measure at least `enough` times a random init's structure, else the model
    whose kernels measure the most structure. `ratios` maps arch to `structure_ratio`."""
    if not ratios:
        return None
    if ratios.get(prefer, 0.0) >= enough:
        return prefer
    return max(ratios, key=lambda a: ratios[a])
