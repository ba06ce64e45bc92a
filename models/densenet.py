"""DenseNet-121.

Huang, Liu, van der Maaten, Weinberger. "Densely Connected Convolutional Networks."
CVPR 2017 (arXiv 2016).

Key idea: inside a dense block every layer receives the concatenated feature maps of
all layers before it and adds only k (the growth rate, 32) new maps. Features are
reused rather than relearned, gradients reach every layer directly, and the network
needs fewer parameters than a ResNet of similar accuracy.

Built from torchvision's reference DenseNet-121 (growth 32, blocks (6, 12, 24, 16),
BN-ReLU-1x1-BN-ReLU-3x3 bottlenecks, compression 0.5 in transitions: DenseNet-BC),
whose parameter count the tests pin.
"""
from __future__ import annotations

from torchvision.models import DenseNet

from .registry import ArchSpec, Paper, Preset, Reported, register
from .zoonet import lift_head, require_rgb


def densenet121(num_classes: int = 10, in_chans: int = 3):
    require_rgb(in_chans)
    net = DenseNet(growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64,
                   num_classes=num_classes)
    return lift_head(net, "classifier", stem="features.conv0")


register(ArchSpec(
    name="densenet121", title="DenseNet-121", year=2016, family="densenet", order=0,
    blocks=(("trunk.features.denseblock1", "Dense block 1: each of its 6 layers reads the concatenated outputs of the block input and every earlier layer."), ("trunk.features.denseblock1.denselayer1", "One dense layer: a 1x1 bottleneck to 128 channels, then a 3x3 convolution adding 32 new maps.")),
    paper=Paper("Densely Connected Convolutional Networks",
                "G. Huang, Z. Liu, L. van der Maaten, K. Q. Weinberger",
                "CVPR 2017 (arXiv 1608.06993, 2016)", "https://arxiv.org/abs/1608.06993"),
    key_idea="Every layer sees the concatenated outputs of all earlier layers in its block and adds "
             "a few new maps: maximal feature reuse with few parameters.",
    builds_on="resnet34",
    changed="ResNet adds a shortcut to the output; DenseNet concatenates every earlier output, "
            "so 121 layers need only 8M parameters.",
    reported=Reported(74.98, 92.29, "8.0M", "Table 3, single-crop, ILSVRC-2012 val (25.02% / 7.71% error)"),
    builder=densenet121,
    presets={"paper": Preset(224),
             "explorer": Preset(128, deviations=("128 px input instead of 224 px.",))},
))
