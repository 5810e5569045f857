"""Built networks work with the PyTorch toolchain: torch.compile(fullgraph=True),
torch.export, ONNX (checked with onnxruntime), channels_last, autocast and
DistributedDataParallel. One network per family, at a small input to keep CI quick;
tools/check_toolchain.py runs every network in specs/."""

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import archspec
from archspec.check import check_file
from archspec.torch_backend import build_module

pytestmark = pytest.mark.slow  # torch.compile, export, ONNX and DDP: minutes

ROOT = Path(__file__).resolve().parent.parent
FAMILIES = [
    ("lenet.arch", "lenet", None), ("alexnet.arch", "alexnet", (3, 96, 96)),
    ("vgg.arch", "vgg11_bn", (3, 64, 64)), ("nin.arch", "nin", (1, 96, 96)),
    ("googlenet.arch", "googlenet", (3, 64, 64)), ("resnet.arch", "resnet18", (3, 64, 64)),
    ("resnext.arch", "resnext50_32x4d", (3, 64, 64)),
    ("densenet.arch", "densenet121", (3, 64, 64)),
    ("regnet.arch", "regnet_y_400mf", (3, 64, 64)),
    ("mobilenetv3.arch", "mobilenet_v3_small", (3, 64, 64)),
    ("efficientnet.arch", "efficientnet_b0", (3, 64, 64)),
]
IDS = [net for _, net, _ in FAMILIES]


def small_network(spec: str, net: str, shape):
    result = check_file(str(ROOT / "specs" / spec), net, shape)
    assert not result.errors
    return result.networks[0]


@pytest.fixture(params=FAMILIES, ids=IDS)
def family(request):
    spec, net, shape = request.param
    network = small_network(spec, net, shape)
    torch.manual_seed(0)
    model = build_module(network).eval()
    x = torch.randn(2, *network.input_shape)
    with torch.no_grad():
        expected = model(x)
    return network, model, x, expected


def test_torch_compile_fullgraph(family):
    _, model, x, expected = family
    # A fresh compiler per network, as in a process that compiles one model: the families'
    # forward() code objects (nn.Sequential's, ArchBlock's) are shared, and each new model
    # is a recompilation of them, which fullgraph=True fails on after 8.
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        assert torch.allclose(compiled(x), expected, atol=1e-5)


def test_torch_export(family):
    _, model, x, expected = family
    program = torch.export.export(model, (x,))
    with torch.no_grad():
        assert torch.allclose(program.module()(x), expected, atol=1e-5)


def test_onnx_export_runs_in_onnxruntime(family, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    _, model, x, expected = family
    path = tmp_path / "model.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=True, verbose=False)
    session = onnxruntime.InferenceSession(str(path))
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    assert torch.allclose(torch.from_numpy(out), expected, atol=1e-4)


def test_channels_last_and_autocast(family):
    network, model, x, expected = family
    if len(network.input_shape) == 3:
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.allclose(model(x), expected, atol=1e-4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    assert low.dtype == torch.bfloat16 and tuple(low.shape[1:]) == network.output_shape
    assert torch.isfinite(low).all()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ddp_step(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = archspec.build(str(ROOT / "specs/resnet.arch"), net="resnet18", classes=10)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    torch.manual_seed(1)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    shard = slice(rank * 4, rank * 4 + 4)
    torch.nn.functional.cross_entropy(ddp(x[shard]), y[shard]).backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters()])
    torch.save(grads, os.path.join(out_dir, f"grad{rank}.pt"))
    dist.destroy_process_group()


def _shard_gradients(rank: int, out_dir: str) -> None:
    """The reference, in a fresh process like the DDP workers (nothing of the test process's
    torch state): the two shards' gradients, one after the other, without DDP."""
    torch.manual_seed(0)
    model = archspec.build(str(ROOT / "specs/resnet.arch"), net="resnet18", classes=10)
    torch.manual_seed(1)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    shard_grads = []
    for shard in (slice(0, 4), slice(4, 8)):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x[shard]), y[shard]).backward()
        shard_grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.save(torch.stack(shard_grads), os.path.join(out_dir, "shards.pt"))


def test_ddp_two_processes_agree_on_gradients(tmp_path):
    mp.spawn(_ddp_step, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    g0, g1 = torch.load(tmp_path / "grad0.pt"), torch.load(tmp_path / "grad1.pt")
    assert torch.equal(g0, g1)  # DDP averaged them across the two processes
    # Batchnorm sees each process's shard, so what DDP must match is the mean of the
    # per-shard gradients of one process.
    mp.spawn(_shard_gradients, args=(str(tmp_path),), nprocs=1, join=True)
    shards = torch.load(tmp_path / "shards.pt")
    # float32 sums in another order (the allreduce): relative 1e-4
    assert torch.allclose(g0, shards.mean(0), rtol=1e-4, atol=1e-5), \
        (g0 - shards.mean(0)).abs().max()


@pytest.mark.parametrize("spec, net", [("resnet.arch", "resnet18"),
                                       ("mobilenetv3.arch", "mobilenet_v3_small")])
def test_size_checked_models_export_and_compile_with_dynamic_sizes(spec, net):
    """The input check of archspec.build() (valid sizes, not only the declared one) stays
    out of the graph: torch.export with dynamic H and W, and torch.compile(dynamic=True),
    give eager's outputs at sizes other than the traced one."""
    network = archspec.load(str(ROOT / "specs" / spec), net, input_shape=(3, 64, 64))
    torch.manual_seed(0)
    model = archspec.build(network).eval()
    height, width = torch.export.Dim("H", min=64, max=512), torch.export.Dim("W", min=64, max=512)
    program = torch.export.export(model, (torch.randn(2, 3, 64, 64),),
                                  dynamic_shapes=({2: height, 3: width},))
    torch._dynamo.reset()
    compiled = torch.compile(model, dynamic=True, backend="eager")
    for shape in [(2, 3, 96, 80), (2, 3, 130, 224)]:
        x = torch.randn(*shape)
        with torch.no_grad():
            expected = model(x)
            assert torch.allclose(program.module()(x), expected, atol=1e-5)
            assert torch.allclose(compiled(x), expected, atol=1e-5)
    with pytest.raises(ValueError, match="expects"):
        model(torch.randn(1, 4, 64, 64))
