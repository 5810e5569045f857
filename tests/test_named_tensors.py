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
from reference import assert_same, batch, compile_and_import, loaded, randomise
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
