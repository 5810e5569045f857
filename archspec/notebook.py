"""The checked network in Python and in Jupyter: `summarize`, `diff` and `draw` as the CLI's
`summary`, `diff` and `diagram` compute them, and the network's one-line repr and HTML view.

`__init__.py` attaches these to `Network` (the IR knows nothing of its backends). Nothing here
imports torch, and the tables and drawings are imported when first used, so `archspec check`
starts no slower; Graphviz's `dot` is optional: without it a view says how to install it.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from functools import cached_property
from html import escape
from typing import TYPE_CHECKING

from .ir import Network

if TYPE_CHECKING:
    from .summary import Diff, Summary

COUNTS = ("macs", "all")


def network_repr(network: Network) -> str:
    """One line (the dataclass's own repr of a ResNet-50 is a million characters)."""
    from .summary import human

    macs = re.sub(r"(\d)([KMG]?)$", r"\1 \2", human(int(network.macs)))
    at = ""
    if network.sizes is not None:
        at = " at " + ", ".join(f"{name}={size}" for name, size in network.sizes.witness.items())
    return (f"<Network {network.name} {network.describe()}, {network.params:,} params, "
            f"{macs}MACs{at}>")


def network_html(network: Network) -> str:
    """Jupyter's view: the summary table, then the collapsed diagram (or, without Graphviz,
    how to install it)."""
    return summarize(network)._repr_html_() + draw(network)._repr_html_()


def summarize(network: Network, depth: int | None = 1, batch: int = 1,
              count: str = "macs") -> Summary:
    """`archspec summary`'s rows and totals: rows down to `depth` (None: every level),
    counts for `batch` samples, FLOPs as 2 x MACs (`count="macs"`) or of every op
    (`count="all"`). Its str is the text table; Jupyter shows it as HTML."""
    from .summary import summarize as tabulate

    _require_network(network, "summarize")
    if count not in COUNTS:
        raise ValueError(f"count is one of {', '.join(map(repr, COUNTS))}, not {count!r}")
    if (depth is not None and depth < 1) or batch < 1:
        raise ValueError("depth (or None) and batch are at least 1")
    return tabulate(network, sys.maxsize if depth is None else depth, batch, count == "all")


def diff(a: Network, b: Network, label_a: str | None = None,
         label_b: str | None = None) -> Diff:
    """`archspec diff`: two networks stage by stage (their depth-1 rows), with deltas,
    labelled with their names unless `label_a`/`label_b` are given."""
    from .summary import Diff
    from .summary import summarize as tabulate

    _require_network(a, "diff")
    _require_network(b, "diff")
    return Diff(tabulate(a), tabulate(b), label_a or a.name, label_b or b.name)


def draw(network: Network, depth: int | None = 0, rankdir: str = "TB", theme: str = "paper",
         shapes: bool = True, block: str | None = None, *, expand: Iterable[str] = (),
         stats: bool = False, legend: bool = True, title: str | None = None,
         fit: str | None = "theme") -> Drawing:
    """`archspec diagram`: block calls opened `depth` levels deep (None: all), the options
    as the command's (docs/diagrams.md; `fit="16:9"` is `--fit 16:9`, "theme" the theme's
    default, None none). Jupyter shows the SVG; `.save(path)` writes a file."""
    from .diagram import to_dot
    from .diagram_options import ALL, THEMES

    _require_network(network, "draw")
    if theme not in THEMES:
        raise ValueError(f"theme is one of {', '.join(map(repr, sorted(THEMES)))}, not "
                         f"{theme!r}")
    if depth is not None and depth < 0:
        raise ValueError("depth is at least 0 (or None: every level)")
    source = to_dot(network, ALL if depth is None else depth, rankdir, theme, shapes, block,
                    expand=expand, stats=stats, legend=legend, title=title, fit=fit)
    return Drawing(network.name, source, theme)


class Drawing:
    """A network's diagram: its DOT source, laid out by Graphviz once, when first shown."""

    def __init__(self, name: str, source: str, theme: str):
        self.name, self.source, self.theme = name, source, theme

    def __repr__(self) -> str:
        return f"<Drawing of {self.name}: {len(self.source):,} characters of DOT>"

    @cached_property
    def _svg_or_error(self) -> str | Exception:
        from .diagram import DotMissing, RenderError, render

        try:
            return render(self.source, "svg", self.theme).decode("utf-8")
        except DotMissing:
            return _dot_missing("there is no diagram")
        except RenderError as exc:
            return exc

    def svg(self) -> str:
        """The SVG text. Raises diagram.DotMissing without Graphviz's `dot`."""
        drawn = self._svg_or_error
        if isinstance(drawn, Exception):
            raise drawn
        return drawn

    def _repr_svg_(self) -> str | None:
        drawn = self._svg_or_error
        return None if isinstance(drawn, Exception) else drawn

    def _repr_html_(self) -> str:
        """The <svg> inline, or a line saying why there is none."""
        from .diagram_html import bare_svg

        drawn = self._svg_or_error
        if isinstance(drawn, Exception):
            return f"<p>{escape(str(drawn))}</p>\n"
        return bare_svg(drawn) + "\n"

    def save(self, path: str | os.PathLike) -> None:
        """Write the drawing, in the format of the suffix (.svg, .png, .pdf or .dot),
        atomically as `archspec diagram -o` does. Raises diagram.DotMissing without `dot`
        (but for .dot)."""
        from .diagram import DotMissing, output_format, render
        from .output import write_atomic

        target = os.fspath(path)
        fmt = output_format(target)
        if fmt is None:
            raise ValueError(f"cannot tell the format of {target!r}: use a .svg, .png, .pdf or "
                             ".dot file")
        try:
            data = render(self.source, fmt, self.theme)
        except DotMissing:
            raise _dot_missing(f"{target} was not written (a .dot file needs no dot)") from None
        write_atomic(target, data)


def _dot_missing(consequence: str) -> Exception:
    """diagram.DotMissing that says what did not happen, and how to install Graphviz."""
    from .diagram import INSTALL_HINT, DotMissing

    return DotMissing(f"Graphviz's `dot` was not found, so {consequence}; {INSTALL_HINT}")


def _require_network(value: object, function: str) -> None:
    if not isinstance(value, Network):
        raise TypeError(f"{function}() takes checked networks, from archspec.load(path, "
                        f"net=...), not {type(value).__name__}")
