"""Named tensors (`@name`), side branches, `aux` heads and `return(...)` against PyTorch
written by hand.

The spec below reads a tensor twice (a skip from `stem`, taken before the relu that follows
it: an in-place relu would change what the skip reads), starts a branch at the network's
input (`@input`), computes an auxiliary head only in training and a tap in both modes, and
returns a tuple that eval mode shortens, as torchvision's GoogLeNet does. The reference
module is written out in plain torch; the built module takes its randomised state with
strict=True and must give its outputs in both modes, as must the compiled file, a pickled
copy and a dict-returning network. Counts, summary rows and the diagram's skip edges are
checked against the same reference.
"""

from __future__ import annotations

import pickle

import pytest
import torch
import torch.nn.functional as F
from reference import assert_same, batch, compile_and_import, loaded, outputs, randomise
from torch import nn

import archspec
from archspec.diagram import to_dot
from archspec.summary import summarize

SPEC = """
network skips(classes: int = 5) {
  input [3, 16, 16]
  stem: conv(8, k=3, p=1)
  relu
  body: { conv(8, k=3, p=1) batchnorm relu }
  concat { @stem {} }
  fuse: conv(8, k=1)
  add { {} { @input proj: conv(8, k=1) } }
  aux { aux1: { global_avgpool flatten linear(classes) } }
  side { tap: conv(4, k=1) }
  relu
  head: { global_avgpool flatten linear(classes) }
  return(in, @tap, @aux1)
}

network heads() {
  input [3, 8, 8]
  features: { conv(6, k=3, p=1) relu }
  out: conv(2, k=1)
  @features
  aux: conv(2, k=1)
  return(out=@out, aux=in)
}
"""


class Skips(nn.Module):
    """`skips`, by hand."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.fuse = nn.Conv2d(16, 8, 1)
        self.proj = nn.Conv2d(3, 8, 1)
        self.aux1 = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes))
        self.tap = nn.Conv2d(8, 4, 1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes))

    def forward(self, x):
        stem = self.stem(x)
        y = self.fuse(torch.cat([stem, self.body(torch.relu(stem))], 1)) + self.proj(x)
        aux = self.aux1(y) if self.training else None
        tap = self.tap(y)
        out = self.head(torch.relu(y))
        return (out, tap, aux) if self.training else (out, tap)


class Heads(nn.Module):
    """`heads`, by hand: a dict of two heads on the same features."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU())
        self.out = nn.Conv2d(6, 2, 1)
        self.aux = nn.Conv2d(6, 2, 1)

    def forward(self, x):
        features = self.features(x)
        return {"out": self.out(features), "aux": self.aux(features)}


REFERENCES = {"skips": Skips, "heads": Heads}


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("named") / "named.arch"
    path.write_text(SPEC)
    return str(path)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_built_network_equals_the_hand_written_one(spec, name):
    reference = REFERENCES[name]()
    built = loaded(archspec.build(spec, net=name), reference)
    assert list(built.state_dict()) == list(reference.state_dict())
    assert_same(built, reference, batch(archspec.load(spec, net=name).input_shape, n=3))


def test_eval_mode_leaves_out_the_aux_head(spec):
    built = archspec.build(spec, net="skips").eval()
    out = built(batch((3, 16, 16)))
    assert isinstance(out, tuple) and [t.shape[1:] for t in out] == [(5,), (4, 16, 16)]
    assert len(built.train()(batch((3, 16, 16)))) == 3


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_compiled_source_and_pickle_equal_build(spec, name, tmp_path):
    built = randomise(archspec.build(spec, net=name))
    written = getattr(compile_and_import(spec, tmp_path / f"named_{name}.py"), name)()
    written.load_state_dict(built.state_dict(), strict=True)
    x = batch(archspec.load(spec, net=name).input_shape, n=3)
    assert_same(written, built, x)
    assert_same(pickle.loads(pickle.dumps(built)), built, x)


def test_counts_and_training_only_totals(spec):
    network = archspec.load(spec, net="skips")
    reference = Skips()
    assert network.params == sum(p.numel() for p in reference.parameters())
    summary = summarize(network)
    assert summary.training_params == sum(p.numel() for p in reference.aux1.parameters())
    assert summary.training_macs == 8 * 5  # the aux head's linear
    assert [o.shape for o in network.outputs] == [(5,), (4, 16, 16), (5,)]
    assert [o.training for o in network.outputs] == [False, False, True]
    assert [(row.name, row.op, row.output_shape) for row in summary.rows[-3:]] == [
        ("(return 0)", "in", (5,)), ("(return 1)", "@tap", (4, 16, 16)),
        ("(return 2)", "@aux1 (aux)", (5,))]
    skips = [row for row in summary.rows if row.op == "from"]
    assert [(row.name, row.output_shape) for row in skips] == [("(@stem)", (8, 16, 16)),
                                                              ("(@input)", (3, 16, 16))]


