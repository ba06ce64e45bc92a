"""What a finished run leaves: checkpoints/<arch>/ with the weights, the card (recipe,
protocol, epochs, sizes, training compute, hardware, provenance, data fingerprint), the
metrics, and the first-layer kernels at chosen epochs; scored on val (fp16, then stored int8
and scored again) unless the run held out part of train.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch

import models
from explorer import filters
from models import data
from models.checkpoint import sha256_file
from training.config import Config, command, recipe
from training.evaluation import evaluate_checkpoint, quantize_checkpoint
from training.runstate import hardware


def stem_weights(model) -> torch.Tensor:
    """The first layer's weights as the checkpoint stores them: fp16, contiguous, on the CPU."""
    return model.stem.weight.detach().to("cpu", torch.float16, copy=True).contiguous()


def export(cfg: Config, model, rows, root, device, world, commit: str, n_train: int, n_eval: int,
           snapshots: dict, precision_path: str = "fp32", teacher_card: dict | None = None,
           run_facts: dict | None = None) -> Path:
    """Write checkpoints/<arch>/ (weights, card, metrics.csv, filters.safetensors); evaluate.py
    fills the val metrics, here unless the run held out part of train (then val stays unread).
    With --storage int8 the weights are saved fp16, scored, then stored int8 and scored again
    (the card keeps both); without a val score (holdout, --evaluate false) they stay fp16 for
    scripts/release_zoo.py to quantise against the canonical val split."""
    run_facts = run_facts or {}

    out = Path(cfg.export) / cfg.arch
    model = model.float().to(memory_format=torch.contiguous_format).cpu()
    model.arch, model.preset_name = cfg.arch, cfg.preset
    out.mkdir(parents=True, exist_ok=True)
    snaps = filters.save_snapshots(snapshots, out / filters.SNAPSHOTS, cfg.arch, model.stem_path)
    card = {
        "classes": [{"wnid": w, "name": n} for w, n in data.CLASSES],
        "num_classes": len(data.CLASSES),
        "mean": list(data.MEAN), "std": list(data.STD),
        "preprocess": data.describe_preprocess(model.input_size, model.in_chans),
        "recipe": recipe(cfg),
        **({"protocol": cfg.protocol} if cfg.protocol else {}),
        "epochs": rows[-1]["epoch"],
        "train_sizes": [int(r.get("size") or model.input_size) for r in rows],
        **({"train_compute": run_facts["compute"]} if run_facts.get("compute") else {}),
        "wall_time_s": rows[-1]["wall_time_s"],
        "train_img_s": max(r["img_s"] for r in rows),
        "hardware": hardware(device, world),
        "precision": precision_path,
        **({"fast_paths_off": run_facts["fallbacks"]} if run_facts.get("fallbacks") else {}),
        **({"fitted_to_deadline": run_facts["fitted"]} if run_facts.get("fitted") else {}),
        **({"teacher": teacher_card} if teacher_card else {}),
        "code_commit": commit,
        "dataset": {"name": "imagenette", "folder": Path(root).name, "train_images": n_train,
                    **({"fingerprint": data.fingerprint(root, ["train"]), "fingerprint_splits": ["train"]}
                       if cfg.holdout > 0 else {"fingerprint": data.fingerprint(root)})},
        "filter_snapshots": {"file": snaps.name, "sha256": sha256_file(snaps), "layer": model.stem_path,
                             "epochs": sorted(snapshots)},
        "command": command(cfg, run_facts.get("fitted")),
        "trained_at": time.strftime("%Y-%m-%d"),
    }
    if cfg.holdout > 0:
        card["holdout"] = {
            "fraction": cfg.holdout, "seed": cfg.holdout_seed, "images": n_eval,
            "top1": rows[-1]["holdout_top1"], "top5": rows[-1]["holdout_top5"],
            **({"top1_flip": run_facts["flip_top1"]} if run_facts.get("flip_top1") is not None else {}),
            "note": "trained on train minus this held-out slice, which was scored every epoch instead of "
                    "val; val was not read: its metrics come from scripts/evaluate.py",
        }
    models.save(model, out, card, storage="float16")
    shutil.copyfile(Path(cfg.out) / f"{cfg.arch}-{cfg.preset}" / "metrics.csv", out / "metrics.csv")
    if cfg.holdout > 0:
        print(f"val not read (holdout run): fill the card's metrics with "
              f"python scripts/evaluate.py --arch {cfg.arch}", flush=True)
    elif cfg.evaluate and cfg.storage == "int8":
        quantize_checkpoint(cfg.arch, cfg.export, root, device=str(device),
                            limit_per_class=cfg.val_limit_per_class or None)
    elif cfg.evaluate:
        evaluate_checkpoint(cfg.arch, cfg.export, root, device=str(device),
                            limit_per_class=cfg.val_limit_per_class or None)
    print(f"exported {out}", flush=True)
    return out
