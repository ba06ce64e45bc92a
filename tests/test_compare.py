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
    assert notes[1].startswith("C's last logged val top-1 (49.00%, epoch 2)")


def test_disagreements_say_why_images_are_missing(tiny_data):
    card = {"metrics": {"val_pred": [0, 1, 2], "eval_data_fingerprint": "x"}}
    other = {"metrics": {"val_pred": [0, 2, 2], "eval_data_fingerprint": "x"}}
    assert "not on this machine" in disagreements(card, other, None)["reason"]
    d = disagreements(card, other, tiny_data)                 # a copy, but not the one the cards were scored on
    assert d["count"] == 1 and "not the one the cards were evaluated on" in d["reason"]
