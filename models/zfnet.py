"""ZFNet.

Zeiler, Fergus. "Visualizing and Understanding Convolutional Networks." ECCV 2014
(arXiv 2013).

Key idea: look inside. A deconvnet projects activations back to pixels, and what it
showed (aliasing from AlexNet's 11x11 stride-4 first layer, dead filters) led to a
better network: 7x7 stride-2 conv1 and stride-2 conv2, the layout of the paper's Fig. 3.

Layout (224 px): conv1 96 7x7/2 -> 3x3/2 max-pool -> contrast norm -> conv2 256 5x5/2
-> 3x3/2 max-pool -> contrast norm -> conv3 384, conv4 384, conv5 256 (3x3) -> 3x3/2
max-pool -> fc6 4096 -> fc7 4096, giving the paper's 110, 55, 26, 13, 6 map sizes.
"""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

from .alexnet import NUMBERED, conv345, lrn
from .registry import ArchSpec, Paper, Preset, Reported, register
from .zoonet import ZooNet, fc_net, init_kaiming


def zfnet(num_classes: int = 10, in_chans: int = 3, input_size: int = 224, fc_width: int = 4096,
          dropout: float = 0.5) -> ZooNet:
    pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)  # noqa: E731 -- 110 -> 55, 26 -> 13, 13 -> 6
    conv = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(in_chans, 96, 7, stride=2, padding=1)), ("relu1", nn.ReLU(inplace=True)),
        ("pool1", pool()), ("norm1", lrn()),
        ("conv2", nn.Conv2d(96, 256, 5, stride=2)), ("relu2", nn.ReLU(inplace=True)), ("pool2", pool()),
        ("norm2", lrn()),
        *conv345(),
    ]))
    model = fc_net(conv, num_classes, input_size, in_chans, fc_width, dropout)
    init_kaiming(model)
    return model


_DEV = (
    "Contrast normalisation across feature maps is AlexNet's LRN (n=5, k=2, alpha=1e-4, beta=0.75).",
    "Kaiming-normal initialisation instead of N(0, 0.01) (the training recipe draws conv1 from "
    "N(0, 0.01) again, as the paper did).",
)

register(ArchSpec(
    name="zfnet", title="ZFNet", year=2013, family="zfnet", order=0, penultimate="fc7", numbered=NUMBERED,
    blocks=(("trunk.features", "The convolutional stack: AlexNet's, with a 7x7 stride-2 conv1 and a stride-2 conv2."),),
    paper=Paper("Visualizing and Understanding Convolutional Networks", "M. D. Zeiler, R. Fergus",
                "ECCV 2014 (arXiv 1311.2901, 2013)", "https://arxiv.org/abs/1311.2901"),
    key_idea="Deconvnet visualisations show what each layer learns; reading them, the authors "
             "shrank AlexNet's first-layer stride and filter size and won ILSVRC 2013.",
    builds_on="alexnet",
    changed="AlexNet's 11x11 stride-4 conv1 becomes 7x7 stride 2 and conv2 gets stride 2, "
            "removing the aliasing and dead filters the visualisations revealed.",
    reported=Reported(61.6, 83.5, "~60M (not stated exactly)",
                      "Table 2, 1 convnet as per Fig. 3, ILSVRC-2012 val (38.4% / 16.5% error)"),
    builder=zfnet,
    presets={
        "paper": Preset(224, {"input_size": 224, "fc_width": 4096}, deviations=_DEV),
        "explorer": Preset(128, {"input_size": 128, "fc_width": 1024}, deviations=_DEV + (
            "128 px input instead of 224 px, so conv5 ends at 7x7 -> 3x3 after pooling.",
            "fc6/fc7 have 1024 units instead of 4096, to keep the zoo small.",
        )),
    },
))
