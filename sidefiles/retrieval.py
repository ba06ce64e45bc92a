"""Build the offline retrieval gallery and, per shipped checkpoint, its feature index.

    python scripts/build_index.py                  # every checkpoint present
    python scripts/build_index.py --arch alexnet   # one

Writes checkpoints/gallery.safetensors (a fixed set of train images: --per-class of each
class, as 64 px JPEG thumbnails, labels and paths) and checkpoints/<arch>/retrieval.safetensors
(the model's fc7 / penultimate features of those images, fp16, tied to the checkpoint's
weights by their sha256). It also measures retrieval precision@k over the whole val split,
for the model (Euclidean and cosine) and for raw pixels, and stores it in the index, so the
app shows the numbers without the dataset.
"""
from __future__ import annotations

import time
from pathlib import Path


import torch
import torch.nn.functional as F

from sidefiles import common
import models
from explorer import retrieval
from models import data

THUMB = 64


@torch.no_grad()
def features(model, x_u8: torch.Tensor, batch: int = 200) -> torch.Tensor:
    model.eval()
    out = []
    for _, xb in data.eval_batches(x_u8, model.input_size, model.in_chans, batch):
        out.append(model.forward_features(xb).float())
    return torch.cat(out)


def gallery_indices(labels: list[int], per_class: int) -> list[int]:
    """Evenly spaced images of each class, deterministic."""
    out = []
    for c in range(len(data.CLASSES)):
        mine = [i for i, y in enumerate(labels) if y == c]
        out += [mine[j * len(mine) // per_class] for j in range(min(per_class, len(mine)))]
    return out


def pixel_vectors(x_u8: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x_u8.float() / 255, size=retrieval.PIXEL_SIDE, mode="bilinear", antialias=True,
                         align_corners=False).flatten(1)


def build(checkpoints: Path, root: Path, archs: list[str] | None = None, per_class: int = 100, k: int = 10) -> dict:
    """Write the gallery and each checkpoint's index; returns {arch: meta}."""
    paths, labels = data.list_split(root, "train")
    gidx = gallery_indices(labels, per_class)
    glabels = torch.tensor([labels[i] for i in gidx])
    files = [str(paths[i].relative_to(root)) for i in gidx]

    gpath = checkpoints / retrieval.GALLERY
    try:  # the same images already: keep the file (another JPEG encoder would only churn its bytes)
        same = retrieval.load_gallery(gpath).files == files
    except retrieval.RetrievalError:
        same = False
    if not same:
        thumbs_all, _ = data.load_split(root, "train", THUMB)
        retrieval.save_gallery(gpath, thumbs_all[gidx], glabels, files)
    gallery = retrieval.load_gallery(gpath)  # what the app will see (JPEG-decoded)
    print(f"gallery: {len(gidx)} train images -> {gpath} ({gpath.stat().st_size / 2**20:.2f} MiB)")

    val_thumbs, val_y = data.load_split(root, "val", THUMB)
    pix_p = retrieval.precision_at_k(pixel_vectors(val_thumbs), val_y, gallery.pixels, glabels, k)
    print(f"raw pixels ({retrieval.PIXEL_SIDE}x{retrieval.PIXEL_SIDE}x3): precision@{k} {pix_p:.2f}%")

    archs = archs or [s.name for s in models.list_architectures() if (checkpoints / s.name / "card.json").exists()]
    out_meta = {}
    for arch in archs:
        t0 = time.time()
        model, card = models.load(arch, checkpoints)
        size = model.input_size
        train_x, _ = data.load_split(root, "train", data.eval_store_size(size))
        bank = retrieval.dequantize_rows(*retrieval.quantize_rows(features(model, train_x[gidx])))  # as stored
        val_x, vy = data.load_split(root, "val", data.eval_store_size(size))
        q = features(model, val_x)
        meta = {"k": k, "gallery": len(gidx), "val_images": len(vy), "layer": models.get_spec(arch).penultimate,
                "dim": bank.shape[1],
                "precision_euclidean": round(retrieval.precision_at_k(q, vy, bank, glabels, k), 2),
                "precision_cosine": round(retrieval.precision_at_k(q, vy, bank, glabels, k, "cosine"), 2),
                "precision_pixels": round(pix_p, 2), "data_fingerprint": data.fingerprint(root)}
        out = checkpoints / arch / retrieval.INDEX
        retrieval.save_index(out, card, bank, meta)
        out_meta[arch] = meta
        print(f"{arch}: {meta['layer']} ({meta['dim']}-d) precision@{k} euclidean "
              f"{meta['precision_euclidean']}% cosine {meta['precision_cosine']}% vs pixels {pix_p:.2f}% "
              f"-> {out} ({out.stat().st_size / 2**20:.2f} MiB, {time.time() - t0:.0f} s)", flush=True)
    return out_meta


def main() -> int:
    ap = common.parser(__doc__)
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    build(args.checkpoints, common.data_root(args), args.arch, args.per_class, args.k)
    return 0

