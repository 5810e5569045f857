"""tests/data/upsampling.arch, a small network with every upsampling op (conv_transpose,
upsample, crop, pad, pixel_shuffle, pixel_unshuffle) as modules and, inside merging blocks,
as functions: `archspec summary` reads it, `archspec compile --verify` passes (the compiled
file imported and compared with build()), and the compiled classes (translated, with the
blocks' parameters) compute what build()'s modules compute."""

import importlib.util
import json
from pathlib import Path

import torch

import archspec
from archspec.cli import main
from archspec.torch_source import generate

SPEC = Path(__file__).resolve().parent / "data" / "upsampling.arch"


def test_summary_counts_the_upsampling_network(capsys):
    assert main(["summary", str(SPEC), "--format", "json", "--count", "all"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["input_shape"] == [3, 5, 6] and table["output_shape"] == [16, 7, 11]
    ops = {row["op"] for row in table["layers"]}
    assert {"conv_transpose", "upsample", "pad", "pixel_unshuffle"} <= ops
    network = archspec.load(str(SPEC))
    model = archspec.build(str(SPEC))
    assert table["params"] == network.params == sum(p.numel() for p in model.parameters())


def test_compile_verify_passes(tmp_path, capsys):
    out = tmp_path / "upsampling.py"
    assert main(["compile", str(SPEC), "-o", str(out), "--verify"]) == 0
    assert "written out" not in out.read_text()  # the blocks translate, with parameters


def test_compiled_file_computes_what_build_computes(tmp_path):
    network = archspec.load(str(SPEC))
    path = tmp_path / "upsampling_compiled.py"
    path.write_text(generate(network, str(SPEC)))
    spec = importlib.util.spec_from_file_location("upsampling_compiled", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written, built = module.upsampling(), archspec.build(str(SPEC))
    assert [(n, type(m).__name__, m.extra_repr()) for n, m in written.named_modules()] == [
        (n, type(m).__name__, m.extra_repr()) for n, m in built.named_modules()]
    written.load_state_dict(built.state_dict(), strict=True)
    x = torch.randn(2, 3, 5, 6, generator=torch.Generator().manual_seed(0))
    y = built.eval()(x)
    assert tuple(y.shape) == (2, 16, 7, 11)
    torch.testing.assert_close(written.eval()(x), y, rtol=0, atol=0)
