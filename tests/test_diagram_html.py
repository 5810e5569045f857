"""`archspec diagram --expand/--stats/--title/--no-legend/-o -` and the HTML page: checked
against the IR's block calls, `archspec summary`'s numbers, Graphviz's own SVG, an XML
parser, and a real headless Chromium (tests/devtools.py) that loads the page offline,
clicks a block open and closed, hovers a node and takes a screenshot."""

from __future__ import annotations

import os
import re
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
from devtools import Browser, find_chromium

import archspec
from archspec import diagram
from archspec.cli import main
from archspec.diagram_html import reachable, to_html
from archspec.ir import Layer, Merge, Seq, Side, children
from archspec.summary import human, summarize

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
CLUSTER = re.compile(r'subgraph "?cluster_([^" ]+)"? \{')


def load(spec: str, net: str) -> archspec.ir.Network:
    return archspec.load(str(SPECS / spec), net=net)


def call_paths(network) -> set[str]:
    return {s.path for s in diagram.block_calls(network)}


# ---------------------------------------------------------------- --expand


@pytest.mark.parametrize("spec, net, names", [
    ("resnet.arch", "resnet50", ["layer2.1", "layer4"]),
    ("resnet.arch", "resnet50", ["layer3.0"]),
    ("googlenet.arch", "googlenet", ["inception4a.branch2.1", "aux2"]),
])
def test_expand_opens_exactly_the_named_block_calls_and_those_around_them(spec, net, names):
    network = load(spec, net)
    calls = call_paths(network)
    wanted = {p for p in calls for name in names if name == p or name.startswith(p + ".")}
    clusters = set(CLUSTER.findall(diagram.to_dot(network, expand=names)))
    assert clusters & calls == wanted
    assert wanted - set(names)  # an ancestor was opened with each nested name


def test_expand_of_an_unknown_path_is_e503_with_the_nearest_paths(capsys):
    spec = str(SPECS / "resnet.arch")
    assert main(["diagram", spec, "--net", "resnet50", "--expand", "layer2.9", "-o", "-"]) == 1
    err = capsys.readouterr().err
    assert "error[E503]" in err and "`layer2.9`" in err and "`layer2.3`" in err
    assert "Traceback" not in err
    assert main(["diagram", spec, "--net", "resnet50", "--expand", "conv1", "-o", "-"]) == 1
    err = capsys.readouterr().err
    assert "is a layer, not a block call" in err and "`layer1`" in err


def test_expand_of_an_html_page_is_a_usage_error(tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["diagram", str(SPECS / "resnet.arch"), "--expand", "layer1", "-o",
                 str(out)]) == 2
    assert "--expand does not apply to an HTML page" in capsys.readouterr().err
    assert not out.exists()


# ---------------------------------------------------------------- --stats


def _stats(dot: str) -> dict[str, str]:
    """Node id -> the `params · MACs` line --stats wrote on it."""
    found = re.findall(r'^\s*"?([^"\s]+)"? \[label=<.*?>([^<>]* params · [^<>]* MACs)<',
                       dot, flags=re.MULTILINE)
    return dict(found)


@pytest.mark.parametrize("spec, net, depth", [
    ("resnet.arch", "resnet50", 0), ("resnet.arch", "resnet50", 1),
    ("googlenet.arch", "googlenet", 0), ("googlenet.arch", "googlenet", 1),
])
def test_stats_are_the_numbers_of_archspec_summary(spec, net, depth):
    """A node of a scope (or of N folded ones, `layer1.1-2` in the summary) shows the
    summary row's params and MACs, formatted as summary formats them."""
    network = load(spec, net)
    stats = _stats(diagram.to_dot(network, depth, stats=True))
    rows = summarize(network, depth=8).rows  # every level; nested groups count there
    checked = []
    for row in rows:
        first = re.sub(r"-\d+$", "", row.name)
        node = stats.get(f"S.{first}") or stats.get(f"L.{first}")
        if node is not None:
            assert node == f"{human(row.params)} params · {human(row.macs)} MACs", row.name
            checked.append(row)
    assert len(checked) >= 5
    assert any(row.count > 1 for row in checked) == (net == "resnet50" and depth > 0)


