"""Train any vision-hist architecture on Imagenette, then export a checkpoint.

    python scripts/train.py --arch resnet18 --protocol short-cnn   # the zoo's shared protocol
    python scripts/train.py --arch vit --epochs 100 --lr 2e-3      # any Config field is a flag
    torchrun --nproc_per_node=8 scripts/train.py --arch resnet34   # DistributedDataParallel
    python scripts/train.py --arch resnet18 --resume true          # continue after a kill

Reads top to bottom: config, data, model, optimiser and schedule, resume, the epoch loop,
export. The pieces live in training/: config.py (Config, recipes, protocols), data.py (the
splits on the training device, crops and mixing), steps.py (optimiser, batch, step, teacher,
fast-path probe), schedule.py (warm-up and decay to zero, the deadline refit), runstate.py
(state.pt, metrics.csv, DDP, provenance), export.py and evaluation.py (the checkpoint, its
card, its val scores).

GPU fast path: the decoded train split lives on the GPU as uint8; random-resized crop,
flip, TrivialAugment-Wide, random erasing and mixup/cutmix run there in a few batched ops
(each sample drawing its own); bf16 autocast, channels_last, fused optimisers and optional
torch.compile; no host sync inside an epoch except the progress bar's refresh every
`log_every` steps. On a CPU the same code runs (bf16 where the CPU has it natively).

Tuning without looking at val: `--holdout 0.1` holds out 10% of every train class (chosen
by `--holdout_seed` alone), trains on the rest and scores the held-out slice each epoch
(metrics.csv columns `holdout_top1`, `holdout_top5`); val is not read at all, and the
exported card says so and leaves its val metrics to scripts/evaluate.py.

Every epoch writes runs/<arch>-<preset>/state.pt atomically and metrics.csv beside it;
`--resume` continues from there and, with the same seed, ends where an uninterrupted run
ends. At the end the model (its EMA if enabled) is exported to checkpoints/<arch>/ with
filters.safetensors (its first-layer kernels at epochs 0, 1, 2, 5, 10, 20, 40 and the last),
and runs/<arch>-<preset>/done.json marks the run finished.
"""
from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import torch
import torch.distributed as dist

import models
import models.cost
from models import data, precision
from training import runstate
from training import data as train_data
from training.config import Config, check_config, epoch_sizes, parse_config, recipe
from training.export import export, stem_weights
from training.schedule import fit_epochs, lr_lambda, refit, size_weights, snapshot_epochs
from training.steps import (build_optimizer, evaluate_tensors, load_teacher, make_batch, probe_fast_paths,
                            train_step, zero_init_residual)


