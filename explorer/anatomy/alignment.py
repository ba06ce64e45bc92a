"""Layer-by-layer alignment of two layer tables (`align`): rows matched in order, each
difference named ("same", "resized", "changed", "moved", "only in A", "only in B"), and whether
the match says anything at all (`comparable`).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

from explorer.anatomy.layers import Row, fmt_shape


@dataclass
class Pair:
    a: Row | None
    b: Row | None
    status: str     # "same", "resized", "changed", "moved", "only in A", "only in B"
    what: str = ""  # what differs


STATUS_DESIGN = ("changed", "moved", "only in A", "only in B")   # differences of design, not of size


def _kind(r: Row) -> str:
    return r.kind


def _signature(r: Row) -> str:
    """What must agree for two rows to be the same layer: its type and hyper-parameters."""
    return f"{r.kind} {r.detail.replace(' (again)', '')}"


def align(a: list[Row], b: list[Row]) -> list[Pair]:
    """Rows of two tables matched in order, each difference named: "resized" when only the output
    shape (or the parameters that follow from it) differ, "changed" when the layer's type or
    hyper-parameters differ, "moved" when the identical layer sits a few rows earlier or later
    (ZFNet pools before its contrast norm, AlexNet after; SE-ResNet runs its shortcut first),
    "only in A" / "only in B" for layers one network lacks.

    Two matchings are tried, by layer type (keeps a changed conv paired with its counterpart)
    and by type and hyper-parameters (keeps inserted blocks, like SE's, from shifting the rest),
    and the one that pairs more layers wins."""
    tries = [_align(a, b, _kind), _align(a, b, _signature)]
    return max(tries, key=lambda ps: sum(p.status in ("same", "resized") for p in ps))


def _align(a: list[Row], b: list[Row], key) -> list[Pair]:
    sm = difflib.SequenceMatcher(a=[key(r) for r in a], b=[key(r) for r in b], autojunk=False)
    out: list[Pair] = []
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        pa, pb = a[i1:i2], b[j1:j2]
        for k in range(max(len(pa), len(pb))):
            ra = pa[k] if k < len(pa) else None
            rb = pb[k] if k < len(pb) else None
            if ra is None:
                out.append(Pair(None, rb, "only in B"))
            elif rb is None:
                out.append(Pair(ra, None, "only in A"))
            elif _signature(ra) != _signature(rb):
                what = f"{ra.detail} -> {rb.detail}" if ra.kind == rb.kind else f"{ra.kind} -> {rb.kind}"
                out.append(Pair(ra, rb, "changed", what))
            elif ra.out_shape != rb.out_shape or ra.params != rb.params:
                what = f"output {fmt_shape(ra.out_shape)} -> {fmt_shape(rb.out_shape)}" \
                    if ra.out_shape != rb.out_shape else f"params {ra.params:,} -> {rb.params:,}"
                out.append(Pair(ra, rb, "resized", what))
            else:
                out.append(Pair(ra, rb, "same"))
    # the identical layer on both sides within a few rows of each other has moved, not vanished:
    # the two rows become one
    gone: set[int] = set()
    for i, p in enumerate(out):
        if i in gone or p.status not in ("only in A", "only in B"):
            continue
        sig = _signature(p.a or p.b)
        for j in range(max(0, i - 8), min(len(out), i + 9)):
            q = out[j]
            if j != i and j not in gone and q.status in ("only in A", "only in B") and q.status != p.status \
                    and _signature(q.a or q.b) == sig:
                p.a, p.b = p.a or q.a, p.b or q.b
                p.status, p.what = "moved", f"{p.a.kind} earlier or later"
                gone.add(j)
                break
    return [p for i, p in enumerate(out) if i not in gone]


def comparable(pairs: list[Pair]) -> bool:
    """Whether a layer-by-layer match says anything: most rows must pair with a layer of the
    same kind (AlexNet/ZFNet, ResNet-18/SE-ResNet-18, paper/explorer presets), not VGG-16
    against ResNet-34, which are built differently and compare stage by stage."""
    matched = sum(p.status in ("same", "resized") for p in pairs)
    return matched >= 0.5 * len(pairs)


def align_counts(pairs: list[Pair]) -> dict[str, int]:
    return {s: sum(p.status == s for p in pairs) for s in ("same", "resized", *STATUS_DESIGN)}
