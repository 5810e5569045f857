"""The segmentation networks of specs/segmentation.arch against torchvision's own
(torchvision.models.segmentation, aux_loss off, no pretrained weights): parameter counts,
module names and parameter shapes, conv geometry and MACs (forward hooks on torchvision's
model at 520x520, as tests/test_library.py counts them), the state_dict's names and shapes,
and, with torchvision's random weights and batchnorm statistics loaded strictly into
archspec.build()'s module, the same outputs in eval and training mode."""

from __future__ import annotations

import pytest

import archspec

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from test_library import (
    SEGMENTATION,
    SPECS,
    TORCH_TYPES,
    TORCHVISION_KWARGS,
    give_batchnorms_real_statistics,
    on_meta,
    reference,
    spec_owned,
)

FILE = str(SPECS / "segmentation.arch")
# The ResNet-101 networks take seconds to build with real weights and to run: their outputs
# are compared in the slow suite, the others' in the fast one, on a smaller image (every
# network here takes any size: the heads pool adaptively and resize to their input).
HEAVY = {"fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101"}
OUTPUT_SIDE = 97  # odd, so that the strided convs and bilinear resizing round


def spec(name: str):
    return archspec.load(FILE, net=name)


def torchvision_model(name: str):
    return torchvision.models.get_model(name, weights=None, **TORCHVISION_KWARGS[name])


@pytest.mark.parametrize("name", SEGMENTATION)
def test_counts_names_shapes_geometry_and_macs_match_torchvision(name):
    net = spec(name)
    ref = reference(name)
    assert net.input_shape == (3, 520, 520)
    assert net.params == ref["params"]
    assert net.macs == ref["macs"]
    owned = spec_owned(net)
    assert set(owned) == set(ref["owned"]), (
        f"only in the spec: {sorted(set(owned) - set(ref['owned']))[:8]}; "
        f"only in torchvision: {sorted(set(ref['owned']) - set(owned))[:8]}")
    layers = {layer.path: layer for layer in net.layers()}
    for path, (op, shapes) in owned.items():
        module_type, ref_shapes = ref["owned"][path]
        assert module_type is TORCH_TYPES[op], path
        assert shapes == ref_shapes, path
        if op == "conv":
            geometry = {k: tuple(layers[path].attrs[k]) if k != "groups"
                        else layers[path].attrs[k] for k in ref["convs"][path]}
            assert geometry == ref["convs"][path], path


@pytest.mark.parametrize("name", SEGMENTATION)
def test_state_dict_names_and_shapes_match_torchvision(name):
    """build()'s module on the meta device: every state_dict entry (buffers included) has
    torchvision's name and shape, in torchvision's order."""
    with torch.device("meta"):
        ours = archspec.build(spec(name))
    theirs = on_meta(name)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [
        (k, v.shape) for k, v in theirs.state_dict().items()]


def outputs_match(name: str, side: int) -> None:
    torch.manual_seed(0)
    theirs = torchvision_model(name)
    # Batches of two: ASPP's pooling branch normalises a 1x1 map, which training mode
    # refuses for a batch of one.
    give_batchnorms_real_statistics(theirs, torch.randn(2, 3, side, side))
    with torch.device("meta"):
        ours = archspec.build(spec(name))
    ours.load_state_dict(theirs.state_dict(), strict=True, assign=True)
    x = torch.randn(2, 3, side, side)
    for mode in ("eval", "train"):
        getattr(theirs, mode)(), getattr(ours, mode)()
        with torch.no_grad():
            torch.manual_seed(1)
            expected = theirs(x)
            torch.manual_seed(1)
            got = ours(x)
        assert list(got) == list(expected) == ["out"], mode
        assert got["out"].shape == (2, 21, side, side)
        torch.testing.assert_close(got["out"], expected["out"], rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", sorted(set(SEGMENTATION) - HEAVY))
def test_outputs_match_torchvision(name):
    outputs_match(name, OUTPUT_SIDE)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(HEAVY))
def test_outputs_match_torchvision_resnet_backbones(name):
    outputs_match(name, OUTPUT_SIDE)
