"""`--fit W:H`: a long drawing wrapped into columns (rows with rankdir LR) so that its aspect
ratio lands near W:H, for a slide.

dot draws a chain as one tall column (GoogLeNet collapsed is about 1:3). The drawing is laid
out once by the real `dot -Tjson0` and read back: the chain may wrap between two ranks where
only the edges out of one node cross. k columns cut at the places nearest to equal parts of
the height; the cut edges stop constraining the ranks, the first node after them shares the
first rank with the input (`rank=same`, invisible flat edges keep the columns in order),
and a cluster cut is drawn as one part per column (diagram.py's `_split`). A few column
counts around the estimate are laid out and measured, and the one closest to W:H wins.
Where even that one is more than PAD_BEYOND off (a network too short to wrap, a U-Net wide
by its rows), Graphviz's `ratio` pads the layout to W:H.

Measuring needs `dot`: without it (or when it fails or takes too long) the drawing is left
as it is. The result is deterministic for one Graphviz version: the same DOT in, the same
layout and the same choice out.
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
import subprocess
from collections.abc import Callable
from typing import NamedTuple

SPLIT_COST = 0.2  # a cut through a cluster, in columns' heights (see cuts_for)
PAD_BEYOND = 0.10  # relative aspect error above which the best wrap is padded to W:H
PAD_CLOSE = 0.02  # ... and padded until this close, in at most PAD_ROUNDS layouts
PAD_ROUNDS = 3
MEASURE_TIMEOUT = 20  # seconds for one layout
MAX_MEASURED_EDGES = 1_500  # larger drawings are not measured (layout time)

Cut = tuple[str, tuple[str, ...]]  # the node a column ends with, the nodes the next starts with
Draw = Callable[[list[Cut], float | None], str]  # cuts, ratio (H/W) -> DOT source


def parse_fit(text: str) -> float | None:
    """`16:9` -> 16/9, `none` -> None. Raises ValueError for anything else."""
    if text.strip().lower() == "none":
        return None
    width, colon, height = text.partition(":")
    try:
        ratio = float(width) / float(height) if colon else math.nan
    except (ValueError, ZeroDivisionError):
        ratio = math.nan
    if not math.isfinite(ratio) or ratio <= 0 or float(width) <= 0:
        raise ValueError(f"expected W:H with positive numbers (16:9, 4:3) or `none`, "
                         f"got {text!r}")
    return ratio


class Layout(NamedTuple):
    """What `dot` made of a drawing: its aspect (width/height), each node's place along the
    ranks (growing down for TB, right for LR), the edges that constrain the ranking, the
    nodes of each cluster, and each node's place across the ranks."""

    aspect: float
    ranks: dict[str, float]
    edges: list[tuple[str, str]]
    clusters: list[set[str]]
    across: dict[str, float]  # each node's place across the ranks (left to right for TB)


def measure(source: str, rankdir: str) -> Layout | None:
    """Lay out `source` with `dot -Tjson0`; None without dot, or when it fails."""
    dot = shutil.which("dot")
    if dot is None or source.count(" -> ") > MAX_MEASURED_EDGES:
        return None
    try:
        done = subprocess.run([dot, "-Tjson0"], input=source.encode("utf-8"),
                              capture_output=True, timeout=MEASURE_TIMEOUT, check=False)
        graph = json.loads(done.stdout) if done.returncode == 0 else None
    except (subprocess.TimeoutExpired, OSError, ValueError):
        graph = None
    return None if graph is None else _read(graph, rankdir)


def _read(graph: dict, rankdir: str) -> Layout:
    x0, y0, x1, y1 = (float(v) for v in graph["bb"].split(","))
    objects = graph.get("objects", [])
    names = {o["_gvid"]: o["name"] for o in objects if "pos" in o}
    axis, sign = (0, 1.0) if rankdir == "LR" else (1, -1.0)
    ranks = {o["name"]: sign * float(o["pos"].split(",")[axis]) for o in objects if "pos" in o}
    edges = [(names[e["tail"]], names[e["head"]]) for e in graph.get("edges", [])
             if e.get("constraint") != "false" and e.get("style") != "invis"]
    clusters = [{names[i] for i in o.get("nodes", []) if i in names} for o in objects
                if o["name"].startswith("cluster") and "pos" not in o]
    across = {o["name"]: -sign * float(o["pos"].split(",")[1 - axis]) for o in objects
              if "pos" in o}
    return Layout((x1 - x0) / max(y1 - y0, 1e-9), ranks, edges, clusters, across)


