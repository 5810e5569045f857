"""`archspec summary` and `archspec diff`: totals equal the network-library references
(torchvision's own counts), receptive fields equal hand-computed values, and every output
format parses back."""

import csv
import io
import json
import re
from pathlib import Path

import pytest
from checked_library import library_networks
from test_library import IDS, TORCHVISION_VARIANTS, reference

import archspec
from archspec.cli import main
from archspec.summary import format_csv, format_json, format_markdown, format_table, summarize

ROOT = Path(__file__).resolve().parent.parent
NETWORKS = list(library_networks())


@pytest.mark.slow
@pytest.mark.parametrize(("file", "name"), TORCHVISION_VARIANTS, ids=IDS)
def test_summary_totals_equal_torchvision(file, name):
    network = archspec.load(str(ROOT / "specs" / file), net=name)
    summary = summarize(network)
    expected = reference(name)  # torchvision's parameters and MACs hook-counted in eval mode
    assert summary.params == expected["params"]
    assert summary.macs - summary.training_macs == expected["macs"]
    assert summary.flops == 2 * summary.macs


@pytest.mark.parametrize(("spec", "network"), NETWORKS, ids=[n.name for _, n in NETWORKS])
def test_every_spec_summarises_consistently_at_every_depth(spec, network):
    for depth in (1, 2, 3):
        summary = summarize(network, depth=depth)
        top = [row for row in summary.rows if row.depth == 1]
        assert sum(row.params for row in top) == network.params
        assert sum(row.macs for row in top) == network.macs
        assert all(len(line) <= 100 for line in format_table(summary).splitlines())
        assert all(len(line) <= 100 for line in format_table(summary, rf=True).splitlines())


def _rf_by_layer(spec: str, net: str) -> list[tuple[str, str, str]]:
    network = archspec.load(str(ROOT / "specs" / spec), net=net)
    summary = summarize(network, depth=9)
    return [(row.op, row.rf, row.jump) for row in summary.rows
            if row.op in ("conv", "maxpool", "avgpool")]


def test_receptive_field_lenet_by_hand():
    # conv 5x5: 5; pool 2/2: 5 + 1*1 = 6, jump 2; conv 5x5: 6 + 4*2 = 14; pool: 14 + 1*2 = 16
    assert _rf_by_layer("lenet.arch", "lenet") == [
        ("conv", "5", "1"), ("avgpool", "6", "2"), ("conv", "14", "2"), ("avgpool", "16", "4")]


def test_receptive_field_vgg16_by_hand():
    # 3x3 convs add 2 * jump each, 2x2/2 pools add 1 * jump and double it
    expected = [3, 5, 6, 10, 14, 16, 24, 32, 40, 44, 60, 76, 92, 100, 132, 164, 196, 212]
    jumps = [1, 1, 2, 2, 2, 4, 4, 4, 4, 8, 8, 8, 8, 16, 16, 16, 16, 32]
    got = _rf_by_layer("vgg.arch", "vgg16")
    assert [int(rf) for _, rf, _ in got] == expected
    assert [int(jump) for _, _, jump in got] == jumps


def test_receptive_field_through_branches_takes_the_widest(tmp_path):
    path = tmp_path / "b.arch"
    path.write_text("network n() {\n  input [3, 32, 32]\n"
                    "  concat { conv(4, k=1)  conv(4, k=5, p=2) }\n  conv(4, k=3, s=2, p=1)\n}\n")
    rows = summarize(archspec.load(str(path)), depth=1).rows
    assert [(r.op, r.rf, r.jump) for r in rows] == [
        ("conv", "1", "1"), ("conv", "5", "1"), ("concat", "5", "1"), ("conv", "7", "2")]


def test_count_all_follows_the_documented_rules(tmp_path):
    path = tmp_path / "c.arch"
    path.write_text("network n() {\n  input [2, 8, 8]\n  conv(4, k=3, p=1)\n  batchnorm\n"
                    "  add { relu  maxpool(3, s=1, p=1) }\n  flatten\n  dropout(0.5)\n"
                    "  linear(10, bias=false)\n}\n")
    network = archspec.load(str(path))
    summary = summarize(network, count_all=True)
    values = 4 * 8 * 8
    macs = values * 2 * 9 + 256 * 10
    expected = (2 * macs + values  # conv bias
                + 2 * values  # batchnorm
                + values  # relu
                + values * 8  # maxpool 3x3: 8 comparisons per output
                + values)  # the add of two branches
    assert summary.macs == macs and summary.flops == expected
    assert summary.zero_by_rule == ["dropout", "flatten"]


def test_batch_scales_macs_and_activations_not_params():
    network = archspec.load(str(ROOT / "specs/lenet.arch"))
    one, eight = summarize(network), summarize(network, batch=8)
    assert eight.params == one.params
    assert (eight.macs, eight.activations) == (8 * one.macs, 8 * one.activations)


def test_repeated_blocks_fold_into_one_row():
    network = archspec.load(str(ROOT / "specs/resnet.arch"), net="resnet50")
    rows = summarize(network, depth=2).rows
    names = [(r.name, r.op, r.count) for r in rows if r.name.startswith("layer3")]
    assert names == [("layer3", "stage", 1), ("layer3.0", "bottleneck", 1),
                     ("layer3.1-5", "bottleneck", 5)]
    stage = next(r for r in rows if r.name == "layer3")
    assert stage.params == sum(r.params for r in rows if r.name.startswith("layer3."))


def test_markdown_csv_and_json_parse_back():
    network = archspec.load(str(ROOT / "specs/googlenet.arch"))
    summary = summarize(network, depth=2)
    parsed = list(csv.DictReader(io.StringIO(format_csv(summary))))
    assert [r["name"] for r in parsed] == [r.name for r in summary.rows]
    assert [int(r["params"]) for r in parsed] == [r.params for r in summary.rows]
    data = json.loads(format_json(summary))
    assert {"params", "trainable_params", "macs", "flops", "output_shape", "layers"} <= set(data)
    assert data["params"] == network.params and data["output_shape"] == [1000]
    assert data["flops"] == 2 * data["macs"]
    layer = data["layers"][0]
    assert {"name", "op", "output_shape", "params", "macs"} <= set(layer)
    assert layer["output_shape"] == [64, 112, 112]
    table = [line for line in format_markdown(summary).splitlines() if line.startswith("| `")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table]
    assert [c[0].strip("`") for c in cells] == [r.name for r in summary.rows]
    assert [int(c[5].replace(",", "")) for c in cells] == [r.params for r in summary.rows]


def test_summary_cli(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["summary", "specs/resnet.arch", "--net", "resnet152", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["params"] == 60192808
    assert main(["summary", "specs/densenet.arch", "--net", "densenet121", "--rf",
                 "--input", "3,64,64", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "Input 3x64x64 -> output 1000" in out and "(batch 2)" in out
    assert main(["summary", "specs/densenet.arch", "--net", "nope"]) == 1
    assert "E211" in capsys.readouterr().err


def test_diff_cli_shows_stage_deltas(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["diff", "specs/resnet.arch:resnet18", "specs/resnet.arch:resnet34"]) == 0
    out = capsys.readouterr().out
    layer3 = next(line for line in out.splitlines() if line.startswith("layer3"))
    # resnet34 has 6 basic blocks in layer3 where resnet18 has 2
    assert re.search(r"2\.1M\s+6\.82M\s+\+4\.72M", layer3)
    assert out.splitlines()[-1].startswith("total") and "+10.1M" in out
    assert all(len(line) <= 100 for line in out.splitlines())
