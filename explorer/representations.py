"""Representations across the zoo: how alike two networks' layers are, how much of the class a
linear read-out finds at each depth, and a map of the val split as the pre-logit layer sees it.

Three views, all over the same layers every other page names (`explorer.units.probe_layers`: the
end of each resolution stage, a few Transformer/Mixer blocks, and fc7 or the pre-logit layer):

* **CKA** (centred kernel alignment; Kornblith et al., "Similarity of neural network
  representations revisited", ICML 2019) with a linear kernel, estimated over minibatches with the
  unbiased HSIC estimator as in Nguyen, Raghu & Kornblith ("Do wide and deep networks learn the
  same things?", ICLR 2021):

      CKA(X, Y) = sum_i HSIC_1(K_i, L_i) / sqrt(sum_i HSIC_1(K_i, K_i) * sum_i HSIC_1(L_i, L_i))

  with K_i = X_i X_i^T, L_i = Y_i Y_i^T the Gram matrices of minibatch i (flattened activations of
  the same images) and, for an m x m Gram matrix whose diagonal is set to zero (K~, L~),

      HSIC_1(K, L) = [tr(K~ L~) + 1^T K~ 1 * 1^T L~ 1 / ((m-1)(m-2)) - 2/(m-2) * 1^T K~ L~ 1] / (m(m-3)).

  Only the Gram matrices' strictly upper triangles enter it, so that is what a model's side file
  keeps per layer and minibatch: CKA between any two models (or a model and itself) is computed
  from their two files at view time, as long as both were made on the same val images in the same
  batches (each file names its images by a hash). CKA is 1 for the same representation, unchanged
  by rotating or isotropically scaling the features, and near 0 for unrelated ones.

* **Linear probes** (Alain & Bengio, "Understanding intermediate layers using linear classifier
  probes", 2016): a multinomial logistic regression (scikit-learn, fixed settings, no tuning) on
  each layer's features averaged over positions, fitted on a fixed seeded subset of the train
  split and scored on a fixed seeded subset of val, against the layer's relative depth (the share
  of the network's weight layers, convolutions and fully connected, that come before it).

* **A map** of the val subset: a seeded 2-D t-SNE (van der Maaten & Hinton 2008) of the pre-logit
  features, with each image's class and the model's own prediction.

`scripts/representations.py` computes them for every checkpoint into
`checkpoints/<arch>/representations.safetensors` (`explorer.sidecar`: tied to the weights).
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from explorer import anatomy, sidecar
from explorer.units import Layer, probe_layers
from models import checkpoint, data

FILE = "representations.safetensors"
SEED = 0
N_VAL = 500       # val images: CKA, the map, and the probes' scores
N_TRAIN = 1000    # train images the probes are fitted on
BATCH = 50        # CKA minibatch (the Gram matrices are BATCH x BATCH)
PROBE_C = 1.0     # inverse L2 strength of the probes' logistic regression, on standardised features
NORM_KINDS = ("BatchNorm", "LayerNorm", "GroupNorm", "LocalResponseNorm")


# --- which images ----------------------------------------------------------------------------

def choose(labels: list[int] | torch.Tensor, n: int, seed: int = SEED, classes: int = 10) -> list[int]:
    """A fixed, seeded subset of `n` indices, as balanced over the classes as the split allows (up
    to n / classes per class in a seeded order, the rest filled in that order), in a seeded shuffled
    order: the splits list their images class by class, and a CKA minibatch of one class only would
    see nothing of how the classes differ."""
    labels = [int(v) for v in labels]
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed)).tolist()
    if n >= len(labels):
        return order
    per = math.ceil(n / classes)
    seen: dict[int, int] = {}
    picked = []
    for i in order:
        if seen.get(labels[i], 0) < per:
            seen[labels[i]] = seen.get(labels[i], 0) + 1
            picked.append(i)
    taken = set(picked)
    rest = [i for i in order if i not in taken]
    keep = set((picked + rest)[:n])
    return [i for i in order if i in keep]


def images_key(files: list[str]) -> str:
    """A short name for a list of images (relative paths): two files made on the same images in
    the same order share it."""
    return hashlib.sha256("\n".join(files).encode()).hexdigest()[:16]


def decode(paths: list[Path], side: int) -> torch.Tensor:
    """(N, 3, side, side) uint8 evaluation squares of the given image files."""
    from PIL import Image
    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(data.to_square_uint8(im, side))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


# --- relative depth ------------------------------------------------------------------------

def weight_layers(arch: str, layers: list[Layer], preset: str = "explorer") -> tuple[list[int], int]:
    """Per layer, how many weight layers (convolutions and fully connected layers; not
    normalisation) come at or before its output, and how many the network has, the classifier
    counted as one."""
    t = anatomy.table(arch, preset)
    weighted = [r.params > 0 and not r.name.endswith(" (own)") and not any(k in r.kind for k in NORM_KINDS)
                for r in t.rows]
    head = [i for i, r in enumerate(t.rows) if r.name == "head" or r.name.startswith("head.")]
    first_head = min(head) if head else len(t.rows)
    total = sum(weighted[:first_head]) + 1          # the classifier counts as one layer (LeNet's RBF has none)
    out = []
    for ly in layers:
        if ly.path:
            inside = [i for i, r in enumerate(t.rows) if r.name == ly.path or r.name.startswith(ly.path + ".")]
            last = max(inside)
        else:
            last = first_head - 1
        out.append(sum(weighted[:min(last, first_head - 1) + 1]))
    return out, total


def relative_depth(arch: str, layers: list[Layer], preset: str = "explorer") -> list[float]:
    """Per layer, the share of the network's weight layers at or before its output (`weight_layers`):
    the first layer of an 8-layer AlexNet is at 1/8, fc7 at 7/8."""
    counts, total = weight_layers(arch, layers, preset)
    return [c / total for c in counts]


# --- features ------------------------------------------------------------------------------

def pooled(act: torch.Tensor, layer: Layer) -> torch.Tensor:
    """(B, C): a layer's output averaged over positions (maps) or tokens (after ViT's [CLS])."""
    act = act.float()
    if layer.grid is None or act.dim() == 2:
        return act.flatten(1)
    if act.dim() == 3:
        return act[:, layer.tokens:].mean(1)
    return act.flatten(2).mean(-1)


def centred_gram(x: torch.Tensor, chunk: int = 1 << 16) -> torch.Tensor:
    """(m, m) float64 linear Gram matrix of m flattened activations, centred over the batch first
    (the unbiased HSIC does not change when every feature vector moves by the same amount, and
    centring keeps the numbers small enough for float32 storage)."""
    x = x.flatten(1)
    x = x if x.dtype == torch.float64 else x.float()       # activations: float32 (float64 kept as it is)
    x = x - x.mean(0, keepdim=True)
    k = torch.zeros(x.shape[0], x.shape[0], dtype=torch.float64)
    for i in range(0, x.shape[1], chunk):
        c = x[:, i:i + chunk].double()
        k += c @ c.T
    return k


@torch.no_grad()
def extract(model, layers: list[Layer], x_u8: torch.Tensor, batch: int = BATCH, grams: bool = False):
    """Run the uint8 squares `x_u8` through `model` (evaluation crop) in batches of `batch`.

    Returns {"pooled": {key: (N, C)}, "logits": (N, classes)} and, with `grams`, "grams":
    {key: (N // batch, batch, batch)} of each full batch (a trailing partial batch adds none)."""
    mods = {ly.key: model.get_submodule(ly.path) for ly in layers if ly.path}
    captured: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda _m, _i, o, k=k: captured.__setitem__(k, o)) for k, m in mods.items()]
    pools: dict[str, list] = {ly.key: [] for ly in layers}
    gram: dict[str, list] = {ly.key: [] for ly in layers}
    logits = []
    try:
        for _, xb in data.eval_batches(x_u8, model.input_size, model.in_chans, batch):
            feats = model.forward_features(xb)
            logits.append(model.forward_head(feats).float())
            for ly in layers:
                act = captured[ly.key] if ly.path else feats
                if isinstance(act, (tuple, list)):
                    act = act[0]
                pools[ly.key].append(pooled(act, ly))
                if grams and act.shape[0] == batch:
                    gram[ly.key].append(centred_gram(act).float())
            captured.clear()
    finally:
        for h in hooks:
            h.remove()
    out = {"pooled": {k: torch.cat(v) for k, v in pools.items()}, "logits": torch.cat(logits)}
    if grams:
        out["grams"] = {k: (torch.stack(v) if v else torch.zeros(0, batch, batch)) for k, v in gram.items()}
    return out


