"""Which reduced precision this machine runs fast, detected once.

bf16 autocast keeps fp32 master weights and runs matmuls and convolutions in bfloat16. On
a GPU that is the trainer's default. On a CPU it pays only where the hardware has bf16
arithmetic: AMX tiles (Intel Sapphire Rapids and later) or AVX-512 BF16 (Intel Cooper
Lake, AMD Zen 4); elsewhere oneDNN emulates it and it is slower than fp32.

    from models import precision
    precision.cpu_bf16()          # "AMX-BF16", "AVX512-BF16" or "" (no native bf16)
    precision.describe(device)    # what a log line or card says ran
"""
from __future__ import annotations

import functools
import os

import torch


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@functools.lru_cache(maxsize=1)
def cpu_bf16() -> str:
    """The CPU's native bf16 path ("AMX-BF16" or "AVX512-BF16"), or "" when it has none."""
    if not torch.backends.mkldnn.is_available():
        return ""
    flags = _cpu_flags()
    if "amx_bf16" in flags:
        return "AMX-BF16"
    if "avx512_bf16" in flags:
        return "AVX512-BF16"
    return ""


def autocast_ok(device: torch.device) -> bool:
    """True where bf16 autocast runs on native hardware: any CUDA device, or a bf16 CPU."""
    return device.type == "cuda" or (device.type == "cpu" and bool(cpu_bf16()))


def describe(device: torch.device, amp: bool) -> str:
    """One phrase for logs and cards: which precision path ran."""
    if not amp:
        return "fp32"
    where = "CUDA" if device.type == "cuda" else f"CPU {cpu_bf16()}"
    return f"bf16 autocast ({where}), fp32 master weights"


# --- serving in bf16 ---------------------------------------------------------------------
# A model is served (Classify's top-5, latency, unit scans) in bf16 autocast only where all
# three hold: this CPU has native bf16; on the whole val split its bf16 top-1 agreed with its
# fp32 top-1 on at least AGREEMENT_BAR percent of the images; and bf16 was measurably faster
# for it at batch 1 (`python scripts/evaluate.py --bf16` measures both into the card's "bf16").
# Everything that takes gradients (attributions) and every card metric stays fp32.

AGREEMENT_BAR = 99.5     # percent of val images whose top-1 must not move
MIN_SPEEDUP = 1.05       # bf16 latency must beat fp32 by this factor to be worth serving


def serve_bf16(card: dict) -> bool:
    """Whether the model this card describes is served in bf16 on this machine
    (VH_PRECISION=fp32 in the environment serves every model in fp32)."""
    if os.environ.get("VH_PRECISION", "").lower() == "fp32":
        return False
    b = card.get("bf16") or {}
    weights = [w.get("sha256") for w in card.get("weights", [])]
    return (bool(cpu_bf16()) and b.get("weights_sha256") == weights
            and float(b.get("agreement", 0.0)) >= AGREEMENT_BAR and float(b.get("speedup", 0.0)) >= MIN_SPEEDUP)


def serving(model):
    """The context a served forward pass runs in: bf16 autocast where `model.serve_bf16`."""
    return torch.autocast("cpu", torch.bfloat16, enabled=bool(getattr(model, "serve_bf16", False)))
