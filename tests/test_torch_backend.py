"""The PyTorch backends: archspec.build() and the compiled source agree with each other on
every network in specs/, compiled files read well and are stable, writes are atomic, and
shapes that PyTorch really produces are the checker's."""

import ast
import copy
import importlib.util
import inspect
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from checked_library import library_networks

import archspec
from archspec.check import check_file
from archspec.cli import main
from archspec.lowering import lower
from archspec.torch_backend import build_module, verify_network, verify_source
from archspec.torch_source import generate

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.arch"))
CHECKED = list(library_networks())
NETWORKS = [(spec, net.name) for spec, net in CHECKED]
# Networks built with real weights (outputs compared, round trips): those up to 30M
# parameters and the smallest of each file. The others are compared on the meta device
# (module tree, state_dict names and shapes): their classes are the same, and building and
# running them takes minutes and gigabytes on a CI machine.
REAL = {net.name for spec, net in CHECKED if net.params <= 30_000_000} | {
    min((net.params, net.name) for s, net in CHECKED if s == spec)[1] for spec in SPECS}


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


def both_backends(tmp_path: Path, text: str) -> tuple:
    """The spec text's network n(), from archspec.build() and from its compiled file."""
    spec = tmp_path / "n.arch"
    spec.write_text(text)
    network = archspec.load(str(spec))
    out = tmp_path / "n.py"
    out.write_text(generate(network, str(spec)))
    return network, build_module(network), import_source(out, f"compiled_{tmp_path.name}").n()


def structure(model: torch.nn.Module) -> list[tuple[str, str, str]]:
    """Every module's path, class name and torch's own description of its settings."""
    return [(name, type(m).__name__, m.extra_repr()) for name, m in model.named_modules()]


def same(a, b) -> bool:
    """Equal outputs: a tensor, or the tuple or dict of tensors a network's `return` gives."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return (isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b)
            and all(same(x, y) for x, y in zip(a, b)))


def main_output(output):
    """The tensor a network's outputs begin with (the `out` of a dict, the logits of a
    tuple)."""
    if isinstance(output, dict):
        return next(iter(output.values()))
    return output[0] if isinstance(output, tuple) else output


def exercise_batchnorms(model: torch.nn.Module, shape: tuple) -> None:
    """Give batchnorm running statistics that are not PyTorch's initial ones."""
    model.train()
    torch.manual_seed(1)
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(2, *shape) * 3 + 1)


@pytest.mark.slow
@pytest.mark.parametrize(("spec", "net"), NETWORKS, ids=[n for _, n in NETWORKS])
def test_build_and_compiled_source_agree(tmp_path, monkeypatch, spec, net):
    """One module tree: the same paths, classes and settings; the same state_dict; the same
    outputs, in eval mode after training-mode batches and in training mode."""
    monkeypatch.chdir(ROOT)
    network, source = compiled(tmp_path, spec, net)
    if net not in REAL:
        with torch.device("meta"):
            built, written = build_module(network), getattr(source, net)()
        assert structure(built) == structure(written)
        assert {k: v.shape for k, v in built.state_dict().items()} == {
            k: v.shape for k, v in written.state_dict().items()}
        return
    built = build_module(network)
    written = getattr(source, net)()
    assert structure(built) == structure(written)
    assert sum(p.numel() for p in built.parameters()) == network.params
    exercise_batchnorms(built, network.input_shape)
    written.load_state_dict(built.state_dict(), strict=True)
    x = torch.randn(2, *network.input_shape)
    for mode in ("eval", "train"):
        getattr(built, mode)(), getattr(written, mode)()
        torch.manual_seed(2)
        with torch.no_grad():
            ours = built(x)
        torch.manual_seed(2)
        with torch.no_grad():
            assert same(ours, written(x)), mode
    assert tuple(main_output(ours).shape[1:]) == network.output_shape


def parse_classes(text: str) -> dict[str, ast.ClassDef]:
    return {node.name: node for node in ast.parse(text).body if isinstance(node, ast.ClassDef)}


