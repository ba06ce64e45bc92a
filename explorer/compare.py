"""Model comparison: accuracy-vs-cost rows, per-class and confusion tables, and the val images
two models disagree on. (Latency is measured once per server by `explorer.zoo.latencies`.)"""
from __future__ import annotations

import functools
from pathlib import Path

from models import data, get_spec
from models.cost import arch_cost


def scatter_rows(loaded: dict, latencies: dict[str, float]) -> list[dict]:
    rows = []
    for arch, (model, card) in loaded.items():
        m = card.get("metrics", {})
        if "val_top1" not in m:
            continue
        cost = arch_cost(arch)
        rows.append({"model": card.get("title", arch), "arch": arch, "year": get_spec(arch).year,
                     "input_px": cost["input_size"], "params_M": cost["params"] / 1e6, "gmacs": cost["gmacs"],
                     "latency_ms": latencies.get(arch), "top1": m["val_top1"], "top5": m["val_top5"],
                     **_trained(arch, card)})
    return rows


def _trained(arch: str, card: dict) -> dict:
    from explorer import provenance
    f = provenance.facts(arch, card)
    return {"epochs": f["epochs"], "crops": f["crops"], "hardware": f["hardware"], "minutes": f["minutes"],
            "storage": f["storage"], "teacher": f["teacher"] or "none", "protocol": f["protocol"],
            "train_pflops": f["train_pflops"]}


def per_class_rows(cards: dict[str, dict]) -> list[dict]:
    return [{"model": card.get("title", arch), "class": cls, "accuracy": acc}
            for arch, card in cards.items()
            for cls, acc in card.get("metrics", {}).get("per_class_top1", {}).items()]


def confusion_rows(card: dict) -> list[dict]:
    conf = card.get("metrics", {}).get("confusion") or []
    return [{"true": data.NAMES[i], "predicted": data.NAMES[j], "count": n,
             "share": n / max(1, sum(row))}
            for i, row in enumerate(conf) for j, n in enumerate(row)]


def _folders_state(root: Path) -> tuple:
    """Modification times of the data's class folders: they change when images are added or removed."""
    return tuple((d.name, d.stat().st_mtime_ns) for split in ("train", "val") if (root / split).is_dir()
                 for d in sorted((root / split).iterdir()) if d.is_dir())


@functools.lru_cache(maxsize=4)
def _val_split(root: Path, state: tuple) -> tuple[str, list[Path], list[int]]:
    return data.fingerprint(root), *data.list_split(root, "val")


def val_split(root: Path) -> tuple[str, list[Path], list[int]]:
    """(fingerprint, paths, labels) of the val split, listed and hashed once while the folders stay
    as they are: hashing 13,394 file names and sizes cost every Compare visit ~0.2 s of server CPU."""
    return _val_split(Path(root), _folders_state(Path(root)))


def disagreements(card_a: dict, card_b: dict, root: Path | None, limit: int = 24) -> dict:
    """Val images where the two models' top-1 answers differ.

    Uses the predictions stored in the cards by scripts/evaluate.py; image paths need the
    dataset, and only when it is the one the cards were evaluated on (same fingerprint).
    """
    pa = card_a.get("metrics", {}).get("val_pred")
    pb = card_b.get("metrics", {}).get("val_pred")
    if not pa or not pb or len(pa) != len(pb):
        return {"reason": "one of the cards has no per-image val predictions (re-run scripts/evaluate.py)."}
    fa = card_a["metrics"].get("eval_data_fingerprint")
    fb = card_b["metrics"].get("eval_data_fingerprint")
    if fa != fb:
        return {"reason": "the two models were evaluated on different copies of the val split."}
    diff = [i for i, (a, b) in enumerate(zip(pa, pb)) if a != b]
    out = {"count": len(diff), "total": len(pa), "both_right": 0, "a_right": 0, "b_right": 0, "items": []}
    paths = labels = None
    if root is not None:
        fingerprint, paths, labels = val_split(root)
        if fingerprint != fa:
            paths = labels = None
    if labels is None:
        out["reason"] = ("the Imagenette val split is not on this machine, so the images cannot be shown."
                         if root is None else "the Imagenette copy on this machine is not the one the cards were "
                         "evaluated on, so the images cannot be shown.")
        return out
    for i in diff:
        out["a_right"] += pa[i] == labels[i]
        out["b_right"] += pb[i] == labels[i]
    out["both_right"] = sum(1 for a, b, y in zip(pa, pb, labels) if a == b == y)
    # val is sorted by class: take the examples round-robin over the true classes, so the first
    # `limit` are not all tench
    by_class: dict[int, list[int]] = {}
    for i in diff:
        by_class.setdefault(labels[i], []).append(i)
    picked, depth = [], 0
    while len(picked) < min(limit, len(diff)):
        for c in sorted(by_class):
            if depth < len(by_class[c]) and len(picked) < limit:
                picked.append(by_class[c][depth])
        depth += 1
    out["items"] = [{"path": str(paths[i]), "true": data.NAMES[labels[i]], "a": data.NAMES[pa[i]],
                     "b": data.NAMES[pb[i]]} for i in picked]
    return out


