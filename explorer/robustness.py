"""How the networks fail: common corruptions at three severities, on a fixed slice of val.

The corruptions follow Hendrycks & Dietterich's ImageNet-C ("Benchmarking Neural Network
Robustness to Common Corruptions and Perturbations", ICLR 2019) in spirit, built from
torchvision's maintained ops (`torchvision.transforms.v2.functional`) so they run batched on
uint8 tensors:

| corruption     | what it does (severity 1 / 2 / 3)                                     |
|----------------|------------------------------------------------------------------------|
| gaussian_noise | add N(0, sigma) per pixel, sigma 12 / 28 / 50 (of 255)                  |
| blur           | Gaussian blur, sigma 1% / 2% / 4% of the image side                    |
| jpeg           | re-encode as JPEG at quality 30 / 12 / 5                               |
| brightness     | scale pixel values by 1.5 / 2.0 / 2.8                                  |
| contrast       | shrink contrast to 50% / 25% / 12%                                     |
| occlusion      | a grey square over 15% / 30% / 50% of the area, at a seeded position    |
| rotation       | rotate by 15 / 30 / 60 degrees (black corners)                         |

Sizes are relative to the image side, so a 32 px LeNet input and a 128 px AlexNet input
meet the same corruption. Severity 0 is the clean image, bit for bit. Random parts (noise,
occlusion position) come from a generator seeded by the image's index, so every model sees
the same corrupted images and a rerun gives the same table.

`scripts/robustness.py` scores every shipped model on every corruption and severity and
ships `checkpoints/robustness.json`; the Compare page plots it and the Classify page applies
the same functions to a user's image.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torchvision.transforms.v2.functional as TF

ROBUSTNESS = "robustness.json"
SEVERITIES = (1, 2, 3)

CORRUPTIONS: dict[str, tuple[str, str, tuple]] = {
    "gaussian_noise": ("Gaussian noise", "noise sigma {} (of 255)", (12, 28, 50)),
    "blur": ("Blur", "Gaussian blur, sigma {:.0%} of the side", (0.01, 0.02, 0.04)),
    "jpeg": ("JPEG", "JPEG quality {}", (30, 12, 5)),
    "brightness": ("Brightness", "brightness x{}", (1.5, 2.0, 2.8)),
    "contrast": ("Contrast", "contrast {:.0%}", (0.5, 0.25, 0.12)),
    "occlusion": ("Occlusion", "grey square over {:.0%} of the area", (0.15, 0.3, 0.5)),
    "rotation": ("Rotation", "rotated {} degrees", (15, 30, 60)),
}


def describe(name: str, severity: int) -> str:
    if severity == 0:
        return "clean"
    title, fmt, levels = CORRUPTIONS[name]
    return fmt.format(levels[severity - 1])


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) & 0x7FFFFFFF)


def corrupt(x: torch.Tensor, name: str, severity: int, seeds: list[int] | None = None) -> torch.Tensor:
    """(B, 3, H, W) uint8 -> the same images corrupted; severity 0 returns `x` unchanged.

    `seeds[i]` seeds the random parts of image i (default: its position in the batch)."""
    if severity == 0:
        return x
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; choose from {list(CORRUPTIONS)}")
    if not 1 <= severity <= len(SEVERITIES):
        raise ValueError(f"severity must be 0 to {len(SEVERITIES)}, not {severity}")
    level = CORRUPTIONS[name][2][severity - 1]
    b, _, h, w = x.shape
    seeds = list(range(b)) if seeds is None else list(seeds)
    side = min(h, w)
    if name == "gaussian_noise":
        noise = torch.stack([torch.randn(x.shape[1:], generator=_generator(s)) for s in seeds])
        return (x.float() + noise * level).round().clamp(0, 255).to(torch.uint8)
    if name == "blur":
        sigma = max(level * side, 0.3)
        k = 2 * math.ceil(3 * sigma) + 1
        return TF.gaussian_blur(x, kernel_size=[k, k], sigma=[sigma, sigma])
    if name == "jpeg":
        return TF.jpeg(x, quality=int(level))
    if name == "brightness":
        return TF.adjust_brightness(x, level)
    if name == "contrast":
        return TF.adjust_contrast(x, level)
    if name == "occlusion":
        out = x.clone()
        s = max(1, round(math.sqrt(level) * side))
        for i, seed in enumerate(seeds):
            g = _generator(seed)
            top = int(torch.randint(0, h - s + 1, (1,), generator=g))
            left = int(torch.randint(0, w - s + 1, (1,), generator=g))
            out[i, :, top:top + s, left:left + s] = 128
        return out
    if name == "rotation":
        return TF.rotate(x, angle=float(level), interpolation=TF.InterpolationMode.BILINEAR, fill=0)
    raise AssertionError(name)


def subset(labels: list[int] | torch.Tensor, per_class: int) -> list[int]:
    """The first `per_class` images of each class (val is sorted by class, so this is stable)."""
    seen: dict[int, int] = {}
    out = []
    for i, y in enumerate(int(v) for v in labels):
        if seen.get(y, 0) < per_class:
            out.append(i)
            seen[y] = seen.get(y, 0) + 1
    return out


def load(path: Path) -> dict | None:
    """The shipped table, or None when it is absent or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def rows(table: dict, titles: dict[str, str], years: dict[str, int]) -> tuple[list[dict], list[dict]]:
    """(accuracy per model, corruption and severity; relative robustness per model) for the charts.

    Relative robustness = mean accuracy over every corruption and severity / clean accuracy."""
    curve, summary = [], []
    for arch, m in table.get("models", {}).items():
        clean = m["clean_top1"]
        accs = []
        for name, by_sev in m["corrupted_top1"].items():
            curve.append({"model": titles.get(arch, arch), "arch": arch, "corruption": CORRUPTIONS[name][0],
                          "severity": 0, "top-1 (%)": clean})
            for sev, acc in enumerate(by_sev, 1):
                curve.append({"model": titles.get(arch, arch), "arch": arch, "corruption": CORRUPTIONS[name][0],
                              "severity": sev, "top-1 (%)": acc})
                accs.append(acc)
        mean = sum(accs) / len(accs) if accs else float("nan")
        summary.append({"model": titles.get(arch, arch), "arch": arch, "year": years.get(arch),
                        "clean top-1 (%)": clean, "corrupted top-1 (%)": round(mean, 2),
                        "drop (points)": round(clean - mean, 2),
                        "relative robustness": round(mean / clean, 3) if clean else float("nan")})
    return curve, summary