def test_resnet_compiles_to_one_bottleneck_and_a_class_taking_layers(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    _, source = compiled(tmp_path, ROOT / "specs/resnet.arch", "resnet50")
    classes = parse_classes((tmp_path / "resnet50.py").read_text())
    assert [name for name in classes if "ottleneck" in name] == ["Bottleneck"]
    root = type(source.resnet50())
    assert list(inspect.signature(root).parameters) == [
        "block", "layers", "groups", "width_per_group", "classes"]
    model = root(block=source.Bottleneck, layers=[1, 1, 1, 1], classes=7)
    assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == [1, 1, 1, 1]
    assert model.layer1[0].downsample is not None and model.layer2[0].downsample is not None


def test_densenet_compiles_to_loops_in_under_150_lines(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    compiled(tmp_path, ROOT / "specs/densenet.arch", "densenet121")
    text = (tmp_path / "densenet121.py").read_text()
    assert len(text.splitlines()) < 150
    loops = [node for node in ast.walk(ast.parse(text)) if isinstance(node, ast.For)]
    assert len(loops) >= 2  # over the blocks, and over each block's layers


def test_a_network_that_needs_the_input_size_is_written_out_and_says_why(monkeypatch):
    monkeypatch.chdir(ROOT)
    lowered = lower(archspec.load("specs/lenet.arch", net="lenet"))
    assert lowered.translation is None and "flatten" in lowered.why_not


# Values for network parameters that check, other than the variants' own: the compiled
# builder given them must build what archspec.build() builds from the spec given them.
# (GoogLeNet, with its `aux` heads, and the segmentation networks are written out: their
# builders take no parameters.)
SAMPLES = [
    ("resnet.arch", "resnet18", {"layers": [1, 2, 1, 1], "classes": 7}),
    ("resnet.arch", "resnet50", {"groups": 2, "width_per_group": 16, "layers": [1, 1, 2, 1]}),
    ("resnext.arch", "resnext50_32x4d", {"groups": 4, "width_per_group": 8, "classes": 3}),
    ("densenet.arch", "densenet121", {"blocks": [2, 3, 1], "growth": 8, "init": 16,
                                      "bn_size": 2, "classes": 5}),
    ("vgg.arch", "vgg11", {"stages": [(1, 8), (2, 16), (1, 32)], "bn": True, "classes": 5,
                           "drop": 0.25}),
    ("nin.arch", "nin", {"classes": 7}),
    ("alexnet.arch", "alexnet", {"classes": 3, "drop": 0.1}),
]


@pytest.mark.slow
@pytest.mark.parametrize(("spec", "net", "params"), SAMPLES,
                         ids=[f"{n}-{i}" for i, (_, n, _) in enumerate(SAMPLES)])
def test_builder_parameters_have_the_effect_build_gives_them(tmp_path, monkeypatch, spec,
                                                             net, params):
    monkeypatch.chdir(ROOT)
    _, source = compiled(tmp_path, ROOT / "specs" / spec, net)
    rebuilt = archspec.build(f"specs/{spec}", net=net, **params)
    written = getattr(source, net)(**params)
    assert structure(rebuilt) == structure(written)
    network = archspec.load(f"specs/{spec}", net=net, **params)
    exercise_batchnorms(rebuilt, network.input_shape)
    written.load_state_dict(rebuilt.state_dict(), strict=True)
    rebuilt.eval(), written.eval()
    x = torch.randn(1, *network.input_shape)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), written(x))


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
    assert text.startswith('"""Compiled by archspec') and "Network: `lenet5`." in text
    assert "def lenet5(" in text and "def lenet(" not in text


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