def main(cfg: Config) -> dict:
    t_main = time.time()  # --time_budget_s counts from here, data loading included
    check_config(cfg)
    rank, world, device = runstate.setup_distributed(cfg)
    master = rank == 0
    commit = runstate.code_commit()  # the code this run starts from, recorded in the card
    torch.manual_seed(cfg.seed)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not cfg.deterministic
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True

    # --- data: decoded once, resident on the training device as uint8 -------------------
    spec = models.get_spec(cfg.arch)
    preset = spec.preset(cfg.preset)
    size = cfg.image_size or preset.input_size
    root, train_x, train_y, eval_x, eval_y, n_eval, split = train_data.load(cfg, size, rank, world, device)
    n_train = len(train_x)
    per_rank = cfg.batch_size // world
    steps_per_epoch = max(1, n_train // cfg.batch_size)

    # --- model, optimiser, schedule, EMA ------------------------------------------------
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    model = models.create(cfg.arch, cfg.preset, num_classes=len(data.CLASSES)).to(device)
    if cfg.zero_init_residual and not zero_init_residual(model):
        raise SystemExit(f"--zero_init_residual: {cfg.arch} has no residual basic blocks")
    if cfg.stem_init_std > 0:
        torch.nn.init.normal_(model.stem.weight, 0.0, cfg.stem_init_std)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    teacher, teacher_card = load_teacher(cfg, device, size, preset.in_chans)

    def trial_step(c: Config) -> None:
        m = models.create(c.arch, c.preset, num_classes=len(data.CLASSES)).to(device)
        if c.channels_last:
            m = m.to(memory_format=torch.channels_last)
        fn = torch.compile(m, mode=c.compile_mode or None) if c.compile else m
        idx = torch.arange(min(8, n_train), device=device)
        xb, ya, yb2, lam = make_batch(train_x, train_y, idx, size, preset.in_chans, c)
        train_step(fn, m, build_optimizer(m, c, device), xb, ya, yb2, lam, c, c.amp and precision.autocast_ok(device))
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # draws nothing from the run
        fallbacks = probe_fast_paths(cfg, trial_step)
    amp = cfg.amp and precision.autocast_ok(device)  # after the probe, which may have turned it off
    if cfg.channels_last is False:
        model = model.to(memory_format=torch.contiguous_format)
    opt = build_optimizer(model, cfg, device)
    torch.manual_seed(cfg.seed + rank)  # but each rank draws its own augmentations
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lr_lambda(int(cfg.warmup_epochs * steps_per_epoch), cfg.epochs * steps_per_epoch, cfg.schedule))
    ema = None
    if cfg.ema > 0:
        ema = torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema), use_buffers=True)

    # --- resume ------------------------------------------------------------------------
    run_dir = Path(cfg.out) / f"{cfg.arch}-{cfg.preset}"
    state_path, metrics_path = run_dir / "state.pt", run_dir / "metrics.csv"
    start_epoch, rows, wall_before, snapshots, fitted = 0, [], 0.0, {}, None
    if cfg.resume and state_path.exists():
        start_epoch, rows, wall_before, snapshots, fitted = runstate.resume(
            state_path, cfg, model, opt, sched, ema, steps_per_epoch, master)
    elif cfg.resume and master:
        print(f"--resume: no {state_path} yet, starting fresh", flush=True)

    train_model = model
    if world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    step_fn = torch.compile(train_model, mode=cfg.compile_mode or None) if cfg.compile else train_model
    eval_model = ema.module if ema is not None else model
    keep_snapshots = snapshot_epochs(cfg.epochs)
    if start_epoch == 0:
        snapshots = {0: stem_weights(eval_model)}  # the initial kernels, before any step

    if master:
        run_dir.mkdir(parents=True, exist_ok=True)
        if start_epoch == 0:
            (run_dir / "done.json").unlink(missing_ok=True)  # a fresh run is not finished yet
        print(f"{spec.title} ({cfg.preset}, {size}px): {models.cost.count_params(model):,} params, "
              f"{n_train} train / {n_eval} {split} images, {world}x {device.type}, "
              f"{cfg.epochs} epochs x {steps_per_epoch} steps, {precision.describe(device, amp)}"
              + (f", distilling from {cfg.teacher}" if teacher is not None else ""), flush=True)

    # --- loop ------------------------------------------------------------------------
    t_start = time.time()
    epochs_this_run = 0
    for epoch in itertools.count(start_epoch):
        if epoch >= cfg.epochs:  # cfg.epochs may be refitted after the first epoch (--deadline)
            break
        train_model.train()
        t0 = time.time()
        g = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)  # same order on every rank
        order = torch.randperm(n_train, generator=g)[: steps_per_epoch * cfg.batch_size]
        order = order.view(steps_per_epoch, cfg.batch_size)[:, rank * per_rank:(rank + 1) * per_rank].to(device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        train_size = epoch_sizes(cfg, size)[epoch]  # progressive resizing (--sizes), else `size`
        bar = _progress(cfg, master, steps_per_epoch, epoch)
        for step in range(steps_per_epoch):
            if cfg.threads_file and device.type == "cpu" and step % cfg.log_every == 0:
                runstate.follow_threads_file(cfg.threads_file)
            xb, ya, yb2, lam = make_batch(train_x, train_y, order[step], train_size, preset.in_chans, cfg)
            loss, logits = train_step(step_fn, model, opt, xb, ya, yb2, lam, cfg, amp, teacher)
            sched.step()
            if ema is not None:
                ema.update_parameters(model)
            loss_sum += loss.detach()
            correct += (logits.detach().argmax(-1) == ya).float().mean()
            if bar is not None and ((step + 1) % cfg.log_every == 0 or step + 1 == steps_per_epoch):
                el = time.time() - t0
                bar.update((step + 1) - bar.n)
                bar.set_postfix(loss=f"{float(loss_sum) / (step + 1):.3f}",
                                acc=f"{float(correct) / (step + 1):.3f}",
                                img_s=f"{(step + 1) * cfg.batch_size / el:.0f}")
        if bar is not None:
            bar.close()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_time = time.time() - t0

        t_eval = time.time()
        c1, c5, n = evaluate_tensors(eval_model, eval_x, eval_y, size, preset.in_chans, device, amp=amp)
        raw = None
        if ema is not None and split == "holdout":  # tuning: what the EMA adds over the raw weights
            raw = evaluate_tensors(model, eval_x, eval_y, size, preset.in_chans, device, amp=amp)[0].float()
            if world > 1:
                dist.all_reduce(raw)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t_eval = time.time() - t_eval
        stats = torch.stack([loss_sum / steps_per_epoch, correct / steps_per_epoch, c1.float(), c5.float(),
                             n.float()])
        if world > 1:
            dist.all_reduce(stats)
            stats[:2] /= world
        tl, ta, c1, c5, n = stats.tolist()
        epochs_this_run += 1
        row = {"epoch": epoch + 1, "train_loss": round(tl, 4), "train_acc": round(ta, 4),
               f"{split}_top1": round(100 * c1 / n, 2), f"{split}_top5": round(100 * c5 / n, 2),
               **({f"{split}_top1_raw": round(100 * float(raw) / n, 2)} if raw is not None else {}),
               "size": train_size, "lr": f"{sched.get_last_lr()[0]:.6g}", "img_s": round(n_train / train_time, 1),
               "epoch_time_s": round(time.time() - t0, 2), "eval_time_s": round(t_eval, 2),
               "wall_time_s": round(wall_before + time.time() - t_start, 1)}
        rows.append(row)
        if cfg.deadline and epoch == 0 and fitted is None:
            # the first epoch ran under the full load: fit the schedule so that it ends at the deadline
            planned, epoch_s = cfg.epochs, time.time() - t0
            weights = size_weights(lambda n: epoch_sizes(cfg, size, n),
                                   lambda s: models.cost.gmacs_at(cfg.arch, s, cfg.preset), train_size)
            e = torch.tensor(float(fit_epochs(cfg, 1, epoch_s, time.time(), t_eval, floor=cfg.min_epochs,
                                              weights=weights)))
            if world > 1:
                dist.broadcast(e, 0)  # every rank runs rank 0's count
            refit(sched, cfg, int(e.item()), steps_per_epoch)
            keep_snapshots = snapshot_epochs(cfg.epochs)
            fitted = {"recipe_epochs": planned, "epochs": cfg.epochs, "first_epoch_s": round(epoch_s, 2),
                      "deadline": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(cfg.deadline))}
            if master:
                print(f"fitted to the deadline: {cfg.epochs} epochs (recipe {planned}; first epoch "
                      f"{epoch_s:.1f} s, {cfg.deadline - time.time():.0f} s left)", flush=True)
        if epoch + 1 in keep_snapshots:
            snapshots[epoch + 1] = stem_weights(eval_model)
        if master:
            print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
            runstate.save(state_path, model, opt, sched, ema, epoch + 1, rows, snapshots,
                          wall_before + time.time() - t_start, cfg, fitted)
            runstate.write_metrics(rows, metrics_path)
        # stop while another epoch like this one would still end inside the budget
        out_of_time = cfg.time_budget_s and time.time() - t_main + (time.time() - t0) > cfg.time_budget_s
        stop = torch.tensor(float(bool(cfg.stop_after_epochs and epochs_this_run >= cfg.stop_after_epochs)
                                  or bool(out_of_time)), device=device)
        if world > 1:
            dist.broadcast(stop, 0)  # rank 0's clock decides, so every rank leaves the loop together
        if stop:
            if master and epoch + 1 < cfg.epochs:
                print(f"stopping after epoch {epoch + 1} of {cfg.epochs}; continue with --resume", flush=True)
            break

    result = {"rows": rows, "finished": bool(rows) and rows[-1]["epoch"] == cfg.epochs}
    flip_top1 = None
    if result["finished"] and split == "holdout":  # flip TTA, reported beside the single crop
        fc1, _, fn = evaluate_tensors(eval_model, eval_x, eval_y, size, preset.in_chans, device, amp=amp, flip=True)
        fstats = torch.stack([fc1.float(), fn.float()])
        if world > 1:
            dist.all_reduce(fstats)
        flip_top1 = round(100 * float(fstats[0]) / float(fstats[1]), 2)
        if master:
            print(f"{split}_top1_flip={flip_top1} (single crop {rows[-1][f'{split}_top1']})", flush=True)
    sizes_run = [int(r.get("size") or size) for r in rows]
    compute = models.cost.training_compute(cfg.arch, sizes_run, steps_per_epoch * cfg.batch_size, cfg.preset,
                                           teacher=cfg.teacher or None,
                                           teacher_size=teacher.input_size if teacher is not None else None)
    if master and result["finished"]:
        if cfg.export:
            result["checkpoint"] = export(cfg, eval_model, rows, root, device, world, commit,
                                          n_train, n_eval, snapshots, precision.describe(device, amp),
                                          teacher_card, {"fallbacks": fallbacks, "fitted": fitted,
                                                         "compute": compute, "flip_top1": flip_top1})
        last = rows[-1]
        (run_dir / "done.json").write_text(json.dumps({
            "arch": cfg.arch, "epochs": last["epoch"], "eval_split": split,
            "top1": last[f"{split}_top1"], "top5": last[f"{split}_top5"], "wall_time_s": last["wall_time_s"],
            **({"top1_flip": flip_top1} if flip_top1 is not None else {}),
            **({"top1_raw": last[f"{split}_top1_raw"]} if f"{split}_top1_raw" in last else {}),
            "train_compute": compute,
            "checkpoint": str(result.get("checkpoint", "")), "recipe": recipe(cfg), "fitted": fitted,
            "finished_at": time.strftime("%Y-%m-%d %H:%M")}, indent=1) + "\n")
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return result


def _progress(cfg, master, total, epoch):
    if not (cfg.progress and master):
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step", leave=False,
                dynamic_ncols=True, mininterval=1.0)


if __name__ == "__main__":
    main(parse_config())
