"""Representations across the zoo, shipped beside each checkpoint: what the Representations page
reads (CKA between layers of any two models, linear probes per layer, a t-SNE map of val).

    python scripts/representations.py                 # every shipped checkpoint
    python scripts/representations.py --arch alexnet

For the layers `explorer.units.probe_layers` picks, on a fixed seeded subset of 500 val images
(balanced over the classes) and 1,000 train images:

* the centred Gram matrices of each layer's activations over minibatches of 50 val images (their
  upper triangles), from which the page computes minibatch linear CKA (unbiased HSIC) between any
  two models made on the same images;
* a linear probe per layer (logistic regression on the features averaged over positions),
  fitted on the train subset and scored on the val subset;
* a seeded t-SNE of the pre-logit features of the val subset, with each image's class and the
  model's prediction.

Writes checkpoints/<arch>/representations.safetensors, tied to the checkpoint's weights; no
pixels. Needs the data set (--data, $VH_DATA, or ../shared/data/imagenette2-224).
"""
from __future__ import annotations

import time
from pathlib import Path


from sidefiles import common
import models
from explorer import representations as reps


def build(checkpoints: Path, root: Path, archs: list[str] | None = None, n_val: int = reps.N_VAL,
          n_train: int = reps.N_TRAIN) -> dict:
    """Write every (or each named) checkpoint's representation file; {arch: probe top-1 per layer}."""
    archs = archs or [s.name for s in models.list_architectures() if (checkpoints / s.name / "card.json").exists()]
    done = {}
    for arch in archs:
        t0, c0 = time.time(), time.process_time()
        model, card = models.load(arch, checkpoints)
        print(f"{arch}:", flush=True)
        result = reps.compute(arch, model, card, root, n_val, n_train, log=lambda s: print(s, flush=True))
        out = checkpoints / arch / reps.FILE
        reps.save(out, result, card)
        r = reps.load(out, card)
        print(f"  {out.stat().st_size / 2**10:.0f} KiB, {time.time() - t0:.0f} s wall, "
              f"{(time.process_time() - c0) / 60:.2f} CPU min", flush=True)
        for ly, d, a, f in zip(r.layers, r.depth, r.probe_val, r.probe_train):
            print(f"  {ly.label:34s} depth {d:.2f}  probe val {a:5.1f}%  train {f:5.1f}%", flush=True)
        done[arch] = r.probe_val
    return done


def main() -> int:
    ap = common.parser(__doc__)
    ap.add_argument("--val", type=int, default=reps.N_VAL, help="val images (CKA, map, probe scores)")
    ap.add_argument("--train", type=int, default=reps.N_TRAIN, help="train images the probes are fitted on")
    args = ap.parse_args()
    t0, c0 = time.time(), time.process_time()
    build(args.checkpoints, common.data_root(args), args.arch, args.val, args.train)
    print(f"all: {time.time() - t0:.0f} s wall, {(time.process_time() - c0) / 60:.2f} CPU min", flush=True)
    return 0