def test_verify_imports_the_compiled_source_and_finds_what_differs(monkeypatch):
    """--verify also builds the compiled file: a wrong kernel, a missing module and a builder
    that fails are E501, each naming what differs."""
    monkeypatch.chdir(ROOT)
    network = archspec.load("specs/resnet.arch", net="resnet18")
    source = generate(network, "specs/resnet.arch")
    verify_source(network, source)  # the real source passes
    for broken, expected in [
        (source.replace("nn.Conv2d(3, 64, 7,", "nn.Conv2d(3, 64, 5,", 1), "conv1.weight"),
        (source.replace("self.fc = ", "self.head = ", 1), "`fc` is Linear in one, None"),
        (source.replace("super().__init__()", "super().__init__(); 1 / 0", 1),
         "its builder fails: ZeroDivisionError"),
    ]:
        assert broken != source
        with pytest.raises(archspec.ArchError) as info:
            verify_source(network, broken)
        assert info.value.diagnostics[0].code == "E501"
        assert expected in info.value.diagnostics[0].message


DEFAULT_FROM_INPUT = """
block squeeze(sq: int, c: int = in.c) { conv(sq, k=1) relu conv(c, k=1) }
network net() { input [3, 8, 8]  conv(16, k=1)  squeeze(4)  squeeze(2, 8) }
"""


def test_a_default_that_reads_the_input_is_filled_in_the_compiled_constructor(tmp_path):
    """`c: int = in.c` is the input channels of each call, in compiled classes too (it was
    written as `c: int = None` and the conv got None channels)."""
    path = tmp_path / "net.arch"
    path.write_text(DEFAULT_FROM_INPUT)
    network = archspec.load(str(path))
    source = generate(network, str(path))
    assert "if c is None:" in source
    verify_source(network, source)


COMPREHENSION = """
block stage(ws: list, mult: float) {
  for c in [int(ceil(w * mult / 8)) * 8 for w in ws if w > 0] { conv(c, k=3, p=1) relu }
}
network net(mult: float = 1.0) {
  input [3, 16, 16]
  s: stage([8, 0, 16], mult)
  global_avgpool  flatten  linear(round(log(100, 10)) * 5)
}
variant wide = net(mult=1.5)
"""


def test_comprehensions_and_math_compile_to_python_with_the_parameters(tmp_path):
    """A list comprehension over a block's parameters is a Python comprehension in the
    class (math functions from `math`), and every variant builds what build() builds."""
    path = tmp_path / "net.arch"
    path.write_text(COMPREHENSION)
    networks = check_file(str(path)).networks
    source = generate(networks, str(path))
    assert "import math" in source
    assert "[int(math.ceil(w * mult / 8)) * 8 for w in ws if w > 0]" in source
    assert "written out" not in source
    for network in networks:
        verify_source(network, generate(network, str(path)))


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


