"""Units: the stored top images really are the top, crops contain the peak, selectivity is
what its definition says, and the shipped files show selectivity growing with depth."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

import models
from explorer import units
from models import data

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
SHIPPED = [s.name for s in models.list_architectures() if (REPO / "checkpoints" / s.name / units.UNITS).exists()]


@pytest.mark.parametrize("arch", [s.name for s in models.list_architectures()])
def test_probe_layers_end_their_stage(arch):
    layers = units.probe_layers(arch)
    assert layers[-1].path == "" and layers[-1].grid is None           # the pre-logit vector comes last
    assert [ly.key for ly in layers] == [f"L{i}" for i in range(1, len(layers) + 1)]
    model = models.create(arch).eval()
    for ly in layers[:-1]:
        model.get_submodule(ly.path)                                     # a real module of the network
    grids = [ly.grid for ly in layers[:-1]]
    assert grids == sorted(grids, key=lambda g: -g[0]) or anatomy_is_tokens(arch)


def anatomy_is_tokens(arch: str) -> bool:
    return arch in ("vit", "mlp_mixer")


def test_selectivity_index():
    cm = torch.tensor([[1.0] * 10, [9.0] + [0.0] * 9, [2.0] + [1.0] * 9, [-1.0] * 10])
    si = units.selectivity(cm)
    assert si[0] == 0 and si[1] == 1 and si[2] == pytest.approx((2 - 1) / (2 + 1)) and si[3] == 0
    assert units.nearly_dead(torch.tensor([0.5, 0.001]), torch.tensor([[3.0], [2.0]])).tolist() == [False, True]


@pytest.fixture(scope="module")
def scanned(tiny_data, tmp_path_factory):
    """A random-weight AlexNet scanned over the tiny data set, written and read back."""
    import build_index
    import units as script
    d = tmp_path_factory.mktemp("units")
    torch.manual_seed(0)
    models.save(models.create("alexnet"), d / "alexnet", {"num_classes": 10})
    build_index.build(d, tiny_data, per_class=2, k=2)
    script.build(d, tiny_data, ["alexnet"])
    model, card = models.load("alexnet", d)
    return model, units.load(d / "alexnet" / units.UNITS, card), d


def test_top_images_really_maximise_the_unit(scanned, tiny_data):
    model, u, _ = scanned
    x_u8, y = data.load_split(tiny_data, "val", data.eval_store_size(model.input_size))
    for ly in u.layers:
        unit = 5
        acts = []
        captured = {}
        mod = model.get_submodule(ly.path) if ly.path else None
        h = mod.register_forward_hook(lambda _m, _i, o: captured.__setitem__("a", o)) if mod else None
        with torch.no_grad():
            for _, xb in data.eval_batches(x_u8, model.input_size, model.in_chans, 50):
                f = model.forward_features(xb)
                a = captured["a"] if mod else f
                acts.append(a[:, unit].flatten(1).max(1).values if a.dim() == 4 else a[:, unit])
        if h:
            h.remove()
        score = torch.cat(acts)
        top = u.val[ly.key]["top_idx"][unit]
        stored = u.val[ly.key]["top_val"][unit]
        assert torch.allclose(score[top], stored, rtol=1e-2, atol=1e-2)          # the stored values are real
        assert stored[-1] >= score.topk(len(top)).values[-1] - 1e-2             # and no other image beats them
        assert set(score.topk(len(top)).indices.tolist()) == set(top.tolist()) or \
            len(set(score.tolist())) < len(score)                               # (ties aside)


def test_crops_contain_the_peak(scanned, tiny_data):
    model, u, d = scanned
    from explorer import retrieval
    gal = retrieval.load_gallery(d / retrieval.GALLERY)
    for ly in u.layers:
        for unit in (0, 3):
            for pos in u.val[ly.key]["top_pos"][unit].tolist():
                top, left, bottom, right = units.crop_box(ly, pos, model.input_size)
                assert 0 <= top < bottom <= model.input_size and 0 <= left < right <= model.input_size
                if ly.grid is not None and not math.isinf(ly.rf):
                    gy, gx = divmod(pos, ly.grid[1])
                    cy, cx = ly.start + gy * ly.jump, ly.start + gx * ly.jump
                    assert top <= cy < bottom and left <= cx < right           # the peak's centre is inside
            for root, g in ((tiny_data, None), (None, gal)):
                crops = units.unit_crops(u, ly, unit, model.input_size, root, g, size=48)
                assert len(crops) == units.TOP and all(c["image"].shape == (48, 48, 3) for c in crops)


@pytest.mark.skipif("se_resnet18" not in SHIPPED, reason="no shipped SE-ResNet-18 unit file")
def test_selectivity_grows_with_depth_in_the_best_shipped_cnn():
    """The known result (Morcos et al. 2018; Zeiler & Fergus's class-specific top layers): the last
    stage of the best shipped CNN is more class-selective than its first."""
    cards = {a: models.read_card(a, REPO / "checkpoints") for a in SHIPPED if a not in ("vit", "mlp_mixer")}
    best = max(cards, key=lambda a: cards[a]["metrics"]["val_top1"])
    u = units.load(REPO / "checkpoints" / best / units.UNITS, cards[best])
    assert u is not None, f"{best}'s unit file was made from other weights: rerun scripts/units.py"
    spatial = [r for r, ly in zip(units.layer_summary(u), u.layers) if ly.grid is not None]
    assert spatial[-1]["mean selectivity"] > spatial[0]["mean selectivity"]


def test_shipped_unit_files_fit_the_budget():
    total = sum((REPO / "checkpoints" / a / units.UNITS).stat().st_size for a in SHIPPED)
    assert total <= 20 * 2**20
