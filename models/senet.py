"""SE-ResNet (Squeeze-and-Excitation).

Hu, Shen, Albanie, Sun, Wu. "Squeeze-and-Excitation Networks." CVPR 2018 / TPAMI 2019
(arXiv 2017).

Key idea: a cheap block that models channel relationships. Squeeze each channel to one
number by global average pooling; excite with a two-layer bottleneck (C -> C/16 -> C,
ReLU then sigmoid) that outputs one gate per channel; rescale the channels by their
gates. Added to every residual block, it won ILSVRC 2017 for about 1% more compute.

SE-ResNet-18 here: torchvision's ResNet-18 with an SE block (reduction 16, placed on
the residual branch before the addition, the paper's Fig. 3) in every basic block.
The gates are the output of each block's `se.scale_activation` (a Sigmoid).
"""
from __future__ import annotations

from torch import nn
from torchvision.models.resnet import BasicBlock
from torchvision.ops import SqueezeExcitation

from .registry import ArchSpec, Paper, Preset, Reported, register
from .resnet import resnet

REDUCTION = 16


class SEBasicBlock(BasicBlock):
    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64,
                 dilation=1, norm_layer=None):
        super().__init__(inplanes, planes, stride, downsample, groups, base_width, dilation, norm_layer)
        self.se = SqueezeExcitation(planes, max(planes // REDUCTION, 1), activation=nn.ReLU)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.se(self.bn2(self.conv2(out)))
        return self.relu(out + identity)


def se_resnet(num_classes: int = 10, in_chans: int = 3, layers=(2, 2, 2, 2)):
    return resnet(num_classes, in_chans, layers, block=SEBasicBlock)


register(ArchSpec(
    name="se_resnet18", title="SE-ResNet-18", year=2017, family="senet", order=0,
    blocks=(("trunk.layer2.0", "A residual block with a squeeze-and-excitation gate on its residual branch, before the addition."), ("trunk.layer2.0.se", "The gate itself: global average pool, a bottleneck of two 1x1 convolutions (C -> C/16 -> C), a sigmoid, and a channel-wise product.")),
    paper=Paper("Squeeze-and-Excitation Networks", "J. Hu, L. Shen, S. Albanie, G. Sun, E. Wu",
                "CVPR 2018 / TPAMI 2019 (arXiv 1709.01507, 2017)", "https://arxiv.org/abs/1709.01507"),
    key_idea="Each block squeezes its channels to a vector, passes it through a tiny bottleneck MLP "
             "and rescales every channel by a learned gate: attention over channels.",
    builds_on="resnet18",
    changed="ResNet-18 with a squeeze-and-excitation gate (reduction 16) inside every residual "
            "block; about 0.1M more parameters.",
    reported=Reported(None, None, "11.8M (this net)", "-",
                      "The paper's headline SE-ResNet-50 reaches 76.71% top-1 / 93.38% top-5 "
                      "(single 224 crop, 23.29% / 6.62% error); figures for SE-ResNet-18 are not "
                      "quoted here."),
    builder=se_resnet,
    presets={
        "paper": Preset(224, {"layers": (2, 2, 2, 2)}),
        "explorer": Preset(128, {"layers": (2, 2, 2, 2)},
                           deviations=("128 px input instead of 224 px.",)),
    },
))