# ---------------------------------------------------------------- title, legend, stdout


def _svg_texts(source: str) -> list[str]:
    svg = diagram.render(source, "svg").decode("utf-8")
    ns = {"svg": "http://www.w3.org/2000/svg"}
    return ["".join(t.itertext()) for t in ET.fromstring(svg).iterfind(".//svg:text", ns)]


def test_title_and_no_legend_as_graphviz_draws_them():
    network = load("resnet.arch", "resnet18")
    plain = _svg_texts(diagram.to_dot(network))
    assert "resnet18" in plain and any("block (collapsed)" in t for t in plain)
    titled = _svg_texts(diagram.to_dot(network, title="ResNet-18 (He et al.)"))
    assert "ResNet-18 (He et al.)" in titled and "resnet18" not in titled
    bare = _svg_texts(diagram.to_dot(network, legend=False))
    assert not any("block (collapsed)" in t or "resnet18" in t for t in bare)
    assert set(bare) < set(plain)
    only_title = _svg_texts(diagram.to_dot(network, legend=False, title="Figure 3"))
    assert set(only_title) - set(bare) == {"Figure 3"}


def test_dash_writes_dot_to_stdout_and_format_picks_another(tmp_path, capfdbinary,
                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = str(SPECS / "lenet.arch")
    assert main(["diagram", spec, "-o", "-"]) == 0
    dot_text = capfdbinary.readouterr().out
    drawn = subprocess.run(["dot", "-Tsvg"], input=dot_text, capture_output=True, check=False)
    assert drawn.returncode == 0 and b"<svg" in drawn.stdout
    assert main(["diagram", spec, "--format", "svg", "-o", "-"]) == 0
    svg = capfdbinary.readouterr().out
    assert ET.fromstring(svg).tag == "{http://www.w3.org/2000/svg}svg"
    assert main(["diagram", spec, "--format", "png", "-o", "-"]) == 0
    assert capfdbinary.readouterr().out.startswith(b"\x89PNG\r\n\x1a\n")
    assert list(tmp_path.iterdir()) == []  # no file called `-`


# ---------------------------------------------------------------- the HTML page


class _Fetches(HTMLParser):
    """What a browser would load from a page: src/href attributes, links, CSS urls."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "srcset", "action", "poster", "data"):
                self.found.append(f"{tag} {name}={value}")

    def handle_data(self, data):
        self.found += re.findall(r"url\(|@import", data)


TINY = """
block basic(c: int, stride: int = 1) {
  add {
    { conv(c, k=3, s=stride, p=1, bias=false)  batchnorm  relu
      conv(c, k=3, p=1, bias=false)            batchnorm }
    downsample: if stride != 1 or in.c != c { conv(c, k=1, s=stride, bias=false)  batchnorm }
  }
  relu
}
block stage(c: int, stride: int) { basic(c, stride=stride)  basic(c) }
network tiny(classes: int = 10) {
  input [3, 32, 32]
  stem: conv(16, k=3, p=1)  relu
  layer1: stage(16, 1)
  layer2: stage(32, 2)
  global_avgpool  flatten
  fc: linear(classes)
}
"""


@pytest.fixture(scope="module")
def tiny_page() -> tuple[archspec.ir.Network, str]:
    network = archspec.loads(TINY)
    return network, to_html(network, stats=True)


def test_html_page_fetches_nothing(tiny_page):
    _, page = tiny_page
    parser = _Fetches()
    parser.feed(page)
    assert parser.found == [] and "link" not in parser.tags
    namespaces = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) <= namespaces
    assert "default-src 'none'" in page


def test_html_page_has_one_svg_per_block_a_click_can_open(tiny_page):
    network, page = tiny_page
    states = re.findall(r'<template data-state="([^"]*)">(.*?)</template>', page, re.DOTALL)
    keys = [key for key, _ in states]
    assert keys == ["", *[p for level in reachable(network, 0) for p in level]]
    assert set(keys[1:]) == call_paths(network)  # small enough for all of them
    for key, svg in states:
        root = ET.fromstring(svg)  # each picture is Graphviz's SVG, well formed
        titles = {"".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}title")}
        assert (f"cluster_{key}" in titles) == bool(key)


@pytest.mark.slow
def test_html_page_stays_small_for_large_networks():
    network = load("densenet.arch", "densenet121")
    page = to_html(network, max_states=12)
    assert page.count("<template") == 12
    assert len(to_html(network, max_bytes=400_000)) < 600_000


def _inner_nodes(scope) -> set[str]:
    """The node ids the diagram gives what is directly inside an opened block call: its
    layers and block calls, through labelled groups and merges (read from the IR)."""
    found = set()
    for child in children(scope):
        if isinstance(child, Layer):
            found.add("L." + child.path)
        elif isinstance(child, Seq) and child.block is not None:
            found.add("S." + child.path)
        elif isinstance(child, Seq | Merge | Side):
            found |= _inner_nodes(child)
    return found


CHROMIUM = find_chromium()

_CENTRE = """(() => {{
  const g = document.querySelector({selector});
  if (!g) return null;
  g.scrollIntoView({{block: "center"}});
  const r = g.getBoundingClientRect();
  return [r.x + r.width / 2, r.y + r.height / 2];
}})()"""
_VISIBLE = """[...document.querySelectorAll("#view [data-id]")]
  .filter(g => g.getBoundingClientRect().width > 0).map(g => g.dataset.id)"""


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (tools/install_chromium.sh)")
def test_chromium_opens_a_block_on_click_offline(tmp_path):
    network = load("googlenet.arch", "googlenet")
    page = tmp_path / "googlenet.html"
    page.write_text(to_html(network), encoding="utf-8")
    block = next(s for s in diagram.block_calls(network) if s.path == "inception3a")
    shots = Path(os.environ.get("ARCHSPEC_SCREENSHOTS", tmp_path))
    browser = Browser(CHROMIUM, str(tmp_path / "profile"))
    try:
        browser.open(page.as_uri())
        before = set(browser.evaluate(_VISIBLE))
        assert "S.inception3a" in before and not before & _inner_nodes(block)
        browser.click(*browser.evaluate(_CENTRE.format(
            selector="'#view g.node[data-id=\"S.inception3a\"]'")))
        after = set(browser.evaluate(_VISIBLE))
        inside = {i for i in after if i.startswith(("L.inception3a.", "S.inception3a."))}
        assert inside == _inner_nodes(block) and "cluster_inception3a" in after
        assert "S.inception3a" not in after and "S.inception3b" in after
        (shots / "googlenet_inception3a_open.png").write_bytes(browser.screenshot())

        layer = next(la for la in network.layers() if la.path == "inception3a.branch4.0")
        browser.mouse("mouseMoved", *browser.evaluate(_CENTRE.format(
            selector=f"'#view g.node[data-id=\"L.{layer.path}\"]'")))
        tip = browser.evaluate("document.getElementById('tip').hidden ? null : "
                               "document.getElementById('tip').innerText")
        assert tip is not None and layer.path in tip
        assert diagram.shape_text(layer.out_shape) in tip and f"{layer.macs:,} MACs" in tip

        browser.click(*browser.evaluate(_CENTRE.format(
            selector="'#view g.cluster[data-id=\"cluster_inception3a\"] text'")))
        assert set(browser.evaluate(_VISIBLE)) == before
        assert browser.requests == [page.as_uri()]  # the page itself, nothing else
    finally:
        browser.close()
