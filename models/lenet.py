"""LeNet-5.

LeCun, Bottou, Bengio, Haffner. "Gradient-Based Learning Applied to Document
Recognition." Proceedings of the IEEE, 1998.

Key idea: learn the feature extractor end to end with backpropagation. Local receptive
fields, shared weights (convolution) and spatial sub-sampling build shift-tolerant
features, so a small network of 60,000 trainable parameters reads handwritten digits.

Faithful details kept here:
* C1 (6 maps, 5x5) -> S2 (trainable 2x2 sub-sampling: sum x coefficient + bias)
  -> C3 (16 maps, 5x5, the paper's Table I connection scheme: 1,516 parameters)
  -> S4 -> C5 (120 maps, 5x5) -> F6 (84 units) -> Euclidean RBF output.
* The squashing function f(a) = 1.7159 tanh(2a/3) after every layer.
* RBF output y_i = sum_j (x_j - w_ij)^2 with fixed (non-trainable) +-1 codes; logits are -y.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from .registry import ArchSpec, Paper, Preset, Reported, register
from .zoonet import ZooNet

# Table I of the paper: which S2 maps (columns) feed each C3 map (rows).
C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


class Squash(nn.Module):
    """f(a) = A tanh(S a), A = 1.7159, S = 2/3 (the paper's Appendix A)."""

    def forward(self, x):
        return 1.7159 * torch.tanh(x * (2.0 / 3.0))


class Subsample(nn.Module):
    """S2/S4: sum of each 2x2 block times a trainable coefficient, plus a trainable bias."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), 0.25))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        s = F.avg_pool2d(x, 2) * 4.0
        return s * self.weight[None, :, None, None] + self.bias[None, :, None, None]


class SparseConv(nn.Module):
    """C3: a 5x5 convolution in which each output map sees only some input maps.

    Only the connected kernels are parameters (1,500 weights + 16 biases), scattered
    into a dense kernel at run time.
    """

    def __init__(self, table, in_channels: int, kernel_size: int = 5):
        super().__init__()
        out_idx, in_idx = zip(*[(o, i) for o, ins in enumerate(table) for i in ins])
        self.out_channels, self.in_channels = len(table), in_channels
        self.out_idx, self.in_idx = list(out_idx), list(in_idx)  # plain lists: nothing to load or move
        fan_in = torch.tensor([len(ins) for ins in table], dtype=torch.float)
        bound = (2.4 / (fan_in[list(out_idx)] * kernel_size ** 2)).view(-1, 1, 1)  # paper's init range
        self.weight = nn.Parameter((torch.rand(len(out_idx), kernel_size, kernel_size) * 2 - 1) * bound)
        self.bias = nn.Parameter(torch.zeros(len(table)))

    def dense_weight(self) -> torch.Tensor:
        k = self.weight.shape[-1]
        w = self.weight.new_zeros(self.out_channels, self.in_channels, k, k)
        w[torch.tensor(self.out_idx, device=w.device), torch.tensor(self.in_idx, device=w.device)] = self.weight
        return w

    def forward(self, x):
        return F.conv2d(x, self.dense_weight(), self.bias)


class RBFOutput(nn.Module):
    """Euclidean radial basis units with fixed +-1 codes; returns -distance as logits."""

    def __init__(self, in_features: int, num_classes: int, seed: int = 5):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        codes = torch.randint(0, 2, (num_classes, in_features), generator=g).float() * 2 - 1
        self.register_buffer("codes", codes)

    def forward(self, x):
        return -torch.cdist(x, self.codes).pow(2)


def lenet5(num_classes: int = 10, in_chans: int = 1, **_) -> ZooNet:
    trunk = nn.Sequential()
    trunk.add_module("c1", nn.Conv2d(in_chans, 6, 5))
    trunk.add_module("act1", Squash())
    trunk.add_module("s2", Subsample(6))
    trunk.add_module("act2", Squash())
    trunk.add_module("c3", SparseConv(C3_TABLE, 6))
    trunk.add_module("act3", Squash())
    trunk.add_module("s4", Subsample(16))
    trunk.add_module("act4", Squash())
    trunk.add_module("c5", nn.Conv2d(16, 120, 5))
    trunk.add_module("act5", Squash())
    trunk.add_module("flatten", nn.Flatten())
    trunk.add_module("f6", nn.Linear(120, 84))
    trunk.add_module("act6", Squash())
    return ZooNet(trunk, RBFOutput(84, num_classes), stem="trunk.c1")


register(ArchSpec(
    name="lenet5", title="LeNet-5", year=1998, family="lenet", order=0,
    blocks=(("trunk", "The whole trunk: C1, S2 (trainable sub-sampling), C3 (sparse connections), S4, C5, F6, each followed by the scaled tanh."),),
    paper=Paper("Gradient-Based Learning Applied to Document Recognition",
                "Y. LeCun, L. Bottou, Y. Bengio, P. Haffner", "Proceedings of the IEEE, 1998",
                "http://yann.lecun.com/exdb/publis/pdf/lecun-98.pdf"),
    key_idea="Convolutions with shared weights and sub-sampling, trained end to end by "
             "backpropagation, replace hand-designed feature extractors.",
    changed="Before it, recognisers read hand-crafted features, or fed every pixel to fully connected layers.",
    reported=Reported(None, None, "60k", "MNIST",
                      "Not an ImageNet model: 0.95% test error on MNIST (0.8% with distortions)."),
    builder=lenet5,
    presets={
        "paper": Preset(32, in_chans=1),
        "explorer": Preset(32, in_chans=3, deviations=(
            "RGB input (3 channels into C1) instead of greyscale digits.",
            "RBF codes are random +-1 vectors (fixed) instead of stylised 7x12 character bitmaps.",
            "Trained with cross-entropy on -RBF distances instead of the paper's MAP criterion.",
        )),
    },
))
