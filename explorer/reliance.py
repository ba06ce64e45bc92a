"""What a network relies on: four published measurements, for any model of the zoo.

* Patch shuffling and patch dropping (Naseer et al., "Intriguing Properties of Vision
  Transformers", NeurIPS 2021): cut the image into a g x g grid and shuffle the patches, or
  replace a growing fraction of them with the mean colour; how much accuracy survives says how
  much a network needs the image's global layout.
* Adversarial images (Goodfellow et al. 2015, FGSM; Madry et al. 2018, PGD): top-1 under
  perturbations of fixed L-infinity sizes, in steps of 1/255 of the pixel range, and whether an
  image made to fool one network fools the others (transfer).
* Fourier sensitivity (Yin et al., "A Fourier Perspective on Model Robustness", NeurIPS 2019):
  the error under additive noise of a single spatial frequency, as a heat map over frequencies.
* Effective receptive field (Luo, Li, Urtasun & Zemel, NeurIPS 2016): the input region that
  actually moves a unit, from the gradient of the centre unit of a feature map.

Every function works on pixel tensors in [0, 1] of shape (B, 3, H, W) and takes the model with
its normalisation (`Normalised`), so the perturbations live in the image's own units.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models import data


class Normalised(nn.Module):
    """A zoo model reading [0, 1] pixels at any size: resized to its input size (bilinear,
    antialiased) when they differ, normalised as the app does (grey for a one-channel model),
    then the model. Perturbations made through it live in the image's own pixel units."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.size = getattr(model, "input_size", None)
        self.in_chans = getattr(model, "in_chans", 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.size and x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        return self.model(data.normalize(x * 255, self.in_chans))


def pixels(image, size: int = 128) -> torch.Tensor:
    """(1, 3, size, size) in [0, 1]: the app's evaluation view of a PIL image (shorter side to
    size / 0.875, centre crop), before normalisation."""
    sq = torch.from_numpy(data.to_square_uint8(image, data.eval_store_size(size))).permute(2, 0, 1)[None]
    return data.center_crop(sq, size).float() / 255


def answers(loaded: dict, x: torch.Tensor) -> dict[str, tuple[int, float]]:
    """Every model's (top-1 class, its probability) for one [0, 1] image, side by side."""
    from explorer import zoo

    def forward(arch, model, card):
        with torch.inference_mode():
            p = Normalised(model)(x).float().softmax(-1)[0]
        return int(p.argmax()), float(p.max())
    return zoo.each_model(loaded, forward)


def attack(model: nn.Module, x: torch.Tensor, target: int, method: str, eps: float) -> torch.Tensor:
    """An adversarial version of x against the model's answer `target`: FGSM or PGD (10 steps)."""
    from explorer import zoo
    m, y = Normalised(model).eval(), torch.tensor([target])
    with zoo.using(), torch.enable_grad():
        return fgsm(m, x, y, eps) if method == "fgsm" else pgd(m, x, y, eps, steps=10)


# --- shuffling and dropping patches ----------------------------------------------------------

def patches(x: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, g*g, C, H/g, W/g): the image cut into a grid x grid of patches, row by row."""
    b, c, h, w = x.shape
    if h % grid or w % grid:
        raise ValueError(f"a {h}x{w} image does not split into a {grid}x{grid} grid")
    ph, pw = h // grid, w // grid
    return x.reshape(b, c, grid, ph, grid, pw).permute(0, 2, 4, 1, 3, 5).reshape(b, grid * grid, c, ph, pw)


def unpatch(p: torch.Tensor, grid: int) -> torch.Tensor:
    b, n, c, ph, pw = p.shape
    return p.reshape(b, grid, grid, c, ph, pw).permute(0, 3, 1, 4, 2, 5).reshape(b, c, grid * ph, grid * pw)


def shuffle_patches(x: torch.Tensor, grid: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image's grid x grid patches in a random order of its own (grid 1: the image itself)."""
    if grid == 1:
        return x.clone()
    p = patches(x, grid)
    order = torch.stack([torch.randperm(grid * grid, generator=generator) for _ in range(len(x))])
    return unpatch(p[torch.arange(len(x))[:, None], order], grid)


def drop_patches(x: torch.Tensor, fraction: float, grid: int = 8,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """`fraction` of each image's grid x grid patches (rounded to whole patches, chosen at random)
    replaced by the dataset's mean colour, as Naseer et al. drop patches of a ViT's input."""
    n = grid * grid
    k = int(round(fraction * n))
    p = patches(x, grid).clone()
    mean = torch.tensor(data.MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    for i in range(len(x)):
        idx = torch.randperm(n, generator=generator)[:k]
        p[i, idx] = mean
    return unpatch(p, grid)


# --- adversarial images ------------------------------------------------------------------------

def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """One signed-gradient step of size eps on the cross-entropy (Goodfellow et al. 2015),
    clipped to the valid pixel range. eps 0 returns the image."""
    if eps == 0:
        return x.clone()
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), y)
    (g,) = torch.autograd.grad(loss, x)
    return (x + eps * g.sign()).clamp(0, 1).detach()


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 10,
        step_size: float | None = None, random_start: bool = False,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """Projected gradient ascent on the cross-entropy inside the L-infinity ball of radius eps
    around x and inside [0, 1] (Madry et al. 2018). Each step keeps the best (highest-loss)
    image so far per sample, so the returned loss is never below the clean image's. eps 0
    returns the image."""
    if eps == 0:
        return x.clone()
    step_size = step_size or 2.5 * eps / steps
    lo, hi = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
    adv = x.clone()
    if random_start:
        noise = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device) * 2 - 1
        adv = torch.max(torch.min(x + eps * noise, hi), lo)
    with torch.no_grad():
        best, best_loss = x.clone(), F.cross_entropy(model(x), y, reduction="none")
    for _ in range(steps):
        adv = adv.detach().requires_grad_(True)
        loss = F.cross_entropy(model(adv), y, reduction="none")
        (g,) = torch.autograd.grad(loss.sum(), adv)
        with torch.no_grad():
            better = loss > best_loss
            best[better], best_loss[better] = adv[better], loss[better]
            adv = torch.max(torch.min(adv + step_size * g.sign(), hi), lo)
    with torch.no_grad():
        loss = F.cross_entropy(model(adv), y, reduction="none")
        better = loss > best_loss
        best[better] = adv[better]
    return best.detach()


