"""explorer.reliance: patch shuffling and dropping, FGSM and PGD, transfer, Fourier basis noise and
the effective receptive field, checked against what each measurement promises (issue 29)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import models
from explorer import reliance


def _images(n=4, size=32, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("grid", [1, 2, 4, 8])
def test_shuffle_keeps_the_multiset_of_patches_and_1x1_is_the_image(grid):
    x = _images()
    s = reliance.shuffle_patches(x, grid, torch.Generator().manual_seed(1))
    if grid == 1:
        assert torch.equal(s, x)
    a, b = reliance.patches(x, grid), reliance.patches(s, grid)
    for i in range(len(x)):   # same patches, as a multiset: sort them by their bytes
        key = lambda p: sorted(tuple(q.flatten().tolist()) for q in p)  # noqa: E731
        assert key(a[i]) == key(b[i])
    if grid > 1:
        assert not torch.equal(s, x)
    assert torch.equal(reliance.unpatch(reliance.patches(x, grid), grid), x)


def test_drop_patches_replaces_the_stated_share_with_the_mean_colour():
    x = _images(2, 32)
    d = reliance.drop_patches(x, 0.25, grid=4, generator=torch.Generator().manual_seed(0))
    changed = (reliance.patches(d, 4) != reliance.patches(x, 4)).flatten(2).any(-1)
    assert changed.sum(1).tolist() == [4, 4]
    assert torch.equal(reliance.drop_patches(x, 0.0, grid=4), x)


def _tiny_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 10)).eval()


@pytest.mark.parametrize("eps", [0.0, 1 / 255, 4 / 255, 16 / 255])
def test_pgd_stays_in_its_ball_and_the_pixel_range_and_never_lowers_the_loss(eps):
    m, x = _tiny_model(), _images(8)
    y = torch.arange(8) % 10
    adv = reliance.pgd(m, x, y, eps, steps=5, random_start=True, generator=torch.Generator().manual_seed(0))
    assert (adv - x).abs().max() <= eps + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    with torch.no_grad():
        before = F.cross_entropy(m(x), y, reduction="none")
        after = F.cross_entropy(m(adv), y, reduction="none")
    assert (after >= before - 1e-6).all()
    if eps == 0:
        assert torch.equal(adv, x)
    if eps >= 4 / 255:
        assert after.mean() > before.mean()
    fg = reliance.fgsm(m, x, y, eps)
    assert (fg - x).abs().max() <= eps + 1e-6 and fg.min() >= 0 and fg.max() <= 1


@pytest.mark.parametrize("u,v", [(1, 0), (0, 3), (5, 7), (16, 16), (31, 2)])
def test_fourier_basis_has_the_stated_norm_and_its_peak_at_its_frequency(u, v):
    b = reliance.fourier_basis(32, u, v, norm=4.0)
    assert float(b.norm()) == pytest.approx(4.0, rel=1e-5)
    spec = torch.fft.fft2(b).abs()
    peaks = {(int(i) // 32, int(i) % 32) for i in spec.flatten().topk(2).indices}
    assert (u, v) in peaks and (-u % 32, -v % 32) in peaks
    with pytest.raises(ValueError):
        reliance.fourier_basis(32, 0, 0)


def test_the_transfer_matrix_diagonal_is_the_white_box_fooling_rate():
    torch.manual_seed(0)
    zoo = {"a": _tiny_model(), "b": nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)).eval()}
    x, y = _images(8), torch.arange(8) % 10
    made = {k: reliance.pgd(m, x, y, 8 / 255, steps=5) for k, m in zoo.items()}
    t = reliance.transfer_matrix(zoo, made, y)
    for k, m in zoo.items():
        assert t[k][k] == reliance.fooling_rate(m, made[k], y)
    assert set(t["a"]) == {"a", "b"}


def test_a_single_convolutions_effective_rf_lies_within_its_kernel():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 5, padding=2)
    erf = reliance.effective_rf(conv, _images(3, 17))
    outside = erf.clone()
    outside[8 - 2:8 + 3, 8 - 2:8 + 3] = 0
    assert outside.sum() == 0 and float(erf.sum()) == pytest.approx(1.0)
    assert reliance.mass_radius(erf, 1.0) <= 2.5


def test_a_trained_network_sees_the_shuffle_and_the_whole_zoo_answers():
    """The shipped ResNet-18, through Normalised: its answers change when the image's patches are
    shuffled, and an 8/255 PGD image fools it more often than the clean one."""
    from pathlib import Path

    from PIL import Image

    from models import data
    repo = Path(__file__).resolve().parent.parent
    model, _ = models.load("resnet18", repo / "checkpoints")
    m = reliance.Normalised(model).eval()
    x = torch.stack([data.preprocess(Image.open(p), 128)[0] for p in sorted((repo / "samples").glob("*.jpg"))[:6]])
    x = (x * torch.tensor(data.STD).view(1, 3, 1, 1) + torch.tensor(data.MEAN).view(1, 3, 1, 1)).clamp(0, 1)
    with torch.no_grad():
        y = m(x).argmax(-1)
    assert reliance.fooling_rate(m, x, y) == 0
    assert reliance.fooling_rate(m, reliance.pgd(m, x, y, 8 / 255, steps=5), y) > 0.5


# --- the zoo-wide side file (explorer.reliance_zoo, scripts/reliance.py) ----------------------

def _lenet_checkpoint(tmp_path, seed=0):
    torch.manual_seed(seed)
    m = models.create("lenet5")
    models.save(m, tmp_path / "lenet5", {"num_classes": 10, "epochs": 1, "title": "LeNet-5",
                                         "classes": [{"wnid": w, "name": n} for w, n in models.data.CLASSES]})
    return models.load("lenet5", tmp_path)


def test_the_reliance_file_refuses_other_weights_and_holds_what_was_measured(tiny_data, tmp_path):
    from explorer import reliance_zoo as rz
    model, card = _lenet_checkpoint(tmp_path)
    result = rz.compute("lenet5", model, card, tiny_data, n_images=20, freqs=(-56, -8, 0, 8, 56), log=lambda s: None)
    path = tmp_path / "lenet5" / rz.FILE
    rz.save(path, result, card, model.input_size)
    r = rz.load(path, card)
    assert r is not None and r.shuffle == pytest.approx(result["shuffle"]) and r.meta["n_images"] == 20
    # the curves start at the clean image: grid 1, nothing hidden and size 0 are the same top-1
    assert r.shuffle[0] == r.drop[0] == r.fgsm[0] == r.pgd[0] == rz.top1(reliance.Normalised(model), *rz.subset(tiny_data, 20)[:2])
    # the Fourier map's centre is the clean error, and (u, v) is (-u, -v)
    f = r.meta["freqs"]
    c = f.index(0)
    assert r.fourier[c, c] == pytest.approx(100 - r.shuffle[0])
    assert np.allclose(r.fourier, r.fourier[::-1, ::-1])
    assert len(r.erf) == len(r.erf_random) == len(r.layers) > 0
    assert all(abs(float(m.sum()) - 1) < 1e-2 for m in r.erf)
    other = dict(card, weights=[dict(w, sha256="0" * 64) for w in card["weights"]])
    assert rz.load(path, other) is None                  # other weights: refused, not shown
    _, card2 = _lenet_checkpoint(tmp_path / "b", seed=1)
    assert rz.load(path, card2) is None


def test_the_zoo_transfer_diagonal_is_white_box_and_retrained_models_drop_out(tiny_data, tmp_path):
    from explorer import reliance_zoo as rz
    torch.manual_seed(0)
    zoo = {"a": _tiny_model(), "b": nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)).eval()}
    zoo = {k: _Sized(m) for k, m in zoo.items()}
    x, y = _images(12), torch.arange(12) % 10
    t = rz.transfer(zoo, x, y, steps=8, log=lambda s: None)
    for k, m in zoo.items():
        w = reliance.Normalised(m).eval()
        with torch.no_grad():
            right = w(x).argmax(-1) == y
        adv = rz.attacked(w, x, y, "pgd", 8)
        assert t[k][k] == round(100 * reliance.fooling_rate(w, adv, y, right), 1)
    cards = {k: {"arch": k, "weights": [{"sha256": k * 64}]} for k in zoo}
    rz.save_transfer(tmp_path / "t.json", t, cards, [f"f{i}" for i in range(12)], "fp")
    assert rz.load_transfer(tmp_path / "t.json", cards)["fooling_rate"] == t
    cards["b"] = {"arch": "b", "weights": [{"sha256": "c" * 64}]}      # b retrained: its row and column go
    assert rz.load_transfer(tmp_path / "t.json", cards) is None         # one model left: no matrix


class _Sized(nn.Module):
    """A test model with the zoo's attributes (`Normalised` reads input_size and in_chans)."""
    def __init__(self, m):
        super().__init__()
        self.m, self.input_size, self.in_chans = m, 32, 3

    def forward(self, x):
        return self.m(x)