def subset_sentence(summary: list[dict], cards: dict[str, dict], images: int) -> str:
    """How far the clean top-1 on the robustness subset lies from each card's whole-split figure,
    with the binomial standard error of a top-1 on that many images (so the gap can be read)."""
    gaps = [(abs(r["clean top-1 (%)"] - cards[r["arch"]]["metrics"]["val_top1"]), r, cards[r["arch"]]["metrics"]["val_top1"])
            for r in summary if r["arch"] in cards and "val_top1" in cards[r["arch"]].get("metrics", {})]
    if not gaps or not images:
        return ""
    gap, row, card = max(gaps, key=lambda g: g[0])
    mean = sum(g[0] for g in gaps) / len(gaps)
    total = cards[row["arch"]]["metrics"].get("val_images") or 3925
    p = card / 100
    # a subset drawn from the split the card scored: binomial error with the finite-population correction
    se = 100 * (p * (1 - p) / images * max(0.0, 1 - images / total)) ** 0.5
    return (f"On these {images} images the clean top-1 differs from the cards' figures on all {total:,} val images by "
            f"{mean:.1f} points on average and at most {gap:.1f} ({row['model']}: {row['clean top-1 (%)']:.1f} here, "
            f"{card:.2f} on its card). Sampling {images} of {total:,} images alone moves a top-1 near {card:.0f}% by "
            f"about {se:.1f} points (one standard error), so gaps up to about {2 * se:.1f} need no other cause.")
