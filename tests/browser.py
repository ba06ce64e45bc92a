"""Drive the real app in Chromium: start `streamlit run app.py`, open pages at a given
width, wait until the script has finished, and read what a person would see.

Used by tests/test_browser.py and, for looking at pages by eye, from the command line:

    python tests/browser.py --out /tmp/shots Home Classify "Anatomy?arch=vgg16"

which writes one full-page screenshot per page and width (1024, 1280, 1920 px). With
`--upload FILE` (repeatable) each page is shot after choosing "Your upload" and giving it the
files (pages that take one image get the first), to see what a learner's own files produce.
Needs Debian's chromium (/usr/bin/chromium).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage"]
WIDTHS = (1024, 1280, 1920)
# what a server path looks like in page text: this checkout, temp dirs, home dirs, checkpoint files
PATH_PATTERNS = [re.escape(str(REPO)), r"/tmp/", r"/home/", r"/root/", r"/work/", r"/usr/lib", r"site-packages",
                 r"card\.json", r"\.safetensors", r"Traceback \(most recent"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(checkpoints: Path | None = None, env: dict | None = None, timeout: float = 120, app: Path = REPO):
    """A fresh `streamlit run app.py` on a free port (of this checkout, or of `app`, another one);
    yields its URL."""
    port = free_port()
    # the server reads the data and checkpoints it is given, never a test's leftovers
    full_env = {k: v for k, v in os.environ.items() if k not in ("VH_DATA", "VH_CHECKPOINTS")}
    full_env.update(env or {})
    if checkpoints is not None:
        full_env["VH_CHECKPOINTS"] = str(checkpoints)
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(app / "app.py"), "--server.port",
                             str(port), "--server.address", "127.0.0.1", "--server.headless", "true"],
                            cwd=app, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        raise RuntimeError("streamlit did not start: " + proc.stdout.read().decode()[-2000:])
    try:
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def new_page(b, width: int, height: int = 900):
    """A page that records every request, so a test can say which hosts were asked."""
    ctx = b.new_context(viewport={"width": width, "height": height})
    page = ctx.new_page()
    page.set_default_timeout(180_000)
    page.requests = []
    page.on("request", lambda r: page.requests.append(r.url))
    return page


def wait_idle(page, settle: float = 0.6, timeout: float = 180) -> None:
    """Wait until Streamlit has finished running the page's script (the app root says so in its
    `data-test-script-state`) and it has stayed finished for `settle` seconds."""
    page.wait_for_selector("[data-testid='stApp']")
    deadline = time.time() + timeout
    quiet_since = None
    seen_run = False
    while time.time() < deadline:
        state = page.evaluate("() => document.querySelector('[data-testid=stApp]')"
                              "?.getAttribute('data-test-script-state')")
        seen_run = seen_run or state == "running"
        if state == "running" or (state == "initial" and not seen_run):
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.time()
        elif time.time() - quiet_since >= settle:
            return
        time.sleep(0.15)
    raise TimeoutError("the page kept running")


def open_page(page, url: str, path: str = "") -> None:
    page.goto(f"{url}/{path}".rstrip("/"))
    wait_idle(page)


def overflow(page) -> list[str]:
    """Elements that stick out to the right of the window (what makes a page scroll sideways),
    plus whether the document itself scrolls horizontally."""
    return page.evaluate("""() => {
        const w = document.documentElement.clientWidth;
        const out = [];
        if (document.documentElement.scrollWidth > w + 1) out.push('document scrolls sideways: ' +
            document.documentElement.scrollWidth + ' > ' + w);
        for (const el of document.querySelectorAll('[data-testid="stMain"] *')) {
            const r = el.getBoundingClientRect();
            if (r.width > 0 && r.right > w + 1) {
                let clipped = false;   // inside a scroll box (e.g. a data frame), not the page
                for (let p = el.parentElement; p; p = p.parentElement) {
                    const s = getComputedStyle(p);
                    if (['auto', 'scroll', 'hidden', 'clip'].includes(s.overflowX) &&
                        p.getBoundingClientRect().right <= w + 1) { clipped = true; break; }
                }
                if (!clipped) out.push((el.getAttribute('data-testid') || el.tagName) + ' right=' +
                                       Math.round(r.right));
            }
        }
        return out.slice(0, 10);
    }""")


def hidden_columns(page) -> list[str]:
    """Data frames (in the visible tab) whose columns do not all fit their box, so that some
    can only be reached by scrolling the table sideways, which nothing on screen hints at."""
    return page.evaluate("""() => {
        const out = [];
        for (const df of document.querySelectorAll('[data-testid="stMain"] [data-testid="stDataFrame"]')) {
            if (!df.getClientRects().length) continue;          // in a closed expander or another tab
            const sc = df.querySelector('.dvn-scroller');
            if (sc && sc.scrollWidth > sc.clientWidth + 2) {
                const head = [...df.querySelectorAll('[role="columnheader"]')].map(h => h.innerText.trim());
                out.push(`${sc.scrollWidth} px of columns in ${sc.clientWidth} px (${head.slice(0, 3).join(', ')}...)`);
            }
        }
        return out;
    }""")


def hidden_rows(page, index: int = 0) -> dict:
    """The `index`-th data frame of the page: its rows drawn and whether some can only be reached
    by scrolling inside it (a model hidden in a scroll box). The frame is scrolled into view first:
    the data grid draws its scroller only once it is on screen."""
    frame = page.locator('[data-testid="stMain"] [data-testid="stDataFrame"]').nth(index)
    frame.scroll_into_view_if_needed()
    frame.locator(".dvn-scroller").first.wait_for(timeout=30_000)
    return page.evaluate("""(i) => {
        const df = document.querySelectorAll('[data-testid="stMain"] [data-testid="stDataFrame"]')[i];
        const sc = df.querySelector('.dvn-scroller');
        return {scrolls: sc.scrollHeight > sc.clientHeight + 2, height: sc.clientHeight, content: sc.scrollHeight};
    }""", index)


def blown_up_images(page, zoom: float = 1.55) -> list[str]:
    """Pictures drawn more than `zoom` times wider than their own pixels: a blur, not detail."""
    return page.evaluate(f"""() => {{
        const out = [];
        for (const img of document.querySelectorAll('[data-testid="stMain"] [data-testid="stImage"] img')) {{
            const w = img.getBoundingClientRect().width;
            if (img.naturalWidth && w > {zoom} * img.naturalWidth)
                out.push(`${{img.naturalWidth}} px drawn at ${{Math.round(w)}} px (${{img.alt || img.src.slice(-30)}})`);
        }}
        return out.slice(0, 10);
    }}""")


def spilled_images(page) -> list[str]:
    """Pictures wider than the column they stand in (they cover their neighbours), as the page
    settles: a spill is measured again a second later and reported only if it is still there (a
    full-suite run once caught a 180 px picture in its column mid-layout, which the same test run
    alone never showed)."""
    first = _spilled(page)
    if not first:
        return first
    page.wait_for_timeout(1000)
    return _spilled(page)


def _spilled(page) -> list[str]:
    return page.evaluate("""() => {
        const out = [];
        for (const img of document.querySelectorAll('[data-testid="stMain"] [data-testid="stImage"] img')) {
            const col = img.closest('[data-testid="stColumn"]');
            if (!col || !img.getClientRects().length) continue;
            const r = img.getBoundingClientRect(), c = col.getBoundingClientRect();
            if (r.right > c.right + 2 || r.left < c.left - 2)
                out.push(`${Math.round(r.width)} px picture in a ${Math.round(c.width)} px column`);
        }
        return out.slice(0, 10);
    }""")


def truncated(page) -> list[str]:
    """Text cut short with an ellipsis in page links, metrics, captions, text and widget labels
    (not in a multiselect's chips, which Streamlit shortens by design)."""
    return page.evaluate("""() => {
        const sel = ['stPageLink', 'stMetric', 'stMarkdownContainer', 'stCaptionContainer', 'stWidgetLabel']
            .map(t => `[data-testid="stMain"] [data-testid="${t}"] *`).join(', ');
        const out = [];
        for (const el of document.querySelectorAll(sel)) {
            const s = getComputedStyle(el);
            if (s.textOverflow === 'ellipsis' && el.scrollWidth > el.clientWidth + 1 && el.innerText.trim())
                out.push(el.innerText.trim().slice(0, 60));
        }
        return [...new Set(out)].slice(0, 10);
    }""")


def exceptions(page) -> list[str]:
    return [e.inner_text()[:300] for e in page.locator("[data-testid='stException']").all()]


def page_not_found(text: str) -> bool:
    """Streamlit's dialog for a URL that names no page: it then runs Home under it, so a mistyped
    page name would otherwise be screenshotted and checked as if it were the page asked for."""
    return "Page not found" in text and "does not seem to exist" in text


def server_paths(text: str) -> list[str]:
    return [p for p in PATH_PATTERNS if re.search(p, text)]


def foreign_hosts(page, url: str) -> list[str]:
    own = re.match(r"https?://[^/]+", url).group(0)
    return sorted({re.match(r"[a-z]+://[^/]+", r).group(0) for r in page.requests
                   if re.match(r"https?://", r) and not r.startswith(own)})


def screenshot(page, path: Path, width: int) -> None:
    """The whole page: Streamlit scrolls inside its main container, so grow the window to fit."""
    measure = ("() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
               " return Math.max(m ? m.scrollHeight : 0, document.body.scrollHeight); }")
    height = 0
    for _ in range(6):   # a taller window re-lays the page out (charts, graphs): grow until it settles
        now = int(page.evaluate(measure))
        if now == height:
            break
        height = now
        page.set_viewport_size({"width": width, "height": min(height + 40, 16000)})
        time.sleep(0.8)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": width, "height": 900})


def takes_upload(page, timeout_ms: float = 10_000) -> bool:
    """Whether the page (drawn) offers "Your upload"."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    try:
        page.get_by_text("Your upload", exact=True).first.wait_for(timeout=timeout_ms)
        return True
    except PlaywrightTimeout:
        return False


def upload(page, files: list[Path], choose: bool = True, settle: float = 2.0) -> None:
    """Choose "Your upload" (unless `choose` is False: already chosen) and give the page's
    uploader `files` (the first only, where it takes one); return once the page has drawn."""
    if choose:
        page.get_by_text("Your upload", exact=True).click()
        wait_idle(page)
    box = page.locator("input[type=file]").first
    several = box.get_attribute("multiple") is not None
    box.set_input_files([str(f) for f in (files if several else files[:1])])
    page.locator("[data-testid='stFileChip']").first.wait_for()
    wait_idle(page, settle=settle)


HEADLINE = re.compile(r"\d+ of \d+ models say|The \d+ models disagree")   # Classify has answered


def classroom(url: str, files: list[Path], path: str = "Classify", width: int = 1280, timeout: float = 600) -> list[dict]:
    """Sessions opened at the same moment, one per file, each in its own browser context (its own
    Streamlit session): open `path`, choose "Your upload", give it the file, wait for Classify's
    headline and for the script to finish. Per session: seconds to the page drawn and to the
    answer (from the common start), the page's text, and the error if it failed."""
    import asyncio

    from playwright.async_api import async_playwright

    async def idle(page, settle: float = 0.6):
        quiet, seen = None, False
        end = time.time() + timeout
        while time.time() < end:
            state = await page.evaluate("() => document.querySelector('[data-testid=stApp]')"
                                        "?.getAttribute('data-test-script-state')")
            seen = seen or state == "running"
            if state == "running" or (state in (None, "initial") and not seen):
                quiet = None
            elif quiet is None:
                quiet = time.time()
            elif time.time() - quiet >= settle:
                return
            await asyncio.sleep(0.2)
        raise TimeoutError("the page kept running")

    async def one(b, f: Path, t0: float) -> dict:
        out = {"file": f.name, "open_s": None, "result_s": None, "text": "", "error": None}
        ctx = await b.new_context(viewport={"width": width, "height": 900})
        page = await ctx.new_page()
        page.set_default_timeout(timeout * 1000)
        try:
            await page.goto(f"{url}/{path}")
            await page.get_by_text("Your upload", exact=True).wait_for()
            await idle(page)
            out["open_s"] = time.perf_counter() - t0
            await page.get_by_text("Your upload", exact=True).click()
            await idle(page)
            await page.locator("input[type=file]").first.set_input_files(str(f))
            await page.get_by_text(HEADLINE).first.wait_for()
            await idle(page)
            out["result_s"] = time.perf_counter() - t0
            out["text"] = await page.inner_text("body")
            out["exceptions"] = await page.locator("[data-testid='stException']").count()
        except Exception as e:   # noqa: BLE001 -- a session that fails is a result here
            out["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        finally:
            await ctx.close()
        return out

    async def run():
        async with async_playwright() as p:
            b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                t0 = time.perf_counter()
                return await asyncio.gather(*(one(b, f, t0) for f in files))
            finally:
                await b.close()

    # in a thread of its own: a caller that holds Playwright's sync API has an event loop running here
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(run())).result()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pages", nargs="+", help="page paths, e.g. Home Classify 'Anatomy?arch=vgg16'")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--widths", default=",".join(map(str, WIDTHS)))
    ap.add_argument("--checkpoints", type=Path, default=None)
    ap.add_argument("--upload", type=Path, action="append", default=[],
                    help="a file to upload on every page (repeatable); the shots are named PAGE-upload-WIDTH")
    ap.add_argument("--app", type=Path, default=REPO,
                    help="serve another checkout's app.py (e.g. a git worktree of an older commit, to compare)")
    ap.add_argument("--text", action="store_true", help="also save each page's visible text as PAGE-WIDTH.txt")
    ap.add_argument("--data", type=Path, default=None,
                    help="the data folder the server reads (VH_DATA); default: the one beside this checkout")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from models.data import default_root
    data = args.data or default_root()
    env = {"VH_DATA": str(data.resolve())} if data else {}
    missing = False
    with serve(args.checkpoints, env=env, app=args.app.resolve()) as (url, _), browser() as b:
        for w in map(int, args.widths.split(",")):
            page = new_page(b, w)
            for path in args.pages:
                target = "" if path == "Home" else path
                t0 = time.time()
                open_page(page, url, target)
                name = re.sub(r"[^A-Za-z0-9_=-]+", "_", path)
                if args.upload and takes_upload(page):
                    upload(page, args.upload)
                    name += "-upload"
                shot = args.out / f"{name}-{w}.png"
                screenshot(page, shot, w)
                text = page.inner_text("body")
                if page_not_found(text):
                    print(f"{path} @ {w}px: no such page (the app's pages: Home, "
                          f"{', '.join(p.stem.split('_', 1)[1] for p in sorted((REPO / 'pages').glob('*.py'), key=lambda p: int(p.stem.split('_')[0])))})",
                          flush=True)
                    missing = True
                    continue
                if args.text:
                    shot.with_suffix(".txt").write_text(text)
                print(f"{path} @ {w}px: {time.time() - t0:.1f} s, overflow {overflow(page)}, truncated "
                      f"{truncated(page)}, hidden columns {hidden_columns(page)}, blown-up images "
                      f"{blown_up_images(page)}, spilled images {spilled_images(page)}, exceptions "
                      f"{len(exceptions(page))}, paths {server_paths(text)}, foreign hosts "
                      f"{foreign_hosts(page, url)} -> {shot}", flush=True)
            page.context.close()
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
