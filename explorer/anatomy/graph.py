"""The building block as a graph: Graphviz DOT of a module, traced with torch.fx from the
module itself (`block_graph`).

Composite layers (attention, MLP, squeeze-and-excitation, a dense layer, conv-BN-ReLU) stay one
box; a parameter-free follow-up layer (activation, LRN, pooling, BN) folds into the layer before
it when it is that layer's only consumer; identities and dropout are left out.
"""
from __future__ import annotations

import torch
from torch import nn

import models
from explorer.anatomy.layers import describe


_COMPOSITE_LEAVES = ("Attention", "Mlp", "SqueezeExcitation", "_DenseLayer", "BasicConv2d",
                     "Conv2dNormActivation", "PatchEmbed")
_HIDE = ("Identity", "Dropout", "DropPath")


def _block_module(model, path: str) -> nn.Module:
    """`path` is a dotted module path, optionally sliced: "trunk.features[0:7]", or
    "trunk.features[:MaxPool2d]" for the children up to and including the first MaxPool2d."""
    if "[" not in path:
        return model.get_submodule(path)
    base, sl = path[:-1].split("[")
    kids = list(model.get_submodule(base).children())
    a, b = sl.split(":")
    if b and not b.lstrip("-").isdigit():
        end = next(i for i, k in enumerate(kids) if type(k).__name__ == b) + 1
    else:
        end = int(b) if b else None
    return nn.Sequential(*kids[int(a) if a else None:end])


def _label(m: nn.Module) -> str:
    kind = type(m).__name__
    if kind in ("Conv2dNormActivation", "BasicConv2d") or (isinstance(m, nn.Sequential) and len(m) <= 3):
        parts = []
        for c in m.children():
            if isinstance(c, nn.Conv2d):
                parts.append(f"conv {describe(c)}")
            elif isinstance(c, nn.BatchNorm2d):
                parts.append("BN")
            elif not isinstance(c, (nn.Identity, nn.Dropout)):
                parts.append(type(c).__name__)
        if kind == "BasicConv2d":
            parts.append("ReLU")
        return " · ".join(parts)
    if kind == "Attention":
        return f"multi-head self-attention\\n{m.num_heads} heads, dim {m.qkv.in_features}"
    if kind == "Mlp":
        return f"MLP {m.fc1.in_features}->{m.fc1.out_features}->{m.fc2.out_features}\\n({type(m.act).__name__})"
    if kind == "SqueezeExcitation":
        return f"squeeze-and-excitation\\n{m.fc1.in_channels}->{m.fc1.out_channels}->{m.fc2.out_channels}"
    if kind == "_DenseLayer":
        return f"dense layer\\nBN·ReLU·conv 1x1->{m.conv1.out_channels}\\nBN·ReLU·conv 3x3->{m.conv2.out_channels}"
    d = describe(m)
    return f"{kind}\\n{d}" if d else kind


_FN_LABELS = {"add": "+", "iadd": "+", "mul": "x", "cat": "concat", "transpose": "transpose",
              "flatten": "flatten", "sigmoid": "sigmoid", "relu": "ReLU", "matmul": "matmul"}


_FOLD = {"ReLU": "ReLU", "ReLU6": "ReLU6", "GELU": "GELU", "Sigmoid": "sigmoid", "Squash": "scaled tanh",
         "LocalResponseNorm": "LRN", "BatchNorm2d": "BN", "MaxPool2d": "max-pool", "AvgPool2d": "avg-pool"}


def _fold_chains(nodes: dict, edges: list, kinds: dict) -> tuple[dict, list]:
    """Fold a parameter-free follow-up layer (activation, LRN, pooling, BN) into the layer before
    it when it is that layer's only consumer: AlexNet's stack reads conv1 · ReLU · LRN · max-pool
    instead of four boxes in a row. Branches and merges are left as they are."""
    changed = True
    while changed:
        changed = False
        outs: dict[str, list] = {}
        ins: dict[str, list] = {}
        for a, b in edges:
            outs.setdefault(a, []).append(b)
            ins.setdefault(b, []).append(a)
        for n, m in kinds.items():
            if n not in nodes or type(m).__name__ not in _FOLD or len(ins.get(n, [])) != 1:
                continue
            p = ins[n][0]
            if p not in kinds or outs.get(p) != [n]:
                continue
            short = _FOLD[type(m).__name__]
            if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
                short += f" {describe(m)}"
            nodes[p] = (nodes[p][0] + "\\n" + short, nodes[p][1])
            edges = [(p if a == n else a, b) for a, b in edges if b != n]
            del nodes[n]
            changed = True
            break
    return nodes, edges


def block_graph(arch: str, path: str, preset: str = "explorer") -> str:
    """Graphviz DOT of the module at `path`, traced with torch.fx from the module itself."""
    import torch.fx as fx

    with torch.device("meta"):
        model = models.create(arch, preset)
    block = _block_module(model, path)

    class Tracer(fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return (type(m).__name__ in _COMPOSITE_LEAVES or not any(True for _ in m.children())
                    or super().is_leaf_module(m, qualname))

    graph = Tracer().trace(block)
    nodes, edges, kinds = {}, [], {}
    alias: dict[str, str] = {}

    def src(n) -> str:
        return alias.get(n.name, n.name)

    first_input = True
    for n in graph.nodes:
        ins = [a for a in n.all_input_nodes]
        if n.op == "placeholder":
            if first_input:    # the block's input; optional ones (ViT's attention mask, None) are left out
                nodes[n.name] = ("input", "oval")
                first_input = False
            else:
                alias[n.name] = None
            continue
        if n.op == "output":
            nodes[n.name] = ("output", "oval")
            edges += [(src(a), n.name) for a in ins]
            continue
        if n.op == "get_attr":
            alias[n.name] = None
            continue
        if n.op == "call_module":
            m = block.get_submodule(n.target)
            if type(m).__name__ in _HIDE or (isinstance(m, nn.Dropout)):
                alias[n.name] = src(ins[0]) if ins else None
                continue
            nodes[n.name] = (_label(m), "box")
            kinds[n.name] = m
        else:
            fname = getattr(n.target, "__name__", str(n.target)).strip("_")
            if fname in ("getitem", "size", "dim", "getattr", "contiguous", "expand", "view", "reshape",
                         "permute", "unbind", "chunk"):
                alias[n.name] = src(ins[0]) if ins else None
                continue
            nodes[n.name] = (_FN_LABELS.get(fname, fname), "circle" if fname in ("add", "iadd", "mul") else "box")
        edges += [(src(a), n.name) for a in ins if src(a) is not None]
    nodes, edges = _fold_chains(nodes, list(dict.fromkeys(edges)), kinds)
    lines = ["digraph G {", 'rankdir=TB; bgcolor="transparent";',
             'node [fontname="sans-serif", fontsize=11, style="rounded,filled", fillcolor="#eef2f8", '
             'color="#5a6b8c"];', 'edge [color="#5a6b8c"];']
    for name, (label, shape) in nodes.items():
        style = ', style="filled", fillcolor="#ffe9c7"' if shape == "circle" else ""
        if label in ("input", "output"):
            style = ', style="filled", fillcolor="#ffffff"'
        lines.append(f'"{name}" [label="{label}", shape={"box" if shape == "box" else shape}{style}];')
    for a, b in dict.fromkeys(edges):
        if a in nodes and b in nodes:
            lines.append(f'"{a}" -> "{b}";')
    lines.append("}")
    return "\n".join(lines)
