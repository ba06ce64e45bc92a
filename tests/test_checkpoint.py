"""The checkpoint format refuses anything it cannot vouch for, with one clear sentence."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

import models
from models import CheckpointError, checkpoint


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    m = models.create("bn_convnet", "explorer")
    models.save(m, tmp_path / "bn_convnet", {"num_classes": 10})
    return tmp_path


def test_roundtrip(saved):
    model, card = models.load("bn_convnet", saved)
    assert card["weights"][0]["file"] == "weights.safetensors" and card["storage"] == "int8"
    assert not model.training


def test_flipped_byte_is_refused(saved):
    f = saved / "bn_convnet" / "weights.safetensors"
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    f.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"weights\.safetensors does not match the sha256.*restore it"):
        models.load("bn_convnet", saved)


def test_card_naming_another_architecture_is_refused(saved):
    shutil.copytree(saved / "bn_convnet", saved / "resnet18")
    with pytest.raises(CheckpointError, match=r"describes architecture 'bn_convnet', not 'resnet18'"):
        models.load("resnet18", saved)


def test_missing_checkpoint_names_the_fix(tmp_path):
    with pytest.raises(CheckpointError, match=r"No trained checkpoint for vit: .* train one with"):
        models.load("vit", tmp_path)


def test_corrupt_card_and_changed_config(saved):
    card_path = saved / "bn_convnet" / "card.json"
    card = json.loads(card_path.read_text())
    card_path.write_text(json.dumps({**card, "config": {"widths": [8, 8, 8, 8]}}))
    with pytest.raises(CheckpointError, match="retrain bn_convnet"):
        models.load("bn_convnet", saved)
    card_path.write_text("{not json")
    with pytest.raises(CheckpointError, match="not a valid JSON card"):
        models.load("bn_convnet", saved)


def test_weights_that_do_not_fit_are_refused(tmp_path):
    other = models.create("resnet18", "explorer")
    models.save(other, tmp_path / "se_resnet18", {"num_classes": 10})  # plain ResNet weights
    card_path = tmp_path / "se_resnet18" / "card.json"
    card = json.loads(card_path.read_text())
    card_path.write_text(json.dumps({**card, "arch": "se_resnet18"}))
    with pytest.raises(CheckpointError, match="do not fit se_resnet18 .*missing"):
        models.load("se_resnet18", tmp_path)


def test_weights_file_outside_the_folder_is_refused(saved):
    card_path = saved / "bn_convnet" / "card.json"
    card = json.loads(card_path.read_text())
    card["weights"][0]["file"] = "../../etc/passwd"
    card_path.write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="is missing"):
        models.load("bn_convnet", saved)


def test_large_models_are_sharded_under_16_mib(tmp_path):
    m = models.create("resnet34", "explorer")
    models.save(m, tmp_path / "resnet34", {"num_classes": 10}, storage="float16")
    files = sorted((tmp_path / "resnet34").glob("weights-*.safetensors"))
    assert len(files) >= 3 and all(f.stat().st_size < 16 * 2**20 for f in files)
    loaded, _ = models.load("resnet34", tmp_path)
    assert sum(p.numel() for p in loaded.parameters()) == sum(p.numel() for p in m.parameters())


def test_int8_storage_keeps_every_weight_within_half_a_step(tmp_path):
    """Weight matrices and kernels go int8 with one scale per output channel; the rest fp16."""
    torch.manual_seed(0)
    m = models.create("alexnet", "explorer").eval()
    models.save(m, tmp_path / "q" / "alexnet", {"num_classes": 10})
    models.save(m, tmp_path / "h" / "alexnet", {"num_classes": 10}, storage="float16")
    q, card = models.load("alexnet", tmp_path / "q")
    assert card["storage"] == "int8"
    from safetensors.torch import load_file
    stored = load_file(str(tmp_path / "q" / "alexnet" / "weights.safetensors"))
    want = m.state_dict()
    for k, v in q.state_dict().items():
        if k + checkpoint.SCALE in stored:
            assert stored[k].dtype == torch.int8 and want[k].ndim >= 2
            step = stored[k + checkpoint.SCALE].view(-1, *[1] * (v.ndim - 1))
            assert ((v - want[k]).abs() <= step / 2 + 1e-7).all(), k
        elif v.is_floating_point():
            assert stored[k].dtype == torch.float16
            assert torch.equal(v, want[k].half().float()), k
    assert {k for k in stored if k.endswith(checkpoint.SCALE)}  # something was quantised
    assert not any(k.endswith(checkpoint.SCALE) for k in q.state_dict())
    size = lambda d: sum(f.stat().st_size for f in d.glob("weights*.safetensors"))  # noqa: E731
    assert size(tmp_path / "q" / "alexnet") < 0.55 * size(tmp_path / "h" / "alexnet")
    # fp16 checkpoints (the earlier format) still load
    h, hcard = models.load("alexnet", tmp_path / "h")
    assert hcard["storage"] == "float16"
    assert all(torch.equal(v, want[k].half().float()) for k, v in h.state_dict().items() if v.is_floating_point())


def test_a_zero_channel_quantises_to_zero():
    w = torch.randn(4, 3, 3, 3)
    w[2] = 0
    q, scale = checkpoint.quantize_int8(w)
    assert (q[2] == 0).all() and torch.isfinite(scale).all()
    assert q.abs().flatten(1).amax(1).tolist() == [127, 127, 0, 127]


@pytest.mark.parametrize("arch", ["alexnet", "vgg16", "nin", "bn_convnet"])
def test_checkpoints_from_before_the_layer_names_still_load(tmp_path, arch):
    """Issue 28, point 4: checkpoints written while the hand-written networks numbered their layers
    (`trunk.features.0`) load into today's named layers (`trunk.features.conv1`) with the same output."""
    from safetensors.torch import load_file, save_file
    torch.manual_seed(0)
    m = models.create(arch, "explorer").eval()
    models.save(m, tmp_path / arch, {"num_classes": 10})
    old = {new: o for o, new in checkpoint._renames(arch, "explorer").items()}
    assert old, "nothing to map"
    card_path = tmp_path / arch / "card.json"
    card = json.loads(card_path.read_text())
    state = {}
    for entry in card["weights"]:                  # write the keys as the old code did
        f = tmp_path / arch / entry["file"]
        shard = load_file(str(f))
        state.update(shard)
        numbered = {}
        for k, v in shard.items():
            mod, leaf = k.removesuffix(checkpoint.SCALE).rsplit(".", 1)
            numbered[f"{old.get(mod, mod)}.{leaf}" + (checkpoint.SCALE if k.endswith(checkpoint.SCALE) else "")] = v
        save_file(numbered, str(f))
        entry["sha256"] = checkpoint.sha256_file(f)
    card_path.write_text(json.dumps(card))
    assert not any(k.startswith("trunk.features.conv1") for e in card["weights"]
                   for k in load_file(str(tmp_path / arch / e["file"])))
    loaded, _ = models.load(arch, tmp_path)
    reference = checkpoint.dequantize(state)
    x = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        m.load_state_dict({k: v.to(m.state_dict()[k].dtype) for k, v in reference.items()})
        assert torch.allclose(loaded(x), m(x), atol=1e-5)
    assert checkpoint.current_path(arch, old[loaded.stem_path]) == loaded.stem_path
    assert checkpoint.current_path(arch, "trunk.not.renamed") == "trunk.not.renamed"
    assert checkpoint.current_path("resnet18", "trunk.layer1.0") == "trunk.layer1.0"   # never numbered by us


