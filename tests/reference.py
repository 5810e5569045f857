"""What the reference tests share: weights far from PyTorch's initial ones, a batch, the
outputs of a module in either mode with the same random draws, and a compiled file,
imported."""

from __future__ import annotations

import importlib.util

import torch
from torch import nn

from archspec.cli import main


def randomise(module: nn.Module, seed: int = 1) -> nn.Module:
    """Weights and batchnorm statistics far from PyTorch's initial ones."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        for name, buf in module.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(torch.randn(buf.shape, generator=gen))
            elif name.endswith("running_var"):
                buf.copy_(torch.rand(buf.shape, generator=gen) + 0.5)
    return module


def batch(shape: tuple[int, ...], n: int = 2, seed: int = 2) -> torch.Tensor:
    return torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed))


def outputs(module: nn.Module, x: torch.Tensor, training: bool, seed: int = 3) -> torch.Tensor:
    module.train(training)
    torch.manual_seed(seed)  # stochastic depth draws the same mask for both
    with torch.no_grad():
        return module(x.clone())


def assert_same(got: nn.Module, want: nn.Module, x: torch.Tensor, modes=(False, True)) -> None:
    for training in modes:
        torch.testing.assert_close(outputs(got, x, training), outputs(want, x, training),
                                   msg=lambda m, t=training: f"train={t}: {m}")


def loaded(built: nn.Module, reference: nn.Module) -> nn.Module:
    """The built module with the randomised reference's state, loaded strictly."""
    built.load_state_dict(randomise(reference).state_dict(), strict=True)
    return built


def compile_and_import(spec: str, out, *options: str):
    assert main(["compile", spec, "-o", str(out), *options]) == 0
    loader = importlib.util.spec_from_file_location(out.stem, out)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    return module
