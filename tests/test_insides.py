"""Filters, retrieval, attention, attributions and SE gates: shapes, meaning, no side effects."""
from __future__ import annotations

from pathlib import Path

import pytest
import numpy as np
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
    retrieval.save_index(tmp_path / "ix.safetensors", card, torch.randn(5, 4), {"k": 3})
    assert retrieval.load_index(tmp_path / "ix.safetensors", card).feats.shape == (5, 4)
    with pytest.raises(retrieval.RetrievalError, match="other weights.*build_index.py --arch alexnet"):
        retrieval.load_index(tmp_path / "ix.safetensors", {**card, "weights": [{"sha256": "def"}]})
    with pytest.raises(retrieval.RetrievalError, match="no retrieval index yet"):
        retrieval.load_index(tmp_path / "none.safetensors", card)


def test_int8_index_finds_the_same_neighbours_as_float(tmp_path):
    """The index is stored in int8 with a scale per row (half the size of fp16): penultimate-like
    features (non-negative, sparse) find the same 10 neighbours, distances within 1%; an fp16
    index as first shipped still loads."""
    from safetensors.torch import save_file
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(10, 512, generator=g)
    bank = (centres.repeat_interleave(100, 0) + 0.8 * torch.randn(1000, 512, generator=g)).relu()
    query = (centres.repeat_interleave(20, 0) + 0.8 * torch.randn(200, 512, generator=g)).relu()
    card = {"arch": "alexnet", "weights": [{"sha256": "abc"}]}
    retrieval.save_index(tmp_path / "ix.safetensors", card, bank, {})
    stored = retrieval.load_index(tmp_path / "ix.safetensors", card).feats
    d_f, i_f = retrieval.neighbours(query, bank, 10)
    d_q, i_q = retrieval.neighbours(query, stored, 10)
    same = sum(len(set(a) & set(b)) for a, b in zip(i_f.tolist(), i_q.tolist())) / i_f.numel()
    assert same > 0.97 and float(((d_q - d_f).abs() / d_f).max()) < 0.01
    size = (tmp_path / "ix.safetensors").stat().st_size
    assert size < 0.55 * bank.numel() * 2                                  # about half of fp16
    import json
    save_file({"feats": bank.half()}, str(tmp_path / "old.safetensors"),
              metadata={"arch": "alexnet", "weights_sha256": "abc", "meta": json.dumps({})})
    assert torch.allclose(retrieval.load_index(tmp_path / "old.safetensors", card).feats, bank, rtol=1e-3, atol=1e-3)


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


def test_mean_attention_distance():
    """Uniform attention sees the mean distance between patches; attention to oneself sees 0."""
    grid, patch = (8, 8), 16
    uniform = torch.full((2, 3, 4, 65, 65), 1 / 65)
    d = attention.mean_attention_distance(uniform, 1, grid, patch)
    assert d.shape == (3, 4) and torch.allclose(d, torch.full((3, 4), attention.uniform_distance(grid, patch)))
    eye = torch.eye(65).expand(1, 3, 4, 65, 65)
    assert attention.mean_attention_distance(eye, 1, grid, patch).abs().max() == 0
    # a head that only looks at the patch to its right sees exactly one patch away
    right = torch.zeros(65, 65)
    for i in range(64):
        r, c = divmod(i, 8)
        right[1 + i, 1 + r * 8 + min(c + 1, 7)] = 1
    d = attention.mean_attention_distance(right.expand(1, 1, 1, 65, 65), 1, grid, patch)
    assert float(d) == pytest.approx(16 * 56 / 64)


def test_position_similarity_and_token_mixing_distance():
    torch.manual_seed(0)
    vit = models.create("vit").eval()
    sim = attention.position_similarity(vit)
    assert sim.shape == (64, 64) and torch.allclose(sim.diagonal(), torch.ones(64), atol=1e-5)
    mixer = models.create("mlp_mixer").eval()
    d = attention.token_mixing_distance(mixer)
    assert d.shape == (8,) and (d > 0).all()
    block = mixer.trunk.blocks[0].mlp_tokens   # a token mixer that copies each token to itself
    with torch.no_grad():
        block.fc1.weight.copy_(torch.eye(64).repeat(4, 1)[:block.fc1.out_features])
        block.fc2.weight.copy_(torch.eye(64).repeat(1, 4)[:, :block.fc2.in_features])
    assert float(attention.token_mixing_distance(mixer)[0]) == pytest.approx(0, abs=1e-4)


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


