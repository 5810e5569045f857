"""gate, split, channels_last and scale against PyTorch written by hand, and against the
torchvision modules they exist to reproduce.

Each built module gets the reference's (randomised) weights, loaded with strict=True, and
must give the reference's outputs: torchvision's SqueezeExcitation (a per-channel gate),
a spatial gate (1 x H x W) written with torch.sigmoid, ShuffleNetV2's InvertedResidual
(split, then channel_shuffle) and a four-way split against x.chunk and torchvision's
channel_shuffle, ConvNeXt's CNBlock (channels_last, layer scale, stochastic depth),
StochasticDepth in training mode with the same seed, LayerNorm2d. Shape grids check that
`gate` refuses (E310) exactly what does not broadcast to the input's shape in PyTorch, and
`split` (E311) exactly what torch.chunk would not cut into equal shares. Then, for the same
networks: parameter and MAC counts against the torch modules (MACs by forward hooks on conv
and linear), the compiled source against build(), pickle and deepcopy.
"""

from __future__ import annotations

import copy
import pickle
from itertools import product
from math import prod

import pytest
import torch
from reference import assert_same, batch, compile_and_import, loaded, outputs, randomise
from torch import nn

import archspec
from archspec.summary import summarize

torchvision = pytest.importorskip("torchvision")
from torchvision.models.convnext import CNBlock, LayerNorm2d
from torchvision.models.shufflenetv2 import InvertedResidual, channel_shuffle
from torchvision.ops import Permute, SqueezeExcitation, StochasticDepth

SPEC = """
block se(sq: int, act: str = "sigmoid", c: int = in.c) {
  gate {
    avgpool: global_avgpool  fc1: conv(sq, k=1)  activation: relu  fc2: conv(c, k=1)
    if act == "sigmoid" { scale_activation: sigmoid } else { scale_activation: hardsigmoid }
  }
}

block shuffle_unit(c: int = in.c) {
  split {
    { }
    branch2: { conv(c // 2, k=1, bias=false) batchnorm relu
               dwconv(3, p=1, bias=false) batchnorm
               conv(c // 2, k=1, bias=false) batchnorm relu }
  }
  channel_shuffle(2)
}

block four_way(c: int = in.c) {
  split { a: conv(c // 4, k=1)  { }  b: dwconv(3, p=1)  { relu } }
  channel_shuffle(4)
}

block cn(ls: float = 1e-6, p: float = 0.0, c: int = in.c) {
  add {
    { block: { dwconv(k=7, p=3) channels_last { layernorm(eps=1e-6) linear(4 * c) gelu linear(c) } }
      layer_scale: scale(ls)
      stochastic_depth: stochastic_depth(p) }
  }
}

network se_net(c: int = 16, h: int = 6, w: int = 5, sq: int = 4, act: str = "sigmoid") {
  input [c, h, w]
  se: se(sq, act)
}

network spatial(c: int = 8, h: int = 6, w: int = 5, k: int = 3) {
  input [c, h, w]
  attention: gate { conv: conv(1, k=k, p=k // 2)  act: sigmoid }
}

network shuffle(c: int = 8, h: int = 5, w: int = 6) {
  input [c, h, w]
  unit: shuffle_unit
}

network four(c: int = 8, h: int = 4, w: int = 5) {
  input [c, h, w]
  unit: four_way
}

network convnext(c: int = 8, h: int = 7, w: int = 6, ls: float = 1e-6, p: float = 0.0) {
  input [c, h, w]
  cnblock: cn(ls, p)
}

network norm2d(c: int = 4, h: int = 3, w: int = 5, eps: float = 1e-6, affine: bool = true) {
  input [c, h, w]
  norm: layernorm2d(eps=eps, affine=affine)
}

network drop(c: int = 4, h: int = 3, w: int = 3, p: float = 0.3, mode: str = "row") {
  input [c, h, w]
  l: stochastic_depth(p, mode=mode)
}

network drop_flat(f: int = 6, p: float = 0.3, mode: str = "row") {
  input [f]
  l: stochastic_depth(p, mode=mode)
}

network mlp(c: int = 6, h: int = 3, w: int = 4, k: int = 10) {
  input [c, h, w]
  mlp: channels_last { layernorm(eps=1e-6) linear(k) gelu linear(c) }
}

variant se_hard = se_net(c=24, h=5, w=7, sq=8, act="hardsigmoid")
variant se_tiny = se_net(c=8, h=1, w=1, sq=2)
variant spatial7 = spatial(c=4, h=7, w=9, k=7)
variant shuffle24 = shuffle(c=24, h=3, w=7)
variant four16 = four(c=16, h=1, w=3)
variant convnext_scaled = convnext(c=16, h=5, w=5, ls=0.5, p=0.2)
"""


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These tensors are tiny: with PyTorch's thread pool on a busy machine each op waits on
    the other threads (15 ms instead of 0.1 ms)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("modern") / "modern.arch"
    path.write_text(SPEC)
    return str(path)


