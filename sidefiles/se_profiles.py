"""Class-average Squeeze-and-Excitation gates over the val split, shipped beside the checkpoint.

    python scripts/se_profiles.py                 # every shipped model that has SE blocks

Writes checkpoints/<arch>/se_profiles.safetensors: per block, a (classes, channels) fp16
matrix of mean gates, tied to the checkpoint's weights by their sha256.
"""
from __future__ import annotations

from pathlib import Path


from sidefiles import common
import models
from explorer import se
from models import data
from models.probes import se_modules

def build(checkpoints: Path, root: Path, archs: list[str] | None = None) -> list[str]:
    archs = archs or [s.name for s in models.list_architectures() if (checkpoints / s.name / "card.json").exists()]
    done = []
    for arch in archs:
        model, card = models.load(arch, checkpoints)
        if not se_modules(model):
            continue
        x, y = data.load_split(root, "val", data.eval_store_size(model.input_size))
        profiles = se.class_profiles(model, x, y)
        out = checkpoints / arch / se.PROFILES
        se.save_profiles(out, profiles, card, {"val_images": len(y), "blocks": len(profiles),
                                               "data_fingerprint": data.fingerprint(root)})
        print(f"{arch}: {len(profiles)} blocks over {len(y)} val images -> {out}")
        done.append(arch)
    if not done:
        print(f"no SE blocks in {', '.join(archs)}: no SE profiles to make")
    return done


def main() -> int:
    return common.main(__doc__, build)
