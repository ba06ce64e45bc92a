"""MobileNetV2.

Sandler, Howard, Zhu, Zhmoginov, Chen. "MobileNetV2: Inverted Residuals and Linear
Bottlenecks." CVPR 2018.

Key idea: the inverted residual block. Expand a thin bottleneck 6x with a 1x1 conv,
filter it with a cheap depthwise 3x3 conv, project back with a *linear* 1x1 conv (no
ReLU, which would destroy information in a low-dimensional space), and put the shortcut
between the thin ends. Accuracy near ResNet-50's at 300M multiply-adds, for phones.

Built from torchvision's reference MobileNetV2 (width 1.0), whose parameter count the
tests pin.
"""
from __future__ import annotations

from torchvision.models import MobileNetV2

from .registry import ArchSpec, Paper, Preset, Reported, register
from .zoonet import lift_head, require_rgb


def mobilenet_v2(num_classes: int = 10, in_chans: int = 3, width_mult: float = 1.0):
    require_rgb(in_chans)
    net = MobileNetV2(num_classes=num_classes, width_mult=width_mult)
    return lift_head(net, "classifier", stem="features.0.0", index=1)


register(ArchSpec(
    name="mobilenet_v2", title="MobileNetV2", year=2018, family="mobilenet", order=0,
    blocks=(("trunk.features.3", "An inverted residual block: expand 24 -> 144 with a 1x1 convolution, filter each channel with a depthwise 3x3, project back to 24 with a linear 1x1 (no ReLU), add the shortcut."),),
    paper=Paper("MobileNetV2: Inverted Residuals and Linear Bottlenecks",
                "M. Sandler, A. Howard, M. Zhu, A. Zhmoginov, L.-C. Chen", "CVPR 2018",
                "https://arxiv.org/abs/1801.04381"),
    key_idea="Inverted residual blocks with depthwise convolutions and linear bottlenecks: "
             "ResNet-18's ImageNet accuracy (72.0% top-1) at a sixth of its compute, built for phones.",
    builds_on="resnet34",
    changed="The bottleneck block of the deeper ResNets (ResNet-50 on: 1x1 reduce, 3x3, 1x1 expand, "
            "wide-narrow-wide; ResNet-34 uses plain pairs of 3x3 convs) is inverted to narrow-wide-narrow, "
            "its 3x3 conv becomes depthwise, and the ReLU after the last 1x1 is removed.",
    reported=Reported(72.0, None, "3.4M", "Table 4, 224 px, 300M multiply-adds"),
    builder=mobilenet_v2,
    presets={"paper": Preset(224),
             "explorer": Preset(128, deviations=("128 px input instead of 224 px (the paper also "
                                                 "reports 128 px models).",))},
))
