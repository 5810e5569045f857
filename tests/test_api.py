"""The Python API: load/loads, build/builds and input_shape, against torchvision.

A spec given as text must give the network its file gives torchvision's names and shapes for;
`input_shape` must give the shapes torch computes at that size; errors in a text point into
it under the name it was given; a text without a file cannot import, one with a path imports
as a file there would, within the same folders.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import archspec
from archspec.limits import MAX_FILE_BYTES

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
RESNET = (SPECS / "resnet.arch").read_text()


def _shapes(module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(t.shape) for name, t in module.state_dict().items()}


def _conv_outputs(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The output shape of every nn.Conv2d of torchvision's resnet18, in call order, for one
    sample; on the meta device, which computes shapes only."""
    seen: list[tuple[int, ...]] = []
    with torch.device("meta"):
        module = torchvision.models.resnet18().eval()
        for conv in module.modules():
            if isinstance(conv, torch.nn.Conv2d):
                conv.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape[1:])))
        module(torch.zeros(1, *shape))
    return seen


def test_builds_resnet18_from_text_has_torchvisions_state_dict():
    built = archspec.builds(RESNET, net="resnet18")
    assert _shapes(built) == _shapes(torchvision.models.resnet18())


@pytest.mark.parametrize("input_shape", [(3, 96, 80), [3, 64, 64], tuple(np.array([3, 48, 40]))])
def test_input_shape_gives_the_sizes_torch_computes(input_shape):
    net = archspec.loads(RESNET, "resnet18", input_shape)
    want = _conv_outputs(tuple(int(d) for d in input_shape))
    convs = [layer.out_shape for layer in net.layers() if layer.op.name == "conv"]
    assert net.input_shape == tuple(int(d) for d in input_shape)
    assert sorted(convs) == sorted(want)  # torchvision runs the downsample after conv2


def test_build_takes_input_shape_for_a_path_and_builds_for_text():
    from_path = archspec.build(SPECS / "resnet.arch", "resnet18", input_shape=(3, 64, 64))
    from_text = archspec.builds(RESNET, "resnet18", input_shape=(3, 64, 64))
    assert from_path.input_shape == from_text.input_shape == (3, 64, 64)
    assert _shapes(from_text) == _shapes(from_path)


@pytest.mark.parametrize("bad", [(3, 0, 32), (3, 32.0, 32), (True, 32, 32), "3,32,32", 3,
                                 (), (1, 2, 3, 4, 5), {"C": 3}])
def test_a_bad_input_shape_is_an_arch_error(bad):
    with pytest.raises(archspec.ArchError) as caught:
        archspec.loads(RESNET, "resnet18", bad)
    assert [d.code for d in caught.value.diagnostics] == ["E216"]


def test_errors_of_a_text_point_into_it_under_its_name():
    """Every error of the issue's three-mistake network, at the places its `# expect:` lines
    give, in the text's name."""
    text = (ROOT / "tests" / "broken" / "multi_three_mistakes.arch").read_text()
    want = {("mine.arch", int(line), int(col))
            for line, col in re.findall(r"# expect: E\d+ (\d+):(\d+)", text)}
    with pytest.raises(archspec.ArchError) as caught:
        archspec.loads(text, name="mine.arch")
    assert {(d.span.file, d.span.line, d.span.col) for d in caught.value.errors} == want
    assert len(want) == 3
    assert all(f"mine.arch:{line}:{col}:" in str(caught.value) for _, line, col in want)


def test_a_text_without_a_file_cannot_import():
    with pytest.raises(archspec.ArchError) as caught:
        archspec.loads('import "mobilenetv3.arch"\nnetwork n() { input [3] }')
    (diag,) = caught.value.diagnostics
    assert diag.code == "E107" and (diag.span.file, diag.span.line) == ("<string>", 1)
    assert "name=" in diag.hint  # how to give it a folder; not the --allow-dir of files


def test_a_text_named_by_a_path_imports_from_its_folder():
    text = (SPECS / "efficientnet.arch").read_text()
    net = archspec.loads(text, "efficientnet_b0", name=SPECS / "efficientnet.arch")
    want = torchvision.models.efficientnet_b0()
    assert net.params == sum(p.numel() for p in want.parameters())


def test_a_text_named_by_a_path_imports_only_inside_its_folder(tmp_path):
    (tmp_path / "lib.arch").write_text("block b() { relu }\n")
    (tmp_path / "specs").mkdir()
    text = 'import "{}"\nnetwork n() {{ input [3, 8, 8]  b() }}\n'
    with pytest.raises(archspec.ArchError) as caught:
        archspec.loads(text.format("../lib.arch"), name=tmp_path / "specs" / "n.arch")
    assert [d.code for d in caught.value.diagnostics] == ["E107"]
    net = archspec.loads(text.format("lib.arch"), name=tmp_path / "n.arch")
    assert net.output_shape == (3, 8, 8)


def test_a_text_over_the_file_limit_is_refused():
    text = "# " + "x" * MAX_FILE_BYTES + "\nnetwork n() { input [3] }\n"
    with pytest.raises(archspec.ArchError) as caught:
        archspec.loads(text)
    assert [d.code for d in caught.value.diagnostics] == ["E403"]


def test_load_refuses_spec_text_and_points_at_loads():
    with pytest.raises(archspec.ArchError) as caught:
        archspec.load(RESNET)
    assert "loads(" in caught.value.diagnostics[0].hint


def test_wrong_argument_types_are_type_errors():
    with pytest.raises(TypeError):
        archspec.loads(RESNET.encode())
    with pytest.raises(TypeError):  # a checked network's parameters are fixed
        archspec.build(archspec.loads(RESNET, "resnet18"), classes=10)
