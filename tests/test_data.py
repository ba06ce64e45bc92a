"""Data: both folder layouts, one preprocessing for training cache, evaluation and app."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from models import data
from training import data as train_data


def test_resolve_root_accepts_both_layouts(tiny_data, tmp_path):
    assert data.resolve_root(tiny_data) == tiny_data
    # torchvision.datasets.Imagenette extracts to <root>/imagenette2-160/{train,val}
    shutil.copytree(tiny_data, tmp_path / "imagenette2-160")
    assert data.resolve_root(tmp_path) == tmp_path / "imagenette2-160"
    with pytest.raises(FileNotFoundError, match="download_data.py"):
        data.resolve_root(tmp_path / "nowhere")


def test_list_split_and_fingerprint(tiny_data):
    paths, labels = data.list_split(tiny_data, "val")
    assert len(paths) == 20 and sorted(set(labels)) == list(range(10))
    assert data.fingerprint(tiny_data) == data.fingerprint(tiny_data)


def test_cache_matches_app_preprocessing(tiny_data):
    """The tensor the app builds from a PIL image equals the evaluation batch's."""
    x, y = data.load_split(tiny_data, "val", data.eval_store_size(128))
    x2, _ = data.load_split(tiny_data, "val", data.eval_store_size(128))  # from the cache
    assert torch.equal(x, x2)
    paths, _ = data.list_split(tiny_data, "val")
    with Image.open(paths[3]) as im:
        app = data.preprocess(im, 128)
    batch = data.normalize(data.center_crop(x[3:4], 128))
    assert torch.equal(app, batch)


def test_to_square_handles_any_aspect():
    for w, h in ((300, 100), (100, 300), (57, 57)):
        a = data.to_square_uint8(Image.new("RGB", (w, h), (10, 20, 30)), 64)
        assert a.shape == (64, 64, 3) and (a == [10, 20, 30]).all()


def test_grey_input_for_one_channel_models():
    x = torch.full((1, 3, 8, 8), 128, dtype=torch.uint8)
    assert data.normalize(x, in_chans=1).shape == (1, 1, 8, 8)


def test_random_resized_crop_and_mixing():
    torch.manual_seed(0)
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (8, 3, 40, 40), dtype=np.uint8))
    out = train_data.random_resized_crop(x, 32)
    assert out.shape == (8, 3, 32, 32) and out.min() >= 0 and out.max() <= 255
    full = train_data.random_resized_crop(x, 40, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False)
    assert torch.allclose(full, x.float(), atol=1e-3)  # the identity crop reproduces the image
    y = torch.arange(8)
    xm, ya, yb, lam = train_data.mix_batch(out, y, mixup=0.2, cutmix=1.0)
    assert xm.shape == out.shape and 0 <= lam <= 1 and torch.equal(ya, y) and sorted(yb.tolist()) == list(range(8))
