"""Graphviz drawings of checked networks, at the level of abstraction the spec was written at.

`to_dot(network, depth=0)` gives the DOT source. Each block call at a depth below `depth`
(counting only block calls; the network body is depth 0) is drawn as a labelled cluster with
its contents; deeper block calls are single nodes, and consecutive calls of one block with the
same structure (e.g. the identical blocks of a ResNet stage) share one node marked `×N`, or,
opened, one cluster marked `×N`. A collapsed call's node says what tells it apart
(`kernels`: `1×1 3×3 /2 ×256`).
Labelled groups written inline (`features: { ... }`, `downsample: ...`) are clusters wherever
they are visible. Merges are small nodes of their own: a circled `+` for a residual add, a
`concat` box, and a `dense concat` box per DenseNet step (or one for a whole dense block whose
layers are all one collapsed block call). Edges carry the tensor shape (C×H×W, or F for
features); nodes are coloured by op family, with a legend under the title.

`expand=[path, ...]` (`--expand`) opens just those block calls, named by module path, and
the ones around them; `stats=True` writes params and MACs on nodes as `archspec summary`
does; `tooltips=True` gives nodes and clusters a hover text (shapes, exact counts), which
diagram_html.py's page shows; `title=` and `legend=` set the title line; `fit="16:9"`
(--fit, the slides theme's default) wraps a long drawing into columns of that aspect ratio,
as diagram_fit.py measures them with `dot`.

The output is deterministic: node ids come from module paths (merges are numbered within their
scope), and nothing depends on hashing or object ids. `render()` runs Graphviz's `dot`; the
CLI (`archspec diagram`) writes the file atomically, and when `dot` is missing writes the .dot
source and says how to install Graphviz. This module never imports torch; the `graphviz`
package is imported only when a drawing is made.

`to_dot(network, block=NAME)` (`archspec diagram --block`) draws one block's call on its own,
as a paper's figure of a module (`find_block`, `_BlockBuilder`, at the end of this file).
"""

from __future__ import annotations

import difflib
import math
import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from html import escape
from typing import NamedTuple

from .diagnostics import ArchError, Diagnostic, did_you_mean
from .diagram_fit import Cut, parse_fit
from .diagram_fit import fit as fit_drawing
from .diagram_options import THEMES, Theme
from .ir import (
    DenseMerge,
    Layer,
    Merge,
    Network,
    Node,
    Output,
    Ref,
    Seq,
    Side,
    iter_layers,
    iter_nodes,
)
from .summary import human

FORMATS = ("svg", "png", "pdf", "dot")
# Graphviz's layout time grows much faster than the drawing (a 2,000-step dense block takes a
# minute): larger drawings are refused, and `dot` gets a time limit, so no command hangs.
MAX_LAYOUT_EDGES = 4_000
RENDER_TIMEOUT = 45  # seconds

INSTALL_HINT = ("install Graphviz (it provides `dot`): `apt-get install graphviz` (Debian, "
                "Ubuntu), `brew install graphviz` (macOS), `conda install graphviz` or see "
                "https://graphviz.org/download/")

# Fill colours by op family (ColorBrewer Paired, light tones: print and projector safe).
FAMILY_COLORS = {
    "conv": "#a6cee3",
    "norm": "#fdbf6f",
    "activation": "#b2df8a",
    "pool": "#fb9a99",
    "linear": "#cab2d6",
    "recurrent": "#ccebc5",
    "merge": "#ffff99",
    "block": "#dcdcdc",
    "other": "#f4f4f4",  # reshape, regularization, identity
}
_OTHER_FAMILIES = ("reshape", "regularization", "identity", "scale")
_SHORT_OPS = {"batchnorm": "bn", "global_avgpool": "gap", "global_maxpool": "gmp"}


class DotMissing(Exception):
    """Graphviz's `dot` program is not on PATH."""


class RenderError(Exception):
    """`dot` ran and failed."""


# ---------------------------------------------------------------- text


def shape_text(shape) -> str:
    """C×H×W, or F for features, as drawn on edges."""
    return "?" if shape is None else "×".join(str(d) for d in shape)


def _pair(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def op_text(layer: Layer) -> str:
    """The op as a paper would write it (the registry's label): `conv 7×7, 64, /2`."""
    return layer.op.label(layer.attrs) if layer.op.label else layer.op.name


def _family(layer: Layer) -> str:
    family = layer.op.family
    return "other" if family in _OTHER_FAMILIES else family


def _auto_named(name: str | None) -> bool:
    """Names archspec numbers itself (unlabelled layers, loop iterations)."""
    return name is None or name.isdigit()


def _arg_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_arg_text(v) for v in value) + "]"
    if isinstance(value, (int, float, str)) or value is None:
        return repr(value)
    name = getattr(value, "name", None)  # a block passed as an argument
    return str(name) if isinstance(name, str) else type(value).__name__


def _range(first: str, last: str) -> str:
    """`denselayer1`, `denselayer6` -> `denselayer1–6`; `0`, `1` -> `0–1`."""
    prefix = re.match(r"^(.*?)\d*$", first).group(1)
    if last.startswith(prefix) and last[len(prefix):].isdigit():
        return f"{first}–{last[len(prefix):]}"
    return f"{first}–{last}"


def _html(title: str, subtitle: str | None, small: float, bold: bool) -> str:
    text = escape(title, quote=False)
    if bold:
        text = f"<b>{text}</b>"
    for line in subtitle.split("\n") if subtitle else ():
        text += f'<br/><font point-size="{small:g}">{escape(line, quote=False)}</font>'
    return f"<{text}>"


# ---------------------------------------------------------------- structure