# ---------------------------------------------------------------- gates


@pytest.mark.parametrize(("c", "h", "w", "sq", "act"), [
    (16, 6, 5, 4, "sigmoid"), (24, 5, 7, 8, "hardsigmoid"), (8, 1, 1, 2, "sigmoid"),
    (6, 2, 9, 6, "hardsigmoid")])
def test_squeeze_excitation_equals_torchvision(spec, c, h, w, sq, act):
    model = archspec.build(spec, net="se_net", c=c, h=h, w=w, sq=sq, act=act)
    activation = nn.Sigmoid if act == "sigmoid" else nn.Hardsigmoid
    reference = SqueezeExcitation(c, sq, scale_activation=activation)
    loaded(model.get_submodule("se"), reference)
    assert_same(model, reference, batch((c, h, w)) * 3)


@pytest.mark.parametrize(("c", "h", "w", "k"), [(8, 6, 5, 3), (4, 7, 9, 7), (3, 1, 1, 3),
                                                (1, 4, 4, 1)])
def test_spatial_gate_equals_x_times_sigmoid_of_a_conv(spec, c, h, w, k):
    """A 1 x H x W gate (CBAM's spatial attention) broadcasts over the channels."""
    model = archspec.build(spec, net="spatial", c=c, h=h, w=w, k=k)
    conv = randomise(nn.Conv2d(c, 1, k, padding=k // 2))
    gate = model.get_submodule("attention")
    gate.get_submodule("conv").load_state_dict(conv.state_dict(), strict=True)
    x = batch((c, h, w))
    with torch.no_grad():
        torch.testing.assert_close(model(x), x * torch.sigmoid(conv(x)))


def gate_spec_text(shape: tuple[int, ...], body: str) -> str:
    """A network whose third line is `gate { body }`."""
    return f"network g() {{\n  input [{', '.join(map(str, shape))}]\n  gate {{ {body} }}\n}}\n"


GATE_GRID = [((c, h, w), (gc, gh, gw))
             for c, h, w in [(4, 3, 5), (1, 3, 5), (4, 1, 1), (3, 2, 2)]
             for gc, gh, gw in product([1, 3, 4], [1, 2, 3], [1, 2, 5])]


@pytest.mark.parametrize(("shape", "gate"), GATE_GRID,
                         ids=[f"{'x'.join(map(str, s))}*{'x'.join(map(str, g))}"
                              for s, g in GATE_GRID])
def test_gate_broadcasting_against_torch(tmp_path, shape, gate):
    """gate { adaptive_avgpool((gh, gw)) conv(gc, k=1) } gives a gc x gh x gw gate. It must
    check exactly where `x * gate` runs in PyTorch and keeps x's shape; where PyTorch
    raises, E310. Where PyTorch broadcasts x up to a larger shape (a 1-channel input times a
    4-channel gate), the gate refuses too, by design: a gate scales its input, it never
    changes the input's shape."""
    c, (gc, gh, gw) = shape[0], gate
    path = tmp_path / "g.arch"
    path.write_text(gate_spec_text(shape, f"adaptive_avgpool(({gh}, {gw})) conv({gc}, k=1)"))
    conv = randomise(nn.Conv2d(c, gc, 1))
    x = batch(shape)
    try:
        with torch.no_grad():
            want = x * conv(nn.functional.adaptive_avg_pool2d(x, (gh, gw)))
        fits = want.shape == x.shape
    except RuntimeError as error:
        assert "must match the size of tensor" in str(error)
        fits = False
    if not fits:
        with pytest.raises(archspec.ArchError) as caught:
            archspec.load(str(path))
        assert [(d.code, d.span.line) for d in caught.value.errors] == [("E310", 3)]
        return
    model = archspec.build(str(path))
    model.get_submodule("1").load_state_dict(conv.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(model(x), want)


@pytest.mark.parametrize(("shape", "features", "torch_runs"), [
    ((4, 3, 5), 5, False),  # x (2, 4, 3, 5) times a gate (2, 5): PyTorch raises
    # PyTorch runs this one: the (2, 4) gate broadcasts over H x W (2 x 4), aligning the
    # batch with H and the features with W, by accident. A gate keeps its input's rank.
    ((4, 2, 4), 4, True),
    ((6,), 6, True), ((6,), 1, True),
    ((6,), 3, False),
])
def test_gate_of_another_rank_or_on_flat_features(tmp_path, shape, features, torch_runs):
    """A flat gate on a map is refused (E310), even where PyTorch would broadcast it; on
    flat features, a gate of F features or of 1 works."""
    path = tmp_path / "g.arch"
    flatten = "flatten " if len(shape) == 3 else ""
    path.write_text(gate_spec_text(shape, f"{flatten}linear({features}) sigmoid"))
    linear = randomise(nn.Linear(prod(shape), features))
    x = batch(shape)
    try:
        with torch.no_grad():
            want = x * torch.sigmoid(linear(x.flatten(1)))
        assert torch_runs and want.shape == x.shape
    except RuntimeError:
        assert not torch_runs
    if len(shape) == 3 or not torch_runs:
        with pytest.raises(archspec.ArchError) as caught:
            archspec.load(str(path))
        assert [(d.code, d.span.line) for d in caught.value.errors] == [("E310", 3)]
        return
    model = archspec.build(str(path))
    model.get_submodule("0").load_state_dict(linear.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(model(x), want)


# ---------------------------------------------------------------- split and channel shuffle


@pytest.mark.parametrize(("c", "h", "w"), [(8, 5, 6), (24, 3, 7), (2, 1, 1), (16, 2, 2)])
def test_shuffle_unit_equals_torchvision_inverted_residual(spec, c, h, w):
    """ShuffleNetV2's stride-1 unit: x.chunk(2), the second half through branch2, concat,
    channel_shuffle(2). torchvision's state_dict loads into the built unit as it is."""
    model = archspec.build(spec, net="shuffle", c=c, h=h, w=w)
    reference = InvertedResidual(c, c, 1)
    loaded(model.get_submodule("unit"), reference)
    assert_same(model, reference, batch((c, h, w)))


@pytest.mark.parametrize(("c", "h", "w"), [(8, 4, 5), (16, 1, 3), (4, 3, 3)])
def test_four_way_split_equals_chunk_and_channel_shuffle(spec, c, h, w):
    """Four different branches, so that a share given to the wrong branch shows."""
    model = archspec.build(spec, net="four", c=c, h=h, w=w)
    share = c // 4
    a = randomise(nn.Conv2d(share, share, 1), seed=4)
    b = randomise(nn.Conv2d(share, share, 3, padding=1, groups=share), seed=5)
    unit = model.get_submodule("unit")
    unit.get_submodule("a").load_state_dict(a.state_dict(), strict=True)
    unit.get_submodule("b").load_state_dict(b.state_dict(), strict=True)
    x = batch((c, h, w))
    x1, x2, x3, x4 = x.chunk(4, 1)
    with torch.no_grad():
        want = channel_shuffle(torch.cat([a(x1), x2, b(x3), torch.relu(x4)], 1), 4)
        torch.testing.assert_close(model(x), want)


SPLIT_GRID = list(product([1, 2, 4, 5, 6, 12], [1, 2, 3, 4]))


@pytest.mark.parametrize(("c", "n"), SPLIT_GRID, ids=[f"{c}/{n}" for c, n in SPLIT_GRID])
def test_split_shares_against_torch_chunk(tmp_path, c, n):
    """split with n branches (branch i: conv(i + 1, k=1) on its share) checks exactly where
    torch.chunk(x, n, 1) gives n equal shares, and computes cat(conv_i(share_i)). Where
    chunk would give unequal shares, or fewer than n (6 channels in 4 chunks gives 3 of 2),
    E311."""
    branches = " ".join(f"b{i}: conv({i + 1}, k=1)" for i in range(n))
    path = tmp_path / "s.arch"
    path.write_text(f"network s() {{\n  input [{c}, 3, 4]\n  split {{ {branches} }}\n}}\n")
    x = batch((c, 3, 4))
    shares = x.chunk(n, 1)
    if len(shares) != n or len({s.shape[1] for s in shares}) != 1:
        with pytest.raises(archspec.ArchError) as caught:
            archspec.load(str(path))
        assert [(d.code, d.span.line) for d in caught.value.errors] == [("E311", 3)]
        return
    model = archspec.build(str(path))
    convs = [randomise(nn.Conv2d(c // n, i + 1, 1), seed=i) for i in range(n)]
    for i, conv in enumerate(convs):
        model.get_submodule(f"b{i}").load_state_dict(conv.state_dict(), strict=True)
    with torch.no_grad():
        want = torch.cat([conv(share) for conv, share in zip(convs, shares)], 1)
        torch.testing.assert_close(model(x), want)


# ---------------------------------------------------------------- channels_last and ConvNeXt


@pytest.mark.parametrize(("c", "h", "w", "k"), [(6, 3, 4, 10), (4, 1, 1, 16), (1, 2, 5, 3)])
def test_channels_last_equals_permute_layernorm_linear(spec, c, h, w, k):
    """channels_last is Permute, the layers on each position's channels, Permute back: the
    same Sequential as ConvNeXt's, with the same keys."""
    model = archspec.build(spec, net="mlp", c=c, h=h, w=w, k=k)
    reference = nn.Sequential(Permute([0, 2, 3, 1]), nn.LayerNorm(c, eps=1e-6),
                              nn.Linear(c, k), nn.GELU(), nn.Linear(k, c), Permute([0, 3, 1, 2]))
    mlp = loaded(model.get_submodule("mlp"), reference)
    assert [type(m).__name__ for m in mlp] == [type(m).__name__ for m in reference]
    assert_same(model, reference, batch((c, h, w)))


@pytest.mark.parametrize(("c", "h", "w", "ls", "p"), [
    (8, 7, 6, 1e-6, 0.0), (16, 5, 5, 0.5, 0.2), (4, 1, 1, 1.0, 0.5), (8, 3, 9, 0.1, 1.0)])
def test_convnext_block_equals_torchvision_cnblock(spec, c, h, w, ls, p):
    """The layer scale starts at torchvision's value; torchvision's state_dict loads strict;
    outputs agree in eval mode and, with the same seed, in training mode (stochastic
    depth drops the same samples)."""
    model = archspec.build(spec, net="convnext", c=c, h=h, w=w, ls=ls, p=p)
    block = model.get_submodule("cnblock")
    reference = CNBlock(c, ls, p)
    assert list(block.state_dict()) == list(reference.state_dict())
    torch.testing.assert_close(block.layer_scale, reference.layer_scale, rtol=0, atol=0)
    loaded(block, reference)
    assert_same(model, reference, batch((c, h, w), n=6))


@pytest.mark.parametrize(("c", "h", "w", "eps", "affine"), [
    (4, 3, 5, 1e-6, True), (8, 1, 1, 1e-5, True), (1, 2, 2, 0.1, False), (3, 6, 2, 1e-6, False)])
def test_layernorm2d_equals_torchvision(spec, c, h, w, eps, affine):
    model = archspec.build(spec, net="norm2d", c=c, h=h, w=w, eps=eps, affine=affine)
    reference = LayerNorm2d(c, eps=eps, elementwise_affine=affine)
    loaded(model.get_submodule("norm"), reference)
    assert_same(model, reference, batch((c, h, w)) * 2 + 1)


@pytest.mark.parametrize(("p", "mode", "shape"), [
    (p, mode, shape) for p, mode, shape in product([0.0, 0.3, 1.0], ["row", "batch"],
                                                   [(4, 3, 3), (6,)])])
def test_stochastic_depth_equals_torchvision_in_training(spec, p, mode, shape):
    """With the same seed, the same samples (row) or the same batches are dropped, and what
    is kept is scaled by 1 / (1 - p); the identity in eval mode."""
    if len(shape) == 3:
        model = archspec.build(spec, net="drop", c=shape[0], h=shape[1], w=shape[2], p=p,
                               mode=mode)
    else:
        model = archspec.build(spec, net="drop_flat", f=shape[0], p=p, mode=mode)
    reference = StochasticDepth(p, mode)
    x = batch(shape, n=16)
    for seed in range(4):
        torch.testing.assert_close(outputs(model, x, True, seed), outputs(reference, x, True, seed))
    torch.testing.assert_close(outputs(model, x, False), x)


# ---------------------------------------------------------------- counts, compile, pickle

# Each network of SPEC at its defaults and its variants, with the torch module it reproduces
# (the reference) as a function of the network's parameters.
REFERENCES = {
    "se_net": lambda c=16, h=6, w=5, sq=4, act="sigmoid": SqueezeExcitation(
        c, sq, scale_activation=nn.Sigmoid if act == "sigmoid" else nn.Hardsigmoid),
    "se_hard": lambda: REFERENCES["se_net"](24, 5, 7, 8, "hardsigmoid"),
    "se_tiny": lambda: REFERENCES["se_net"](8, 1, 1, 2),
    "shuffle": lambda: InvertedResidual(8, 8, 1),
    "shuffle24": lambda: InvertedResidual(24, 24, 1),
    "convnext": lambda: CNBlock(8, 1e-6, 0.0),
    "convnext_scaled": lambda: CNBlock(16, 0.5, 0.2),
    "norm2d": lambda: LayerNorm2d(4, eps=1e-6),
}
NETWORKS = ["se_net", "se_hard", "se_tiny", "spatial", "spatial7", "shuffle", "shuffle24",
            "four", "four16", "convnext", "convnext_scaled", "norm2d", "drop", "drop_flat",
            "mlp"]


def hooked_macs(module: nn.Module, shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one sample, counted by forward hooks: a conv's output values
    times its window (in_channels / groups x kh x kw), a linear's output values (every
    position of a channels-last map) times its input features."""
    counts: list[int] = []

    def hook(m, _inputs, out):
        if isinstance(m, nn.Conv2d):
            counts.append(out.numel() * m.in_channels // m.groups * prod(m.kernel_size))
        else:
            counts.append(out.numel() * m.in_features)

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, nn.Conv2d | nn.Linear)]
    with torch.no_grad():
        module.eval()(torch.randn(1, *shape))
    for handle in handles:
        handle.remove()
    return sum(counts)


@pytest.mark.parametrize("name", list(REFERENCES))
def test_counts_equal_the_torchvision_modules(spec, name):
    network = archspec.load(spec, net=name)
    reference = REFERENCES[name]()
    assert network.params == sum(p.numel() for p in reference.parameters())
    assert network.macs == hooked_macs(reference, network.input_shape)
    summary = summarize(network)
    assert (summary.params, summary.macs) == (network.params, network.macs)


@pytest.mark.parametrize("name", NETWORKS)
def test_counts_equal_the_built_modules(spec, name):
    network = archspec.load(spec, net=name)
    model = archspec.build(network)
    assert network.params == sum(p.numel() for p in model.parameters())
    assert network.macs == hooked_macs(model, network.input_shape)


@pytest.fixture(scope="module")
def compiled(spec, tmp_path_factory):
    """`archspec compile FILE -o out.py`, imported; a variant that the file leaves out
    (its classes differ from the network's under the same names, as the file says) is
    compiled on its own with --net."""
    folder = tmp_path_factory.mktemp("compiled")
    whole = compile_and_import(spec, folder / "modern_all.py")
    header = (folder / "modern_all.py").read_text().split("import torch")[0]

    def builder(name: str):
        if hasattr(whole, name):
            return getattr(whole, name)
        assert name in header.split("Not here")[1]
        return getattr(compile_and_import(spec, folder / f"modern_{name}.py", "--net", name),
                       name)
    return builder


@pytest.mark.parametrize("name", NETWORKS)
def test_compiled_source_builds_the_same_module(spec, compiled, name):
    network = archspec.load(spec, net=name)
    built = randomise(archspec.build(network))
    written = compiled(name)()
    shapes = {k: tuple(v.shape) for k, v in built.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in written.state_dict().items()} == shapes
    assert list(written.state_dict()) == list(shapes)
    written.load_state_dict(built.state_dict(), strict=True)
    assert_same(written, built, batch(network.input_shape, n=4))


@pytest.mark.parametrize("name", NETWORKS)
def test_pickle_and_deepcopy_round_trips(spec, name):
    network = archspec.load(spec, net=name)
    built = randomise(archspec.build(network))
    x = batch(network.input_shape, n=4)
    for twin_of in (lambda m: pickle.loads(pickle.dumps(m)), copy.deepcopy):
        twin = twin_of(built)  # of the module as it is now (training moved its statistics)
        assert type(twin) is type(built)
        assert list(twin.state_dict()) == list(built.state_dict())
        assert_same(twin, built, x)
