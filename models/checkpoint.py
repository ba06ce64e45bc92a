"""The checkpoint format: safetensors weights plus a JSON card, and nothing unpickled.

    checkpoints/<arch>/
        card.json                    what the weights are and how they were made
        weights.safetensors          (or weights-00001-of-0000N.safetensors when sharded)
        metrics.csv                  per-epoch training curves (written by scripts/train.py)

Storage (`card["storage"]`): "int8" keeps every weight matrix and kernel as int8 with one
symmetric fp32 scale per output channel (`<key>` and `<key>.__scale__`, weight-only: the
model computes in fp32 after loading), and biases, norms, embeddings and small tensors in
fp16; "float16" keeps every floating tensor in fp16. Both load the same way. int8 halves a
checkpoint (the whole zoo in one submission) and moves no weight by more than half a step
of its channel's scale; the card keeps the top-1 measured before quantising beside the top-1
of exactly what ships.

The card holds: arch, preset and full config, classes, input size, mean/std, metrics
(val top-1/top-5, per-class accuracy, confusion matrix), training recipe, epochs, wall
time, hardware, code commit, dataset fingerprint, and the sha256 of every weights file.

`load` verifies, in order: the card parses, names this architecture and a known preset,
its config equals the registry's preset, every weights file exists with the recorded
sha256, and the tensors match the model's keys and shapes exactly (strict). Any failure
raises `CheckpointError` with one sentence naming the file and the fix.

Older checkpoints and side files numbered the layers of the hand-written networks by position
(`trunk.features.0` where the code now says `trunk.features.conv1`); `current_path` and
`current_keys` map those names, so every checkpoint made before the naming still loads.
"""
from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .registry import create, get_spec

FORMAT_VERSION = 1
STORAGES = ("int8", "float16")
SCALE = ".__scale__"          # suffix of an int8 tensor's per-output-channel scales
INT8_MIN_NUMEL = 1024         # smaller weight tensors stay fp16 (a few bytes saved, none worth it)
SHARD_BYTES = 15 * 1024 * 1024   # a device call returns files of at most 16 MiB
CARD = "card.json"


class CheckpointError(Exception):
    """A checkpoint that cannot be used.

    str(e) is one sentence naming the file and the fix (for the command line and logs);
    `e.public` says the same without any server path (for the app), and `e.absent` is True
    when there simply is no checkpoint yet (as opposed to a broken one)."""

    def __init__(self, message: str, public: str = "", absent: bool = False):
        super().__init__(message)
        self.public = public or "its checkpoint could not be verified; restore it from git or re-export it."
        self.absent = absent


@functools.lru_cache(maxsize=None)
def _renames(arch: str, preset: str) -> dict[str, str]:
    """{numbered module path (as older files wrote it): current module path} for `arch`; empty
    when nothing was renamed. A child of a container listed in the spec's `numbered` was
    written as its index in that container."""
    numbered = get_spec(arch).numbered
    if not numbered:
        return {}
    with torch.device("meta"):
        model = create(arch, preset)
    out = {}

    def walk(module, new: str, old: str) -> None:
        renamed = any(fnmatch.fnmatchcase(new, p) for p in numbered)
        for i, (name, child) in enumerate(module.named_children()):
            n, o = f"{new}.{name}" if new else name, f"{old}.{i if renamed else name}" if old else name
            if o != n:
                out[o] = n
            walk(child, n, o)

    walk(model, "", "")
    return out


def current_path(arch: str, path: str, preset: str = "explorer") -> str:
    """The module path the code uses now for `path` as an older file wrote it (unchanged when
    it was never renamed)."""
    return _renames(arch, preset).get(path, path)


