"""Train every architecture with its recipe, in invocations of bounded length that continue each other.

    python scripts/train_zoo.py --data /tmp/imagenette --holdout 0.1                  # all 14, 540 s
    python scripts/train_zoo.py --archs lenet5,nin,bn_convnet --parallel 3 --augment trivial
    python scripts/train_zoo.py --time_budget_s 0                                     # status only

Built for a lent GPU whose commands last at most 10 minutes: run the same line again and
it carries on (see docs/sweeps.md). Each invocation, for every architecture asked for (recipe
from training.config.RECIPES; every flag this script does not know goes to scripts/train.py as is):

* skips it when finished: runs/<arch>-<preset>/done.json, or an exported checkpoint whose
  card's recipe is the one asked for (a done.json of another recipe is reported as a
  conflict and left alone: pass another --out);
* otherwise starts `train.py --resume true` as a subprocess, up to --parallel at once on
  the one GPU, with --time_budget_s set to what is left of this invocation minus
  --margin_s, so it stops after the last epoch that fits (state.pt is written every epoch);
  its output is appended to runs/<arch>-<preset>/train.log. A run is started only while
  more than two of its epochs (as last measured) still fit;
* terminates whatever still runs 10 s before the budget ends (at most the epoch in flight
  is lost), prints a status table (arch, state, epochs done/total, held-out or val top-1 so
  far, minutes trained) and writes it to runs/zoo_status.json;
* with --bundle DIR, packs what the machine must hand back into tar parts of at most
  --bundle_part_mib each: every run's metrics.csv, train.log and done.json, the status, and
  the checkpoints trained here and not bundled before, whole, while they fit in --bundle_mib
  (the rest waits for the next invocation). `cat DIR/zoo-*.tar.part* | tar x` in the repo
  root puts them back at checkpoints/<arch>/ and runs/.

Exit status 0, or 1 when a training failed (its log says why).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from sidefiles.common import SHARED_FILES
from training.config import RECIPES, parse_config, recipe

HERE = Path(__file__).resolve().parent

KILL_GRACE_S = 10.0   # the hard stop comes this long before the budget ends
OWN_FLAGS = ("--arch", "--resume", "--time_budget_s", "--deadline")  # set here per run
EXPORT_GRACE_S = 120.0  # with --fit_s: how long after the deadline exports may take before the hard stop


def run_dir(cfg) -> Path:
    return Path(cfg.out) / f"{cfg.arch}-{cfg.preset}"


def read_rows(cfg) -> list[dict]:
    f = run_dir(cfg) / "metrics.csv"
    if not f.exists():
        return []
    with open(f) as fh:
        return list(csv.DictReader(fh))


def same_recipe(have: dict | None, want: dict, fitted: bool) -> bool:
    """Whether a finished run's recipe is the one asked for; a schedule fitted to a deadline
    (--fit_s) may have fewer epochs than asked."""
    if not have:
        return False
    if fitted:
        have, want = {**have, "epochs": None}, {**want, "epochs": None}
    return have == want


def finished(cfg) -> str | None:
    """'done' or 'exported' when this exact recipe has finished, 'conflict' when the run
    directory finished another recipe, else None."""
    want = json.loads(json.dumps(recipe(cfg)))
    done = run_dir(cfg) / "done.json"
    if done.exists():
        d = json.loads(done.read_text())
        return "done" if same_recipe(d.get("recipe"), want, bool(d.get("fitted"))) else "conflict"
    card = Path(cfg.export) / cfg.arch / "card.json" if cfg.export else None
    if card is not None and card.exists():
        try:
            c = json.loads(card.read_text())
            if same_recipe(c.get("recipe"), want, bool(c.get("fitted_to_deadline"))):
                return "exported"
        except ValueError:
            pass
    return None


def status_row(cfg, state: str) -> dict:
    """One line of the status table, from the run's metrics.csv."""
    rows = read_rows(cfg)
    split = "holdout" if cfg.holdout > 0 else "val"
    top1 = [float(r[f"{split}_top1"]) for r in rows if r.get(f"{split}_top1")]
    return {"arch": cfg.arch, "state": state, "epochs_done": int(rows[-1]["epoch"]) if rows else 0,
            "epochs": cfg.epochs, "split": split, "top1": top1[-1] if top1 else None,
            "best_top1": max(top1) if top1 else None,
            "minutes": round(float(rows[-1]["wall_time_s"]) / 60, 2) if rows else 0.0}


def last_epoch_s(cfg) -> float:
    """How long the run's latest epoch took (0 before its first)."""
    rows = read_rows(cfg)
    return float(rows[-1]["epoch_time_s"]) if rows else 0.0