def test_diagram_draws_skips_across(spec):
    dot = to_dot(archspec.load(spec, net="skips"), depth=1)
    skip = [line for line in dot.splitlines() if line.strip().startswith('"L.stem" ->')
            and "concat" in line]
    assert len(skip) == 1 and "dashed" in skip[0]
    assert "rank=same" not in dot  # one resolution: drawn as a column, not in rows
    assert dot.count('"output.') >= 3  # one node per output


RESIZE = """
network resize(mode: str = "bilinear") {
  input [3, 12, 10]
  low: conv(4, k=3, s=2, p=1)
  @input
  high: conv(4, k=1)
  @low
  up: upsample(like=@high, mode=mode, align_corners=false if mode == "bilinear" else none)
  add { {} @high }
  cut: crop(like=@low)
}
"""


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_like_resizes_and_crops_to_another_tensor(tmp_path, mode):
    """upsample(like=) is F.interpolate to the other tensor's size, crop(like=) the centre of
    that size, at whatever size the input has."""
    path = tmp_path / "resize.arch"
    path.write_text(RESIZE.replace("none", "false") if mode == "bilinear" else
                    RESIZE.replace(', align_corners=false if mode == "bilinear" else none', ""))
    built = randomise(archspec.build(str(path), mode=mode)).eval()
    x = batch((3, 12, 10))
    low, high = built.low(x), built.high(x)
    align = {"align_corners": False} if mode == "bilinear" else {}
    up = F.interpolate(low, size=high.shape[-2:], mode=mode, **align) + high
    top, left = (12 - 6) // 2, (10 - 5) // 2
    with torch.no_grad():
        torch.testing.assert_close(built(x), up[..., top:top + 6, left:left + 5])
        assert built(batch((3, 20, 16))).shape == (2, 4, 10, 8)  # sizes follow the input


@pytest.mark.parametrize(("h", "w", "th", "tw"), [(9, 9, 4, 4), (8, 5, 8, 5), (7, 6, 2, 5),
                                                  (5, 5, 6, 5), (6, 4, 3, 7)])
def test_crop_like_sizes_against_slicing(tmp_path, h, w, th, tw):
    """crop(like=@t): a map larger than the crop in each axis gives torch's slice; a smaller
    one is E313, before torch would slice past the edge silently."""
    path = tmp_path / "crop.arch"
    path.write_text(f"network n() {{\n  input [2, {h}, {w}]\n  small: adaptive_avgpool(({th}, "
                    f"{tw}))\n  @input\n  crop(like=@small)\n}}\n")
    if th > h or tw > w:
        with pytest.raises(archspec.ArchError, match="E313"):
            archspec.load(str(path))
        return
    network = archspec.load(str(path))
    x = batch((2, h, w))
    top, left = (h - th) // 2, (w - tw) // 2
    with torch.no_grad():
        torch.testing.assert_close(archspec.build(network)(x),
                                   x[..., top:top + th, left:left + tw])
    assert network.output_shape == (2, th, tw)


def test_like_refuses_what_is_not_a_tensor(tmp_path):
    path = tmp_path / "bad.arch"
    path.write_text("network n() {\n  input [2, 8, 8]\n  a: conv(2, k=1)\n"
                    "  upsample(size=@a)\n  upsample(like=3)\n  let s = @a\n}\n")
    with pytest.raises(archspec.ArchError) as error:
        archspec.load(str(path))
    text = str(error.value)
    assert "`size` of `upsample` is not a tensor" in text
    assert "`like` of `upsample` is a tensor" in text
    assert "a tensor reference is not a value here" in text


FUSE = """
network fuse(classes: int = 5) {
  input rgb: [3, 16, 16]
  input depth: [1, 16, 16]
  a: conv(8, k=3, p=1)
  @depth
  b: conv(8, k=3, p=1)
  add { {} @a }
  relu
  global_avgpool flatten
  fc: linear(classes)
  return(logits=in, depth=@depth)
}
"""


