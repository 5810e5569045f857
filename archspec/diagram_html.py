"""The diagram as one self-contained HTML page whose blocks open and close on click.

A browser cannot run Graphviz, so every picture the page can show is drawn here, at build
time: the drawing as asked (`depth`), and for each block call the user can reach by
clicking, the same drawing with that block opened (`to_dot(expand=[path])`, which opens the
blocks around it too). Block calls are taken level by level (the top-level ones, then the
ones inside them, ...) while the page holds at most `max_states` pictures and
`max_bytes` of SVG: a level is added whole, or, the first only, cut where the limits are
reached. GoogLeNet and ResNet-50 stay under a megabyte. Each picture is an SVG in a `<template>`; a small
script shows one of them, opens the block whose node is clicked, closes the block whose
frame is clicked, and shows the tooltip Graphviz wrote for each node (shapes, params, MACs)
where the pointer is. The page loads nothing: no script, style, font or image from
anywhere (its Content-Security-Policy forbids it), so it works offline and from an e-mail.
"""

from __future__ import annotations

import re
from html import escape

from .diagram import block_calls, render, to_dot
from .ir import Network

MAX_STATES = 40  # pictures in one page, the one shown first included
MAX_BYTES = 1_500_000  # of SVG in one page: no further level is added beyond it


def reachable(network: Network, depth: int) -> list[list[str]]:
    """The block calls (module paths) closed at `depth` that a click can open, by nesting
    level, outermost first, each level in execution order."""
    calls = block_calls(network)
    paths = {s.path for s in calls}
    levels: dict[int, list[str]] = {}
    for scope in calls:
        parts = scope.path.split(".")
        level = sum(".".join(parts[:i]) in paths for i in range(1, len(parts)))
        if level >= depth:
            levels.setdefault(level, []).append(scope.path)
    return [levels[level] for level in sorted(levels)]


def to_html(network: Network, depth: int = 0, rankdir: str = "TB", theme: str = "paper",
            shapes: bool = True, *, stats: bool = False, legend: bool = True,
            title: str | None = None, max_states: int = MAX_STATES,
            max_bytes: int = MAX_BYTES, fit: str | None = "theme") -> str:
    """The page (see the module's docstring); `fit` wraps each picture as to_dot's does.
    Needs Graphviz's `dot`: raises diagram.DotMissing or diagram.RenderError as `render`
    does."""
    def picture(expand: list[str]) -> str:
        source = to_dot(network, depth, rankdir, theme, shapes, expand=expand, stats=stats,
                        legend=legend, title=title, tooltips=True, fit=fit)
        return bare_svg(render(source, "svg", theme).decode("utf-8"))

    pictures = {"": picture([])}
    for paths in reachable(network, depth):
        level = _level(paths, picture, max_states - len(pictures),
                       max_bytes - sum(map(len, pictures.values())))
        if len(pictures) > 1 and len(level) < len(paths):
            break  # later levels are added whole or not at all
        pictures.update(level)
        if len(level) < len(paths):
            break
    templates = "\n".join(f'<template data-state="{escape(key)}">{svg}</template>'
                          for key, svg in pictures.items())
    heading = escape(title or network.name, quote=False)
    return _PAGE.format(heading=heading, facts=escape(network.describe(), quote=False),
                        templates=templates, script=_SCRIPT, style=_STYLE)


def _level(paths: list[str], picture, room: int, budget: int) -> dict[str, str]:
    """Pictures of the first paths of a level that fit in `room` pictures and `budget`
    characters."""
    level: dict[str, str] = {}
    for path in paths[:room]:
        svg = picture([path])
        budget -= len(svg)
        if budget < 0:
            break
        level[path] = svg
    return level


def bare_svg(svg: str) -> str:
    """The <svg> element alone: no XML declaration, doctype or comments (the page is HTML)."""
    svg = svg[svg.index("<svg"):]
    return re.sub(r"<!--.*?-->\n?", "", svg, flags=re.DOTALL)


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0.8em; color: #222; background: #fff; }
header h1 { font-size: 1.2em; margin: 0 0 0.2em; }
header p { margin: 0.1em 0; color: #555; font-size: 0.9em; }
#view svg { max-width: 100%; height: auto; }
#view .openable, #view .closable > path, #view .closable > g { cursor: pointer; }
#view .openable:hover path, #view .openable:hover polygon { stroke: #1f78b4; }
#tip { position: absolute; pointer-events: none; white-space: pre-line; background: #fffff0;
       border: 1px solid #999; padding: 0.3em 0.5em; font-size: 0.85em;
       box-shadow: 1px 1px 3px #bbb; }
"""

# Graphviz writes each node as <g class="node"><title>ID</title><g><a xlink:title=TIP>...;
# the script moves ID and TIP into data-id and data-tip (so the browser shows no tooltip of
# its own), marks the nodes that open and the frames that close, and swaps pictures.
_SCRIPT = """
(function () {
  "use strict";
  var XLINK = "http://www.w3.org/1999/xlink";
  var pictures = {};
  document.querySelectorAll("template[data-state]").forEach(function (t) {
    pictures[t.dataset.state] = t;
  });
  var view = document.getElementById("view"), tip = document.getElementById("tip");
  var where = document.getElementById("where");

  function prepare(svg) {
    svg.querySelectorAll("g.node, g.cluster").forEach(function (g) {
      var title = g.querySelector(":scope > title"), link = g.querySelector("a");
      // a cluster wrapped by --fit into several parts: cluster_x, cluster_x~2, ...
      if (title) { g.dataset.id = title.textContent.replace(/~[0-9]+$/, ""); title.remove(); }
      if (link && link.hasAttributeNS(XLINK, "title")) {
        g.dataset.tip = link.getAttributeNS(XLINK, "title");
        link.removeAttributeNS(XLINK, "title");
      }
      var id = g.dataset.id || "";
      if (id.indexOf("S.") === 0 && id.slice(2) in pictures) g.classList.add("openable");
      if (id.indexOf("cluster_") === 0 && id.slice(8) in pictures) g.classList.add("closable");
    });
  }

  function show(state) {
    view.replaceChildren(pictures[state].content.cloneNode(true));
    prepare(view);
    view.dataset.state = state;
    tip.hidden = true;
    where.textContent = state ? "open: " + state + " (click its frame to close it)" :
      "click a grey block to open it; hover for shapes, params and MACs";
  }

  function around(path) {  // the picture shown once the block at `path` is closed
    var parts = path.split(".");
    while (parts.length > 1) {
      parts.pop();
      if (parts.join(".") in pictures) return parts.join(".");
    }
    return "";
  }

  view.addEventListener("click", function (event) {
    var node = event.target.closest("g.openable");
    if (node) { show(node.dataset.id.slice(2)); return; }
    var frame = event.target.closest("g.closable");
    if (frame) show(around(frame.dataset.id.slice(8)));
  });
  view.addEventListener("mousemove", function (event) {
    var item = event.target.closest("[data-tip]");
    if (!item) { tip.hidden = true; return; }
    tip.textContent = item.dataset.tip;
    tip.style.left = (event.pageX + 14) + "px";
    tip.style.top = (event.pageY + 14) + "px";
    tip.hidden = false;
  });
  view.addEventListener("mouseleave", function () { tip.hidden = true; });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") show("");
  });
  show("");
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; \
style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{heading}</title>
<style>{style}</style>
</head>
<body>
<header><h1>{heading}</h1><p>{facts}</p><p id="where"></p></header>
<div id="view"></div>
<div id="tip" hidden></div>
{templates}
<script>{script}</script>
</body>
</html>
"""