# --- CKA -----------------------------------------------------------------------------------

def triu(grams: torch.Tensor) -> torch.Tensor:
    """(..., m, m) -> (..., m(m-1)/2): the strictly upper triangle, all HSIC_1 needs."""
    m = grams.shape[-1]
    i, j = torch.triu_indices(m, m, 1)
    return grams[..., i, j]


def untriu(flat: torch.Tensor, m: int) -> torch.Tensor:
    """The symmetric (..., m, m) matrix with a zero diagonal from its strictly upper triangle."""
    i, j = torch.triu_indices(m, m, 1)
    out = torch.zeros(*flat.shape[:-1], m, m, dtype=flat.dtype)
    out[..., i, j] = flat
    out[..., j, i] = flat
    return out


def hsic1(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    """Unbiased HSIC (Song et al. 2012) of Gram matrices (..., m, m), their diagonals ignored;
    leading dimensions broadcast. m must be at least 4."""
    m = k.shape[-1]
    k = k.double() * (1 - torch.eye(m, dtype=torch.float64))
    l = l.double() * (1 - torch.eye(m, dtype=torch.float64))
    trace = (k * l).sum((-2, -1))
    sums = k.sum((-2, -1)) * l.sum((-2, -1)) / ((m - 1) * (m - 2))
    rows = (k.sum(-1) * l.sum(-1)).sum(-1) * 2 / (m - 2)
    return (trace + sums - rows) / (m * (m - 3))


def cka_from_grams(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Minibatch linear CKA between every layer of two models.

    a: (La, nb, m, m), b: (Lb, nb, m, m) Gram matrices of the same nb minibatches -> (La, Lb)."""
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"the two sets of Gram matrices are not of the same batches: {tuple(a.shape[1:])} "
                         f"against {tuple(b.shape[1:])}")
    cross = hsic1(a[:, None], b[None]).sum(-1)                 # (La, Lb)
    self_a, self_b = hsic1(a, a).sum(-1), hsic1(b, b).sum(-1)   # (La,), (Lb,)
    den = (self_a.clamp(min=0)[:, None] * self_b.clamp(min=0)[None]).sqrt()
    return torch.where(den > 0, cross / den.clamp(min=1e-300), torch.zeros_like(cross))


def cka(x: torch.Tensor, y: torch.Tensor, batch: int | None = None) -> float:
    """Linear CKA of two representations of the same images (rows), from minibatches of
    `batch` consecutive rows (a trailing partial batch left out), or from all rows at once."""
    batch = batch or x.shape[0]
    n = x.shape[0] // batch * batch
    gx = torch.stack([centred_gram(x[i:i + batch]) for i in range(0, n, batch)])
    gy = torch.stack([centred_gram(y[i:i + batch]) for i in range(0, n, batch)])
    return float(cka_from_grams(gx[None], gy[None])[0, 0])


# --- probes --------------------------------------------------------------------------------

def probe(train_x, train_y, val_x, val_y, seed: int = SEED, c: float = PROBE_C) -> tuple[float, float]:
    """Fit a linear probe (standardised features, multinomial logistic regression) on the train
    features; (val top-1 %, train top-1 %)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    tx, vx = np.asarray(train_x, dtype=np.float64), np.asarray(val_x, dtype=np.float64)
    ty, vy = np.asarray(train_y), np.asarray(val_y)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000, random_state=seed))
    clf.fit(tx, ty)
    return 100.0 * float((clf.predict(vx) == vy).mean()), 100.0 * float((clf.predict(tx) == ty).mean())