def fooling_rate(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor,
                 only: torch.Tensor | None = None) -> float:
    """The share of images (those `only` marks, by default all) the model gets wrong."""
    with torch.no_grad():
        wrong = model(x_adv).argmax(-1) != y
    if only is not None:
        wrong = wrong[only]
    return float(wrong.float().mean()) if len(wrong) else float("nan")


def transfer_matrix(models: dict[str, nn.Module], made: dict[str, torch.Tensor], y: torch.Tensor) -> dict:
    """Rows: the model each set of adversarial images was made for; columns: the share of them each
    model gets wrong. The diagonal is the white-box fooling rate."""
    return {src: {dst: fooling_rate(m, made[src], y) for dst, m in models.items()} for src in made}


# --- Fourier basis noise -----------------------------------------------------------------------

def fourier_basis(size: int, u: int, v: int, norm: float = 1.0) -> torch.Tensor:
    """A real (size, size) image of the single spatial frequency (u, v) cycles per image, with L2
    norm `norm`: the Fourier basis image Yin et al. add (equal in every channel here, and scaled
    by the caller). Its 2-D FFT peaks at (u, v) and its mirror (-u, -v)."""
    if not (0 <= u < size and 0 <= v < size) or (u, v) == (0, 0):
        raise ValueError(f"frequency ({u}, {v}) outside 1..{size - 1} or the constant term")
    spec = torch.zeros(size, size, dtype=torch.complex64)
    spec[u, v] = 1
    spec[-u % size, -v % size] = 1
    img = torch.fft.ifft2(spec).real
    return img / img.norm() * norm


