"""What each network relies on, measured once per checkpoint over a fixed val subset: the figures
the Reliance page draws for the whole zoo (the measurements themselves are `explorer.reliance`).

Every model sees the same pictures: a seeded, class-balanced subset of val in the app's 128 px
evaluation view ([0, 1] pixels), resized to the model's own input size inside `Normalised`.

* **Shuffle and drop**: top-1 with the image cut into g x g patches and shuffled (GRIDS), and with
  a share of its 8 x 8 patches replaced by the mean colour (FRACTIONS), N_IMAGES images.
* **Adversarial**: top-1 under FGSM and 10-step PGD, both on the same N_PGD images (the first of the
  subset), at L-infinity sizes EPS_STEPS / 255, untargeted, against the true class.
* **Transfer**: PGD images at TRANSFER_STEPS / 255 made for each model, scored by every other one
  (`checkpoints/transfer.json`, one file for the zoo, each model's weights named by their sha256).
* **Fourier**: the error under additive noise of one spatial frequency (u, v) of the 128 px view
  (Yin et al. 2019), root-mean-square FOURIER_RMS per pixel, a random sign per image and channel,
  over a coarse grid of frequencies (FREQS, both signs; (u, v) and (-u, -v) are the same image),
  N_FOURIER images.
* **Effective receptive field**: at each stage end `explorer.units.probe_layers` names, the mean
  |gradient| of the centre unit with respect to the model's own input, over N_ERF images, for the
  shipped weights and for a seeded random init of the same architecture, beside the stage's
  theoretical receptive field (the Anatomy page's).

`scripts/reliance.py` writes `checkpoints/<arch>/reliance.safetensors` (tied to the weights by
`explorer.sidecar`) and the transfer file.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from explorer import reliance, sidecar
from explorer.representations import choose, decode, images_key, weight_layers
from explorer.units import probe_layers
from models import TOKEN_MIXERS, checkpoint, data

FILE = "reliance.safetensors"
TRANSFER = "transfer.json"
SEED = 0
SIZE = 128                          # the evaluation view every model is given
N_IMAGES = 100                      # shuffle, drop
N_PGD = 50                          # FGSM, PGD and transfer (the first N_PGD of the same subset)
N_FOURIER = 50
N_ERF = 16
GRIDS = (1, 2, 4, 8, 16)            # shuffle: g x g patches (16: 8 px patches)
FRACTIONS = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9)   # share of the 8 x 8 patches hidden
EPS_STEPS = (0, 1, 2, 4, 8)         # L-infinity size in steps of 1/255
TRANSFER_STEPS = 4
FREQS = tuple(range(-56, 57, 8))    # cycles per 128 px image, on both axes
# per pixel: Yin et al.'s ImageNet L2 norm (15.7 at 224 px) spread over all three channels,
# 15.7 / sqrt(224 x 224 x 3); their code puts the full 15.7 in each channel (0.07 per pixel, 1.7x)
FOURIER_RMS = 0.04


def subset(root: Path, n: int = N_IMAGES, seed: int = SEED) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The fixed val subset as (N, 3, SIZE, SIZE) pixels in [0, 1], labels, relative file names."""
    paths, labels = data.list_split(root, "val")
    idx = choose(labels, n, seed)
    sq = decode([paths[i] for i in idx], data.eval_store_size(SIZE))
    x = data.center_crop(sq, SIZE).float() / 255
    return x, torch.tensor([labels[i] for i in idx]), [str(paths[i].relative_to(root)) for i in idx]


@torch.no_grad()
def top1(model, x: torch.Tensor, y: torch.Tensor, batch: int = 50) -> float:
    """Top-1 (%) of a `Normalised` model on [0, 1] pixels."""
    right = sum(int((model(x[i:i + batch]).argmax(-1) == y[i:i + batch]).sum()) for i in range(0, len(x), batch))
    return round(100 * right / len(x), 2)


