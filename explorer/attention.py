"""ViT attention: per layer and head, rollout, and gradient-weighted rollout.

* Capture: Captum's `LayerActivation` on every block's attention probabilities (the output
  of `attn.attn_drop`), with timm's fused attention switched off for the call
  (`models.probes.unfused_attention`), so the softmax exists as a tensor.
* Rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers"): average
  the heads, add the residual connection (0.5 A + 0.5 I), renormalise rows, multiply the
  layers' matrices. Row i says how much each input token flows into token i at the top.
* Gradient-weighted rollout: as above, but each layer's heads are weighted by the gradient
  of the target logit with respect to their attention, keeping positive parts
  (grad x attention, averaged over heads; in the spirit of Chefer et al. 2021).
"""
from __future__ import annotations

import torch
from captum.attr import LayerActivation

from models.probes import ProbeUnavailable, attention_modules, is_mixer, patch_grid, prefix_tokens, unfused_attention


def capture_attention(model, x: torch.Tensor) -> torch.Tensor:
    """(B, L, heads, N, N) attention probabilities, captured with Captum."""
    if not attention_modules(model):
        raise ProbeUnavailable(f"{model.arch or 'this model'} has no self-attention layers.")
    with unfused_attention(model) as layers, torch.no_grad():
        acts = LayerActivation(model, layers).attribute(x)
    return torch.stack([a.detach() for a in acts], dim=1)


def cls_maps(att: torch.Tensor, model) -> torch.Tensor:
    """The [CLS] token's attention to each patch: (B, L, heads, gh, gw)."""
    p = prefix_tokens(model)
    if p == 0:
        raise ProbeUnavailable("this model has no [CLS] token.")
    gh, gw = patch_grid(model)
    return att[..., 0, p:].reshape(*att.shape[:3], gh, gw)


