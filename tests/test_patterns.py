"""The four connection patterns check with the right shapes. Expected shapes come from the
course notes and papers (LeNet lecture, GoogLeNet table, ResNet and DenseNet papers), not
from archspec."""

from pathlib import Path

import pytest

import archspec
from archspec import ArchError
from archspec.ir import DenseMerge, Merge

ROOT = Path(__file__).resolve().parent.parent


def check_source(tmp_path: Path, text: str, **kwargs):
    path = tmp_path / "spec.arch"
    path.write_text(text)
    return archspec.check_file(str(path), **kwargs)


def clean(result):
    assert result.diagnostics == [], [d.message for d in result.diagnostics]
    return result.networks


LENET = """
network lenet(classes: int = 10) {
  input [1, 28, 28]
  conv(6, k=5, p=2)  sigmoid  avgpool(2, s=2)
  conv(16, k=5)      sigmoid  avgpool(2, s=2)
  flatten
  linear(120) sigmoid
  linear(84)  sigmoid
  linear(classes)
}
"""


def test_sequential_lenet_shapes_follow_the_lecture(tmp_path):
    (net,) = clean(check_source(tmp_path, LENET))
    shapes = [layer.out_shape for layer in net.layers() if layer.op.name != "sigmoid"]
    assert shapes == [(6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5), (400,), (120,),
                      (84,), (10,)]
    # lecture: 61,706 parameters for this LeNet (d2l)
    assert net.params == 61706
    assert [layer.path for layer in net.layers()][:3] == ["0", "1", "2"]


INCEPTION = """
block inception(c1: int, c2: (int, int), c3: (int, int), c4: int) {
  concat {
    branch1: { conv(c1, k=1) relu }
    branch2: { conv(c2[0], k=1) relu  conv(c2[1], k=3, p=1) relu }
    branch3: { conv(c3[0], k=1) relu  conv(c3[1], k=5, p=2) relu }
    branch4: { maxpool(3, s=1, p=1)  conv(c4, k=1) relu }
  }
}

network stage3() {
  input [192, 28, 28]
  inception3a: inception(64, (96, 128), (16, 32), 32)
  inception3b: inception(128, (128, 192), (32, 96), 64)
  maxpool(3, s=2, p=1)
}
"""


def test_parallel_concat_matches_googlenet_table(tmp_path):
    (net,) = clean(check_source(tmp_path, INCEPTION))
    blocks = net.body.children
    # GoogLeNet table: inception (3a) 28x28x256, (3b) 28x28x480, max pool 14x14x480
    assert [b.out_shape for b in blocks] == [(256, 28, 28), (480, 28, 28), (480, 14, 14)]
    merge = blocks[0].children[0]
    assert isinstance(merge, Merge) and merge.kind == "concat"
    assert [b.out_shape for b in merge.branches] == [(64, 28, 28), (128, 28, 28),
                                                     (32, 28, 28), (32, 28, 28)]
    assert net.layers().__next__().path == "inception3a.branch1.0"


RESNET = """
block basic(c: int, stride: int = 1) {
  add {
    { conv1: conv(c, k=3, s=stride, p=1, bias=false)  bn1: batchnorm  relu
      conv2: conv(c, k=3, p=1, bias=false)            bn2: batchnorm }
    downsample: if stride != 1 or in.c != c { conv(c, k=1, s=stride, bias=false)  batchnorm }
  }
  relu
}

network resnet(block: block, layers: list, classes: int = 1000) {
  input [3, 224, 224]
  conv1: conv(64, k=7, s=2, p=3, bias=false)  bn1: batchnorm  relu  maxpool(3, s=2, p=1)
  for i, n in enumerate(layers) {
    layer{i+1}: { repeat j in n { block(64 * 2**i, stride = 2 if i > 0 and j == 0 else 1) } }
  }
  global_avgpool  flatten
  fc: linear(classes)
}

variant resnet18 = resnet(block=basic, layers=[2, 2, 2, 2])
"""


def test_residual_add_resnet18_stages(tmp_path):
    (net,) = clean(check_source(tmp_path, RESNET))
    stages = [c for c in net.body.children if getattr(c, "name", "").startswith("layer")]
    # ResNet paper, table 1: conv2_x 56x56, conv3_x 28x28, conv4_x 14x14, conv5_x 7x7
    assert [s.out_shape for s in stages] == [(64, 56, 56), (128, 28, 28), (256, 14, 14),
                                             (512, 7, 7)]
    paths = {layer.path for layer in net.layers()}
    assert "layer2.0.downsample.0" in paths and "layer1.0.downsample.0" not in paths
    assert "layer1.1.conv2" in paths and "fc" in paths
    add = stages[0].children[0].children[0]
    assert isinstance(add, Merge) and add.kind == "add"
    assert add.branches[1].children == []  # identity shortcut
    assert net.output_shape == (1000,)