def test_trained_model_attribution_depends_on_the_image():
    """The shipped LeNet-5's maps are the image's: the same image gives the same map again, and a
    photo's map differs from a blank image's by a large part of its own size (a map that barely
    moved with the input, or moved by noise alone, fails; issue 28 found the old any-difference
    check could hardly fail)."""
    model, _ = models.load("lenet5", REPO / "checkpoints")
    real = data.preprocess(Image.open(REPO / "samples" / "golf_ball-1.jpg"), 32)
    blank = data.preprocess(Image.new("RGB", (64, 64), (128, 128, 128)), 32)
    for method in ("integrated_gradients", "occlusion", "gradcam"):
        a, again, b = (attribution.attribute(model, x, target=8, method=method) for x in (real, real, blank))
        assert torch.allclose(a, again, atol=1e-6), f"{method}: not deterministic"
        assert float((a - b).norm()) > 0.25 * max(float(a.norm()), float(b.norm())), method


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


def test_robust_scale_survives_one_hot_pixel():
    """Issue 10, point 1: dividing by the single largest value let one pixel blank the map."""
    torch.manual_seed(0)
    m = torch.rand(64, 64) * 0.1
    m[0, 0] = 100.0
    (scaled,), ((_, top),) = attribution.robust_scale([m])
    assert top == pytest.approx(float(torch.quantile(m.flatten(), 0.99)), rel=1e-5)
    assert attribution.coverage(scaled) > 0.5 > attribution.coverage(m / m.abs().max())
    signed, _ = attribution.robust_scale([torch.tensor([[-2.0, 1.0], [0.5, 0.0]])])
    assert signed[0][0, 0] < 0 <= signed[0][0, 1] and signed[0].abs().max() <= 1
    maps, spans = attribution.robust_scale([torch.rand(8, 8), 10 * torch.rand(8, 8)], shared=True)
    assert spans[0] == spans[1] and maps[0].abs().max() < 0.2
    flat = torch.full((8, 8), 0.6)
    flat[0] = 1.0                                              # positive everywhere, varying a little
    (stretched,), ((lo, hi),) = attribution.robust_scale([flat], signed=False)
    assert lo == pytest.approx(0.6) and stretched.min() == 0 and stretched.max() == 1


def test_overlay_and_colorbar():
    img = (torch.rand(32, 32, 3) * 255).byte().numpy()
    heat = torch.zeros(32, 32)
    heat[:16] = 1.0
    out = attribution.overlay(img, heat, signed=True)
    assert out.shape == (32, 32, 3) and out.dtype.name == "uint8"
    redness = out[..., 0].astype(int) - out[..., 2].astype(int)
    assert redness[:16].mean() > 40 and abs(redness[16:].mean()) < 5   # red where positive, grey elsewhere
    bar = attribution.colorbar(signed=True)
    assert bar[0, 0, 2] > bar[0, 0, 0] and bar[0, -1, 0] > bar[0, -1, 2]  # blue on the left, red on the right


def test_gradcam_layer_has_a_spatial_map():
    """LeNet-5's last conv (C5) is 1x1, which painted the whole image one colour."""
    model, _ = models.load("lenet5", REPO / "checkpoints")
    x = data.preprocess(Image.open(REPO / "samples" / "golf_ball-1.jpg"), 32)
    _, grid = attribution.cam_layer(model, x)
    assert min(grid) >= 2
    for arch, want in (("alexnet", (6, 6)), ("se_resnet18", (4, 4))):
        m = models.create(arch).eval()
        assert attribution.cam_layer(m, torch.randn(1, 3, 128, 128))[1] == want


SHIPPED = [a for a in ("lenet5", "alexnet", "se_resnet18") if (REPO / "checkpoints" / a / "card.json").exists()]