def attacked(model, x: torch.Tensor, y: torch.Tensor, method: str, steps: int, batch: int = 25) -> torch.Tensor:
    """FGSM or 10-step PGD images at `steps` / 255, made batch by batch."""
    eps = steps / 255
    fn = (lambda xb, yb: reliance.fgsm(model, xb, yb, eps)) if method == "fgsm" else \
        (lambda xb, yb: reliance.pgd(model, xb, yb, eps, steps=10))
    with torch.enable_grad():
        return torch.cat([fn(x[i:i + batch], y[i:i + batch]) for i in range(0, len(x), batch)])


def fourier_grid(model, x: torch.Tensor, y: torch.Tensor, freqs=FREQS, rms: float = FOURIER_RMS,
                 seed: int = SEED) -> torch.Tensor:
    """(len(freqs), len(freqs)) error (%) under noise of each frequency (u rows, v columns); the
    constant term (0, 0) is the clean error. Each (u, v) is measured once and mirrored to (-u, -v)."""
    norm = rms * x.shape[-1]                      # an (S, S) image of RMS r has L2 norm r * S
    out = torch.full((len(freqs), len(freqs)), float("nan"))
    pos = {f: i for i, f in enumerate(freqs)}
    for i, u in enumerate(freqs):
        for j, v in enumerate(freqs):
            if not math.isnan(out[i, j]):
                continue
            if (u, v) == (0, 0):
                err = 100 - top1(model, x, y)
            else:
                g = torch.Generator().manual_seed(seed + 1000 * i + j)
                err = 100 - top1(model, reliance.fourier_noise(x, u % SIZE, v % SIZE, norm, g), y)
            out[i, j] = err
            if -u in pos and -v in pos:
                out[pos[-u], pos[-v]] = err
    return out


def erf_maps(model, layers, x: torch.Tensor) -> list[torch.Tensor]:
    """Per spatial layer, the effective receptive field at the model's own input size."""
    from models.probes import capture
    size = getattr(model, "input_size", SIZE)
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    maps = []
    for ly in layers:
        module = model.get_submodule(ly.path)

        def feature(inp, module=module, ly=ly):
            with capture([module]) as out:
                model(data.normalize(inp * 255, getattr(model, "in_chans", 3)))
            act = out[0]
            if act.dim() == 3:                      # tokens (B, N, D) -> (B, D, gh, gw)
                gh, gw = ly.grid
                act = act[:, ly.tokens:].transpose(1, 2).reshape(act.shape[0], -1, gh, gw)
            return act
        with torch.enable_grad():
            maps.append(reliance.effective_rf(feature, x))
    return maps


def spatial_layers(arch: str, preset: str = "explorer"):
    return [ly for ly in probe_layers(arch, preset) if ly.grid is not None]


def compute(arch: str, model, card: dict, root: Path, n_images: int = N_IMAGES, freqs=FREQS, log=print) -> dict:
    """Everything one model's reliance file holds (fewer images or frequencies: the tests' quick run)."""
    import time

    from models.registry import create
    t0 = time.time()
    model = model.eval()
    m = reliance.Normalised(model).eval()
    x, y, files = subset(root, n_images)
    g = torch.Generator().manual_seed(SEED)
    shuffle = [top1(m, reliance.shuffle_patches(x, k, g), y) for k in GRIDS]
    drop = [top1(m, reliance.drop_patches(x, f, 8, g), y) for f in FRACTIONS]
    log(f"  shuffle {shuffle}  drop {drop}  ({time.time() - t0:.0f} s)")
    xp, yp = x[:N_PGD], y[:N_PGD]
    fgsm = [top1(m, attacked(m, xp, yp, "fgsm", s), yp) for s in EPS_STEPS]
    pgd = [top1(m, attacked(m, xp, yp, "pgd", s), yp) for s in EPS_STEPS]
    log(f"  fgsm {fgsm}  pgd {pgd}  ({time.time() - t0:.0f} s)")
    fourier = fourier_grid(m, x[:N_FOURIER], y[:N_FOURIER], freqs)
    log(f"  fourier error {float(fourier.nanmean()):.1f}% mean over {len(freqs) ** 2} cells  ({time.time() - t0:.0f} s)")
    layers = spatial_layers(arch, card.get("preset", "explorer"))
    trained = erf_maps(model, layers, x[:N_ERF])
    torch.manual_seed(SEED)
    fresh = create(arch, card.get("preset", "explorer")).eval()
    random = erf_maps(fresh, layers, x[:N_ERF])
    log(f"  erf at {len(layers)} layers  ({time.time() - t0:.0f} s)")
    return {"shuffle": shuffle, "drop": drop, "fgsm": fgsm, "pgd": pgd, "fourier": fourier,
            "layers": layers, "erf": trained, "erf_random": random, "files": files, "freqs": tuple(freqs),
            "data_fingerprint": data.fingerprint(root), "seconds": round(time.time() - t0, 1)}