# --- the map -------------------------------------------------------------------------------

def tsne(features, seed: int = SEED) -> np.ndarray:
    """(N, 2) seeded t-SNE of (N, D) features (standardised, PCA-initialised; perplexity 30, or
    less on a small set), scaled to [-1, 1] on its longer side."""
    from sklearn.manifold import TSNE
    x = np.asarray(features, dtype=np.float64)
    x = (x - x.mean(0)) / (x.std(0) + 1e-8)
    n = x.shape[0]
    if n < 3:
        return np.zeros((n, 2), dtype=np.float32)
    xy = TSNE(n_components=2, perplexity=min(30.0, max(1.0, (n - 1) / 3)), init="pca", learning_rate="auto",
              random_state=seed, max_iter=1000).fit_transform(x)
    xy = xy - xy.mean(0)
    return (xy / max(np.abs(xy).max(), 1e-12)).astype(np.float32)


# --- one checkpoint, computed ---------------------------------------------------------------

def compute(arch: str, model, card: dict, root: Path, n_val: int = N_VAL, n_train: int = N_TRAIN,
            batch: int = BATCH, seed: int = SEED, log=print) -> dict:
    """Everything a model's side file holds, on `root`'s data."""
    import time
    t0 = time.time()
    layers = probe_layers(arch, card.get("preset", "explorer"))
    vpaths, vlabels = data.list_split(root, "val")
    tpaths, tlabels = data.list_split(root, "train")
    vi, ti = choose(vlabels, n_val, seed), choose(tlabels, n_train, seed + 1)
    m = min(batch, len(vi))
    store = data.eval_store_size(model.input_size)
    vx, tx = decode([vpaths[i] for i in vi], store), decode([tpaths[i] for i in ti], store)
    vy, ty = torch.tensor([vlabels[i] for i in vi]), torch.tensor([tlabels[i] for i in ti])
    val = extract(model, layers, vx, m, grams=m >= 4)
    train = extract(model, layers, tx, 100)
    log(f"  features of {len(vi)} val and {len(ti)} train images: {time.time() - t0:.0f} s")
    acc, fit = [], []
    for ly in layers:
        a, f = probe(train["pooled"][ly.key], ty, val["pooled"][ly.key], vy, seed)
        acc.append(a)
        fit.append(f)
    log(f"  probes: {time.time() - t0:.0f} s")
    pred = val["logits"].argmax(1)
    xy = tsne(val["pooled"][layers[-1].key], seed)
    log(f"  t-SNE: {time.time() - t0:.0f} s")
    grams = val.get("grams") or {ly.key: torch.zeros(0, m, m) for ly in layers}
    return {"layers": layers, "depth": relative_depth(arch, layers, card.get("preset", "explorer")),
            "probe_val": acc, "probe_train": fit, "grams": grams, "tsne": torch.from_numpy(xy),
            "labels": vy, "pred": pred,
            "val_files": [str(vpaths[i].relative_to(root)) for i in vi],
            "train_files": [str(tpaths[i].relative_to(root)) for i in ti],
            "batch": m, "seed": seed, "data_fingerprint": data.fingerprint(root)}


