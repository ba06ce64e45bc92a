"""Squeeze-and-Excitation gates: per image, and class-average profiles (the SENet paper's Fig. 6).

`scripts/se_profiles.py` averages every block's gates over the val images of each class and
ships them beside the checkpoint (`se_profiles.safetensors`), so the page shows them offline.
"""
from __future__ import annotations

from pathlib import Path

import torch
from explorer import sidecar
from models import data
from models.probes import se_gates

PROFILES = "se_profiles.safetensors"


def gate_rows(gates: list[torch.Tensor], image: int = 0) -> list[dict]:
    """Long-format rows (block, channel, gate) of one image, for a block-by-channel heat map."""
    return [{"block": b + 1, "channel": c, "gate": float(v)}
            for b, g in enumerate(gates) for c, v in enumerate(g[image].tolist())]


@torch.no_grad()
def class_profiles(model, x_u8: torch.Tensor, y: torch.Tensor, batch: int = 200) -> list[torch.Tensor]:
    """Per block: (classes, channels) mean gate over the images of each class."""
    sums, counts = None, torch.zeros(len(data.CLASSES))
    for i, xb in data.eval_batches(x_u8, model.input_size, model.in_chans, batch):
        g = se_gates(model, xb)
        yb = y[i:i + batch]
        if sums is None:
            sums = [torch.zeros(len(data.CLASSES), t.shape[1]) for t in g]
        for s, t in zip(sums, g):
            s.index_add_(0, yb, t.float())
        counts += torch.bincount(yb, minlength=len(data.CLASSES)).float()
    return [s / counts.clamp(min=1)[:, None] for s in sums]


def save_profiles(path: Path, profiles: list[torch.Tensor], card: dict, meta: dict) -> None:
    sidecar.save(path, {f"block{i + 1}": p.half() for i, p in enumerate(profiles)}, card, meta)


def load_profiles(path: Path, card: dict) -> tuple[list[torch.Tensor], dict] | None:
    """The shipped profiles, or None if absent or built from other weights."""
    with sidecar.opened(path, card) as f:
        if f is None:
            return None
        keys = sorted(f.keys(), key=lambda k: int(k[5:]))
        return [f.get_tensor(k).float() for k in keys], f.meta


def profile_rows(profiles: list[torch.Tensor], block: int) -> list[dict]:
    p = profiles[block - 1]
    return [{"class": data.NAMES[c], "channel": ch, "gate": float(v)}
            for c in range(p.shape[0]) for ch, v in enumerate(p[c].tolist())]


def specificity(profiles: list[torch.Tensor]) -> list[dict]:
    """Per block, how class-specific its gates are: the spread (standard deviation) of each
    channel's class-mean gate across the classes, averaged over channels. The SENet paper's
    Figure 6 shows it small in early blocks (every class excited alike) and large in late ones."""
    return [{"block": b + 1, "spread across classes": float(p.std(0).mean()), "mean gate": float(p.mean())}
            for b, p in enumerate(profiles)]


def sorted_profile_rows(profiles: list[torch.Tensor], block: int) -> list[dict]:
    """(class, channel rank, gate) rows of one block, channels ordered by how much their
    class means differ (most class-specific first), for a classes x channels heat map."""
    p = profiles[block - 1]
    order = p.std(0).argsort(descending=True).tolist()
    return [{"class": data.NAMES[c], "channel": ch, "rank": rank, "gate": float(p[c, ch])}
            for rank, ch in enumerate(order) for c in range(p.shape[0])]


def difference_sentence(rows_a: list[dict], rows_b: list[dict]) -> str:
    """Which blocks' gates differ most between two images, from the gates themselves."""
    per_block: dict[int, list[float]] = {}
    for a, b in zip(rows_a, rows_b):
        per_block.setdefault(a["block"], []).append(abs(a["gate"] - b["gate"]))
    mean = {blk: sum(v) / len(v) for blk, v in per_block.items()}
    shown = {blk: round(v, 2) for blk, v in mean.items()}   # ties as the reader sees them, to 2 decimals

    def blocks(value: float) -> str:
        tied = [str(blk) for blk, v in shown.items() if v == value]
        return f"block {tied[0]}" if len(tied) == 1 else "blocks " + " and ".join([", ".join(tied[:-1]), tied[-1]])

    listing = ", ".join(f"{blk}: {v:.2f}" for blk, v in shown.items())
    return (f"The two images' gates differ most in {blocks(max(shown.values()))} and least in "
            f"{blocks(min(shown.values()))} (mean absolute difference per block: {listing}).")
