"""How each shipped network was trained, read from its card: epochs, crop sizes, hardware,
storage, the teacher it learned from, the protocol and the training compute. Home's cards,
Compare's table and the Attention page say it from here, so every page says the same."""
from __future__ import annotations

import re

from models import cost, get_spec


def train_sizes(card: dict) -> list[int]:
    """The crop size of every epoch: the card's own list, else the recipe's size (0: the input size)."""
    if card.get("train_sizes"):
        return [int(s) for s in card["train_sizes"]]
    size = (card.get("recipe") or {}).get("image_size") or card.get("input_size") or 0
    return [int(size)] * int(card.get("epochs") or 0)


def sizes_text(sizes: list[int]) -> str:
    """"96 px" or "96 → 112 → 128 px" (progressive resizing), in the order trained."""
    steps = [s for i, s in enumerate(sizes) if i == 0 or s != sizes[i - 1]]
    return " → ".join(str(s) for s in steps) + " px" if steps else "?"


def hardware_text(card: dict) -> str:
    """"CPU, 1 thread", "CPU, 2 threads" or the GPU's name, from the card's hardware string."""
    hw = card.get("hardware") or ""
    if "CPU" not in hw:
        return re.sub(r"^1x\s*", "", hw) or "?"
    threads, cores = re.search(r"(\d+) threads", hw), re.search(r"(\d+) cores", hw)
    if threads:
        n = int(threads.group(1))
        return f"CPU, {n} thread{'s' if n != 1 else ''}"
    return f"CPU, {cores.group(1)} cores" if cores else "CPU"


def flops_text(flops: float) -> str:
    """Training compute in the unit that keeps it readable: 2.1 TFLOP, 0.19 PFLOP."""
    return f"{flops / 1e12:.1f} TFLOP" if flops < 1e14 else f"{flops / 1e15:.2f} PFLOP"


def teacher_title(card: dict) -> str | None:
    t = card.get("teacher")
    if not t:
        return None
    return t.get("title") or get_spec(t["arch"]).title


