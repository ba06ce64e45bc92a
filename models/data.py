"""Imagenette: classes, normalisation, preprocessing and fast tensor batches, in one place.

Reads any folder holding `train/` and `val/` with one sub-folder per WordNet id: the
official `imagenette2`, `imagenette2-320`, `imagenette2-160` archives, the layout
`torchvision.datasets.Imagenette(root, download=True)` extracts, and the 224 px copy in
`../shared/data/imagenette2-224`.

Preprocessing is one function, `to_square_uint8`, used by the training cache, by
`scripts/evaluate.py` and by the app, so a prediction in the app is computed exactly as
the card's accuracy was:

    evaluation:  resize shorter side to round(size / 0.875) -> centre crop that square
                 -> centre crop `size` -> scale to [0, 1] -> normalise (ImageNet mean/std)
    training:    the same square at round(size * 1.25), then random-resized crop + flip
                 (+ mixup/cutmix) on the device that trains
"""
from __future__ import annotations

import hashlib
import math
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

REPO = Path(__file__).resolve().parent.parent

CLASSES: list[tuple[str, str]] = [
    ("n01440764", "tench"),
    ("n02102040", "English springer"),
    ("n02979186", "cassette player"),
    ("n03000684", "chain saw"),
    ("n03028079", "church"),
    ("n03394916", "French horn"),
    ("n03417042", "garbage truck"),
    ("n03425413", "gas pump"),
    ("n03445777", "golf ball"),
    ("n03888257", "parachute"),
]
WNIDS = [w for w, _ in CLASSES]
NAMES = [n for _, n in CLASSES]
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
CROP_PCT = 0.875
IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png", ".webp", ".bmp"}


# --- where the data is -------------------------------------------------------------------

def resolve_root(path: str | Path) -> Path:
    """The folder holding train/ and val/: `path` itself, or an imagenette2* folder inside it."""
    p = Path(path).expanduser()
    if (p / "train").is_dir() and (p / "val").is_dir():
        return p
    for cand in sorted(p.glob("imagenette2*")):
        if (cand / "train").is_dir() and (cand / "val").is_dir():
            return cand
    raise FileNotFoundError(f"no Imagenette train/ and val/ folders under {p}; download with "
                            f"`python scripts/download_data.py --root {p}` or pass --data")


def default_root() -> Path | None:
    """$VH_DATA, else the workplace copy beside the repo, else None."""
    for cand in (os.environ.get("VH_DATA"), REPO.parent / "shared" / "data" / "imagenette2-224"):
        if cand:
            try:
                return resolve_root(cand)
            except FileNotFoundError:
                continue
    return None


def download(root: str | Path, size: str = "160px") -> Path:
    """Fetch Imagenette through torchvision (needs the internet): size is full, 320px or 160px."""
    from torchvision.datasets import Imagenette
    for split in ("train", "val"):
        Imagenette(str(root), split=split, size=size, download=not _has_split(root, size, split))
    return resolve_root(root)


def _has_split(root, size, split) -> bool:
    name = {"full": "imagenette2", "320px": "imagenette2-320", "160px": "imagenette2-160"}[size]
    return (Path(root) / name / split).is_dir()


def list_split(root: str | Path, split: str) -> tuple[list[Path], list[int]]:
    """Sorted image paths and integer labels of one split."""
    base = Path(root) / split
    paths, labels = [], []
    for label, wnid in enumerate(WNIDS):
        for f in sorted((base / wnid).iterdir()) if (base / wnid).is_dir() else []:
            if f.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(f)
                labels.append(label)
    if not paths:
        raise FileNotFoundError(f"no images in {base}/<wnid>/; is {root} an Imagenette folder?")
    return paths, labels


def fingerprint(root: str | Path) -> str:
    """Short hash of every file's relative path and size, both splits: names the data a model saw."""
    h = hashlib.sha256()
    root = Path(root)
    for split in ("train", "val"):
        paths, _ = list_split(root, split)
        for p in paths:
            h.update(f"{p.relative_to(root)}:{p.stat().st_size}\n".encode())
    return h.hexdigest()[:16]


# --- preprocessing -----------------------------------------------------------------------

def eval_store_size(input_size: int) -> int:
    return int(round(input_size / CROP_PCT))


def train_store_size(input_size: int) -> int:
    return int(round(input_size * 1.25))


