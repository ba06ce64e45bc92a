"""The architecture registry: one `ArchSpec` per network, one `create` for all.

Every family file in this package registers its architectures with `register(...)`.
A spec carries the history (paper, year, key idea, what changed), the paper's own
reported ImageNet figures, and two presets:

* ``paper``    -- the paper's configuration at its input size;
* ``explorer`` -- what the shipped checkpoints use: the same layer structure at an
  input of 160 px or less and 10 classes. Every deviation from the paper is listed,
  so the app can show it.

Every model built here is a `ZooNet` (see `models/zoonet.py`), so tools never special-case
an architecture.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

PRESETS = ("paper", "explorer")
# the two networks that mix tokens (patches) instead of convolving a feature map: they take the
# token protocol, Grad-CAM reads their patch tokens, Reliance sets them apart from the CNNs
TOKEN_MIXERS = ("vit", "mlp_mixer")


@dataclass(frozen=True)
class Paper:
    title: str
    authors: str
    venue: str
    url: str = ""


@dataclass(frozen=True)
class Reported:
    """What the paper itself reports on ImageNet (ILSVRC-2012 val unless `source` says).

    `None` means the paper gives no such figure for this network; `note` says what it
    reports instead. Accuracies are percentages.
    """
    top1: float | None
    top5: float | None
    params: str
    source: str
    note: str = ""


@dataclass(frozen=True)
class Preset:
    input_size: int
    kwargs: dict = field(default_factory=dict)
    in_chans: int = 3
    deviations: tuple[str, ...] = ()


@dataclass(frozen=True)
class ArchSpec:
    name: str                 # registry key, e.g. "alexnet"
    title: str                # display name, e.g. "AlexNet"
    year: int
    family: str               # file in models/, e.g. "alexnet"
    paper: Paper
    key_idea: str
    changed: str              # what changed from its predecessor (`builds_on`)
    reported: Reported
    builder: Callable
    presets: dict[str, Preset]
    penultimate: str = "pre-logits"   # "fc7" for the nets whose paper reads fc7
    order: int = 0
    # the building block(s) the Anatomy page draws, traced from the modules: (module path, caption).
    # A path may end in a slice of its children: "[a:b]", or "[:Type]" for "up to the first Type".
    blocks: tuple[tuple[str, str], ...] = ()
    builds_on: str | None = None      # the architecture `changed` is written against (registry key)
    # containers (current module paths, fnmatch patterns) whose children older checkpoints and side
    # files numbered by position, as a bare nn.Sequential does; `models.checkpoint` maps them
    numbered: tuple[str, ...] = ()

    def preset(self, name: str) -> Preset:
        if name not in self.presets:
            raise ValueError(f"unknown preset {name!r} for {self.name}; choose one of {sorted(self.presets)}")
        return self.presets[name]


_REGISTRY: dict[str, ArchSpec] = {}


def register(spec: ArchSpec) -> ArchSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"architecture {spec.name!r} registered twice")
    missing = [p for p in PRESETS if p not in spec.presets]
    if missing:
        raise ValueError(f"{spec.name}: missing presets {missing}")
    _REGISTRY[spec.name] = spec
    return spec


def get_spec(name: str) -> ArchSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown architecture {name!r}; known: {known}") from None


def list_architectures() -> list[ArchSpec]:
    """All specs, in historical order (year, then registration order)."""
    return sorted(_REGISTRY.values(), key=lambda s: (s.year, s.order))


def create(name: str, preset: str = "explorer", num_classes: int = 10, **overrides):
    """Build `name` at `preset` with fresh weights; `overrides` replace preset kwargs."""
    spec = get_spec(name)
    p = spec.preset(preset)
    kwargs = {**p.kwargs, **overrides}
    model = spec.builder(num_classes=num_classes, in_chans=p.in_chans, **kwargs)
    model.arch, model.preset_name = name, preset
    model.input_size, model.in_chans = p.input_size, p.in_chans
    return model
