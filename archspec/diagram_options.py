"""What `archspec diagram` and draw() accept, apart from the drawing code (diagram.py):
themes, depths and aspect ratios. The command line reads these while it builds its parser,
for every command, so they must not cost the import of the drawing code."""

from __future__ import annotations

import argparse
from typing import NamedTuple

from .diagram_fit import parse_fit

ALL = 1_000_000  # --depth all


class Theme(NamedTuple):
    fontname: str
    fontsize: float  # node text
    small: float  # second lines, edge labels
    title: float
    nodesep: float
    ranksep: float
    penwidth: float
    margin: str  # node margin (inches)
    dpi: int  # PNG resolution
    cluster_fills: tuple
    cluster_margin: str  # points between a cluster's border and its nodes
    fit: str  # the aspect ratio --fit wraps to by default (W:H or none)


THEMES = {
    "paper": Theme("Times", 11, 9, 13, 0.18, 0.22, 0.8, "0.08,0.03", 150,
                   ("#f7f7f7", "#ececec"), "6", "none"),
    "slides": Theme("Helvetica", 18, 14, 22, 0.3, 0.35, 1.4, "0.14,0.06", 110,
                    ("#f5f5f5", "#e8e8e8"), "12", "16:9"),
}


def parse_depth(text: str) -> int:
    if text == "all":
        return ALL
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a depth >= 0 or `all`, got {text!r}")
    return value


def parse_fit_option(text: str) -> str:
    """--fit's value, checked (`16:9`, `4:3`, `none`); a usage error otherwise."""
    try:
        parse_fit(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def depth_text(depth: int) -> str:
    return "all" if depth >= ALL else str(depth)
