"""VGG-16 (configuration D).

Simonyan, Zisserman. "Very Deep Convolutional Networks for Large-Scale Image
Recognition." ICLR 2015 (arXiv 2014).

Key idea: depth through uniformity. Only 3x3 convolutions (two stacked 3x3 see a 5x5
field, three see 7x7, with fewer parameters and more non-linearities), 2x2 max-pooling,
widths doubling 64 -> 512, then AlexNet's fc6/fc7/fc8: 16 weight layers, 138M parameters.

The conv layers are torchvision's `cfgs["D"]`, named as the released Caffe model names them
(conv1_1 ... conv5_3, pool1 ... pool5; bn1_1 ... with batch norm). The classifier is the
paper's: fc6 reads the flattened last pooled maps directly (7x7 at 224 px), so no
adaptive pooling stands in between.
"""
from __future__ import annotations

from collections import OrderedDict

from torch import nn
from torchvision.models.vgg import cfgs

from .registry import ArchSpec, Paper, Preset, Reported, register
from .alexnet import NUMBERED
from .zoonet import ZooNet, fc_net, require_rgb


def features(cfg: list, batch_norm: bool) -> nn.Sequential:
    """torchvision's `make_layers`, with each layer named by its stage and place in it."""
    layers, cin, stage, k = [], 3, 1, 0
    for v in cfg:
        if v == "M":
            layers.append((f"pool{stage}", nn.MaxPool2d(2, 2)))
            stage, k = stage + 1, 0
            continue
        k += 1
        layers.append((f"conv{stage}_{k}", nn.Conv2d(cin, v, 3, padding=1)))
        if batch_norm:
            layers.append((f"bn{stage}_{k}", nn.BatchNorm2d(v)))
        layers.append((f"relu{stage}_{k}", nn.ReLU(inplace=True)))
        cin = v
    return nn.Sequential(OrderedDict(layers))


def vgg16(num_classes: int = 10, in_chans: int = 3, input_size: int = 224, fc_width: int = 4096,
          batch_norm: bool = False, dropout: float = 0.5) -> ZooNet:
    require_rgb(in_chans)
    model = fc_net(features(cfgs["D"], batch_norm), num_classes, input_size, in_chans, fc_width, dropout)
    for m in model.modules():  # torchvision's VGG initialisation
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
    return model


register(ArchSpec(
    name="vgg16", title="VGG-16", year=2014, family="vgg", order=0, penultimate="fc7", numbered=NUMBERED,
    blocks=(("trunk.features[:MaxPool2d]", "The first stage: two 3x3 convolutions, then 2x2 max-pooling; four more stages repeat it with more channels."),),
    paper=Paper("Very Deep Convolutional Networks for Large-Scale Image Recognition",
                "K. Simonyan, A. Zisserman", "ICLR 2015 (arXiv 1409.1556, 2014)",
                "https://arxiv.org/abs/1409.1556"),
    key_idea="Stacks of small 3x3 convolutions, 16 weight layers deep: depth, not clever filter "
             "shapes, is what buys accuracy.",
    builds_on="alexnet",
    changed="AlexNet's mix of 11x11, 5x5 and 3x3 filters becomes only 3x3, and depth doubles "
            "from 8 to 16 weight layers.",
    reported=Reported(74.4, 91.9, "138M",
                      "Table 3, configuration D, train scale [256;512], test scale 384 "
                      "(25.6% / 8.1% error, single scale)"),
    builder=vgg16,
    presets={
        "paper": Preset(224, {"input_size": 224, "fc_width": 4096}, deviations=(
            "Kaiming initialisation (torchvision's) instead of pre-training shallower configuration A.",
        )),
        "explorer": Preset(128, {"input_size": 128, "fc_width": 512, "batch_norm": True}, deviations=(
            "Batch norm after every conv (VGG-16-BN): plain VGG-16 does not train from scratch in a "
            "short schedule without the paper's staged initialisation.",
            "128 px input instead of 224 px, so fc6 reads 4x4x512 maps instead of 7x7x512.",
            "fc6/fc7 have 512 units instead of 4096, to keep the zoo small.",
        )),
    },
))
