"""The zoo as the app sees it: which checkpoints exist, loading them, the timeline's facts,
and the one lock that makes sharing them between sessions safe.

Every Streamlit session runs its script in its own thread, while the models are loaded once
per server and shared. Several probes change a model for the length of a call: Captum and
the token Grad-CAM register hooks, attention capture switches fused attention off. Another
session's forward pass through the same model at that moment would run those hooks in the
wrong thread (an inference-mode tensor meeting autograd: an exception box). So every use of
a shared model holds `LOCK` (`with zoo.using():`); on a 2-core machine the models run one at
a time anyway, so serialising them costs nothing.
"""
from __future__ import annotations

import contextlib
import csv
import ctypes
import functools
import os
import platform
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

import models
from models import precision
from models.checkpoint import CheckpointError, read_card
from models.cost import MODEL_LOCK, arch_cost

from explorer import provenance

REPO = Path(__file__).resolve().parent.parent
CHECKPOINTS = Path(os.environ.get("VH_CHECKPOINTS", REPO / "checkpoints"))
SAMPLES = REPO / "samples"
LOCK = MODEL_LOCK   # one lock for model use and for MAC counting (its global module hooks); see models.cost

# page file -> (label, icon, which models it applies to: "all", "se" or "attention", url path)
PAGES = {
    "pages/1_Classify.py": ("Classify", ":material/image:", "all", "Classify"),
    "pages/8_Anatomy.py": ("Anatomy", ":material/account_tree:", "any", "Anatomy"),
    "pages/3_Filters.py": ("Filters", ":material/grid_view:", "all", "Filters"),
    "pages/9_Units.py": ("Units", ":material/neurology:", "all", "Units"),
    "pages/4_Retrieval.py": ("Retrieval", ":material/image_search:", "all", "Retrieval"),
    "pages/5_SE_Excitation.py": ("SE gates", ":material/tune:", "se", "SE_Excitation"),
    "pages/6_ViT_Attention.py": ("Attention", ":material/visibility:", "attention", "ViT_Attention"),
    "pages/7_Attributions.py": ("Attributions", ":material/explore:", "all", "Attributions"),
    "pages/10_Representations.py": ("Representations", ":material/hub:", "all", "Representations"),
    "pages/11_Reliance.py": ("Reliance", ":material/shuffle:", "all", "Reliance"),
}


_depth = 0   # nesting of using() (LOCK is re-entrant); only touched while holding LOCK


@contextlib.contextmanager
def using():
    """Hold the zoo for one use of a shared model (forward pass, probe, attribution).

    When the outermost use ends, freed memory goes back to the system: glibc raises its mmap
    threshold after large tensors are freed, so a later attribution's activations come from
    the heap and stay resident (an Integrated Gradients pass on VGG-16 left ~400 MB)."""
    global _depth
    with LOCK:
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
            if _depth == 0:
                release_memory()


def release_memory() -> None:
    """Hand freed heap pages back to the system (glibc keeps them otherwise)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


# --- many models, one image -----------------------------------------------------------
#
# At batch one a forward pass keeps a second thread only partly busy. All 14 architectures
# for one upload on this 2-core machine (random weights; python bench/bench_app.py --full-zoo,
# 2026-12-03): one after another, both threads each, 195 ms and 387 ms of CPU; two workers of
# one thread each, biggest model first, 144 ms and 270 ms of CPU ("warm_top5_ms" against
# "warm_top5_ms_in_turn"). Models are shared, so the caller holds the zoo (`using()`) while the
# workers run them: no other session's work interleaves.

_pool: ThreadPoolExecutor | None = None
_pool_size = 0   # its worker count
_pool_lock = threading.Lock()


def model_workers() -> int:
    """How many models run at once: one per torch thread (VH_MODEL_WORKERS overrides; 1 runs
    them in turn in the calling thread, with every thread each)."""
    n = os.environ.get("VH_MODEL_WORKERS", "").strip()
    return max(1, int(n) if n.isdigit() and int(n) > 0 else torch.get_num_threads())


def _one_thread(ready: threading.Barrier) -> None:
    torch.get_num_threads()    # torch sets a thread's OpenMP team size on its first use; do it now...
    torch.set_num_threads(1)   # ...then make this worker's one thread (a per-thread setting in OpenMP)
    ready.wait()


def _workers(n: int) -> ThreadPoolExecutor:
    """The process's model workers, started once. torch.set_num_threads also sets the default
    that threads started later take, so it is put back once every worker has its one thread:
    the sessions' own threads keep every thread."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size != n:
            before = torch.get_num_threads()
            ready = threading.Barrier(n + 1)
            pool = ThreadPoolExecutor(n, thread_name_prefix="vh-model")
            for _ in range(n):
                pool.submit(_one_thread, ready)
            ready.wait()
            torch.set_num_threads(before)
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool, _pool_size = pool, n
    return _pool


