"""Stages of the layer table, and the names a learner would use for a network's parts.

`stages` groups consecutive layers producing maps of one resolution, the grouping of the
ResNet and MobileNet papers' tables ("output size"); blocks of tokens for ViT and Mixer; and
the classifier. `part_names` names the part each layer belongs to (layer1, inception3a, conv1
... fc8, block 1, 2, ...), which labels the stages; `CONTAINERS` are the zoo's generic
containers, whose contents are named rather than the container itself.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from explorer.anatomy.layers import Row, Table


@dataclass
class Stage:
    label: str
    rows: list[Row]
    params: int
    macs: int
    key: str      # what groups its rows: the map size ("64x64"), the block ("block 3"), or "classifier"


def stages(t: Table) -> list[Stage]:
    """Consecutive rows grouped by what they produce: maps of one resolution (CNNs),
    the tokens of one block (ViT, Mixer), or a vector (the classifier).

    A detour through 1x1 maps that returns to the same resolution (a Squeeze-and-Excitation
    gate) stays in its stage; a stage with neither parameters nor compute (the 1x1 output of
    a global pool) joins the next."""
    def raw(r: Row, seen_block: bool) -> str:
        if t.token_model:
            parts = r.name.split(".")
            if "blocks" in parts and len(parts) > parts.index("blocks") + 1:
                return f"block {int(parts[parts.index('blocks') + 1]) + 1}"
            if r.name.startswith("head"):
                return "classifier"
            return "final norm + pool" if seen_block else "patch embedding"
        if r.spatial:
            return f"{r.spatial[0]}x{r.spatial[1]}"
        return "classifier" if r.out_shape or r.name.startswith("head") else None

    keys, seen = [], False
    for r in t.rows:
        k = raw(r, seen)
        seen = seen or (k or "").startswith("block")
        keys.append(k if k is not None else (keys[-1] if keys else "input"))
    i = 0
    while i < len(keys):  # 1x1 detours
        if keys[i] == "1x1" and i:
            j = i
            while j < len(keys) and keys[j] == "1x1":
                j += 1
            if j < len(keys) and keys[j] == keys[i - 1]:
                keys[i:j] = [keys[i - 1]] * (j - i)
            i = j
        else:
            i += 1
    out: list[Stage] = []
    for r, k in zip(t.rows, keys):
        if out and out[-1].key == k:
            s = out[-1]
            s.rows.append(r)
            s.params += r.params
            s.macs += r.macs
        else:
            out.append(Stage(k, [r], r.params, r.macs, k))
    merged: list[Stage] = []
    for i, s in enumerate(out):
        if not s.params and not s.macs and i + 1 < len(out):
            out[i + 1].rows[:0] = s.rows
            continue
        merged.append(s)
    names = part_names(t)
    for s in merged:
        if t.token_model:
            continue
        units = list(dict.fromkeys(names[r.name] for r in s.rows if names.get(r.name)))
        span = _span(units)
        if s.key == "classifier":
            s.label = f"classifier · {span}" if span and span != "head" else "classifier"
        elif span:
            s.label = f"{s.key} · {span}"
    return merged


def _span(units: list[str]) -> str:
    if not units:
        return ""
    if len(units) == 1:
        return units[0]
    a, b = units[0], units[-1]
    if a.startswith("block ") and b.startswith("block "):
        return f"blocks {a[6:]}-{b[6:]}"
    return f"{a}-{b}"


CONTAINERS = ("features", "fc67")   # the zoo's generic containers: name what is inside them


def part_names(t: Table) -> dict[str, str]:
    """Row name -> the name a learner would use for the part of the network it belongs to.

    Named children of the trunk or of a generic container (ResNet's layer1, GoogLeNet's
    inception3a, LeNet's c1, AlexNet's conv1, VGG's conv1_1, NiN's mlpconv1) name themselves,
    and a head after fcN is fcN+1 (AlexNet's and VGG's fc8). Inside a container of numbered
    layers the weight layers are numbered in forward order (conv1, conv2, ...); a container of
    numbered blocks (MobileNet's inverted residuals) numbers its blocks 1, 2, ... Only
    convolutions and linear layers are named."""
    def ordinal(prefix: str) -> int:
        parent, idx = prefix.rsplit(".", 1)
        sibs = [n for n in t.modules if n.startswith(parent + ".") and n.count(".") == parent.count(".") + 1
                and not t.modules[n].leaf]
        sibs.sort(key=lambda n: int(n.rsplit(".", 1)[1]))
        return sibs.index(prefix) + 1

    out, k, last = {}, 0, ""
    for r in t.rows:
        if not r.params or r.name.endswith("(own)") or "Norm" in r.kind:
            continue
        weighted = any(w in r.kind for w in ("Conv", "Linear"))
        k += weighted
        parts = r.name.split(".")
        name = None
        for depth in range(len(parts)):
            prefix = ".".join(parts[:depth + 1])
            if parts[depth] == "trunk" or (depth < len(parts) - 1 and parts[depth] in CONTAINERS):
                continue
            if parts[depth].isdigit():
                mod = t.modules.get(prefix)
                name = f"block {ordinal(prefix)}" if mod is not None and not mod.leaf else \
                    (f"conv{k}" if "Conv" in r.kind else f"fc{k}")
            else:
                name = parts[depth]
            break
        if name == "head" and re.fullmatch(r"fc\d+", last):   # the classifier after fc7 is fc8
            name = f"fc{int(last[2:]) + 1}"
        out[r.name] = name
        last = name or ""
    return out
