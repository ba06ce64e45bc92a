"""A run's state on disk and where it runs: processes (DDP), random generators, the atomic
state file that `--resume` continues from, metrics.csv, and the provenance the card records
(hardware, code commit).

Every epoch writes <out>/<arch>-<preset>/state.pt (model, optimiser, scheduler, EMA, RNG
states, epoch, metrics rows, first-layer snapshots, wall time, config, deadline fit); a resume
with the same seed ends where an uninterrupted run ends.
"""
from __future__ import annotations

import csv
import dataclasses
import os
import platform
import subprocess
import time
from pathlib import Path

import torch
import torch.distributed as dist

import models
import models.cost
from models.checkpoint import current_keys
from training.config import REPO, Config, epoch_sizes, recipe
from training.schedule import fit_epochs, refit, size_weights
from training.steps import FAST_PATHS


def setup_distributed(cfg: Config):
    """(rank, world, device). torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; otherwise one process."""
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if world > 1:
        dist.init_process_group("nccl" if use_cuda else "gloo")
    device = torch.device(f"cuda:{local}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    return rank, world, device



def rng_state() -> dict:
    """Every generator training draws from: torch's CPU generator and each CUDA device's."""
    s = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        s["cuda"] = torch.cuda.get_rng_state_all()
    return s


def set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


def atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def write_metrics(rows: list[dict], path: Path) -> None:
    if not rows:
        return
    tmp = path.with_suffix(".tmp")
    fields = list(dict.fromkeys(k for r in rows for k in r))  # a resumed older run may lack new columns
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, restval="")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def hardware(device: torch.device, world: int) -> str:
    if device.type == "cuda":
        return f"{world}x {torch.cuda.get_device_name(device)}"
    return f"{world}x CPU ({torch.get_num_threads()} threads, {os.cpu_count()} cores, {platform.machine()})"


def code_commit() -> str:
    """The commit the code runs from ("-dirty" when models/, scripts/ or training/ differ from
    it); in a copy without .git (`git archive C | tar -x`, so a long run is not touched by work
    on the repository), the commit named in its COMMIT file; else "unknown"."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "models", "scripts", "training"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        if sha:
            return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return (REPO / "COMMIT").read_text().split()[0] + " (a copy)"
    except (OSError, IndexError):
        return "unknown"


def follow_threads_file(path: str) -> None:
    """Set torch's CPU threads from `path` (one integer), so a long CPU run can yield a core
    while someone works on the machine and take it back when they stop."""
    try:
        n = int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    if n >= 1 and n != torch.get_num_threads():
        torch.set_num_threads(n)



def save(path: Path, model, opt, sched, ema, epoch: int, rows: list[dict], snapshots: dict, wall_s: float,
         cfg: Config, fitted: dict | None) -> None:
    atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                 "ema": ema.state_dict() if ema is not None else None, "rng": rng_state(), "epoch": epoch,
                 "rows": rows, "filters": snapshots, "wall_s": wall_s, "config": dataclasses.asdict(cfg),
                 "fitted": fitted}, path)


def resume(path: Path, cfg: Config, model, opt, sched, ema, steps_per_epoch: int, master: bool):
    """Load `path` into the run's objects: (epoch done, metrics rows, wall seconds before, snapshots,
    deadline fit). Refuses a state trained with another recipe. A run begun without a deadline
    and given one now is refitted once here, timed by its latest epoch; a run already fitted keeps
    its epoch count (the schedule being continued)."""
    st = torch.load(path, map_location="cpu", weights_only=True)
    if st.get("fitted"):
        cfg.epochs = st["config"]["epochs"]
    changed = {k: (st["config"][k], v) for k, v in recipe(cfg).items()
               if st["config"].get(k, v) != v and k not in FAST_PATHS}
    if changed:
        raise SystemExit(f"--resume: {path} was trained with a different recipe "
                         f"(field: (then, now): {changed}); pass the same flags, or another --out")
    model.load_state_dict(current_keys(cfg.arch, st["model"], cfg.preset))  # states saved before layers had names
    opt.load_state_dict(st["optimizer"])
    sched.load_state_dict(st["scheduler"])
    if ema is not None and st.get("ema") is not None:
        ema.load_state_dict(current_keys(cfg.arch, st["ema"], cfg.preset))
    set_rng_state(st["rng"])
    done, rows, fitted = st["epoch"], st["rows"], st.get("fitted")
    if master:
        print(f"resumed {cfg.arch} from {path} after epoch {done}", flush=True)
    if cfg.deadline and fitted is None and rows and done < cfg.epochs:
        planned, last = cfg.epochs, rows[-1]
        epoch_s = float(last["epoch_time_s"])
        eval_s = float(last.get("eval_time_s") or epoch_s / 8)  # rows before eval_time_s: about an eighth
        size = cfg.image_size or models.get_spec(cfg.arch).preset(cfg.preset).input_size
        weights = size_weights(lambda n: epoch_sizes(cfg, size, n),  # crops grow: later epochs cost more
                               lambda s: models.cost.gmacs_at(cfg.arch, s, cfg.preset), int(last.get("size") or size))
        refit(sched, cfg, fit_epochs(cfg, done, epoch_s, time.time(), eval_s, floor=done + 1, weights=weights),
              steps_per_epoch)
        fitted = {"recipe_epochs": planned, "epochs": cfg.epochs, "refit_after_epoch": done,
                  "epoch_s": round(epoch_s, 2),
                  "deadline": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(cfg.deadline))}
        if master:
            print(f"refitted to the deadline after epoch {done}: {cfg.epochs} epochs in all "
                  f"(was {planned}; latest epoch {epoch_s:.0f} s)", flush=True)
    return done, rows, st["wall_s"], st.get("filters", {}), fitted