# --- the side file -------------------------------------------------------------------------

@dataclass
class Reps:
    arch: str
    layers: list[Layer]
    depth: list[float]
    probe_val: list[float]       # top-1 % on the val subset, per layer
    probe_train: list[float]     # top-1 % on the train subset the probe was fitted on
    grams: torch.Tensor          # (L, nb, m(m-1)/2) strictly upper triangles, float32
    batch: int
    tsne: np.ndarray             # (N, 2)
    labels: np.ndarray           # (N,)
    pred: np.ndarray             # (N,) the model's own top-1
    val_files: list[str]         # relative to the data root
    meta: dict

    @property
    def images(self) -> str:
        return self.meta.get("images", "")

    def gram_matrices(self) -> torch.Tensor:
        return untriu(self.grams, self.batch)


def save(path: Path, result: dict, card: dict) -> None:
    layers = result["layers"]
    m = result["batch"]
    tensors = {"grams": torch.stack([triu(result["grams"][ly.key]) for ly in layers]).float(),
               "depth": torch.tensor(result["depth"], dtype=torch.float32),
               "probe_val": torch.tensor(result["probe_val"], dtype=torch.float32),
               "probe_train": torch.tensor(result["probe_train"], dtype=torch.float32),
               "tsne": result["tsne"].float(), "labels": result["labels"].to(torch.int16),
               "pred": result["pred"].to(torch.int16)}
    meta = {"images": images_key(result["val_files"]), "train_images": images_key(result["train_files"]),
            "val_images": len(result["val_files"]), "train_count": len(result["train_files"]), "batch": m,
            "seed": result["seed"], "data_fingerprint": result["data_fingerprint"], "probe_c": PROBE_C}
    layer_meta = [{"key": ly.key, "path": ly.path, "label": ly.label, "channels": ly.channels} for ly in layers]
    sidecar.save(path, tensors, card, meta, layers=json.dumps(layer_meta), val_files=json.dumps(result["val_files"]))


