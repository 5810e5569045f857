"""The PyTorch backends: archspec.build() and the compiled source agree with each other on
every network in specs/, compiled files read well and are stable, writes are atomic, and
shapes that PyTorch really produces are the checker's."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import archspec
from archspec.check import check_file
from archspec.cli import main
from archspec.torch_backend import build_module, verify_network
from archspec.torch_source import generate

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.arch"))
NETWORKS = [(spec, net.name) for spec in SPECS for net in check_file(str(spec)).networks]


def import_source(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compiled(tmp_path: Path, spec: Path, net: str):
    network = archspec.load(str(spec.relative_to(ROOT)), net=net)
    path = tmp_path / f"{net}.py"
    path.write_text(generate(network, str(spec.relative_to(ROOT))))
    return network, import_source(path, f"compiled_{net}")


@pytest.mark.slow
@pytest.mark.parametrize(("spec", "net"), NETWORKS, ids=[n for _, n in NETWORKS])
def test_build_and_compiled_source_agree(tmp_path, monkeypatch, spec, net):
    monkeypatch.chdir(ROOT)
    network, source = compiled(tmp_path, spec, net)
    built = build_module(network).eval()
    written = getattr(source, net)().eval()
    ours = {k: tuple(v.shape) for k, v in built.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in written.state_dict().items()}
    assert ours == theirs
    expected_params = sum(p.numel() for p in built.parameters())
    assert expected_params == network.params
    written.load_state_dict(built.state_dict(), strict=True)
    torch.manual_seed(0)
    x = torch.randn(2, *network.input_shape)
    with torch.no_grad():
        assert torch.equal(built(x), written(x))
    assert tuple(built(x).shape[1:]) == network.output_shape


@pytest.mark.parametrize(("spec", "net"), [("googlenet.arch", "googlenet"),
                                           ("resnet.arch", "resnet50")])
def test_generated_file_reads_like_hand_written_code(tmp_path, monkeypatch, spec, net):
    monkeypatch.chdir(ROOT)
    out = tmp_path / f"{net}.py"
    assert main(["compile", f"specs/{spec}", "--net", net, "-o", str(out)]) == 0
    text = out.read_text()
    wanted = {"googlenet": ["class Unit(nn.Module):", "class Inception(nn.Module):",
                            "class Googlenet(nn.Module):", "def googlenet(**overrides)"],
              "resnet50": ["class Bottleneck(nn.Module):",
                           "class BottleneckDownsample(nn.Module):",
                           "self.downsample = nn.Sequential(", "def resnet50(**overrides)",
                           "x = branch1 + self.downsample(x)  # 256x56x56"]}[net]
    for line in wanted:
        assert line in text
    assert f"from specs/{spec}:" in text  # each class says where its block is
    assert "import archspec" not in text and "exec(" not in text
    for args in (["check", "--isolated"], ["format", "--isolated", "--check"]):
        proc = subprocess.run([sys.executable, "-m", "ruff", *args, str(out)],
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_compiled_source_is_byte_identical_across_runs_and_hash_seeds(tmp_path):
    outputs = []
    for seed in ("0", "1", "12345"):
        out = tmp_path / f"g{seed}.py"
        env = dict(os.environ, PYTHONHASHSEED=seed)
        subprocess.run([sys.executable, "-m", "archspec", "compile", "specs/googlenet.arch",
                        "-o", str(out)], cwd=ROOT, env=env, check=True, capture_output=True)
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]


def test_builder_overrides_match_a_rebuilt_spec(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    _, source = compiled(tmp_path, ROOT / "specs/googlenet.arch", "googlenet")
    written = source.googlenet(classes=10, drop=0.3)
    rebuilt = archspec.build("specs/googlenet.arch", net="googlenet", classes=10, drop=0.3)
    assert ({k: v.shape for k, v in written.state_dict().items()}
            == {k: v.shape for k, v in rebuilt.state_dict().items()})
    assert written.dropout.p == rebuilt.dropout.p == 0.3


def test_compile_writes_atomically(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "model.py"
    out.write_text("precious\n")
    broken = tmp_path / "broken.arch"
    broken.write_text("network n() {\n  input [3, 8, 8]\n  linear(10)\n}\n")
    assert main(["compile", str(broken), "-o", str(out)]) == 1
    assert out.read_text() == "precious\n"

    def fail_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail_replace)
    assert main(["compile", "specs/lenet.arch", "-o", str(out)]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert out.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.arch", "model.py"]


def test_compile_prints_to_stdout_without_output(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert main(["compile", "specs/lenet.arch", "--net", "lenet5", "--verify"]) == 0
    text = capsys.readouterr().out
    assert text.startswith('"""`lenet5`, compiled by archspec') and "def lenet5(" in text