def _items(node: Seq) -> list[Node]:
    """The statements of a sequence, with unnamed groups inlined."""
    out: list[Node] = []
    for child in node.children:
        if isinstance(child, Seq) and child.name is None:
            out.extend(_items(child))
        else:
            out.append(child)
    return out


def _block_key(scope: Seq) -> tuple:
    if scope.block is None:
        return (None,)
    return (scope.block.name,) + tuple((k, _arg_text(v)) for k, v in scope.block.args.items())


def _signature(node: Node, top: bool = True) -> tuple:
    """Structure of a subtree without its module paths: equal signatures draw alike."""
    if isinstance(node, Layer):
        return ("L", None if top else node.name, node.op.name,
                tuple(sorted((k, repr(v)) for k, v in node.attrs.items())),
                node.in_shape, node.out_shape)
    if isinstance(node, Seq):
        return ("S", None if top else node.name, _block_key(node), node.in_shape,
                node.out_shape, tuple(_signature(c, False) for c in node.children))
    if isinstance(node, Merge):
        return ("M", node.kind, tuple(_signature(b, False) for b in node.branches))
    if isinstance(node, Ref):  # the scope's own tensor by name: equal in equal scopes
        return ("R", node.target, node.in_shape, node.out_shape)
    if isinstance(node, Side):
        return ("A", node.training, _signature(node.body, False))
    return ("D", tuple(_signature(s, False) for s in node.steps))


def summary(scope: Seq) -> str:
    """A few words for what a collapsed scope holds: `concat 64+128+32+32`, `basic ×2`,
    `residual add, projection`, `conv · bn · relu`, and `/2` where it downsamples."""
    items = _items(scope)
    calls = [i for i in items if isinstance(i, Seq) and i.block is not None]
    text = None
    if items and len(calls) == len(items) and len({c.block.name for c in calls}) == 1:
        text = calls[0].block.name + (f" ×{len(calls)}" if len(calls) > 1 else "")
    for item in items if text is None else ():
        if isinstance(item, DenseMerge):
            text = f"dense ×{len(item.steps)}"
        elif isinstance(item, Merge) and item.kind == "add":
            identity = any(not _items(b) for b in item.branches)
            text = "residual add" + ("" if identity else ", projection")
        elif isinstance(item, Merge) and item.kind == "gate":
            text = "gate ×"
        elif isinstance(item, Merge) and item.kind == "split":
            text = f"split ÷{len(item.branches)}, concat"
        elif isinstance(item, Merge):
            widths = [str(b.out_shape[0]) if b.out_shape else "?" for b in item.branches]
            text = "concat " + "+".join(widths)
        if text is not None:
            break
    if text is None and items and all(isinstance(i, Layer) for i in items) and len(items) <= 4:
        text = " · ".join(_SHORT_OPS.get(i.op.name, i.op.name) for i in items)
    if text is None:
        count = sum(1 for _ in iter_layers(scope))
        text = f"{count} layer" + ("s" if count != 1 else "")
    return text + _downsampling(scope)


def kernels(scope: Seq) -> str:
    """What tells collapsed blocks apart: the distinct kernel sizes of its convs in order,
    `/2` where it downsamples and its output width: `1×1 3×3 /2 ×256`."""
    sizes = []
    for layer in iter_layers(scope):
        kernel = layer.attrs.get("kernel") if layer.op.family == "conv" else None
        text = "×".join(map(str, _pair(kernel))) if kernel is not None else None
        if text is not None and text not in sizes:
            sizes.append(text)
    words = [*sizes, _downsampling(scope).removeprefix(", ")]
    if scope.out_shape and len(scope.out_shape) == 3:
        words.append(f"×{scope.out_shape[0]}")
    return " ".join(w for w in words if w)


def _downsampling(scope: Seq) -> str:
    a, b = scope.in_shape, scope.out_shape
    if a and b and len(a) == 3 and len(b) == 3 and b[1] < a[1] and a[1] % b[1] == 0:
        return f", /{a[1] // b[1]}"
    return ""


ROW_LEVELS = 3  # levels a network's skips must run across for it to be drawn in rows


def _octaves(before, after) -> int:
    """How many halvings of the height (negative: doublings) lie between two shapes."""
    if not before or not after or len(before) != 3 or len(after) != 3:
        return 0
    return round(math.log2(before[1] / after[1]))


def _like_keys(layer: Layer) -> list[str]:
    """Where the named tensor a layer's `like=` reads may be (`Ref.key`): in the layer's
    scope, or (a labelled scope reads the tensors around it) in a scope around it."""
    scope = layer.path.rpartition(".")[0]
    if layer.like == "input":
        return [f"{scope}@input"]
    parts = scope.split(".") if scope else []
    return [".".join(parts[:i] + [layer.like]) for i in range(len(parts), -1, -1)]


def _quoted(node_id: str) -> str:
    return '"' + node_id.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------- the drawing model


class _Cluster:
    """A graphviz subgraph in the making: nodes and nested clusters, in drawing order."""

    def __init__(self, name: str, attrs: dict, level: int = 0):
        self.name, self.attrs, self.level = name, attrs, level  # name: cluster_<module path>
        self.entries: list = []  # ("node", id, attrs) | ("cluster", _Cluster)

    def node(self, node_id: str, attrs: dict) -> None:
        self.entries.append(("node", node_id, attrs))


class _Tensor(NamedTuple):
    """A drawn tensor: the node that gives it, and its shape."""

    node: str
    shape: object
    skip: bool = False  # read again by `@name`: its next edge is a skip connection