def test_numbered_keys_keep_a_wrappers_prefix():
    state = {"module.trunk.features.0.weight": 1, "n_averaged": 2, "_orig_mod.head.bias": 3}
    assert checkpoint.current_keys("alexnet", state) == {"module.trunk.features.conv1.weight": 1, "n_averaged": 2,
                                                         "_orig_mod.head.bias": 3}


# --- the shipped zoo's side files -------------------------------------------------------

def _shipped() -> list[str]:
    from pathlib import Path
    ck = Path(__file__).resolve().parent.parent / "checkpoints"
    return [s.name for s in models.list_architectures() if (ck / s.name / "card.json").exists()]


@pytest.mark.parametrize("arch", _shipped())
def test_every_shipped_side_file_was_made_from_the_weights_it_ships(arch):
    """Issue 26: 'every side file refreshed' after a retraining. The pages hide a file made from
    other weights, so a stale one does not show a wrong number: it shows nothing. Each model has
    the files every page needs, plus attention for the token-mixers and SE profiles for SE nets,
    and the zoo-wide robustness rows and transfer matrix name its weights."""
    from pathlib import Path

    from explorer import attention, reliance_zoo, representations, retrieval, se, sidecar, units
    from models.probes import attention_modules, is_mixer, se_modules
    ck = Path(__file__).resolve().parent.parent / "checkpoints"
    card = models.read_card(arch, ck)
    with torch.device("meta"):
        model = models.create(arch, card["preset"])
    wanted = [retrieval.INDEX, units.UNITS, representations.FILE, reliance_zoo.FILE]
    wanted += [attention.FIGURES] if attention_modules(model) or is_mixer(model) else []
    wanted += [se.PROFILES] if se_modules(model) else []
    for name in wanted:
        assert (ck / arch / name).exists(), f"{arch}: no {name}"
        with sidecar.opened(ck / arch / name, card) as f:
            assert f is not None, f"{arch}: {name} was made from other weights"
    sha = sidecar.weights_sha(card)
    rob = json.loads((ck / "robustness.json").read_text())["models"]
    assert rob[arch]["weights_sha256"] == sha, f"{arch}: its robustness row was made from other weights"
    transfer = json.loads((ck / reliance_zoo.TRANSFER).read_text())["weights_sha256"]
    assert transfer[arch] == sha, f"{arch}: the transfer matrix was made with other weights"
