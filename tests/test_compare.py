"""explorer.compare: what the Compare page says beside its charts."""
from __future__ import annotations

from explorer.compare import curve_vs_card, disagreements


def _card(title, top1, image_size=0, input_size=128):
    return {"title": title, "input_size": input_size, "recipe": {"image_size": image_size},
            "metrics": {"val_top1": top1}}


def _curve(arch, values):
    return [{"arch": arch, "epoch": e, "metric": "val_top1", "value": v} for e, v in enumerate(values, 1)]


def test_curve_and_card_differences_are_explained():
    """SE-ResNet-18 shipped trained at 96 px: its curve ends at 80.18 while its card (128 px) says 81.40."""
    loaded = {"a": (None, _card("A", 73.86)), "se": (None, _card("SE", 81.40, image_size=96)),
              "c": (None, _card("C", 50.0))}
    curves = _curve("a", [60.0, 73.86]) + _curve("se", [70.0, 80.18]) + _curve("c", [51.0, 49.0])
    notes = curve_vs_card(loaded, curves)
    assert len(notes) == 2                                   # A's curve ends at its card's figure: nothing to say
    assert "trained on 96 px crops" in notes[0] and "80.18%" in notes[0] and "81.40%" in notes[0]
    assert notes[1].startswith("The last logged val top-1 differs from the card for C (49.00% logged, 50.00% on the")


def test_disagreements_say_why_images_are_missing(tiny_data):
    card = {"metrics": {"val_pred": [0, 1, 2], "eval_data_fingerprint": "x"}}
    other = {"metrics": {"val_pred": [0, 2, 2], "eval_data_fingerprint": "x"}}
    assert "not on this machine" in disagreements(card, other, None)["reason"]
    d = disagreements(card, other, tiny_data)                 # a copy, but not the one the cards were scored on
    assert d["count"] == 1 and "not the one the cards were evaluated on" in d["reason"]


def test_scatter_names_never_overlap():
    """Fourteen models, several on top of each other: every name written lies clear of every other
    name and dot; names that fit nowhere are left out, never drawn over another."""
    from explorer.compare import label_positions
    pts = [(0.10, 0.9, "LeNet-5"), (0.5, 0.5, "ConvNet + BatchNorm"), (0.52, 0.5, "Network in Network")] + \
        [(0.6 + 0.01 * i, 0.3, f"Model number {i}") for i in range(11)]
    pos = label_positions(pts, width_px=560, height_px=380)
    assert pos[0] == {"dx": 10, "dy": 0, "align": "left"}           # alone: to the right of its dot
    assert sum(p is None for p in pos) >= 5                          # eleven in a row cannot all be named
    boxes = []
    for (x, y, name), p in zip(pts, pos):
        if p is None:
            continue
        px, py, w = x * 560 + p["dx"], (1 - y) * 380 + p["dy"], len(name) * 6.5
        left = px if p["align"] == "left" else px - w if p["align"] == "right" else px - w / 2
        boxes.append((left, py - 7, left + w, py + 7))
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)