def _rel(arch, shuffle, pgd=(90, 50, 20, 5, 0), fgsm=(90, 60, 40, 20, 10), low=0.0, high=0.0, erf=(4.0, 3.0)):
    from explorer import reliance_zoo as rz
    f = (-48, -8, 0, 8, 48)
    band = np.maximum(np.abs(np.array(f))[:, None], np.abs(np.array(f))[None, :])
    fourier = np.where(band >= 40, 10 + high, np.where(band >= 8, 10 + low, 10.0))
    maps = []
    for radius in erf:        # a square of ones of the given half-width in a 32 px map
        m = np.zeros((32, 32), np.float32)
        r = int(radius)
        m[16 - r:16 + r, 16 - r:16 + r] = 1
        maps.append(m / m.sum())
    meta = {"grids": [1, 2, 4, 8, 16], "fractions": [0, .1, .25, .5, .75, .9], "eps_steps": [0, 1, 2, 4, 8],
            "freqs": list(f)}
    layers = [{"label": "stage", "rf": 20.0, "whole": False, "input": 32}]
    return rz.Reliance(arch, list(shuffle), list(shuffle) + [10.0], list(fgsm), list(pgd), fourier, layers,
                       maps[:1], maps[1:], meta)


def test_the_reliance_sentences_name_what_the_numbers_show():
    from explorer import reliance_zoo as rz
    titles = {"resnet18": "ResNet-18", "vgg16": "VGG-16", "vit": "ViT"}
    rel = {"resnet18": _rel("resnet18", (90, 80, 40, 20, 15)), "vgg16": _rel("vgg16", (80, 60, 20, 10, 10)),
           "vit": _rel("vit", (70, 65, 60, 50, 30))}
    s = rz.kept_sentence(rel, titles, "shuffle", 4)
    assert "ViT keeps the most of its clean top-1 above chance (83% of it) and VGG-16 the least (14%)" in s
    assert "more, as Naseer et al. found" in s
    near = dict(rel, vit=_rel("vit", (70, 65, 26, 20, 15)))          # 27% against the CNNs' 26%: too close
    assert "no clear difference on these images" in rz.kept_sentence(near, titles, "shuffle", 4)
    rel["vit"] = _rel("vit", (70, 20, 10, 10, 10))
    assert "the opposite of what Naseer" in rz.kept_sentence(rel, titles, "shuffle", 4)
    chance = {a: _rel(a, (10, 10, 10, 10, 10)) for a in titles}         # untrained: nothing above chance to keep
    assert rz.kept_sentence(chance, titles, "shuffle", 4).startswith("Fewer than two models are above chance")
    a = rz.adversarial_sentence(rel, titles)
    assert "PGD moving each pixel by at most 2/255" in a and "3 of 3 models are at chance" in a and "for 3 of 3 models" in a
    f = rz.fourier_sentence(_rel("resnet18", (90,) * 5, high=30), _rel("vit", (90,) * 5, low=20), "ResNet-18", "ViT")
    assert "changes the error of ResNet-18 by +30 and of ViT by +0 percentage points" in f
    assert "ResNet-18 is the more fragile at high frequencies" in f and "ViT is the more fragile at low" in f
    e = rz.erf_sentence({"resnet18": _rel("resnet18", (90,) * 5, erf=(4.0, 8.0))}, titles)
    assert "narrowed it in 1" in e and "(ResNet-18)" in e and "here it narrows more often" in e
    assert "within 40% of the theoretical radius for ResNet-18's stage" in e            # 4 px of a 20 px field
    # the share against depth: three networks whose share falls as they deepen
    rel3 = {a: _rel(a, (90,) * 5, erf=(r, r)) for a, r in (("resnet18", 2.0), ("vgg16", 4.0), ("vit", 8.0))}
    for a, d in (("resnet18", 12), ("vgg16", 6), ("vit", 2)):
        rel3[a].depths = [d]
    e = rz.erf_sentence(rel3, titles)
    assert "Across 3 networks the share falls" in e and "ρ = -1.00" in e and "as Luo et al. predict" in e
    t = {"steps": 4, "fooling_rate": {"resnet18": {"resnet18": 100, "vgg16": 60, "vit": 10},
                                      "vgg16": {"resnet18": 50, "vgg16": 100, "vit": 20},
                                      "vit": {"resnet18": 5, "vgg16": 15, "vit": 90}}}
    ts = rz.transfer_sentence(t, titles)
    assert "made for ResNet-18, they fool VGG-16 on 60%" in ts
    assert "Between two CNNs they transfer at a median of 55%" in ts and "at 12%: less, as Mahmood" in ts
    t["fooling_rate"]["vgg16"]["resnet18"] = 10                          # CNN to CNN now 10 and 60: median 35
    t["fooling_rate"]["resnet18"]["vgg16"] = 14                          # 12 against 12: too close
    assert "too close to tell apart" in rz.transfer_sentence(t, titles)
    assert "token-mixers:" not in rz.transfer_sentence(t, titles)       # one token-mixer: no such pair
    # two token-mixers (the zoo's ViT and Mixer): their own pair is said apart from the cross-kind median
    titles2 = {**titles, "mlp_mixer": "MLP-Mixer"}
    fr = {a: dict(row) for a, row in t["fooling_rate"].items()}
    for a in fr:
        fr[a]["mlp_mixer"] = 6
    fr["mlp_mixer"] = {"resnet18": 4, "vgg16": 8, "vit": 28, "mlp_mixer": 85}
    fr["vit"]["mlp_mixer"] = 15
    ts = rz.transfer_sentence({"steps": 4, "fooling_rate": fr}, titles2)
    assert ("Between two token-mixers: made for ViT, they fool MLP-Mixer on 15%; made for MLP-Mixer, they fool "
            "ViT on 28%, more than across the two kinds (7%).") in ts
    fr["vit"]["mlp_mixer"], fr["mlp_mixer"]["vit"] = 6, 8                # median 7 against 7
    assert "they fool ViT on 8%: too close to tell apart from across the two kinds (7%)." in rz.transfer_sentence(
        {"steps": 4, "fooling_rate": fr}, titles2)
    fr["vit"]["mlp_mixer"], fr["mlp_mixer"]["vit"] = 1, 1                # median 1 against 7
    assert "they fool ViT on 1%, less than across the two kinds (7%)." in rz.transfer_sentence(
        {"steps": 4, "fooling_rate": fr}, titles2)


