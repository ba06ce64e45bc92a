"""GoogLeNet (Inception-v1).

Szegedy et al. "Going Deeper with Convolutions." CVPR 2015 (arXiv 2014).

Key idea: the Inception module runs 1x1, 3x3 and 5x5 convolutions and a pooling branch
side by side and concatenates them, with 1x1 "bottleneck" convolutions in front of the
expensive branches, so a 22-layer network costs 1.5 GMACs and 12x fewer parameters than
AlexNet.

Built from torchvision's reference `GoogLeNet` (without the auxiliary classifiers, which
only help training), whose parameter count the tests pin. Its differences from the
paper are listed in the spec.
"""
from __future__ import annotations

from torchvision.models import GoogLeNet
from .registry import ArchSpec, Paper, Preset, Reported, register
from .zoonet import lift_head, require_rgb


def googlenet(num_classes: int = 10, in_chans: int = 3, dropout: float = 0.4):
    net = GoogLeNet(num_classes=num_classes, aux_logits=False, transform_input=False,
                    init_weights=True, dropout=dropout)
    require_rgb(in_chans)
    return lift_head(net, "fc", stem="conv1.conv")


_DEV = (
    "torchvision's reference build: batch norm after every convolution, no LRN (the paper "
    "predates batch norm and used LRN after the stem).",
    "The '5x5' branch of each Inception module uses a 3x3 kernel, as in torchvision's build "
    "(torchvision issue 906); the parameter count is torchvision's.",
    "No auxiliary classifiers.",
)

register(ArchSpec(
    name="googlenet", title="GoogLeNet", year=2014, family="googlenet", order=1,
    blocks=(("trunk.inception3a", "An Inception module (3a): 1x1, 3x3 and '5x5' branches and a pooling branch side by side, concatenated; 1x1 convolutions shrink the channels first."),),
    paper=Paper("Going Deeper with Convolutions", "C. Szegedy et al.", "CVPR 2015 (arXiv 1409.4842, 2014)",
                "https://arxiv.org/abs/1409.4842"),
    key_idea="Inception modules: parallel 1x1, 3x3, 5x5 and pooling branches with 1x1 bottlenecks, "
             "22 layers deep at a fraction of VGG's cost.",
    builds_on="vgg16",
    changed="Where VGG (the same year) stacks uniform 3x3 convs, each layer mixes several receptive fields, and 1x1 "
            "bottlenecks plus global average pooling (from NiN) keep it to 6.8M parameters (6.6M in "
            "torchvision's build, used here, at 1000 classes).",
    reported=Reported(None, 89.93, "6.8M",
                      "performance break-down table: 1 model, 1 crop, ILSVRC-2014 val "
                      "top-5 error 10.07%; top-1 is not reported"),
    builder=googlenet,
    presets={
        "paper": Preset(224, deviations=_DEV),
        "explorer": Preset(128, deviations=_DEV + ("128 px input instead of 224 px.",)),
    },
))
