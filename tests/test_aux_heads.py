"""GoogLeNet's and Inception-v3's auxiliary classifiers, as torchvision builds them by default
(`googlenet(weights=None)`, `inception_v3(weights=None)`: aux_logits=True). With torchvision's
random weights and batchnorm statistics loaded strictly into archspec.build()'s module, both
give the same logits in eval mode and the same (logits, aux...) tuples in training mode, where
the auxiliary heads run (GoogLeNetOutputs(logits, aux_logits2, aux_logits1) and
InceptionOutputs(logits, aux_logits)). The heads' parameters are counted; their MACs, like
torchvision's in eval mode, are not part of the network's."""

from __future__ import annotations

import pytest

import archspec

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from test_library import (
    SPECS,
    TORCHVISION_KWARGS,
    give_batchnorms_real_statistics,
    on_meta,
)

# (spec file, network, the auxiliary heads' module names, the side of the images compared:
# GoogLeNet's heads pool adaptively, Inception-v3's 5x5 conv needs its 299x299)
NETWORKS = [("googlenet.arch", "googlenet", ["aux1", "aux2"], 64),
            ("inception.arch", "inception_v3", ["AuxLogits"], 299)]
IDS = [name for _, name, _, _ in NETWORKS]


@pytest.mark.parametrize(("file", "name", "heads", "side"), NETWORKS, ids=IDS)
def test_auxiliary_heads_are_torchvisions(file, name, heads, side):
    """The same parameters under the same names and shapes, the heads included, and the
    network without them has exactly the heads' parameters fewer."""
    net = archspec.load(str(SPECS / file), net=name)
    theirs = on_meta(name)
    with torch.device("meta"):
        ours = archspec.build(net)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()}
    head_params = sum(p.numel() for head in heads for p in getattr(theirs, head).parameters())
    assert head_params > 0
    assert net.params == sum(p.numel() for p in theirs.parameters())
    without = archspec.load(str(SPECS / file), net=f"{name}_no_aux")
    assert without.params == net.params - head_params


@pytest.mark.slow
@pytest.mark.parametrize(("file", "name", "heads", "side"), NETWORKS, ids=IDS)
def test_outputs_match_torchvision_in_eval_and_training_mode(file, name, heads, side):
    net = archspec.load(str(SPECS / file), net=name)
    torch.manual_seed(0)
    theirs = torchvision.models.get_model(name, weights=None, **TORCHVISION_KWARGS[name])
    give_batchnorms_real_statistics(theirs, torch.randn(2, 3, side, side))
    with torch.device("meta"):
        ours = archspec.build(net)
    ours.load_state_dict(theirs.state_dict(), strict=True, assign=True)
    x = torch.randn(2, 3, side, side)
    theirs.eval(), ours.eval()
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    assert isinstance(got, torch.Tensor) and got.shape == (2, 1000)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    theirs.train(), ours.train()
    with torch.no_grad():
        torch.manual_seed(1)  # the same dropout masks, drawn in the same order
        expected = theirs(x)
        torch.manual_seed(1)
        got = ours(x)
    assert isinstance(got, tuple) and len(got) == len(expected) == 1 + len(heads)
    for mine, torchvisions in zip(got, expected, strict=True):
        torch.testing.assert_close(mine, torchvisions, rtol=0, atol=1e-5)
