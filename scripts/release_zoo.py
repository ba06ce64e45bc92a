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

Side files made on the GPU machine (`--device`, below) come back with the checkpoints: a step is
skipped for a model whose file was made from the weights it ships (`explorer.sidecar`), the
robustness rows and the transfer matrix are taken when they were made from the same weights,
and each such model is re-scored on val here and refused (held in --hold/refused) when its
top-1 differs from the card's, the device's, by more than --agree_points.

    python scripts/release_zoo.py --device --checkpoints DIR --data DATA   # on the GPU machine

`--device`: no git, no bf16 (a CPU measure), no README; every side file that depends only on
the weights and the data, written beside the checkpoints in DIR, for the bundles.
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
from models import data
from models.checkpoint import CARD, CheckpointError
from explorer import attention as ex_attention
from explorer import reliance_zoo, sidecar
from explorer import representations as ex_representations
from explorer import retrieval as ex_retrieval
from explorer import robustness as ex_robustness
from explorer import se as ex_se
from explorer import units as ex_units
from sidefiles import attention, common, reliance, representations, retrieval, robustness, se_profiles, units, zoo_table
from training.evaluation import evaluate_checkpoint, measure_bf16, quantize_checkpoint

REPO = Path(__file__).resolve().parent.parent

MIB = 2 ** 20
# the per-model file of each side-file step (each tied to the weights it was made from)
STEP_FILES = {"retrieval": ex_retrieval.INDEX, "SE profiles": ex_se.PROFILES, "units": ex_units.UNITS,
              "attention figures": ex_attention.FIGURES, "representations": ex_representations.FILE,
              "reliance": reliance_zoo.FILE}


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


def made_elsewhere(checkpoints: Path, archs: list[str]) -> dict[str, set[str]]:
    """Per step, the models whose file is there already and was made from the weights they ship
    (the GPU machine's side files, `--device`)."""
    cards = {a: models.read_card(a, checkpoints) for a in archs}
    made = {step: {a for a in archs if sidecar.matches(checkpoints / a / name, cards[a])}
            for step, name in STEP_FILES.items()}
    rows = (ex_robustness.load(checkpoints / ex_robustness.ROBUSTNESS) or {}).get("models", {})
    made["robustness"] = {a for a in archs if (rows.get(a) or {}).get("weights_sha256") == sidecar.weights_sha(cards[a])}
    return made


def take_shared(src: Path, checkpoints: Path, archs: list[str], fingerprint: str) -> dict:
    """The device's robustness rows of `archs` (when made from the weights they ship, on the same
    images) go into checkpoints/robustness.json, whose other rows stay; its transfer matrix is
    taken when it covers exactly the models that will have a reliance file, from the weights they
    ship. Returns the models whose rows were taken and whether the matrix was."""
    taken = {"robustness": [], "transfer": False}
    theirs = ex_robustness.load(src / ex_robustness.ROBUSTNESS)
    if theirs:
        path = checkpoints / ex_robustness.ROBUSTNESS
        ours = ex_robustness.load(path) if path.exists() else None
        same_images = ours is None or all(ours.get(k) == theirs.get(k) for k in ("per_class", "data_fingerprint"))
        rows = {a: m for a, m in theirs.get("models", {}).items()
                if a in archs and m.get("weights_sha256") == sidecar.weights_sha(models.read_card(a, checkpoints))}
        if same_images and rows:
            merged = dict(ours or {k: v for k, v in theirs.items() if k != "models"})
            merged["models"] = {**(ours or {}).get("models", {}), **rows}
            path.write_text(json.dumps(merged, indent=1) + "\n")
            taken["robustness"] = sorted(rows)
    if (src / reliance_zoo.TRANSFER).exists():
        shipped = reliance.shipped(checkpoints)
        cards = {a: models.read_card(a, checkpoints) for a in shipped}
        with_file = {a for a in shipped if sidecar.matches(checkpoints / a / reliance_zoo.FILE, cards[a])}
        matrix = reliance_zoo.load_transfer(src / reliance_zoo.TRANSFER, cards)
        if matrix and set(matrix["models"]) == with_file == set(shipped) and matrix.get("data_fingerprint") == fingerprint:
            shutil.copyfile(src / reliance_zoo.TRANSFER, checkpoints / reliance_zoo.TRANSFER)
            taken["transfer"] = True
    return taken


