"""fc7 / penultimate-feature retrieval, as in the AlexNet paper's Figure 4, beside raw pixels.

An index holds, for one checkpoint, the penultimate features (fp16) of a fixed gallery of
train images (`scripts/build_index.py`); the gallery itself (thumbnails, labels, paths) is
shared by all models. Raw-pixel retrieval compares the same thumbnails as 32x32x3 vectors.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from explorer import sidecar
from models import data

GALLERY = "gallery.safetensors"
INDEX = "retrieval.safetensors"
PIXEL_SIDE = 32


@dataclass
class Gallery:
    thumbs: torch.Tensor      # (N, 3, t, t) uint8, decoded from the stored JPEGs
    labels: torch.Tensor      # (N,) int64
    files: list[str]          # train-relative paths, for the full-resolution view

    @property
    def pixels(self) -> torch.Tensor:
        """(N, 3*32*32) raw-pixel vectors in [0, 1]."""
        x = F.interpolate(self.thumbs.float() / 255, size=PIXEL_SIDE, mode="bilinear", antialias=True,
                          align_corners=False)
        return x.flatten(1)


@dataclass
class Index:
    arch: str
    feats: torch.Tensor       # (N, D) float32 (stored int8 with a scale per row; fp16 in older files)
    weights_sha256: str
    meta: dict


class RetrievalError(Exception):
    """The index cannot be used; str(e) says why and how to rebuild it (and names no path)."""


def save_gallery(path: Path, thumbs: torch.Tensor, labels: torch.Tensor, files: list[str], quality: int = 85) -> None:
    """Thumbnails stored as JPEG bytes (one uint8 tensor + offsets): ~2 KB an image instead of 12."""
    blobs = []
    for t in thumbs:
        buf = io.BytesIO()
        Image.fromarray(t.permute(1, 2, 0).numpy()).save(buf, "JPEG", quality=quality)
        blobs.append(np.frombuffer(buf.getvalue(), dtype=np.uint8))
    offsets = torch.tensor(np.cumsum([0] + [len(b) for b in blobs]), dtype=torch.int64)
    save_file({"jpeg": torch.from_numpy(np.concatenate(blobs)), "offsets": offsets, "labels": labels.contiguous()},
              str(path), metadata={"files": json.dumps(files), "format": "vision-hist gallery"})


def load_gallery(path: Path) -> Gallery:
    if not path.exists():
        raise RetrievalError("No retrieval gallery is shipped; build it with `python scripts/build_index.py`.")
    with safe_open(str(path), "pt") as f:
        raw, off = f.get_tensor("jpeg").numpy(), f.get_tensor("offsets").tolist()
        labels, files = f.get_tensor("labels"), json.loads(f.metadata()["files"])
    thumbs = [np.array(Image.open(io.BytesIO(raw[a:b].tobytes())).convert("RGB")) for a, b in zip(off, off[1:])]
    return Gallery(torch.from_numpy(np.stack(thumbs)).permute(0, 3, 1, 2).contiguous(), labels, files)


def quantize_rows(feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, D) int8 and an (N, 1) float32 scale per row (its largest |value| / 127): a quarter of
    float32 and half of fp16, which the whole zoo's indexes need to fit the checkpoint budget."""
    scale = feats.float().abs().amax(1, keepdim=True).clamp(min=1e-12) / 127
    return (feats.float() / scale).round().clamp(-127, 127).to(torch.int8), scale


def dequantize_rows(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return q.float() * scale.float()


def save_index(path: Path, card: dict, feats: torch.Tensor, meta: dict) -> None:
    q, scale = quantize_rows(feats)
    sidecar.save(path, {"feats_int8": q, "feats_scale": scale}, card, meta)


def load_index(path: Path, card: dict) -> Index:
    """The index of a checkpoint, refused if it was built from other weights."""
    title = card.get("title", card["arch"])
    with sidecar.opened(path, card) as f:
        if f is None:
            if Path(path).exists():
                raise RetrievalError(f"{title}'s retrieval index was built from other weights than its checkpoint; "
                                     f"rebuild it with `python scripts/build_index.py --arch {card['arch']}`.")
            raise RetrievalError(f"{title} has no retrieval index yet; build it with "
                                 f"`python scripts/build_index.py --arch {card['arch']}`.")
        feats = (dequantize_rows(f.get_tensor("feats_int8"), f.get_tensor("feats_scale"))
                 if "feats_int8" in f.keys() else f.get_tensor("feats").float())   # int8, or fp16 as first shipped
        return Index(card["arch"], feats, sidecar.weights_sha(card), f.meta)


def neighbours(query: torch.Tensor, bank: torch.Tensor, k: int = 8, metric: str = "euclidean"):
    """(distances, indices) of the k nearest rows of `bank` to each query row."""
    if metric == "cosine":
        d = 1 - F.normalize(query, dim=-1) @ F.normalize(bank, dim=-1).T
    elif metric == "euclidean":
        d = torch.cdist(query, bank)
    else:
        raise ValueError(f"unknown metric {metric!r}: euclidean or cosine")
    dist, idx = d.topk(min(k, bank.shape[0]), largest=False)
    return dist, idx


def query_pixels(image, side: int) -> torch.Tensor:
    """A PIL image as the gallery's raw-pixel vector (same square crop as the thumbnails)."""
    sq = torch.from_numpy(data.to_square_uint8(image, side)).permute(2, 0, 1)[None].float() / 255
    return F.interpolate(sq, size=PIXEL_SIDE, mode="bilinear", antialias=True, align_corners=False).flatten(1)


def precision_at_k(query_feats: torch.Tensor, query_labels: torch.Tensor, bank: torch.Tensor,
                   bank_labels: torch.Tensor, k: int = 10, metric: str = "euclidean", chunk: int = 512) -> float:
    """Mean fraction of each query's k nearest gallery images that share its class."""
    hits = 0.0
    for i in range(0, len(query_feats), chunk):
        _, idx = neighbours(query_feats[i:i + chunk], bank, k, metric)
        hits += (bank_labels[idx] == query_labels[i:i + chunk, None]).float().mean(1).sum().item()
    return 100 * hits / len(query_feats)


def thumb_image(thumbs: torch.Tensor, i: int) -> np.ndarray:
    return thumbs[i].permute(1, 2, 0).numpy()


def search(model, image, bank: torch.Tensor, k: int, metric: str, repeats: int = 5):
    """A query image's k nearest rows of `bank` by the model's penultimate features: (distances,
    indices, the search's median time in ms over `repeats` runs; one search is well under a
    millisecond, so a first call's overhead would otherwise be what is timed)."""
    import statistics
    import time

    from explorer import zoo
    from models import data
    x = data.preprocess(image, model.input_size, model.in_chans)
    with zoo.using(), torch.inference_mode():
        feat = model.forward_features(x).float()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        dist, idx = neighbours(feat, bank, k, metric)
        times.append(1000 * (time.perf_counter() - t0))
    return dist, idx, statistics.median(times)