def curve_vs_card(loaded: dict, curves: list[dict]) -> list[str]:
    """Why a training curve's last val point and the card's val top-1 differ, per model whose
    two figures are more than 0.1 points apart: a model trained on smaller crops than its
    input is scored at the training size while it trains, and at its input size on the card."""
    last: dict[str, tuple[int, float]] = {}
    for r in curves:
        if r["metric"] == "val_top1" and r["epoch"] >= last.get(r["arch"], (-1, 0.0))[0]:
            last[r["arch"]] = (r["epoch"], r["value"])
    out, other, smaller = [], [], {}
    for arch, (model, card) in loaded.items():
        top1 = card.get("metrics", {}).get("val_top1")
        if arch not in last or top1 is None or abs(last[arch][1] - top1) <= 0.1:
            continue
        title, (epoch, logged) = card.get("title", arch), last[arch]
        trained = (card.get("recipe") or {}).get("image_size") or 0
        size = card.get("input_size")
        if trained and size and trained != size:
            smaller.setdefault((trained, size), []).append(f"{title} ({logged:.2f}% after epoch {epoch}, "
                                                           f"{top1:.2f}% on the card)")
        else:
            other.append(f"{title} ({logged:.2f}% logged, {top1:.2f}% on the card)")
    for (trained, size), names in smaller.items():
        out.append(f"Trained on {trained} px crops, so scored at {trained} px while training and at the app's {size} px "
                   f"on the card: {', '.join(names)}.")
    if other:
        out.append("The last logged val top-1 differs from the card for " + ", ".join(other) + ": the curve scores "
                   "the weights in training (bf16 autocast), the card the shipped weights (int8 kernels, "
                   "fp32 arithmetic) once, after training.")
    return out


def label_positions(points: list[tuple[float, float, str]], width_px: float = 560, height_px: float = 380,
                    char_px: float = 6.5, line_px: float = 14) -> list[dict | None]:
    """Where to write each point's name on a scatter plot so that no two names overlap.

    `points` are (x, y, name) already mapped to [0, 1] along each axis (log axes mapped by
    the caller). Each name tries the right of its point, then its left, above, below; a name
    that fits nowhere is left out (None): its point keeps its tooltip, and the table under the
    chart lists every model. Returns {"dx", "dy", "align"} per point, in pixels."""
    tries = [(10, 0, "left"), (-10, 0, "right"), (0, -12, "center"), (0, 12, "center")]
    boxes: list[tuple[float, float, float, float]] = []
    # the points themselves: a name must not cover another model's dot
    dots = [(x * width_px - 6, (1 - y) * height_px - 6, x * width_px + 6, (1 - y) * height_px + 6)
            for x, y, _ in points]
    out: list[dict | None] = [None] * len(points)
    for i in sorted(range(len(points)), key=lambda i: -points[i][1]):   # top of the chart first
        x, y, name = points[i]
        px, py, w = x * width_px, (1 - y) * height_px, len(name) * char_px
        taken = boxes + dots[:i] + dots[i + 1:]   # placed names, and every other model's dot
        for dx, dy, align in tries:
            left = px + dx if align == "left" else px + dx - w if align == "right" else px - w / 2
            box = (left, py + dy - line_px / 2, left + w, py + dy + line_px / 2)
            inside = box[0] >= 0 and box[2] <= width_px + 40 and box[1] >= -line_px and box[3] <= height_px + line_px
            clash = any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in taken)
            if inside and not clash:
                boxes.append(box)
                out[i] = {"dx": dx, "dy": dy, "align": align}
                break
    return out


# --- the papers' order against ours -------------------------------------------------------

def paper_rows(loaded: dict) -> list[dict]:
    """Every shipped model whose paper gives an ImageNet top-1: that figure beside ours."""
    rows = []
    for arch, (_, card) in loaded.items():
        rep, ours = get_spec(arch).reported, card.get("metrics", {}).get("val_top1")
        if rep.top1 is not None and ours is not None:
            rows.append({"arch": arch, "model": card.get("title", arch), "year": get_spec(arch).year,
                         "paper_top1": rep.top1, "ours_top1": ours, "paper_source": rep.source})
    return rows


