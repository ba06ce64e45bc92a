"""The ViT paper's Figure 7 on our own checkpoints, shipped beside each of them.

    python scripts/attention_figures.py             # every shipped ViT and MLP-Mixer
    python scripts/attention_figures.py --per-class 50

Writes checkpoints/<arch>/attention_figures.safetensors, tied to the checkpoint's weights:

* ViT: `distance` (layers, heads), the mean attention distance in pixels over the first
  --per-class val images of each class (Fig. 7, right), and `position_similarity` (N, N),
  the cosine similarity of the learned patch position embeddings (Fig. 7, centre);
* MLP-Mixer: `distance` (blocks, 1), the same measure on each block's token-mixing weights.

Prints the time each model took (a ViT over 500 val images: well under a minute on 2 cores).
"""
from __future__ import annotations

import time
from pathlib import Path



from sidefiles import common
import models
from explorer import attention
from explorer.robustness import subset
from models import data
from models.probes import attention_modules, patch_grid, prefix_tokens


def build(checkpoints: Path, root: Path | None, archs: list[str] | None = None, per_class: int = 50) -> list[str]:
    archs = archs or [s.name for s in models.list_architectures() if (checkpoints / s.name / "card.json").exists()]
    done = []
    for arch in archs:
        t0 = time.time()
        model, card = models.load(arch, checkpoints)
        if attention_modules(model):
            if root is None:
                raise SystemExit("no Imagenette data found: pass --data DIR or set VH_DATA")
            grid, patch = patch_grid(model), int(model.stem.kernel_size[0])
            x_u8, y = data.load_split(root, "val", data.eval_store_size(model.input_size))
            keep = subset(y, per_class)
            total, n = None, 0
            for _, xb in data.eval_batches(x_u8[keep], model.input_size, model.in_chans, batch=50):
                att = attention.capture_attention(model, xb)
                d = attention.mean_attention_distance(att, prefix_tokens(model), grid, patch) * len(xb)
                total = d if total is None else total + d
                n += len(xb)
            figures = {"distance": total / n, "position_similarity": attention.position_similarity(model)}
            meta = {"kind": "attention", "images": n, "per_class": per_class, "grid": list(grid), "patch": patch,
                    "uniform_distance": attention.uniform_distance(grid, patch),
                    "data_fingerprint": data.fingerprint(root)}
        elif attention.is_mixer(model):
            grid, patch = patch_grid(model), int(model.stem.kernel_size[0])
            figures = {"distance": attention.token_mixing_distance(model)[:, None]}
            meta = {"kind": "token_mixing", "grid": list(grid), "patch": patch,
                    "uniform_distance": attention.uniform_distance(grid, patch)}
        else:
            continue
        out = checkpoints / arch / attention.FIGURES
        attention.save_figures(out, figures, card, meta)
        print(f"{arch}: {meta['kind']} distances {[round(float(v), 1) for v in figures['distance'].mean(-1)]} px "
              f"(uniform {meta['uniform_distance']:.1f}) -> {out.name} in {time.time() - t0:.0f} s", flush=True)
        done.append(arch)
    if not done:
        print(f"no ViT or MLP-Mixer among {', '.join(archs)}: no attention figures to make")
    return done


def main() -> int:
    return common.main(__doc__, build, per_class=50)
