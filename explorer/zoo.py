"""The zoo as the app sees it: which checkpoints exist, loading them, the timeline's facts."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import torch

import models
from models.checkpoint import CheckpointError, available
from models.cost import arch_cost

REPO = Path(__file__).resolve().parent.parent
CHECKPOINTS = Path(os.environ.get("VH_CHECKPOINTS", REPO / "checkpoints"))
SAMPLES = REPO / "samples"

# page file -> (label, icon, which models it applies to: "all", "se" or "attention")
PAGES = {
    "pages/1_Classify.py": ("Classify", ":material/image:", "all"),
    "pages/3_Filters.py": ("Filters", ":material/grid_view:", "all"),
    "pages/4_Retrieval.py": ("Retrieval", ":material/image_search:", "all"),
    "pages/5_SE_Excitation.py": ("SE weights", ":material/tune:", "se"),
    "pages/6_ViT_Attention.py": ("Attention", ":material/visibility:", "attention"),
    "pages/7_Attributions.py": ("Attributions", ":material/explore:", "all"),
}


def pages_for(arch: str) -> list[tuple[str, str, str]]:
    """(page file, label, icon) of every page that shows this architecture's insides."""
    from models.probes import attention_modules, se_modules
    with torch.device("meta"):  # structure only
        m = models.create(arch)
    has = {"all": True, "se": bool(se_modules(m)), "attention": bool(attention_modules(m))}
    return [(f, label, icon) for f, (label, icon, needs) in PAGES.items() if has[needs]]


def status(checkpoints_dir: Path = CHECKPOINTS) -> dict[str, str | None]:
    """arch -> None if a checkpoint card is present and consistent, else why not."""
    return available(checkpoints_dir)


def load_all(checkpoints_dir: Path = CHECKPOINTS, archs: list[str] | None = None):
    """({arch: (model, card)}, {arch: reason}) for every (or each named) architecture.

    A missing or broken checkpoint never stops the others from loading.
    """
    torch.set_grad_enabled(False)
    loaded, missing = {}, {}
    for spec in models.list_architectures():
        if archs is not None and spec.name not in archs:
            continue
        try:
            loaded[spec.name] = models.load(spec.name, checkpoints_dir)
        except CheckpointError as e:
            missing[spec.name] = str(e)
    return loaded, missing


def timeline(checkpoints_dir: Path = CHECKPOINTS) -> list[dict]:
    """One row per architecture in historical order, with the predecessor it improved on."""
    rows, prev = [], None
    st = status(checkpoints_dir)
    for spec in models.list_architectures():
        cost = arch_cost(spec.name)
        top1 = None
        if st[spec.name] is None:
            top1 = models.read_card(spec.name, checkpoints_dir).get("metrics", {}).get("val_top1")
        rows.append({
            "name": spec.name, "title": spec.title, "year": spec.year, "paper": spec.paper,
            "key_idea": spec.key_idea, "changed": spec.changed, "predecessor": prev,
            "params": cost["params"], "gmacs": cost["gmacs"], "input_size": cost["input_size"],
            "reported": spec.reported, "top1": top1, "trained": st[spec.name] is None,
            "deviations": spec.presets["explorer"].deviations, "penultimate": spec.penultimate,
            "pages": pages_for(spec.name),
        })
        prev = spec.title
    return rows


def training_curves(checkpoints_dir: Path = CHECKPOINTS) -> list[dict]:
    """Long-format rows (arch, epoch, metric, value) from every shipped metrics.csv."""
    out = []
    for spec in models.list_architectures():
        f = Path(checkpoints_dir) / spec.name / "metrics.csv"
        if not f.exists():
            continue
        with open(f) as fh:
            for r in csv.DictReader(fh):
                for metric in ("train_loss", "train_acc", "val_top1", "val_top5", "lr", "img_s"):
                    if r.get(metric) not in (None, ""):
                        out.append({"model": spec.title, "epoch": int(r["epoch"]), "metric": metric,
                                    "value": float(r[metric])})
    return out


def sample_images() -> list[Path]:
    return sorted(p for p in SAMPLES.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