class _Builder:
    def __init__(self, network: Network, depth: int, theme: Theme, shapes: bool,
                 rankdir: str = "TB", opened: frozenset[str] = frozenset()):
        self.network, self.depth, self.theme, self.shapes = network, depth, theme, shapes
        self.rankdir = rankdir
        self.opened = opened  # block calls opened whatever `depth` says (--expand)
        self.drawn_as: dict[str, list[Node]] = {}  # node id -> the IR nodes it stands for
        self.root = _Cluster("root", {})
        self.edges: list[tuple[str, str, dict]] = []
        self.labelled: set[str] = set()  # tensors (by source node) already given a label
        self.merges: dict[str, int] = {}  # scope path -> merges numbered so far
        self.families: set[str] = set()
        self.others: set[str] = set()  # the families drawn as "other"
        self.tensors: dict[str, _Tensor] = {}  # named tensors by `Ref.key`
        self.given: dict[str, object] = {}  # node -> the shape of the tensor it gives
        self.same_level: set[str] = set()  # crops and pads: a level's maps, trimmed
        self.skips = 0

    # nodes ---------------------------------------------------------------

    def _fill(self, family: str) -> dict:
        self.families.add(family)
        return {"fillcolor": FAMILY_COLORS[family]}

    def edge(self, tail: _Tensor, head: str, label: str | None = None) -> None:
        """An edge carrying `tail`'s tensor, labelled with its shape on its first edge."""
        attrs = {}
        text = label if label is not None else shape_text(tail.shape)
        if self.shapes and tail.node not in self.labelled:
            attrs["label"] = " " + text + " "
            self.labelled.add(tail.node)
        if tail.skip:  # as papers draw skips: across, from the encoder to the decoder
            attrs["style"] = "dashed"
            self.skips += 1
        self.given[tail.node] = tail.shape
        self.edges.append((tail.node, head, attrs))

    def drawn(self, key: str) -> _Tensor | None:
        """The node that gives a named tensor: its own, or, inside a collapsed scope
        (`backbone.4` of a collapsed `backbone`), the scope's node."""
        while key not in self.tensors and "." in key:
            key = key.rpartition(".")[0]
        return self.tensors.get(key)

    def levels(self) -> dict[str, int]:
        """Each node's resolution level, as U-Net's figure has its rows: the levels its
        input went down (x2 pooling: +1) and up (x2 up-convolution: -1) on the way."""
        level = {"input": 0}
        for tail, head, _ in self.edges:
            if head not in level and tail in level:
                level[head] = level[tail] + (0 if head in self.same_level else _octaves(
                    self.given.get(tail), self.given.get(head)))
        return level

    def rows(self, graph) -> None:
        """Draw a network with skips as its paper does: one row per resolution, the skips
        across, the way back up against the ranks (so a U-Net is a U)."""
        level = self.levels()
        ladder = {level.get(tail) for tail, head, attrs in self.edges
                  if attrs.get("style") == "dashed" and level.get(tail) == level.get(head)}
        if len(ladder - {None}) < ROW_LEVELS:
            return  # skips across one or two levels (LR-ASPP): a column reads better
        by_level: dict[int, list[str]] = {}
        for node_id, value in level.items():
            by_level.setdefault(value, []).append(node_id)
        for nodes in by_level.values():
            graph.body.append("\t{rank=same; " + "; ".join(map(_quoted, nodes)) + "}\n")
        for tail, head, attrs in self.edges:
            if level.get(tail, 0) > level.get(head, 0):
                attrs["constraint"] = "false"

    def layer(self, layer: Layer, into: _Cluster, src: _Tensor) -> _Tensor:
        node_id = "L." + layer.path
        t = self.theme
        title = op_text(layer) if _auto_named(layer.name) else layer.name
        subtitle = None if title == op_text(layer) else op_text(layer)
        if layer.op.family in _OTHER_FAMILIES:
            self.others.add(layer.op.family)
        into.node(node_id, {"label": _html(title, subtitle, t.small, subtitle is not None),
                            **self._fill(_family(layer))})
        self.drawn_as[node_id] = [layer]
        self.edge(src, node_id)
        if layer.like is not None:  # the tensor whose size it takes
            like = next(filter(None, map(self.drawn, _like_keys(layer))), None)
            if like is not None:
                self.edges.append((like.node, node_id, {"style": "dotted",
                                                        "constraint": "false"}))
        if layer.op.name in ("crop", "pad"):
            self.same_level.add(node_id)
        self.tensors[layer.path] = _Tensor(node_id, layer.out_shape)
        return self.tensors[layer.path]

    def collapsed(self, scopes: list[Seq], into: _Cluster, src: _Tensor) -> _Tensor:
        """One node for one collapsed scope, or for N consecutive identical ones (×N)."""
        first, last, t = scopes[0], scopes[-1], self.theme
        node_id = "S." + first.path
        block = first.block.name if first.block is not None else None
        if len(scopes) > 1:
            title = f"{block or first.name} ×{len(scopes)}"
            names = "" if _auto_named(first.name) else _range(first.name, last.name) + ": "
            subtitle = names + summary(first)
        elif _auto_named(first.name):
            title, subtitle = block or first.path, summary(first)
        else:
            title = first.name
            subtitle = f"{block}: {summary(first)}" if block else summary(first)
        if block is not None and subtitle == f"{block}: {block}":
            subtitle = block
        if kernels(first):  # the line says /2: the summary need not
            subtitle = subtitle.removesuffix(_downsampling(first)) + "\n" + kernels(first)
        into.node(node_id, {"label": _html(title, subtitle, t.small, True),
                            "peripheries": "2", **self._fill("block")})
        self.drawn_as[node_id] = list(scopes)
        self.edge(src, node_id)
        for scope in scopes:
            self.tensors[scope.path] = _Tensor(node_id, scope.out_shape)
        return _Tensor(node_id, last.out_shape)

    def merge_node(self, scope_path: str, kind: str, into: _Cluster, text: str | None = None,
                   suffix: str = "") -> str:
        count = self.merges[scope_path] = self.merges.get(scope_path, 0) + 1
        node_id = f"M.{scope_path or '<net>'}/{kind}{count}{suffix}"
        t = self.theme
        if kind in ("add", "gate"):
            attrs = {"label": "+" if kind == "add" else "×", "shape": "circle", "width": f"{0.3 * t.fontsize / 11:.2f}",
                     "fixedsize": "true", "fontsize": f"{t.fontsize + 4:g}",
                     "margin": "0"}
        else:
            attrs = {"label": text or ("concat" if kind == "concat" else "dense concat"),
                     "shape": "box", "fontsize": f"{t.small:g}", "height": "0.2"}
        into.node(node_id, {**attrs, **self._fill("merge")})
        return node_id

    # structure -------------------------------------------------------------

    def expands(self, scope: Seq, level: int) -> bool:
        """Labels are clusters wherever visible; block calls up to `depth` levels, and
        those --expand names."""
        return scope.block is None or level < self.depth or scope.path in self.opened

    def sequence(self, items: list[Node], into: _Cluster, level: int, src: _Tensor,
                 scope_path: str) -> _Tensor:
        i = 0
        while i < len(items):
            item = items[i]
            if isinstance(item, Seq) and not self.expands(item, level):
                j = self.run(items, i, level, opened=False)
                src = self.collapsed(items[i:j], into, src)
            elif isinstance(item, Seq) and item.block is not None:
                j = self.run(items, i, level, opened=True)
                src = self.cluster(item, into, level, src, items[i + 1:j])
            else:
                j = i + 1
                src = self.statement(item, into, level, src, scope_path)
            i = j
        return src

    def run(self, items: list[Node], i: int, level: int, opened: bool) -> int:
        """The end of the run of calls like items[i] (same block, arguments and shapes),
        all collapsed or all opened, that one node or one cluster marked ×N stands for. An
        opened run stops at a call --expand names: that one is drawn."""
        j, key = i + 1, _signature(items[i])
        while (j < len(items) and isinstance(items[j], Seq)
               and self.expands(items[j], level) == opened and _signature(items[j]) == key
               and not (opened and items[j].path in self.opened)):
            j += 1
        return j

    def statement(self, node: Node, into: _Cluster, level: int, src: _Tensor,
                  scope_path: str) -> _Tensor:
        if isinstance(node, Layer):
            return self.layer(node, into, src)
        if isinstance(node, Ref):
            found = self.drawn(node.key)
            return src if found is None else found._replace(skip=True)
        if isinstance(node, Side):
            self.sequence(_items(node.body), into, level, src, scope_path)
            return src
        if isinstance(node, Seq):
            if node.name is None:
                return self.sequence(_items(node), into, level, src, scope_path)
            return self.cluster(node, into, level, src)
        if isinstance(node, Merge):
            start = src
            if node.kind == "split":  # the branches get shares of the channels
                split_id = self.merge_node(scope_path, "split", into,
                                           f"split ÷{len(node.branches)}")
                self.edge(src, split_id)
                start = _Tensor(split_id, node.branches[0].in_shape)
            ends = [self.sequence(_items(b), into, level, start, scope_path)
                    for b in node.branches]
            if node.kind == "gate":
                ends.insert(0, src)  # the input, multiplied by the gate
            merge_id = self.merge_node(scope_path, "concat" if node.kind == "split"
                                       else node.kind, into)
            for end in ends:
                self.edge(end, merge_id)
            return _Tensor(merge_id, node.out_shape)
        return self.dense(node, into, level, src, scope_path)

    def cluster(self, scope: Seq, into: _Cluster, level: int, src: _Tensor,
                repeats: list[Node] = ()) -> _Tensor:
        """An opened scope, and for `repeats` (the identical calls after it) ×N."""
        t = self.theme
        block = scope.block.name if scope.block is not None else None
        title = scope.path if _auto_named(scope.name) else scope.name
        if repeats:
            last = repeats[-1]
            title = _range(title, last.path if _auto_named(last.name) else last.name)
            block = f"{block} ×{len(repeats) + 1}"
        text = f"<b>{escape(title, quote=False)}</b>"
        if block:
            text += f'  <font point-size="{t.small:g}">{escape(block, quote=False)}</font>'
        if self.rankdir == "TB":
            # Edges enter a cluster at its top centre: keep the right-justified label in the
            # right half, after an empty cell as wide as the text.
            width = 0.6 * t.fontsize * len(title) + 0.55 * t.small * (len(block or "") + 2)
            text = (f'<table border="0" cellpadding="0" cellspacing="0"><tr>'
                    f'<td width="{int(width) + 8}"></td><td>{text}</td></tr></table>')
        nested = into.level + 1
        cluster = _Cluster("cluster_" + scope.path, {
            "label": f"<{text}>", "fillcolor": t.cluster_fills[(nested - 1) % 2],
            "labeljust": "r" if self.rankdir == "TB" else "l"}, level=nested)
        into.entries.append(("cluster", cluster))
        inner = level + (1 if block is not None else 0)
        self.tensors[f"{scope.path}@input"] = src
        end = self.sequence(_items(scope), cluster, inner, src, scope.path)
        for drawn in (scope, *repeats):
            self.tensors[drawn.path] = end._replace(shape=drawn.out_shape)
        return end._replace(shape=(repeats or [scope])[-1].out_shape)

    def dense(self, node: DenseMerge, into: _Cluster, level: int, src: _Tensor,
              scope_path: str) -> _Tensor:
        steps = [_items(s) for s in node.steps]
        calls = [s[0] for s in steps if len(s) == 1 and isinstance(s[0], Seq)
                 and s[0].block is not None and not self.expands(s[0], level)]
        if len(steps) > 1 and len(calls) == len(steps) and \
                len({_block_key(c) for c in calls}) == 1:
            return self.dense_folded(node, calls, into, src, scope_path)
        # Step k reads x_k = concat(input, out_0 .. out_{k-1}) = concat(x_{k-1}, out_{k-1}):
        # drawn as a chain of concat nodes, one per step.
        x = src
        shapes = [s.in_shape for s in node.steps[1:]] + [node.out_shape]
        for step, shape in zip(steps, shapes):
            out = self.sequence(step, into, level, x, scope_path)
            merge_id = self.merge_node(scope_path, "dense", into)
            self.edge(x, merge_id)
            self.edge(out, merge_id)
            x = _Tensor(merge_id, shape)
        return x

    def dense_folded(self, node: DenseMerge, calls: list[Seq], into: _Cluster, src: _Tensor,
                     scope_path: str) -> _Tensor:
        """A dense block of N identical collapsed layers: the layers as one ×N node, their
        outputs and the block's input into one dense concat."""
        first, last, t = calls[0], calls[-1], self.theme
        node_id = "S." + first.path
        names = "" if _auto_named(first.name) else _range(first.name, last.name) + ": "
        into.node(node_id, {
            "label": _html(f"{first.block.name} ×{len(calls)}",
                           names + "each reads all earlier outputs", t.small, True),
            "peripheries": "2", **self._fill("block")})
        self.drawn_as[node_id] = list(calls)
        lo, hi = first.in_shape, last.in_shape
        span = (shape_text(lo) if lo == hi else
                f"{lo[0]}…{hi[0]}" + "".join(f"×{d}" for d in lo[1:]))
        self.edge(src, node_id, label=span)
        merge_id = self.merge_node(scope_path, "dense", into, f"dense concat ×{len(calls)}")
        self.edge(src, merge_id)
        outs = {c.out_shape for c in calls}
        each = shape_text(first.out_shape) + (" each" if len(outs) == 1 else " …")
        self.edge(_Tensor(node_id, first.out_shape), merge_id, label=each)
        return _Tensor(merge_id, node.out_shape)

    # the whole graph ---------------------------------------------------------

    def build(self) -> _Cluster:
        t, net = self.theme, self.network
        self.root.node("input", {
            "label": _html("input", shape_text(net.input_shape), t.fontsize, True),
            "shape": "box", "style": "rounded,bold", "fillcolor": "white"})
        self.tensors["@input"] = _Tensor("input", net.input_shape)
        for name, shape in net.inputs:  # the other inputs, named tensors of the network
            self.root.node(f"input.{name}", {
                "label": _html(name, shape_text(shape), t.fontsize, True),
                "shape": "box", "style": "rounded,bold", "fillcolor": "white"})
            self.tensors[name] = _Tensor(f"input.{name}", shape)
        end = self.sequence(_items(net.body), self.root, 0, self.tensors["@input"], "")
        outputs = net.outputs or [Output(None, None, net.output_shape, False)]
        for i, output in enumerate(outputs):
            node_id = "output" if len(outputs) == 1 else f"output.{i}"
            title = output.key or ("output" if len(outputs) == 1 else f"output {i}")
            subtitle = shape_text(output.shape) + (", training" if output.training else "")
            self.root.node(node_id, {
                "label": _html(title, subtitle, t.fontsize, True), "shape": "box",
                "style": "rounded,bold" + (",dashed" if output.training else ""),
                "fillcolor": "white"})
            source = end if output.target is None else self.tensors.get(
                "@input" if output.target == "input" else output.target, end)
            self.edge(source._replace(skip=False), node_id)
        return self.root

    def legend(self, name: str | None = None) -> str:
        t = self.theme
        order = [f for f in FAMILY_COLORS if f in self.families]
        names = {"other": ", ".join(f for f in _OTHER_FAMILIES if f in self.others),
                 "block": "block (collapsed)"}
        cells = "".join(
            f'<td bgcolor="{FAMILY_COLORS[f]}" border="1" color="#888888" width="{t.small:g}" '
            f'height="{t.small:g}"></td>'
            f'<td align="left">{names.get(f, f)}  </td>' for f in order)
        title = f"<b>{escape(name or self.network.name, quote=False)}</b>"
        facts = (f"{shape_text(self.network.input_shape)} → "
                 f"{shape_text(self.network.output_shape)}, {self.network.params:,} params")
        return (f'<<table border="0" cellborder="0" cellspacing="2" cellpadding="1">'
                f'<tr><td colspan="{2 * max(len(order), 1)}"><font point-size="{t.title:g}">'
                f'{title}</font>  <font point-size="{t.small:g}">{escape(facts)}</font>'
                f'</td></tr>{f"<tr>{cells}</tr>" if cells else ""}</table>>')  # no empty row: dot refuses it