def rollout(att: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """(B, L, heads, N, N) -> (B, N, N) rolled-out attention; every row sums to 1.

    `weights` (same shape, e.g. gradients) switches to gradient-weighted rollout.
    """
    a = att if weights is None else (att * weights).clamp(min=0)
    a = a.mean(2)
    n = a.shape[-1]
    eye = torch.eye(n, device=a.device, dtype=a.dtype)
    result = eye.expand(a.shape[0], n, n).clone()
    for layer in range(a.shape[1]):
        m = a[:, layer] + eye  # residual connection: 0.5 A + 0.5 I after normalising
        m = m / m.sum(-1, keepdim=True)
        result = m @ result
    return result


def attention_and_gradients(model, x: torch.Tensor, target: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention probabilities and their gradients w.r.t. logit[target], both (B, L, heads, N, N)."""
    with unfused_attention(model) as layers:
        kept = []

        def keep(_m, _i, out):
            out.retain_grad()
            kept.append(out)

        handles = [m.register_forward_hook(keep) for m in layers]
        try:
            with torch.enable_grad():
                x = x.detach().requires_grad_(True)
                logits = model(x)
                logits[:, target].sum().backward()
        finally:
            for h in handles:
                h.remove()
    model.zero_grad(set_to_none=True)
    return torch.stack([k.detach() for k in kept], 1), torch.stack([k.grad.detach() for k in kept], 1)


def rollout_maps(model, x: torch.Tensor, target: int) -> dict[str, torch.Tensor]:
    """{'rollout', 'grad_rollout'}: the [CLS] row over patches, each (B, gh, gw), max-normalised."""
    att, grads = attention_and_gradients(model, x, target)
    p = prefix_tokens(model)
    gh, gw = patch_grid(model)
    out = {}
    for name, r in (("rollout", rollout(att)), ("grad_rollout", rollout(att, grads))):
        m = r[:, 0, p:].reshape(-1, gh, gw)
        out[name] = m / m.flatten(1).max(1).values.clamp(min=1e-12)[:, None, None]
    return out


# --- the ViT paper's Figure 7, on our checkpoints -------------------------------------

FIGURES = "attention_figures.safetensors"


def patch_distances(grid: tuple[int, int], patch: int) -> torch.Tensor:
    """(N, N) distances in input pixels between the centres of an (gh, gw) grid of patches."""
    gh, gw = grid
    ys, xs = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
    pos = torch.stack([ys.flatten(), xs.flatten()], -1).float() * patch
    return torch.cdist(pos, pos)


def mean_attention_distance(att: torch.Tensor, prefix: int, grid: tuple[int, int], patch: int) -> torch.Tensor:
    """(B, L, heads, N, N) attention -> (L, heads) mean attention distance in pixels (ViT Fig. 7, right).

    For every patch query, the distance to each patch key weighted by the attention it pays
    it (renormalised over the patch keys, so the [CLS] key, which has no position, does not
    count), averaged over queries and images. Uniform attention gives the mean distance
    between two patches; attention to oneself gives 0."""
    a = att[..., prefix:, prefix:]
    a = a / a.sum(-1, keepdim=True).clamp(min=1e-12)
    d = patch_distances(grid, patch).to(a)
    return (a * d).sum(-1).mean(-1).mean(0)


def position_similarity(model) -> torch.Tensor:
    """(N, N) cosine similarity of the learned position embeddings of the patches (Fig. 7, centre)."""
    pe = model.trunk.pos_embed.detach().float()[0]
    pe = pe[prefix_tokens(model):] if pe.shape[0] > patch_grid(model)[0] * patch_grid(model)[1] else pe
    pe = torch.nn.functional.normalize(pe, dim=-1)
    return pe @ pe.T


def token_mixing_distance(model) -> torch.Tensor:
    """(blocks,) the mean distance measure on MLP-Mixer's token-mixing weights.

    A block's token-mixing MLP maps N input tokens to N output tokens through
    W2 · GELU(W1 · x); leaving out the GELU, |W2 W1| says how much each output token draws
    on each input token. Rows normalised to sum to 1 play the part of attention."""
    grid, patch = patch_grid(model), int(model.stem.kernel_size[0])
    d = patch_distances(grid, patch)
    out = []
    for block in model.trunk.blocks:
        w1 = block.mlp_tokens.fc1.weight.detach().float()    # (hidden, N)
        w2 = block.mlp_tokens.fc2.weight.detach().float()    # (N, hidden)
        m = (w2 @ w1).abs()
        m = m / m.sum(-1, keepdim=True).clamp(min=1e-12)
        out.append((m * d).sum(-1).mean())
    return torch.stack(out)


def uniform_distance(grid: tuple[int, int], patch: int) -> float:
    """The mean distance between two patches: what attention spread evenly would give."""
    return float(patch_distances(grid, patch).mean())


def save_figures(path, figures: dict[str, torch.Tensor], card: dict, meta: dict) -> None:
    from explorer import sidecar
    sidecar.save(path, {k: v.float() for k, v in figures.items()}, card, meta)


def load_figures(path, card: dict) -> tuple[dict[str, torch.Tensor], dict] | None:
    """The shipped figures of a checkpoint, or None if absent or made from other weights."""
    from explorer import sidecar
    with sidecar.opened(path, card) as f:
        return None if f is None else ({k: f.get_tensor(k) for k in f.keys()}, f.meta)


def distance_reading(dist: torch.Tensor, uniform: float, local: float = 0.75) -> str:
    """One sentence on what this checkpoint's (layers, heads) mean attention distances show:
    how near its nearest-looking heads look, against attending everywhere (`uniform`). A
    Mixer's (blocks, 1) token-mixing distances are read per block: it has no heads."""
    layers = dist.shape[0]
    if dist.shape[1] == 1:
        span = (f"between {float(dist.min()):.0f} and {float(dist.max()):.0f} px (mixing everything evenly: "
                f"{uniform:.0f} px)")
        near = [i + 1 for i in range(layers) if dist[i, 0] < local * uniform]
        if not near:
            return (f"Here every block's token mixing reaches {span}: no block has become local (under "
                    f"{int(local * 100)}% of that): an output patch draws on patches about as far away as an even "
                    "mix of the whole image would, in the first block as in the last.")
        return (f"Here the blocks' token mixing reaches {span}; {len(near)} of {layers} blocks mix nearer than "
                f"{int(local * 100)}% of that (local mixing): block{'s' if len(near) > 1 else ''} "
                f"{', '.join(map(str, near))}.")
    near = [(i + 1, h + 1) for i in range(layers) for h in range(dist.shape[1]) if dist[i, h] < local * uniform]
    span = f"between {float(dist.min()):.0f} and {float(dist.max()):.0f} px (attending everywhere: {uniform:.0f} px)"
    if not near:
        return (f"Here every head of every block looks {span}: no head has become local (under "
                f"{int(local * 100)}% of that), so this network attends about as far at its first block as at "
                "its last, unlike the local early heads the ViT paper found after pre-training on 300M images.")
    blocks = sorted({b for b, _ in near})
    return (f"Here the heads look {span}; {len(near)} of {dist.numel()} heads look nearer than "
            f"{int(local * 100)}% of that (local heads), in block{'s' if len(blocks) > 1 else ''} "
            f"{', '.join(map(str, blocks))}.")


def neighbour_fraction(sim: torch.Tensor, grid: tuple[int, int]) -> tuple[float, float]:
    """(share of patches whose most similar other position embedding is one of its 8
    neighbours, the share a random choice would give): how far the embedding learned the 2-D layout."""
    gh, gw = grid
    n = gh * gw
    ys, xs = torch.arange(n) // gw, torch.arange(n) % gw
    adjacent = ((ys[:, None] - ys[None]).abs() <= 1) & ((xs[:, None] - xs[None]).abs() <= 1)
    adjacent.fill_diagonal_(False)
    s = sim.clone().float()
    s.fill_diagonal_(float("-inf"))
    best = s.argmax(1)
    hit = adjacent[torch.arange(n), best].float().mean().item()
    chance = (adjacent.sum(1).float() / (n - 1)).mean().item()
    return hit, chance


def position_tiles(sim: torch.Tensor, grid: tuple[int, int]):
    """The ViT paper's Figure 7 (centre) as a picture: one tile per patch, showing that patch's
    position-embedding similarity to every other patch, each tile on its own scale and its own
    patch (similarity 1) set to the tile's highest other value, so the neighbours it resembles
    most stand out; viridis, tiles laid out as the patches are. (H, W, 3) uint8."""
    import matplotlib
    import numpy as np

    from explorer.filters import tile
    gh, gw = grid
    own = sim.clone().fill_diagonal_(float("-inf"))
    sim = torch.where(torch.eye(len(sim), dtype=torch.bool), own.max(1, keepdim=True).values, sim)
    tiles = sim.reshape(gh * gw, gh, gw)
    lo, hi = tiles.amin((1, 2), keepdim=True), tiles.amax((1, 2), keepdim=True)
    tiles = (tiles - lo) / (hi - lo).clamp(min=1e-12)
    rgb = matplotlib.colormaps["viridis"](tiles.numpy())[..., :3]
    return tile(rgb.astype(np.float32), columns=gw, pad=1, scale=4, background=1.0)
