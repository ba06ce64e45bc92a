"""Vision Transformer (ViT).

Dosovitskiy et al. "An Image is Worth 16x16 Words: Transformers for Image Recognition
at Scale." ICLR 2021 (arXiv 2020).

Key idea: no convolutions after the first linear patch projection. Cut the image into
16x16 patches, embed each as a token, prepend a learnable [CLS] token, add position
embeddings, and run a standard Transformer encoder; classify from [CLS]. With little
inductive bias it needs much data (or strong augmentation) but scales further than
ConvNets.

Built from timm's `VisionTransformer` (pre-norm blocks, class token, learned position
embeddings, GELU MLPs). The attention probabilities are exposed by switching the
instance's fused attention off (see `models/probes.py`).
"""
from __future__ import annotations

from timm.models.vision_transformer import VisionTransformer
from torch import nn

from .registry import ArchSpec, Paper, Preset, Reported, register
from .zoonet import ZooNet


def vit(num_classes: int = 10, in_chans: int = 3, img_size: int = 224, patch_size: int = 16,
        embed_dim: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.0) -> ZooNet:
    trunk = VisionTransformer(img_size=img_size, patch_size=patch_size, in_chans=in_chans, num_classes=0,
                              embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
                              drop_path_rate=drop_path_rate)
    head = nn.Linear(embed_dim, num_classes)
    nn.init.trunc_normal_(head.weight, std=0.02)
    nn.init.zeros_(head.bias)
    return ZooNet(trunk, head, stem="trunk.patch_embed.proj")


register(ArchSpec(
    name="vit", title="Vision Transformer", year=2020, family="vit", order=0,
    blocks=(("trunk.blocks.0", "A Transformer encoder block: layer norm, multi-head self-attention, residual; layer norm, MLP, residual."),),
    paper=Paper("An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale",
                "A. Dosovitskiy et al.", "ICLR 2021 (arXiv 2010.11929, 2020)", "https://arxiv.org/abs/2010.11929"),
    key_idea="Images as sequences of 16x16 patch tokens fed to a plain Transformer: global "
             "self-attention from the first layer, and no convolutional inductive bias.",
    builds_on="resnet34",
    changed="Convolutions and pooling are gone: after one linear patch projection every layer is "
            "self-attention plus an MLP over all patches at once.",
    reported=Reported(77.9, None, "86M (ViT-B/16)",
                      "ViT-B/16 trained on ImageNet-1k only (the paper's appendix table); with "
                      "large pre-training it reaches 84-85%"),
    builder=vit,
    presets={
        "paper": Preset(224, {"img_size": 224, "embed_dim": 768, "depth": 12, "num_heads": 12}),
        "explorer": Preset(128, {"img_size": 128, "embed_dim": 192, "depth": 12, "num_heads": 3,
                                 "drop_path_rate": 0.1}, deviations=(
            "DeiT-Tiny size (width 192, 3 heads) instead of ViT-B/16 (width 768, 12 heads); same "
            "depth (12), patch size (16) and block design.",
            "128 px input: an 8x8 grid of patches (64 tokens + [CLS]) instead of 14x14.",
            "Stochastic depth 0.1 (DeiT's regulariser for training on ImageNet-sized data).",
        )),
    },
))
