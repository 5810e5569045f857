"""Built networks refuse inputs their layers cannot take (issue 13), with the expected shape
and the valid sizes, before torch's `mat1 and mat2 shapes cannot be multiplied`. The
reference is torch itself: the same module without the check fails exactly where the check
refuses, and gives the same output where it accepts."""

import copy
import pickle

import pytest
import torch

import archspec
from archspec.check import check_file, input_sizes

POOLED = """
network pooled(classes: int = 4) {
  input [3, 24, 20]
  conv(8, 3, s=2)  relu
  maxpool(3, s=2)
  conv(8, 3)
  global_avgpool flatten
  fc: linear(classes)
}
"""

FUSE = """
network fuse() {
  input rgb: [3, 16, 16]
  input depth: [1, 16, 16]
  a: conv(8, k=3, p=1)
  @depth
  conv(8, k=3, p=1)
  add { {} @a }
  global_avgpool flatten
}
"""


def built(text: str, tmp_path, name: str = "net.arch"):
    path = tmp_path / name
    path.write_text(text)
    network = archspec.load(str(path))
    torch.manual_seed(0)
    return network, archspec.build(network).eval()


def unchecked(model: torch.nn.Module) -> torch.nn.Module:
    """The same module (same weights) without its input check."""
    other = copy.deepcopy(model)
    other._forward_pre_hooks.clear()
    return other


def torch_runs(model: torch.nn.Module, *inputs: torch.Tensor) -> bool:
    try:
        with torch.no_grad():
            model(*inputs)
    except RuntimeError:
        return False
    return True


def refusal(model: torch.nn.Module, *inputs: torch.Tensor) -> str:
    with pytest.raises(ValueError) as info, torch.no_grad():
        model(*inputs)
    return str(info.value)


def test_the_check_refuses_exactly_the_sizes_torch_cannot_run(tmp_path):
    network, model = built(POOLED, tmp_path)
    plain = unchecked(model)
    for axis in (1, 2):
        for size in (1, 2, 5, *range(11, 19), 40):  # the smallest is 15
            shape = [1, *network.input_shape]
            shape[axis + 1] = size
            x = torch.randn(shape)
            if torch_runs(plain, x):
                with torch.no_grad():
                    assert torch.equal(model(x), plain(x)), shape
            else:
                refusal(model, x)


def test_a_too_small_size_is_refused_naming_the_expected_shape_and_sizes(tmp_path):
    network, model = built(POOLED, tmp_path)
    sizes = input_sizes(network)
    smallest = sizes["H"].smallest
    assert smallest > 1 and not torch_runs(unchecked(model), torch.randn(2, 3, smallest - 1, 20))
    message = refusal(model, torch.randn(2, 3, smallest - 1, 20))
    assert network.name in message
    assert sizes["H"].describe("H") in message and sizes["W"].describe("W") in message
    assert f"H = {smallest - 1}" in message and "W = 20" not in message
    assert f"2 x 3 x {smallest - 1} x 20" in message  # what it got, batch first
    assert model(torch.randn(2, 3, smallest, 57)).shape == (2, 4)


def test_wrong_channels_are_refused_with_the_channels_it_takes(tmp_path):
    network, model = built(POOLED, tmp_path)
    channels = network.input_shape[0]
    assert input_sizes(network)["C"] == type(input_sizes(network)["C"]).exactly(channels)
    x = torch.randn(1, channels + 1, 24, 20)
    assert not torch_runs(unchecked(model), x)
    message = refusal(model, x)
    assert f"{channels + 1} channels" in message and f"it takes {channels}" in message


def test_a_size_the_weights_do_not_fit_is_refused_before_torchs_matmul_error(tmp_path):
    """LeNet flattens its last map into its first linear layer: a bigger digit fails in
    torch as `mat1 and mat2 shapes cannot be multiplied`."""
    network = archspec.load("specs/lenet.arch", net="lenet")
    model = archspec.build(network).eval()
    plain = unchecked(model)
    sizes = input_sizes(network)
    for size in range(24, 36):
        x = torch.randn(1, 1, size, network.input_shape[2])
        assert torch_runs(plain, x) == (size in sizes["H"]), size
        if size not in sizes["H"]:
            assert sizes["H"].describe("H") in refusal(model, x)


def test_named_inputs_after_the_first_take_their_declared_shape(tmp_path):
    _, model = built(FUSE, tmp_path)
    rgb, depth = torch.randn(1, 3, 16, 16), torch.randn(1, 1, 16, 16)
    assert model(rgb, depth).shape == (1, 8)
    wrong = torch.randn(1, 1, 12, 16)
    assert not torch_runs(unchecked(model), rgb, wrong)
    message = refusal(model, rgb, wrong)
    assert "`depth`" in message and "1 x 12 x 16" in message


def test_pickled_and_copied_models_refuse_the_same(tmp_path):
    _, model = built(POOLED, tmp_path)
    x = torch.randn(1, 3, 4, 20)
    copies = [pickle.loads(pickle.dumps(model)), copy.deepcopy(model),
              pickle.loads(pickle.dumps(pickle.loads(pickle.dumps(model))))]
    expected = refusal(model, x)
    for other in copies:
        assert refusal(other, x) == expected
        assert other(torch.randn(1, 3, 40, 41)).shape == (1, 4)


def test_a_sequence_network_checks_its_steps_and_features(tmp_path):
    network = check_file("specs/sequence.arch", "lstm_lm").networks[0]
    model = archspec.build(network).eval()
    steps, features = network.input_shape
    assert model(torch.randn(2, steps + 9, features)).shape[:2] == (2, steps + 9)
    x = torch.randn(2, steps, features + 1)
    assert not torch_runs(unchecked(model), x)
    assert input_sizes(network)["F"].describe("F") in refusal(model, x)
