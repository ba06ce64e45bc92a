"""What a class costs one server: server CPU per page open and per upload, and many sessions at once.

    python bench/bench_serve.py                    # shipped checkpoints (checkpoints/)
    python bench/bench_serve.py --full-zoo         # all 14 architectures, random weights
    python bench/bench_serve.py --sessions 5,10,20 # sizes of the concurrent-session part ('' skips it)
    python bench/bench_serve.py --servers 2        # the same through nginx with two servers (deploy/)

1. **Per visit.** `streamlit run app.py` is started and every page opened once (the first visit
   loads the models and times them: once per server, reported apart). Then each page is opened
   in a fresh browser session (a new Streamlit session) --repeats times, and the server
   process's CPU time (user + system, all its threads, psutil) is read before and after the
   page has finished drawing: the CPU one new visitor costs the server (their browser also
   fetches the app's scripts, as a first visit does); and again moving to the page from
   another one in the same session (the sidebar's links). On every page that takes
   an image, the upload of a photo (a val image the app does not ship, a different one every
   time, since the pages cache per image) is measured the same way, from giving the uploader
   the file to the page finished; and once a photo already uploaded, from another session
   (the caches' answer). A new visitor's browser also fetches the app's scripts; the same
   browser opening the page again in a new tab (a new session, scripts cached) is reported
   apart. Medians.
2. **Many sessions.** For each size N, N browser sessions open Classify at the same moment and
   each uploads a different photo (tests/browser.py `classroom`); per session the time from the
   common start to the page drawn and to the models' answer; p50 / p95, sessions that failed or
   showed an exception or another session's file, the server's peak resident memory, and the
   CPU seconds of the server against everything else on the machine (the browsers, mostly):
   the browsers run on the same two cores, so wall times are pessimistic, while the server's
   CPU is its own.

The target (issue 18): at most 0.3 s of server CPU per page open and per upload with 14
models. Results go to bench/results/serve.json (or --out) and are printed; nothing is asserted.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import browser as B  # noqa: E402  (tests/browser.py: the app driven in Chromium)

# page path -> does it take an uploaded image
PAGES = {"": False, "Classify": True, "Compare": False, "Anatomy": False, "Filters": True, "Units": False,
         "Retrieval": True, "SE_Excitation": True, "ViT_Attention": True, "Attributions": True,
         "Representations": False, "Reliance": True}
TARGET_S = 0.3


class Servers:
    """Several server processes read as one (behind nginx): CPU seconds and resident memory summed."""

    def __init__(self, pids: list[int]):
        import psutil
        self.ps = [psutil.Process(p) for p in pids]
        self.last = {}   # pid -> its last (user, system): nginx's cache loader exits a minute in

    def cpu_times(self):
        import psutil
        from types import SimpleNamespace
        for p in self.ps:
            with contextlib.suppress(psutil.NoSuchProcess):
                t = p.cpu_times()
                self.last[p.pid] = (t.user, t.system)
        return SimpleNamespace(user=sum(u for u, _ in self.last.values()), system=sum(s for _, s in self.last.values()))

    def memory_info(self):
        import psutil
        from types import SimpleNamespace
        rss = 0
        for p in self.ps:
            with contextlib.suppress(psutil.NoSuchProcess):
                rss += p.memory_info().rss
        return SimpleNamespace(rss=rss)


def server_cpu(proc) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def machine_busy() -> float:
    import psutil
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)


def calibration() -> dict:
    """How fast this machine is right now (a shared virtual machine's speed drifts): a fixed
    pure-Python loop and a fixed fp32 matmul, so that two runs of this bench can be compared."""
    import torch
    t0 = time.perf_counter()
    s = 0
    for i in range(3_000_000):
        s += i
    loop = time.perf_counter() - t0
    a = torch.randn(1024, 1024)
    a @ a
    t0 = time.perf_counter()
    for _ in range(10):
        a @ a
    return {"python_loop_3M_s": round(loop, 3), "matmul_1024_ms": round((time.perf_counter() - t0) * 100, 2)}


def photos(n: int, data: Path | None) -> list[Path]:
    """n different photos for n sessions: Imagenette val images (not the app's samples), one
    per class in turn, copied under names of their own; the shipped samples when no data."""
    out = Path(tempfile.mkdtemp(prefix="vh-bench-serve-"))
    pool: list[Path] = []
    val = (data or Path(os.environ.get("VH_DATA", REPO.parent / "shared" / "data" / "imagenette2-224"))) / "val"
    if val.is_dir():
        classes = sorted(p for p in val.iterdir() if p.is_dir())
        per = [sorted(c.glob("*.JPEG"))[5:5 + n] for c in classes]
        pool = [per[i % len(per)][i // len(per)] for i in range(n) if per[i % len(per)][i // len(per):]]
    if len(pool) < n:
        pool += sorted((REPO / "samples").glob("*.jpg"))
    files = []
    for i, src in enumerate(pool[:n]):
        dst = out / f"student-{i:02d}-{src.parent.name if src.parent.name.startswith('n') else 'sample'}.jpg"
        dst.write_bytes(src.read_bytes())
        files.append(dst)
    return files


def per_visit(url: str, proc, shots: list[Path], repeats: int, servers: list[str] | None = None) -> dict:
    """Server CPU seconds of opening each page in a new session, and of one upload on it.

    Every upload is a photo of its own (`shots`): the pages cache what they compute per image,
    so uploading the same photo again would measure a cache hit (reported apart, once per page:
    two students uploading the same picture). With several `servers` (their own URLs, behind
    the proxy at `url`), every page is first opened once on each, so that no server's first
    visit lands in a measured one."""
    out = {}
    shots = iter(shots)
    with B.browser() as b:
        t0, c0 = time.perf_counter(), server_cpu(proc)
        first = {}
        for u in servers or [url]:
            for path in PAGES:                 # the first visit: models loaded and timed once per server
                page = B.new_page(b, 1280)
                p0 = server_cpu(proc)
                B.open_page(page, u, path)
                first[path or "Home"] = round(first.get(path or "Home", 0) + server_cpu(proc) - p0, 3)
                page.context.close()
        out["first_visits"] = {"cpu_s": round(server_cpu(proc) - c0, 2), "wall_s": round(time.perf_counter() - t0, 1),
                               "per_page_cpu_s": first}
        rows = {}

        def upload(page, photo: Path) -> float:
            c = server_cpu(proc)
            B.upload(page, [photo], choose=False, settle=1.0)   # "Your upload" is chosen before the clock starts
            spent = server_cpu(proc) - c
            errors = page.locator("[data-testid='stException']").all_inner_texts()
            if errors:
                raise RuntimeError(f"{path}: an exception box after the upload: {errors[0][:2000]}")
            return spent

        for path, takes_image in PAGES.items():
            opens, returning, uploads, again = [], [], [], None
            for r in range(repeats):
                page = B.new_page(b, 1280)
                c = server_cpu(proc)
                B.open_page(page, url, path)
                opens.append(server_cpu(proc) - c)
                # the same browser opens the page again in a new tab: a new session, but the
                # app's scripts and styles are already in the browser's cache
                tab = page.context.new_page()
                tab.set_default_timeout(180_000)
                c = server_cpu(proc)
                B.open_page(tab, url, path)
                returning.append(server_cpu(proc) - c)
                tab.close()
                if takes_image:
                    page.get_by_text("Your upload", exact=True).click()
                    B.wait_idle(page)
                    photo = next(shots)
                    first_photo = photo if r == 0 else first_photo
                    uploads.append(upload(page, photo))
                page.context.close()
            if takes_image:   # another student uploads the first photo again: the pages' caches answer
                page = B.new_page(b, 1280)
                B.open_page(page, url, path)
                page.get_by_text("Your upload", exact=True).click()
                B.wait_idle(page)
                again = upload(page, first_photo)
                page.context.close()
            rows[path or "Home"] = {"open_cpu_s": round(statistics.median(opens), 3),
                                    "open_returning_cpu_s": round(statistics.median(returning), 3),
                                    "upload_cpu_s": round(statistics.median(uploads), 3) if uploads else None,
                                    "upload_same_photo_again_cpu_s": None if again is None else round(again, 3),
                                    "open_runs": [round(v, 3) for v in opens],
                                    "open_returning_runs": [round(v, 3) for v in returning],
                                    "upload_runs": [round(v, 3) for v in uploads]}
            row = rows[path or "Home"]
            print(f"  {path or 'Home':16s} open {row['open_cpu_s']:.3f} s CPU (browser with the app cached "
                  f"{row['open_returning_cpu_s']:.3f} s)"
                  + (f", upload {row['upload_cpu_s']:.3f} s (same photo again {again:.3f} s)" if uploads else ""),
                  flush=True)
        # moving between pages within one session (the sidebar's links: no new session, no static files)
        page = B.new_page(b, 1280)
        B.open_page(page, url, "")
        for path in list(PAGES)[1:] + [""]:
            runs = []
            for _ in range(repeats):
                c = server_cpu(proc)
                page.locator(f"[data-testid='stSidebar'] a[href='{path}']").first.click()
                B.wait_idle(page)
                runs.append(server_cpu(proc) - c)
                if path and _ < repeats - 1:   # away and back, to arrive again
                    page.locator("[data-testid='stSidebar'] a").first.click()
                    B.wait_idle(page)
            rows[path or "Home"]["switch_cpu_s"] = round(statistics.median(runs), 3)
        page.context.close()
        for name, r in rows.items():
            print(f"  {name:16s} from another page in the same session {r['switch_cpu_s']:.3f} s CPU", flush=True)
        out["pages"] = rows
    worst_open = max(max(r["open_cpu_s"], r["switch_cpu_s"]) for r in rows.values())
    worst_returning = max(max(r["open_returning_cpu_s"], r["switch_cpu_s"]) for r in rows.values())
    worst_upload = max(r["upload_cpu_s"] for r in rows.values() if r["upload_cpu_s"] is not None)
    out["worst"] = {"open_cpu_s": worst_open, "open_returning_cpu_s": worst_returning,
                    "upload_cpu_s": worst_upload, "target_s": TARGET_S,
                    "within_target": worst_open <= TARGET_S and worst_upload <= TARGET_S}
    return out


def concurrent(url: str, proc, n: int, data: Path | None) -> dict:
    """N sessions at once on Classify, each with its own photo."""
    files = photos(n, data)
    peak = [proc.memory_info().rss]
    done = threading.Event()

    def watch():
        while not done.wait(0.25):
            try:
                peak.append(proc.memory_info().rss)
            except Exception:   # noqa: BLE001
                return
    th = threading.Thread(target=watch, daemon=True)
    th.start()
    c0, m0, t0 = server_cpu(proc), machine_busy(), time.perf_counter()
    res = B.classroom(url, files)
    wall = time.perf_counter() - t0
    c1, m1 = server_cpu(proc), machine_busy()
    done.set()
    th.join()
    names = {f.name for f in files}
    mixed = [r["file"] for r in res if r["text"] and any(o in r["text"] for o in names - {r["file"]})]
    failed = [f"{r['file']}: {r['error']}" for r in res if r["error"]]
    exc = [r["file"] for r in res if r.get("exceptions")]
    opens = [r["open_s"] for r in res if r["open_s"] is not None]
    results = [r["result_s"] for r in res if r["result_s"] is not None]

    def pct(v, q):
        return round(statistics.quantiles(v, n=20, method="inclusive")[18], 1) if q == 95 and len(v) > 1 else \
            round(statistics.median(v), 1) if v else None
    row = {"sessions": n, "wall_s": round(wall, 1),
           "page_open_s": {"p50": pct(opens, 50), "p95": pct(opens, 95)},
           "result_s": {"p50": pct(results, 50), "p95": pct(results, 95), "max": round(max(results), 1) if results else None},
           "answered": len(results), "errors": failed, "exception_boxes": exc, "saw_another_sessions_file": mixed,
           "server_peak_rss_mb": round(max(peak) / 2**20, 1),
           "server_cpu_s": round(c1 - c0, 1), "rest_of_machine_cpu_s": round((m1 - m0) - (c1 - c0), 1),
           "server_cpu_per_session_s": round((c1 - c0) / n, 3)}
    print(f"  {n:2d} sessions: result p50 {row['result_s']['p50']} s, p95 {row['result_s']['p95']} s, "
          f"{row['answered']}/{n} answered, errors {len(failed)}, server CPU {row['server_cpu_s']} s "
          f"({row['server_cpu_per_session_s']} s each), browsers and the rest {row['rest_of_machine_cpu_s']} s, "
          f"peak RSS {row['server_peak_rss_mb']} MB", flush=True)
    return row


def main() -> int:
    import psutil
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoints", type=Path, default=None, help="default: checkpoints/ (or --full-zoo)")
    ap.add_argument("--full-zoo", action="store_true", help="all 14 architectures with random weights")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sessions", default="5,10,20", help="concurrent-session sizes ('' to skip)")
    ap.add_argument("--no-visits", action="store_true", help="skip the per-visit part")
    ap.add_argument("--data", type=Path, default=None, help="Imagenette folder for the uploaded photos")
    ap.add_argument("--servers", type=int, default=0,
                    help="N > 0: N servers behind nginx (deploy/serve.py), their CPU and memory summed with nginx's")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    ckpt = args.checkpoints or REPO / "checkpoints"
    label = "shipped" if args.checkpoints is None else f"checkpoints in {ckpt.name}"
    if args.full_zoo:
        import random_zoo
        ckpt = random_zoo.build(Path(tempfile.mkdtemp(prefix="vh-zoo14-")), Path(os.environ.get(
            "VH_DATA", REPO.parent / "shared" / "data" / "imagenette2-224")))
        label = "14 random"
    out_path = args.out or REPO / "bench" / "results" / ("serve-zoo14.json" if args.full_zoo else "serve.json")
    result = {"when": time.strftime("%Y-%m-%d %H:%M"), "zoo": label, "models": sorted(
        p.parent.name for p in ckpt.glob("*/card.json")), "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(), "calibration_before": calibration(),
        # libgomp's spin before an idle thread sleeps: the app sets 10000 (explorer/__init__.py) unless given one
        "GOMP_SPINCOUNT": os.environ.get("GOMP_SPINCOUNT", "10000 (the app's)")}
    if args.servers:
        sys.path.insert(0, str(REPO / "deploy"))
        import serve
        result["servers"] = f"{args.servers} behind nginx (deploy/nginx.conf: sticky sessions, static files cached)"
        out_path = args.out or out_path.with_name(out_path.stem + f"-{args.servers}servers.json")
    with (serve.cluster(args.servers, checkpoints=ckpt) if args.servers else B.serve(ckpt)) as running:
        url, upstreams = running[0], None
        if args.servers:   # the app servers, and nginx's master and workers: all the proxy's CPU counts too
            upstreams = [f"http://127.0.0.1:{p.args[p.args.index('--server.port') + 1]}" for p in running[1]]
            nginx = [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"]
                     and "nginx" in p.info["cmdline"][0] and str(running[2]) in " ".join(p.info["cmdline"])]
            proc = Servers([p.pid for p in running[1]] + [q.pid for m in nginx for q in (m, *m.children())])
        else:
            proc = psutil.Process(running[1].pid)
        if not args.no_visits:
            shots = photos(args.repeats * sum(PAGES.values()), args.data)
            print(f"per visit ({label}: {len(result['models'])} models), server CPU seconds, median of {args.repeats}:")
            result["per_visit"] = per_visit(url, proc, shots, args.repeats, upstreams)
        if args.sessions:
            if args.no_visits:   # the models are loaded and timed once per server: not a session's cost
                with B.browser() as b:
                    for u in upstreams or [url]:
                        page = B.new_page(b, 1280)
                        B.open_page(page, u, "Classify")
                        page.context.close()
            print("sessions at once on Classify, each uploading its own photo (the server warm):")
            result["concurrent"] = [concurrent(url, proc, int(n), args.data) for n in args.sessions.split(",")]
    result["calibration_after"] = calibration()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"-> {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
