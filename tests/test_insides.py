"""Filters, retrieval, attention, attributions and SE gates: shapes, meaning, no side effects."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

import models
from explorer import attention, attribution, filters, retrieval, se
from models import data, probes

REPO = Path(__file__).resolve().parent.parent


def logits_and_hooks(model, x):
    with torch.no_grad():
        return model(x), probes.hook_count(model)


# --- filters ---------------------------------------------------------------------------

def test_filter_grid_and_sorts():
    w = models.create("alexnet").stem.weight.detach()
    for sort in filters.SORTS:
        grid, idx = filters.filter_grid(w, sort)
        assert sorted(idx.tolist()) == list(range(96)) and grid.dtype.name == "uint8" and grid.ndim == 3
    grey = torch.randn(1, 1, 5, 5).repeat(1, 3, 1, 1)
    colour = torch.randn(1, 3, 5, 5)
    scores = filters.colourfulness(torch.cat([grey, colour]))
    assert scores[0] == pytest.approx(0, abs=1e-6) and scores[1] > 0.05
    # a slow horizontal ramp has a lower dominant frequency than a checkerboard
    ramp = torch.linspace(-1, 1, 8).repeat(8, 1)[None, None]
    checker = (torch.arange(8)[:, None] + torch.arange(8)[None]).remainder(2).float()[None, None] * 2 - 1
    f = filters.dominant_frequency(torch.cat([ramp, checker]))
    assert f[0] < f[1]


def test_activation_grid():
    m = models.create("resnet18").eval()
    acts = probes.first_layer_activations(m, torch.randn(1, 3, 128, 128))
    assert filters.activation_grid(acts, limit=16, columns=4).ndim == 2


# --- retrieval -------------------------------------------------------------------------

def test_neighbours_and_precision():
    bank = torch.tensor([[0.0, 0], [0, 1], [10, 10], [10, 11]])
    labels = torch.tensor([0, 0, 1, 1])
    d, i = retrieval.neighbours(torch.tensor([[0.0, 0.2]]), bank, k=2)
    assert i[0].tolist() == [0, 1] and d[0, 0] == pytest.approx(0.2)
    q = torch.tensor([[0.0, 0.5], [10, 10.5]])
    assert retrieval.precision_at_k(q, torch.tensor([0, 1]), bank, labels, k=2) == 100.0
    assert retrieval.precision_at_k(q, torch.tensor([1, 0]), bank, labels, k=2) == 0.0


def test_index_tied_to_weights(tmp_path):
    card = {"arch": "alexnet", "weights": [{"sha256": "abc"}]}
    retrieval.save_index(tmp_path / "ix.safetensors", "alexnet", torch.randn(5, 4), "abc", {"k": 3})
    assert retrieval.load_index(tmp_path / "ix.safetensors", card).feats.shape == (5, 4)
    with pytest.raises(retrieval.RetrievalError, match="other weights.*build_index.py --arch alexnet"):
        retrieval.load_index(tmp_path / "ix.safetensors", {**card, "weights": [{"sha256": "def"}]})
    with pytest.raises(retrieval.RetrievalError, match="No retrieval index"):
        retrieval.load_index(tmp_path / "none.safetensors", card)


def test_gallery_roundtrip(tmp_path):
    thumbs = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8)
    retrieval.save_gallery(tmp_path / "g.safetensors", thumbs, torch.tensor([0, 1, 2]), ["a", "b", "c"])
    g = retrieval.load_gallery(tmp_path / "g.safetensors")
    assert g.thumbs.shape == thumbs.shape and g.files == ["a", "b", "c"] and g.pixels.shape == (3, 3 * 32 * 32)


# --- attention -------------------------------------------------------------------------

def test_rollout_rows_sum_to_one_and_identity():
    att = torch.rand(2, 4, 3, 5, 5).softmax(-1)
    r = attention.rollout(att)
    assert torch.allclose(r.sum(-1), torch.ones(2, 5), atol=1e-5)
    eye = torch.eye(5).expand(1, 2, 3, 5, 5)
    assert torch.allclose(attention.rollout(eye), torch.eye(5)[None], atol=1e-6)
    g = attention.rollout(att, torch.rand_like(att))
    assert torch.allclose(g.sum(-1), torch.ones(2, 5), atol=1e-5)


def test_captum_capture_matches_probe_and_leaves_model_unchanged():
    torch.manual_seed(0)
    m = models.create("vit").eval()
    x = torch.randn(1, 3, 128, 128)
    before, hooks = logits_and_hooks(m, x)
    att = attention.capture_attention(m, x)
    assert torch.allclose(att, probes.attention_maps(m, x))
    assert attention.cls_maps(att, m).shape == (1, 12, 3, 8, 8)
    maps = attention.rollout_maps(m, x, target=3)
    assert maps["rollout"].shape == maps["grad_rollout"].shape == (1, 8, 8)
    after, hooks_after = logits_and_hooks(m, x)
    assert torch.equal(before, after) and hooks == hooks_after == 0
    assert all(blk.attn.fused_attn == before_f for blk, before_f in zip(m.trunk.blocks, [blk.attn.fused_attn
                                                                                      for blk in m.trunk.blocks]))
    with pytest.raises(probes.ProbeUnavailable):
        attention.capture_attention(models.create("resnet18"), torch.randn(1, 3, 128, 128))


# --- attributions ----------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["alexnet", "vit", "mlp_mixer", "se_resnet18"])
def test_every_method_shape_and_no_side_effects(arch):
    torch.manual_seed(0)
    m = models.create(arch).eval()
    x = torch.randn(1, 3, 128, 128)
    before, _ = logits_and_hooks(m, x)
    for method in attribution.METHODS:
        a = attribution.attribute(m, x, target=1, method=method, steps=8)
        assert a.shape == (128, 128) and torch.isfinite(a).all()
    after, hooks = logits_and_hooks(m, x)
    assert torch.equal(before, after) and hooks == 0
    assert all(p.grad is None for p in m.parameters())


def test_trained_model_attribution_means_something():
    """The shipped LeNet-5's attribution of a real photo differs from that of a blank image."""
    model, _ = models.load("lenet5", REPO / "checkpoints")
    real = data.preprocess(Image.open(REPO / "samples" / "golf_ball-1.jpg"), 32)
    blank = data.preprocess(Image.new("RGB", (64, 64), (128, 128, 128)), 32)
    for method in ("integrated_gradients", "occlusion", "gradcam"):
        a, b = (attribution.attribute(model, x, target=8, method=method) for x in (real, blank))
        assert not torch.allclose(a, b, atol=1e-4), method


