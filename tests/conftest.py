"""Shared fixtures: a tiny Imagenette-shaped folder, built at run time (never committed)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models import data

REPO = Path(__file__).resolve().parent.parent

# every chart the pages draw is checked against the Vega-Lite schema under test (the app skips it: explorer.ui.chart)
os.environ.setdefault("VH_VALIDATE_CHARTS", "1")

torch_threads = int(os.environ.get("VH_TEST_THREADS", "0"))
if torch_threads:
    import torch
    torch.set_num_threads(torch_threads)


def make_tiny_imagenette(dest: Path, train_per_class: int, val_per_class: int) -> Path:
    """Copy a handful of real images per class from the shared data, or, without it,
    write synthetic ones whose class is visible (a colour per class), so training can learn."""
    src = data.default_root()
    for split, n in (("train", train_per_class), ("val", val_per_class)):
        for label, wnid in enumerate(data.WNIDS):
            out = dest / split / wnid
            out.mkdir(parents=True, exist_ok=True)
            if src is not None:
                files = sorted((src / split / wnid).iterdir())[:n]
                for f in files:
                    shutil.copyfile(f, out / f.name)
            else:
                rng = np.random.default_rng(label * 100 + (split == "val"))
                for i in range(n):
                    base = np.array([(label * 25) % 255, (label * 70) % 255, (label * 130) % 255])
                    img = np.clip(base + rng.normal(0, 30, (160, 160, 3)), 0, 255).astype(np.uint8)
                    Image.fromarray(img).save(out / f"{wnid}_{i}.JPEG")
    return dest


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    return make_tiny_imagenette(tmp_path_factory.mktemp("imagenette-tiny"), 6, 2)


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    os.environ["VH_CACHE"] = str(tmp_path_factory.mktemp("vh-cache"))



@pytest.fixture(autouse=True)
def _grad_mode_left_on():
    """A test (or the code it runs) that switches autograd off for the whole process breaks every
    later test that trains; fail the culprit instead."""
    import torch
    yield
    leaked = not torch.is_grad_enabled()
    torch.set_grad_enabled(True)
    assert not leaked, "this test left torch's grad mode off (torch.set_grad_enabled(False) somewhere)"
