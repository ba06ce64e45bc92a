"""Captum attributions for any model in the zoo.

| method              | Captum                                   | map shown                           |
|---------------------|------------------------------------------|-------------------------------------|
| integrated_gradients| IntegratedGradients, 32 steps, black baseline | sum over channels of abs value |
| smoothgrad          | NoiseTunnel(Saliency), smoothgrad, 16 samples | sum over channels of abs value |
| occlusion           | Occlusion, quarter-image window, half stride (49 windows) | drop in the target's logit |
| gradcam             | LayerGradCam on the last conv layer; on transformers and Mixer, on the last block's input tokens reshaped to the patch grid | ReLU of the class map, upsampled |

Every map comes back as (H, W) at the model's input size. `shared_scale` puts two models'
maps of one method on one colour scale.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients, LayerGradCam, NoiseTunnel, Occlusion, Saliency
from torch import nn

from models import data
from models.probes import patch_grid, prefix_tokens

METHODS = {
    "integrated_gradients": "Integrated Gradients (32 steps)",
    "smoothgrad": "SmoothGrad (NoiseTunnel over Saliency, 16 samples)",
    "occlusion": "Occlusion (sliding grey patch)",
    "gradcam": "Grad-CAM (last conv layer, or patch tokens)",
}


class ToGrid(nn.Module):
    """Identity on values: patch tokens (B, N, C) <-> a (B, C, gh, gw) map Grad-CAM can read."""

    def __init__(self, grid: tuple[int, int]):
        super().__init__()
        self.grid = grid

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b, n, c = tokens.shape
        return tokens.transpose(1, 2).reshape(b, c, *self.grid)


@contextlib.contextmanager
def token_grid(model):
    """Route the last block's input patch tokens through a `ToGrid` module for the call."""
    block = model.trunk.blocks[-1]
    target = getattr(block, "norm1", None) or getattr(block, "norm", None)
    p = prefix_tokens(model)
    grid = ToGrid(patch_grid(model))

    def hook(_m, _i, out):
        g = grid(out[:, p:])
        return torch.cat([out[:, :p], g.flatten(2).transpose(1, 2)], 1)

    h = target.register_forward_hook(hook)
    try:
        yield grid
    finally:
        h.remove()


def is_token_model(model) -> bool:
    """Transformers and Mixers: a patch embedding followed by blocks of tokens."""
    return hasattr(model.trunk, "blocks") and (hasattr(model.trunk, "patch_embed") or hasattr(model.trunk, "stem"))


def last_conv(model) -> nn.Module:
    convs = [m for m in model.trunk.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1]


def black_baseline(model) -> torch.Tensor:
    """A black image in the model's normalised space."""
    s = model.input_size
    return data.normalize(torch.zeros(1, 3, s, s, dtype=torch.uint8), model.in_chans)


def attribute(model, x: torch.Tensor, target: int, method: str, steps: int = 32) -> torch.Tensor:
    """(H, W) attribution map of `target` for one normalised image x (1, C, H, W)."""
    model.eval()
    x = x.detach().clone()
    size = x.shape[-2:]
    if method == "integrated_gradients":
        a = IntegratedGradients(model).attribute(x, baselines=black_baseline(model), target=target, n_steps=steps,
                                                 internal_batch_size=steps)
        m = a.abs().sum(1)[0]
    elif method == "smoothgrad":
        a = NoiseTunnel(Saliency(model)).attribute(x, nt_type="smoothgrad", nt_samples=16,
                                                   nt_samples_batch_size=16, stdevs=0.15, target=target)
        m = a.abs().sum(1)[0]
    elif method == "occlusion":
        w = max(4, size[-1] // 4)
        a = Occlusion(model).attribute(x, sliding_window_shapes=(x.shape[1], w, w), strides=(x.shape[1], w // 2, w // 2),
                                       baselines=0.0, target=target, perturbations_per_eval=32)
        m = a.sum(1)[0]
    elif method == "gradcam":
        if is_token_model(model):
            with token_grid(model) as grid:
                cam = LayerGradCam(model, grid).attribute(x, target=target, relu_attributions=True)
        else:
            cam = LayerGradCam(model, last_conv(model)).attribute(x, target=target, relu_attributions=True)
        m = F.interpolate(cam.detach(), size=size, mode="bilinear", align_corners=False)[0, 0]
    else:
        raise ValueError(f"unknown method {method!r}; choose from {list(METHODS)}")
    model.zero_grad(set_to_none=True)
    return m.detach().float()


def shared_scale(maps: list[torch.Tensor], signed: bool = False) -> list[torch.Tensor]:
    """Divide every map by the largest magnitude among them: one colour scale for all."""
    top = max(float(m.abs().max()) for m in maps) or 1.0
    return [(m / top) if signed else (m.clamp(min=0) / top) for m in maps]


def overlay(image_u8, heat: torch.Tensor, alpha: float = 0.55):
    """Blend a [0, 1] (or [-1, 1]) heat map over an (H, W, 3) uint8 image; returns uint8."""
    import numpy as np
    h = heat.clamp(-1, 1).numpy()
    rgb = np.zeros(h.shape + (3,), dtype=np.float32)
    pos, neg = np.clip(h, 0, 1), np.clip(-h, 0, 1)
    rgb[..., 0] = pos                    # red for evidence for the class
    rgb[..., 1] = 0.25 * pos
    rgb[..., 2] = neg                    # blue for evidence against (occlusion)
    strength = np.maximum(pos, neg)[..., None]
    base = image_u8.astype(np.float32) / 255
    out = base * (1 - alpha * strength) + rgb * alpha * strength
    return (out.clip(0, 1) * 255).astype(np.uint8)
