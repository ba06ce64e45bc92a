"""End to end in a real browser: `streamlit run app.py`, Chromium through Playwright,
upload an image on the Classify page, and see every model's top-5.

Needs Debian's chromium (/usr/bin/chromium; `make test` installs it). Skipped without it,
unless VH_REQUIRE_BROWSER=1 (CI), where a missing browser fails the test.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    if os.environ.get("VH_REQUIRE_BROWSER") == "1":
        pytest.fail("VH_REQUIRE_BROWSER=1 but no chromium: apt-get install -y chromium", pytrace=False)
    pytest.skip("no chromium on this machine (apt-get install -y chromium)", allow_module_level=True)

ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(app_checkpoints_for_browser):
    port = free_port()
    env = {**os.environ, "VH_CHECKPOINTS": str(app_checkpoints_for_browser)}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"),
                             "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--server.headless", "true"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("streamlit did not start: " + proc.stdout.read().decode()[-2000:])
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def app_checkpoints_for_browser(tiny_data, tmp_path_factory):
    import torch

    import models
    d = tmp_path_factory.mktemp("browser-checkpoints")
    for i, arch in enumerate(("lenet5", "alexnet", "resnet18")):
        torch.manual_seed(i)
        models.save(models.create(arch), d / arch, {"num_classes": 10, "title": models.get_spec(arch).title,
                                                     "classes": [{"wnid": w, "name": n} for w, n in
                                                                 models.data.CLASSES]})
    return d


@pytest.fixture(scope="module")
def page():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(120_000)
        yield pg
        browser.close()


def test_home_then_upload_and_see_every_top5(server, page, tmp_path):
    page.goto(server)
    page.get_by_text("Timeline").first.wait_for()
    assert page.get_by_text("No trained checkpoint yet for 11 of 14").count() == 1

    page.goto(f"{server}/Classify")  # deep link to a page
    page.get_by_text("Upload an image or pick a sample").wait_for()
    sample = REPO / "samples" / "golf_ball-1.jpg"
    page.locator("input[type=file]").first.set_input_files(str(sample))
    page.get_by_text("Agreement").wait_for()
    charts = page.locator("[data-testid='stVegaLiteChart'], .vega-embed")
    charts.first.wait_for()
    body = page.inner_text("body")
    for title in ("LeNet-5", "AlexNet", "ResNet-18"):
        assert f"{title} (" in body or title in page.content(), f"{title}'s top-5 is not on the page"
    assert "of 3 models" in body
    page.screenshot(path=str(tmp_path / "classify.png"), full_page=True)
    if os.environ.get("VH_SCREENSHOTS"):
        shutil.copy(tmp_path / "classify.png", os.environ["VH_SCREENSHOTS"])
