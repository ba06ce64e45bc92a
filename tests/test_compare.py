"""explorer.compare: what the Compare page says beside its charts."""
from __future__ import annotations

import pytest

from explorer.compare import curve_vs_card, disagreements, order_pairs, orders_sentence


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
    assert notes[0].startswith("Trained on 96 px crops") and "SE (80.18% after epoch 2, 81.40% on the card)" in notes[0]
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


def test_one_sentence_for_every_model_trained_at_one_smaller_size():
    """Eight models trained at 96 px got eight copies of one sentence (issue 27): now one, naming all."""
    loaded = {f"m{i}": (None, _card(f"M{i}", 80.0 + i, image_size=96)) for i in range(8)}
    curves = [r for i in range(8) for r in _curve(f"m{i}", [70.0, 79.0 + i])]
    notes = curve_vs_card(loaded, curves)
    assert len(notes) == 1 and all(f"M{i} (" in notes[0] for i in range(8))


def _row(model, paper, ours):
    return {"arch": model, "model": model, "paper_top1": paper, "ours_top1": ours}


def test_orders_sentence_when_the_orders_agree():
    rows = [_row("AlexNet", 59.3, 73.8), _row("VGG-16", 74.4, 84.0), _row("ResNet-34", 75.5, 86.0)]
    assert order_pairs(rows) == ([], 3)
    s = orders_sentence(rows)
    assert "same order here as in their papers: all 3 pairs agree" in s


def test_orders_sentence_names_the_pairs_that_swap():
    rows = [_row("ResNet-18", 72.1, 80.2), _row("ResNet-34", 75.5, 79.5), _row("AlexNet", 59.3, 73.8),
            _row("ViT", 77.9, 64.7)]
    flipped, n = order_pairs(rows)
    assert n == 6 and len(flipped) == 4   # 18/34, 18/ViT, 34/ViT, AlexNet/ViT
    assert {(hi["model"], lo["model"]) for hi, lo in flipped} == {
        ("ResNet-18", "ResNet-34"), ("ResNet-18", "ViT"), ("ResNet-34", "ViT"), ("AlexNet", "ViT")}
    s = orders_sentence(rows)
    assert "2 keep their order here and 4 swap" in s
    assert "ResNet-18 is above ResNet-34 here (80.2 against 79.5), below it in the papers (72.1 against 75.5)" in s
    assert "AlexNet is above ViT here" in s and s.count("is above") == 2   # one pair per model: 2 pairs, 4 models
    assert "budget" in s and "smaller inputs here" in s and "1.28 million" in s   # no cards: nothing to count
    # with the cards, each swapped pair says how the budgets differed here
    cards = {"ResNet-18": {"epochs": 16, "train_compute": {"flops": 4e17}},
             "ResNet-34": {"epochs": 10, "train_compute": {"flops": 5e17}},
             "AlexNet": {"epochs": 30, "train_compute": {"flops": 1e17}}, "ViT": {"epochs": 30, "train_compute": {"flops": 2e17}}}
    s = orders_sentence(rows, cards)
    assert "below it in the papers (72.1 against 75.5); here ResNet-34 trained 10 epochs to ResNet-18's 16, with 1.2x its training compute" in s
    assert "here ViT trained with 2.0x its training compute" in s          # the same epochs: only the compute is said
    # the reasons carry the zoo's own budget, sizes and data from the cards
    for c, size in zip(cards.values(), (128, 128, 96, 128)):
        c.update(train_sizes=[96, size], dataset={"train_images": 9469})
    s = orders_sentence(rows, cards)
    assert "a budget of a few epochs (10 to 30 epochs here)" in s and "96 to 128 px inputs here" in s
    assert "9,469 images of 10 classes" in s


@pytest.mark.parametrize("tie", ["paper", "ours"])
def test_a_tie_is_no_swap(tie):
    rows = [_row("A", 70.0, 80.0), _row("B", 70.0 if tie == "paper" else 71.0, 80.0 if tie == "ours" else 79.0)]
    assert order_pairs(rows) == ([], 1)