def fourier_noise(x: torch.Tensor, u: int, v: int, norm: float,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """x plus the (u, v) basis image at L2 norm `norm`, with a random sign per image and channel
    (as Yin et al.), clipped to [0, 1]."""
    basis = fourier_basis(x.shape[-1], u, v, norm).to(x.device, x.dtype)
    sign = torch.randint(0, 2, (x.shape[0], x.shape[1], 1, 1), generator=generator).to(x.device, x.dtype) * 2 - 1
    return (x + sign * basis).clamp(0, 1)


# --- effective receptive field -----------------------------------------------------------------

def effective_rf(feature: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """|d (centre unit of the feature map, summed over channels) / d input|, summed over colour
    channels and averaged over the images: (H, W), normalised to sum 1 (Luo et al. 2016)."""
    x = x.clone().requires_grad_(True)
    out = feature(x)
    if out.dim() != 4:
        raise ValueError("the effective receptive field needs a spatial feature map (B, C, H, W)")
    h, w = out.shape[-2:]
    (g,) = torch.autograd.grad(out[:, :, h // 2, w // 2].sum(), x)
    m = g.abs().sum(1).mean(0)
    return m / m.sum().clamp(min=1e-30)


def mass_radius(erf: torch.Tensor, share: float = 0.9, centre: tuple[float, float] | None = None) -> float:
    """The radius (px) of the smallest square around `centre` (row, column in pixel coordinates;
    default the map's centre) that holds `share` of the map's mass. The centre unit of an
    even-sized feature map does not sit at the image's centre (ResNet's 4x4 layer4: 16 px off), so
    callers pass the unit's own centre."""
    h, w = erf.shape
    cy, cx = centre if centre is not None else ((h - 1) / 2, (w - 1) / 2)
    ys = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
    xs = torch.arange(w, dtype=torch.float32)[None, :].expand(h, w)
    r = torch.maximum((ys - cy).abs(), (xs - cx).abs()).flatten()
    order = r.argsort()
    mass = erf.flatten()[order].cumsum(0) / erf.sum().clamp(min=1e-30)
    k = int(torch.searchsorted(mass, torch.tensor(share)).clamp(max=len(r) - 1))
    return float(r[order][k]) + 0.5


def unit_centre(start: float, jump: float, grid: tuple[int, int]) -> tuple[float, float]:
    """Where in the input (px) the centre unit (h // 2, w // 2) of a feature map looks, from the
    map's receptive-field geometry (`explorer.anatomy`: first unit's centre, stride in pixels)."""
    return start + (grid[0] // 2) * jump, start + (grid[1] // 2) * jump


def linf_steps(eps: float) -> float:
    """A perturbation size in steps of 1/255 of the pixel range."""
    return round(eps * 255, 3)


def answer_rows(clean: dict, now: dict, titles: dict[str, str]) -> list[dict]:
    """Per model: its answer to the clean image, to the changed one, that answer's probability, and
    whether it kept the clean answer."""
    return [{"model": titles[a], "clean image": data.NAMES[clean[a][0]], "this image": data.NAMES[now[a][0]],
             "p": now[a][1], "kept": "yes" if now[a][0] == clean[a][0] else "changed"} for a in now]


def kept_line(rows: list[dict]) -> str:
    """How many models keep their clean answer, naming them when few enough to read."""
    kept = [r["model"] for r in rows if r["kept"] == "yes"]
    return (f"**{len(kept)} of {len(rows)}** models keep their answer to the clean image"
            + (f": {', '.join(kept)}." if 0 < len(kept) <= 8 else "." if kept else "; every one changes it."))


def transfer_line(clean: dict, fooled: dict, arch: str, titles: dict[str, str]) -> str:
    """What one adversarial image did to the model it was made for and to the others."""
    others = [a for a in fooled if a != arch]
    moved = [titles[a] for a in others if fooled[a][0] != clean[a][0]]
    own = "fools it" if fooled[arch][0] != clean[arch][0] else "does not change its answer"
    return (f"Made against {titles[arch]}, the image {own}; it changes the answer of "
            f"**{len(moved)} of the {len(others)} other models**" + (f" ({', '.join(moved)})." if moved else "."))
