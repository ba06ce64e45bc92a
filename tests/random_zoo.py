"""Random-weight checkpoints, evaluated on a given (tiny) data folder, with every side file
the pages read (retrieval, SE profiles, units, attention figures, robustness, representations)
built from them.

Used by the AppTest fixture (a few architectures) and by the browser test of the whole
14-model zoo's layout; also by hand, to look at the app with every architecture loaded:

    python tests/random_zoo.py --out /tmp/zoo14 --data ../shared/data/imagenette2-224
    VH_CHECKPOINTS=/tmp/zoo14 streamlit run app.py

Their accuracies are those of random networks (about 10%): for layout, never for results.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

import models

REPO = Path(__file__).resolve().parent.parent


def build(dest: Path, data_root: Path, archs: list[str] | None = None, per_class: int = 3,
          reliance: bool = False) -> Path:
    """Checkpoints of `archs` (default: all 14) in `dest`, scored on `data_root`'s val split,
    and every side file built from them on that data (the reliance files, on 10 images and a 3x3
    grid of frequencies, when asked: they cost a minute for the 14)."""
    from sidefiles import attention as attention_figures
    from sidefiles import retrieval as build_index
    from sidefiles import representations as representations_script
    from sidefiles import robustness as robustness_script
    from sidefiles import se_profiles
    from sidefiles import units as units_script
    from training.evaluation import evaluate_checkpoint
    archs = archs or [s.name for s in models.list_architectures()]
    for i, arch in enumerate(archs):
        torch.manual_seed(i)
        m = models.create(arch)
        models.save(m, dest / arch, {"num_classes": 10, "epochs": 2, "title": models.get_spec(arch).title,
                                     "classes": [{"wnid": w, "name": n} for w, n in models.data.CLASSES]})
        (dest / arch / "metrics.csv").write_text("epoch,train_loss,val_top1\n1,2.3,10.0\n2,2.1,20.0\n")
        evaluate_checkpoint(arch, dest, data_root)
    build_index.build(dest, data_root, per_class=per_class, k=3)
    se_profiles.build(dest, data_root)
    units_script.build(dest, data_root)
    attention_figures.build(dest, data_root, per_class=1)
    robustness_script.build(dest, data_root, per_class=1)
    representations_script.build(dest, data_root)
    if reliance:
        from sidefiles import reliance as reliance_script
        reliance_script.build(dest, data_root, n_images=10, freqs=(-48, 0, 48))
    return dest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=None, help="default: a tiny copy of the shared data (2 val a class)")
    ap.add_argument("--archs", default="", help="comma-separated (default: all 14)")
    args = ap.parse_args()
    root = args.data
    if root is None:
        from conftest import make_tiny_imagenette
        root = make_tiny_imagenette(Path(tempfile.mkdtemp(prefix="imagenette-tiny-")), 6, 2)
    build(args.out, root, [a for a in args.archs.split(",") if a] or None)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
