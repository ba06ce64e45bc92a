"""`ZooNet`: the one shape every architecture in vision-hist takes.

A network is split where every paper agrees it can be split:

    image --trunk--> pre-logit vector (fc7, or pooled features) --head--> logits

* ``trunk``  -- everything up to and including the penultimate representation;
* ``head``   -- the final classifier (an ``nn.Linear`` for every network except
  LeNet-5, whose head is the paper's Euclidean RBF layer);
* ``stem``   -- the first layer that sees pixels (conv1, or the patch embedding),
  found by its dotted path so weights and activations can be read uniformly.

Library models (torchvision, timm) are wrapped, not rewritten: their own classifier is
replaced by ``Identity`` and lifted out as ``head``, so parameter counts are unchanged.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


class ZooNet(nn.Module):
    def __init__(self, trunk: nn.Module, head: nn.Module, stem: str):
        super().__init__()
        self.trunk = trunk
        self.head = head
        self.stem_path = stem
        self.get_submodule(stem)  # fail at build time if the path is wrong
        # filled in by models.create
        self.arch = ""
        self.preset_name = ""
        self.input_size = 0
        self.in_chans = 3

    @property
    def stem(self) -> nn.Module:
        return self.get_submodule(self.stem_path)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features: fc7 for AlexNet/ZFNet/VGG, pre-logits for the rest."""
        return self.trunk(x)

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))


def lift_head(model: nn.Module, attr: str, stem: str, index: int | None = None) -> ZooNet:
    """Wrap a library model whose classifier is `model.<attr>` (or `model.<attr>[index]`).

    The classifier is replaced by ``Identity`` inside the trunk and becomes the head.
    """
    parent = getattr(model, attr)
    if index is None:
        head = parent
        setattr(model, attr, nn.Identity())
    else:
        head = parent[index]
        parent[index] = nn.Identity()
    return ZooNet(model, head, stem=f"trunk.{stem}")


def init_kaiming(module: nn.Module) -> None:
    """He et al. (2015) initialisation for convs and linears, zero biases.

    Used by the hand-written early nets in place of their papers' fixed-std Gaussians,
    which train poorly without the papers' hand-tuned schedules (listed as a deviation).
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def fc67(in_features: int, width: int, dropout: float = 0.5) -> nn.Sequential:
    """The fc6/fc7 pair of AlexNet, ZFNet and VGG: Linear-ReLU-Dropout twice.

    The trunk ends here, so its output is the fc7 activation the AlexNet paper uses
    for retrieval (after ReLU; dropout is inactive at evaluation).
    """
    return nn.Sequential(OrderedDict([
        ("flatten", nn.Flatten()),
        ("fc6", nn.Linear(in_features, width)), ("relu6", nn.ReLU(inplace=True)), ("drop6", nn.Dropout(dropout)),
        ("fc7", nn.Linear(width, width)), ("relu7", nn.ReLU(inplace=True)), ("drop7", nn.Dropout(dropout)),
    ]))


def flat_size(conv: nn.Module, input_size: int, in_chans: int) -> int:
    """Number of features a conv stack emits for one square input: what fc6 must accept."""
    with torch.no_grad():
        return conv(torch.zeros(1, in_chans, input_size, input_size)).numel()


def require_rgb(in_chans: int) -> None:
    if in_chans != 3:
        raise ValueError(f"this architecture is built for RGB input, not {in_chans} channels")


def fc_net(conv: nn.Module, num_classes: int, input_size: int, in_chans: int, fc_width: int,
           dropout: float) -> ZooNet:
    """AlexNet-style assembly: conv stack -> fc6/fc7 (the trunk ends at fc7) -> linear head (the
    papers' fc8). The stem is the conv stack's first layer."""
    trunk = nn.Sequential()
    trunk.add_module("features", conv)
    trunk.add_module("fc67", fc67(flat_size(conv, input_size, in_chans), fc_width, dropout))
    return ZooNet(trunk, nn.Linear(fc_width, num_classes), stem=f"trunk.features.{next(iter(conv._modules))}")
