"""Files the pages read beside a checkpoint -- retrieval index, SE class profiles, unit tops,
attention figures -- in one format: safetensors, tied to the checkpoint's weights by their
sha256, so a retrained model never shows numbers computed from another one.

    save(path, {"feats": ...}, card, meta={...})
    with opened(path, card) as f:      # None when absent or made from other weights
        if f is not None: f.get_tensor("feats"), f.meta
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file


def weights_sha(card: dict) -> str:
    """The identity of a checkpoint's weights: the sha256 of each of its files, in order."""
    return ",".join(w["sha256"] for w in card["weights"])


def save(path: str | Path, tensors: dict[str, torch.Tensor], card: dict, meta: dict, **extra: str) -> None:
    """Write `tensors` with the checkpoint's identity and `meta` (JSON) in the metadata;
    `extra` strings go in as they are."""
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path),
              metadata={"arch": card["arch"], "weights_sha256": weights_sha(card), "meta": json.dumps(meta),
                        **extra})


class Opened:
    def __init__(self, handle):
        self._f = handle
        self.metadata = handle.metadata()
        self.meta = json.loads(self.metadata.get("meta", "{}"))

    def get_tensor(self, key: str) -> torch.Tensor:
        return self._f.get_tensor(key)

    def keys(self):
        return self._f.keys()


def matches(path: str | Path, card: dict) -> bool | None:
    """None when there is no file, else whether it was made from this checkpoint's weights."""
    if not Path(path).exists():
        return None
    with safe_open(str(path), "pt") as f:
        md = f.metadata()
    return md.get("arch") == card["arch"] and md.get("weights_sha256") == weights_sha(card)


@contextlib.contextmanager
def opened(path: str | Path, card: dict):
    """The file, or None when it is absent or was made from other weights."""
    if not matches(path, card):
        yield None
        return
    with safe_open(str(path), "pt") as f:
        yield Opened(f)
