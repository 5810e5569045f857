"""Symbolic input sizes: formulas that equal the arithmetic they stand for, valid-size sets
that are what they say, and for every network in specs/ the valid sizes PyTorch itself
accepts (the built module run on the meta device, size by size)."""

from __future__ import annotations

import functools
import math
import random
from pathlib import Path

import pytest
from checked_library import library_networks
from hypothesis import given, settings
from hypothesis import strategies as st

from archspec.check import check_file
from archspec.cli import main
from archspec.sizes import SizeSet, from_flags
from archspec.symbolic import Poly, SymDim, evaluator, formula, recording

ROOT = Path(__file__).resolve().parent.parent

# one size step of a network: conv/pool windows (floor), ceil-mode pools, transposed convs
# and upsampling (multiply), paddings and crops (add)
STEPS = st.lists(st.one_of(
    st.tuples(st.just("window"), st.integers(0, 6), st.integers(1, 7), st.integers(1, 4)),
    st.tuples(st.just("ceil"), st.integers(0, 6), st.integers(1, 5), st.integers(1, 4)),
    st.tuples(st.just("times"), st.integers(-3, 3), st.integers(1, 4), st.just(0)),
    st.tuples(st.just("mod"), st.integers(1, 9), st.just(0), st.just(0)),
), min_size=1, max_size=8)