# --- the side file -------------------------------------------------------------------------

@dataclass
class Reliance:
    arch: str
    shuffle: list[float]      # top-1 % per GRIDS
    drop: list[float]         # per FRACTIONS
    fgsm: list[float]         # per EPS_STEPS
    pgd: list[float]
    fourier: np.ndarray       # error % over FREQS x FREQS
    layers: list[dict]        # label, rf (theoretical, px of the model's input), input size
    erf: list[np.ndarray]     # per layer, normalised to sum 1
    erf_random: list[np.ndarray]
    meta: dict
    centres: list = None      # per layer, the centre unit's centre in input px (None: the map's centre)
    depths: list = None       # per layer, the weight layers at or before it

    def radius(self, i: int, random: bool = False, share: float = 0.9) -> float:
        """The 90%-mass radius of a layer's effective field, around its centre unit's own centre."""
        centre = self.centres[i] if self.centres else None
        return reliance.mass_radius(torch.from_numpy((self.erf_random if random else self.erf)[i]).float(), share,
                                    centre)


def save(path: Path, result: dict, card: dict, model_input: int) -> None:
    tensors = {k: torch.tensor(result[k], dtype=torch.float32) for k in ("shuffle", "drop", "fgsm", "pgd")}
    tensors["fourier"] = result["fourier"].float()
    for i, (a, b) in enumerate(zip(result["erf"], result["erf_random"])):
        tensors[f"erf_{i}"], tensors[f"erf_random_{i}"] = a.half(), b.half()
    layers = [{"label": ly.label, "path": ly.path, "rf": None if ly.rf is None or math.isinf(ly.rf) else ly.rf,
               "whole": ly.rf is not None and math.isinf(ly.rf), "input": model_input} for ly in result["layers"]]
    n = len(result["files"])
    meta = {"images": images_key(result["files"]), "n_images": n, "n_pgd": min(n, N_PGD), "n_fourier": min(n, N_FOURIER),
            "n_erf": min(n, N_ERF), "grids": GRIDS, "fractions": FRACTIONS, "eps_steps": EPS_STEPS, "freqs": result["freqs"],
            "fourier_rms": FOURIER_RMS, "seed": SEED, "data_fingerprint": result["data_fingerprint"],
            "seconds": result["seconds"], "layers": layers}
    sidecar.save(path, tensors, card, meta)