def order_pairs(rows: list[dict]) -> tuple[list[tuple[dict, dict]], int]:
    """(the pairs the two orders rank differently, each as (higher here, higher in the paper); how
    many pairs there are). A tie in either figure counts as no disagreement."""
    flipped, n = [], 0
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            n += 1
            dp, do = a["paper_top1"] - b["paper_top1"], a["ours_top1"] - b["ours_top1"]
            if dp * do < 0:
                flipped.append((a, b) if do > 0 else (b, a))
    return flipped, n


def budget_note(hi: dict, lo: dict, cards: dict[str, dict] | None) -> str:
    """How the budgets of a swapped pair differed here, from their cards: the one the papers rank
    higher trained fewer epochs, or with less compute than its extra depth needs (", trained ...")."""
    if not cards or hi.get("arch") not in cards or lo.get("arch") not in cards:
        return ""
    from explorer import provenance
    ch, cl = cards[hi["arch"]], cards[lo["arch"]]
    eh, el = ch.get("epochs"), cl.get("epochs")
    fh, fl = provenance.compute(hi["arch"], ch).get("flops"), provenance.compute(lo["arch"], cl).get("flops")
    parts = []
    if eh and el and el != eh:
        parts.append(f"{el} epochs to {hi['model']}'s {eh}")
    if fh and fl:
        parts.append(f"with {fl / fh:.1f}x its training compute")
    return f"; here {lo['model']} trained {', '.join(parts)}" if parts else ""


def why_orders_differ(archs: list[str], cards: dict[str, dict] | None) -> str:
    """What can swap two networks between the papers' order and ours, with this zoo's own figures
    (epochs, input sizes and train images from the cards) where the cards have them."""
    cards = {a: cards[a] for a in archs if cards and a in cards}
    epochs = sorted({c["epochs"] for c in cards.values() if c.get("epochs")})
    sizes = sorted({int(c["train_sizes"][-1]) for c in cards.values() if c.get("train_sizes")})
    images = sorted({c["dataset"]["train_images"] for c in cards.values() if (c.get("dataset") or {}).get("train_images")})
    span = lambda v, unit: (f"{v[0]}{unit}" if len(v) == 1 else f"{v[0]} to {v[-1]}{unit}")  # noqa: E731
    budget = f" ({span(epochs, '')} epochs here)" if epochs else ""
    res = f"{span(sizes, ' px')} inputs here" if sizes else "smaller inputs here"
    data = f"{images[-1]:,} images of 10 classes" if images else "Imagenette's ten classes"
    return (f"a budget of a few epochs{budget} rewards networks that learn fast over those that gain most from long "
            f"training; {res} against the papers' 224 px or so leave deep stacks less to resolve; and {data} "
            "against ImageNet's 1.28 million of 1,000 favour fewer parameters. The papers' figures also come from "
            "their own protocols (single- or 10-crop, their own training lengths), so a gap of a point or two in "
            "them is no firm order either.")


def orders_sentence(rows: list[dict], cards: dict[str, dict] | None = None) -> str:
    """Where the papers' ImageNet order and our Imagenette order of the same networks differ, and
    what can make them differ, computed from the rows."""
    if len(rows) < 2:
        return ""
    flipped, n = order_pairs(rows)
    if not flipped:
        return (f"The {len(rows)} networks whose papers report an ImageNet top-1 come in the same order here as in "
                f"their papers: all {n} pairs agree.")
    # the widest swaps first, at most one pair per model, so that four pairs name eight networks
    shown, used = [], set()
    for hi, lo in sorted(flipped, key=lambda p: -abs(p[0]["paper_top1"] - p[1]["paper_top1"])):
        if hi["model"] not in used and lo["model"] not in used and len(shown) < 4:
            shown.append((hi, lo))
            used |= {hi["model"], lo["model"]}
    pairs = "; ".join(f"{hi['model']} is above {lo['model']} here ({hi['ours_top1']:.1f} against {lo['ours_top1']:.1f}), "
                      f"below it in the papers ({hi['paper_top1']:.1f} against {lo['paper_top1']:.1f})"
                      + budget_note(hi, lo, cards) for hi, lo in shown)
    more = f", and {len(flipped) - len(shown)} more" if len(flipped) > len(shown) else ""
    why = why_orders_differ([r.get("arch") for r in rows], cards)
    return (f"Of the {n} pairs among the {len(rows)} networks whose papers report an ImageNet top-1, {n - len(flipped)} "
            f"keep their order here and {len(flipped)} swap: {pairs}{more}. Three things can swap them: {why}")
