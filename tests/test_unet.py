"""specs/unet.arch against a U-Net written by hand in PyTorch, as the paper describes it
(Ronneberger et al. 2015, figure 1): valid 3x3 convs with ReLU, 2x2 max pools, 2x2
up-convolutions halving the channels, the encoder's map centre-cropped and concatenated
before the decoder's convs, a 1x1 conv to the classes.

The paper's sizes are checked statically (1x572x572 -> 2x388x388, and the map sizes of
figure 1 at every level), the parameter count and state_dict against the hand-written
module, and the outputs with shared random weights: at full size (slow), and for narrower
and smaller instances of the same spec in the fast suite. The padded variant keeps the
input size. The compiled file builds the same module.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from reference import assert_same, batch, compile_and_import, loaded, randomise
from torch import nn

import archspec
from archspec.diagram import to_dot

SPEC = str(Path(__file__).resolve().parents[1] / "specs" / "unet.arch")


def double_conv(cin: int, c: int, p: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, c, 3, padding=p), nn.ReLU(inplace=True),
                         nn.Conv2d(c, c, 3, padding=p), nn.ReLU(inplace=True))


def center_crop(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    h, w = like.shape[-2:]
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[..., top:top + h, left:left + w]


class UNet(nn.Module):
    def __init__(self, widths=(64, 128, 256, 512), classes: int = 2, p: int = 0) -> None:
        super().__init__()
        self.levels = len(widths)
        cin = 1
        for i, c in enumerate(widths, 1):
            self.add_module(f"down{i}", double_conv(cin, c, p))
            cin = c
        self.bottom = double_conv(cin, 2 * cin, p)
        below = 2 * cin
        for i in range(len(widths), 0, -1):
            c = widths[i - 1]
            self.add_module(f"up{i}", nn.ConvTranspose2d(below, c, 2, stride=2))
            below = c
            self.add_module(f"dec{i}", double_conv(2 * c, c, p))
        self.head = nn.Conv2d(widths[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i in range(1, self.levels + 1):
            x = getattr(self, f"down{i}")(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for i in range(self.levels, 0, -1):
            x = getattr(self, f"up{i}")(x)
            x = torch.cat([center_crop(skips[i - 1], x), x], 1)
            x = getattr(self, f"dec{i}")(x)
        return self.head(x)


def test_the_papers_sizes():
    network = archspec.load(SPEC, net="unet")
    assert network.input_shape == (1, 572, 572) and network.output_shape == (2, 388, 388)
    maps = {layer.path.split(".")[0]: layer.out_shape for layer in network.layers()}
    # figure 1: the last map of each level, down and up
    assert [maps[f"down{i}"] for i in (1, 2, 3, 4)] == [
        (64, 568, 568), (128, 280, 280), (256, 136, 136), (512, 64, 64)]
    assert maps["bottom"] == (1024, 28, 28)
    assert [maps[f"up{i}"] for i in (4, 3, 2, 1)] == [
        (512, 56, 56), (256, 104, 104), (128, 200, 200), (64, 392, 392)]
    assert [maps[f"dec{i}"] for i in (4, 3, 2, 1)] == [
        (512, 52, 52), (256, 100, 100), (128, 196, 196), (64, 388, 388)]


@pytest.mark.parametrize(("net", "p"), [("unet", 0), ("unet_padded", 1)])
def test_params_and_state_dict_equal_the_hand_written_unet(net, p):
    network = archspec.load(SPEC, net=net)
    reference = UNet(p=p)
    built = archspec.build(network)
    assert network.params == sum(t.numel() for t in reference.parameters())
    shapes = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in built.state_dict().items()} == shapes
    built.load_state_dict(reference.state_dict(), strict=True)


@pytest.mark.parametrize(("size", "widths", "p"), [
    (188, [4, 8, 16, 32], 0), (204, [3, 5, 7, 9], 0), (64, [4, 8, 16, 32], 1),
    (48, [2, 4, 6], 1), (140, [4, 8, 16], 0)])
def test_outputs_equal_the_hand_written_unet(size, widths, p):
    network = archspec.load(SPEC, net="unet", size=size, widths=widths, p=p)
    reference = UNet(widths, p=p)
    assert_same(loaded(archspec.build(network), reference), reference,
                batch(network.input_shape))


@pytest.mark.slow
def test_full_size_outputs_equal_the_hand_written_unet():
    network = archspec.load(SPEC, net="unet")
    reference = UNet()
    assert_same(loaded(archspec.build(network), reference), reference,
                batch(network.input_shape, n=1), modes=(False,))


def test_padded_variant_keeps_the_input_size():
    network = archspec.load(SPEC, net="unet_padded")
    assert network.input_shape[1:] == network.output_shape[1:] == (512, 512)


def test_compiled_unet_equals_build(tmp_path):
    """The compiled file of a small U-Net (the spec's text with smaller defaults)."""
    text = Path(SPEC).read_text()
    small = text.replace("size: int = 572", "size: int = 188").replace(
        "widths: list = [64, 128, 256, 512]", "widths: list = [4, 8, 16, 32]")
    assert small != text
    path = tmp_path / "unet_small.arch"
    path.write_text(small)
    for net in ("unet", "unet_padded"):
        module = compile_and_import(str(path), tmp_path / f"{net}_small.py", "--net", net)
        network = archspec.load(str(path), net=net)
        built = randomise(archspec.build(network))
        written = getattr(module, net)()
        written.load_state_dict(built.state_dict(), strict=True)
        assert_same(written, built, batch(network.input_shape))


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_diagram_is_a_u():
    """Laid out by dot: each decoder level on its encoder level's row, to its right, the rows
    going down to the bottom block; the skips are the dashed edges."""
    dot = to_dot(archspec.load(SPEC, net="unet"))
    plain = subprocess.run(["dot", "-Tplain"], input=dot, capture_output=True, text=True,
                           check=True).stdout
    where = {}
    for line in plain.splitlines():
        parts = line.split()
        if parts[0] == "node":
            where[parts[1].strip('"')] = (float(parts[2]), float(parts[3]))
    down = [where[f"S.down{i}"] for i in (1, 2, 3, 4)]
    dec = [where[f"S.dec{i}"] for i in (1, 2, 3, 4)]
    bottom = where["S.bottom"]
    assert [y for _, y in down] == [y for _, y in dec]
    assert [y for _, y in down] == sorted((y for _, y in down), reverse=True)
    assert bottom[1] < down[-1][1]
    assert all(xd < xu for (xd, _), (xu, _) in zip(down, dec))
    skips = [line for line in dot.splitlines() if "dashed" in line and "->" in line]
    assert len(skips) == 4 and all('"S.down' in line for line in skips)
