"""Units: the stored top images really are the top, crops contain the peak, selectivity is
what its definition says, and the shipped files show selectivity growing with depth."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import models
from explorer import units
from models import data

REPO = Path(__file__).resolve().parent.parent
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
    from sidefiles import retrieval as build_index
    from sidefiles import units as script
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


@pytest.mark.parametrize("arch", SHIPPED)
def test_shipped_side_files_name_layers_of_todays_networks(arch):
    """Issue 28, point 4: unit, representation and reliance files written while the hand-written
    networks numbered their layers still name a module of today's network, labelled as the
    layer table labels it now (AlexNet's `trunk.features.2` is `trunk.features.norm1`, conv1)."""
    from explorer import reliance_zoo, representations
    card = models.read_card(arch, REPO / "checkpoints")
    with torch.device("meta"):
        model = models.create(arch, card["preset"])
    live = {ly.path: ly.label for ly in units.probe_layers(arch, card["preset"])}
    u = units.load(REPO / "checkpoints" / arch / units.UNITS, card)
    r = representations.load(REPO / "checkpoints" / arch / representations.FILE, card)
    rel = reliance_zoo.load(REPO / "checkpoints" / arch / reliance_zoo.FILE, card)
    paths = [(ly.path, ly.label) for ly in (u.layers if u else []) + (r.layers if r else [])]
    paths += [(d["path"], d["label"]) for d in (rel.layers if rel else [])]
    assert paths, f"{arch}: no side file read"
    for path, label in paths:
        if path:
            model.get_submodule(path)
            assert label == live[path], (arch, path)
    if rel is not None:
        assert None not in rel.depths, f"{arch}: a reliance layer lost its geometry"


def test_shipped_unit_files_fit_the_budget():
    total = sum((REPO / "checkpoints" / a / units.UNITS).stat().st_size for a in SHIPPED)
    assert total <= 20 * 2**20


# --- deconvnet projections (Zeiler & Fergus 2014) ------------------------------------------

@pytest.mark.parametrize("arch", ["alexnet", "vgg16", "se_resnet18", "mobilenet_v2"])
def test_deconv_projection_stays_inside_the_receptive_field(arch):
    """A unit's projection reaches exactly the pixels its receptive field covers (SE gates held
    fixed), differs from the plain gradient (the ReLU rule is the deconvnet's), and leaves the
    model as it was."""
    torch.manual_seed(0)
    model = models.create(arch).eval()
    assert units.deconv_applicable(model) is None
    x = torch.randn(1, 3, model.input_size, model.input_size)
    before = model(x)
    for depth, ly in enumerate(units.probe_layers(arch)[:2]):
        acts: list = []
        hook = model.get_submodule(ly.path).register_forward_hook(lambda m, i, o: acts.append(o))
        with torch.no_grad():
            model(x)
        hook.remove()
        unit = int(acts[0][0].flatten(1).amax(1).argmax())        # the layer's strongest unit, at its peak
        pos = int(acts[0][0, unit].flatten().argmax())
        proj = units.deconv_projection(model, ly, unit, x, pos)
        assert proj.shape == x.shape[1:] and proj.abs().sum() > 0
        t, left, b, r = units.crop_box(ly, pos, model.input_size)
        outside = proj.abs().sum(0)
        outside[t:b, left:r] = 0
        assert outside.max() == 0, f"{ly.label}: the projection leaves the {ly.rf:g} px receptive field"
        xg = x.clone().requires_grad_(True)
        captured: list = []
        h = model.get_submodule(ly.path).register_forward_hook(lambda m, i, o: captured.append(o))
        model.forward_features(xg)
        h.remove()
        (plain,) = torch.autograd.grad(captured[0][0, unit].flatten()[pos], xg)
        if depth:   # below the first ReLU the two rules differ (above it, through one convolution, they agree)
            assert not torch.allclose(plain[0], proj), "the projection is the plain gradient"
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert torch.equal(model(x), before)


def test_deconv_is_not_offered_where_it_is_undefined():
    for arch in ("vit", "mlp_mixer", "lenet5"):
        with torch.device("meta"):
            model = models.create(arch)
        assert units.deconv_applicable(model)



def test_a_silent_unit_projects_nothing():
    torch.manual_seed(0)
    model = models.create("alexnet").eval()
    layer = units.probe_layers("alexnet")[0]                      # after a ReLU: many zeros
    x = torch.randn(1, 3, 128, 128)
    captured: list = []
    h = model.get_submodule(layer.path).register_forward_hook(lambda m, i, o: captured.append(o))
    with torch.no_grad():
        model(x)
    h.remove()
    unit, pos = [int(v) for v in (captured[0][0].flatten(1) == 0).nonzero()[0]]
    assert units.deconv_projection(model, layer, unit, x, pos).abs().sum() == 0
    live = (captured[0][0].flatten(1) > 0).nonzero()[0]
    assert units.deconv_projection(model, layer, int(live[0]), x, int(live[1])).abs().sum() > 0


@pytest.mark.skipif(data.default_root() is None or "alexnet" not in SHIPPED, reason="needs the data and AlexNet")
def test_units_page_shows_deconvnet_projections(monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    import explorer.zoo
    monkeypatch.delenv("VH_CHECKPOINTS", raising=False)
    monkeypatch.setattr(explorer.zoo, "CHECKPOINTS", REPO / "checkpoints")
    st.cache_resource.clear()
    st.cache_data.clear()
    try:
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=240)
        for k, v in (("arch", "alexnet"), ("layer", "L2"), ("unit", "7")):
            at.query_params[k] = v
        at.switch_page("pages/9_Units.py")
        at.run()
        assert not at.exception
        at.toggle(key="units-deconv").set_value(True).run()
        assert not at.exception, [e.message for e in at.exception]
        captions = [c for im in at.get("image") for c in im.captions]
        assert sum(c.endswith(("· projection", "· silent")) for c in captions) == 9
        assert any("projected back to the pixels by a deconvnet" in c.value for c in at.caption)
    finally:
        st.cache_resource.clear()
        st.cache_data.clear()


# --- the depth sentence (issue 27: it said "rises" over a peak and a dip) -----------------------

@pytest.mark.parametrize("values,want", [
    ([0.19, 0.18, 0.33, 0.49, 0.40, 0.40], "goes up and down with depth and ends higher: 0.19 in L0, lowest 0.18 in L1, "
                                           "highest 0.49 in L3, 0.40 in L5"),
    ([0.19, 0.188, 0.33, 0.49, 0.40], "rises from 0.19 in L0 to a peak of 0.49 in L3, then falls to 0.40 in L4"),  # as shown
    ([0.19, 0.25, 0.49, 0.40], "rises from 0.19 in L0 to a peak of 0.49 in L2, then falls to 0.40 in L3"),
    ([0.10, 0.20, 0.30], "rises with every layer: from 0.10 in L0 to 0.30 in L2"),
    ([0.10, 0.20, 0.20, 0.30], "never falls with depth: from 0.10 in L0 to 0.30 in L3"),
    ([0.30, 0.20, 0.10], "falls with every layer: from 0.30 in L0 to 0.10 in L2"),
    ([0.30, 0.10, 0.20], "falls from 0.30 in L0 to a low of 0.10 in L1, then rises to 0.20 in L2"),
    ([0.2, 0.2, 0.2], "is the same in every layer shown (0.20)"),
    ([0.2001, 0.1999, 0.2004], "is the same in every layer shown (0.20)"),          # equal as shown
    ([0.4, 0.5, 0.5, 0.3], "rises from 0.40 in L0 to a peak of 0.50 in L1, then falls to 0.30 in L3"),  # tied peak
    ([0.40, 0.41, 0.40, 0.42], "stays nearly level with depth, every layer within 5% of the highest: from 0.40 in "
                               "L0 to 0.42 in L3, lowest 0.40 in L0"),
    ([0.40, 0.43, 0.40, 0.42], "goes up and down with depth and ends higher: 0.40 in L0, lowest 0.40 in L0, highest "
                               "0.43 in L1, 0.42 in L3"),                                 # 7%: a direction
])
def test_trend_says_what_the_numbers_show(values, want):
    assert units.trend([(f"L{i}", v) for i, v in enumerate(values)]) == want


def test_the_mixers_flat_selectivity_reads_as_level_not_up_and_down():
    """The MLP-Mixer's mean selectivity, 0.350, 0.352, 0.348, 0.360, 0.360 over its layers, read
    "goes up and down with depth and ends higher" on the Units page: a spread of 3%."""
    pts = [("block 2 of 8", 0.350), ("block 4 of 8", 0.352), ("block 6 of 8", 0.348), ("block 8 of 8", 0.360),
           ("pre-logits", 0.360)]
    assert units.trend(pts, digits=3) == ("stays nearly level with depth, every layer within 4% of the highest: "
                                          "from 0.350 in block 2 of 8 to 0.360 in pre-logits, lowest 0.348 in "
                                          "block 6 of 8")
    # a spread under 1% is rounded up, not said as "within 0%"
    assert units.trend([("a", 0.350), ("b", 0.351), ("c", 0.350)], digits=3).startswith(
        "stays nearly level with depth, every layer within 1% of the highest:")