def test_the_receptive_field_radius_is_measured_around_the_centre_units_own_centre():
    """Two 3x3 stride-2 convs on 32 px: a 8x8 map whose centre unit (4, 4) looks at (16, 16), not at
    the image's centre (15.5, 15.5). Around its own centre its field (7 px) has radius 3.5 at most;
    around the image's centre the same map would measure wider."""
    from explorer import reliance
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.ReLU(), nn.Conv2d(4, 4, 3, 2, 1))
    erf = reliance.effective_rf(net, _images(4, 32))
    # geometry: first unit centred at 0 (padding 1), a jump of 4 px at the second layer
    centre = reliance.unit_centre(0.0, 4.0, (8, 8))
    assert centre == (16.0, 16.0)
    ys, xs = torch.nonzero(erf > 0, as_tuple=True)
    assert float(ys.float().mean()) == pytest.approx(16.0, abs=0.6) and float(xs.float().mean()) == pytest.approx(16.0, abs=0.6)
    assert reliance.mass_radius(erf, 1.0, centre) <= 3.5
    assert reliance.mass_radius(erf, 1.0) > reliance.mass_radius(erf, 1.0, centre)


def test_the_fourier_map_is_shown_as_error_added_to_the_clean_error():
    from explorer import reliance_zoo as rz
    r = _rel("vit", (60,) * 5, low=20, high=5)
    added = rz.added_error(r)
    c = r.meta["freqs"].index(0)
    assert added[c, c] == 0 and added.max() == 20 and added.min() == 0
