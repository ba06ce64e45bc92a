"""Anatomy: layer tables that sum to the model's cost, receptive fields from the modules,
stages, block graphs traced from the modules, and alignment of two networks."""
from __future__ import annotations

import pytest

import models
from explorer import anatomy
from models.cost import arch_cost

ARCHS = [s.name for s in models.list_architectures()]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("preset", ["explorer", "paper"])
def test_table_totals_equal_models_cost(arch, preset):
    t = anatomy.table(arch, preset)
    cost = arch_cost(arch, preset)
    assert sum(r.params for r in t.rows) == t.params == cost["params"]
    assert sum(r.macs for r in t.rows) == t.macs
    assert t.macs / 1e9 == pytest.approx(cost["gmacs"], abs=5e-5)
    assert not t.uncalled
    for depth in range(1, anatomy.max_depth(t) + 1):   # folding to blocks keeps the totals
        g = anatomy.group(t, depth)
        assert sum(r.params for r in g) == t.params and sum(r.macs for r in g) == t.macs
    assert sum(s.params for s in anatomy.stages(t)) == t.params
    assert sum(s.macs for s in anatomy.stages(t)) == t.macs


@pytest.mark.parametrize("arch,classes,total", [
    ("alexnet", 10, 58_322_314), ("vgg16", 10, 134_301_514),            # the vision-hist blog's tables
    ("resnet18", 1000, 11_689_512), ("resnet34", 1000, 21_797_672),     # torchvision's references
    ("densenet121", 1000, 7_978_856), ("mobilenet_v2", 1000, 3_504_872), ("googlenet", 1000, 6_624_904),
])
def test_paper_tables_reproduce_published_totals(arch, classes, total):
    assert sum(r.params for r in anatomy.table(arch, "paper", classes).rows) == total


def test_blog_resnet34_total_is_explained():
    """The blog's ResNet-34 (21,298,314 at 10 classes) keeps a bias in all 36 convolutions."""
    t = anatomy.table("resnet34", "paper", 10)
    b = anatomy.conv_biases_dropped("resnet34", "paper", 10)
    assert t.params == 21_289_802 and b["convs"] == 36 and b["missing_biases"] == 8_512
    assert b["with_biases"] == anatomy.BLOG_TOTALS[("resnet34", "paper", 10)] == 21_298_314
    note = anatomy.blog_note("resnet34", "paper", 10, t.params)
    assert "21,289,802 + 8,512 = 21,298,314" in note
    assert "the same" in anatomy.blog_note("alexnet", "paper", 10, anatomy.table("alexnet", "paper").params)


def rf(arch: str, layer: str, preset: str = "paper") -> float:
    t = anatomy.table(arch, preset)
    return next(r.rf for r in t.rows if r.layer == layer)


def test_receptive_fields_match_hand_computed_values():
    assert rf("alexnet", "features.conv1") == 11                   # conv1: 11x11
    assert rf("alexnet", "features.pool1") == 19                   # pool1: 11 + (3 - 1) * 4
    assert rf("alexnet", "features.pool5") == 195                 # pool5, the textbook figure
    assert rf("vgg16", "features.conv1_2") == 5                      # two stacked 3x3 convs see 5x5
    assert rf("vgg16", "features.pool1") == 6                      # then a 2x2 pool
    t = anatomy.table("resnet18", "explorer")
    last = [r for r in t.rows if r.layer.startswith("layer4") and r.spatial][-1]
    assert last.rf == 435 and last.rf > t.input_size and last.jump == 32
    assert rf("zfnet", "features.conv1") == 7


def test_receptive_field_takes_the_wider_branch_and_flags_global_context():
    t = anatomy.table("resnet18", "paper")
    shortcut = next(r for r in t.rows if r.layer == "layer2.0.downsample.0")
    main = next(r for r in t.rows if r.layer == "layer2.0.conv2")
    after_add = [r for r in t.rows if r.layer == "layer2.0.relu"][-1]
    assert shortcut.rf < main.rf == after_add.rf
    se = anatomy.table("se_resnet18", "explorer")
    assert any(r.context for r in se.rows) and not any(r.context for r in t.rows)
    assert anatomy.has_dips(t)


