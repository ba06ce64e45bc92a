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
                 (+ mixup/cutmix) on the device that trains (training/data.py)
"""
from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
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


def fingerprint(root: str | Path, splits=("train", "val")) -> str:
    """Short hash of every file's relative path and size in `splits`: names the data a model saw
    (a run that never reads val names its train split alone: val may then be an empty folder)."""
    h = hashlib.sha256()
    root = Path(root)
    for split in splits:
        for p in list_split(root, split)[0]:
            h.update(f"{p.relative_to(root)}:{p.stat().st_size}\n".encode())
    return h.hexdigest()[:16]


# --- preprocessing -----------------------------------------------------------------------

def eval_store_size(input_size: int) -> int:
    return int(round(input_size / CROP_PCT))


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
