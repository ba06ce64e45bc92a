"""The zoo: published parameter counts, both presets of every architecture, probes, save/load."""
from __future__ import annotations

import pytest
import torch

import models
from models import checkpoint, probes
from models.cost import count_params, gmacs

ARCHS = [s.name for s in models.list_architectures()]


@pytest.mark.parametrize("name,preset,num_classes,expected", [
    ("alexnet", "paper", 10, 58_322_314),       # vision-hist tables: 227 px, one tower, LRN
    ("vgg16", "paper", 10, 134_301_514),
    ("resnet18", "paper", 1000, 11_689_512),    # torchvision's reference builds
    ("resnet34", "paper", 1000, 21_797_672),
    ("densenet121", "paper", 1000, 7_978_856),
    ("mobilenet_v2", "paper", 1000, 3_504_872),
    ("googlenet", "paper", 1000, 6_624_904),
    ("vit", "paper", 1000, 86_567_656),         # ViT-B/16
    ("lenet5", "paper", 10, 60_000),            # the paper: "60,000 trainable parameters"
    ("mlp_mixer", "paper", 1000, 59_880_472),   # Mixer-B/16 (timm's mixer_b16_224)
])
def test_paper_parameter_counts(name, preset, num_classes, expected):
    assert count_params(models.create(name, preset, num_classes=num_classes)) == expected


def test_registry_is_complete_and_ordered():
    specs = models.list_architectures()
    assert [s.year for s in specs] == sorted(s.year for s in specs)
    for expected in ["lenet5", "alexnet", "zfnet", "nin", "vgg16", "googlenet", "bn_convnet", "resnet18",
                     "resnet34", "densenet121", "se_resnet18", "mobilenet_v2", "vit", "mlp_mixer"]:
        assert expected in ARCHS
    for s in specs:
        assert s.paper.title and s.paper.authors and s.key_idea and s.changed
        assert s.presets["explorer"].input_size <= 160
        if s.presets["explorer"].kwargs != s.presets["paper"].kwargs or \
                s.presets["explorer"].input_size != s.presets["paper"].input_size:
            assert s.presets["explorer"].deviations, f"{s.name}: explorer differs but lists no deviation"
    with pytest.raises(KeyError, match="unknown architecture"):
        models.get_spec("resnet9000")


def test_alexnet_paper_layer_sizes():
    m = models.create("alexnet", "paper")
    conv = m.trunk.features
    assert (conv.conv1.out_channels, conv.conv1.kernel_size, conv.conv1.stride) == (96, (11, 11), (4, 4))
    lrn = conv.norm1
    assert (lrn.size, lrn.alpha / lrn.size, lrn.beta, lrn.k) == (5, pytest.approx(1e-4), 0.75, 2.0)
    assert (conv.pool1.kernel_size, conv.pool1.stride) == (3, 2)  # overlapping pooling
    assert conv(torch.zeros(1, 3, 227, 227)).shape == (1, 256, 6, 6)
    assert m.trunk.fc67.fc6.out_features == m.trunk.fc67.fc7.out_features == 4096 and m.trunk.fc67.drop6.p == 0.5
    assert m.stem is conv.conv1 and m.head.in_features == 4096   # the head is the paper's fc8


def test_hand_written_networks_name_their_layers_as_the_papers_do():
    """Issue 28, point 4: AlexNet's conv1-conv5 and fc6-fc7, VGG's conv1_1-conv5_3, NiN's mlpconv
    blocks with their cccp layers, not positions in a Sequential."""
    def convs(arch):
        return [n.removeprefix("trunk.") for n, m in models.create(arch).named_modules()
                if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert convs("alexnet") == [f"features.conv{i}" for i in range(1, 6)] + ["fc67.fc6", "fc67.fc7", "head"]
    assert convs("zfnet") == convs("alexnet")
    assert convs("vgg16")[:13] == [f"features.conv{s}_{k}" for s, n in enumerate((2, 2, 3, 3, 3), 1)
                                   for k in range(1, n + 1)]
    assert convs("nin")[:4] == ["mlpconv1.conv", "mlpconv1.cccp1", "mlpconv1.cccp2", "mlpconv2.conv"]
    assert convs("bn_convnet")[:3] == ["conv1_1.conv", "conv1_2.conv", "conv2_1.conv"]
    for arch in ("alexnet", "zfnet", "vgg16", "nin", "bn_convnet"):
        named = [n for n, _ in models.create(arch).named_modules() if n]
        assert not [n for n in named if any(p.isdigit() for p in n.split("."))], arch


def test_zfnet_map_sizes_match_figure_3():
    conv = models.create("zfnet", "paper").trunk.features
    x, sizes = torch.zeros(1, 3, 224, 224), []
    for layer in conv:
        x = layer(x)
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.MaxPool2d)):
            sizes.append(x.shape[-1])
    assert sizes == [110, 55, 26, 13, 13, 13, 13, 6]


