"""Timings of the inside-the-network pages against their targets, on this machine.

    python bench/bench_insides.py

* retrieval query: the search of one query's features among the gallery's (target 20 ms),
  and, reported apart, the model's feature extraction for the query image;
* IntegratedGradients with 32 steps on the explorer ViT for one image (target 3 s).

Uses the shipped checkpoints where present; the ViT timing does not depend on its weights,
so an untrained ViT stands in when none is shipped (said in the results). Results go to
bench/results/insides.json.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

import torch
from PIL import Image

import models
from explorer import attribution, retrieval
from models import data
from models.checkpoint import CheckpointError

TARGETS = {"retrieval_search_ms": 20, "ig32_vit_s": 3.0}
CK = REPO / "checkpoints"
SAMPLE = REPO / "samples" / "golf_ball-1.jpg"


def median_time(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main() -> int:
    img = Image.open(SAMPLE).convert("RGB")
    out = {"targets": TARGETS, "threads": torch.get_num_threads(), "cpu_cores": os.cpu_count(),
           "date": time.strftime("%Y-%m-%d"), "retrieval": {}}
    gallery = retrieval.load_gallery(CK / retrieval.GALLERY)
    for spec in models.list_architectures():
        try:
            model, card = models.load(spec.name, CK)
            index = retrieval.load_index(CK / spec.name / retrieval.INDEX, card)
        except (CheckpointError, retrieval.RetrievalError):
            continue
        x = data.preprocess(img, model.input_size, model.in_chans)
        with torch.inference_mode():
            feat = model.forward_features(x).float()
            extract = median_time(lambda: model.forward_features(x), 10)
        search = median_time(lambda: retrieval.neighbours(feat, index.feats, 8), 50)
        out["retrieval"][spec.name] = {"search_ms": round(1000 * search, 3), "features_ms": round(1000 * extract, 2),
                                       "gallery": len(gallery.labels), "dim": index.feats.shape[1],
                                       "meets": 1000 * search <= TARGETS["retrieval_search_ms"]}
        print(f"retrieval {spec.name}: search {1000 * search:.3f} ms over {len(gallery.labels)} x "
              f"{index.feats.shape[1]} (target {TARGETS['retrieval_search_ms']} ms), features {1000 * extract:.1f} ms")
    try:
        vit, _ = models.load("vit", CK)
        weights = "shipped checkpoint"
    except CheckpointError:
        torch.manual_seed(0)
        vit, weights = models.create("vit").eval(), "untrained (no shipped ViT yet; timing does not depend on weights)"
    x = data.preprocess(img, vit.input_size)
    ig = median_time(lambda: attribution.attribute(vit, x, 0, "integrated_gradients", steps=32), 3)
    out["ig32_vit"] = {"seconds": round(ig, 3), "weights": weights, "meets": ig <= TARGETS["ig32_vit_s"]}
    print(f"IntegratedGradients 32 steps on the ViT: {ig:.2f} s (target {TARGETS['ig32_vit_s']} s; {weights})")
    path = REPO / "bench" / "results" / "insides.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