def load(path: Path, card: dict) -> Reliance | None:
    """A checkpoint's reliance file, or None if absent or made from other weights."""
    with sidecar.opened(path, card) as f:
        if f is None:
            return None
        g, meta = f.get_tensor, f.meta
        n = len(meta["layers"])
        preset = card.get("preset", "explorer")
        geometry = {ly.path: ly for ly in spatial_layers(card["arch"], preset)}
        for d in meta["layers"]:      # older files numbered the layers of the hand-written networks
            d["path"] = checkpoint.current_path(card["arch"], d["path"], preset)
            d["label"] = geometry[d["path"]].label if d["path"] in geometry else d["label"]
        known = [geometry.get(d["path"]) for d in meta["layers"]]
        centres = [reliance.unit_centre(ly.start, ly.jump, ly.grid) if ly is not None and ly.start is not None else None
                   for ly in known]
        depths = (weight_layers(card["arch"], known, preset)[0] if all(ly is not None for ly in known)
                  else [None] * len(known))
        return Reliance(card["arch"], *(g(k).tolist() for k in ("shuffle", "drop", "fgsm", "pgd")),
                        g("fourier").numpy(), meta["layers"],
                        [g(f"erf_{i}").float().numpy() for i in range(n)],
                        [g(f"erf_random_{i}").float().numpy() for i in range(n)], meta, centres, depths)


def load_zoo(checkpoints: Path, cards: dict[str, dict]) -> dict[str, Reliance]:
    out = {}
    for arch, card in cards.items():
        r = load(checkpoints / arch / FILE, card)
        if r is not None:
            out[arch] = r
    return out


# --- transfer ------------------------------------------------------------------------------

def transfer(models: dict[str, torch.nn.Module], x: torch.Tensor, y: torch.Tensor,
             steps: int = TRANSFER_STEPS, log=print) -> dict:
    """{source: {target: fooling rate %}}: PGD images made for each source, and the share of the
    images each target gets right when clean that it gets wrong on them (the diagonal: white-box)."""
    wrapped = {a: reliance.Normalised(m).eval() for a, m in models.items()}
    with torch.no_grad():
        right = {a: m(x).argmax(-1) == y for a, m in wrapped.items()}
    out = {}
    for src, m in wrapped.items():
        adv = attacked(m, x, y, "pgd", steps)
        out[src] = {dst: round(100 * reliance.fooling_rate(d, adv, y, right[dst]), 1) for dst, d in wrapped.items()}
        log(f"  transfer from {src}: " + " ".join(f"{v:.0f}" for v in out[src].values()))
    return out


def save_transfer(path: Path, matrix: dict, cards: dict[str, dict], files: list[str], fingerprint: str) -> None:
    path.write_text(json.dumps({"steps": TRANSFER_STEPS, "images": images_key(files), "n_images": len(files),
                                "data_fingerprint": fingerprint,
                                "weights_sha256": {a: sidecar.weights_sha(cards[a]) for a in matrix},
                                "fooling_rate": matrix}, indent=1) + "\n")


def load_transfer(path: Path, cards: dict[str, dict]) -> dict | None:
    """The transfer matrix over the models whose weights are still the ones it was made from."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    same = [a for a, sha in raw.get("weights_sha256", {}).items() if a in cards and sidecar.weights_sha(cards[a]) == sha]
    rows = {a: {b: v for b, v in raw["fooling_rate"].get(a, {}).items() if b in same} for a in same}
    return {**raw, "fooling_rate": rows, "models": same} if len(same) >= 2 else None


# --- what the page shows -------------------------------------------------------------------

CURVES = {   # key: (x values in the file's meta, x axis title, how a point is named)
    "shuffle": ("grids", "patches shuffled (grid)", lambda g: f"{g}x{g}"),
    "drop": ("fractions", "share of the 8x8 patches hidden", lambda f: f"{f:.0%}"),
    "fgsm": ("eps_steps", "FGSM size ε (steps of 1/255)", lambda s: f"{s}/255"),
    "pgd": ("eps_steps", "PGD size ε (steps of 1/255)", lambda s: f"{s}/255"),
}


def curve_rows(rel: dict[str, Reliance], titles: dict[str, str], key: str) -> list[dict]:
    """One row per model and point of a curve: model, x (the setting), x label, top-1 %."""
    field, _, name = CURVES[key]
    return [{"model": titles[a], "x": float(v), "setting": name(v), "top-1 (%)": acc}
            for a, r in rel.items() for v, acc in zip(r.meta[field], getattr(r, key))]


CHANCE = 10.0
CLEAR = 5.0     # points: a smaller gap between two medians is not called a difference on these few images


def _share(acc: float, clean: float) -> float:
    """The share (%) of a model's top-1 above chance that it keeps (0 at chance, 100 unchanged)."""
    return 100 * (acc - CHANCE) / (clean - CHANCE) if clean > CHANCE else 0.0


