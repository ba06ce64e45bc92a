"""Write the app's shipped sample set: two Imagenette val images per class, small JPEGs.

    python scripts/make_samples.py [--data DIR] [--per-class 2] [--side 160]

Picks evenly spaced images of each class (deterministic) and names them <class>-<n>.jpg.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from models import data

REPO = Path(__file__).resolve().parent.parent

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="")
    ap.add_argument("--per-class", type=int, default=2)
    ap.add_argument("--side", type=int, default=160)
    ap.add_argument("--out", type=Path, default=REPO / "samples")
    args = ap.parse_args()
    root = data.resolve_root(args.data) if args.data else data.default_root()
    paths, labels = data.list_split(root, "val")
    args.out.mkdir(exist_ok=True)
    for label, name in enumerate(data.NAMES):
        mine = [p for p, y in zip(paths, labels) if y == label]
        for n in range(args.per_class):
            src = mine[(n * 2 + 1) * len(mine) // (args.per_class * 2)]
            with Image.open(src) as im:
                im = im.convert("RGB")
                im.thumbnail((args.side, args.side), Image.BICUBIC)
                im.save(args.out / f"{name.replace(' ', '_')}-{n + 1}.jpg", quality=85, optimize=True)
    print(f"wrote {len(list(args.out.glob('*.jpg')))} samples to {args.out}")
