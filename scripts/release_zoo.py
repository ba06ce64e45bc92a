"""Release trained checkpoints: put them in place, store them int8, evaluate them, refresh
every side file and the README table, stage it all, and report what the submission will
count, before anything is committed.

    python scripts/release_zoo.py --from ../returned         # DIR/<arch>/ checkpoints, or zoo-*.tar.part* bundles
    python scripts/release_zoo.py --arch alexnet --arch se_resnet18   # re-release what checkpoints/ holds
    python scripts/release_zoo.py --from ../zoo-release/next         # the part held back last time

A submission counts its diffs as text (`git diff --binary`: a binary file about 1.3x its
bytes, a replaced one its old bytes too) against 256 MiB. Every released model is staged
and measured with `git diff --binary --cached`; above --limit_mib (default 200) the release
is cut into parts of whole models, the biggest top-1 gains first: the first part stays
staged, the others move with their side files to --hold (default ../zoo-release/next/,
outside the repo) and their old checkpoints come back, so the next submission starts with
`--from ../zoo-release/next`. Nothing is committed here. The per-step times and sizes go to
--report (default ../zoo-release/report.json) and are printed.

Steps, per model: copy into checkpoints/<arch>/ (the old folder, with side files made from
the old weights, is removed), then `evaluate.quantize_checkpoint` (top-1 before and after
int8; a checkpoint that is int8 already is just evaluated), then, on a CPU with native bf16,
`evaluate.measure_bf16` (whether the app may serve it in bf16). Then, once for all: retrieval
gallery and indexes, SE profiles, unit tops, attention figures, robustness (rows of models
not released are kept), representations (CKA Gram matrices, probes, map), reliance (and the
zoo's transfer matrix), the README's zoo table.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import models
from models.checkpoint import CARD, CheckpointError
from sidefiles import attention, common, reliance, representations, retrieval, robustness, se_profiles, units, zoo_table
from training.evaluation import evaluate_checkpoint, measure_bf16, quantize_checkpoint

REPO = Path(__file__).resolve().parent.parent

MIB = 2 ** 20


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def counted_bytes(cwd: Path, *paths: str) -> int:
    """What the staged change counts in a submission: `git diff --binary --cached | wc -c`."""
    out = subprocess.run(["git", "diff", "--binary", "--cached", "--", *paths], cwd=cwd, check=True,
                         capture_output=True)
    return len(out.stdout)


def unpack_bundles(src: Path) -> Path:
    """A folder of zoo-*.tar.part* (scripts/train_zoo.py --bundle) unpacked to a temporary
    folder; its checkpoints/ is returned. A folder of checkpoints is returned as it is."""
    parts = sorted(src.glob("zoo-*.tar.part*"))
    if not parts:
        return src
    out = Path(tempfile.mkdtemp(prefix="zoo-bundle-"))
    for prefix in sorted({p.name.split(".part")[0] for p in parts}):
        cat = out / prefix
        with open(cat, "wb") as f:
            for p in sorted(src.glob(prefix + ".part*")):
                f.write(p.read_bytes())
        with tarfile.open(cat) as tar:
            tar.extractall(out, filter="data")  # refuses absolute paths and links out of `out`
        cat.unlink()
    return out / "checkpoints"


def old_top1(arch: str, checkpoints: Path, repo: Path) -> float:
    """The val top-1 the repo ships now for `arch` (0 when untrained): what a release gains over."""
    try:
        card = json.loads(git(repo, "show", f"HEAD:{checkpoints.relative_to(repo).as_posix()}/{arch}/{CARD}"))
        return float(card.get("metrics", {}).get("val_top1", 0.0))
    except (subprocess.CalledProcessError, ValueError):
        return 0.0


def place(src: Path, checkpoints: Path, only: list[str] | None = None) -> list[str]:
    """Copy every src/<arch>/ with a card (of `only`, when given) into checkpoints/<arch>/,
    replacing the folder. A model left out is left alone: its shipped folder and side files stay."""
    archs = []
    for spec in models.list_architectures():
        d = src / spec.name
        if not (d / CARD).exists() or (only and spec.name not in only):
            continue
        dest = checkpoints / spec.name
        if dest.resolve() != d.resolve():
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(d, dest)
        archs.append(spec.name)
    return archs


def refresh_side_files(checkpoints: Path, root: Path, archs: list[str], readme: Path, timings: dict) -> None:
    steps = [
        ("retrieval (build_index.py)", lambda: retrieval.build(checkpoints, root, archs)),
        ("SE profiles (se_profiles.py)", lambda: se_profiles.build(checkpoints, root, archs)),
        ("units (units.py)", lambda: units.build(checkpoints, root, archs)),
        ("attention figures (attention_figures.py)", lambda: attention.build(checkpoints, root, archs)),
        ("robustness (robustness.py)", lambda: robustness.build(checkpoints, root, archs)),
        ("representations (representations.py)", lambda: representations.build(checkpoints, root, archs)),
        ("reliance (reliance.py)", lambda: reliance.build(checkpoints, root, archs)),
        ("zoo table (zoo_table.py)", lambda: zoo_table.main(["--readme", str(readme), "--checkpoints", str(checkpoints)])),
    ]
    for name, fn in steps:
        t0 = time.process_time(), time.time()
        fn()
        timings[name] = {"cpu_min": round((time.process_time() - t0[0]) / 60, 2),
                         "wall_min": round((time.time() - t0[1]) / 60, 2)}
        print(f"== {name}: {timings[name]['wall_min']} min wall, {timings[name]['cpu_min']} CPU min", flush=True)


def split(sizes: dict[str, int], gains: dict[str, float], shared: int, limit: int) -> tuple[list[str], list[str]]:
    """(first part, the rest): whole models, biggest top-1 gain first, while the counted total
    stays under `limit`; a model that does not fit is passed over for smaller ones after it."""
    first, rest, total = [], [], shared
    for arch in sorted(sizes, key=lambda a: (-gains[a], a)):
        if total + sizes[arch] <= limit:
            first.append(arch)
            total += sizes[arch]
        else:
            rest.append(arch)
    return first, rest


def hold_back(archs: list[str], checkpoints: Path, repo: Path, hold: Path) -> None:
    """Move `archs` (with their side files) to `hold` and put back what HEAD ships for them."""
    hold.mkdir(parents=True, exist_ok=True)
    rel = checkpoints.relative_to(repo).as_posix()
    for arch in archs:
        shutil.rmtree(hold / arch, ignore_errors=True)
        shutil.move(str(checkpoints / arch), str(hold / arch))
        git(repo, "reset", "-q", "--", f"{rel}/{arch}")
        if git(repo, "ls-tree", "HEAD", f"{rel}/{arch}/").strip():
            git(repo, "checkout", "HEAD", "--", f"{rel}/{arch}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from", dest="src", type=Path, help="returned checkpoints (DIR/<arch>/) or bundle parts")
    ap.add_argument("--arch", action="append", help="release only these (default: all found)")
    ap.add_argument("--checkpoints", type=Path, default=REPO / "checkpoints")
    ap.add_argument("--data", default="", help="folder with train/ and val/ (default: $VH_DATA or ../shared/data)")
    ap.add_argument("--limit_mib", type=float, default=200.0, help="most a submission's staged diff may count")
    ap.add_argument("--hold", type=Path, default=REPO.parent / "zoo-release" / "next")
    ap.add_argument("--report", type=Path, default=REPO.parent / "zoo-release" / "report.json")
    ap.add_argument("--no_side_files", action="store_true", help="skip the side files (a size check only)")
    args = ap.parse_args(argv)
    from models import precision
    root = common.data_root(args)
    ck = args.checkpoints.resolve()
    repo = Path(git(ck, "rev-parse", "--show-toplevel").strip()).resolve()
    readme = repo / "README.md"
    t_start = time.time()
    report: dict = {"started": time.strftime("%Y-%m-%d %H:%M"), "models": {}, "timings": {}}

    archs = place(unpack_bundles(args.src.resolve()), ck, args.arch) if args.src else []
    if args.arch:
        archs = [a for a in (archs or args.arch) if a in args.arch]
    if not archs:
        print("nothing to release: pass --from DIR (returned checkpoints) or --arch NAME")
        return 1
    print(f"releasing {', '.join(archs)}", flush=True)

    t0 = time.process_time(), time.time()
    for arch in archs:
        try:
            card = models.read_card(arch, ck)
            if card.get("storage") == "int8":
                after = evaluate_checkpoint(arch, ck, root)["val_top1"]
                q = {"before": card.get("full_precision", {}).get("val_top1"), "after": after}
            else:
                q = quantize_checkpoint(arch, ck, root)
        except CheckpointError as e:
            print(f"{arch}: {e}")
            return 1
        report["models"][arch] = {"top1_int8": q["after"], "top1_before_int8": q["before"],
                                  "top1_shipped_before": old_top1(arch, ck, repo),
                                  "hardware": models.read_card(arch, ck).get("hardware", "")}
    report["timings"]["evaluation, before and after int8 (evaluate.py)"] = {
        "cpu_min": round((time.process_time() - t0[0]) / 60, 2), "wall_min": round((time.time() - t0[1]) / 60, 2)}
    if precision.cpu_bf16():  # which models the app may serve in bf16 (models.precision)
        t0 = time.process_time(), time.time()
        for arch in archs:
            report["models"][arch]["served"] = measure_bf16(arch, ck, root)["served"]
        report["timings"]["bf16 agreement and speed (evaluate.py --bf16)"] = {
            "cpu_min": round((time.process_time() - t0[0]) / 60, 2), "wall_min": round((time.time() - t0[1]) / 60, 2)}

    if not args.no_side_files:
        refresh_side_files(ck, root, archs, readme, report["timings"])

    rel = ck.relative_to(repo).as_posix()
    git(repo, "add", "-A", "--", rel, "README.md")
    sizes = {a: counted_bytes(repo, f"{rel}/{a}") for a in archs}
    total = counted_bytes(repo)
    shared = total - sum(sizes.values())
    gains = {a: report["models"][a]["top1_int8"] - report["models"][a]["top1_shipped_before"] for a in archs}
    for a in archs:
        report["models"][a]["counted_mib"] = round(sizes[a] / MIB, 2)
        report["models"][a]["disk_mib"] = round(sum(f.stat().st_size for f in (ck / a).iterdir()) / MIB, 2)
    limit = int(args.limit_mib * MIB)
    held = []
    if total > limit:
        first, held = split(sizes, gains, shared, limit)
        print(f"staged {total / MIB:.1f} MiB counted, over {args.limit_mib:.0f}: this submission takes "
              f"{', '.join(first)}; {', '.join(held)} wait in {args.hold}", flush=True)
        hold_back(held, ck, repo, args.hold)
        kept = [a for a in archs if a not in held]
        if not args.no_side_files:  # shared files (robustness rows, README table) without the held models
            robustness.build(ck, root, kept)
            zoo_table.main(["--readme", str(readme), "--checkpoints", str(ck)])
        git(repo, "add", "-A", "--", rel, "README.md")
        total = counted_bytes(repo)
    report.update({"released": [a for a in archs if a not in held], "held_back": held,
                   "held_in": str(args.hold) if held else "", "counted_mib": round(total / MIB, 2),
                   "limit_mib": args.limit_mib, "wall_min": round((time.time() - t_start) / 60, 2)})
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=1) + "\n")
    print(f"{'arch':13s} {'top-1 int8':>10s} {'before':>7s} {'shipped':>8s} {'disk MiB':>9s} {'counted':>8s}")
    for a, m in report["models"].items():
        print(f"{a:13s} {m['top1_int8']:10.2f} {m['top1_before_int8'] or 0:7.2f} {m['top1_shipped_before']:8.2f} "
              f"{m['disk_mib']:9.2f} {m['counted_mib']:8.2f}" + ("  (held back)" if a in held else ""))
    print(f"staged change counts {total / MIB:.2f} MiB (git diff --binary --cached | wc -c); limit "
          f"{args.limit_mib:.0f} MiB; nothing committed; report {args.report}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
