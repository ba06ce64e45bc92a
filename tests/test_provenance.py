"""explorer.provenance: how each network was trained, as Home, Compare and Attention say it."""
from __future__ import annotations

import pytest

from explorer import provenance
from models import cost


def _card(arch="resnet18", epochs=10, image_size=96, hw="1x CPU (1 threads, 2 cores, x86_64)", **extra):
    return {"arch": arch, "title": arch, "epochs": epochs, "input_size": 128, "hardware": hw, "wall_time_s": 1096.0,
            "storage": "int8", "recipe": {"image_size": image_size, "distill_alpha": 0.5},
            "dataset": {"train_images": 9469}, **extra}


@pytest.mark.parametrize("hw,want", [("1x CPU (1 threads, 2 cores, x86_64)", "CPU, 1 thread"),
                                     ("1x CPU (2 threads, 2 cores, x86_64)", "CPU, 2 threads"),
                                     ("1x CPU (2 cores, x86_64)", "CPU, 2 cores"),
                                     ("1x NVIDIA H200", "NVIDIA H200")])
def test_hardware_in_a_few_words(hw, want):
    assert provenance.hardware_text({"hardware": hw}) == want


def test_an_older_card_gets_its_compute_by_the_same_rule():
    card = _card()
    assert provenance.train_sizes(card) == [96] * 10
    assert provenance.compute("resnet18", card)["flops"] == pytest.approx(
        cost.training_compute("resnet18", [96] * 10, 9469)["flops"])     # no batch size recorded: all
    batched = {**card, "recipe": {**card["recipe"], "batch_size": 64}}
    assert provenance.images_seen(batched) == 9408                          # 147 whole batches of 64
    assert provenance.compute("resnet18", batched)["flops"] == pytest.approx(
        cost.training_compute("resnet18", [96] * 10, 9408)["flops"])
    # a stored figure is the card's; one that counted all 9,469 images is scaled to the 9,408 seen
    assert provenance.compute("resnet18", {**batched, "train_compute": {"flops": 1.0}})["flops"] == 1.0
    old = {**batched, "train_compute": {"flops": 9469.0, "images_per_epoch": 9469, "pflops": 0.0}}
    assert provenance.compute("resnet18", old)["flops"] == pytest.approx(9408.0)


def test_sentences_say_the_budget_the_crops_and_the_teacher():
    s = provenance.sentence("resnet18", _card())
    assert s.startswith("10 epochs from scratch on 96 px crops, scored at 128 px (CPU, 1 thread, 18 min,")
    assert "with its own recipe; stored as int8." in s and "teacher" not in s
    prog = provenance.sentence("resnet18", _card(train_sizes=[96] * 6 + [112] * 5 + [128] * 5, protocol="short-cnn",
                                                 epochs=16))
    assert "on 96 → 112 → 128 px crops (" in prog and "under the short-cnn protocol" in prog
    vit = provenance.sentence("vit", _card("vit", 22, 0, teacher={"arch": "se_resnet18", "title": "SE-ResNet-18"}))
    assert "on 128 px crops (" in vit and "50% of each step's loss is SE-ResNet-18's answer" in vit


def test_the_zoo_sentence_counts_what_the_cards_say():
    cards = {"resnet18": _card(), "alexnet": _card("alexnet", 14, 0, "1x CPU (2 cores, x86_64)"),
             "vit": _card("vit", 22, 0, teacher={"arch": "se_resnet18", "title": "SE-ResNet-18"})}
    s = provenance.zoo_sentence(cards)
    assert s.startswith("All 3 trained networks learned from scratch on Imagenette's 9,469 training images on this "
                        "project's 2-core CPU, each with its own recipe: 10 to 22 epochs, crops of 96 or 128 px;")
    assert "1 learned from a teacher's answers: Vision Transformer (from SE-ResNet-18)." in s
    # pupils of one teacher are named together; another teacher's apart
    bn = {"arch": "bn_convnet", "title": "ConvNet + BatchNorm"}
    both = {**cards, "vit": {**cards["vit"], "teacher": bn}, "mlp_mixer": _card("mlp_mixer", 16, 0, teacher=bn)}
    assert ("2 learned from a teacher's answers: Vision Transformer and MLP-Mixer (from ConvNet + BatchNorm)." in
            provenance.zoo_sentence(both))
    apart = {**both, "vit": cards["vit"]}
    assert ("2 learned from a teacher's answers: Vision Transformer (from SE-ResNet-18), MLP-Mixer (from ConvNet + "
            "BatchNorm)." in provenance.zoo_sentence(apart))
    mixed = provenance.zoo_sentence({**cards, "resnet34": _card("resnet34", protocol="short-cnn")})
    assert "1 under the short-cnn protocol and 3 each with its own recipe" in mixed
    # the token-mixers' protocol is counted apart, not run together with the CNNs' into one name
    two = provenance.zoo_sentence({**cards, "resnet34": _card("resnet34", protocol="short-cnn"),
                                   "vit": {**cards["vit"], "protocol": "short-token"}})
    assert "1 under the short-cnn protocol, 1 under the short-token protocol and 2 each with its own recipe" in two
    every = {a: {**c, "protocol": "short-token" if a == "vit" else "short-cnn"} for a, c in cards.items()}
    assert "2-core CPU, 2 under the short-cnn protocol and 1 under the short-token protocol:" in \
        provenance.zoo_sentence(every)
    last = {**every, "alexnet": cards["alexnet"]}
    assert "1 under the short-cnn protocol, 1 under the short-token protocol and 1 with its own recipe:" in \
        provenance.zoo_sentence(last)
    one = {a: {**c, "protocol": "short-cnn"} for a, c in cards.items()}
    assert "2-core CPU, under one protocol (short-cnn):" in provenance.zoo_sentence(one)
    # the CPU's cores come from the cards: another machine is not called 2-core
    wide = {a: {**c, "hardware": "1x CPU (16 threads, 16 cores, x86_64)"} for a, c in cards.items()}
    assert "on this project's 16-core CPU," in provenance.zoo_sentence(wide)
    assert "on this project's CPU," in provenance.zoo_sentence({**cards, **{"vit": wide["vit"]}})


def test_the_zoo_sentence_names_growing_crops_apart():
    cards = {"resnet18": _card(train_sizes=[96] * 6 + [112] * 5 + [128] * 5, protocol="short-cnn", epochs=16),
             "alexnet": _card("alexnet", 14, 0), "nin": _card("nin", 12, 96)}
    s = provenance.zoo_sentence(cards)
    assert ("1 under the short-cnn protocol and 2 each with its own recipe: 12 to 16 epochs, crops of 96 or 128 px, "
            "or growing 96 → 112 → 128 px.") in s
