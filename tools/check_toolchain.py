"""Run every network in specs/ through the PyTorch toolchain and print one row each.

For each network and variant: build() with verify (meta-device shape check), compiled source
equal to build() (state_dict and outputs), torch.compile(fullgraph=True), torch.export, and
ONNX export checked with onnxruntime. Exits 1 if any cell fails.

    python tools/check_toolchain.py [--backend aot_eager|inductor|eager] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archspec.check import check_file
from archspec.torch_backend import build_module, verify_network
from archspec.torch_source import generate


def _source_matches(network, spec: str, model, x, expected, folder: Path) -> None:
    path = folder / f"{network.name}.py"
    path.write_text(generate(network, spec))
    loader = importlib.util.spec_from_file_location(f"gen_{network.name}", path)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    written = getattr(module, network.name)().eval()
    written.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(written(x), expected), "outputs differ"


def _close(out: torch.Tensor, expected: torch.Tensor) -> bool:
    """Equal up to float32 rounding, relative to the output's scale (a deep network with
    random weights can have large outputs)."""
    scale = expected.abs().max().item() or 1.0
    return torch.allclose(out, expected, rtol=1e-4, atol=1e-4 * scale)


def _compiled(model, x, expected, backend: str) -> None:
    torch._dynamo.reset()  # each network is a new model: start from an empty cache
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    with torch.no_grad():
        assert _close(compiled(x), expected), "outputs differ"


def _exported(model, x, expected) -> None:
    program = torch.export.export(model, (x,))
    with torch.no_grad():
        assert _close(program.module()(x), expected), "outputs differ"


def _onnx(model, x, expected, folder: Path) -> None:
    import onnxruntime

    path = folder / "model.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=True, verbose=False)
    session = onnxruntime.InferenceSession(str(path))
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    assert _close(torch.from_numpy(out), expected), "outputs differ"


def check_network(spec: str, network, backend: str, folder: Path) -> list[str]:
    verify_network(network)
    torch.manual_seed(0)
    model = build_module(network).eval()
    x = torch.randn(1, *network.input_shape)
    with torch.no_grad():
        expected = model(x)
    cells = []
    for name, step in (("source", lambda: _source_matches(network, spec, model, x, expected,
                                                          folder)),
                       ("compile", lambda: _compiled(model, x, expected, backend)),
                       ("export", lambda: _exported(model, x, expected)),
                       ("onnx", lambda: _onnx(model, x, expected, folder))):
        try:
            step()
            cells.append("ok")
        except Exception as exc:  # noqa: BLE001 - report every failure, keep going
            cells.append("FAIL")
            print(f"  {network.name} {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            traceback.print_exc(limit=2)
    return cells


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="aot_eager",
                        help="torch.compile backend (default aot_eager: traces forward and "
                             "backward graphs; inductor also generates kernels, slowly on CPU)")
    parser.add_argument("--only", nargs="*", help="network names to run")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    failures = 0
    print(f"{'network':<22}{'verify':>8}{'source':>8}{'compile':>9}{'export':>8}{'onnx':>6}"
          f"{'seconds':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for spec_path in sorted((ROOT / "specs").glob("*.arch")):
            spec = str(spec_path.relative_to(ROOT))
            for network in check_file(spec).networks:
                if args.only and network.name not in args.only:
                    continue
                start = time.perf_counter()
                cells = check_network(spec, network, args.backend, Path(tmp))
                failures += cells.count("FAIL")
                print(f"{network.name:<22}{'ok':>8}{cells[0]:>8}{cells[1]:>9}{cells[2]:>8}"
                      f"{cells[3]:>6}{time.perf_counter() - start:>9.1f}", flush=True)
    print(f"torch {torch.__version__}, compile backend {args.backend}: "
          f"{'all passed' if not failures else f'{failures} failure(s)'}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