def images_seen(card: dict) -> int:
    """Training images a run saw each epoch: whole batches only (the remainder of the shuffled
    set is left out of that epoch), so 9,408 of 9,469 at batch 64."""
    images = int((card.get("dataset") or {}).get("train_images") or 0)
    batch = int((card.get("recipe") or {}).get("batch_size") or 0)
    return max(batch, images // batch * batch) if batch and images else images


def compute(arch: str, card: dict) -> dict:
    """The card's training compute (`cost.training_compute`'s rule), counted on the images seen
    per epoch: cards written before 2026-12-05 counted every train image (0.65% over at batch
    64, 1.3% at 128) and are scaled to the images seen (the count is linear in them). A card
    without the figure gets the rule applied to what it records (crop sizes, teacher)."""
    if card.get("train_compute"):
        out, seen = dict(card["train_compute"]), images_seen(card)
        counted = out.get("images_per_epoch")
        if counted and seen and counted != seen:
            for k in ("flops", "teacher_flops"):
                if k in out:
                    out[k] = out[k] * seen / counted
            out.update(images_per_epoch=seen, pflops=round(out["flops"] / 1e15, 3))
        return out
    sizes = train_sizes(card)
    images = images_seen(card)
    t = card.get("teacher") or {}
    return cost.training_compute(arch, sizes, images, card.get("preset", "explorer"),
                                 teacher=t.get("arch"), teacher_size=t.get("resized_to") or card.get("input_size"))


def facts(arch: str, card: dict) -> dict:
    """One row of facts about how `arch` was trained (Compare's table, Home's card)."""
    sizes = train_sizes(card)
    return {"epochs": card.get("epochs"), "crops": sizes_text(sizes), "scored_at": card.get("input_size"),
            "hardware": hardware_text(card), "minutes": round((card.get("wall_time_s") or 0) / 60, 1),
            "storage": card.get("storage") or "float16", "teacher": teacher_title(card),
            "protocol": card.get("protocol") or "its own recipe",
            "train_pflops": compute(arch, card)["flops"] / 1e15}


def sentence(arch: str, card: dict) -> str:
    """How one model was trained, in one sentence a learner can read."""
    f = facts(arch, card)
    last = train_sizes(card)[-1:] or [f["scored_at"]]
    crops = f"{f['crops']} crops" + ("" if last[0] == f["scored_at"] else f", scored at {f['scored_at']} px")
    text = (f"{f['epochs']} epochs from scratch on {crops} ({f['hardware']}, {f['minutes']:.0f} min, "
            f"{flops_text(f['train_pflops'] * 1e15)}), {'under the ' + f['protocol'] + ' protocol' if card.get('protocol') else 'with its own recipe'}; "
            f"stored as {f['storage']}.")
    if f["teacher"]:
        alpha = (card.get("recipe") or {}).get("distill_alpha", 0.5)
        text += (f" It learned from a teacher: {alpha:.0%} of each step's loss is {f['teacher']}'s answer on the same "
                 "image (hard distillation, as in DeiT), so its accuracy is not a figure of the architecture alone.")
    return text


def _or(items: list[str]) -> str:
    items = [i.removesuffix(" px") for i in items]
    return (", ".join(items[:-1]) + " or " + items[-1] if len(items) > 1 else items[0]) + " px"


def and_list(items: list[str]) -> str:
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else items[0]


def by_teacher(taught) -> dict:
    """(network, teacher) pairs -> {teacher: [its networks]}, in first-seen order. A teacher may be
    any hashable key, such as (title, weight in the loss)."""
    by: dict = {}
    for network, teacher in taught:
        by.setdefault(teacher, []).append(network)
    return by


def pupils(taught) -> str:
    """(network, teacher) pairs in one phrase, the pupils of one teacher together:
    "Vision Transformer and MLP-Mixer (from ConvNet + BatchNorm)"."""
    return ", ".join(f"{and_list(networks)} (from {teacher})" for teacher, networks in by_teacher(taught).items())


def zoo_sentence(cards: dict[str, dict]) -> str:
    """Home's one sentence on how the whole zoo was trained."""
    if not cards:
        return ""
    fs = {a: facts(a, c) for a, c in cards.items()}
    epochs = sorted(f["epochs"] for f in fs.values() if f["epochs"])
    fixed = sorted({f["crops"] for f in fs.values() if "→" not in f["crops"]}, key=lambda c: int(c.split()[0]))
    growing = sorted({f["crops"] for f in fs.values() if "→" in f["crops"]})
    protocols = sorted({c.get("protocol") for c in cards.values() if c.get("protocol")})
    own = [a for a, c in cards.items() if not c.get("protocol")]
    gpu = [a for a, f in fs.items() if not f["hardware"].startswith("CPU")]
    taught = [(get_spec(a).title, f["teacher"]) for a, f in fs.items() if f["teacher"]]
    cores = {m.group(1) for c in cards.values() if (m := re.search(r"(\d+) cores", c.get("hardware") or ""))}
    cpu = f"{cores.pop()}-core CPU" if len(cores) == 1 else "CPU"
    where = (f"on this project's {cpu}" if not gpu else
             f"on a CPU and, for {len(gpu)} of them, a GPU" if len(gpu) < len(fs) else "on a GPU")
    by_protocol = [f"{sum(c.get('protocol') == p for c in cards.values())} under the {p} protocol" for p in protocols]
    by_protocol += [f"{len(own)} {'with' if len(own) == 1 else 'each with'} its own recipe"] if own else []
    how = (f"under one protocol ({protocols[0]})" if len(protocols) == 1 and not own else
           "each with its own recipe" if not protocols else
           ", ".join(by_protocol[:-1]) + " and " + by_protocol[-1])
    span = f"{epochs[0]} to {epochs[-1]} epochs" if epochs[0] != epochs[-1] else f"{epochs[0]} epochs"
    images = sorted({(c.get("dataset") or {}).get("train_images") for c in cards.values()} - {None})
    of = f"Imagenette's {images[0]:,} training images" if len(images) == 1 else "Imagenette's training split"
    crops = [_or(fixed)] if fixed else []
    crops += [f"growing {g}" for g in growing]
    text = (f"All {len(cards)} trained networks learned from scratch on {of} {where}, "
            f"{how}: {span}, crops of {', or '.join(crops)}")
    text += (f"; {len(taught)} learned from a teacher's answers: {pupils(taught)}." if taught else ".")
    return text + " Each card below says its own budget; Compare sets accuracy against it."