def _median(v: list[float]) -> float:
    return float(np.median(v)) if v else float("nan")


def kept_sentence(rel: dict[str, Reliance], titles: dict[str, str], key: str, at) -> str:
    """Which models keep most and least of their clean top-1 at one setting of a shuffle or drop
    curve, and the token-mixers against the CNNs (Naseer et al. 2021 found ViTs degrade more
    gracefully than CNNs)."""
    field, _, name = CURVES[key]
    kept = {}
    for a, r in rel.items():
        curve = getattr(r, key)
        if at in r.meta[field] and curve[0] > CHANCE:
            kept[a] = _share(curve[r.meta[field].index(at)], curve[0])
    if len(kept) < 2:
        return ("Fewer than two models are above chance on these images, so what the change costs them cannot be "
                "compared." if len(rel) >= 2 else "")
    hi, lo = max(kept, key=kept.get), min(kept, key=kept.get)
    what = f"Shuffled into {name(at)} patches" if key == "shuffle" else f"With {name(at)} of the patches hidden"
    s = (f"{what}, {titles[hi]} keeps the most of its clean top-1 above chance ({kept[hi]:.0f}% of it) and "
         f"{titles[lo]} the least ({kept[lo]:.0f}%).")
    tok = [kept[a] for a in kept if a in TOKEN_MIXERS]
    cnn = [kept[a] for a in kept if a not in TOKEN_MIXERS]
    if tok and cnn:
        t, c = _median(tok), _median(cnn)
        agree = ("no clear difference on these images" if abs(t - c) < CLEAR else
                 "more, as Naseer et al. found for ViTs against CNNs" if t > c else
                 "less, the opposite of what Naseer et al. found for ViTs against CNNs at ImageNet scale")
        s += (f" The token-mixers keep {'a median of ' if len(tok) > 1 else ''}{t:.0f}%, the CNNs a median of "
              f"{c:.0f}%: {agree}.")
    return s


def adversarial_sentence(rel: dict[str, Reliance], titles: dict[str, str], steps: int = 2) -> str:
    """The most and least robust models under PGD at `steps`/255, and whether PGD beats FGSM."""
    at = {a: r.pgd[r.meta["eps_steps"].index(steps)] for a, r in rel.items() if steps in r.meta["eps_steps"]}
    if len(at) < 2:
        return ""
    hi, lo = max(at, key=at.get), min(at, key=at.get)
    s = (f"PGD moving each pixel by at most {steps}/255 leaves {titles[hi]} at {at[hi]:.0f}% top-1 "
         f"and {titles[lo]} at {at[lo]:.0f}% (their clean figures on the same images: {rel[hi].pgd[0]:.0f}% and "
         f"{rel[lo].pgd[0]:.0f}%).")
    top = max(max(r.meta["eps_steps"]) for r in rel.values())
    low = [titles[a] for a, r in rel.items() if r.pgd[-1] <= 10]
    if low:
        s += f" At {top}/255, {len(low)} of {len(rel)} models are at chance or below (10%)."
    stronger = sum(1 for r in rel.values() if all(p <= f for p, f in zip(r.pgd[1:], r.fgsm[1:])))
    s += f" PGD is at least as strong as FGSM at every size for {stronger} of {len(rel)} models."
    return s


def transfer_rows(t: dict, titles: dict[str, str]) -> list[dict]:
    return [{"made for": titles[src], "scored by": titles[dst], "fooling rate (%)": v}
            for src, row in t["fooling_rate"].items() for dst, v in row.items()]