def test_verify_reports_a_shape_the_checker_got_wrong(monkeypatch):
    monkeypatch.chdir(ROOT)
    network = archspec.load("specs/lenet.arch")
    verify_network(network)  # the real IR passes
    layer = next(layer for layer in network.layers() if layer.op.name == "avgpool")
    layer.out_shape = (6, 13, 13)
    with pytest.raises(archspec.ArchError) as info:
        verify_network(network)
    (diag,) = info.value.diagnostics
    assert diag.code == "E501" and "6x14x14 in PyTorch" in diag.message
    assert diag.span == layer.span


SAME = """
network same() {
  input [3, 15, 15]
  a: conv(8, k=4, s=2, p='same')
  b: conv(8, k=3, s=2, p='same')
  c: conv(8, k=2, p='same', d=2)
}
"""


def test_same_padding_with_stride_is_built_exactly(tmp_path):
    path = tmp_path / "same.arch"
    path.write_text(SAME)
    network = archspec.load(str(path))
    model = archspec.build(network, verify=True).eval()
    x = torch.randn(2, 3, 15, 15)
    # TensorFlow's rule, written out here: out = ceil(n / s), total pad split, extra at the end
    expected = x
    for conv, stride, kernel, dilation in ((model.a, 2, 4, 1), (model.b, 2, 3, 1),
                                           (model.c, 1, 2, 2)):
        size = expected.shape[-1]
        out = -(-size // stride)
        total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
        before, after = total // 2, total - total // 2
        padded = F.pad(expected, (before, after, before, after))
        expected = F.conv2d(padded, conv.weight, conv.bias, stride, 0, dilation)
        assert expected.shape[-1] == out
    with torch.no_grad():
        assert torch.allclose(model(x), expected, atol=1e-6)
    assert type(model.a).__name__ == "PaddedConv2d"  # 15 -> 8 needs 1 top, 2 bottom


def test_init_choices_reach_both_backends(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    spec = tmp_path / "init.arch"
    spec.write_text(
        "block res(c: int) {\n  add { { conv(c, k=3, p=1, bias=false) batchnorm relu\n"
        "          conv(c, k=3, p=1, bias=false) last: batchnorm } }\n  relu\n}\n"
        "network n() {\n  input [3, 16, 16]\n"
        '  init(conv="kaiming_normal", linear="normal", bn="constant", '
        "zero_residual_bn=true)\n"
        "  stem: conv(64, k=3, p=1) batchnorm relu\n  r: res(64)\n"
        "  global_avgpool flatten\n  fc: linear(1000)\n}\n")
    network = archspec.load(str(spec))
    assert network.residual_batchnorms() == ["r.last"]
    out = tmp_path / "init_model.py"
    out.write_text(generate(network, str(spec)))
    torch.manual_seed(0)
    for model in (build_module(network), import_source(out, "init_model").n()):
        assert torch.count_nonzero(model.r.last.weight) == 0
        assert torch.all(model.r.get_submodule("1").weight == 1)
        assert torch.count_nonzero(model.stem.bias) == 0
        # kaiming normal, fan_out: std = sqrt(2 / (64 * 3 * 3))
        assert abs(model.stem.weight.std().item() - (2 / 576) ** 0.5) < 0.01
        assert abs(model.fc.weight.std().item() - 0.01) < 0.001