def load(path: Path, card: dict) -> Reps | None:
    """A checkpoint's representation file, or None if absent or made from other weights."""
    preset = card.get("preset", "explorer")
    by_key = {ly.key: ly for ly in probe_layers(card["arch"], preset)}
    with sidecar.opened(path, card) as f:
        if f is None:
            return None
        layers = [by_key.get(d["key"]) or Layer(d["key"], checkpoint.current_path(card["arch"], d["path"], preset),
                                                d["label"], d["channels"], None, None, None, None)
                  for d in json.loads(f.metadata["layers"])]
        g = f.get_tensor
        return Reps(card["arch"], layers, g("depth").tolist(), g("probe_val").tolist(), g("probe_train").tolist(),
                    g("grams"), int(f.meta["batch"]), g("tsne").numpy(), g("labels").long().numpy(),
                    g("pred").long().numpy(), json.loads(f.metadata["val_files"]), f.meta)


# --- what the page shows -------------------------------------------------------------------

def pair_cka(a: Reps, b: Reps) -> np.ndarray | None:
    """(La, Lb) minibatch CKA between every layer of two models' files, or None when they were
    made on different images or batches (refresh both with the script)."""
    if a.images != b.images or a.batch != b.batch or a.grams.shape[1:] != b.grams.shape[1:] or not a.grams.shape[1]:
        return None
    return cka_from_grams(a.gram_matrices(), b.gram_matrices()).numpy()


def cka_rows(a: Reps, b: Reps, title_a: str, title_b: str, matrix: np.ndarray) -> list[dict]:
    """Long-format cells of the heat map."""
    return [{"row": f"{i + 1}. {la.label}", "column": f"{j + 1}. {lb.label}", "CKA": round(float(matrix[i, j]), 3),
             "row model": title_a, "column model": title_b, "row depth": round(a.depth[i], 2),
             "column depth": round(b.depth[j], 2)}
            for i, la in enumerate(a.layers) for j, lb in enumerate(b.layers)]


