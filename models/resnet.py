"""ResNet-18 and ResNet-34.

He, Zhang, Ren, Sun. "Deep Residual Learning for Image Recognition." CVPR 2016
(arXiv 2015).

Key idea: let each block learn a residual F(x) and add it to an identity shortcut,
y = F(x) + x. Very deep plain networks train worse than shallow ones (degradation);
with shortcuts, depth helps again, and 152 layers won ILSVRC 2015.

Built from torchvision's reference ResNets (basic blocks, projection shortcuts where the
shape changes: the paper's option B), whose parameter counts the tests pin.
"""
from __future__ import annotations

from torchvision.models.resnet import BasicBlock, ResNet

from .registry import ArchSpec, Paper, Preset, Reported, register
from .zoonet import lift_head, require_rgb

PAPER = Paper("Deep Residual Learning for Image Recognition", "K. He, X. Zhang, S. Ren, J. Sun",
              "CVPR 2016 (arXiv 1512.03385, 2015)", "https://arxiv.org/abs/1512.03385")


def resnet(num_classes: int = 10, in_chans: int = 3, layers=(2, 2, 2, 2), block=BasicBlock):
    require_rgb(in_chans)
    return lift_head(ResNet(block, list(layers), num_classes=num_classes), "fc", stem="conv1")


_BLOCK = (("trunk.layer2.0", "A residual basic block: two 3x3 convolutions with batch norm, added to a "
                             "shortcut. This one, the first of stage 2, halves the resolution, so its "
                             "shortcut is a 1x1 stride-2 projection (the paper's option B)."),)
_EXPLORER = ("128 px input instead of 224 px: the last stage sees 4x4 maps instead of 7x7.",)

register(ArchSpec(
    name="resnet18", title="ResNet-18", year=2015, family="resnet", order=1,
    paper=PAPER, blocks=_BLOCK,
    key_idea="Identity shortcuts: each block learns a residual added to its input, so very deep "
             "networks train as easily as shallow ones.",
    builds_on="vgg16",
    changed="VGG-style 3x3 stacks gain batch norm and a shortcut around every pair of convs; VGG's two "
            "4096-wide hidden fully connected layers go (global average pooling, as in NiN and GoogLeNet, "
            "then one classifier layer).",
    reported=Reported(72.12, None, "11.7M", "Table 2, 10-crop testing, ILSVRC-2012 val (27.88% top-1 error)"),
    builder=resnet,
    presets={"paper": Preset(224, {"layers": (2, 2, 2, 2)}),
             "explorer": Preset(128, {"layers": (2, 2, 2, 2)}, deviations=_EXPLORER)},
))

register(ArchSpec(
    name="resnet34", title="ResNet-34", year=2015, family="resnet", order=2,
    paper=PAPER, blocks=_BLOCK,
    key_idea="The same residual blocks, twice as deep: where a plain 34-layer net is worse than "
             "an 18-layer one, the residual 34-layer net is better.",
    builds_on="resnet18",
    changed="ResNet-18's stages deepened from (2, 2, 2, 2) to (3, 4, 6, 3) blocks.",
    reported=Reported(75.48, 92.54, "21.8M", "Table 3, ResNet-34 B, 10-crop testing (24.52% / 7.46% error)"),
    builder=resnet,
    presets={"paper": Preset(224, {"layers": (3, 4, 6, 3)}),
             "explorer": Preset(128, {"layers": (3, 4, 6, 3)}, deviations=_EXPLORER)},
))
