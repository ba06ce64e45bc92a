"""One probe interface for every model in the zoo.

Every function takes a `ZooNet` and a normalised batch `x` (B, C, H, W) and finds what
it needs by type or by the model's uniform attributes (`stem`, `trunk`, `head`), never
by architecture name. A probe that does not apply raises `ProbeUnavailable` with a
sentence the app can show. Every probe runs under `torch.no_grad()` (attributions live in
`explorer/attribution.py`) and removes its hooks before returning, even on error.

| probe                  | returns                                                  |
|------------------------|----------------------------------------------------------|
| first_layer_weights    | (out, in, kh, kw) conv1 / patch-embedding kernels        |
| first_layer_activations| (B, out, h, w) the stem's output maps                    |
| penultimate            | (B, D) fc7 or pre-logit features                         |
| se_gates               | list over SE blocks of (B, C_i) sigmoid gates            |
| attention_maps         | (B, L, heads, N, N) attention probabilities, N = tokens  |
| topk                   | (B, k) probabilities and (B, k) class indices            |
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn


class ProbeUnavailable(Exception):
    """The probe does not apply to this architecture; str(e) says why."""


def _title(model) -> str:
    return getattr(model, "arch", "") or type(model).__name__


@contextlib.contextmanager
def capture(modules: list[nn.Module]):
    """Record each module's forward output during the block; hooks are always removed."""
    outputs: list = [None] * len(modules)
    handles = []
    for i, m in enumerate(modules):
        handles.append(m.register_forward_hook(lambda _m, _inp, out, i=i: outputs.__setitem__(i, out)))
    try:
        yield outputs
    finally:
        for h in handles:
            h.remove()


def first_layer_weights(model) -> torch.Tensor:
    w = getattr(model.stem, "weight", None)
    if w is not None and w.dim() == 4:
        return w.detach().clone()
    raise ProbeUnavailable(f"{_title(model)}: its first layer has no 2-D kernels to show.")


@torch.no_grad()
def first_layer_activations(model, x: torch.Tensor) -> torch.Tensor:
    with capture([model.stem]) as out:
        model(x)
    return out[0].detach()


@torch.no_grad()
def penultimate(model, x: torch.Tensor) -> torch.Tensor:
    return model.forward_features(x).detach()


@torch.no_grad()
def topk(model, x: torch.Tensor, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    probs = model(x).float().softmax(-1)
    p, i = probs.topk(min(k, probs.shape[-1]), dim=-1)
    return p, i


# --- Squeeze-and-Excitation -------------------------------------------------------------

def se_modules(model) -> list[nn.Module]:
    """The gate (sigmoid) of every SE block, in forward order."""
    from torchvision.ops import SqueezeExcitation
    return [m.scale_activation for m in model.modules() if isinstance(m, SqueezeExcitation)]


@torch.no_grad()
def se_gates(model, x: torch.Tensor) -> list[torch.Tensor]:
    mods = se_modules(model)
    if not mods:
        raise ProbeUnavailable(f"{_title(model)} has no Squeeze-and-Excitation blocks, so it has no "
                               "channel gates to show.")
    with capture(mods) as out:
        model(x)
    return [o.detach().flatten(1) for o in out]


# --- attention -------------------------------------------------------------------------

def attention_modules(model) -> list[nn.Module]:
    from timm.layers import Attention
    return [m for m in model.modules() if isinstance(m, Attention)]


def is_mixer(model) -> bool:
    """An MLP-Mixer: blocks that mix tokens with fixed MLP weights (`mlp_tokens`), no attention."""
    trunk = getattr(model, "trunk", None)
    return hasattr(trunk, "blocks") and len(trunk.blocks) > 0 and hasattr(trunk.blocks[0], "mlp_tokens")


@contextlib.contextmanager
def unfused_attention(model):
    """Switch timm's fused attention off on this model's blocks, so the softmax
    probabilities exist as a tensor (the output of each block's `attn_drop`)."""
    mods = attention_modules(model)
    before = [m.fused_attn for m in mods]
    try:
        for m in mods:
            m.fused_attn = False
        yield [m.attn_drop for m in mods]
    finally:
        for m, f in zip(mods, before):
            m.fused_attn = f


@torch.no_grad()
def attention_maps(model, x: torch.Tensor) -> torch.Tensor:
    if not attention_modules(model):
        raise ProbeUnavailable(f"{_title(model)} has no self-attention layers, so it has no attention "
                               "maps to show.")
    with unfused_attention(model) as probs_modules, capture(probs_modules) as out:
        model(x)
    return torch.stack([o.detach() for o in out], dim=1)


def prefix_tokens(model) -> int:
    return int(getattr(model.trunk, "num_prefix_tokens", 0))


def patch_grid(model) -> tuple[int, int]:
    pe = getattr(model.trunk, "patch_embed", None) or getattr(model.trunk, "stem", None)
    return tuple(pe.grid_size)


# --- what applies ----------------------------------------------------------------------

def available(model) -> dict[str, str | None]:
    """Probe name -> None if it applies, else the reason it does not."""
    name = _title(model)
    return {
        "first_layer": None,
        "penultimate": None,
        "se_gates": None if se_modules(model) else f"{name} has no Squeeze-and-Excitation blocks.",
        "attention": None if attention_modules(model) else f"{name} has no self-attention layers.",
        "topk": None,
    }


def hook_count(model) -> int:
    """Forward hooks currently registered anywhere in the model (0 after any probe)."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