@pytest.mark.parametrize("arch", SHIPPED)
def test_default_view_maps_are_neither_empty_nor_one_colour(arch):
    """Every method's map of the default sample, as the Attributions page draws it, shows a pattern."""
    model, _ = models.load(arch, REPO / "checkpoints")
    x = data.preprocess(Image.open(REPO / "samples" / "golf_ball-1.jpg"), model.input_size, model.in_chans)
    target = int(model(x).argmax())
    for method, meta in attribution.METHODS.items():
        (scaled,), _ = attribution.robust_scale([attribution.attribute(model, x, target, method)],
                                                signed=meta.signed)
        cover = attribution.coverage(scaled)
        assert 0.02 < cover < 0.98, (arch, method, cover)
        assert float(scaled.std()) > 0.05, (arch, method)


def test_trained_model_attributes_the_object_more_than_a_blank_image():
    """SE-ResNet-18's Grad-CAM and Occlusion put at least 1.5x more of their positive mass on the
    golf ball than on the same place of a blank image (a map spread evenly puts the same share on
    both). The ball is the sample's brightest spot: the box is the 3x3 cells of an 8x8 grid
    around the brightest cell (centre, rows and columns 3-5 at 128 px; the box this test used
    before, "the upper centre", half covered the grass above the ball)."""
    model, _ = models.load(SHIPPED[-1], REPO / "checkpoints")
    real = data.preprocess(Image.open(REPO / "samples" / "golf_ball-1.jpg"), model.input_size)
    blank = data.preprocess(Image.new("RGB", (160, 160), (128, 128, 128)), model.input_size)
    s = model.input_size
    c = s // 8
    bright = real.reshape(3, s, s).mean(0).reshape(8, c, 8, c).mean((1, 3))
    r, k = divmod(int(bright.argmax()), 8)
    box = (slice(max(r - 1, 0) * c, (r + 2) * c), slice(max(k - 1, 0) * c, (k + 2) * c))   # where the ball is
    ball = data.NAMES.index("golf ball")
    for method in ("gradcam", "occlusion"):
        shares = []
        for x in (real, blank):
            m = attribution.attribute(model, x, ball, method).clamp(min=0)
            shares.append(float(m[box].sum() / m.sum().clamp(min=1e-12)))
        assert shares[0] > 1.5 * shares[1], (method, shares)


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


def test_se_profile_builder_names_the_models_it_was_given_when_none_has_se_blocks(tmp_path, capsys):
    """Releasing the MLP-Mixer alone logged "no shipped checkpoint has SE blocks" while
    SE-ResNet-18 ships with its profile: the line names the models it was asked about."""
    from sidefiles import se_profiles
    assert se_profiles.build(REPO / "checkpoints", tmp_path, ["lenet5"]) == []
    out = capsys.readouterr().out
    assert "no SE blocks in lenet5" in out and "shipped" not in out


@pytest.mark.parametrize("arch", ["alexnet", "zfnet"])
def test_gpu_trained_conv1_kernels_show_the_papers_structure(arch):
    """Issue 9: a recipe that does not reproduce AlexNet's Figure 3 (smooth colour blobs, oriented
    edges) fails the explorer even at high accuracy. Applies to GPU-trained checkpoints and to
    those trained with the papers' SGD (the protocol's exception for AlexNet and ZFNet); an
    earlier CPU AlexNet under AdamW measured 1.1x a random init, noise."""
    from explorer.filters import structure_ratio
    try:
        model, card = models.load(arch, REPO / "checkpoints")
    except models.CheckpointError:
        pytest.skip(f"no shipped {arch} checkpoint")
    ratio = structure_ratio(model.stem.weight)
    recipe = card.get("recipe", {})
    papers_sgd = recipe.get("optimizer") == "sgd" and recipe.get("stem_init_std") == 0.01
    if "NVIDIA" not in card.get("hardware", "") and not papers_sgd:
        pytest.skip(f"{arch} was trained on {card.get('hardware')} with {recipe.get('optimizer')}, neither "
                    f"the GPU recipe nor the papers' SGD (its conv1 measures {ratio:.2f}x a random init)")
    assert ratio >= 2.0, f"{arch}'s conv1 kernels are {ratio:.2f}x a random init's low-frequency energy: noise"


