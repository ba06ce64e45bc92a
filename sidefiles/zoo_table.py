"""Write the README's zoo table from the registry and the checkpoint cards (never typed).

    python scripts/zoo_table.py          # rewrite the table between the README's markers
    python scripts/zoo_table.py --check  # exit 1 if the README's table is out of date

Params and GMACs are computed from the explorer preset; accuracy (of the int8 weights that
ship, and before quantising where the card has it), epochs, wall time,
hardware and the training command come from each card; untrained architectures say so,
with the command that trains them.
"""
from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

import models
from models.checkpoint import CheckpointError
from models.cost import arch_cost

START, END = "<!-- zoo:start -->", "<!-- zoo:end -->"


def table(checkpoints_dir: Path = REPO / "checkpoints") -> str:
    head = ("| year | architecture | params | GMACs | val top-1 | val top-5 | before int8 | epochs | wall time "
            "| hardware | train command |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
    lines = [head]
    for s in models.list_architectures():
        cost = arch_cost(s.name)
        try:
            card = models.read_card(s.name, checkpoints_dir)
        except CheckpointError:
            card = None
        cmd = f"`python scripts/train.py --arch {s.name}`"
        if card and card.get("metrics"):
            m = card["metrics"]
            before = card.get("full_precision", {}).get("val_top1")
            cells = [f"{m['val_top1']:.2f}", f"{m['val_top5']:.2f}", "" if before is None else f"{before:.2f}",
                     str(card.get("epochs", "")),
                     f"{card.get('wall_time_s', 0) / 60:.1f} min", card.get("hardware", ""),
                     f"`{card.get('command', cmd.strip('`'))}`"]
        else:
            cells = ["not trained yet", "", "", "", "", "", cmd]
        lines.append(f"| {s.year} | {s.title} | {cost['params'] / 1e6:.2f}M | {cost['gmacs']:.3f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(readme: str, body: str) -> str:
    if START not in readme or END not in readme:
        raise SystemExit(f"README.md lacks the {START} ... {END} markers")
    pre, rest = readme.split(START, 1)
    _, post = rest.split(END, 1)
    return f"{pre}{START}\n{body}\n{END}{post}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--readme", type=Path, default=REPO / "README.md")
    ap.add_argument("--checkpoints", type=Path, default=REPO / "checkpoints")
    args = ap.parse_args(argv)
    old = args.readme.read_text()
    new = render(old, table(args.checkpoints))
    if args.check:
        if new != old:
            print("README.md's zoo table is out of date: run python scripts/zoo_table.py")
            return 1
        print("README.md's zoo table is up to date")
        return 0
    args.readme.write_text(new)
    print(f"wrote the zoo table into {args.readme}")
    return 0

