"""Network in Network (NiN).

Lin, Chen, Yan. "Network In Network." ICLR 2014 (arXiv 2013).

Key idea: replace each linear convolution filter by a tiny multilayer perceptron slid
over the image ("mlpconv": a conv followed by 1x1 convs), and replace the fully
connected classifier by global average pooling of one feature map per class. The
network becomes far smaller and its last maps read as class confidence maps.

Layout: the authors' ImageNet NiN (the model released with the paper): four mlpconv
blocks, 11x11/4 (96) -> 5x5 (256) -> 3x3 (384) -> 3x3 (1024), each conv followed by
two 1x1 convs, max-pooling 3x3/2 between blocks, dropout 0.5 before the last block,
then global average pooling.

The last 1x1 conv (1024 -> classes) followed by global average pooling equals global
average pooling followed by a linear layer with the same weights (both are linear), so
the head is that linear layer: logits and parameter count are the paper's, and the
class maps are `head.weight` applied to the last block's maps (class activation maps).
"""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

from .registry import ArchSpec, Paper, Preset, Reported, register
from .zoonet import ZooNet, init_kaiming


def mlpconv(cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0, cccps: int = 2) -> nn.Sequential:
    """One mlpconv block: a convolution, then `cccps` 1x1 convolutions ("cascaded cross channel
    parametric pooling", the released model's cccp layers), each followed by a ReLU."""
    layers = [("conv", nn.Conv2d(cin, cout, kernel, stride, padding)), ("relu", nn.ReLU(inplace=True))]
    for i in range(1, cccps + 1):
        layers += [(f"cccp{i}", nn.Conv2d(cout, cout, 1)), (f"relu{i}", nn.ReLU(inplace=True))]
    return nn.Sequential(OrderedDict(layers))


NUMBERED = ("trunk", "trunk.mlpconv*")  # numbered, not named, in checkpoints before 2026-12-05


def nin(num_classes: int = 10, in_chans: int = 3, dropout: float = 0.5) -> ZooNet:
    trunk = nn.Sequential(OrderedDict([
        ("mlpconv1", mlpconv(in_chans, 96, 11, stride=4)), ("pool1", nn.MaxPool2d(3, 2)),
        ("mlpconv2", mlpconv(96, 256, 5, padding=2)), ("pool2", nn.MaxPool2d(3, 2)),
        ("mlpconv3", mlpconv(256, 384, 3, padding=1)), ("pool3", nn.MaxPool2d(3, 2)), ("drop", nn.Dropout(dropout)),
        # its last 1x1 conv (1024 -> classes) is the head; see the module docstring
        ("mlpconv4", mlpconv(384, 1024, 3, padding=1, cccps=1)),
        ("gap", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()),
    ]))
    model = ZooNet(trunk, nn.Linear(1024, num_classes), stem="trunk.mlpconv1.conv")
    init_kaiming(model)
    return model


_DEV = ("Kaiming-normal initialisation instead of the released model's Gaussian init.",)

register(ArchSpec(
    name="nin", title="Network in Network", year=2013, family="nin", order=1, numbered=NUMBERED,
    blocks=(("trunk.mlpconv1", "One mlpconv block: a convolution followed by two 1x1 convolutions, a small MLP slid over the image."),),
    paper=Paper("Network In Network", "M. Lin, Q. Chen, S. Yan", "ICLR 2014 (arXiv 1312.4400, 2013)",
                "https://arxiv.org/abs/1312.4400"),
    key_idea="Micro-networks (1x1 convolutions) inside each convolution layer, and global average "
             "pooling instead of fully connected layers: far fewer parameters, readable class maps.",
    builds_on="alexnet",
    changed="AlexNet's 58M-parameter fully connected classifier disappears: 1x1 convs add depth "
            "cheaply and global average pooling maps each class map straight to a score.",
    reported=Reported(None, None, "7.6M (ImageNet model)", "CIFAR-10",
                      "The paper reports CIFAR-10 (8.81% test error with augmentation), CIFAR-100, "
                      "SVHN and MNIST; its ImageNet model was released without a table."),
    builder=nin,
    presets={
        "paper": Preset(224, deviations=_DEV),
        "explorer": Preset(128, deviations=_DEV + ("128 px input instead of 224 px: the last block "
                                                   "sees 2x2 maps instead of 6x6.",)),
    },
))