def print_table(rows: list[dict]) -> None:
    print(f"{'arch':14s} {'state':9s} {'epochs':>9s} {'top-1':>13s} {'best':>6s} {'minutes':>8s}")
    for r in rows:
        top1 = f"{r['split']} {r['top1']:.2f}" if r["top1"] is not None else "-"
        best = f"{r['best_top1']:.2f}" if r["best_top1"] is not None else "-"
        print(f"{r['arch']:14s} {r['state']:9s} {r['epochs_done']:>4d}/{r['epochs']:<4d} {top1:>13s} "
              f"{best:>6s} {r['minutes']:8.2f}", flush=True)


def main(argv=None) -> int:
    t0 = time.time()  # the budget counts from here (after the imports, about 3 s)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", default=",".join(RECIPES), help="comma-separated (default: all, in order)")
    ap.add_argument("--time_budget_s", type=float, default=540.0,
                    help="this invocation's wall-clock budget")
    ap.add_argument("--parallel", type=int, default=1, help="trainings at once (small nets share the GPU well)")
    ap.add_argument("--fit_s", type=float, default=0.0,
                    help="start every run at once and fit each schedule to end this many seconds from now "
                         "(train.py --deadline; replaces --time_budget_s)")
    ap.add_argument("--margin_s", type=float, default=60.0,
                    help="kept back from each training's own budget for its start-up, export and exit")
    ap.add_argument("--data", default="", help="folder with train/ (and val/), passed to train.py")
    ap.add_argument("--holdout", type=float, default=None, help="passed to train.py (see its --holdout)")
    ap.add_argument("--bundle", type=Path, default=None, help="pack what to hand back into tar parts here")
    ap.add_argument("--bundle_mib", type=float, default=60.0, help="most checkpoint MiB in one bundle")
    ap.add_argument("--bundle_part_mib", type=float, default=15.0, help="largest tar part")
    args, passthrough = ap.parse_known_args(argv)
    for flag in OWN_FLAGS:
        if any(a == flag or a.startswith(flag + "=") for a in passthrough):
            ap.error(f"{flag} is set by train_zoo.py per run")
    train_args = [*(["--data", args.data] if args.data else []),
                  *(["--holdout", str(args.holdout)] if args.holdout is not None else []),
                  "--progress", "false", *passthrough]
    archs = [a for a in args.archs.split(",") if a]
    cfgs = {a: parse_config(["--arch", a, *train_args]) for a in archs}  # bad flags fail here

    states = {a: finished(cfg) for a, cfg in cfgs.items()}
    queue = [a for a in archs if states[a] is None]
    for a in archs:
        if states[a]:
            print(f"skip {a}: {states[a]}", flush=True)
    if args.fit_s > 0:  # every run at once, each fitting its epochs to one shared deadline
        fit_deadline = t0 + args.fit_s
        args.parallel = max(args.parallel, len(queue))
        args.time_budget_s = args.fit_s + EXPORT_GRACE_S
    deadline = t0 + args.time_budget_s - KILL_GRACE_S
    running: dict[str, tuple[subprocess.Popen, object]] = {}
    failed = False
    try:
        while queue or running:
            for a, (proc, log) in list(running.items()):
                if proc.poll() is None:
                    continue
                log.close()
                del running[a]
                states[a] = finished(cfgs[a]) or ("failed" if proc.returncode else "partial")
                failed |= states[a] == "failed"
                print(f"end   {a}: {states[a]} (exit {proc.returncode})", flush=True)
            while queue and len(running) < args.parallel:
                a = queue[0]
                budget = deadline + KILL_GRACE_S - time.time() - args.margin_s
                if args.fit_s <= 0 and budget <= 2 * last_epoch_s(cfgs[a]):
                    queue.clear()  # out of time for this one, so for the rest too (in order)
                    break
                queue.pop(0)
                d = run_dir(cfgs[a])
                d.mkdir(parents=True, exist_ok=True)
                log = open(d / "train.log", "a")
                limit = (["--deadline", f"{fit_deadline:.2f}"] if args.fit_s > 0
                         else ["--time_budget_s", f"{budget:.2f}"])
                cmd = [sys.executable, str(HERE / "train.py"), "--arch", a, "--resume", "true", *limit, *train_args]
                log.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} train_zoo: {' '.join(cmd)}\n")
                log.flush()
                running[a] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log)
                print(f"start {a}: {len(read_rows(cfgs[a]))}/{cfgs[a].epochs} epochs done, "
                      f"budget {budget:.0f} s, log {d / 'train.log'}", flush=True)
            if time.time() >= deadline and running:
                print("time is up: stopping the trainings still running", flush=True)
                _stop(running, states)
            time.sleep(0.2)
    finally:
        _stop(running, states)

    table = [status_row(cfgs[a], states[a] or ("partial" if read_rows(cfgs[a]) else "new")) for a in archs]
    print_table(table)
    out = Path(next(iter(cfgs.values())).out) if cfgs else Path("runs")
    out.mkdir(parents=True, exist_ok=True)
    (out / "zoo_status.json").write_text(json.dumps({
        "updated": time.strftime("%Y-%m-%d %H:%M:%S"), "budget_s": args.time_budget_s,
        "elapsed_s": round(time.time() - t0, 1), "train_args": train_args, "runs": table}, indent=1) + "\n")
    if args.bundle is not None:
        bundle(cfgs, states, out / "zoo_status.json", args.bundle, args.bundle_mib, args.bundle_part_mib)
    return 1 if failed else 0