class Fuse(nn.Module):
    """`fuse`, by hand: two inputs, their features added."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(1, 8, 3, padding=1)
        self.fc = nn.Linear(8, 5)

    def forward(self, rgb, depth):
        features = torch.relu(self.b(depth) + self.a(rgb)).mean((2, 3))
        return {"logits": self.fc(features), "depth": depth}


def test_several_inputs(tmp_path):
    path = tmp_path / "fuse.arch"
    path.write_text(FUSE)
    network = archspec.load(str(path))
    assert network.inputs == [("depth", (1, 16, 16))]
    reference = Fuse()
    built = loaded(archspec.build(network), reference)
    rgb, depth = batch((3, 16, 16)), batch((1, 16, 16), seed=5)
    written = compile_and_import(str(path), tmp_path / "fuse.py").fuse()
    written.load_state_dict(built.state_dict(), strict=True)
    with torch.no_grad():
        want = reference(rgb, depth)
        for model in (built, written):
            got = model(rgb, depth)
            assert list(got) == ["logits", "depth"]
            for key in want:
                torch.testing.assert_close(got[key], want[key])
    with pytest.raises(TypeError, match="takes 2 input"):
        built(rgb)
    with pytest.raises(ValueError, match="1x16x16"):
        built(rgb, depth[0])
    with pytest.raises(ValueError, match="1x16x16"):
        written(rgb, depth[0])


ACROSS = """
block feats() {
  conv(4, k=3, p=1) relu
  conv(8, k=3, s=2, p=1) relu
  conv(8, k=3, s=2, p=1)
}

network across(classes: int = 3) {
  input [3, 32, 32]
  backbone: feats()
  classifier: {
    cbr: { conv(6, k=1, bias=false) batchnorm relu }
    @input
    scale: { adaptive_avgpool(1) conv(6, k=1, bias=false) sigmoid }
    @cbr
    gate { @scale }
    upsample(like=@backbone.2, mode="bilinear", align_corners=false)
    add { { @backbone.2 low: conv(classes, k=1) } high: conv(classes, k=1) }
  }
  upsample(like=@input, mode="bilinear", align_corners=false)
  return(out=in)
}
"""


class Across(nn.Module):
    """`across`, by hand: LR-ASPP's shape. The classifier reads the backbone's third
    module's output (before the relu after it) next to its own input."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(4, 8, 3, 2, 1), nn.ReLU(),
                                      nn.Conv2d(8, 8, 3, 2, 1))
        self.classifier = nn.Module()
        self.classifier.cbr = nn.Sequential(nn.Conv2d(8, 6, 1, bias=False), nn.BatchNorm2d(6),
                                            nn.ReLU())
        self.classifier.scale = nn.Sequential(nn.AdaptiveAvgPool2d(1),
                                              nn.Conv2d(8, 6, 1, bias=False), nn.Sigmoid())
        self.classifier.low, self.classifier.high = nn.Conv2d(8, 3, 1), nn.Conv2d(6, 3, 1)

    def forward(self, x):
        low = self.backbone[:3](x)
        high = self.backbone[3:](low)
        head = self.classifier
        y = head.cbr(high) * head.scale(high)
        y = F.interpolate(y, size=low.shape[-2:], mode="bilinear", align_corners=False)
        y = head.low(low) + head.high(y)
        return {"out": F.interpolate(y, size=x.shape[-2:], mode="bilinear",
                                     align_corners=False)}


def test_a_scope_reads_a_module_inside_another(tmp_path):
    """`@backbone.2` inside `classifier`: the backbone returns that output with its own (the
    relu after it no longer in place), the classifier takes it after its input."""
    path = tmp_path / "across.arch"
    path.write_text(ACROSS)
    network = archspec.load(str(path))
    reference = Across()
    built = loaded(archspec.build(network), reference)
    written = compile_and_import(str(path), tmp_path / "across.py").across()
    written.load_state_dict(built.state_dict(), strict=True)
    x = batch((3, 32, 32))
    for training in (False, True):
        want = outputs(reference, x, training)["out"]
        for model in (built, written):
            torch.testing.assert_close(outputs(model, x, training)["out"], want)
    classifier = next(n for n in network.body.children if getattr(n, "name", "") == "classifier")
    backbone = next(n for n in network.body.children if getattr(n, "name", "") == "backbone")
    assert classifier.free == ["backbone.2"] and backbone.exports == ["2"]


@pytest.mark.parametrize(("depth", "source"), [(0, "S.backbone"), (1, "L.backbone.2")])
def test_diagram_draws_a_read_into_another_scope(tmp_path, depth, source):
    """`@backbone.2` inside `classifier` is a dashed edge from the module that gives it, or
    from the collapsed backbone; no rows (its skips run across one level)."""
    path = tmp_path / "across.arch"
    path.write_text(ACROSS)
    dot = to_dot(archspec.load(str(path)), depth=depth)
    assert f'"{source}" -> "L.classifier.low" [style=dashed]' in dot
    assert "rank=same" not in dot