def test_the_structure_verdict_says_what_share_the_smooth_part_holds():
    """Above 2x a random init the page said "smooth blobs and edges dominate", also for
    DenseNet-121's conv0 at 2.4x, where 42% of the energy is at low frequencies: the words now
    follow the share, and each band has its own."""
    from explorer.filters import random_init_share, structure_verdict
    shape = (64, 3, 7, 7)
    rand = random_init_share(shape)
    assert structure_verdict(1.0, shape) == "close to random noise"
    assert structure_verdict(1.5, shape) == "partly structured"
    below = structure_verdict(2.4, shape)
    assert "fine detail still holds most" in below and f"{2.4 * rand:.0%} at low frequencies" in below
    above = structure_verdict(3.1, shape)
    assert "hold most of their energy" in above and f"against {rand:.0%} for random kernels" in above
    assert "100% at low" in structure_verdict(50.0, shape)          # never over the whole


def test_method_agreement_ranks_regions():
    """Spearman's rho over an 8x8 split: a map against itself 1, against its negation -1, against
    a map that puts the evidence elsewhere below 0; a monotone rescaling changes nothing."""
    from explorer.attribution import agreement
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    centre = -((yy - 32) ** 2 + (xx - 32) ** 2)               # evidence at the centre
    corner = -((yy - 4) ** 2 + (xx - 4) ** 2)                 # evidence in the top-left corner
    cam = centre.clamp(min=-200)                              # flat (tied) away from the centre, like a ReLU
    rho = {(p["a"], p["b"]): p["rho"] for p in agreement({"m": centre, "scaled": 3 * centre + 7, "neg": -centre,
                                                           "corner": corner, "cam": cam})}
    assert rho[("m", "scaled")] == pytest.approx(1.0)
    assert rho[("m", "neg")] == pytest.approx(-1.0)
    assert rho[("m", "corner")] < 0.2
    assert rho[("m", "cam")] > 0.5 and rho[("neg", "cam")] < -0.5       # ties share their ranks
    flat = agreement({"m": centre, "flat": torch.zeros(64, 64)})
    assert flat[0]["rho"] is None                                          # nothing ranked, no correlation


def test_matrix_outlines_the_answer_the_vote_counts():
    """A model that gives two classes the same probability (a random network does) is outlined on
    the answer the "n of m models say" sentence counts, not on another of the tied classes (the model's
    own top-1, which is also what a split vote lists for it)."""
    from explorer.classify import Result, agreement, matrix_rows
    probs = [0.0] * 10
    probs[0] = probs[8] = 0.5                                   # tench and golf ball tie
    r = Result("m", "M", [(data.NAMES[8], 0.5), (data.NAMES[0], 0.5)], probs, 128, 3)
    outlined = [row["class"] for row in matrix_rows([r]) if row["top1"]]
    assert outlined == [agreement([r])["label"]] == [data.NAMES[8]]


def test_agreement_names_no_answer_when_none_leads():
    """Issue 13, point 5: with every model on a different answer the headline said "1 of 3 models
    say gas pump" (the oldest model's answer) as if it were a verdict. Every answer on one vote, or
    answers tied at the top, is a split: no label, the answers listed, each model's outlined cell
    being the answer the list gives it."""
    from explorer.classify import Result, agreement, matrix_rows

    def result(title, cls):
        probs = [0.01] * 10
        probs[data.NAMES.index(cls)] = 0.91
        return Result(title.lower(), title, [(cls, 0.91)], probs, 128, 3)

    def outlined(results):
        return {row["model"]: row["class"] for row in matrix_rows(results) if row["top1"]}

    three = [result("LeNet-5", "gas pump"), result("AlexNet", "church"), result("SE-ResNet-18", "cassette player")]
    agr = agreement(three)
    assert agr["split"] and agr["label"] is None and agr["votes"] == 1 and not agr["agree"]
    assert agr["answers"] == [("gas pump", ["LeNet-5"]), ("church", ["AlexNet"]),
                              ("cassette player", ["SE-ResNet-18"])]
    assert outlined(three) == {ts[0]: lab for lab, ts in agr["answers"]}

    tie = three[:2] + [result("ViT", "church"), result("ResNet-18", "gas pump"), result("Mixer", "tench")]
    agr = agreement(tie)
    assert agr["split"] and agr["label"] is None and agr["tied"] == ["gas pump", "church"] and agr["votes"] == 2
    assert outlined(tie) == {t: lab for lab, ts in agr["answers"] for t in ts}

    lead = tie + [result("ConvNeXt", "church")]
    agr = agreement(lead)
    assert not agr["split"] and agr["label"] == "church" and agr["votes"] == 3
    assert sorted(agr["agree"]) == sorted(t for t, c in outlined(lead).items() if c == "church")
    assert agreement(three[:1])["label"] == "gas pump" and not agreement(three[:1])["split"]   # one model