def bundle(cfgs: dict, states: dict, status: Path, dest: Path, max_mib: float, part_mib: float) -> None:
    """Tar the runs' small files, the status and the checkpoints finished here and not bundled
    before (whole, in order, while they fit in max_mib) into parts of at most part_mib."""
    files = [(status, "runs/zoo_status.json")]
    for cfg in cfgs.values():
        d = run_dir(cfg)
        files += [(d / n, f"runs/{d.name}/{n}") for n in ("metrics.csv", "train.log", "done.json") if (d / n).exists()]
    for export in sorted({Path(c.export) for c in cfgs.values() if c.export}):  # zoo-wide side files (--device)
        files += [(export / n, f"checkpoints/{n}") for n in SHARED_FILES if (export / n).is_file()]
    room = max_mib * 2 ** 20 - sum(f.stat().st_size for f, _ in files)
    chosen = []
    for a, cfg in cfgs.items():
        ck = Path(cfg.export) / a if cfg.export else None
        if states[a] != "done" or ck is None or not ck.is_dir() or (run_dir(cfg) / "bundled.json").exists():
            continue  # not trained here, not exported, or handed over already
        these = [(f, f"checkpoints/{a}/{f.name}") for f in sorted(ck.iterdir()) if f.is_file()]
        size = sum(f.stat().st_size for f, _ in these)
        if size <= room:
            files += these
            room -= size
            chosen.append(a)
    dest.mkdir(parents=True, exist_ok=True)
    parts = _Parts(dest / f"zoo-{time.strftime('%Y%m%d-%H%M%S')}.tar", int(part_mib * 2 ** 20))
    with tarfile.open(fileobj=parts, mode="w|") as tar:
        for f, name in files:
            tar.add(f, arcname=name)
    parts.close()
    for a in chosen:
        (run_dir(cfgs[a]) / "bundled.json").write_text(json.dumps({"parts": [p.name for p in parts.files]}) + "\n")
    waiting = [a for a in cfgs if states[a] == "done" and a not in chosen
               and not (run_dir(cfgs[a]) / "bundled.json").exists()]
    print(f"bundled {', '.join(chosen) or 'no checkpoints'} into {len(parts.files)} part(s) in {dest}"
          + (f"; next time: {', '.join(waiting)}" if waiting else ""), flush=True)


class _Parts(io.RawIOBase):
    """A write-only stream cut into files of at most `limit` bytes: <prefix>.part00, .part01, ..."""

    def __init__(self, prefix: Path, limit: int):
        super().__init__()
        self.prefix, self.limit, self.files, self.f, self.n = prefix, limit, [], None, 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        b, done = memoryview(b), 0
        while done < len(b):
            if self.f is None or self.n == self.limit:
                if self.f is not None:
                    self.f.close()
                self.files.append(Path(f"{self.prefix}.part{len(self.files):02d}"))
                self.f, self.n = open(self.files[-1], "wb"), 0
            k = min(len(b) - done, self.limit - self.n)
            self.f.write(b[done:done + k])
            self.n, done = self.n + k, done + k
        return done

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None
        super().close()


def _stop(running: dict, states: dict) -> None:
    """SIGTERM every training still running, SIGKILL what is left after 5 s; state.pt stays whole."""
    for proc, _ in running.values():
        proc.send_signal(signal.SIGTERM)
    end = time.time() + 5
    for a, (proc, log) in list(running.items()):
        try:
            proc.wait(max(0.1, end - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        print(f"end   {a}: stopped (exit {proc.returncode})", flush=True)
        states[a] = "stopped"
    running.clear()


if __name__ == "__main__":
    sys.exit(main())
