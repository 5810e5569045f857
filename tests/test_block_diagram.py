"""`archspec diagram --block NAME`: one block's call drawn on its own, as papers draw a module.

The drawing is laid out by the real `dot` (`-Tjson`) and read back from its nodes and edges;
what it must show is derived from the checked IR: the branches of a merge, the kernels and
widths of the convs and pools on each branch, the identity shortcut, the dense connectivity.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

import archspec
from archspec import diagram
from archspec.cli import main
from archspec.ir import DenseMerge, Layer, Merge, Seq, iter_layers, iter_nodes

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
# what a node's text says of a conv or a pool: `conv 3×3, 128`, `maxpool 3×3`
OP_TEXT = re.compile(r"(\w+) (\d+)×(\d+)(?:, (\d+))?")
WINDOWED = ("conv", "pool")

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is missing")


class Drawn:
    """The graph `dot` laid out: node names, their texts, and the edges between them."""

    def __init__(self, source: str):
        done = subprocess.run(["dot", "-Tjson"], input=source.encode(), capture_output=True,
                              check=True, timeout=60)
        graph = json.loads(done.stdout)
        names = {o["_gvid"]: o["name"] for o in graph["objects"] if "nodes" not in o}
        self.text = {o["name"]: o.get("label", "") for o in graph["objects"] if "nodes" not in o}
        self.edges = [(names[e["tail"]], names[e["head"]]) for e in graph.get("edges", [])]

    def tails(self, head: str) -> list[str]:
        return [tail for tail, to in self.edges if to == head]

    def ops(self, node: str) -> list[tuple]:
        """(op, kh, kw, width or None) of each conv and pool the node's title names."""
        title = self.text[node].split("<br/>")[0]
        return [(op, int(h), int(w), int(c) if c else None)
                for op, h, w, c in OP_TEXT.findall(title)]

    def path_ops(self, end: str) -> list[tuple]:
        """The ops from `input` to `end` along a chain of single in-edges (a branch)."""
        ops, node = [], end
        while node != "input":
            (node_before,) = self.tails(node)
            ops[:0] = self.ops(node)
            node = node_before
        return ops


def draw(spec: str, net: str, block: str) -> tuple[Drawn, archspec.ir.Network]:
    network = archspec.load(str(SPECS / spec), net=net)
    return Drawn(diagram.to_dot(network, block=block)), network


def first_call(network, block: str) -> Seq:
    return next(node for node in iter_nodes(network.body)
                if isinstance(node, Seq) and node.block is not None and node.block.name == block)


def scope_at(network, path: str) -> Seq:
    return next(node for node in iter_nodes(network.body)
                if isinstance(node, Seq) and node.path == path)


def ir_ops(node) -> list[tuple]:
    """(op, kh, kw, out_channels or None) of every conv and pool under `node`, in order."""
    return [(layer.op.name, *layer.attrs["kernel"], layer.attrs.get("out_channels"))
            for layer in iter_layers(node) if layer.op.family in WINDOWED]


def merge_of(scope: Seq) -> Merge:
    return next(node for node in iter_nodes(scope) if isinstance(node, Merge))


def merge_node(drawn: Drawn, kind: str) -> str:
    (node,) = [name for name in drawn.text if name.startswith("M.") and f"/{kind}" in name]
    return node


def check_branches(drawn: Drawn, merge: Merge, kind: str) -> None:
    """One edge into the merge per branch, and on each the convs and pools of the IR's
    branch, in order; an identity branch is an edge straight from the input. (dot's JSON
    lists edges in its own order: the branches are compared as a multiset.)"""
    ends = drawn.tails(merge_node(drawn, kind))
    drawn_branches = sorted((drawn.path_ops(end), end == "input") for end in ends)
    assert drawn_branches == sorted((ir_ops(branch), identity) for branch, identity
                                    in zip(merge.branches, merge.identities))


@needs_dot
@pytest.mark.parametrize("net", ["googlenet", "googlenet_paper"])
def test_inception_is_four_branches_with_their_kernels_into_one_concatenation(net):
    drawn, network = draw("googlenet.arch", net, "inception")
    scope = first_call(network, "inception")
    merge = merge_of(scope)
    assert len(merge.branches) == 4
    check_branches(drawn, merge, "concat")
    # the paper's "5x5" branch: 5×5 in the paper's variant, 3×3 as torchvision has it
    assert ir_ops(merge.branches[2])[-1][1] == (5 if net == "googlenet_paper" else 3)
    assert drawn.text["input"] == "previous layer"
    assert drawn.tails("output") == [merge_node(drawn, "concat")]
    assert "filter concatenation" in drawn.text[merge_node(drawn, "concat")]


