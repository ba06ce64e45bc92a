"""Download Imagenette through torchvision (needs the internet; the app and tests never do).

    python scripts/download_data.py --root ~/data --size 160px   # full | 320px | 160px
    python scripts/train.py --arch resnet18 --data ~/data
"""
from __future__ import annotations

import argparse
from pathlib import Path

from models import data

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, type=Path)
    ap.add_argument("--size", default="160px", choices=["full", "320px", "160px"])
    args = ap.parse_args()
    print(f"Imagenette is in {data.download(args.root, args.size)}")
