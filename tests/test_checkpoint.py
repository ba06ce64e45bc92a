"""The checkpoint format refuses anything it cannot vouch for, with one clear sentence."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

import models
from models import CheckpointError


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    m = models.create("bn_convnet", "explorer")
    models.save(m, tmp_path / "bn_convnet", {"num_classes": 10})
    return tmp_path


def test_roundtrip(saved):
    model, card = models.load("bn_convnet", saved)
    assert card["weights"][0]["file"] == "weights.safetensors" and card["dtype"] == "float16"
    assert not model.training


def test_flipped_byte_is_refused(saved):
    f = saved / "bn_convnet" / "weights.safetensors"
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    f.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"weights\.safetensors does not match the sha256.*restore it"):
        models.load("bn_convnet", saved)


def test_card_naming_another_architecture_is_refused(saved):
    shutil.copytree(saved / "bn_convnet", saved / "resnet18")
    with pytest.raises(CheckpointError, match=r"describes architecture 'bn_convnet', not 'resnet18'"):
        models.load("resnet18", saved)


def test_missing_checkpoint_names_the_fix(tmp_path):
    with pytest.raises(CheckpointError, match=r"No trained checkpoint for vit: .* train one with"):
        models.load("vit", tmp_path)


def test_corrupt_card_and_changed_config(saved):
    card_path = saved / "bn_convnet" / "card.json"
    card = json.loads(card_path.read_text())
    card_path.write_text(json.dumps({**card, "config": {"widths": [8, 8, 8, 8]}}))
    with pytest.raises(CheckpointError, match="retrain bn_convnet"):
        models.load("bn_convnet", saved)
    card_path.write_text("{not json")
    with pytest.raises(CheckpointError, match="not a valid JSON card"):
        models.load("bn_convnet", saved)


def test_weights_that_do_not_fit_are_refused(tmp_path):
    other = models.create("resnet18", "explorer")
    models.save(other, tmp_path / "se_resnet18", {"num_classes": 10})  # plain ResNet weights
    card_path = tmp_path / "se_resnet18" / "card.json"
    card = json.loads(card_path.read_text())
    card_path.write_text(json.dumps({**card, "arch": "se_resnet18"}))
    with pytest.raises(CheckpointError, match="do not fit se_resnet18 .*missing"):
        models.load("se_resnet18", tmp_path)


def test_weights_file_outside_the_folder_is_refused(saved):
    card_path = saved / "bn_convnet" / "card.json"
    card = json.loads(card_path.read_text())
    card["weights"][0]["file"] = "../../etc/passwd"
    card_path.write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="is missing"):
        models.load("bn_convnet", saved)


def test_large_models_are_sharded_under_16_mib(tmp_path):
    m = models.create("resnet34", "explorer")
    models.save(m, tmp_path / "resnet34", {"num_classes": 10})
    files = sorted((tmp_path / "resnet34").glob("weights-*.safetensors"))
    assert len(files) >= 3 and all(f.stat().st_size < 16 * 2**20 for f in files)
    loaded, _ = models.load("resnet34", tmp_path)
    assert sum(p.numel() for p in loaded.parameters()) == sum(p.numel() for p in m.parameters())