@functools.lru_cache(maxsize=None)
def _gmacs(arch: str) -> float:
    try:
        return arch_cost(arch)["gmacs"]
    except Exception:   # an architecture the registry cannot build on the meta device: order last
        return 0.0


def each_model(loaded: dict, fn) -> dict:
    """{arch: fn(arch, model, card)} for every loaded model, in `loaded`'s order, the models
    spread over `model_workers()` single-threaded workers, the costliest (MACs) first.
    fn runs in a worker thread while the caller holds the zoo: it sets its own grad mode and
    autocast (both per thread) and must not take `LOCK` itself (the workers would wait for the
    caller, which waits for them)."""
    with using():
        n = min(model_workers(), len(loaded))
        if n <= 1:
            return {arch: fn(arch, m, card) for arch, (m, card) in loaded.items()}
        pool = _workers(n)
        order = sorted(loaded, key=lambda a: -_gmacs(a))
        futures = {arch: pool.submit(fn, arch, *loaded[arch]) for arch in order}
        return {arch: futures[arch].result() for arch in loaded}


def pages_for(arch: str, trained: bool = True) -> list[tuple[str, str, str, str]]:
    """(page file, label, icon, url path) of every page that applies to this architecture."""
    from models.probes import attention_modules, is_mixer, se_modules
    with torch.device("meta"):  # structure only
        m = models.create(arch)
    # the Attention page also measures an MLP-Mixer's token mixing, with the ViT's distance
    has = {"any": True, "all": trained, "se": trained and bool(se_modules(m)),
           "attention": trained and (bool(attention_modules(m)) or is_mixer(m))}
    return [(f, label, icon, url) for f, (label, icon, needs, url) in PAGES.items() if has[needs]]


def status(checkpoints_dir: Path | None = None) -> dict[str, str | None]:
    """arch -> None if its checkpoint card reads cleanly, else why not (no server path)."""
    out = {}
    for spec in models.list_architectures():
        try:
            read_card(spec.name, checkpoints_dir or CHECKPOINTS)
            out[spec.name] = None
        except CheckpointError as e:
            out[spec.name] = f"{spec.title}: {e.public}"
    return out


def load_all(checkpoints_dir: Path | None = None, archs: list[str] | None = None):
    """({arch: (model, card)}, {arch: why it is missing}) for every (or each named)
    architecture. A missing or broken checkpoint never stops the others from loading;
    the reasons name no server path."""
    loaded, missing = {}, {}
    with LOCK:
        for spec in models.list_architectures():
            if archs is not None and spec.name not in archs:
                continue
            try:
                model, card = models.load(spec.name, checkpoints_dir or CHECKPOINTS)
                # bf16 autocast for forward passes only where it keeps the answers and pays (precision.serve_bf16)
                model.serve_bf16 = precision.serve_bf16(card)
                # channels-last convolutions run ~11% faster on this CPU (oneDNN), same numbers
                loaded[spec.name] = (model.to(memory_format=torch.channels_last), card)
            except CheckpointError as e:
                missing[spec.name] = f"{spec.title}: {e.public}"
        release_memory()
    return loaded, missing