def apply(steps, size):
    """The steps on a size: plain arithmetic, the same code for ints and SymDims."""
    for kind, a, b, c in steps:
        if kind == "window":  # (size + 2p - k) // s + 1
            size = (size + a - b) // c + 1
        elif kind == "ceil":
            size = -((-(size + a - b)) // c) + 1
        elif kind == "times":
            size = size * b + a
        else:
            size = size + size % a
    return size


@settings(max_examples=300, deadline=None)
@given(STEPS, st.integers(1, 400))
def test_a_formula_equals_the_arithmetic_at_every_size(steps, witness):
    """The normal form (floors composed, multiples taken out) changes no value."""
    symbolic = apply(steps, SymDim(witness, Poly.var("H")))
    value = evaluator(symbolic.poly) if isinstance(symbolic, SymDim) else lambda v: symbolic
    for size in range(1, 300):
        assert value({"H": size}) == apply(steps, size), (steps, size, formula(symbolic))
    assert int(symbolic) == apply(steps, witness)


def test_a_printed_shape_reads_as_its_arithmetic(capsys):
    """`x` between sizes is a product, so a size that is a sum is in parentheses: the paper's
    U-Net's output, read as arithmetic, is 2 x 388 x 388 at 572 x 572 (Ronneberger et al.,
    2015, Figure 1)."""
    spec = str(ROOT / "specs" / "unet.arch")
    assert main(["check", spec, "--net", "unet", "--input", "1,H,W"]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    output = line.split(" -> ")[1].split("  ")[0]
    names = {"floor": math.floor, "ceil": math.ceil, "H": 572, "W": 572}
    assert eval(output.replace(" x ", " * "), names) == 2 * 388 * 388


@settings(max_examples=200, deadline=None)
@given(STEPS, st.integers(1, 200), st.integers(-20, 20))
def test_recorded_conditions_hold_exactly_where_the_comparison_answers_the_same(
        steps, witness, bound):
    symbolic = apply(steps, SymDim(witness, Poly.var("H")))
    with recording() as recorder:
        answer = symbolic > bound
    holds = recorder.test()
    for size in range(1, 300):
        assert holds({"H": size}) == ((apply(steps, size) > bound) == answer)


def test_size_sets_are_exactly_their_members():
    """from_flags on random eventually periodic sets: membership agrees everywhere."""
    rng = random.Random(5)
    for _ in range(300):
        period, tail = rng.randint(1, 12), rng.randint(1, 40)
        pattern = [rng.random() < 0.5 for _ in range(period)]
        prefix = {n: rng.random() < 0.5 for n in range(1, tail)}
        member = (lambda n, prefix=prefix, pattern=pattern, tail=tail, period=period:
                  prefix[n] if n < tail else pattern[(n - tail) % period])
        flags = {n: member(n) for n in range(1, tail + 2 * period)}
        found = from_flags(flags, tail, period)
        assert all((n in found) == member(n) for n in range(1, tail + 10 * period))
        json = found.to_json()
        if "step" in json:
            assert all((n in found) == (n >= json["min"] and (n - json["min"]) % json["step"]
                                        == 0) for n in range(1, 500))


def test_a_set_says_so_when_it_is_not_min_plus_k_step():
    assert SizeSet(start=4, period=2, residues=(0,)).to_json() == {"min": 4, "step": 2}
    assert SizeSet(finite=(32, 33)).to_json()["form"] == "finite"
    assert SizeSet(start=3, period=4, residues=(0, 1)).to_json()["form"] == "periodic"


SYMBOLIC = """
network tiny() {
    input [3, H, W]
    conv(16, k=3, p=1) relu maxpool(2)
    conv(32, k=3) relu maxpool(2)
    conv(64, k=3, p=1) relu maxpool(2)
    global_avgpool flatten linear(10)
}
"""


def test_a_spec_with_size_names_is_checked_for_every_size(tmp_path):
    """The sizes a hand count gives: 12 is the smallest size that leaves the last pool a
    pixel ((((H // 2) - 2) // 2) // 2 >= 1)."""
    path = tmp_path / "tiny.arch"
    path.write_text(SYMBOLIC)
    result = check_file(path)
    assert not result.errors
    sizes = result.networks[0].sizes
    smallest = min(h for h in range(1, 100) if ((h // 2 - 2) // 2) // 2 >= 1)
    for name in "HW":
        assert sizes.sets[name].to_json() == {"min": smallest, "step": 1}


def test_weights_that_depend_on_the_size_are_an_error(tmp_path):
    path = tmp_path / "lenet.arch"
    path.write_text("network lenet() {\n    input [1, H, W]\n    conv(6, k=5) relu maxpool(2)\n"
                    "    flatten linear(10)\n}\n")
    result = check_file(path)
    assert [(d.code, d.span.line) for d in result.errors] == [("E316", 4)]


def test_declared_sizes_fix_the_weights(tmp_path):
    """`--input 1,H,W` on a LeNet declared 1x28x28: the linear layer's weights are those of
    28x28, so exactly the sizes that floor to the same 5x5 are valid (28 to 31)."""
    path = tmp_path / "lenet.arch"
    path.write_text("network lenet() {\n    input [1, 28, 28]\n    conv(6, k=5) relu maxpool(2)\n"
                    "    conv(16, k=3) relu maxpool(2)\n    flatten linear(10)\n}\n")
    result = check_file(path, None, (1, "H", "W"))
    assert not result.errors
    same = [h for h in range(1, 200) if ((h - 4) // 2 - 2) // 2 == ((28 - 4) // 2 - 2) // 2]
    assert result.networks[0].sizes.sets["H"] == SizeSet(finite=tuple(same))


# ---------------------------------------------------------------- against PyTorch


def library() -> list[tuple[str, str, tuple]]:
    found = []
    for path, net in library_networks():
        if len(net.input_shape) == 3 and not net.inputs:
            found.append((str(path.relative_to(ROOT)), net.name, net.input_shape))
    return found


def torch_accepts(module, shape: tuple, modes: tuple[bool, ...]) -> bool:
    """Whether the module runs a batch of this shape in every mode (training: True)."""
    import torch

    for training in modes:
        module.train(training)
        try:
            with torch.inference_mode():
                module(torch.empty(1, *shape, device="meta"))
        except (RuntimeError, ValueError, IndexError):
            return False
    return True


def on_meta(network):
    """The built module on the meta device, without its own input check (the test asks
    PyTorch), with the layers that accept any size in eval mode (batchnorm, activations,
    dropout) made identities: PyTorch's meta kernels for them are slow Python."""
    import torch

    import archspec

    with torch.device("meta"):
        module = archspec.build(network, max_bytes=1 << 62)
    module._forward_pre_hooks.clear()
    any_size = (torch.nn.BatchNorm2d, torch.nn.ReLU, torch.nn.ReLU6, torch.nn.Hardswish,
                torch.nn.SiLU, torch.nn.Dropout, torch.nn.Hardsigmoid, torch.nn.GELU,
                torch.nn.Sigmoid)
    for parent in list(module.modules()):
        for name, child in parent.named_children():
            if isinstance(child, any_size):
                setattr(parent, name, torch.nn.Identity())
            elif isinstance(child, torch.nn.LayerNorm):
                child.forward = functools.partial(norm_shape, child)
    return module


def norm_shape(norm, x):
    """A LayerNorm's shape rule without its arithmetic (torch's meta LayerNorm is slow
    Python): the trailing dims, after a LayerNorm2d's permute, must be the normalised shape,
    as torch requires; the output has the input's shape."""
    channels_first = type(norm).__name__ == "LayerNorm2d"
    trailing = tuple((x.permute(0, 2, 3, 1) if channels_first else x).shape)
    if trailing[-len(norm.normalized_shape):] != tuple(norm.normalized_shape):
        raise RuntimeError(f"normalized_shape {norm.normalized_shape}, got {tuple(x.shape)}")
    return x


TORCH_RANGE = range(1, 321)


def sizes_to_try(found: SizeSet, every: int) -> list[int]:
    """Every `every`-th size of 1..320, the first 40, and both sides of every place where
    membership changes."""
    edges = {n + d for n in TORCH_RANGE[1:] if (n in found) != (n - 1 in found) for d in (-1, 0)}
    return sorted({*TORCH_RANGE[::every], *range(1, 41), *(n for n in edges if n >= 1)})


@pytest.mark.slow
@pytest.mark.parametrize("file", sorted({f for f, _, _ in library()}))
def test_valid_sizes_are_the_sizes_pytorch_accepts(file):
    """Each axis with the other at the declared size, in eval mode and, where the network
    has `aux` branches, in training mode too (valid sizes are those both take). The smallest
    network of each file is tried at every height of 1..320; its widths and its siblings, to
    keep the suite within CI's time, at the first 40, every 80th and both sides of every
    boundary."""
    import archspec

    networks = [(name, shape) for f, name, shape in library() if f == file]
    smallest = min(networks, key=lambda item: archspec.load(ROOT / file, item[0]).params)[0]
    for name, (c, h, w) in networks:
        checked = check_file(ROOT / file, name, (c, "H", "W")).networks[0]
        network = archspec.load(ROOT / file, name)
        module = on_meta(network)
        modes = (False, True) if network.training_only_layers else (False,)
        every = 1 if name == smallest else 80
        for axis, sizes in checked.sizes.sets.items():
            assert sizes.limit is None, (name, axis, sizes.describe(axis))
            for size in sizes_to_try(sizes, every if axis == "H" else 80):
                shape = (c, size, w) if axis == "H" else (c, h, size)
                assert torch_accepts(module, shape, modes) == (size in sizes), (
                    name, axis, size, sizes.describe(axis))