def test_token_models_become_global_at_the_first_mixing():
    t = anatomy.table("vit", "explorer")
    by = {r.layer: r for r in t.rows}
    assert by["patch_embed.proj"].rf == 16 and by["blocks.0.attn.qkv"].rf == 16
    assert by["blocks.0.attn.proj"].rf == anatomy.INF
    m = anatomy.table("mlp_mixer", "explorer")
    by = {r.layer: r for r in m.rows}
    assert by["blocks.0.norm1"].rf == 16 and by["blocks.0.mlp_tokens.fc1"].rf == anatomy.INF
    assert "every token" in anatomy.rf_summary(t)


def test_stages_follow_resolution_and_name_their_layers():
    labels = [s.label for s in anatomy.stages(anatomy.table("alexnet", "paper"))]
    assert labels == ["55x55 · conv1", "27x27 · conv2", "13x13 · conv3-conv5", "classifier · fc6-fc8"]
    labels = [s.label for s in anatomy.stages(anatomy.table("resnet18", "paper"))]
    assert labels[1:5] == ["56x56 · layer1", "28x28 · layer2", "14x14 · layer3", "7x7 · layer4"]
    se = [s.label for s in anatomy.stages(anatomy.table("se_resnet18", "paper"))]
    assert "1x1" not in " ".join(se)                            # the SE detour stays in its stage
    vgg = anatomy.table("vgg16", "paper")
    fc = anatomy.stages(vgg)[-1]
    assert fc.params / vgg.params > 0.85 and fc.macs / vgg.macs < 0.01   # the blog's point about VGG-16
    assert anatomy.cost_summary(vgg).startswith("Most parameters sit in fc6-fc8 (89%)")
    assert [s.label for s in anatomy.stages(vgg)][::5] == ["224x224 · conv1_1-conv1_2", "classifier · fc6-fc8"]
    nin = [s.label for s in anatomy.stages(anatomy.table("nin", "paper"))]
    assert nin == ["54x54 · mlpconv1", "26x26 · mlpconv2", "12x12 · mlpconv3", "5x5 · mlpconv4", "classifier"]


@pytest.mark.parametrize("arch", ARCHS)
def test_block_graphs_are_traced_from_the_modules(arch):
    spec = models.get_spec(arch)
    assert spec.blocks, f"{arch} names no building block"
    for path, caption in spec.blocks:
        for preset in ("explorer", "paper"):
            dot = anatomy.block_graph(arch, path, preset)
            assert dot.startswith("digraph") and 'label="input"' in dot and "->" in dot and caption


def test_block_graph_shows_the_block_design():
    resnet = anatomy.block_graph("resnet18", "trunk.layer2.0")
    assert 'label="+"' in resnet and "1x1 /2, 64->128" in resnet           # the projection shortcut
    assert "concat" in anatomy.block_graph("googlenet", "trunk.inception3a")
    se = anatomy.block_graph("se_resnet18", "trunk.layer2.0.se")
    assert 'label="x"' in se and "sigmoid" in se
    dense = anatomy.block_graph("densenet121", "trunk.features.denseblock1")
    assert dense.count("dense layer") == 6 and dense.count("->") >= 6 + 5 * 6 / 2
    assert "self-attention" in anatomy.block_graph("vit", "trunk.blocks.0")
    assert "transpose" in anatomy.block_graph("mlp_mixer", "trunk.blocks.0")
    vgg_bn = anatomy.block_graph("vgg16", "trunk.features[:MaxPool2d]", "explorer")
    assert vgg_bn.count("\\nBN") == 2 and vgg_bn.count("max-pool") == 1
    alexnet = anatomy.block_graph("alexnet", "trunk.features")       # ReLU, LRN and pools fold into their conv
    assert alexnet.count("shape=box") == 5 and alexnet.count("LRN") == 2


def test_align_marks_what_changed():
    pairs = anatomy.align(anatomy.table("alexnet", "paper").rows, anatomy.table("zfnet", "paper").rows)
    conv1 = pairs[0]
    assert conv1.status == "changed" and "11x11 /4" in conv1.what and "7x7 /2" in conv1.what
    assert sum(p.status == "same" for p in pairs) >= 5
    same = anatomy.align(anatomy.table("resnet18").rows, anatomy.table("resnet18").rows)
    assert all(p.status == "same" for p in same)
    se = anatomy.align(anatomy.table("resnet18").rows, anatomy.table("se_resnet18").rows)
    assert sum(p.status == "only in B" for p in se) == 8 * 5          # 8 SE blocks of 5 layers each
    vgg = anatomy.align(anatomy.table("vgg16", "paper").rows, anatomy.table("vgg16", "explorer").rows)
    assert sum(p.status == "only in B" and p.b.kind == "BatchNorm2d" for p in vgg) == 13
