"""Corruptions: severity 0 is the clean image (and the clean accuracy), damage grows with
severity, every model sees the same corrupted images, the user's image goes the same way."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

import models
from explorer import robustness
from explorer.classify import model_input
from models import data

REPO = Path(__file__).resolve().parent.parent


def squares(n: int = 3, side: int = 64) -> torch.Tensor:
    imgs = [Image.open(p).convert("RGB") for p in sorted((REPO / "samples").glob("*.jpg"))[:n]]
    return torch.stack([torch.from_numpy(data.to_square_uint8(im, side)).permute(2, 0, 1) for im in imgs])


@pytest.mark.parametrize("name", list(robustness.CORRUPTIONS))
def test_corruptions(name):
    x = squares()
    assert robustness.corrupt(x, name, 0) is x                                   # severity 0: untouched
    damage = []
    for sev in robustness.SEVERITIES:
        y = robustness.corrupt(x, name, sev, seeds=[7, 8, 9])
        assert y.shape == x.shape and y.dtype == torch.uint8
        assert torch.equal(y, robustness.corrupt(x, name, sev, seeds=[7, 8, 9]))  # seeded: repeatable
        damage.append(float((y.float() - x.float()).abs().mean()))
    assert 0 < damage[0] < damage[-1], damage                                     # worse as severity grows
    assert robustness.describe(name, 0) == "clean" and robustness.describe(name, 3)


def test_corruption_is_relative_to_image_size():
    """A 32 px and a 128 px copy of one image lose about the same under blur and occlusion."""
    for name in ("blur", "occlusion"):
        small, large = squares(2, 32), squares(2, 128)
        d_small = (robustness.corrupt(small, name, 2).float() - small.float()).abs().mean()
        d_large = (robustness.corrupt(large, name, 2).float() - large.float()).abs().mean()
        assert d_small / d_large == pytest.approx(1, abs=0.5), name


def test_user_image_goes_through_the_same_preprocessing():
    img = Image.open(REPO / "samples" / "church-1.jpg")
    assert torch.equal(model_input(img, 128, 3), data.preprocess(img, 128))
    assert not torch.equal(model_input(img, 128, 3, "jpeg", 3), data.preprocess(img, 128))


def test_severity_zero_reproduces_the_clean_accuracy(tiny_data, tmp_path):
    """The table's clean top-1 is what the card's own per-image predictions give on those images."""
    from sidefiles import robustness as script
    from training.evaluation import evaluate_checkpoint
    torch.manual_seed(3)
    for arch in ("lenet5", "alexnet"):
        models.save(models.create(arch), tmp_path / arch, {"num_classes": 10})
        evaluate_checkpoint(arch, tmp_path, tiny_data)
    table = script.build(tmp_path, tiny_data, per_class=1)
    _, y = data.list_split(tiny_data, "val")
    keep = robustness.subset(y, 1)
    for arch in ("lenet5", "alexnet"):
        pred = models.read_card(arch, tmp_path)["metrics"]["val_pred"]
        card_top1 = 100 * sum(pred[i] == y[i] for i in keep) / len(keep)
        m = table["models"][arch]
        assert m["clean_top1"] == pytest.approx(card_top1)
        assert set(m["corrupted_top1"]) == set(robustness.CORRUPTIONS)
        assert all(len(v) == len(robustness.SEVERITIES) for v in m["corrupted_top1"].values())
    curve, summary = robustness.rows(robustness.load(tmp_path / robustness.ROBUSTNESS), {}, {"lenet5": 1998})
    assert {r["severity"] for r in curve} == {0, 1, 2, 3} and len(summary) == 2


def test_the_subset_sentence_gives_the_gap_and_what_sampling_alone_explains():
    """Issue 27: the page called a 3.2-point gap between the 500-image subset and the card "a little"."""
    summary = [{"arch": "alexnet", "model": "AlexNet", "clean top-1 (%)": 77.0},
               {"arch": "resnet18", "model": "ResNet-18", "clean top-1 (%)": 80.0}]
    cards = {"alexnet": {"metrics": {"val_top1": 73.83, "val_images": 3925}},
             "resnet18": {"metrics": {"val_top1": 80.18, "val_images": 3925}}}
    s = robustness.subset_sentence(summary, cards, 500)
    assert "by 1.7 points on average and at most 3.2 (AlexNet: 77.0 here, 73.83 on its card)" in s
    # binomial standard error at p = 0.7383 on 500 of 3,925 images, with the finite-population correction
    se = 100 * (0.7383 * 0.2617 / 500 * (1 - 500 / 3925)) ** 0.5
    assert f"about {se:.1f} points (one standard error), so gaps up to about {2 * se:.1f}" in s
    assert robustness.subset_sentence(summary, {}, 500) == ""
