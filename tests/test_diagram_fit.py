"""`archspec diagram --fit W:H`, the kernel line of collapsed blocks, repeats folded inside
opened blocks and the slides theme's cluster margins.

Sizes and places come from the real Graphviz (`dot -Tjson0`: the bounding box of the whole
drawing, each node's centre and size, each cluster's box); what a node must say comes from
the checked IR (`net.layers()`, the scopes of the body)."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from checked_library import library_networks

import archspec
from archspec import diagram
from archspec.cli import main
from archspec.diagram_options import ALL
from archspec.ir import Seq, iter_layers, iter_nodes

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
TOLERANCE = 0.15  # the issue's "within 15%" of the target aspect ratio
ALL_NETWORKS = [(spec.name, network.name) for spec, network in library_networks()]
FAST = {("googlenet.arch", "googlenet")}

pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is missing")


def layout(source: str) -> dict:
    done = subprocess.run(["dot", "-Tjson0"], input=source.encode(), capture_output=True,
                          check=True, timeout=120)
    return json.loads(done.stdout)


def aspect(source: str) -> float:
    x0, y0, x1, y1 = (float(v) for v in layout(source)["bb"].split(","))
    return (x1 - x0) / (y1 - y0)


def load(spec: str, net: str):
    return archspec.load(str(SPECS / spec), net=net)


def within(measured: float, target: float) -> bool:
    return abs(measured / target - 1) <= TOLERANCE


def test_the_library_has_the_87_networks_the_issue_counts():
    assert len(ALL_NETWORKS) == 87


@pytest.mark.parametrize("spec, net", [
    pytest.param(*case, marks=() if case in FAST else pytest.mark.slow)
    for case in ALL_NETWORKS])
def test_slides_fit_lands_within_15_percent_of_16_9(spec, net):
    network = load(spec, net)
    assert within(aspect(diagram.to_dot(network, theme="slides")), 16 / 9)
    assert not within(aspect(diagram.to_dot(network, theme="slides", fit="none")), 16 / 9) \
        or net.startswith(("deeplabv3_mobilenet",))  # one drawing is 16:9 by itself


@pytest.mark.parametrize("spec, net, depth", [
    pytest.param("lenet.arch", "lenet", 0),
    pytest.param("resnet.arch", "resnet50", ALL, marks=pytest.mark.slow),
    pytest.param("vgg.arch", "vgg19_bn", 0, marks=pytest.mark.slow),
    pytest.param("unet.arch", "unet", 0, marks=pytest.mark.slow),
])
def test_fit_4_3_and_rankdir_lr(spec, net, depth):
    network = load(spec, net)
    assert within(aspect(diagram.to_dot(network, depth=depth, fit="4:3")), 4 / 3)
    assert within(aspect(diagram.to_dot(network, depth=depth, rankdir="LR", fit="16:9")),
                  16 / 9)


def drawn_graph(source: str) -> tuple[set, list]:
    """The nodes and the drawn edges (not the invisible ones) of a DOT text, by name."""
    graph = layout(source)
    names = {o["_gvid"]: o["name"] for o in graph["objects"] if "pos" in o}
    edges = sorted((names[e["tail"]], names[e["head"]]) for e in graph.get("edges", [])
                   if e.get("style") != "invis")
    return set(names.values()), edges


@pytest.mark.parametrize("spec, net, depth", [
    ("googlenet.arch", "googlenet", 0), ("resnet.arch", "resnet18", ALL)])
def test_wrapping_keeps_every_node_and_edge(spec, net, depth):
    network = load(spec, net)
    plain = diagram.to_dot(network, depth=depth, theme="slides", fit="none")
    wrapped = diagram.to_dot(network, depth=depth, theme="slides")
    assert "rank=same" in wrapped and "rank=same" not in plain
    assert drawn_graph(wrapped) == drawn_graph(plain)


def test_wrapped_dot_is_deterministic():
    first = diagram.to_dot(load("googlenet.arch", "googlenet"), theme="slides")
    assert diagram.to_dot(load("googlenet.arch", "googlenet"), theme="slides") == first


def test_paper_is_not_fitted_unless_asked_and_none_turns_slides_off():
    network = load("googlenet.arch", "googlenet")
    assert diagram.to_dot(network) == diagram.to_dot(network, fit=None)
    assert diagram.to_dot(network, fit="16:9") == diagram.to_dot(network, fit="32:18")
    assert "rank=same" not in diagram.to_dot(network, theme="slides", fit="none")


@pytest.mark.parametrize("value", ["16", "16:0", "0:9", "-4:3", "a:b", "16:9:1", ""])
def test_bad_fit_is_a_usage_error(value, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["diagram", str(SPECS / "lenet.arch"), "--fit", value, "-o", str(tmp_path / "a.dot")])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--fit" in err and "W:H" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_cli_fit_writes_the_fitted_drawing(tmp_path, capsys):
    out = tmp_path / "g.dot"
    assert main(["diagram", str(SPECS / "googlenet.arch"), "--fit", "4:3", "-o", str(out)]) == 0
    assert out.read_text() == diagram.to_dot(load("googlenet.arch", "googlenet"), fit="4:3")


def test_html_page_keeps_working_with_fit():
    from archspec.diagram_html import to_html

    page = to_html(load("resnet.arch", "resnet18"), theme="slides", fit="4:3", max_states=3)
    assert page.count("<template") == 3 and "S.layer1" in page


# ---------------------------------------------------------------- what collapsed blocks say


def kernel_sizes(scope: Seq) -> list[str]:
    sizes = []
    for layer in iter_layers(scope):
        if layer.op.family == "conv" and f"{layer.attrs['kernel'][0]}×{layer.attrs['kernel'][1]}" \
                not in sizes:
            sizes.append(f"{layer.attrs['kernel'][0]}×{layer.attrs['kernel'][1]}")
    return sizes


def node_lines(source: str, node: str) -> list[str]:
    label = re.search(rf'^\s*"{re.escape(node)}" \[label=<(.*)>', source, re.MULTILINE).group(1)
    return [re.sub(r"<[^>]+>", "", part) for part in label.split("<br/>")]


@pytest.mark.parametrize("net", ["googlenet", "googlenet_paper"])
def test_inception_nodes_list_the_kernel_sizes_of_their_convs(net):
    network = load("googlenet.arch", net)
    source = diagram.to_dot(network)
    calls = [s for s in iter_nodes(network.body) if isinstance(s, Seq) and s.block is not None
             and s.block.name == "inception"]
    assert len(calls) == 9
    for call in calls:
        line = node_lines(source, "S." + call.path)[-1].split()
        assert [w for w in line if re.fullmatch(r"\d+×\d+", w)] == kernel_sizes(call)
        assert line[-1] == f"×{call.out_shape[0]}"
    # the paper's 5×5 branch tells 3a apart from torchvision's, which has a 3×3 there
    assert ("5×5" in kernel_sizes(calls[0])) == (net == "googlenet_paper")


def test_a_strided_block_says_by_how_much_it_downsamples():
    network = load("resnet.arch", "resnet18")
    source = diagram.to_dot(network)
    for scope in network.body.children:
        if isinstance(scope, Seq) and scope.block is not None:
            strides = scope.in_shape[1] // scope.out_shape[1]
            line = node_lines(source, "S." + scope.path)[-1].split()
            assert (f"/{strides}" in line) == (strides > 1)


# ---------------------------------------------------------------- repeats inside opened blocks


def test_resnet50_opened_stages_fold_their_identical_bottlenecks():
    network = load("resnet.arch", "resnet50")
    collapsed = diagram.to_dot(network, depth=1)
    opened = diagram.to_dot(network, depth=ALL)
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        nodes = re.findall(rf'^\s*"S\.({stage}\.\d+)" \[label=<<b>(.*?)</b>', collapsed, re.MULTILINE)
        clusters = re.findall(rf'^\s*subgraph "cluster_({stage}\.\d+)" \{{', opened, re.MULTILINE)
        assert [path for path, _ in nodes] == clusters  # one cluster where one node was
        blocks = [b for b in network.body.children if isinstance(b, Seq) and b.path == stage]
        repeats = len(blocks[0].children) - 1  # all but the first (projecting) bottleneck
        assert nodes[1][1] == f"bottleneck ×{repeats}"
        assert f"bottleneck ×{repeats}" in opened.split(f'"cluster_{stage}.1" {{')[1][:900]


def test_folding_shrinks_resnet50_at_depth_all():
    """The cluster of `layerK.1` stands for layerK.1, layerK.2, ...: their layers are
    drawn once."""
    network = load("resnet.arch", "resnet50")
    source = diagram.to_dot(network, depth=ALL)
    drawn = set(re.findall(r'^\s*"L\.([^"]+)"', source, re.MULTILINE))
    folded = re.compile(r"layer\d\.([2-9]|\d\d+)\.")
    assert drawn == {la.path for la in network.layers() if not folded.match(la.path)}
    assert len(drawn) < 0.6 * sum(1 for _ in network.layers())  # 87 of 159


# ---------------------------------------------------------------- the slides theme's clusters

# Graphviz rounds a cluster's corners with a radius of 12 points (RBCONST in shapes.c): a
# node closer to the border than that can cut the rounded corner.
CORNER = 12


@pytest.mark.parametrize("spec, net, depth", [
    ("resnet.arch", "resnet18", 2), ("googlenet.arch", "googlenet", 1),
    pytest.param("densenet.arch", "densenet121", 1, marks=pytest.mark.slow)])
def test_slides_nodes_stay_inside_their_clusters(spec, net, depth):
    graph = layout(diagram.to_dot(load(spec, net), depth=depth, theme="slides"))
    objects, checked = graph["objects"], 0
    for cluster in (o for o in objects if o["name"].startswith("cluster") and "nodes" in o):
        x0, y0, x1, y1 = (float(v) for v in cluster["bb"].split(","))
        for node in (objects[i] for i in cluster["nodes"]):
            x, y = (float(v) for v in node["pos"].split(","))
            half_w, half_h = float(node["width"]) * 36, float(node["height"]) * 36
            clear = min(x - half_w - x0, x1 - x - half_w, y - half_h - y0, y1 - y - half_h)
            assert clear >= CORNER - 0.5, (cluster["name"], node["name"], clear)
            checked += 1
    assert checked > 20


# ---------------------------------------------------------------- the pictures of the docs


def docs_tool():
    spec = importlib.util.spec_from_file_location("draw_docs_images",
                                                  ROOT / "tools" / "draw_docs_images.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])  # IHDR: width, height


def test_every_picture_the_docs_show_is_committed_and_every_committed_one_is_shown():
    shown = set()
    for page, prefix in ((ROOT / "README.md", ""), *((d, "docs/") for d in
                                                     (ROOT / "docs").glob("*.md"))):
        for src in re.findall(r'src="([^"]+\.(?:png|svg))"', page.read_text(encoding="utf-8")):
            shown.add(str(Path(prefix + src)))
    committed = {f"docs/img/{p.name}" for p in (ROOT / "docs" / "img").glob("*.png")}
    assert shown == committed
    drawn = {image for _, image in docs_tool().commands(docs_tool().DOC.read_text())}
    assert drawn == committed


def docs_cases():
    tool = docs_tool()
    for args, image in tool.commands(tool.DOC.read_text(encoding="utf-8")):
        fast = image == "docs/img/googlenet_slides.png"
        yield pytest.param(args, image, id=image, marks=() if fast else pytest.mark.slow)


@pytest.mark.parametrize("args, image", list(docs_cases()))
def test_docs_commands_reproduce_the_committed_pictures(args, image, tmp_path, capsys):
    tool = docs_tool()
    (tmp_path / "tiny.arch").write_text(tool.tiny_spec(tool.DOC.read_text(encoding="utf-8")))
    out = tmp_path / "picture.png"
    assert tool.draw(args, out, tmp_path) == 0
    assert png_size(out.read_bytes()) == png_size((ROOT / image).read_bytes())