def to_dot(network: Network, depth: int = 0, rankdir: str = "TB", theme: str = "paper",
           shapes: bool = True, block: str | None = None, *, expand: Iterable[str] = (),
           stats: bool = False, legend: bool = True, title: str | None = None,
           tooltips: bool = False, fit: str | None = "theme") -> str:
    """The DOT source of a network's diagram (see the module's docstring). `block` draws
    that block's first call alone (`find_block`), as papers draw a module; `expand` opens
    those block calls (module paths, see `opened_paths`), `stats` writes params and MACs on
    nodes, `tooltips` gives nodes and clusters a hover text (shapes, params, MACs), `title`
    replaces the network's name in the title line, `legend=False` leaves the legend off.
    `fit="16:9"` wraps the drawing to that aspect ratio (diagram_fit.py, needs `dot`);
    `"theme"` is the theme's own (16:9 for slides, none for paper), `None` or `"none"` off."""
    if rankdir not in ("TB", "LR"):
        raise ValueError(f"rankdir must be TB or LR, not {rankdir!r}")
    style = THEMES[theme]
    target = parse_fit(style.fit if fit == "theme" else fit or "none")
    builder = (_Builder(network, depth, style, shapes, rankdir, opened_paths(network, expand))
               if block is None else
               _BlockBuilder(network, find_block(network, block), depth, style, shapes, rankdir))
    root = builder.build()
    _annotate(builder, stats, tooltips)
    caption = _caption(builder, legend, title)

    def draw(cuts: list[Cut], ratio: float | None) -> str:
        return _source(builder, root, caption, cuts, ratio)

    return draw([], None) if target is None else fit_drawing(draw, target, rankdir)


