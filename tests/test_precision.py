"""bf16 where it pays, fp32 where it does not: which path runs, and that nothing below the
agreement bar is ever served in bf16."""
from __future__ import annotations

import json

import pytest
import torch

import models
from explorer import classify, zoo
from models import precision


def _card_bf16(card: dict, agreement: float, speedup: float) -> dict:
    return {**card, "bf16": {"agreement": agreement, "speedup": speedup,
                             "weights_sha256": [w["sha256"] for w in card["weights"]]}}


def test_cpu_bf16_is_detected_from_the_flags(monkeypatch):
    precision.cpu_bf16.cache_clear()
    monkeypatch.setattr(precision, "_cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    assert precision.cpu_bf16() == "AVX512-BF16"
    precision.cpu_bf16.cache_clear()
    monkeypatch.setattr(precision, "_cpu_flags", lambda: {"avx512f", "amx_bf16", "avx512_bf16"})
    assert precision.cpu_bf16() == "AMX-BF16"
    assert precision.describe(torch.device("cpu"), True) == "bf16 autocast (CPU AMX-BF16), fp32 master weights"
    precision.cpu_bf16.cache_clear()
    monkeypatch.setattr(precision, "_cpu_flags", lambda: {"avx2"})
    assert precision.cpu_bf16() == "" and not precision.autocast_ok(torch.device("cpu"))
    precision.cpu_bf16.cache_clear()


def test_only_models_over_the_bar_and_faster_are_served_in_bf16(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16", lambda: "AMX-BF16")
    card = {"weights": [{"sha256": "abc"}]}
    assert precision.serve_bf16(_card_bf16(card, 99.9, 1.5))
    assert not precision.serve_bf16(_card_bf16(card, 99.4, 1.5))      # below the agreement bar
    assert not precision.serve_bf16(_card_bf16(card, 100.0, 1.01))    # not worth it
    assert not precision.serve_bf16(card)                             # never measured
    stale = _card_bf16(card, 99.9, 1.5)
    stale["weights"] = [{"sha256": "other"}]                          # measured on other weights
    assert not precision.serve_bf16(stale)
    monkeypatch.setattr(precision, "cpu_bf16", lambda: "")
    assert not precision.serve_bf16(_card_bf16(card, 99.9, 1.5))      # no native bf16 here


def test_no_shipped_model_below_the_bar_is_served_in_bf16():
    loaded, _ = zoo.load_all()
    assert loaded
    for arch, (model, card) in loaded.items():
        if model.serve_bf16:
            assert card["bf16"]["agreement"] >= precision.AGREEMENT_BAR, arch
            assert card["bf16"]["weights_sha256"] == [w["sha256"] for w in card["weights"]], arch


def test_classify_runs_bf16_exactly_where_the_card_allows(tmp_path, monkeypatch):
    from PIL import Image
    monkeypatch.setattr(precision, "cpu_bf16", lambda: "AMX-BF16")
    torch.manual_seed(0)
    for arch, agreement in (("bn_convnet", 99.9), ("resnet18", 99.0)):
        models.save(models.create(arch), tmp_path / arch, {"num_classes": 10})
        path = tmp_path / arch / "card.json"
        path.write_text(json.dumps(_card_bf16(json.loads(path.read_text()), agreement, 2.0)))
    loaded, _ = zoo.load_all(tmp_path, ["bn_convnet", "resnet18"])
    assert loaded["bn_convnet"][0].serve_bf16 and not loaded["resnet18"][0].serve_bf16
    image = Image.new("RGB", (200, 150), (120, 60, 30))
    results, inputs = classify.classify(loaded, image)
    for r in results:
        model = loaded[r.arch][0]
        x = inputs[(model.input_size, model.in_chans)].contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=r.arch == "bn_convnet"):
            want = model(x).float().softmax(-1)[0]
        assert r.probs == pytest.approx(want.tolist(), abs=1e-6), r.arch
