"""The fixes E304's hints propose for a residual block, applied with torch: the projection
it proposes must turn the shortcut into what the main branch gives, the padding it proposes
must make the main branch give the shortcut's size (or, with a projection, the projection's)."""

from __future__ import annotations

import ast
import re

import pytest

import archspec

torch = pytest.importorskip("torch")
nn = torch.nn

SOURCE = (16, 30, 30)
PROJECTION = re.compile(r"conv\((\d+), k=1(?:, s=(\d+|\(\d+, \d+\)))?\) batchnorm")
PADDING = re.compile(r"`p=(\d+)`")

# the main branch's one conv: out channels, kernel, stride, padding, dilation
CONVS = [(16, 3, 1, 0, 1), (16, 5, 1, 1, 1), (16, 3, 2, 0, 1), (32, 3, 1, 0, 1),
         (32, 3, 2, 1, 1), (16, 1, 3, 0, 1), (16, 3, 1, 0, 2), (24, 5, 2, 0, 1), (16, 1, 4, 0, 1)]


def _hint(out: int, k: int, s: int, p: int, d: int) -> str:
    text = (f"network n() {{\n  input [{', '.join(map(str, SOURCE))}]\n"
            f"  add {{ conv({out}, k={k}, s={s}, p={p}, d={d}) }}\n}}\n")
    with pytest.raises(archspec.ArchError) as caught:
        archspec.loads(text)
    (diag,) = caught.value.diagnostics
    assert diag.code == "E304"
    return diag.hint


def _size(module: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(module(torch.zeros(1, *shape)).shape[1:])


@pytest.mark.parametrize("conv", CONVS)
def test_the_proposed_fix_makes_the_residual_fit(conv):
    out, k, s, p, d = conv
    hint = _hint(*conv)
    padding = PADDING.search(hint)
    main = nn.Conv2d(SOURCE[0], out, k, s, int(padding[1]) if padding else p, d)
    projection = PROJECTION.search(hint)
    if projection is None:  # padding alone: the main branch keeps the shortcut's shape
        assert padding and _size(main, SOURCE) == SOURCE
        return
    stride = ast.literal_eval(projection[2] or "1")  # a number or a tuple, as written
    shortcut = nn.Conv2d(SOURCE[0], int(projection[1]), 1, stride)
    assert _size(shortcut, SOURCE) == _size(main, SOURCE)
    if padding is None:  # no padding proposed: no conv lost its padding
        assert p >= d * (k - 1) // 2
