"""explorer.reliance: patch shuffling and dropping, FGSM and PGD, transfer, Fourier basis noise and
the effective receptive field, checked against what each measurement promises (issue 29)."""
from __future__ import annotations

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
