"""How long libgomp's idle threads spin, against the models' own latency (explorer/__init__.py).

    python bench/bench_spin.py --checkpoints DIR     # default: checkpoints/

libgomp reads GOMP_SPINCOUNT (and OMP_WAIT_POLICY) once, when torch loads, so each setting
runs in a process of its own: every model's top-5 for one photo (`explorer.classify`, the
models side by side as Classify runs them) and a Grad-CAM and the ViT's rollouts as the
Attention and Attributions pages compute them, each the median of --repeats warm runs, wall
and process CPU milliseconds. The server CPU a page costs under each setting is
bench/bench_serve.py's (run it with GOMP_SPINCOUNT=300000 for libgomp's default).
Results go to bench/results/spin.json (or --out) and are printed; nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SETTINGS = {"libgomp default (300,000)": {"GOMP_SPINCOUNT": "300000"}, "the app's (10,000)": {},
            "1,000": {"GOMP_SPINCOUNT": "1000"}, "passive": {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": ""}}


def measure(checkpoints: Path, repeats: int) -> dict:
    """In this process (its OpenMP settings fixed at torch's load): {what: (wall ms, CPU ms)}."""
    import explorer  # noqa: F401  (sets the app's spin unless the environment has one)
    from PIL import Image

    from explorer import attention, attribution, zoo
    from explorer.classify import classify
    from models import data
    loaded, _ = zoo.load_all(checkpoints)
    img = Image.open(REPO / "samples" / zoo.LATENCY_SAMPLE).convert("RGB")

    def timed(fn):
        fn()
        runs = []
        for _ in range(repeats):
            w, c = time.perf_counter(), time.process_time()
            fn()
            runs.append(((time.perf_counter() - w) * 1e3, (time.process_time() - c) * 1e3))
        return [round(statistics.median(r[i] for r in runs), 1) for i in (0, 1)]

    out = {f"top-5, {len(loaded)} models": timed(lambda: classify(loaded, img))}
    for arch, (model, _) in loaded.items():
        x = data.preprocess(img, model.input_size, model.in_chans)
        if arch in ("resnet34", "densenet121", "vit", "se_resnet18"):
            out[f"Grad-CAM {arch}"] = timed(lambda: attribution.attribute(model, x, 0, "gradcam"))
        if arch == "vit":
            out["rollouts vit"] = timed(lambda: attention.rollout_maps(model, x, 0))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoints", type=Path, default=REPO / "checkpoints")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "spin.json")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)   # a child: measure and print JSON
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.checkpoints, args.repeats)))
        return 0
    result = {"when": time.strftime("%Y-%m-%d %H:%M"), "cores": os.cpu_count(), "checkpoints": args.checkpoints.name,
              "unit": "[wall ms, process CPU ms], medians", "settings": {}}
    for name, env in SETTINGS.items():
        full = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
        full.update({k: v for k, v in env.items() if v})
        if "GOMP_SPINCOUNT" in env and not env["GOMP_SPINCOUNT"]:
            full["GOMP_SPINCOUNT"] = ""   # empty: libgomp ignores it, and explorer leaves a set value alone
        line = subprocess.run([sys.executable, __file__, "--one", "--checkpoints", str(args.checkpoints),
                               "--repeats", str(args.repeats)], env=full, capture_output=True, text=True,
                              check=True).stdout.strip().splitlines()[-1]
        result["settings"][name] = json.loads(line)
        print(name, result["settings"][name], flush=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print("->", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