def transfer_sentence(t: dict, titles: dict[str, str]) -> str:
    """The white-box rate, how far images transfer on average and between which kinds of networks."""
    fr = t["fooling_rate"]
    diag = [fr[a][a] for a in fr if a in fr[a]]
    off = {(a, b): v for a in fr for b, v in fr[a].items() if a != b}
    if not off:
        return ""
    (sa, sb) = max(off, key=off.get)
    s = (f"Made against one network, the PGD images ({t['steps']}/255) fool it on a median of {_median(diag):.0f}% "
         f"of the images it got right, and another network on {_median(list(off.values())):.0f}%; the most "
         f"transferable pair: made for {titles[sa]}, they fool {titles[sb]} on {off[(sa, sb)]:.0f}%.")
    kind = {a: a in TOKEN_MIXERS for a in fr}
    cc = [v for (a, b), v in off.items() if not kind[a] and not kind[b]]
    mixed = [v for (a, b), v in off.items() if kind[a] != kind[b]]
    if cc and mixed:
        m_cc, m_mixed = _median(cc), _median(mixed)
        s += (f" Between two CNNs they transfer at a median of {m_cc:.0f}%, between a CNN and a token-mixer "
              f"(either way) at {m_mixed:.0f}%" + (
                  ": too close to tell apart on these images (Mahmood et al., ICCV 2021, found less transfer between "
                  "CNNs and ViTs than among either)." if abs(m_mixed - m_cc) < CLEAR else
                  ": less, as Mahmood et al. (ICCV 2021) found between CNNs and ViTs." if m_mixed < m_cc else
                  ", not less, unlike Mahmood et al.'s finding (ICCV 2021)."))
        tt = {(a, b): v for (a, b), v in off.items() if kind[a] and kind[b]}
        if tt:
            m_tt = _median(list(tt.values()))
            pairs = "; ".join(f"made for {titles[a]}, they fool {titles[b]} on {v:.0f}%" for (a, b), v in tt.items())
            s += (f" Between two token-mixers: {pairs}" + (
                f": too close to tell apart from across the two kinds ({m_mixed:.0f}%)." if abs(m_tt - m_mixed) < CLEAR
                else f", more than across the two kinds ({m_mixed:.0f}%)." if m_tt > m_mixed else
                f", less than across the two kinds ({m_mixed:.0f}%)."))
    return s


def bands(r: Reliance, low=(8, 16), high=(40, 56)) -> tuple[float, float, float]:
    """Clean error, and the mean error over the cells whose larger |frequency| lies in `low` and in
    `high` (cycles per 128 px image)."""
    f = np.array(r.meta["freqs"])
    band = np.maximum(np.abs(f)[:, None], np.abs(f)[None, :])
    clean = float(r.fourier[list(f).index(0), list(f).index(0)])
    pick = lambda lo, hi: float(np.nanmean(r.fourier[(band >= lo) & (band <= hi)]))  # noqa: E731
    return clean, pick(*low), pick(*high)


def added_error(r: Reliance) -> np.ndarray:
    """The Fourier map as points of error above the clean error (its centre), so two models with
    different clean errors share one scale."""
    f = list(r.meta["freqs"])
    return r.fourier - r.fourier[f.index(0), f.index(0)]


def fourier_sentence(a: Reliance, b: Reliance, ta: str, tb: str) -> str:
    """Where two models' Fourier heat maps differ: the error added by low and by high frequencies."""
    (ca, la, ha), (cb, lb, hb) = bands(a), bands(b)
    s = (f"Noise at 40 to 56 cycles per image (fine stripes) changes the error of {ta} by {ha - ca:+.0f} and of "
         f"{tb} by {hb - cb:+.0f} percentage points; at 8 to 16 cycles (coarse), by {la - ca:+.0f} and {lb - cb:+.0f}.")
    if abs((ha - ca) - (hb - cb)) >= 5:
        s += f" {ta if ha - ca > hb - cb else tb} is the more fragile at high frequencies."
    if abs((la - ca) - (lb - cb)) >= 5:
        s += f" {ta if la - ca > lb - cb else tb} is the more fragile at low frequencies."
    return s


