"""Receptive fields, computed from the modules.

`ReceptiveFields` is a `TorchFunctionMode` that follows every tensor through the forward pass
and, for each spatial map, tracks the receptive field size `rf` (input pixels one unit sees),
its jump (input pixels between neighbouring units) and the centre of unit 0. Convolutions and
pools grow it (rf += (k - 1) * dilation * jump); merges (residual additions, concatenations)
take the largest of their inputs, so branches and shortcuts are handled by the graph itself,
not by a typed-in table. A per-channel gate computed from a global pool (Squeeze-and-Excitation)
is counted as global context and flagged, not as receptive field. Token tensors (ViT, Mixer)
become global at the first operation that mixes tokens (attention's products, Mixer's
token-mixing MLP).

`explorer.anatomy.layers` runs it alongside the layer table's forward pass; `INF` (the whole
image) is the receptive field of a unit that sees every input pixel.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakTensorKeyDictionary

INF = math.inf


@dataclass(frozen=True)
class RF:
    rf: float
    jump: float
    start: float
    context: bool = False
    token_axis: int | None = None   # for token tensors: which dimension indexes the tokens


def _pair(v, default):
    if v is None:
        v = default
    if isinstance(v, (list, tuple)):
        return (int(v[0]), int(v[-1]))
    return (int(v), int(v))


def _arg(args, kwargs, i, name, default=None):
    if name in kwargs:
        return kwargs[name]
    return args[i] if len(args) > i else default


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


class ReceptiveFields(TorchFunctionMode):
    """Follow the input through a forward pass, recording each tensor's receptive field."""

    def __init__(self, x: torch.Tensor):
        super().__init__()
        self.info = WeakTensorKeyDictionary()
        self.info[x] = RF(1.0, 1.0, 0.0)

    def get(self, t) -> RF | None:
        return self.info.get(t) if isinstance(t, torch.Tensor) else None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        try:
            self._propagate(func, args, kwargs, out)
        except Exception:  # noqa: BLE001 -- bookkeeping must never break the forward pass
            pass
        return out

    def _window(self, src: RF, k, s, p, d) -> RF:
        keff = (k - 1) * d + 1
        return RF(src.rf + (keff - 1) * src.jump, src.jump * s, src.start + ((keff - 1) / 2 - p) * src.jump,
                  src.context)

    def _propagate(self, func, args, kwargs, out):
        name = getattr(func, "__name__", "")
        outs = [t for t in _tensors(out)]
        if not outs:
            return
        first = args[0] if args else None
        src = self.get(first)
        if name == "conv2d" and src is not None:
            w = _arg(args, kwargs, 1, "weight")
            kh, kw = w.shape[-2:]
            s = _pair(_arg(args, kwargs, 3, "stride"), 1)[0]
            pad = _arg(args, kwargs, 4, "padding", 0)
            d = _pair(_arg(args, kwargs, 5, "dilation"), 1)[0]
            if isinstance(pad, str):
                pad = (d * (kh - 1)) // 2 if pad == "same" else 0
            self.info[outs[0]] = self._window(src, kh, s, _pair(pad, 0)[0], d)
            return
        if ("max_pool2d" in name or name == "avg_pool2d") and src is not None:
            k = _pair(_arg(args, kwargs, 1, "kernel_size"), 1)[0]
            s = _pair(_arg(args, kwargs, 2, "stride") or k, k)[0]
            p = _pair(_arg(args, kwargs, 3, "padding"), 0)[0]
            d = _pair(_arg(args, kwargs, 4, "dilation"), 1)[0] if "max" in name else 1
            for t in outs:
                self.info[t] = self._window(src, k, s, p, d)
            return
        if name.startswith("adaptive_") and src is not None:
            oh = outs[0].shape[-1]
            ih = first.shape[-1]
            if oh == 1 or ih % oh:
                res = RF(INF, src.jump * ih, 0.0, src.context)
            else:
                k = ih // oh
                res = self._window(src, k, k, 0, 1)
            for t in outs:
                self.info[t] = res
            return
        ins = [(t, self.get(t)) for t in _tensors((args, kwargs))]
        ins = [(t, i) for t, i in ins if i is not None]
        if not ins:
            return
        o = outs[0]
        # token tensors: attention's products and token-mixing linears make them global
        if name in ("matmul", "bmm", "__matmul__", "baddbmm", "scaled_dot_product_attention") and len(ins) >= 2:
            self.info[o] = replace(ins[0][1], rf=INF)
            return
        if o.dim() == 4:
            same = [i for t, i in ins if t.dim() == 4 and tuple(t.shape[-2:]) == tuple(o.shape[-2:])]
            gates = [i for t, i in ins if t.dim() == 4 and tuple(t.shape[-2:]) == (1, 1) and o.shape[-1] > 1]
            if same:
                best = max(same, key=lambda i: i.rf)
                self.info[o] = replace(best, context=best.context or bool(gates) or any(i.context for i in same))
            return
        base = ins[0][1]
        if base.token_axis is None and ins[0][0].dim() == 4 and o.dim() == 3 and name == "flatten":
            self.info[o] = replace(base, token_axis=2)          # (B, C, H*W): tokens on the last axis
            return
        if name in ("transpose", "swapaxes") and base.token_axis is not None:
            a, b = (_arg(args, kwargs, 1, "dim0"), _arg(args, kwargs, 2, "dim1"))
            nd = ins[0][0].dim()
            a, b = a % nd, b % nd
            ax = b if base.token_axis == a else a if base.token_axis == b else base.token_axis
            self.info[o] = replace(base, token_axis=ax)
            return
        if name == "linear" and ((base.token_axis is not None and base.token_axis == ins[0][0].dim() - 1)
                                 or ins[0][0].dim() == 2):
            self.info[o] = replace(base, rf=INF, token_axis=None)  # mixes tokens (Mixer) or a whole map (fc6)
            return
        if o.dim() == 2 and ins[0][0].dim() == 4:
            self.info[o] = replace(base, token_axis=None)          # a flattened map: still local until a linear
            return
        best = max((i for _, i in ins), key=lambda i: i.rf)
        for t in outs:
            self.info[t] = best
