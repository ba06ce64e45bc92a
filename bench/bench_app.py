"""App speed on this machine: the three figures of the explorer's speed targets.

    python bench/bench_app.py                 # shipped checkpoints (checkpoints/)
    python bench/bench_app.py --full-zoo      # also every architecture, random weights

1. warm top-5: one upload classified by every model (preprocessing + forward passes),
   median of --repeats runs, in the server's own code path (`explorer.classify`), in fp32
   and in the path the app chooses (bf16 autocast for the models `models.precision` allows);
2. first prediction after server start (chosen path, and again with VH_PRECISION=fp32): `streamlit run app.py` is started, Chromium opens
   the Classify page, chooses "Your upload", uploads a photo and waits for the models'
   answer; wall time from launching the server to seeing it (needs /usr/bin/chromium);
3. resident memory of that server after it has loaded every model and answered (psutil RSS),
   and again after the heaviest page (every attribution method on the two biggest models).

Latency does not depend on the weights' values, so `--full-zoo` times all 14 architectures
with random weights, to show where the whole zoo will stand once it is trained.
Results go to bench/results/app.json (and are printed).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

import torch
from PIL import Image

import models
from explorer import zoo
from explorer.classify import classify

TARGETS = {"warm_top5_ms": 150, "first_prediction_s": 10, "rss_mb": 1536, "rss_after_attributions_mb": 1536}
SAMPLE = REPO / "samples" / "golf_ball-1.jpg"


def warm_latency(checkpoints: Path, repeats: int) -> dict:
    """Every model's top-5 for one upload, as the Classify page computes it (preprocessing
    included), median of `repeats` warm runs, in fp32 and in the path the app chooses (bf16
    for the models models.precision allows), and the chosen path again with the models run
    in turn on every thread (VH_MODEL_WORKERS=1) instead of side by side, one thread each
    (`explorer.zoo.each_model`); the variants take turns run by run. With each, the CPU
    seconds the process spent per call (all its threads). Per model, the app's own latency
    measurement (chosen path)."""
    loaded, _ = zoo.load_all(checkpoints)
    chosen = {a: m.serve_bf16 for a, (m, _) in loaded.items()}
    img = Image.open(SAMPLE).convert("RGB")
    variants = {"fp32": (False, ""), "chosen": (True, ""), "in_turn": (True, "1")}

    def run(variant: str) -> tuple[float, float]:
        bf16, workers = variants[variant]
        for a, (m, _) in loaded.items():
            m.serve_bf16 = chosen[a] and bf16
        os.environ["VH_MODEL_WORKERS"] = workers
        t0, c0 = time.perf_counter(), time.process_time()
        classify(loaded, img)
        return (time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000
    for v in variants:  # warm-up
        run(v)
    times = {v: [] for v in variants}
    for _ in range(repeats):
        for v in variants:
            times[v].append(run(v))
    run("chosen")
    os.environ.pop("VH_MODEL_WORKERS", None)
    med = {v: (round(statistics.median(t[0] for t in ts), 1), round(statistics.median(t[1] for t in ts), 1))
           for v, ts in times.items()}
    return {"models": list(loaded), "bf16_models": [a for a, b in chosen.items() if b],
            "model_workers": zoo.model_workers(),
            "warm_top5_ms_fp32": med["fp32"][0],
            "warm_top5_ms": med["chosen"][0],
            "warm_top5_ms_in_turn": med["in_turn"][0],
            "warm_top5_cpu_ms": med["chosen"][1],
            "warm_top5_cpu_ms_in_turn": med["in_turn"][1],
            "per_model_ms": zoo.latencies(loaded)["ms"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_figures(checkpoints: Path, env: dict | None = None) -> dict:
    """Start the real server, get the first prediction through Chromium, read its RSS."""
    import psutil
    from playwright.sync_api import sync_playwright
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        return {"first_prediction_s": None, "rss_mb": None, "note": "no chromium: apt-get install -y chromium"}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"), "--server.port",
                             str(port), "--server.address", "127.0.0.1"], cwd=REPO,
                            env={**os.environ, "VH_CHECKPOINTS": str(checkpoints), **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=[
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"])
            page = browser.new_page()
            page.set_default_timeout(120_000)
            while True:
                try:
                    urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
                    break
                except OSError:
                    time.sleep(0.05)
            page.goto(f"{url}/Classify")
            page.get_by_text("Your upload", exact=True).click()
            page.locator("input[type=file]").first.set_input_files(str(SAMPLE))
            page.get_by_text(re.compile("models say|models disagree")).first.wait_for()
            first = time.perf_counter() - t0
            rss = psutil.Process(proc.pid).memory_info().rss / 2**20
            # then the heaviest page: every attribution method on the two biggest models present
            heavy = [a for a in ("vgg16", "densenet121", "se_resnet18", "alexnet")
                     if (checkpoints / a / "card.json").exists()][:2]
            rss_heavy = None
            if heavy:
                page.goto(f"{url}/Attributions?arch={heavy[0]}")
                page.get_by_text("Grad-CAM").first.wait_for()
                page.wait_for_function("document.querySelector('[data-testid=stApp]')"
                                       ".getAttribute('data-test-script-state') === 'notRunning'")
                rss_heavy = psutil.Process(proc.pid).memory_info().rss / 2**20
            browser.close()
    finally:
        proc.terminate()
        proc.wait(20)
    return {"first_prediction_s": round(first, 2), "rss_mb": round(rss, 1),
            "rss_after_attributions_mb": round(rss_heavy, 1) if rss_heavy else None,
            "attributions_models": heavy}


def random_zoo(dest: Path) -> Path:
    """Every architecture with random weights. Where this CPU has native bf16, each card gets
    the measured bf16 speed-up and, since random weights have no answers worth keeping, an
    agreement marked as assumed: the app then serves in bf16 what a trained zoo would (if it
    kept its answers), for timing only."""
    from models import precision
    for s in models.list_architectures():
        m = models.create(s.name)
        out = models.save(m, dest / s.name, {"num_classes": 10, "title": s.title})
        if precision.cpu_bf16():
            card = json.loads((out / "card.json").read_text())
            card["bf16"] = {"agreement": 100.0, "assumed": "random weights: agreement not measurable (bench only)",
                            "speedup": round(bf16_speedup(m.eval()), 3),
                            "weights_sha256": [w["sha256"] for w in card["weights"]]}
            (out / "card.json").write_text(json.dumps(card, indent=1) + "\n")
    return dest


def bf16_speedup(model) -> float:
    """fp32 over bf16-autocast batch-1 latency (medians of 9, alternating)."""
    x = torch.randn(1, model.in_chans, model.input_size, model.input_size).contiguous(
        memory_format=torch.channels_last)
    model = model.to(memory_format=torch.channels_last)
    t = {False: [], True: []}
    with torch.inference_mode():
        for i in range(12):
            for bf16 in (False, True):
                with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                    t0 = time.perf_counter()
                    model(x)
                    if i >= 3:
                        t[bf16].append(time.perf_counter() - t0)
    return statistics.median(t[False]) / statistics.median(t[True])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoints", type=Path, default=REPO / "checkpoints")
    ap.add_argument("--full-zoo", action="store_true")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "app.json")
    args = ap.parse_args()
    machine = {"cpu_cores": os.cpu_count(), "machine": platform.machine(), "torch": torch.__version__,
               "threads": torch.get_num_threads()}
    runs = {"shipped": args.checkpoints}
    tmp = None
    if args.full_zoo:
        tmp = tempfile.TemporaryDirectory()
        runs["full_zoo_random_weights"] = random_zoo(Path(tmp.name))
    results = {"targets": TARGETS, "machine": machine, "date": time.strftime("%Y-%m-%d")}
    for label, ck in runs.items():
        r = {**warm_latency(ck, args.repeats), **server_figures(ck)}
        r["first_prediction_s_fp32"] = server_figures(ck, {"VH_PRECISION": "fp32"})["first_prediction_s"]
        r["meets"] = {k: (r.get(k) is not None and r[k] <= v) for k, v in TARGETS.items()}
        results[label] = r
        print(f"{label}: {len(r['models'])} models ({len(r['bf16_models'])} in bf16) | warm top-5 "
              f"{r['warm_top5_ms']} ms ({r['warm_top5_cpu_ms']} ms CPU), fp32 {r['warm_top5_ms_fp32']} ms, models in turn "
              f"{r['warm_top5_ms_in_turn']} ms ({r['warm_top5_cpu_ms_in_turn']} ms CPU) | first prediction "
              f"{r['first_prediction_s']} s, fp32 {r['first_prediction_s_fp32']} s | "
              f"(targets {TARGETS['warm_top5_ms']} ms, {TARGETS['first_prediction_s']} s) | RSS {r['rss_mb']} MB, after attributions "
              f"{r.get('rss_after_attributions_mb')} MB (target {TARGETS['rss_mb']})",
              flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