def cka_sentence(a: Reps, b: Reps, title_a: str, title_b: str, matrix: np.ndarray) -> str:
    """What the heat map says, from its numbers."""
    if a.arch == b.arch:
        steps = [float(matrix[i, i + 1]) for i in range(len(a.layers) - 1)]
        if not steps:
            return ""
        i = int(np.argmax(steps))
        j = int(np.argmin(steps))
        return (f"In {title_a}, neighbouring layers are most alike from {a.layers[i].label} to "
                f"{a.layers[i + 1].label} (CKA {steps[i]:.2f}) and least from {a.layers[j].label} to "
                f"{a.layers[j + 1].label} ({steps[j]:.2f}); its first and last layers share "
                f"{float(matrix[0, -1]):.2f}.")
    j0, j1 = int(np.argmax(matrix[0])), int(np.argmax(matrix[-1]))
    order = "in the same order" if j0 <= j1 else "in a different order"
    return (f"{title_a}'s first layer shown ({a.layers[0].label}) is most like {title_b}'s {b.layers[j0].label} "
            f"(CKA {float(matrix[0, j0]):.2f}), its last ({a.layers[-1].label}) most like {title_b}'s "
            f"{b.layers[j1].label} ({float(matrix[-1, j1]):.2f}): their features line up {order}.")


def probe_rows(reps: dict[str, Reps], titles: dict[str, str]) -> list[dict]:
    return [{"model": titles[a], "arch": a, "layer": ly.label, "order": k, "relative depth": round(r.depth[k], 3),
             "probe top-1": round(r.probe_val[k], 1), "probe train top-1": round(r.probe_train[k], 1)}
            for a, r in reps.items() for k, ly in enumerate(r.layers)]


def probe_sentence(reps: dict[str, Reps], titles: dict[str, str]) -> str:
    """Where the class becomes linearly readable, from the numbers."""
    if not reps:
        return ""
    if len(reps) <= 4:
        parts = [f"{titles[a]} {r.probe_val[0]:.0f}% → {r.probe_val[-1]:.0f}%" for a, r in reps.items()]
        return ("Probe top-1 from the first layer shown to the pre-logit layer: " + "; ".join(parts) +
                ". Chance is 10%.")
    best = max(reps, key=lambda a: reps[a].probe_val[-1])
    rise = max(reps, key=lambda a: reps[a].probe_val[-1] - reps[a].probe_val[0])
    r, q = reps[best], reps[rise]
    return (f"The pre-logit layer of {titles[best]} is the most linearly readable ({r.probe_val[-1]:.0f}%); "
            f"{titles[rise]} gains the most from its first layer shown to its last ({q.probe_val[0]:.0f}% → "
            f"{q.probe_val[-1]:.0f}%). Chance is 10%.")


def map_rows(r: Reps) -> list[dict]:
    """One row per val image of the map: where it lies, its class and the model's answer."""
    return [{"file": f, "x": round(float(xy[0]), 4), "y": round(float(xy[1]), 4), "class": data.NAMES[int(c)],
             "predicted": data.NAMES[int(p)], "correct": bool(c == p)}
            for f, xy, c, p in zip(r.val_files, r.tsne, r.labels, r.pred)]


def map_csv(rows: list[dict]) -> str:
    import csv
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["file", "class", "predicted", "correct", "x", "y"], extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def neighbour_agreement(r: Reps, k: int = 10) -> float:
    """Share of each point's k nearest neighbours on the map that are of its class (%): how well the
    map keeps the classes apart."""
    xy = torch.from_numpy(np.asarray(r.tsne, dtype=np.float32))
    n = xy.shape[0]
    if n < 2:
        return 0.0
    k = min(k, n - 1)
    d = torch.cdist(xy, xy)
    d.fill_diagonal_(math.inf)
    nn_idx = d.topk(k, largest=False).indices
    lab = torch.from_numpy(np.asarray(r.labels))
    return 100.0 * float((lab[nn_idx] == lab[:, None]).float().mean())


def thumbnails(root: Path, files: list[str], px: int = 64) -> list[str | None]:
    """A small JPEG data URL per image (the evaluation square, `px` wide), None for a missing file."""
    from PIL import Image
    out: list[str | None] = []
    for f in files:
        p = Path(root) / f
        try:
            with Image.open(p) as im:
                sq = Image.fromarray(data.to_square_uint8(im, px))
        except OSError:
            out.append(None)
            continue
        buf = io.BytesIO()
        sq.save(buf, format="JPEG", quality=80)
        out.append("data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode())
    return out
