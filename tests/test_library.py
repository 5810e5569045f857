"""The network library in specs/ against torchvision itself.

For every variant that torchvision also has, the checked spec must agree with the torchvision
model built at test time: the same parameter count, the same parameter-bearing modules under the
same names with the same parameter shapes (so torchvision's state_dict could load into the built
module), the same conv geometry, and the same MAC count (measured with forward hooks). The
lecture-only networks (LeNet, the lectures' AlexNet, NiN) are checked against the shapes the
lectures give and against their PyTorch code from the notes.

torchvision models are built on the meta device: no memory for weights, no initialisation, and a
forward pass that computes only shapes, which is all the hooks need.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from functools import cache
from math import prod
from pathlib import Path
from unittest import mock

import pytest
from checked_library import library_networks

import archspec

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
nn = torch.nn

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
GENERATOR = ROOT / "tools" / "gen_networks_md.py"

# (spec file, variant); the torchvision model has the variant's name.
TORCHVISION_VARIANTS = [
    ("alexnet.arch", "alexnet"),
    *[("vgg.arch", f"vgg{depth}{bn}") for bn in ("", "_bn") for depth in (11, 13, 16, 19)],
    *[("resnet.arch", f"resnet{depth}") for depth in (18, 34, 50, 101, 152)],
    ("resnet.arch", "wide_resnet50_2"),
    ("resnet.arch", "wide_resnet101_2"),
    ("resnext.arch", "resnext50_32x4d"),
    ("resnext.arch", "resnext101_32x8d"),
    ("resnext.arch", "resnext101_64x4d"),
    *[("densenet.arch", f"densenet{depth}") for depth in (121, 161, 169, 201)],
    ("googlenet.arch", "googlenet"),
    ("squeezenet.arch", "squeezenet1_0"),
    ("squeezenet.arch", "squeezenet1_1"),
    ("mobilenet.arch", "mobilenet_v2"),
    *[("mnasnet.arch", f"mnasnet{alpha}") for alpha in ("0_5", "0_75", "1_0", "1_3")],
    ("inception.arch", "inception_v3"),
    *[("shufflenet.arch", f"shufflenet_v2_x{width}") for width in ("0_5", "1_0", "1_5", "2_0")],
    *[("convnext.arch", f"convnext_{size}") for size in ("tiny", "small", "base", "large")],
    *[("regnet.arch", f"regnet_{kind}_{size}") for kind, sizes in (
        ("y", ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf", "128gf")),
        ("x", ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf"))) for size in sizes],
    ("mobilenetv3.arch", "mobilenet_v3_large"),
    ("mobilenetv3.arch", "mobilenet_v3_small"),
    *[("efficientnet.arch", f"efficientnet_{v}") for v in
      (*(f"b{i}" for i in range(8)), "v2_s", "v2_m", "v2_l")],
]
# specs/segmentation.arch: torchvision.models.segmentation's builders (tests/test_segmentation.py
# compares them; they return {"out": ...}, at the input's size).
SEGMENTATION = ["fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101",
                "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"]
# Builder arguments: no pretrained backbone for the segmentation networks, and no weight
# initialisation where the state_dict replaces it anyway (GoogLeNet's and Inception-v3's
# truncated normals are slow; torchvision warns that it changes their default).
TORCHVISION_KWARGS = {"googlenet": {"init_weights": False},
                      "inception_v3": {"init_weights": False},
                      **{name: {"weights_backbone": None} for name in SEGMENTATION}}
# The input size of each torchvision model's weights, where it is not 224x224.
INPUT_SIZES = {"inception_v3": 299, **{name: 520 for name in SEGMENTATION}}
IDS = [name for _, name in TORCHVISION_VARIANTS]
# The strict state_dict load and the output comparison run with real weights for every
# network up to this many parameters and for the smallest of each family, but for variants
# whose code is exactly a sibling's with other widths and depths (some 15 s each): the
# EfficientNets are shown by b0 (eps 1e-5), b5 (eps 1e-3, momentum 0.01) and v2_s
# (FusedMBConv). The others are compared on the meta device only (counts, names, shapes,
# geometry, MACs), since building and running them takes minutes on a CI machine.
REAL_WEIGHT_LIMIT = 30_000_000
PARAMS = {net.name: net.params for spec, net in library_networks()
          if spec.name in {f for f, _ in TORCHVISION_VARIANTS}}
SMALLEST = {min((PARAMS[n], n) for f, n in TORCHVISION_VARIANTS if f == file)[1]
            for file, _ in TORCHVISION_VARIANTS}
OUTPUTS_SHOWN_BY_A_SIBLING = {*(f"efficientnet_b{i}" for i in (1, 2, 3, 4, 6, 7)),
                              "efficientnet_v2_m", "efficientnet_v2_l"}
REAL_WEIGHTS = [(file, name) for file, name in TORCHVISION_VARIANTS
                if (PARAMS[name] <= REAL_WEIGHT_LIMIT
                    or name in SMALLEST | {"vgg11_bn", "efficientnet_b5"})
                and name not in OUTPUTS_SHOWN_BY_A_SIBLING]


@cache
def spec(file: str, name: str):
    return archspec.load(str(SPECS / file), net=name)


def on_meta(name: str) -> nn.Module:
    """torchvision's model built on the meta device. RegNet computes its widths with tensors
    and reads them back (`.tolist()`), which meta tensors cannot do: that part runs on the CPU."""
    block_params = torchvision.models.regnet.BlockParams
    from_init_params = block_params.from_init_params

    def on_cpu(*args, **kwargs):
        with torch.device("cpu"):
            return from_init_params(*args, **kwargs)

    with mock.patch.object(block_params, "from_init_params", on_cpu), torch.device("meta"):
        return torchvision.models.get_model(name, weights=None,
                                            **TORCHVISION_KWARGS.get(name, {}))


@cache
def reference(name: str) -> dict:
    """What the tests need from torchvision's model, built once per variant: the parameter
    count, the parameters of each module that owns some, each conv's geometry, and the MACs
    counted with forward hooks in eval mode on one image of the model's input size (a linear
    layer costs its weights once per position: ConvNeXt's run on every pixel)."""
    model = on_meta(name)
    model.eval()
    owned, convs, macs = {}, {}, []
    for path, module in model.named_modules():
        mine = {k: tuple(p.shape) for k, p in module.named_parameters(recurse=False)}
        if mine:
            owned[path] = (type(module), mine)
        if isinstance(module, nn.Conv2d):
            convs[path] = {"kernel": module.kernel_size, "stride": module.stride,
                           "padding": tuple((p, p) for p in module.padding),
                           "dilation": module.dilation, "groups": module.groups}
            module.register_forward_hook(
                lambda m, i, out: macs.append(
                    out.numel() * m.in_channels // m.groups * prod(m.kernel_size)))
        elif isinstance(module, nn.Linear):
            module.register_forward_hook(
                lambda m, i, out: macs.append(out.numel() * m.in_features))
    with torch.no_grad():
        size = INPUT_SIZES.get(name, 224)
        model(torch.empty(1, 3, size, size, device="meta"))
    return {"params": sum(p.numel() for p in model.parameters()), "owned": owned,
            "convs": convs, "macs": sum(macs)}


def expected_params(layer) -> dict[str, tuple[int, ...]]:
    """The parameter shapes PyTorch gives the module built from a layer."""
    a = layer.attrs
    if layer.op.name in ("conv", "dwconv", "pwconv"):
        shapes = {"weight": (a["out_channels"], a["in_channels"] // a["groups"], *a["kernel"])}
        return shapes | ({"bias": (a["out_channels"],)} if a["bias"] else {})
    if layer.op.name == "linear":
        shapes = {"weight": (a["out_features"], a["in_features"])}
        return shapes | ({"bias": (a["out_features"],)} if a["bias"] else {})
    if layer.op.name in ("batchnorm", "layernorm", "layernorm2d"):
        return {"weight": (a["features"],), "bias": (a["features"],)} if a["affine"] else {}
    raise AssertionError(f"{layer.path}: unexpected op with parameters: {layer.op.name}")


TORCH_TYPES = {"conv": nn.Conv2d, "dwconv": nn.Conv2d, "batchnorm": nn.BatchNorm2d,
               "linear": nn.Linear, "layernorm": nn.LayerNorm,
               "layernorm2d": torchvision.models.convnext.LayerNorm2d}


def spec_owned(net) -> dict[str, tuple[str | None, dict[str, tuple[int, ...]]]]:
    """The modules of the built model that own parameters, as (op, parameter shapes) by path:
    a layer's own weights, and a `scale` parameter (ConvNeXt's layer_scale) under its label
    in the enclosing module, whose type the spec does not name (op None)."""
    owned = {}
    for layer in net.layers():
        if not layer.params:
            continue
        if layer.op.name == "scale":
            parent, _, label = layer.path.rpartition(".")
            owned.setdefault(parent, (None, {}))[1][label] = layer.attrs["shape"]
        else:
            owned[layer.path] = (layer.op.name, expected_params(layer))
    return owned


@pytest.mark.slow
@pytest.mark.parametrize(("file", "name"), TORCHVISION_VARIANTS, ids=IDS)
def test_parameter_count_matches_torchvision(file, name):
    assert spec(file, name).params == reference(name)["params"]


@pytest.mark.slow
@pytest.mark.parametrize(("file", "name"), TORCHVISION_VARIANTS, ids=IDS)
def test_module_names_and_parameter_shapes_match_torchvision(file, name):
    ref = reference(name)
    net = spec(file, name)
    layers = {layer.path: layer for layer in net.layers()}
    owned = spec_owned(net)
    assert set(owned) == set(ref["owned"]), (
        f"only in the spec: {sorted(set(owned) - set(ref['owned']))[:8]}; "
        f"only in torchvision: {sorted(set(ref['owned']) - set(owned))[:8]}")
    for path, (op, shapes) in owned.items():
        module_type, ref_shapes = ref["owned"][path]
        assert op is None or module_type is TORCH_TYPES[op], path
        assert shapes == ref_shapes, path
        if op in ("conv", "dwconv"):
            layer = layers[path]
            geometry = {k: tuple(layer.attrs[k]) if k != "groups" else layer.attrs[k]
                        for k in ref["convs"][path]}
            assert geometry == ref["convs"][path], path


@pytest.mark.slow
@pytest.mark.parametrize(("file", "name"), TORCHVISION_VARIANTS, ids=IDS)
def test_macs_match_torchvision_hooks(file, name):
    """In eval mode: the auxiliary heads of GoogLeNet and Inception-v3 (`aux` branches) run
    only in training, so the hooks do not see them."""
    net = spec(file, name)
    assert net.macs - sum(layer.macs for layer in net.training_only_layers) == \
        reference(name)["macs"]
    size = INPUT_SIZES.get(name, 224)
    assert net.input_shape == (3, size, size)
    assert net.output_shape == (1000,)


def give_batchnorms_real_statistics(model: nn.Module, x: torch.Tensor) -> None:
    """Random affine parameters for every batchnorm, and running statistics taken from one
    training-mode pass over `x` (momentum 1: the statistics are that batch's). With
    torchvision's initialisation (mean 0, variance 1, weight 1, bias 0) every batchnorm is
    almost the identity, so a wrong eps or a batchnorm loaded in the wrong place would hardly
    show, and ResNet-152's logits reach 1e8, where a tolerance of 1e-5 means nothing."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not norms:
        return
    with torch.no_grad():
        for norm in norms:
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
            norm.momentum = 1.0
        model.train()
        model(x)
    for norm in norms:
        norm.momentum = 0.1
    model.eval()


def give_layer_norms_and_scales_real_values(model: nn.Module) -> None:
    """Random affine parameters for every layer norm (LayerNorm2d too) and random layer
    scales: ConvNeXt's start at 1e-6, which would make every block almost the identity and
    hide whatever is wrong inside it."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
            for key, parameter in module.named_parameters(recurse=False):
                if key == "layer_scale":
                    parameter.uniform_(0.05, 0.2)


@pytest.mark.slow
@pytest.mark.parametrize(("file", "name"), REAL_WEIGHTS, ids=[name for _, name in REAL_WEIGHTS])
def test_torchvision_state_dict_loads_strictly_and_outputs_match(file, name):
    """torchvision's weights (random, seeded, batchnorm statistics included) load with
    strict=True into build()'s module, and in eval mode both give the same logits within 1e-5
    on a random batch of two at the spec's input size. Each model is built once, here; ours
    is built on the meta device and takes torchvision's tensors themselves (assign=True), so
    no time goes into initialising weights that the state_dict replaces (strict loading
    still checks every key and every shape)."""
    net = spec(file, name)
    torch.manual_seed(0)
    theirs = torchvision.models.get_model(name, weights=None,
                                          **TORCHVISION_KWARGS.get(name, {}))
    # A batch of two: Inception-v3's auxiliary head normalises a 1x1 map, which training
    # mode refuses for a batch of one.
    give_batchnorms_real_statistics(theirs, torch.randn(2, *net.input_shape))
    give_layer_norms_and_scales_real_values(theirs)
    with torch.device("meta"):
        ours = archspec.build(net)
    ours.load_state_dict(theirs.state_dict(), strict=True, assign=True)
    assert not any(t.is_meta for t in (*ours.parameters(), *ours.buffers()))
    ours.eval()
    theirs.eval()
    x = torch.randn(2, *net.input_shape)
    with torch.no_grad():
        expected = theirs(x)
        got = ours(x)
    assert got.shape == expected.shape == (2, *net.output_shape)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_every_variant_in_the_library_is_covered():
    """Every library file checks clean (no errors, no warnings), and a variant with a
    torchvision counterpart that is added to one must be listed above."""
    covered = set(IDS) | set(SEGMENTATION)
    files = {file for file, _ in TORCHVISION_VARIANTS} | {
        "lenet.arch", "nin.arch", "sequence.arch", "segmentation.arch", "unet.arch"}
    counterparts = set(torchvision.models.list_models(torchvision.models)) | set(
        torchvision.models.list_models(torchvision.models.segmentation))
    for path in sorted(SPECS / file for file in files):
        result = archspec.check_file(str(path))
        assert not result.diagnostics, [d.message for d in result.diagnostics]
        for net in result.networks:
            if net.name in counterparts:
                assert net.name in covered, f"{path.name}: {net.name} is not tested"


# ---------------------------------------------------------------- docs/networks.md


def generator():
    loader = importlib.util.spec_from_file_location("gen_networks_md", GENERATOR)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_networks_doc_table_is_what_the_generator_gives():
    """docs/networks.md lists every network and variant with the numbers archspec gives now:
    the part between its markers is exactly tools/gen_networks_md.py's table (run that script
    after changing a spec), and the hand-written rest is kept by the generator."""
    gen = generator()
    document = gen.DOC.read_text(encoding="utf-8")
    assert gen.generated_part(document) == gen.table(), (
        "docs/networks.md is out of date: run python tools/gen_networks_md.py")
    assert gen.render(document) == document
    rows = gen.table().splitlines()[2:]
    checked = [net for path in sorted(SPECS.glob("*.arch"))
               for net in archspec.check_file(str(path)).networks]
    assert len(rows) == len(checked)
    assert all(f"| `{net.name}` |" in row and f"| {net.macs:,} |" in row
               for row, net in zip(rows, checked, strict=True))


def test_networks_doc_names_the_torchvision_counterparts_tested_here():
    gen = generator()
    assert gen.TORCHVISION == set(IDS) | set(SEGMENTATION)
    assert gen.TORCHVISION <= set(torchvision.models.list_models(torchvision.models)) | set(
        torchvision.models.list_models(torchvision.models.segmentation))


def test_networks_doc_generator_does_not_import_torch():
    code = ("import runpy, sys\n"
            f"gen = runpy.run_path({str(GENERATOR)!r})\n"
            "gen['table']()\n"
            "assert 'torch' not in sys.modules, 'the generator imported torch'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------- the lectures' networks


def shapes_of(net, op: str) -> list[tuple[int, ...]]:
    return [layer.out_shape for layer in net.layers() if layer.op.name == op]


def compare_with_torch(net, module: nn.Module) -> None:
    """The spec and the lectures' PyTorch code: same parameters, same output shape, and the
    same shape after every layer (the modules run in the same order)."""
    assert net.params == sum(p.numel() for p in module.parameters())
    x = torch.zeros(1, *net.input_shape)
    with torch.no_grad():
        for layer, child in zip(net.layers(), module, strict=True):
            x = child(x)
            assert tuple(x.shape[1:]) == layer.out_shape, (layer.path, child)
    assert tuple(x.shape[1:]) == net.output_shape


def lecture_lenet(pad: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=pad), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, 10))


@pytest.mark.parametrize(("name", "size", "pad"), [("lenet", 28, 2), ("lenet5", 32, 0)])
def test_lenet_lecture_shapes(name, size, pad):
    net = spec("lenet.arch", name)
    assert net.input_shape == (1, size, size)
    assert shapes_of(net, "conv") == [(6, 28, 28), (16, 10, 10)]
    assert shapes_of(net, "avgpool") == [(6, 14, 14), (16, 5, 5)]
    assert [layer.attrs["in_features"] for layer in net.layers()
            if layer.op.name == "linear"] == [400, 120, 84]
    assert net.output_shape == (10,)
    compare_with_torch(net, lecture_lenet(pad))


def test_alexnet_lecture_shapes():
    net = spec("alexnet.arch", "alexnet_lectures")
    assert net.input_shape == (1, 224, 224)
    assert shapes_of(net, "conv") == [(96, 54, 54), (256, 26, 26), (384, 12, 12),
                                      (384, 12, 12), (256, 12, 12)]
    linears = [layer for layer in net.layers() if layer.op.name == "linear"]
    assert linears[0].attrs["in_features"] == 6400
    assert net.output_shape == (10,)
    compare_with_torch(net, nn.Sequential(
        nn.Conv2d(1, 96, kernel_size=11, stride=4, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(96, 256, kernel_size=5, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2), nn.Flatten(),
        nn.Linear(6400, 4096), nn.ReLU(), nn.Dropout(p=0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(p=0.5),
        nn.Linear(4096, 10)))


def test_nin_lecture_shapes():
    net = spec("nin.arch", "nin")
    assert net.input_shape == (1, 224, 224)
    assert shapes_of(net, "maxpool") == [(96, 26, 26), (256, 12, 12), (384, 5, 5)]
    assert shapes_of(net, "conv")[-1] == (10, 5, 5)
    assert not shapes_of(net, "linear")
    assert net.output_shape == (10,)

    def nin_block(c_in, c_out, k, s, p):
        return [nn.Conv2d(c_in, c_out, k, s, p), nn.ReLU(), nn.Conv2d(c_out, c_out, 1),
                nn.ReLU(), nn.Conv2d(c_out, c_out, 1), nn.ReLU()]

    compare_with_torch(net, nn.Sequential(
        *nin_block(1, 96, 11, 4, 0), nn.MaxPool2d(3, stride=2),
        *nin_block(96, 256, 5, 1, 2), nn.MaxPool2d(3, stride=2),
        *nin_block(256, 384, 3, 1, 1), nn.MaxPool2d(3, stride=2),
        nn.Dropout(0.5),
        *nin_block(384, 10, 3, 1, 1),
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten()))