def theoretical_radius(layer: dict) -> float:
    """Half the theoretical receptive field, capped at half the input (what can be measured)."""
    half = layer["input"] / 2
    return half if layer["whole"] or layer["rf"] is None else min(layer["rf"] / 2, half)


def erf_rows(rel: dict[str, Reliance], titles: dict[str, str]) -> list[dict]:
    """Per model and stage: the 90%-mass radius of the trained and the random-init ERF and the
    theoretical radius, each as % of the model's input width (models differ in input size)."""
    rows = []
    for a, r in rel.items():
        n = len(r.layers)
        for i, ly in enumerate(r.layers):
            w = ly["input"]
            rows.append({"model": titles[a], "stage": ly["label"], "depth": (i + 1) / n,
                         "trained": 100 * r.radius(i) / w, "random init": 100 * r.radius(i, random=True) / w,
                         "theoretical": 100 * theoretical_radius(ly) / w})
    return rows


def fitting_stage(r: Reliance) -> int | None:
    """The deepest stage whose theoretical receptive field still fits inside the input (beyond it the
    theoretical radius is capped, and the two cannot be compared)."""
    fits = [i for i, ly in enumerate(r.layers) if not ly["whole"] and ly["rf"] is not None and ly["rf"] < ly["input"]]
    return fits[-1] if fits else None


def erf_sentence(rel: dict[str, Reliance], titles: dict[str, str]) -> str:
    """At each model's deepest stage whose theoretical field fits the image: the effective radius
    against the theoretical one, whether that share falls with the number of weight layers before
    the stage (Luo et al.: the effective field grows as the square root of depth, the theoretical
    one linearly), and the effect of training against a random init."""
    at = {a: i for a, r in rel.items() if (i := fitting_stage(r)) is not None}
    if not at:
        return ""
    ratio = {a: rel[a].radius(i) / theoretical_radius(rel[a].layers[i]) for a, i in at.items()}
    lo, hi = min(ratio, key=ratio.get), max(ratio, key=ratio.get)
    where = lambda a: f"{titles[a]}'s {rel[a].layers[at[a]]['label']}"  # noqa: E731
    s = (f"At the deepest stage whose theoretical field still fits in the image, 90% of the gradient lies within "
         f"{ratio[lo]:.0%} of the theoretical radius for {where(lo)} and {ratio[hi]:.0%} for {where(hi)} "
         f"(median {_median(list(ratio.values())):.0%}).")
    depth = {a: rel[a].depths[i] for a, i in at.items() if rel[a].depths and rel[a].depths[i] is not None}
    if len(depth) >= 3 and len(set(depth.values())) > 1:
        from scipy.stats import spearmanr
        rho = float(spearmanr([depth[a] for a in depth], [ratio[a] for a in depth]).statistic)
        s += (f" Across {len(depth)} networks the share {'falls' if rho < 0 else 'does not fall'} as the weight layers "
              f"before the stage grow (Spearman ρ = {rho:.2f})"
              + (": as Luo et al. predict, the field that matters grows more slowly than the one that could."
                 if rho <= -0.5 else ", unlike Luo et al.'s prediction." if rho >= 0.5 else
                 ": too weak a trend to confirm Luo et al.'s prediction (the field that matters growing more slowly "
                 "than the one that could)."))
    grew = [a for a, i in at.items() if rel[a].radius(i) > rel[a].radius(i, random=True) + 1]
    shrank = [a for a, i in at.items() if rel[a].radius(i) < rel[a].radius(i, random=True) - 1]
    s += (f" Against a random init of the same network, at that stage, training widened it in {len(grew)} of {len(at)} "
          f"models and narrowed it in {len(shrank)}" + (f" ({', '.join(titles[a] for a in shrank)})." if 0 < len(shrank) <= 5 else "."))
    if len(grew) < len(shrank):
        s += " Luo et al. saw it widen with training; here it narrows more often."
    return s