def _source(builder: _Builder, root: _Cluster, caption: dict, cuts: list[Cut],
            ratio: float | None) -> str:
    """The DOT text of a built drawing, wrapped after the `cuts` edges (--fit) and padded
    to height/width `ratio`."""
    import graphviz

    style, rankdir = builder.theme, builder.rankdir
    font = {"fontname": style.fontname}
    graph = graphviz.Digraph(
        name=builder.network.name,
        graph_attr={"rankdir": rankdir, "newrank": "true", "bgcolor": "white",
                    "nodesep": f"{style.nodesep:g}", "ranksep": f"{style.ranksep:g}",
                    "pad": "0.15", "labelloc": "t", "labeljust": "c", **caption, **font,
                    "fontsize": f"{style.fontsize:g}",
                    **({"ratio": f"{ratio:.4f}"} if ratio is not None else {})},
        node_attr={"shape": "box", "style": "filled,rounded", "color": "#444444",
                   "penwidth": f"{style.penwidth:g}", "margin": style.margin,
                   "height": "0.3", **font, "fontsize": f"{style.fontsize:g}"},
        edge_attr={"color": "#555555", "arrowsize": "0.6", "penwidth": f"{style.penwidth:g}",
                   **font, "fontsize": f"{style.small:g}", "fontcolor": "#333333"})

    def emit(target, cluster: _Cluster) -> None:
        for entry in cluster.entries:
            if entry[0] == "node":
                target.node(entry[1], **entry[2])
            elif entry[1].entries:
                sub = entry[1]
                with target.subgraph(name=sub.name) as inner:
                    inner.attr(style="filled,rounded", color="#9a9a9a",
                               penwidth=f"{style.penwidth:g}", margin=style.cluster_margin,
                               fontsize=f"{style.fontsize:g}", **sub.attrs)
                    emit(inner, sub)

    starts = {head: i for i, (_, heads) in enumerate(cuts, 1) for head in heads}
    emit(graph, _split(root, starts) if cuts else root)
    if builder.skips and rankdir == "TB":
        builder.rows(graph)
    if cuts:
        graph.body.append("\t{rank=same; " + " -> ".join(map(_quoted, ["input", *starts]))
                          + " [style=invis]}\n")
    ends = {tail for tail, _ in cuts}
    for tail, head, attrs in builder.edges:
        wrapped = {"constraint": "false"} if tail in ends else {}
        graph.edge(tail, head, **{**attrs, **wrapped})
    return graph.source