def test_integrated_gradients_completeness():
    """IG's axiom: attributions sum to f(x) - f(baseline); 64 steps get close on LeNet-5."""
    from captum.attr import IntegratedGradients
    model, _ = models.load("lenet5", REPO / "checkpoints")
    x = data.preprocess(Image.open(REPO / "samples" / "church-1.jpg"), 32)
    base = attribution.black_baseline(model)
    a, delta = IntegratedGradients(model).attribute(x, baselines=base, target=4, n_steps=64,
                                                     return_convergence_delta=True)
    with torch.no_grad():
        gap = model(x)[0, 4] - model(base)[0, 4]
    assert abs(float(delta)) < 0.05 * abs(float(gap)) + 1e-3


def test_shared_scale():
    a, b = attribution.shared_scale([torch.tensor([1.0, 2.0]), torch.tensor([4.0, -8.0])], signed=True)
    assert b.abs().max() == 1 and a.max() == pytest.approx(0.25)


# --- SE --------------------------------------------------------------------------------

def test_se_gates_rows_and_class_profiles():
    torch.manual_seed(0)
    m = models.create("se_resnet18").eval()
    x = torch.randint(0, 256, (6, 3, 146, 146), dtype=torch.uint8)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    profiles = se.class_profiles(m, x, y)
    assert [p.shape for p in profiles] == [(10, c) for c in (64, 64, 128, 128, 256, 256, 512, 512)]
    assert profiles[0][3].abs().sum() == 0  # classes without images stay zero
    rows = se.gate_rows(probes.se_gates(m, data.normalize(data.center_crop(x[:1], 128))))
    assert len(rows) == 1920 and all(0 < r["gate"] < 1 for r in rows)
    assert probes.hook_count(m) == 0