def to_square_uint8(img: Image.Image, side: int) -> np.ndarray:
    """RGB, shorter side resized to `side` (bilinear, antialiased), centre-cropped square: (side, side, 3) uint8."""
    img = img.convert("RGB")
    w, h = img.size
    s = side / min(w, h)
    nw, nh = max(side, round(w * s)), max(side, round(h * s))
    img = img.resize((nw, nh), Image.BILINEAR, reducing_gap=None)
    left, top = (nw - side) // 2, (nh - side) // 2
    return np.array(img.crop((left, top, left + side, top + side)), dtype=np.uint8)


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Centre crop of a (..., H, W) tensor."""
    h, w = x.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top:top + size, left:left + size]


def normalize(x: torch.Tensor, in_chans: int = 3) -> torch.Tensor:
    """(B, 3, H, W) pixels in [0, 255] (uint8 or float) -> normalised float; grey (ITU-R 601
    luma) when the model takes one channel."""
    x = x.float() / 255
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    x = (x - mean) / std
    if in_chans == 1:
        x = (x * torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return x


def eval_batches(x_u8: torch.Tensor, size: int, in_chans: int = 3, batch: int = 250, device="cpu"):
    """Yield (start, normalised batch) over uint8 eval squares, centre-cropped to `size`: the
    evaluation view of `preprocess`, batched (evaluation, indexes, SE profiles, training's val)."""
    for i in range(0, len(x_u8), batch):
        yield i, normalize(center_crop(x_u8[i:i + batch].to(device, non_blocking=True), size), in_chans)


def preprocess(img: Image.Image, input_size: int, in_chans: int = 3) -> torch.Tensor:
    """One PIL image -> the (1, C, size, size) tensor a model of that input size sees."""
    sq = torch.from_numpy(to_square_uint8(img, eval_store_size(input_size))).permute(2, 0, 1)
    return normalize(center_crop(sq, input_size)[None], in_chans)


def describe_preprocess(input_size: int, in_chans: int = 3) -> list[str]:
    store = eval_store_size(input_size)
    steps = [
        "convert to RGB",
        f"resize the shorter side to {store} px (bilinear, antialiased)",
        f"centre-crop {store}x{store}, then centre-crop {input_size}x{input_size} "
        f"(crop ratio {CROP_PCT})",
        "scale pixels to [0, 1]",
        f"normalise with ImageNet mean {MEAN} and std {STD}",
    ]
    if in_chans == 1:
        steps.append("mix to one grey channel (0.299 R + 0.587 G + 0.114 B)")
    return steps


# --- decoded splits, cached ---------------------------------------------------------------

def _decode(args):
    path, side = args
    with Image.open(path) as im:
        return to_square_uint8(im, side)


def cache_dir() -> Path:
    return Path(os.environ.get("VH_CACHE", REPO / ".cache" / "data"))


def load_split(root: str | Path, split: str, side: int, workers: int | None = None,
               limit_per_class: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole split decoded to (N, 3, side, side) uint8 and (N,) int64 labels.

    Decoded once per (data, split, side) and cached as .npy (no pickle) under `cache_dir()`.
    `limit_per_class` keeps the first n images of each class (tiny runs and tests).
    """
    root = resolve_root(root)
    paths, labels = list_split(root, split)
    if limit_per_class:
        keep, seen = [], {}
        for i, y in enumerate(labels):
            seen[y] = seen.get(y, 0) + 1
            if seen[y] <= limit_per_class:
                keep.append(i)
        paths, labels = [paths[i] for i in keep], [labels[i] for i in keep]
    key = hashlib.sha256("\n".join(f"{p}:{p.stat().st_size}" for p in paths).encode()).hexdigest()[:16]
    d = cache_dir()
    fx, fy = d / f"{split}-{side}-{key}-x.npy", d / f"{split}-{side}-{key}-y.npy"
    if fx.exists() and fy.exists():
        return torch.from_numpy(np.load(fx, allow_pickle=False)), torch.from_numpy(np.load(fy, allow_pickle=False))
    workers = workers or min(32, os.cpu_count() or 1)
    jobs = [(p, side) for p in paths]
    if workers > 1 and len(jobs) > 64:
        with ProcessPoolExecutor(workers) as ex:
            arrays = list(ex.map(_decode, jobs, chunksize=64))
    else:
        arrays = [_decode(j) for j in jobs]
    x = np.stack(arrays).transpose(0, 3, 1, 2).copy()
    y = np.asarray(labels, dtype=np.int64)
    d.mkdir(parents=True, exist_ok=True)
    for f, a in ((fx, x), (fy, y)):
        tmp = f.with_suffix(".tmp.npy")
        np.save(tmp, a, allow_pickle=False)
        os.replace(tmp, f)
    return torch.from_numpy(x), torch.from_numpy(y)


# --- augmentation on the training device -------------------------------------------------

def random_resized_crop(x_uint8: torch.Tensor, size: int, scale=(0.35, 1.0), ratio=(3 / 4, 4 / 3),
                        flip: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
    """Batched random-resized crop + horizontal flip as one `grid_sample`, on x's device.

    Returns float in [0, 255]. Each sample draws its own area fraction, aspect ratio,
    position and flip, like torchvision's RandomResizedCrop (crops are clipped to the image).
    """
    b, dev = x_uint8.shape[0], x_uint8.device
    rnd = lambda *s: torch.rand(*s, device=dev, generator=generator)  # noqa: E731
    area = scale[0] + (scale[1] - scale[0]) * rnd(b)
    logr = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * rnd(b)
    r = logr.exp()
    w = (area * r).sqrt().clamp(max=1.0)
    h = (area / r).sqrt().clamp(max=1.0)
    cx = (1 - w) * (rnd(b) * 2 - 1)
    cy = (1 - h) * (rnd(b) * 2 - 1)
    sx = w * (torch.where(rnd(b) < 0.5, -1.0, 1.0) if flip else 1.0)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, cx, h, cy
    grid = F.affine_grid(theta, [b, x_uint8.shape[1], size, size], align_corners=False)
    return F.grid_sample(x_uint8.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def mix_batch(x: torch.Tensor, y: torch.Tensor, mixup: float, cutmix: float):
    """Mixup (Zhang et al. 2018) or CutMix (Yun et al. 2019), half the batches each when both are on.

    Returns (x, y_a, y_b, lam): the loss is lam * CE(y_a) + (1 - lam) * CE(y_b). The few
    scalar draws come from the CPU generator, so nothing waits on the device.
    """
    if mixup <= 0 and cutmix <= 0:
        return x, y, y, 1.0
    dev = x.device
    use_cut = cutmix > 0 and (mixup <= 0 or bool(torch.rand(()) < 0.5))
    alpha = cutmix if use_cut else mixup
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(x.shape[0]).to(dev, non_blocking=True)
    if use_cut:
        h, w = x.shape[-2:]
        cut = math.sqrt(1 - lam)
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
        t, b_ = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        l, r = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x = x.clone()
        x[..., t:b_, l:r] = x[perm][..., t:b_, l:r]
        lam = 1 - (b_ - t) * (r - l) / (h * w)
    else:
        x = lam * x + (1 - lam) * x[perm]
    return x, y, y[perm], lam


# --- a held-out slice of train, for tuning without looking at val --------------------------

def split_fingerprint(root: str | Path, splits=("train",)) -> str:
    """`fingerprint` over the given splits only: names the data of a run that never reads val
    (whose folder may then be empty, as on a machine sent the train split alone)."""
    h = hashlib.sha256()
    root = Path(root)
    for split in splits:
        for p in list_split(root, split)[0]:
            h.update(f"{p.relative_to(root)}:{p.stat().st_size}\n".encode())
    return h.hexdigest()[:16]


def holdout_split(labels, fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, held-out indices) into `labels`, both sorted: round(fraction * n) images of
    every class held out (at least one when fraction > 0, never a class's last image).

    Which images are held out depends only on the labels and `seed` (not on the training
    seed, the device or the call), so every run tuned against the slice sees the same one.
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"holdout fraction must be in [0, 1), got {fraction}")
    labels = torch.as_tensor(labels).cpu()
    keys = torch.rand(len(labels), generator=torch.Generator().manual_seed(seed))
    held = torch.zeros(len(labels), dtype=torch.bool)
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().squeeze(1)
        k = min(len(idx) - 1, max(1, round(fraction * len(idx)))) if fraction > 0 else 0
        held[idx[keys[idx].argsort()[:k]]] = True
    return (~held).nonzero().squeeze(1), held.nonzero().squeeze(1)