def _split(root: _Cluster, columns: dict[str, int]) -> _Cluster:
    """The drawing with each cluster cut into one part per column it spans (`columns`: the
    nodes --fit starts each column with, and its number): a cluster is a rectangle, so a
    stage that continues in the next column is drawn again there, with the same label."""
    top = _Cluster(root.name, root.attrs)
    parts: dict[tuple[str, int], _Cluster] = {}
    column = 0

    def place(cluster: _Cluster, outer: list[_Cluster]) -> None:
        nonlocal column
        for entry in cluster.entries:
            if entry[0] == "cluster":
                place(entry[1], [*outer, entry[1]])
                continue
            column = max(column, columns.get(entry[1], 0))
            target = top
            for original in outer:
                key = (original.name, column)
                if key not in parts:
                    count = sum(1 for name, _ in parts if name == original.name)
                    parts[key] = _Cluster(original.name + (f"~{count + 1}" if count else ""),
                                          dict(original.attrs), original.level)
                    target.entries.append(("cluster", parts[key]))
                target = parts[key]
            target.entries.append(entry)

    place(root, [])
    return top


# ---------------------------------------------------------------- --expand, --stats, --title


def block_calls(network: Network) -> list[Seq]:
    """Every block call of the network, in execution order (what --expand may open)."""
    return [s for s in iter_nodes(network.body) if isinstance(s, Seq) and s.block is not None]


def opened_paths(network: Network, names: Iterable[str]) -> frozenset[str]:
    """The block calls --expand opens: each named one (by module path, `layer2.0`), and the
    block calls around it, without which it would not be visible. Raises ArchError (E503)
    for a name that is no block call."""
    calls = {s.path for s in block_calls(network)}
    opened = set()
    for name in names:
        if name not in calls:
            raise ArchError([_not_a_block_call(network, name, sorted(calls))])
        parts = name.split(".")
        opened |= {p for i in range(1, len(parts) + 1)
                   if (p := ".".join(parts[:i])) in calls}
    return frozenset(opened)


def _not_a_block_call(network: Network, name: str, calls: list[str]) -> Diagnostic:
    layers = {layer.path for layer in network.layers()}
    what = "a layer, not a block call" if name in layers else "not a block call"
    near = difflib.get_close_matches(name, calls, n=3, cutoff=0.6)
    if near:
        hint = "did you mean " + ", ".join(f"`{p}`" for p in near) + "?"
    else:
        top = [p for p in calls if "." not in p][:8]
        hint = ("the names are module paths, as `archspec summary --depth N` lists them"
                + (": " + ", ".join(f"`{p}`" for p in top) if top else
                   f"; `{network.name}` calls no blocks"))
    return Diagnostic("E503", f"`{name}` is {what} of `{network.name}`, so --expand cannot "
                      "open it", None, hint=hint)


