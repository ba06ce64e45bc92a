"""MLP-Mixer.

Tolstikhin et al. "MLP-Mixer: An all-MLP Architecture for Vision." NeurIPS 2021.

Key idea: neither convolution nor attention. Patch tokens pass through blocks of two
MLPs: a token-mixing MLP applied across patches (per channel) and a channel-mixing MLP
applied across channels (per patch). With enough data it rivals ConvNets and ViTs,
showing that the architecture matters less than data and scale.

Built from timm's `MlpMixer` (pre-norm blocks, global average pooling, token MLP width
0.5x and channel MLP width 4x the hidden size, as in the paper's Table 1).
"""
from __future__ import annotations

from timm.models.mlp_mixer import MlpMixer
from torch import nn

from .registry import ArchSpec, Paper, Preset, Reported, register
from .zoonet import ZooNet


def mixer(num_classes: int = 10, in_chans: int = 3, img_size: int = 224, patch_size: int = 16,
          num_blocks: int = 12, embed_dim: int = 768, drop_path_rate: float = 0.0) -> ZooNet:
    trunk = MlpMixer(num_classes=0, img_size=img_size, in_chans=in_chans, patch_size=patch_size,
                     num_blocks=num_blocks, embed_dim=embed_dim, mlp_ratio=(0.5, 4.0),
                     drop_path_rate=drop_path_rate)
    head = nn.Linear(embed_dim, num_classes)
    nn.init.zeros_(head.weight)  # the paper's head initialisation
    nn.init.zeros_(head.bias)
    return ZooNet(trunk, head, stem="trunk.stem.proj")


register(ArchSpec(
    name="mlp_mixer", title="MLP-Mixer", year=2021, family="mixer", order=0,
    blocks=(("trunk.blocks.0", "A Mixer block: a token-mixing MLP applied across patches (on the transposed tokens), then a channel-mixing MLP applied to each patch, each with a residual."),),
    paper=Paper("MLP-Mixer: An all-MLP Architecture for Vision", "I. Tolstikhin et al.", "NeurIPS 2021",
                "https://arxiv.org/abs/2105.01601"),
    key_idea="Only MLPs: one mixes information across patches, the other across channels. No "
             "convolution, no attention, and still competitive at scale.",
    builds_on="vit",
    changed="ViT's self-attention is replaced by a fixed-size MLP across tokens: mixing patches "
            "no longer depends on the input.",
    reported=Reported(76.44, None, "59M (Mixer-B/16)",
                      "Mixer-B/16 trained on ImageNet-1k only, 224 px (the paper's Table 2)"),
    builder=mixer,
    presets={
        "paper": Preset(224, {"img_size": 224, "num_blocks": 12, "embed_dim": 768}),
        "explorer": Preset(128, {"img_size": 128, "num_blocks": 8, "embed_dim": 512,
                                 "drop_path_rate": 0.1}, deviations=(
            "Mixer-S/16 (8 blocks, width 512) instead of Mixer-B/16 (12 blocks, width 768): the "
            "paper's smallest configuration.",
            "128 px input: 64 patches instead of 196.",
            "Stochastic depth 0.1.",
        )),
    },
))