@needs_dot
@pytest.mark.parametrize("block", ["bottleneck", "layer1.1"])
def test_bottleneck_is_three_convs_and_a_shortcut_into_the_add(block):
    """The first call (layer1.0) projects its shortcut; layer1.1's is the identity."""
    drawn, network = draw("resnet.arch", "resnet50", block)
    scope = first_call(network, "bottleneck") if block == "bottleneck" else \
        scope_at(network, block)
    merge = merge_of(scope)
    check_branches(drawn, merge, "add")
    assert [(k, c) for _, k, _, c in ir_ops(merge.branches[0])] == [(1, 64), (3, 64), (1, 256)]
    assert merge.identities == [False, block == "layer1.1"]
    # after the add, the block's own relu, then the terminal
    add = merge_node(drawn, "add")
    (relu,) = [head for tail, head in drawn.edges if tail == add]
    assert drawn.text[relu] == "relu" and drawn.tails("output") == [relu]
    layers = [n for n in iter_nodes(scope) if isinstance(n, Layer)]
    assert len(drawn.text) == len(layers) + 1 + 2  # layers, the add, the two terminals


@needs_dot
def test_dense_block_feeds_every_layer_from_the_input_and_every_layer_before():
    drawn, network = draw("densenet.arch", "densenet121", "denseblock1")
    (dense,) = [n for n in iter_nodes(scope_at(network, "features.denseblock1"))
                if isinstance(n, DenseMerge)]
    steps = [step.children[0] for step in dense.steps]  # each a dense_layer call
    nodes = [f"S.{step.path}" for step in steps]
    assert len(nodes) == 6
    for k, (node, step) in enumerate(zip(nodes, steps)):
        assert sorted(drawn.tails(node)) == sorted(["input", *nodes[:k]])
        assert drawn.ops(node) == ir_ops(step)
    concat = merge_node(drawn, "dense")
    assert sorted(drawn.tails(concat)) == sorted(["input", *nodes])
    assert drawn.tails("output") == [concat]


@needs_dot
def test_cli_writes_the_block_as_png(tmp_path, capsys):
    out = tmp_path / "block.png"
    assert main(["diagram", str(SPECS / "googlenet.arch"), "--block", "inception",
                 "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "block inception" in capsys.readouterr().err


@pytest.mark.parametrize("net,name,message,hint", [
    ("googlenet", "incepton", "`googlenet` has no block or label `incepton`",
     "did you mean `inception`?"),
    ("googlenet_no_aux", "inception_aux", "block `inception_aux` is not called", "its blocks:"),
    ("googlenet_no_aux", "nothing_like_it", "no block or label",
     "its blocks: inception, unit"),
])
def test_unknown_block_is_e201_with_near_names(tmp_path, capsys, net, name, message, hint):
    out = tmp_path / "block.dot"
    assert main(["diagram", str(SPECS / "googlenet.arch"), "--net", net, "--block", name,
                 "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "error[E201]" in err and message in err and hint in err
    assert "Traceback" not in err and not out.exists()


@pytest.mark.slow
def test_every_block_of_every_library_network_draws():
    """Each block called in each network of specs/ (its first call), with the calls inside
    collapsed and opened: DOT whose nodes are the terminals and at least one more."""
    drawn = 0
    for path in sorted(SPECS.glob("*.arch")):
        for network in archspec.check_file(str(path)).networks:
            blocks = {s.block.name for s in iter_nodes(network.body)
                      if isinstance(s, Seq) and s.block is not None}
            for block in sorted(blocks):
                for depth in (0, 1):
                    source = diagram.to_dot(network, depth=depth, block=block)
                    assert "input [" in source and "output [" in source
                    assert re.search(r'"[LSM]\.[^"]*" \[', source), (network.name, block)
                    drawn += 1
    assert drawn > 100


@needs_dot
@pytest.mark.slow
def test_docs_block_figures_are_made_by_the_commands_shown(tmp_path, capsys):
    """docs/diagrams.md's --block commands run, and their PNGs are committed and shown."""
    doc = (ROOT / "docs" / "diagrams.md").read_text(encoding="utf-8")
    commands = re.findall(r"^archspec (diagram .*--block .*) -o docs/img/(\S+\.png)$", doc,
                          re.MULTILINE)
    assert sorted(image for _, image in commands) == [
        "block_bottleneck.png", "block_dense.png", "block_inception.png"]
    for command, image in commands:
        assert main([*shlex.split(command), "-o", str(tmp_path / image)]) == 0
        assert (tmp_path / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (ROOT / "docs" / "img" / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f'src="img/{image}"' in doc