DENSE = """
block dense_layer(growth: int, bn_size: int = 4) {
  norm1: batchnorm  relu  conv1: conv(bn_size * growth, k=1, bias=false)
  norm2: batchnorm  relu  conv2: conv(growth, k=3, p=1, bias=false)
}

block transition(c: int) {
  norm: batchnorm  relu  conv: conv(c, k=1, bias=false)  pool: avgpool(2, s=2)
}

network densenet(blocks: list = [6, 12, 24, 16], growth: int = 32) {
  input [64, 56, 56]
  for i, n in enumerate(blocks) {
    denseblock{i+1}: dense k in n { denselayer{k+1}: dense_layer(growth) }
    if i < len(blocks) - 1 { transition{i+1}: transition(in.c // 2) }
  }
}
"""


def test_dense_concat_densenet121_blocks(tmp_path):
    (net,) = clean(check_source(tmp_path, DENSE))
    blocks = [c for c in net.body.children if c.name.startswith("denseblock")]
    # DenseNet-121: 64 + 6*32 = 256 at 56x56; 128 + 12*32 = 512 at 28x28;
    # 256 + 24*32 = 1024 at 14x14; 512 + 16*32 = 1024 at 7x7
    assert [b.out_shape for b in blocks] == [(256, 56, 56), (512, 28, 28), (1024, 14, 14),
                                             (1024, 7, 7)]
    dense = blocks[0].children[0]
    assert isinstance(dense, DenseMerge)
    # step k sees the input and the k earlier outputs: 64 + 32 k channels
    assert [s.in_shape[0] for s in dense.steps] == [64 + 32 * k for k in range(6)]
    assert "denseblock1.denselayer6.conv2" in {layer.path for layer in net.layers()}


def test_check_at_another_input_resolution(tmp_path):
    (net,) = clean(check_source(tmp_path, RESNET, input_shape=(3, 32, 32)))
    assert net.input_shape == (3, 32, 32)
    stages = [c for c in net.body.children if getattr(c, "name", "").startswith("layer")]
    assert stages[-1].out_shape == (512, 1, 1)


def test_same_padding_uses_tensorflow_rule(tmp_path):
    text = """
network t() {
  input [3, 7, 7]
  conv(4, k=3, s=2, p='same')
  conv(4, k=4, p='same')
}
"""
    (net,) = clean(check_source(tmp_path, text))
    first, second = net.layers()
    # ceil(7 / 2) = 4; total pad (4 - 1) * 2 + 3 - 7 = 2 -> 1 top, 1 bottom
    assert first.out_shape == (4, 4, 4) and first.attrs["padding"] == ((1, 1), (1, 1))
    # even kernel, stride 1: total 3, the extra pixel at the bottom/right
    assert second.out_shape == (4, 4, 4) and second.attrs["padding"] == ((1, 2), (1, 2))


def test_load_returns_network_with_overrides_and_raises_with_all_errors(tmp_path):
    path = tmp_path / "r.arch"
    path.write_text(RESNET)
    net = archspec.load(str(path), net="resnet18", classes=10)
    assert net.output_shape == (10,)
    broken = tmp_path / "broken.arch"
    broken.write_text("network n() {\n  input [3, 8, 8]\n  conv(0, k=3)\n  linear(10)\n"
                      "  foo\n}\n")
    with pytest.raises(ArchError) as info:
        archspec.load(str(broken))
    codes = [(d.code, d.span.line) for d in info.value.errors]
    assert codes == [("E216", 3), ("E201", 5)]


def test_variants_of_variants_and_block_parameters(tmp_path):
    text = RESNET + "variant resnet18_10 = resnet18(classes=10)\n"
    nets = clean(check_source(tmp_path, text))
    assert [(n.name, n.output_shape) for n in nets] == [("resnet18", (1000,)),
                                                        ("resnet18_10", (10,))]


def test_imports_resolve_relative_to_the_importing_file(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "blocks.arch").write_text("block unit(c: int) { conv(c, k=3, p=1) relu }\n")
    (tmp_path / "main.arch").write_text(
        'from "lib/blocks.arch" import unit\n'
        "network n() {\n  input [3, 8, 8]\n  unit(4)\n  stem: unit(8)\n}\n")
    result = archspec.check_file(str(tmp_path / "main.arch"))
    (net,) = clean(result)
    assert [layer.path for layer in net.layers()] == ["0.0", "0.1", "stem.0", "stem.1"]
    assert net.output_shape == (8, 8, 8)


@pytest.mark.parametrize("spec", sorted((ROOT / "specs").glob("*.arch")), ids=lambda p: p.name)
def test_every_library_spec_checks_cleanly(spec):
    result = archspec.check_file(str(spec))
    assert result.diagnostics == [], [d.message for d in result.diagnostics]
    assert result.networks