def current_keys(arch: str, state: dict, preset: str = "explorer") -> dict:
    """`state` (parameter and buffer names -> values) with numbered module paths renamed; a
    wrapper's prefix (an EMA's or DDP's `module.`) is kept."""
    ren = _renames(arch, preset)
    if not ren:
        return state
    out = {}
    for key, v in state.items():
        parts = key.split(".")
        start = parts.index("trunk") if "trunk" in parts else 0
        for cut in range(len(parts) - 1, start, -1):   # the longest module path that was renamed
            mod = ".".join(parts[start:cut])
            if mod in ren:
                key = ".".join([*parts[:start], ren[mod], *parts[cut:]])
                break
        out[key] = v
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def jsonable(obj):
    """Tuples to lists, recursively, so a config compares equal after a JSON round trip."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


def _shards(state: dict[str, torch.Tensor], limit: int) -> list[dict[str, torch.Tensor]]:
    shards, cur, size = [], {}, 0
    for k, v in state.items():
        n = v.numel() * v.element_size()
        if cur and size + n > limit:
            shards.append(cur)
            cur, size = {}, 0
        cur[k] = v
        size += n
    if cur or not shards:
        shards.append(cur)
    return shards


def quantizable(key: str, t: torch.Tensor) -> bool:
    """A weight matrix or kernel (conv, linear): int8 storage. Biases, norms, tokens and
    position embeddings, and tensors under INT8_MIN_NUMEL elements stay fp16."""
    return t.is_floating_point() and key.endswith("weight") and t.ndim >= 2 and t.numel() >= INT8_MIN_NUMEL


def quantize_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 tensor, fp32 scale per output channel): symmetric, round to nearest, so
    `q * scale` is within half a step (scale / 2) of `w` in every element."""
    w = w.detach().float()
    amax = w.abs().flatten(1).amax(1)
    scale = torch.where(amax > 0, amax / 127.0, torch.ones_like(amax))
    q = (w / scale.view(-1, *[1] * (w.ndim - 1))).round().clamp(-127, 127).to(torch.int8)
    return q, scale