def refresh_side_files(checkpoints: Path, root: Path, archs: list[str], readme: Path | None, timings: dict,
                       made: dict[str, set[str]] | None = None, transfer: bool = True) -> None:
    """Every side-file step for `archs`, but for the models whose file `made` says came made
    from their weights (the GPU machine's); `transfer`: remake the zoo's transfer matrix. No
    README (`readme` None): the device's run, whose table is written here."""
    made = made or {}
    todo = lambda step: [a for a in archs if a not in made.get(step, set())]  # noqa: E731
    steps = [
        ("retrieval (build_index.py)", "retrieval", lambda a: retrieval.build(checkpoints, root, a)),
        ("SE profiles (se_profiles.py)", "SE profiles", lambda a: se_profiles.build(checkpoints, root, a)),
        ("units (units.py)", "units", lambda a: units.build(checkpoints, root, a)),
        ("attention figures (attention_figures.py)", "attention figures", lambda a: attention.build(checkpoints, root, a)),
        ("robustness (robustness.py)", "robustness", lambda a: robustness.build(checkpoints, root, a)),
        ("representations (representations.py)", "representations",
         lambda a: representations.build(checkpoints, root, a)),
        ("reliance (reliance.py)", "reliance", lambda a: reliance.build(checkpoints, root, a, transfer=transfer)),
    ]
    for name, step, fn in steps:
        these = todo(step)
        if not these and not (step == "reliance" and transfer):
            print(f"== {name}: made with the weights already, for {', '.join(archs)}", flush=True)
            continue
        t0 = time.process_time(), time.time()
        fn(these)   # reliance with no model to make: the transfer matrix only (reliance.build takes [])
        timings[name] = {"cpu_min": round((time.process_time() - t0[0]) / 60, 2),
                         "wall_min": round((time.time() - t0[1]) / 60, 2)}
        print(f"== {name}: {timings[name]['wall_min']} min wall, {timings[name]['cpu_min']} CPU min", flush=True)
    if readme is not None:
        t0 = time.process_time(), time.time()
        zoo_table.main(["--readme", str(readme), "--checkpoints", str(checkpoints)])
        timings["zoo table (zoo_table.py)"] = {"cpu_min": round((time.process_time() - t0[0]) / 60, 2),
                                               "wall_min": round((time.time() - t0[1]) / 60, 2)}


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


def device_side_files(ck: Path, root: Path, only: list[str] | None) -> int:
    """On the GPU machine: every side file of the exported checkpoints in `ck` (int8 already,
    their card's figures measured at export), written beside them for the bundles."""
    archs = [a for a in reliance.shipped(ck) if not only or a in only]
    if not archs:
        print(f"no checkpoints in {ck}")
        return 1
    timings: dict = {}
    t0 = time.time()
    # a later call (`device_zoo.sh fetch`) makes only what the earlier one did not; the
    # transfer matrix is made again over every model
    refresh_side_files(ck, root, archs, None, timings, made_elsewhere(ck, archs))
    (ck / "device_side_files.json").write_text(json.dumps(
        {"archs": archs, "timings": timings, "wall_min": round((time.time() - t0) / 60, 2)}, indent=1) + "\n")
    print(f"side files for {', '.join(archs)} in {(time.time() - t0) / 60:.1f} min", flush=True)
    return 0


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
    ap.add_argument("--device", action="store_true",
                    help="on the GPU machine: side files beside the checkpoints in --checkpoints, no git or README")
    ap.add_argument("--agree_points", type=float, default=0.1,
                    help="most a device-made model's val top-1 may differ here (0.1: 4 of 3,925 images)")
    args = ap.parse_args(argv)
    from models import precision
    root = common.data_root(args)
    ck = args.checkpoints.resolve()
    if args.device:
        return device_side_files(ck, root, args.arch)
    repo = Path(git(ck, "rev-parse", "--show-toplevel").strip()).resolve()
    readme = repo / "README.md"
    t_start = time.time()
    report: dict = {"started": time.strftime("%Y-%m-%d %H:%M"), "models": {}, "timings": {}}

    src = unpack_bundles(args.src.resolve()) if args.src else None
    archs = place(src, ck, args.arch) if src else []
    if args.arch:
        archs = [a for a in (archs or args.arch) if a in args.arch]
    if not archs:
        print("nothing to release: pass --from DIR (returned checkpoints) or --arch NAME")
        return 1
    print(f"releasing {', '.join(archs)}", flush=True)

    # side files that came with the checkpoints, made from the weights they ship (the device's)
    made = made_elsewhere(src, archs) if src else {}
    device_made = {a for a in archs if any(a in m for m in made.values())}
    refused = {}
    t0 = time.process_time(), time.time()
    for arch in archs:
        try:
            card = models.read_card(arch, ck)
            if card.get("storage") == "int8":
                after = evaluate_checkpoint(arch, ck, root)["val_top1"]
                q = {"before": card.get("full_precision", {}).get("val_top1"), "after": after}
                theirs = (card.get("metrics") or {}).get("val_top1")   # as measured where it was exported
                if src and (theirs is not None or arch in device_made) and (
                        theirs is None or abs(after - theirs) > args.agree_points):
                    refused[arch] = {"here": after, "device": theirs}
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

    if refused:   # side files made from weights whose val figure is not the one measured here
        print("refused (val top-1 here against the device's): " + ", ".join(
            f"{a} {v['here']} against {v['device']}" for a, v in refused.items()), flush=True)
        hold_back(list(refused), ck, repo, args.hold / "refused")
        archs = [a for a in archs if a not in refused]
        for a in refused:
            report["models"].pop(a, None)
        report["refused"] = refused
        made = {step: m - set(refused) for step, m in made.items()}
    taken = take_shared(src, ck, archs, data.fingerprint(root)) if src and archs else {"robustness": [], "transfer": False}
    made["robustness"] = set(taken["robustness"])
    report["from_device"] = {step: sorted(m) for step, m in made.items() if m}
    if src and (src / "device_side_files.json").exists():
        report["device_side_files"] = json.loads((src / "device_side_files.json").read_text())
    report["shared_from_device"] = taken
    if not args.no_side_files and archs:
        refresh_side_files(ck, root, archs, readme, report["timings"], made, transfer=not taken["transfer"])

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
