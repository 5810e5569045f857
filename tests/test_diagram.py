"""`archspec diagram`: the DOT structure of the library's networks (nodes, edges, merges,
shape labels, cluster nesting), determinism, the missing-Graphviz path, atomic writes, and
real rendering with Graphviz's `dot` (the test setup installs Graphviz)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import archspec
from archspec import diagram
from archspec.cli import main
from archspec.diagram_options import ALL
from archspec.ir import Layer, Seq, iter_nodes
from archspec.ops import fmt_shape

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
ID = r'("[^"]*"|\w+)'


class Dot:
    """The parts of a DOT file that the drawing is made of, read back from its text."""

    def __init__(self, source: str):
        self.source = source
        self.nodes: dict[str, dict] = {}  # id -> {"attrs": text, "clusters": (outer..inner)}
        self.edges: list[tuple[str, str, str | None]] = []  # tail, head, label
        self.clusters: dict[str, str | None] = {}  # name -> enclosing cluster
        stack: list[str] = []
        for line in source.splitlines():
            text = line.strip()
            if match := re.fullmatch(rf"subgraph {ID} \{{", text):
                name = match.group(1).strip('"')
                self.clusters[name] = stack[-1] if stack else None
                stack.append(name)
            elif text == "}":
                if stack:
                    stack.pop()
            elif match := re.fullmatch(rf"{ID} -> {ID}(?: \[(.*)\])?", text):
                label = re.search(r'label=" ?([^"]*?) ?"', match.group(3) or "")
                self.edges.append((match.group(1).strip('"'), match.group(2).strip('"'),
                                   label.group(1) if label else None))
            elif (match := re.fullmatch(rf"{ID} \[(.*)\]", text)) and \
                    match.group(1) not in ("graph", "node", "edge"):
                self.nodes[match.group(1).strip('"')] = {"attrs": match.group(2),
                                                         "clusters": tuple(stack)}
        assert not stack, "unbalanced subgraphs"

    def label(self, node: str) -> str:
        return self.nodes[node]["attrs"]

    def ids(self, prefix: str) -> list[str]:
        return [n for n in self.nodes if n.startswith(prefix)]

    def into(self, node: str) -> list[tuple[str, str | None]]:
        return [(tail, label) for tail, head, label in self.edges if head == node]

    def out_of(self, node: str) -> list[tuple[str, str | None]]:
        return [(head, label) for tail, head, label in self.edges if tail == node]

    def in_cluster(self, cluster: str) -> list[str]:
        """Nodes directly in `cluster`."""
        return [n for n, v in self.nodes.items() if v["clusters"][-1:] == (cluster,)]


def draw(spec: str, net: str | None = None, **options) -> tuple[Dot, archspec.ir.Network]:
    network = archspec.load(str(SPECS / spec), net=net)
    return Dot(diagram.to_dot(network, **options)), network


def shape(s) -> str:
    return fmt_shape(s).replace("x", "×")


def calls(seq: Seq, block: str) -> list[Seq]:
    return [c for c in seq.children if isinstance(c, Seq) and c.block is not None
            and c.block.name == block]


# ---------------------------------------------------------------- structure


def test_googlenet_collapsed_is_a_chain_with_nine_inception_nodes():
    dot, net = draw("googlenet.arch", "googlenet_no_aux")
    inceptions = calls(net.body, "inception")
    assert len(inceptions) == 9
    assert [n for n in dot.nodes if "inception:" in dot.label(n)] == \
        [f"S.{c.path}" for c in inceptions]
    # One node per statement of the network, plus input and output; a plain chain.
    assert len(dot.nodes) == len(net.body.children) + 2 == 22
    assert len(dot.edges) == len(dot.nodes) - 1
    assert not dot.clusters and not dot.ids("M.")
    # The branch widths of each inception, and the shapes on the edges between them.
    assert "inception: concat 64+128+32+32" in dot.label("S.inception3a")
    assert dot.into("S.inception3a") == [("L.maxpool2", "192×28×28")]
    for statement in net.body.children:
        node = ("S." if isinstance(statement, Seq) else "L.") + statement.path
        assert dot.into(node)[0][1] == shape(statement.in_shape)
    assert dot.into("output") == [("L.fc", "1000")]
    assert "3×224×224" in dot.label("input") and "1000" in dot.label("output")


def test_googlenet_expanded_draws_concat_merges_in_nested_clusters():
    dot, net = draw("googlenet.arch", "googlenet_no_aux", depth=1)
    concats = dot.ids("M.")
    assert len(concats) == 9 and all("concat" in dot.label(m) for m in concats)
    for merge in concats:
        assert [label for _, label in dot.into(merge)] == [
            shape(b.out_shape) for b in next(
                c for c in calls(net.body, "inception")
                if merge.startswith(f"M.{c.path}/")).children[0].branches]
    assert dot.clusters["cluster_inception3a.branch2"] == "cluster_inception3a"
    assert dot.clusters["cluster_inception3a"] is None
    # Units inside are collapsed at depth 1; the 1x1 branch goes straight to the concat.
    assert dot.into("M.inception3a/concat1")[0][0] == "S.inception3a.branch1"
    assert dot.in_cluster("cluster_inception3a.branch4") == [
        "L.inception3a.branch4.0", "S.inception3a.branch4.1"]


def test_resnet18_collapsed_has_four_stage_nodes_of_two_blocks():
    dot, net = draw("resnet.arch", "resnet18")
    stages = dot.ids("S.")
    assert stages == ["S.layer1", "S.layer2", "S.layer3", "S.layer4"]
    for node in stages:
        assert "stage: basic ×2" in dot.label(node)
    assert "/2" not in dot.label("S.layer1") and " /2 " in dot.label("S.layer2")
    assert len(dot.nodes) == len(net.body.children) + 2 == 13
    assert len(dot.edges) == 12 and not dot.clusters
    assert [label for _, _, label in dot.edges[4:9]] == [
        "64×56×56", "64×56×56", "128×28×28", "256×14×14", "512×7×7"]


def test_resnet18_one_level_folds_identical_blocks_into_xn_nodes():
    dot, _ = draw("resnet.arch", "resnet18", depth=1)
    assert dot.clusters == {f"cluster_layer{i}": None for i in range(1, 5)}
    # layer1's two blocks are the same: one node. Later stages start with a projection.
    assert dot.in_cluster("cluster_layer1") == ["S.layer1.0"]
    assert "basic ×2" in dot.label("S.layer1.0")
    for i in (2, 3, 4):
        assert dot.in_cluster(f"cluster_layer{i}") == [f"S.layer{i}.0", f"S.layer{i}.1"]
        assert "residual add, projection<" in dot.label(f"S.layer{i}.0")
        assert " /2 " in dot.label(f"S.layer{i}.0")
        assert "basic ×2" not in dot.label(f"S.layer{i}.1")
    assert dot.into("S.layer2.1") == [("S.layer2.0", "128×28×28")]
    assert not dot.ids("M.")


def test_resnet18_two_levels_draws_residual_adds_and_shortcuts():
    dot, net = draw("resnet.arch", "resnet18", depth=2)
    adds = dot.ids("M.")  # layer1's two identical blocks are one cluster, `basic ×2`
    assert len(adds) == 7 and all("shape=circle" in dot.label(a) and 'label="+"' in
                                  dot.label(a) for a in adds)
    assert all(len(dot.into(a)) == 2 for a in adds)
    # Three levels of clusters: stage > block > downsample.
    assert dot.clusters["cluster_layer2.0"] == "cluster_layer2"
    assert dot.clusters["cluster_layer2.0.downsample"] == "cluster_layer2.0"
    assert len([c for c in dot.clusters if c.endswith(".downsample")]) == 3
    assert dot.nodes["L.layer2.0.downsample.0"]["clusters"] == (
        "cluster_layer2", "cluster_layer2.0", "cluster_layer2.0.downsample")
    # An identity shortcut is an edge from the block's input to its add.
    assert dot.into("M.layer1.0/add1") == [("L.layer1.0.bn2", "64×56×56"),
                                           ("L.maxpool", None)]
    assert dot.into("M.layer2.0/add1") == [("L.layer2.0.bn2", "128×28×28"),
                                           ("L.layer2.0.downsample.1", "128×28×28")]
    layers = [la for la in net.layers() if not la.path.startswith("layer1.1.")]
    assert len(dot.ids("L.")) == len(layers)


def test_densenet121_collapsed_draws_each_dense_block_as_a_dense_concat():
    dot, _ = draw("densenet.arch", "densenet121")
    assert dot.clusters == {"cluster_features": None,
                            **{f"cluster_features.denseblock{i}": "cluster_features"
                               for i in range(1, 5)}}
    merges = dot.ids("M.")
    assert len(merges) == 4
    for i, n in enumerate([6, 12, 24, 16], start=1):
        block = f"cluster_features.denseblock{i}"
        step, merge = dot.in_cluster(block)
        assert f"dense_layer ×{n}" in dot.label(step)
        assert f"denselayer1–{n}" in dot.label(step)
        assert merge in merges and f"dense concat ×{n}" in dot.label(merge)
        assert len(dot.into(merge)) == 2  # the layers' outputs and the block's input
        assert [tail for tail, _ in dot.into(merge)] == [dot.into(step)[0][0], step]
    assert dot.ids("S.features.transition") == [f"S.features.transition{i}" for i in (1, 2, 3)]
    assert dot.into("S.features.denseblock1.denselayer1") == [("L.features.pool0",
                                                               "64…224×56×56")]
    assert dot.out_of("S.features.denseblock1.denselayer1") == [
        ("M.features.denseblock1/dense1", "32×56×56 each")]
    assert dot.out_of("M.features.denseblock1/dense1") == [
        ("S.features.transition1", "256×56×56")]


def test_densenet121_expanded_chains_one_concat_per_layer():
    dot, _ = draw("densenet.arch", "densenet121", depth=1)
    merges = dot.ids("M.")
    assert len(merges) == 6 + 12 + 24 + 16
    assert all(len(dot.into(m)) == 2 and "dense concat" in dot.label(m) for m in merges)
    assert dot.clusters["cluster_features.denseblock1.denselayer1"] == \
        "cluster_features.denseblock1"
    # Layer k reads the concat of the input and layers 0..k-1 and adds 32 channels.
    assert dot.into("L.features.denseblock1.denselayer2.norm1") == [
        ("M.features.denseblock1/dense1", "96×56×56")]


def test_lenet_fully_expanded_is_every_layer_with_every_shape():
    dot, net = draw("lenet.arch", "lenet", depth=ALL)
    layers = list(net.layers())
    assert list(dot.nodes) == ["input"] + [f"L.{x.path}" for x in layers] + ["output"]
    assert [label for _, _, label in dot.edges] == (
        [shape(x.in_shape) for x in layers] + [shape(net.output_shape)])
    assert [label for _, _, label in dot.edges][:4] == ["1×28×28", "6×28×28", "6×28×28",
                                                         "6×14×14"]
    assert "conv 5×5, 6" in dot.label("L.0") and "avgpool 2×2, /2" in dot.label("L.2")
    assert 'fillcolor="#a6cee3"' in dot.label("L.0")  # conv
    assert "legend" not in dot.nodes and ">conv  <" in dot.source and ">pool  <" in dot.source


def test_options_theme_rankdir_and_no_shapes():
    network = archspec.load(str(SPECS / "lenet.arch"))
    plain = diagram.to_dot(network)
    assert "rankdir=TB" in plain and "fontname=Times" in plain
    assert "rankdir=LR" in diagram.to_dot(network, rankdir="LR")
    slides = diagram.to_dot(network, theme="slides")
    assert "fontname=Helvetica" in slides and "fontsize=18" in slides
    bare = Dot(diagram.to_dot(network, shapes=False))
    assert bare.edges and all(label is None for _, _, label in bare.edges)
    assert "1×28×28" in bare.label("input")  # input and output keep their shapes
    with pytest.raises(ValueError):
        diagram.to_dot(network, rankdir="BT")


@pytest.mark.slow
def test_every_library_network_draws_at_every_depth():
    for spec in sorted(SPECS.glob("*.arch")):
        for network in archspec.check_file(str(spec)).networks:
            for depth in (0, 1, ALL):
                dot = Dot(diagram.to_dot(network, depth=depth))
                ids = [n for n in dot.nodes]
                assert len(ids) == len(set(ids))
                for tail, head, _ in dot.edges:
                    assert tail in dot.nodes and head in dot.nodes, (spec, depth, tail, head)
                if depth == ALL:
                    check_every_layer_drawn_or_folded(network, dot)


def check_every_layer_drawn_or_folded(network, dot: Dot) -> None:
    """Opened all the way, each layer is a node, unless its block call is one of the
    identical calls after one drawn as a cluster marked ×N (`layer1.1–2  bottleneck ×2`)."""
    paths = {x.path for x in network.layers() if isinstance(x, Layer)}
    drawn = {node[2:] for node in dot.ids("L.")}
    assert drawn <= paths
    folded = re.findall(r'subgraph "?cluster_([^"\s]+)"? \{\n[^\n]*label=<[^\n]*? ×(\d+)</font>',
                        dot.source)
    scopes = [s.path for s in iter_nodes(network.body) if isinstance(s, Seq) and s.name]
    covered = []
    for first, count in folded:
        siblings = [p for p in scopes if p.rpartition(".")[0] == first.rpartition(".")[0]]
        at = siblings.index(first)
        covered += siblings[at + 1:at + int(count)]
    for path in paths - drawn:
        assert any(path.startswith(c + ".") for c in covered), path


def test_helpers():
    assert diagram._range("denselayer1", "denselayer12") == "denselayer1–12"
    assert diagram._range("0", "3") == "0–3"
    assert diagram.shape_text((64, 56, 56)) == "64×56×56" and diagram.shape_text((10,)) == "10"
    assert [diagram.output_format(p) for p in ("a.SVG", "b.png", "c.pdf", "d.gv", "e.jpg")] \
        == ["svg", "png", "pdf", "dot", None]


# ---------------------------------------------------------------- determinism


@pytest.mark.slow
@pytest.mark.parametrize("theme", ["paper", "slides"])  # slides: wrapped by --fit 16:9
def test_dot_output_is_deterministic_across_runs_and_hash_seeds(tmp_path, theme):
    network = archspec.load(str(SPECS / "googlenet.arch"))
    first = diagram.to_dot(network, depth=2, theme=theme)
    assert first == diagram.to_dot(archspec.load(str(SPECS / "googlenet.arch")), depth=2,
                                   theme=theme)
    assert not re.search(r"0x[0-9a-f]{6,}", first)
    assert ("rank=same" in first) == (theme == "slides")
    outputs = []
    for seed in ("0", "4242"):
        out = tmp_path / f"g{seed}.dot"
        env = dict(os.environ, PYTHONHASHSEED=seed)
        done = subprocess.run([sys.executable, "-m", "archspec", "diagram",
                               str(SPECS / "googlenet.arch"), "--depth", "2", "--theme", theme,
                               "-o", str(out)],
                              env=env, capture_output=True, text=True, cwd=ROOT, check=False)
        assert done.returncode == 0, done.stderr
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] == first.encode("utf-8")


def test_static_path_imports_neither_torch_nor_graphviz():
    code = ("import sys, archspec\n"
            "from archspec.cli import main\n"
            "main(['check', '-q', 'specs/lenet.arch'])\n"
            "assert 'graphviz' not in sys.modules, 'check imported graphviz'\n"
            "from archspec import diagram\n"
            "diagram.to_dot(archspec.load('specs/densenet.arch', net='densenet121'))\n"
            "assert 'torch' not in sys.modules, 'diagram imported torch'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------- the command


@pytest.fixture
def no_dot(monkeypatch):
    real = shutil.which
    monkeypatch.setattr(shutil, "which",
                        lambda name, *a, **k: None if name == "dot" else real(name, *a, **k))


def test_missing_dot_writes_dot_source_and_exits_2_for_images(tmp_path, no_dot, capsys):
    out = tmp_path / "net.svg"
    assert main(["diagram", str(SPECS / "lenet.arch"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "`dot` was not found" in err and "apt-get install graphviz" in err
    assert f"dot -Tsvg {tmp_path / 'net.dot'} -o {out}" in err
    assert not out.exists()
    assert (tmp_path / "net.dot").read_text().startswith("digraph lenet {")


def test_missing_dot_is_fine_for_dot_output(tmp_path, no_dot, capsys):
    out = tmp_path / "net.dot"
    assert main(["diagram", str(SPECS / "lenet.arch"), "-o", str(out)]) == 0
    assert "install Graphviz" in capsys.readouterr().err
    assert out.read_text() == diagram.to_dot(archspec.load(str(SPECS / "lenet.arch")))


def test_errors_leave_an_existing_file_untouched(tmp_path, monkeypatch, capsys):
    out = tmp_path / "net.svg"
    out.write_text("old")
    bad = tmp_path / "bad.arch"
    bad.write_text("network n() {\n  input [3, 8, 8]\n  linear(10)\n}\n")
    assert main(["diagram", str(bad), "-o", str(out)]) == 1
    assert "E307" in capsys.readouterr().err

    def failing(*args, **kwargs):
        raise diagram.RenderError("dot failed (exit 1): boom")

    monkeypatch.setattr(diagram, "render", failing)
    assert main(["diagram", str(SPECS / "lenet.arch"), "-o", str(out)]) == 2
    assert "boom" in capsys.readouterr().err
    monkeypatch.undo()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    assert main(["diagram", str(SPECS / "lenet.arch"), "-o", str(tmp_path / "net.dot")]) == 2
    assert "No space left" in capsys.readouterr().err
    monkeypatch.undo()
    assert out.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.arch", "net.svg"]


def test_usage_errors(tmp_path, capsys):
    assert main(["diagram", str(SPECS / "lenet.arch"), "-o", str(tmp_path / "x.jpg")]) == 2
    assert "use a .svg, .png, .pdf, .dot or .html file" in capsys.readouterr().err
    assert main(["diagram", str(tmp_path / "missing.arch"), "-o", str(tmp_path / "x.dot")]) == 2
    assert main(["diagram", str(SPECS / "lenet.arch"), "--net", "nope",
                 "-o", str(tmp_path / "x.dot")]) == 1
    for bad in (["--depth", "-1"], ["--depth", "deep"], ["--rankdir", "BT"],
                ["--theme", "poster"], ["--expand", "layer1,"], ["--format", "jpg"], []):
        with pytest.raises(SystemExit) as info:
            main(["diagram", str(SPECS / "lenet.arch")] + bad +
                 (["-o", str(tmp_path / "x.dot")] if bad else []))
        assert info.value.code == 2
    assert not list(tmp_path.iterdir())


def test_depth_and_net_and_input_options(tmp_path, capsys):
    out = tmp_path / "r.dot"
    assert main(["diagram", str(SPECS / "resnet.arch"), "--net", "resnet50", "--depth", "all",
                 "--input", "3,64,64", "-o", str(out)]) == 0
    assert "resnet50 (dot, depth all)" in capsys.readouterr().err
    dot = Dot(out.read_text())
    assert "3×64×64" in dot.label("input")
    # each stage: its first bottleneck (a projection) and one cluster for the identical rest
    assert len(dot.ids("M.")) == 4 * 2


# ---------------------------------------------------------------- real rendering


@pytest.fixture
def dot_program():
    path = shutil.which("dot")
    assert path, ("Graphviz's `dot` is needed for these tests: apt-get install graphviz "
                  "(.ci/run installs it)")
    return path


def test_dot_renders_svg_png_and_pdf(tmp_path, dot_program, capsys):
    spec = str(SPECS / "googlenet.arch")
    svg, png, pdf = tmp_path / "g.svg", tmp_path / "g.png", tmp_path / "g.pdf"
    assert main(["diagram", spec, "--depth", "1", "-o", str(svg)]) == 0
    text = svg.read_text()
    assert text.startswith("<?xml") and "<svg" in text and "inception3a" in text
    assert "192×28×28" in text and text.count("<g id=\"clust") >= 9
    assert main(["diagram", spec, "--theme", "slides", "--rankdir", "LR", "-o", str(png)]) == 0
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > height > 100  # left to right
    assert main(["diagram", spec, "-o", str(pdf)]) == 0
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert (os.stat(svg).st_mode & 0o777) == (os.stat(pdf).st_mode & 0o777)


def test_readme_shows_the_committed_diagrams():
    readme = (ROOT / "README.md").read_text()
    images = re.findall(r'src="(docs/img/[\w.-]+\.png)"', readme)
    assert sorted(images) == ["docs/img/densenet121_slides.png", "docs/img/googlenet_slides.png",
                              "docs/img/lenet_slides.png", "docs/img/resnet50_slides.png",
                              "docs/img/unet.png"]
    for image in images:
        data = (ROOT / image).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", image
