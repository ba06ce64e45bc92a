"""Classify one image with many models: top-k, the tensor each model saw, agreement, the
models x classes probability matrix, and what a corruption does to every model's answer.

Latency is not measured here: a single timed call on a shared server says more about what
else the server was doing than about the model. The app shows the per-process measurement
of `explorer.zoo.latencies` instead, the same number everywhere.
"""
from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from explorer import robustness, zoo
from explorer.text import csv_cell
from models import data, precision


@dataclass
class Result:
    arch: str
    title: str
    top: list[tuple[str, float]]   # (class name, probability), best first
    probs: list[float]             # every class, in data.NAMES order
    input_size: int
    in_chans: int


def model_input(image: Image.Image, size: int, in_chans: int, corruption: str | None = None,
                severity: int = 0) -> torch.Tensor:
    """The (1, C, size, size) tensor a model sees, with an optional corruption applied to the
    evaluation square before the centre crop (as scripts/robustness.py does on val)."""
    sq = torch.from_numpy(data.to_square_uint8(image, data.eval_store_size(size))).permute(2, 0, 1)[None]
    if corruption and severity:
        sq = robustness.corrupt(sq, corruption, severity, seeds=[0])
    return data.normalize(data.center_crop(sq, size), in_chans)


def classify(loaded: dict, image: Image.Image, k: int = 5, corruption: str | None = None,
             severity: int = 0) -> tuple[list[Result], dict]:
    """Every model's top-k for one RGB image.

    Returns (results in zoo order, {(size, chans): input tensor}); the tensor is built once
    per distinct preprocessing and shared by the models that use it.
    """
    inputs: dict[tuple[int, int], torch.Tensor] = {}
    with torch.inference_mode():
        for model, _ in loaded.values():
            key = (model.input_size, model.in_chans)
            if key not in inputs:
                inputs[key] = model_input(image, *key, corruption, severity).contiguous(
                    memory_format=torch.channels_last)

    def forward(arch, model, card) -> torch.Tensor:
        with torch.inference_mode(), precision.serving(model):  # bf16 only where it keeps the answers
            return model(inputs[(model.input_size, model.in_chans)]).float().softmax(-1)[0]

    results = []
    for arch, probs in zoo.each_model(loaded, forward).items():
        card = loaded[arch][1]
        model = loaded[arch][0]
        names = [c["name"] for c in card.get("classes", [])] or data.NAMES
        p, i = probs.topk(min(k, len(probs)))
        results.append(Result(arch, card.get("title", arch),
                              [(names[j], float(q)) for q, j in zip(p.tolist(), i.tolist())],
                              [float(v) for v in probs.tolist()], model.input_size, model.in_chans))
    return results, inputs


def agreement(results: list[Result]) -> dict:
    """How far the models agree on their top-1 answer.

    `label` is the answer with the most votes, or None when no answer leads: several models and
    no answer with more than one vote, or two answers tied at the top (`split`). The page then
    says the models disagree and lists `answers` (each answer, best voted first, with the models
    that gave it) instead of naming one. Each model's own answer is the one the matrix outlines."""
    if not results:
        return {"label": None, "votes": 0, "models": 0, "split": False, "tied": [], "agree": [], "disagree": [],
                "answers": [], "counts": {}}
    votes = Counter(r.top[0][0] for r in results)
    ranked = votes.most_common()              # ties keep the order the models first gave them
    label, n = ranked[0]
    tied = [lab for lab, c in ranked if c == n]
    split = len(tied) > 1                     # each answer one vote, or answers level at the top
    return {
        "label": None if split else label, "votes": n, "models": len(results), "split": split,
        "tied": tied if split else [label],
        "agree": [] if split else [r.title for r in results if r.top[0][0] == label],
        "disagree": [] if split else [(r.title, r.top[0][0]) for r in results if r.top[0][0] != label],
        "answers": [(lab, [r.title for r in results if r.top[0][0] == lab]) for lab, _ in ranked],
        "counts": dict(ranked),
    }


def matrix_rows(results: list[Result], years: dict[str, int] | None = None) -> list[dict]:
    """Long rows (model, class, probability, is top-1) for a models x classes heat map."""
    out = []
    for r in results:
        label = f"{r.title} ({years[r.arch]})" if years and r.arch in years else r.title
        best = data.NAMES.index(r.top[0][0])   # the answer agreement() counts, ties included
        for c, p in enumerate(r.probs):
            out.append({"model": label, "arch": r.arch, "class": data.NAMES[c], "probability": p,
                        "percent": round(100 * p), "top1": c == best})
    return out


def to_rows(image_name: str, results: list[Result], latency_ms: dict[str, float] | None = None,
            corruption: str = "clean") -> list[dict]:
    """The table the downloads export: what the page shows, nothing recomputed."""
    rows = []
    for r in results:
        for rank, (label, p) in enumerate(r.top, 1):
            rows.append({"image": image_name, "corruption": corruption, "model": r.arch, "rank": rank,
                         "class": label, "probability": round(p, 6),
                         "latency_ms": (latency_ms or {}).get(r.arch)})
    return rows


def to_csv(rows: list[dict]) -> str:
    """The rows as CSV; a cell a spreadsheet would read as a formula (a file named `=1+1.png`)
    is written with a leading `'` (explorer.text.csv_cell). The JSON keeps names verbatim."""
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({k: csv_cell(v) for k, v in r.items()} for r in rows)
    return buf.getvalue()


def to_json(rows: list[dict]) -> str:
    return json.dumps(rows, indent=1)


def severity_sweep(loaded: dict, image: Image.Image, corruption: str) -> list[dict]:
    """Every model's top-1 at severities 0 (clean) to 3 of one corruption, and how much
    probability it still gives the class it chose on the clean image."""
    out, clean = [], {}
    for sev in (0, *robustness.SEVERITIES):
        results, _ = classify(loaded, image, k=1, corruption=corruption, severity=sev)
        for r in results:
            if sev == 0:
                clean[r.arch] = int(np.argmax(r.probs))
            c = clean[r.arch]
            out.append({"model": r.title, "arch": r.arch, "severity": sev,
                        "answer": r.top[0][0], "confidence": r.top[0][1],
                        "clean answer kept": r.top[0][0] == data.NAMES[c],
                        "p(clean answer)": r.probs[c]})
    return out


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
