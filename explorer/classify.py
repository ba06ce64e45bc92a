"""Classify one image with many models: top-k, latency, the tensor each model saw, agreement."""
from __future__ import annotations

import csv
import io
import json
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from models import data


@dataclass
class Result:
    arch: str
    title: str
    top: list[tuple[str, float]]   # (class name, probability), best first
    latency_ms: float               # the forward pass alone, batch of one
    input_size: int
    in_chans: int


def classify(loaded: dict, image: Image.Image, k: int = 5) -> tuple[list[Result], dict]:
    """Every model's top-k for one RGB image.

    Returns (results in zoo order, {(size, chans): input tensor}); the tensor is built once
    per distinct preprocessing and shared by the models that use it.
    """
    inputs: dict[tuple[int, int], torch.Tensor] = {}
    results = []
    with torch.inference_mode():
        for arch, (model, card) in loaded.items():
            key = (model.input_size, model.in_chans)
            if key not in inputs:
                inputs[key] = data.preprocess(image, *key)
            t0 = time.perf_counter()
            probs = model(inputs[key]).float().softmax(-1)[0]
            dt = (time.perf_counter() - t0) * 1000
            names = [c["name"] for c in card.get("classes", [])] or data.NAMES
            p, i = probs.topk(min(k, len(probs)))
            results.append(Result(arch, card.get("title", arch), [(names[j], float(q)) for q, j in
                                                                 zip(p.tolist(), i.tolist())],
                                  round(dt, 2), model.input_size, model.in_chans))
    return results, inputs


def agreement(results: list[Result]) -> dict:
    """How far the models agree on their top-1 answer."""
    if not results:
        return {"label": None, "votes": 0, "models": 0, "agree": [], "disagree": []}
    votes = Counter(r.top[0][0] for r in results)
    label, n = votes.most_common(1)[0]
    return {
        "label": label, "votes": n, "models": len(results),
        "agree": [r.title for r in results if r.top[0][0] == label],
        "disagree": [(r.title, r.top[0][0]) for r in results if r.top[0][0] != label],
        "counts": dict(votes.most_common()),
    }


def to_rows(image_name: str, results: list[Result]) -> list[dict]:
    rows = []
    for r in results:
        for rank, (label, p) in enumerate(r.top, 1):
            rows.append({"image": image_name, "model": r.arch, "rank": rank, "class": label,
                         "probability": round(p, 6), "latency_ms": r.latency_ms})
    return rows


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return buf.getvalue()


def to_json(rows: list[dict]) -> str:
    return json.dumps(rows, indent=1)


def tensor_preview(x: torch.Tensor) -> np.ndarray:
    """The normalised (1, C, H, W) tensor a model saw, mapped back to viewable uint8 (H, W, C)."""
    x = x[0].float()
    if x.shape[0] == 3:
        mean = torch.tensor(data.MEAN).view(3, 1, 1)
        std = torch.tensor(data.STD).view(3, 1, 1)
        x = x * std + mean
    else:
        x = (x - x.min()) / (x.max() - x.min() + 1e-8)
    return (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).squeeze(-1).numpy()