def test_gradcam_reach_is_the_receptive_field_of_its_map():
    """AlexNet's Grad-CAM reads conv5's ReLU: conv3 to conv5 (3x3, 16 px apart) see 99, 131 and 163 px."""
    from explorer.attribution import gradcam_reach
    x = torch.zeros(1, 3, 128, 128)
    assert gradcam_reach(models.create("alexnet").eval(), "alexnet", x) == 163
    assert gradcam_reach(models.create("resnet18").eval(), "resnet18", x) > 128     # its last stage sees it all
    assert gradcam_reach(models.create("vit").eval(), "vit", x) is None


def test_attention_readings_say_what_the_figures_show():
    import torch

    from explorer import attention
    uniform = 66.0
    flat = torch.full((12, 3), 64.0)
    assert "no head has become local" in attention.distance_reading(flat, uniform)
    flat[0, 1] = 20.0
    said = attention.distance_reading(flat, uniform)
    assert "1 of 36 heads" in said and "block 1" in said
    mixer = torch.full((8, 1), 63.0)          # a Mixer: one token-mixing distance per block, no heads
    assert "no block has become local" in attention.distance_reading(mixer, uniform)
    mixer[6, 0] = 30.0
    said = attention.distance_reading(mixer, uniform)
    assert "1 of 8 blocks" in said and said.endswith("block 7.") and "head" not in said
    # a position embedding that is its grid coordinates: every patch's nearest is a neighbour
    ys, xs = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    pe = torch.stack([ys.flatten(), xs.flatten()], -1)
    sim = -torch.cdist(pe, pe)
    hit, chance = attention.neighbour_fraction(sim, (8, 8))
    assert hit == 1.0 and 0.05 < chance < 0.15
    noise = torch.randn(64, 16)
    hit, _ = attention.neighbour_fraction(noise @ noise.T, (8, 8))
    assert hit < 0.5
    # the Figure 7 picture: 8x8 tiles of 8x8 cells, a 1-cell white gap, every cell 4 px; in the tile
    # of patch (2, 5) the brightest cells are its four neighbours, its own cell (set to their value) too
    pic = attention.position_tiles(sim, (8, 8))
    assert pic.shape == ((8 * 9 + 1) * 4, (8 * 9 + 1) * 4, 3) and pic.dtype == np.uint8
    r0, c0 = (1 + 2 * 9) * 4, (1 + 5 * 9) * 4
    t = pic[r0:r0 + 32, c0:c0 + 32].reshape(8, 4, 8, 4, 3)[:, 0, :, 0].astype(int).sum(-1)
    top = {(int(i), int(j)) for i, j in zip(*np.where(t >= t.max() - 1e-6))}
    assert top == {(2, 5), (1, 5), (3, 5), (2, 4), (2, 6)}


def test_attributions_open_on_the_best_cnn_beside_the_vit():
    from explorer.attribution import default_pair, transformer_note

    def zoo(**top1):
        return {a: (None, {"metrics": {"val_top1": v}}) for a, v in top1.items()}
    loaded = zoo(alexnet=73.8, resnet18=80.2, bn_convnet=81.7, vit=64.7, mlp_mixer=69.5)
    assert default_pair(loaded) == ["bn_convnet", "vit"]
    assert default_pair(loaded, link="resnet18") == ["resnet18", "alexnet"]
    assert default_pair(zoo(alexnet=73.8, resnet18=80.2)) == ["resnet18", "alexnet"]
    assert default_pair(zoo(mlp_mixer=69.5, resnet18=80.2)) == ["resnet18", "mlp_mixer"]
    assert transformer_note("vit", "gradcam") and transformer_note("mlp_mixer", "gradcam")
    assert transformer_note("resnet18", "gradcam") is None and transformer_note("vit", "occlusion") is None