def _counts(nodes: list[Node]) -> tuple[int, int]:
    layers = [layer for node in nodes for layer in iter_layers(node)]
    return sum(la.params for la in layers), sum(la.macs for la in layers)


def _hover(path: str, what: str, nodes: list[Node]) -> str:
    """Three lines for a tooltip: what it is, its shapes, its exact counts."""
    params, macs = _counts(nodes)
    shapes = f"{shape_text(nodes[0].in_shape)} → {shape_text(nodes[-1].out_shape)}"
    return f"{path}: {what}\\n{shapes}\\n{params:,} params, {macs:,} MACs"


def _node_hover(nodes: list[Node]) -> str:
    first, last = nodes[0], nodes[-1]
    path = first.path if first is last else _range(first.path, last.path)
    if isinstance(first, Layer):
        return _hover(path, op_text(first), nodes)
    what = first.block.name if first.block is not None else "group"
    return _hover(path, what + (f" ×{len(nodes)}" if len(nodes) > 1 else ""), nodes)


def _annotate(builder: _Builder, stats: bool, tooltips: bool) -> None:
    """--stats: a line `1.2M params · 3.4G MACs` under each node that has either (numbers as
    `archspec summary` writes them); tooltips: each node's and cluster's hover text."""
    if not stats and not tooltips:
        return
    scopes = {s.path: s for s in iter_nodes(builder.network.body)
              if isinstance(s, Seq) and s.name is not None}
    for cluster in _clusters(builder.root):
        scope = scopes.get(cluster.name.removeprefix("cluster_"))
        if tooltips and scope is not None:
            what = scope.block.name if scope.block is not None else "group"
            cluster.attrs["tooltip"] = _hover(scope.path, what, [scope])
        for entry in cluster.entries:
            nodes = builder.drawn_as.get(entry[1]) if entry[0] == "node" else None
            if nodes is None:
                continue
            attrs, (params, macs) = entry[2], _counts(nodes)
            if stats and (params or macs):
                attrs["label"] = (attrs["label"][:-1] + f'<br/><font point-size='
                                  f'"{builder.theme.small:g}">{human(params)} params · '
                                  f'{human(macs)} MACs</font>>')
            if tooltips:
                attrs["tooltip"] = _node_hover(nodes)


def _clusters(cluster: _Cluster):
    yield cluster
    for entry in cluster.entries:
        if entry[0] == "cluster":
            yield from _clusters(entry[1])


def _caption(builder: _Builder, legend: bool, title: str | None) -> dict:
    """The graph's label: the title line and the legend, the title alone, or nothing."""
    if legend:
        return {"label": builder.legend(title)}
    if title:
        size = f"{builder.theme.title:g}"
        return {"label": f'<<font point-size="{size}"><b>{escape(title, quote=False)}'
                         '</b></font>>'}
    return {}


# ---------------------------------------------------------------- rendering and writing


