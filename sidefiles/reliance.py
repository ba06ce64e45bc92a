"""What each shipped network relies on, beside each checkpoint: what the Reliance page draws for the
whole zoo (patch shuffling and dropping, FGSM and PGD, Fourier noise, effective receptive fields;
`explorer.reliance_zoo` says on which images and with which settings).

    python scripts/reliance.py                   # every shipped checkpoint, then the transfer matrix
    python scripts/reliance.py --arch vgg16      # one model (the transfer matrix is remade for all)
    python scripts/reliance.py --no-transfer
    python scripts/reliance.py --transfer-only   # only the transfer matrix

Writes checkpoints/<arch>/reliance.safetensors (tied to the weights) and checkpoints/transfer.json
(each model's weights named by their sha256), over the models that have a reliance file made from
their weights, so the matrix holds the models the page's other charts hold. Needs the data set (--data, $VH_DATA, or
../shared/data/imagenette2-224).
"""
from __future__ import annotations

import time
from pathlib import Path


from sidefiles import common
import models
from explorer import reliance_zoo as rz
from models import data


def shipped(checkpoints: Path) -> list[str]:
    return [s.name for s in models.list_architectures() if (checkpoints / s.name / "card.json").exists()]


def build(checkpoints: Path, root: Path, archs: list[str] | None = None, transfer: bool = True,
          n_images: int = rz.N_IMAGES, freqs=rz.FREQS) -> dict:
    """Write each named (default: every) checkpoint's reliance file, then the zoo's transfer matrix;
    {arch: seconds}. Fewer images or frequencies: the tests' quick run."""
    done = {}
    for arch in shipped(checkpoints) if archs is None else archs:
        t0, c0 = time.time(), time.process_time()
        model, card = models.load(arch, checkpoints)
        print(f"{arch}:", flush=True)
        result = rz.compute(arch, model, card, root, n_images, freqs, log=lambda s: print(s, flush=True))
        rz.save(checkpoints / arch / rz.FILE, result, card, getattr(model, "input_size", rz.SIZE))
        r = rz.load(checkpoints / arch / rz.FILE, card)
        radii = ", ".join(f"{ly['label']} {r.radius(i):.0f}/{r.radius(i, random=True):.0f}"
                          for i, ly in enumerate(r.layers))
        print(f"  erf 90% radius trained/random px: {radii}", flush=True)
        print(f"  {time.time() - t0:.0f} s wall, {(time.process_time() - c0) / 60:.2f} CPU min", flush=True)
        done[arch] = round(time.time() - t0, 1)
    if transfer:   # over the models whose reliance file is made from their weights: the page's charts' models
        t0 = time.time()
        loaded = {a: models.load(a, checkpoints) for a in shipped(checkpoints)}
        loaded = {a: (m, c) for a, (m, c) in loaded.items() if rz.load(checkpoints / a / rz.FILE, c) is not None}
        archs = list(loaded)
        x, y, files = rz.subset(root, n_images)   # the images the FGSM and PGD curves used: the first N_PGD
        x, y, files = x[:rz.N_PGD], y[:rz.N_PGD], files[:rz.N_PGD]
        matrix = rz.transfer({a: m for a, (m, _) in loaded.items()}, x, y, log=lambda s: print(s, flush=True))
        rz.save_transfer(checkpoints / rz.TRANSFER, matrix, {a: c for a, (_, c) in loaded.items()}, files,
                         data.fingerprint(root))
        print(f"transfer over {len(archs)} models: {time.time() - t0:.0f} s", flush=True)
    return done


def main() -> int:
    ap = common.parser(__doc__)
    ap.add_argument("--no-transfer", action="store_true", help="skip the zoo's transfer matrix")
    ap.add_argument("--transfer-only", action="store_true", help="only the transfer matrix")
    args = ap.parse_args()
    t0, c0 = time.time(), time.process_time()
    build(args.checkpoints, common.data_root(args), [] if args.transfer_only else args.arch, not args.no_transfer)
    print(f"all: {time.time() - t0:.0f} s wall, {(time.process_time() - c0) / 60:.2f} CPU min", flush=True)
    return 0