def timeline(checkpoints_dir: Path | None = None) -> list[dict]:
    """One row per architecture in historical order, with the predecessor it improved on (the
    architecture its `changed` text is written against, not simply the one before it)."""
    rows = []
    st = status(checkpoints_dir)
    for spec in models.list_architectures():
        cost = arch_cost(spec.name)
        top1, card = None, None
        if st[spec.name] is None:
            card = read_card(spec.name, checkpoints_dir or CHECKPOINTS)
            top1 = card.get("metrics", {}).get("val_top1")
        rows.append({
            "name": spec.name, "title": spec.title, "year": spec.year, "paper": spec.paper,
            "key_idea": spec.key_idea, "changed": spec.changed,
            "predecessor": models.get_spec(spec.builds_on).title if spec.builds_on else None,
            "params": cost["params"], "gmacs": cost["gmacs"], "input_size": cost["input_size"],
            "reported": spec.reported, "top1": top1, "trained": st[spec.name] is None,
            "deviations": spec.presets["explorer"].deviations, "penultimate": spec.penultimate,
            "pages": pages_for(spec.name, trained=st[spec.name] is None),
            "card": card, "trained_how": provenance.sentence(spec.name, card) if card else None,
        })
    return rows


def training_curves(checkpoints_dir: Path | None = None) -> list[dict]:
    """Long-format rows (arch, epoch, metric, value) from every shipped metrics.csv."""
    out = []
    for spec in models.list_architectures():
        f = Path(checkpoints_dir or CHECKPOINTS) / spec.name / "metrics.csv"
        if not f.exists():
            continue
        with open(f) as fh:
            for r in csv.DictReader(fh):
                for metric in ("train_loss", "train_acc", "val_top1", "val_top5", "holdout_top1", "holdout_top5",
                               "lr", "img_s"):
                    if r.get(metric) not in (None, ""):
                        out.append({"model": spec.title, "arch": spec.name, "epoch": int(r["epoch"]),
                                    "metric": metric, "value": float(r[metric])})
    return out


def sample_images() -> list[Path]:
    return sorted(p for p in SAMPLES.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))


# --- latency ---------------------------------------------------------------------------

LATENCY_SAMPLE = "golf_ball-1.jpg"
LATENCY_RUNS, LATENCY_WARMUP = 9, 3


def latencies(loaded: dict) -> dict:
    """Each model's forward pass on one image (batch of one), timed on this server's CPU.

    Every model sees the same photo (a shipped sample), preprocessed for its input size, and
    is warmed up with 3 passes. Then 9 rounds each run every model once, in turn, and a
    model's figure is the median of its 9 runs: a busy moment on the machine (another
    program, a browser drawing the page) lands in one or two rounds of every model rather
    than in all the runs of one, so the median does not move. The zoo is held throughout, so
    no other session's work lands inside a measurement. (Classify runs the models two at a
    time, one thread each, `each_model`: a model's own latency is this, all threads its own.)
    Returns {"ms": {arch: median ms}, "spread": {arch: (min, max)}, "note": how it was measured}.
    """
    from PIL import Image

    from models import data
    with Image.open(SAMPLES / LATENCY_SAMPLE) as im:
        image = im.convert("RGB")
    times: dict[str, list[float]] = {arch: [] for arch in loaded}
    with LOCK, torch.inference_mode():
        xs = {arch: data.preprocess(image, m.input_size, m.in_chans) for arch, (m, _) in loaded.items()}
        for arch, (model, _) in loaded.items():
            for _ in range(LATENCY_WARMUP):
                with precision.serving(model):
                    model(xs[arch])
        for _ in range(LATENCY_RUNS):
            for arch, (model, _) in loaded.items():
                t0 = time.perf_counter()
                with precision.serving(model):
                    model(xs[arch])
                times[arch].append((time.perf_counter() - t0) * 1000)
        release_memory()
    ms = {a: round(statistics.median(t), 2) for a, t in times.items()}
    spread = {a: (round(min(t), 2), round(max(t), 2)) for a, t in times.items()}
    note = (f"median of {LATENCY_RUNS} warm runs (after {LATENCY_WARMUP} warm-up runs; the models take turns, "
            f"one run each per round), batch of one, {torch.get_num_threads()} threads on this server's CPU "
            f"({os.cpu_count()} cores, {platform.machine()}), measured once per server process on "
            f"{time.strftime('%Y-%m-%d at %H:%M')}")
    bf16 = [loaded[a][1].get("title", a) for a, (m, _) in loaded.items() if getattr(m, "serve_bf16", False)]
    if bf16:
        note += (f"; {', '.join(bf16)} in bf16 autocast ({precision.cpu_bf16()}: top-1 unchanged on at least "
                 f"{precision.AGREEMENT_BAR}% of val and faster), the rest in fp32")
    return {"ms": ms, "spread": spread, "note": note, "bf16": bf16}