def dequantize(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Stored tensors to the model's keys: every int8 tensor times its channel scales (fp32)."""
    out = {}
    for k, v in state.items():
        if k.endswith(SCALE):
            continue
        scale = state.get(k + SCALE)
        if scale is not None:
            v = v.float() * scale.float().view(-1, *[1] * (v.ndim - 1))
        out[k] = v
    return out


def stored_state(model, storage: str) -> dict[str, torch.Tensor]:
    """What goes into the safetensors files for `storage` ("int8" or "float16")."""
    if storage not in STORAGES:
        raise ValueError(f"unknown storage {storage!r}; choose one of {STORAGES}")
    state = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        if storage == "int8" and quantizable(k, v):
            state[k], state[k + SCALE] = quantize_int8(v)
        else:
            state[k] = v.to(torch.float16) if v.is_floating_point() else v
    return {k: v.contiguous() for k, v in state.items()}


def save(model, out_dir: str | Path, card: dict, storage: str = "int8",
         shard_bytes: int = SHARD_BYTES) -> Path:
    """Write `model`'s weights in `storage` ("int8" or "float16", see above) and `card` into `out_dir`.

    `card` should hold the training facts (recipe, metrics, ...); identity fields
    (arch, preset, config, input size, storage, weights hashes) are filled in here.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = get_spec(model.arch)
    preset = spec.preset(model.preset_name)
    state = stored_state(model, storage)
    for old in out.glob("weights*.safetensors"):
        old.unlink()
    parts = _shards(state, shard_bytes)
    files = []
    for i, part in enumerate(parts, 1):
        name = "weights.safetensors" if len(parts) == 1 else f"weights-{i:05d}-of-{len(parts):05d}.safetensors"
        save_file(part, str(out / name), metadata={"arch": model.arch, "format": "vision-hist"})
        files.append({"file": name, "sha256": sha256_file(out / name), "bytes": (out / name).stat().st_size})
    full = {
        **card,
        "format_version": FORMAT_VERSION,
        "arch": model.arch,
        "title": spec.title,
        "preset": model.preset_name,
        "config": jsonable(preset.kwargs),
        "num_classes": card.get("num_classes") or len(card.get("classes", [])) or 10,
        "input_size": preset.input_size,
        "in_chans": preset.in_chans,
        "storage": storage,
        "dtype": "int8 weights, float16 rest" if storage == "int8" else "float16",
        "weights": files,
    }
    tmp = out / (CARD + ".tmp")
    tmp.write_text(json.dumps(full, indent=1, sort_keys=False) + "\n")
    os.replace(tmp, out / CARD)
    return out


def read_card(arch: str, checkpoints_dir: str | Path = "checkpoints") -> dict:
    """The parsed, identity-checked card of `arch` (no weights read)."""
    d = Path(checkpoints_dir) / arch
    path = d / CARD
    if not path.exists():
        raise CheckpointError(f"No trained checkpoint for {arch}: {path} does not exist; train one with "
                              f"`python scripts/train.py --arch {arch}` (see README).",
                              public=f"not trained yet; `python scripts/train.py --arch {arch}` trains it.",
                              absent=True)
    try:
        card = json.loads(path.read_text())
        if not isinstance(card, dict):
            raise ValueError("not an object")
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not a valid JSON card ({e}); re-export the checkpoint with "
                              f"scripts/train.py or restore it from git.",
                              public="its card is not valid JSON; restore it from git or re-export it.") from None
    if card.get("arch") != arch:
        raise CheckpointError(f"{path} describes architecture {card.get('arch')!r}, not {arch!r}; put the "
                              f"checkpoint in checkpoints/{card.get('arch')}/ or restore {arch}'s card.",
                              public=f"its card describes another architecture ({card.get('arch')!r}); "
                                     "restore it from git.")
    spec = get_spec(arch)
    preset = card.get("preset")
    if preset not in spec.presets:
        raise CheckpointError(f"{path} names preset {preset!r}, which {arch} does not have; re-export it.",
                              public=f"its card names a preset ({preset!r}) this code does not have; re-export it.")
    want = jsonable(spec.presets[preset].kwargs)
    if card.get("config") != want:
        raise CheckpointError(f"{path} was made with config {card.get('config')} but the registry's {preset} "
                              f"preset is {want}; retrain {arch} or restore the matching code.",
                              public="its weights were made for another configuration of the network than "
                                     f"this code builds; retrain it (`python scripts/train.py --arch {arch}`).")
    if not card.get("weights"):
        raise CheckpointError(f"{path} lists no weights files; re-export the checkpoint.",
                              public="its card lists no weights; re-export it.")
    return card


def load(arch: str, checkpoints_dir: str | Path = "checkpoints", device: str = "cpu"):
    """(model in eval mode, card) for the trained `arch`, fully verified."""
    card = read_card(arch, checkpoints_dir)
    d = Path(checkpoints_dir) / arch
    state: dict[str, torch.Tensor] = {}
    for entry in card["weights"]:
        f = d / str(entry.get("file", ""))
        if not f.is_file() or f.parent.resolve() != d.resolve():
            raise CheckpointError(f"{f} is missing; restore it (git checkout -- {f}) or re-export {arch}.",
                                  public="a weights file is missing; restore it from git or re-export it.")
        if sha256_file(f) != entry.get("sha256"):
            raise CheckpointError(f"{f} does not match the sha256 in its card: the file is corrupt or was "
                                  f"modified; restore it (git checkout -- {f}) or re-export {arch}.",
                                  public="its weights do not match the checksum in its card (corrupt or "
                                         "modified); restore them from git or re-export them.")
        try:
            state.update(load_file(str(f)))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{f} is not a readable safetensors file ({e}); re-export {arch}.",
                                  public="its weights file is not readable; re-export it.") from None
    state = current_keys(arch, dequantize(state), card["preset"])
    with torch.device("meta"):  # shapes only: the weights below replace every tensor (no random init)
        model = create(arch, card["preset"], num_classes=int(card.get("num_classes", 10)))
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    bad_shape = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or extra or bad_shape:
        detail = (f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}" if extra
                  else f"wrong shape for {bad_shape[:3]}")
        raise CheckpointError(f"The weights in {d} do not fit {arch} ({detail}); re-export the checkpoint "
                              f"with the current code.",
                              public="its weights do not fit the network this code builds; re-export it.")
    # copy=True: a tensor whose dtype already matches (BN's int64 counters) would otherwise stay a
    # view of the memory-mapped file and keep the whole file resident (~40% of the zoo's RSS)
    model.load_state_dict({k: v.to(own[k].dtype, copy=True) for k, v in state.items()}, strict=True, assign=True)
    del state
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise CheckpointError(f"The weights in {d} leave {left[:3]} of {arch} unset; re-export the checkpoint.",
                              public="its weights leave part of the network unset; re-export it.")
    return model.to(device).eval(), card


def available(checkpoints_dir: str | Path = "checkpoints") -> dict[str, str | None]:
    """arch -> None when its card reads cleanly, else the reason (cheap: no weights hashed)."""
    from .registry import list_architectures
    out = {}
    for spec in list_architectures():
        try:
            read_card(spec.name, checkpoints_dir)
            out[spec.name] = None
        except CheckpointError as e:
            out[spec.name] = str(e)
    return out
