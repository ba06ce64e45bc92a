"""vision-hist model zoo: a registry of paper-faithful architectures.

    import models
    for spec in models.list_architectures(): ...
    net = models.create("alexnet", preset="explorer", num_classes=10)
    net, card = models.load("alexnet", checkpoints_dir="checkpoints")

Adding an architecture: write `models/<family>.py` with a builder returning a `ZooNet`
and a `register(ArchSpec(...))` call, then import it below. Every page picks it up.
"""
from . import (  # noqa: F401  -- importing registers each family, in historical order
    lenet, alexnet, zfnet, nin, vgg, googlenet, bn_convnet, resnet, densenet, senet, mobilenet, vit, mixer,
)
from .checkpoint import CheckpointError, load, read_card, save
from .registry import TOKEN_MIXERS, ArchSpec, Preset, create, get_spec, list_architectures
from .zoonet import ZooNet

__all__ = ["TOKEN_MIXERS", "ArchSpec", "CheckpointError", "Preset", "ZooNet", "create", "get_spec", "list_architectures",
           "load", "read_card", "save"]
