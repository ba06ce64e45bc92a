"""A small ConvNet with batch normalisation.

Ioffe, Szegedy. "Batch Normalization: Accelerating Deep Network Training by Reducing
Internal Covariate Shift." ICML 2015.

Key idea: normalise each layer's pre-activations over the mini-batch, then scale and
shift them with learned parameters. Training tolerates far higher learning rates and
careless initialisation, converges in a fraction of the steps, and needs less dropout.

The paper's own ImageNet network is BN-Inception. This is the vision-hist "small
ConvNet with batch norm": four stages of two 3x3 conv-BN-ReLU layers (32, 64, 128, 256
channels), 2x2 max-pooling between stages, global average pooling and one linear layer.
It shows in the zoo what batch norm alone does for a plain, VGG-like stack.
"""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

from .registry import ArchSpec, Paper, Preset, Reported, register
from .zoonet import ZooNet


def conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict([("conv", nn.Conv2d(cin, cout, 3, padding=1, bias=False)),
                                      ("bn", nn.BatchNorm2d(cout)), ("relu", nn.ReLU(inplace=True))]))


NUMBERED = ("trunk", "trunk.conv*")  # numbered, not named, in checkpoints before 2026-12-05


def bn_convnet(num_classes: int = 10, in_chans: int = 3, widths=(32, 64, 128, 256)) -> ZooNet:
    layers, cin = [], in_chans
    for i, w in enumerate(widths, 1):
        if i > 1:
            layers.append((f"pool{i - 1}", nn.MaxPool2d(2)))
        layers += [(f"conv{i}_1", conv_bn(cin, w)), (f"conv{i}_2", conv_bn(w, w))]
        cin = w
    trunk = nn.Sequential(OrderedDict([*layers, ("gap", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten())]))
    for m in trunk.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return ZooNet(trunk, nn.Linear(cin, num_classes), stem="trunk.conv1_1.conv")


register(ArchSpec(
    name="bn_convnet", title="ConvNet + BatchNorm", year=2015, family="bn_convnet", order=0, numbered=NUMBERED,
    blocks=(("trunk[:MaxPool2d]", "A stage: two 3x3 convolutions, each followed by batch norm and ReLU, then 2x2 max-pooling."),),
    paper=Paper("Batch Normalization: Accelerating Deep Network Training by Reducing Internal "
                "Covariate Shift", "S. Ioffe, C. Szegedy", "ICML 2015", "https://arxiv.org/abs/1502.03167"),
    key_idea="Normalising activations over each mini-batch lets networks train with much higher "
             "learning rates and far less care over initialisation.",
    builds_on="vgg16",
    changed="A smaller VGG-style stack (four stages of two 3x3 convs, 32 to 256 channels, global average "
            "pooling, no fully connected layers) with batch norm after every convolution: depth stops being "
            "a training-stability problem.",
    reported=Reported(None, None, "1.2M (this net)", "-",
                      "Not a paper network: the paper's BN-Inception reached 74.8% top-1 "
                      "(BN-x30, single crop); this small net illustrates the layer."),
    builder=bn_convnet,
    presets={
        "paper": Preset(224, deviations=("A vision-hist design illustrating batch norm, not a network "
                                         "from the paper (whose ImageNet model is BN-Inception).",)),
        "explorer": Preset(128, deviations=("A vision-hist design illustrating batch norm, not a network "
                                            "from the paper (whose ImageNet model is BN-Inception).",)),
    },
))