def render(source: str, fmt: str, theme: str = "paper") -> bytes:
    """Run `dot -T<fmt>` on DOT source. Raises DotMissing or RenderError."""
    if fmt == "dot":
        return source.encode("utf-8")
    edges = source.count(" -> ")
    if edges > MAX_LAYOUT_EDGES:
        raise RenderError(f"the drawing has {edges:,} edges, more than the {MAX_LAYOUT_EDGES:,} "
                          "Graphviz lays out in reasonable time; write a .dot file (no layout is "
                          "run), or draw less (--depth 0 collapses block calls)")
    dot = shutil.which("dot")
    if dot is None:
        raise DotMissing(INSTALL_HINT)
    command = [dot, f"-T{fmt}"]
    if fmt == "png":
        command.append(f"-Gdpi={THEMES[theme].dpi}")
    try:
        done = subprocess.run(command, input=source.encode("utf-8"), capture_output=True,
                              timeout=RENDER_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise RenderError(f"dot took longer than {RENDER_TIMEOUT} s to lay out the drawing; "
                          "write a .dot file, or draw less (--depth 0)") from None
    except OSError as exc:
        raise RenderError(f"cannot run {dot}: {exc}") from None
    if done.returncode != 0 or not done.stdout:
        message = done.stderr.decode("utf-8", "replace").strip()
        raise RenderError(f"dot failed (exit {done.returncode}): {message}")
    return done.stdout


def output_format(path: str) -> str | None:
    suffix = os.path.splitext(path)[1].lower().lstrip(".")
    suffix = "dot" if suffix == "gv" else suffix
    return suffix if suffix in FORMATS else None


# ---------------------------------------------------------------- the command


# ---------------------------------------------------------------- one block, as papers draw it

# what a collapsed call inside a drawn block is named after: the ops that have a kernel or a
# width (its norms and activations are the block's name below them)
_MAIN_FAMILIES = ("conv", "pool", "linear", "recurrent")


def find_block(network: Network, name: str) -> Seq:
    """The scope `--block NAME` draws: the first call of block NAME in execution order, else
    the scope at module path NAME (`layer1.1`, `features.denseblock1`), else the first one
    labelled NAME. An unknown name is E201, with the nearest block or label as a hint."""
    scopes = [node for node in iter_nodes(network.body)
              if isinstance(node, Seq) and node.name is not None]
    for wanted in (lambda s: s.block is not None and s.block.name == name,
                   lambda s: s.path == name, lambda s: s.name == name):
        found = next(filter(wanted, scopes), None)
        if found is not None:
            return found
    blocks = sorted({s.block.name for s in scopes if s.block is not None})
    labels = [s.path for s in scopes if not _auto_named(s.name)]
    defined = name in network.namespace
    message = (f"block `{name}` is not called in `{network.name}`" if defined else
               f"`{network.name}` has no block or label `{name}`")
    hint = None if defined else did_you_mean(name, blocks + labels)
    raise ArchError([Diagnostic("E201", message, None, hint=hint or _names_hint(blocks, labels))])


def _names_hint(blocks: list[str], labels: list[str], shown: int = 8) -> str:
    """What --block could name instead: the blocks called, else some labelled scopes."""
    names, kind = (blocks, "blocks") if blocks else (labels, "labelled scopes")
    if not names:
        return "it has no block call and no labelled scope to draw on its own"
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"its {kind}: " + ", ".join(names[:shown]) + more


class _BlockBuilder(_Builder):
    """One scope drawn on its own, as a paper's figure of a module: "previous layer" on top,
    the layers titled by their op (`conv 1×1, 64`), nested block calls as one node named after
    their kernels and widths, labelled groups without a frame, concats as "filter
    concatenation" and a dense block as DenseNet's figure draws it (every layer fed by the
    input and by every layer before it)."""

    def __init__(self, network: Network, scope: Seq, depth: int, theme: Theme, shapes: bool,
                 rankdir: str = "TB"):
        super().__init__(network, depth, theme, shapes, rankdir)
        self.scope = scope

    def layer(self, layer: Layer, into: _Cluster, src: _Tensor) -> _Tensor:
        tensor = super().layer(layer, into, src)
        into.entries[-1][2]["label"] = _html(op_text(layer), None, self.theme.small, False)
        return tensor

    def collapsed(self, scopes: list[Seq], into: _Cluster, src: _Tensor) -> _Tensor:
        tensor = super().collapsed(scopes, into, src)
        first = scopes[0]
        main = [op_text(layer) for layer in iter_layers(first)
                if layer.op.family in _MAIN_FAMILIES]
        title = " → ".join(main) if 0 < len(main) <= 3 else summary(first)
        name = first.block.name if first.block is not None else first.name
        count = f" ×{len(scopes)}" if len(scopes) > 1 else ""
        into.entries[-1][2]["label"] = _html(title + count, name, self.theme.small, False)
        return tensor

    def cluster(self, scope: Seq, into: _Cluster, level: int, src: _Tensor,
                repeats: list[Node] = ()) -> _Tensor:
        if scope.block is not None:  # a nested call opened by --depth
            return super().cluster(scope, into, level, src, repeats)
        self.tensors[f"{scope.path}@input"] = src
        end = self.sequence(_items(scope), into, level, src, scope.path)
        self.tensors[scope.path] = end
        return end

    def merge_node(self, scope_path: str, kind: str, into: _Cluster, text: str | None = None,
                   suffix: str = "") -> str:
        if text is None and kind == "concat":
            text = "filter concatenation"
        return super().merge_node(scope_path, kind, into, text, suffix)

    def dense(self, node: DenseMerge, into: _Cluster, level: int, src: _Tensor,
              scope_path: str) -> _Tensor:
        """Layer k gets an edge from the input and from each layer before it; all of them go
        into one concatenation."""
        feeds = [src]
        for step in node.steps:
            first_edge = len(self.edges)
            out = self.sequence(_items(step), into, level, feeds[-1], scope_path)
            head = self.edges[first_edge][1] if len(self.edges) > first_edge else None
            for earlier in feeds[:-1] if head is not None else ():
                self.dense_edge(earlier, head)
            feeds.append(out)
        merge_id = self.merge_node(scope_path, "dense", into, "concatenation")
        for feed in feeds[:-1]:
            self.dense_edge(feed, merge_id)
        self.edge(feeds[-1], merge_id)
        return _Tensor(merge_id, node.out_shape)

    def dense_edge(self, earlier: _Tensor, head: str) -> None:
        """An edge from a layer (or the input) that is not the one just before: lighter, and
        left out of the ranking, so that the layers stay one column with the arcs beside."""
        self.edge(earlier, head)
        self.edges[-1][2].update({"color": "#8c8c8c", "constraint": "false"})

    def terminal(self, node_id: str, text: str) -> None:
        self.root.node(node_id, {"label": _html(text, None, self.theme.small, False),
                                 "shape": "box", "style": "rounded", "fillcolor": "white"})

    def build(self) -> _Cluster:
        scope = self.scope
        self.terminal("input", "previous layer")
        start = self.tensors[f"{scope.path}@input"] = _Tensor("input", scope.in_shape)
        end = self.sequence(_items(scope), self.root, 0, start, scope.path)
        self.terminal("output", "next layer")
        self.edge(end._replace(skip=False), "output")
        return self.root

    def legend(self, name: str | None = None) -> str:
        """The call (`inception3a = inception(c1=64, ...)`), its shapes and parameters;
        `name` (--title) in place of the call."""
        scope, t = self.scope, self.theme
        call = scope.path
        if scope.block is not None:
            args = ", ".join(f"{k}={_arg_text(v)}" for k, v in scope.block.args.items())
            call += f" = {scope.block.name}({args})"
        call = name or call
        params = sum(layer.params for layer in iter_layers(scope))
        facts = (f"in {self.network.name}: {shape_text(scope.in_shape)} → "
                 f"{shape_text(scope.out_shape)}, {params:,} params")
        return (f'<<font point-size="{t.title:g}"><b>{escape(call, quote=False)}</b></font>'
                f'<br/><font point-size="{t.small:g}">{escape(facts, quote=False)}</font>>')