def cut_places(layout: Layout) -> list[tuple[float, Cut]]:
    """Where the drawing may wrap: each gap between two ranks that only the edges out of one
    node cross (one tensor, read by a block and its shortcut), with that node and the nodes
    the next column starts with, in their order across. Not after the input, nor before an
    output: no column of one node."""
    ends = {name for name in layout.ranks if name == "input" or name.startswith("output")}
    levels = sorted(set(layout.ranks.values()))
    places = []
    for above, below in itertools.pairwise(levels):
        gap = (above + below) / 2
        crossing = [e for e in layout.edges
                    if layout.ranks[e[0]] < gap < layout.ranks[e[1]]]
        tails = {tail for tail, _ in crossing}
        heads = {head for _, head in crossing}
        if len(tails) == 1 and not (tails | heads) & ends:
            first = min(layout.ranks[h] for h in heads)  # a shortcut's add stays below
            starts = sorted((h for h in heads if layout.ranks[h] == first),
                            key=lambda h: (layout.across[h], h))
            places.append((gap, (crossing[0][0], tuple(starts))))
    return places


def cuts_for(places: list[tuple[float, Cut]], layout: Layout, columns: int) -> list[Cut]:
    """The places nearest to cutting the drawing into `columns` equal parts, where each
    cluster the cut goes through (drawn again in the next column) counts as SPLIT_COST of
    a column's height farther."""
    top, bottom = min(layout.ranks.values()), max(layout.ranks.values())
    column = (bottom - top) / columns
    chosen: list[tuple[float, Cut]] = []

    def cost(place: tuple[float, Cut], ideal: float) -> float:
        tail, heads = place[1]
        split = sum(1 for c in layout.clusters if tail in c and heads[0] in c)
        return abs(place[0] - ideal) + SPLIT_COST * column * split

    for i in range(1, columns):
        ideal = top + column * i
        free = [p for p in places if p not in chosen and (not chosen or p[0] > chosen[-1][0])]
        if free:
            chosen.append(min(free, key=lambda p: cost(p, ideal)))
    return [cut for _, cut in chosen]


def _error(aspect: float, target: float) -> float:
    return abs(math.log(aspect / target))


def fit(draw: Draw, target: float, rankdir: str) -> str:
    """The DOT source of the drawing wrapped to the aspect closest to `target` (W/H)."""
    plain = draw([], None)
    layout = measure(plain, rankdir)
    if layout is None:
        return plain
    places = cut_places(layout)
    # columns widen a TB drawing (aspect ~ k^2), rows heighten an LR one (~ 1/k^2)
    wider = rankdir != "LR"
    needed = target / layout.aspect if wider else layout.aspect / target
    best = (_error(layout.aspect, target), [])
    if needed > 1 and places:
        best = min(best, _search(draw, layout, places, target, rankdir, needed),
                   key=lambda b: b[0])
    if best[0] > math.log(1 + PAD_BEYOND):
        return _pad(draw, best[1], target, rankdir)
    return draw(best[1], None)


def _pad(draw: Draw, cuts: list[Cut], target: float, rankdir: str) -> str:
    """The drawing padded by Graphviz's `ratio` (height/width of the layout, without the
    title), corrected by what the title adds until the measured aspect is close."""
    ratio = 1 / target
    for _ in range(PAD_ROUNDS):
        source = draw(cuts, ratio)
        measured = measure(source, rankdir)
        if measured is None or _error(measured.aspect, target) < math.log(1 + PAD_CLOSE):
            break
        ratio = max(ratio + 1 / target - 1 / measured.aspect, 0.01)
    return source


def _search(draw: Draw, layout: Layout, places, target: float, rankdir: str,
            needed: float) -> tuple[float, list[Cut]]:
    """Measure column counts from the estimate outwards while the aspect gets closer."""
    most = len(places) + 1
    tried: dict[int, tuple[float, list[Cut]]] = {}

    def score(columns: int) -> float:
        if columns not in tried:
            cuts = cuts_for(places, layout, columns)
            measured = measure(draw(cuts, None), rankdir)
            tried[columns] = (math.inf if measured is None
                              else _error(measured.aspect, target), cuts)
        return tried[columns][0]

    start = min(most, max(2, round(math.sqrt(needed))))
    best = start
    for step in (1, -1):
        columns = start + step
        while 2 <= columns <= most and score(columns) < score(best):
            best, columns = columns, columns + step
    score(best)
    return tried[best]