@pytest.mark.slow
@pytest.mark.parametrize(("spec", "net"), NETWORKS, ids=[n for _, n in NETWORKS])
def test_compiled_files_pass_ruff(tmp_path, monkeypatch, spec, net):
    monkeypatch.chdir(ROOT)
    compiled(tmp_path, spec, net)
    out = tmp_path / f"{net}.py"
    for args in (["check", "--isolated"], ["format", "--isolated", "--check"]):
        proc = subprocess.run([sys.executable, "-m", "ruff", *args, str(out)],
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_helper_classes_copied_into_compiled_files_pass_ruff(tmp_path):
    """Every class of torch_helpers.py, as a compiled file copies it, is clean for ruff's
    defaults (line length 88), not only for archspec's own settings."""
    from archspec.torch_source import helper_names, helper_source
    out = tmp_path / "helpers.py"
    header = "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n"
    out.write_text("\n\n\n".join([header.rstrip("\n"), *(
        helper_source(name) for name in sorted(helper_names()))]) + "\n")
    for args in (["check", "--isolated"], ["format", "--isolated", "--check"]):
        proc = subprocess.run([sys.executable, "-m", "ruff", *args, str(out)],
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr


FAST_ROUND_TRIPS = {"googlenet", "resnet18", "densenet121", "vgg11_bn", "lenet"}
ROUND_TRIP_NETWORKS = [net if net in FAST_ROUND_TRIPS else
                       pytest.param(net, marks=pytest.mark.slow)
                       for _, net in NETWORKS if net in REAL]


def _spec_of(net: str) -> Path:
    return next(spec for spec, name in NETWORKS if name == net)


@pytest.mark.parametrize("net", ROUND_TRIP_NETWORKS)
def test_built_models_are_plain_pytorch_objects(tmp_path, monkeypatch, net):
    """torch.save/load, pickle and deepcopy give a model with the same tree and outputs; the
    repr is torch's (classes named after the spec's blocks)."""
    monkeypatch.chdir(ROOT)
    model = archspec.build(str(_spec_of(net).relative_to(ROOT)), net=net).eval()
    torch.save(model, tmp_path / "model.pt")
    copies = [torch.load(tmp_path / "model.pt", weights_only=False),
              pickle.loads(pickle.dumps(model)), copy.deepcopy(model)]
    x = torch.randn(1, *_input(net))
    with torch.no_grad():
        expected = model(x)
        for other in copies:
            assert structure(other) == structure(model)
            assert same(other.eval()(x), expected)
    assert repr(model).splitlines()[0] == f"{type(model).__name__}("


def _input(net: str) -> tuple:
    return archspec.load(str(_spec_of(net).relative_to(ROOT)), net=net).input_shape


def _spawned_output(path: str, queue) -> None:
    model = torch.load(path, weights_only=False).eval()
    with torch.no_grad():
        queue.put(model(torch.ones(1, 3, 224, 224)).sum().item())


@pytest.mark.slow
def test_a_built_model_reaches_a_spawned_worker(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    model = archspec.build("specs/resnet.arch", net="resnet18").eval()
    torch.save(model, tmp_path / "model.pt")
    context = torch.multiprocessing.get_context("spawn")
    queue = context.Queue()
    worker = context.Process(target=_spawned_output, args=(str(tmp_path / "model.pt"), queue))
    worker.start()
    worker.join(120)
    with torch.no_grad():
        assert queue.get(timeout=5) == pytest.approx(model(torch.ones(1, 3, 224, 224)).sum()
                                                     .item(), rel=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["resnet.arch", "densenet.arch", "googlenet.arch",
                                  "vgg.arch", "lenet.arch"])
def test_a_file_compiles_to_its_classes_once_and_a_builder_per_network(tmp_path, monkeypatch,
                                                                       spec):
    """`archspec compile FILE`: every network and variant of the file has its builder (or is
    named in a comment as left out), and each builder builds what build() builds."""
    monkeypatch.chdir(ROOT)
    out = tmp_path / "all.py"
    assert main(["compile", f"specs/{spec}", "-o", str(out)]) == 0
    text = out.read_text()
    module = import_source(out, f"all_{spec[:-5]}")
    classes = parse_classes(text)
    assert len(classes) == len(set(classes))
    for network in check_file(f"specs/{spec}").networks:
        builder = getattr(module, network.name, None)
        if builder is None:  # left out, and said so
            assert network.name in text.split('"""', 2)[2].split("import")[0]
            continue
        assert structure(builder()) == structure(build_module(network)), network.name
    for args in (["check", "--isolated"], ["format", "--isolated", "--check"]):
        proc = subprocess.run([sys.executable, "-m", "ruff", *args, str(out)],
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_an_input_of_the_wrong_rank_is_refused_by_both_backends(tmp_path, monkeypatch):
    """Found in issue 16: an unbatched 3x8x8 tensor went through a concat along H and came
    out 4x16x8, silently. Both backends now refuse it with the same message."""
    monkeypatch.chdir(ROOT)
    _, built, written = both_backends(
        tmp_path, "network n() {\n  input [3, 8, 8]\n  concat { conv(2, k=1) identity }\n"
                  "  global_avgpool flatten\n}\n")
    messages = []
    for model in (built, written, pickle.loads(pickle.dumps(built))):
        with pytest.raises(ValueError) as info:
            model(torch.randn(3, 8, 8))
        messages.append(str(info.value))
        assert model(torch.randn(2, 3, 8, 8)).shape == (2, 5)
    assert messages[0] == messages[1] == messages[2]
    assert "3x8x8" in messages[0] and "(3, 8, 8)" in messages[0]


def test_a_network_too_large_for_the_memory_budget_is_refused_before_allocating(tmp_path):
    spec = tmp_path / "wide.arch"
    spec.write_text("network n() {\n  input [100]\n  fc: linear(250000000)\n}\n")
    network = archspec.load(str(spec))  # 25 G parameters: 100 GB of float32
    with pytest.raises(archspec.ArchError) as info:
        archspec.build(network, max_bytes=2**30)
    (diag,) = info.value.diagnostics
    assert diag.code == "E502" and "GiB" in diag.detail
    tiny = tmp_path / "tiny.arch"
    tiny.write_text("network n() {\n  input [100]\n  fc: linear(10)\n}\n")
    assert archspec.build(str(tiny), max_bytes=1_000_000).fc.out_features == 10


def test_lrn_workspace_counts_towards_the_memory_budget(tmp_path, capsys):
    """Found in issue 16: `lrn(size=10**8)` has no parameters and a 3x32x32 output, and asked
    torch for 409 GB at the first forward (its padded squares). build() refuses it with E502
    before building, and so does `compile --verify` (with the same budget, --max-bytes);
    a workspace beyond what torch can index is refused there whatever the budget (it was
    "internal error: RuntimeError")."""
    spec = tmp_path / "lrn.arch"
    spec.write_text("network n() {\n  input [3, 32, 32]\n  lrn(size=100_000_000)\n}\n")
    with pytest.raises(archspec.ArchError) as info:
        archspec.build(str(spec), max_bytes=2**30)
    (diag,) = info.value.diagnostics
    assert diag.code == "E502" and "workspaces" in diag.detail
    small = tmp_path / "small.arch"
    small.write_text("network n() {\n  input [3, 32, 32]\n  lrn(size=5)\n}\n")
    assert archspec.build(str(small), max_bytes=1_000_000)(torch.ones(1, 3, 32, 32)).shape \
        == (1, 3, 32, 32)
    assert main(["compile", str(spec), "--verify", "--max-bytes", str(2**30)]) == 1
    assert "error[E502]" in capsys.readouterr().err
    assert main(["compile", str(small), "--verify", "--max-bytes", "1000"]) == 1
    assert main(["compile", str(small), "--verify", "--max-bytes", str(2**30)]) == 0
    capsys.readouterr()
    spec.write_text("network n() {\n  input [3, 32, 32]\n  lrn(size=2**61)\n}\n")
    assert main(["check", str(spec)]) == 0
    assert main(["compile", str(spec), "--verify", "--max-bytes", str(2**62)]) == 1
    err = capsys.readouterr().err
    assert "error[E502]" in err and "internal error" not in err


def test_verify_of_a_tensor_beyond_int64_is_a_diagnostic(tmp_path, capsys):
    """Found in issue 16: `compile --verify` of a spec that checks clean ended in
    "internal error: RuntimeError: Storage size calculation overflowed"."""
    spec = tmp_path / "huge.arch"
    spec.write_text("network n() {\n  input [9223372036854775807]\n  relu\n}\n")
    assert main(["check", str(spec)]) == 0
    assert main(["compile", str(spec), "--verify"]) == 1
    err = capsys.readouterr().err
    assert "error[E502]" in err and "internal error" not in err


def test_a_labelled_scope_whose_modules_are_nested_compiles(tmp_path):
    """Found in issue 11: a labelled channels_last (ConvNeXt's MLP), or a labelled group whose
    modules are in a group of their own, was written inline as nn.Sequential(...) behind
    `if len(foo):`, a name the file never defines: the compiled network raised NameError."""
    _, built, written = both_backends(
        tmp_path, "network n() {\n  input [3, 8, 8]\n  foo: { { conv(4, k=1) relu } }\n"
                  "  bar: channels_last { layernorm linear(5) }\n}\n")
    assert structure(built) == structure(written)
    written.load_state_dict(built.state_dict(), strict=True)
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(built.eval()(x), written.eval()(x))