def test_lenet_c3_connection_table():
    c3 = models.create("lenet5", "paper").trunk.c3
    assert c3.weight.numel() + c3.bias.numel() == 1516
    w = c3.dense_weight()
    assert (w[0, 3:] == 0).all() and (w[15] != 0).any(dim=(1, 2)).all()


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("preset", ["explorer", "paper"])
def test_forward_and_probes(name, preset):
    torch.manual_seed(0)
    m = models.create(name, preset).eval()
    s = m.input_size
    x = torch.randn(2, m.in_chans, s, s)
    with torch.no_grad():
        logits = m(x)
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()

    w = probes.first_layer_weights(m)
    assert w.dim() == 4 and w.shape[1] == m.in_chans
    acts = probes.first_layer_activations(m, x)
    assert acts.shape[:2] == (2, w.shape[0])
    feats = probes.penultimate(m, x)
    assert feats.shape[0] == 2 and feats.dim() == 2
    assert torch.allclose(m.head(feats), logits, atol=1e-5)
    p, i = probes.topk(m, x, 5)
    assert p.shape == i.shape == (2, 5) and (p[:, :-1] >= p[:, 1:]).all()

    reasons = probes.available(m)
    if reasons["se_gates"] is None:
        gates = probes.se_gates(m, x)
        assert len(gates) == 8 and all(g.shape[0] == 2 and ((g > 0) & (g < 1)).all() for g in gates)
    else:
        with pytest.raises(probes.ProbeUnavailable, match="Squeeze-and-Excitation"):
            probes.se_gates(m, x)
    if reasons["attention"] is None:
        att = probes.attention_maps(m, x)
        n = probes.prefix_tokens(m) + probes.patch_grid(m)[0] * probes.patch_grid(m)[1]
        depth, heads = len(m.trunk.blocks), m.trunk.blocks[0].attn.num_heads
        assert att.shape == (2, depth, heads, n, n)
        assert torch.allclose(att.sum(-1), torch.ones(()), atol=1e-5)
    else:
        with pytest.raises(probes.ProbeUnavailable, match="self-attention"):
            probes.attention_maps(m, x)

    # probes leave the model as they found it
    assert probes.hook_count(m) == 0
    with torch.no_grad():
        assert torch.equal(m(x), logits)


@pytest.mark.parametrize("name", ARCHS)
def test_save_load_identical_logits(name, tmp_path):
    torch.manual_seed(0)
    m = models.create(name, "explorer").eval()
    # round to what int8 storage keeps first; then the logits must survive saving exactly
    m.load_state_dict(checkpoint.dequantize(checkpoint.stored_state(m, "int8")))
    models.save(m, tmp_path / name, {"classes": [], "num_classes": 10})
    loaded, card = models.load(name, tmp_path)
    x = torch.randn(2, m.in_chans, m.input_size, m.input_size)
    with torch.no_grad():
        assert torch.equal(loaded(x), m(x))
    assert card["arch"] == name and card["input_size"] == m.input_size
    assert probes.hook_count(loaded) == 0


def test_gmacs_are_computed():
    assert gmacs(models.create("resnet18", "paper", num_classes=1000)) == pytest.approx(1.82, abs=0.02)
    assert gmacs(models.create("vgg16", "paper", num_classes=1000)) == pytest.approx(15.47, abs=0.05)


def test_gmacs_count_attention():
    """ViT-B/16 is 17.6 GMACs with its attention matrix products counted (fused kernels hide them)."""
    assert gmacs(models.create("vit", "paper", num_classes=1000)) == pytest.approx(17.56, abs=0.02)


def test_each_architecture_builds_on_an_earlier_one():
    """Home's "What changed since X" names the architecture the text is written against."""
    specs = {s.name: s for s in models.list_architectures()}
    for s in specs.values():
        if s.name == "lenet5":
            assert s.builds_on is None
            continue
        assert s.builds_on in specs and specs[s.builds_on].year <= s.year, s.name
    assert specs["se_resnet18"].builds_on == "resnet18" and specs["mlp_mixer"].builds_on == "vit"
