"""AlexNet.

Krizhevsky, Sutskever, Hinton. "ImageNet Classification with Deep Convolutional Neural
Networks." NeurIPS 2012.

Key idea: a deep ConvNet trained on GPUs, with ReLUs, local response normalisation,
overlapping pooling, dropout and data augmentation, beats hand-engineered features on
ImageNet by a wide margin; the start of the deep-learning era in vision.

This is the one-tower network (the paper split it over two GPUs, which only restricts
conv2/4/5 connectivity; the one-tower form is what later work and the vision-hist
tables count): 96 conv1 filters 11x11 stride 4, LRN after conv1 and conv2, 3x3 stride-2
("overlapping") max-pooling, fc6/fc7 of 4096 units with dropout 0.5.

Layers carry the paper's names (`trunk.features.conv1` ... `conv5`, `norm1`, `pool5`,
`trunk.fc67.fc6`, `fc7`); fc8 is the classifier every ZooNet calls `head`.

LRN follows the paper's formula b = a / (k + alpha * sum a^2)^beta with n=5, k=2,
alpha=1e-4, beta=0.75. PyTorch divides alpha by n, so it is passed as alpha * n.
"""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

from .registry import ArchSpec, Paper, Preset, Reported, register
from .zoonet import ZooNet, fc_net, init_kaiming


NUMBERED = ("trunk.features", "trunk.fc67")  # numbered, not named, in checkpoints before 2026-12-05


def lrn() -> nn.LocalResponseNorm:
    return nn.LocalResponseNorm(size=5, alpha=1e-4 * 5, beta=0.75, k=2.0)


def conv345() -> list[tuple[str, nn.Module]]:
    """conv3 (384), conv4 (384), conv5 (256), all 3x3, then the last overlapping max-pool (pool5).
    ZFNet keeps these layers unchanged."""
    return [
        ("conv3", nn.Conv2d(256, 384, 3, padding=1)), ("relu3", nn.ReLU(inplace=True)),
        ("conv4", nn.Conv2d(384, 384, 3, padding=1)), ("relu4", nn.ReLU(inplace=True)),
        ("conv5", nn.Conv2d(384, 256, 3, padding=1)), ("relu5", nn.ReLU(inplace=True)), ("pool5", nn.MaxPool2d(3, 2)),
    ]


def alexnet(num_classes: int = 10, in_chans: int = 3, input_size: int = 227, fc_width: int = 4096,
            dropout: float = 0.5) -> ZooNet:
    conv = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(in_chans, 96, 11, stride=4)), ("relu1", nn.ReLU(inplace=True)), ("norm1", lrn()),
        ("pool1", nn.MaxPool2d(3, 2)),
        ("conv2", nn.Conv2d(96, 256, 5, padding=2)), ("relu2", nn.ReLU(inplace=True)), ("norm2", lrn()),
        ("pool2", nn.MaxPool2d(3, 2)),
        *conv345(),
    ]))
    model = fc_net(conv, num_classes, input_size, in_chans, fc_width, dropout)
    init_kaiming(model)
    return model


register(ArchSpec(
    name="alexnet", title="AlexNet", year=2012, family="alexnet", order=0, penultimate="fc7", numbered=NUMBERED,
    blocks=(("trunk.features", "The convolutional stack: conv, ReLU, local response norm and overlapping max-pool twice, three 3x3 convs, a last pool."),),
    paper=Paper("ImageNet Classification with Deep Convolutional Neural Networks",
                "A. Krizhevsky, I. Sutskever, G. E. Hinton", "NeurIPS 2012",
                "https://papers.nips.cc/paper/4824-imagenet-classification-with-deep-convolutional-neural-networks"),
    key_idea="A large ConvNet trained on two GPUs with ReLUs, dropout, overlapping pooling and "
             "heavy augmentation cut ImageNet top-5 error from 26% to 15%: deep learning wins vision.",
    builds_on="lenet5",
    changed="Scaled LeNet's convolution-and-pooling recipe up 1000x: ReLU instead of tanh, dropout "
            "in the fully connected layers, GPUs, and ImageNet-sized data.",
    reported=Reported(59.3, 81.8, "60M", "Table 2, one CNN, ILSVRC-2012 val (40.7% / 18.2% error)"),
    builder=alexnet,
    presets={
        "paper": Preset(227, {"input_size": 227, "fc_width": 4096}, deviations=(
            "One tower: conv2, conv4, conv5 see all channels of the layer below (the paper split "
            "them across two GPUs).",
            "Kaiming-normal initialisation instead of N(0, 0.01) with unit biases (the training recipe "
            "draws conv1 from N(0, 0.01) again, as the paper did).",
        )),
        "explorer": Preset(128, {"input_size": 128, "fc_width": 1024}, deviations=(
            "One tower: conv2, conv4, conv5 see all channels of the layer below (the paper split "
            "them across two GPUs).",
            "Kaiming-normal initialisation instead of N(0, 0.01) with unit biases (the training recipe "
            "draws conv1 from N(0, 0.01) again, as the paper did).",
            "128 px input instead of 227 px, so conv5 gives 6x6 maps instead of 13x13 and pool5 2x2 instead of 6x6.",
            "fc6/fc7 have 1024 units instead of 4096, to keep the zoo small.",
        )),
    },
))
