"""What the scripts that refresh the shipped side files share: their command line and where
the data is.

    ap = common.parser(__doc__)                 # --arch (repeatable), --checkpoints, --data
    args = ap.parse_args(); root = common.data_root(args)
"""
from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# the zoo-wide side files beside the model folders (retrieval gallery, robustness rows, transfer
# matrix) and the GPU machine's record of making them: a device bundle carries them
SHARED_FILES = ("gallery.safetensors", "robustness.json", "transfer.json", "device_side_files.json")


def parser(doc: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", action="append", help="architecture (repeatable); default: every shipped checkpoint")
    ap.add_argument("--checkpoints", type=Path, default=REPO / "checkpoints")
    ap.add_argument("--data", default="", help="folder with train/ and val/ (default: $VH_DATA or ../shared/data)")
    return ap


def data_root(args) -> Path:
    from models import data
    root = data.resolve_root(args.data) if args.data else data.default_root()
    if root is None:
        raise SystemExit("no Imagenette data found: pass --data DIR or set VH_DATA "
                         "(scripts/download_data.py fetches it)")
    return root


def main(doc: str, build, per_class: int | None = None) -> int:
    """The whole command line of a side-file script whose builder takes (checkpoints, root, archs)
    and, when `per_class` is given, a --per-class count with that default."""
    ap = parser(doc)
    if per_class is not None:
        ap.add_argument("--per-class", type=int, default=per_class)
    args = ap.parse_args()
    build(args.checkpoints, data_root(args), args.arch, *([args.per_class] if per_class is not None else []))
    return 0
