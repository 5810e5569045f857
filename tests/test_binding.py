"""The one argument binder (archspec/binding.py): block calls, variants and the Python API
bind arguments by the same rules, with the same codes at the argument's own span."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import archspec
from archspec import check_file

NET = """\
block unit(c: int, k: int = 3) { conv(c, k=k, p=k // 2)  relu }

network net(width: int, depth: int = 1, classes: int = 10) {
  input [3, 32, 32]
  repeat depth { unit(width) }
  global_avgpool  flatten  linear(classes)
}
"""


def _errors(tmp_path: Path, text: str, name: str = "spec.arch") -> list[tuple]:
    path = tmp_path / name
    path.write_text(text)
    result = check_file(str(path))
    return [(d.code, d.span.line, d.span.col) if d.span else (d.code,) for d in result.errors]


def _col(text: str, needle: str) -> tuple[int, int]:
    """Line and column (1-based) of the first `needle` in `text`."""
    for number, line in enumerate(text.split("\n"), 1):
        if needle in line:
            return number, line.index(needle) + 1
    raise AssertionError(needle)


@pytest.mark.parametrize("args, code, needle", [
    ("width=8, 4", "E203", "4)"),  # a positional argument after a keyword one
    ("8, 1, 10, 33", "E203", "33)"),  # too many positional arguments
    ("width=8, widht=4", "E202", "widht"),  # unknown keyword, at the argument
    ("8, width=16", "E210", "width=16"),  # given twice
    ("width=8.5", "E204", "width=8.5"),  # wrong type, at the argument
])
def test_variant_arguments_bind_like_a_block_call(tmp_path, args, code, needle):
    text = NET + f"variant v = net({args})\n"
    assert _errors(tmp_path, text) == [(code, *_col(text, needle))]


def test_variant_and_block_call_give_the_same_diagnostic(tmp_path):
    call = NET.replace("unit(width)", "unit(k=1, width)") + "variant v = net(width=8)\n"
    variant = NET + "variant v = net(depth=2, 8)\n"
    call_diag = check_file(str(_write(tmp_path / "a.arch", call))).errors
    variant_diag = check_file(str(_write(tmp_path / "b.arch", variant))).errors
    assert [d.code for d in call_diag] == [d.code for d in variant_diag] == ["E203"]
    assert call_diag[0].message == variant_diag[0].message
    assert call_diag[0].hint == variant_diag[0].hint


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_variant_hint_names_the_close_parameter(tmp_path):
    path = _write(tmp_path / "spec.arch", NET + "variant v = net(width=8, clases=4)\n")
    [diag] = check_file(str(path)).errors
    assert diag.code == "E202" and "did you mean `classes`?" in diag.hint


def test_missing_parameter_is_reported_not_the_defaults_that_read_it(tmp_path):
    text = NET.replace("block unit(c: int, k: int = 3)", "block unit(c: int, k: int = c)")
    text = text.replace("unit(width)", "unit()") + "variant v = net(width=8)\n"
    [diag] = check_file(str(_write(tmp_path / "spec.arch", text))).errors
    assert (diag.code, diag.span.line) == ("E205", _col(text, "unit()")[0])
    assert "`c`" in diag.message


def test_defaults_read_the_parameters_before_them(tmp_path):
    """A default sees every parameter declared before it, given or defaulted (the binder's
    environment once dropped them when it started empty)."""
    text = ("block unit(c: int, t: int = 2, h: int = c * t, w: int = h + in.c) { conv(w, k=1) }\n"
            "network net() { input [4, 8, 8]  unit(3)  unit(5, t=1) }\n")
    net = archspec.load(str(_write(tmp_path / "spec.arch", text)))
    assert net.output_shape == (5 + 10, 8, 8)


def test_python_api_binds_like_keyword_arguments(tmp_path):
    text = NET + "variant v = net(width=8)\n"
    path = _write(tmp_path / "spec.arch", text)
    assert archspec.load(str(path), net="v", classes=4).output_shape == (4,)
    for params, code in [({"clases": 4}, "E202"), ({"classes": 2.5}, "E204"),
                         ({"classes": [1] * 2_000_000}, "E402")]:
        with pytest.raises(archspec.ArchError) as info:
            archspec.load(str(path), net="v", **params)
        [diag] = info.value.diagnostics
        assert diag.code == code
        assert (diag.span.line, diag.span.col) == _col(text, "v =")


# Binding used to be quadratic (a list membership test per keyword, a copy of the values
# bound so far per default): 60,000 parameters took minutes. Linear, they take well under a
# second; the child process gets a generous limit so that only a quadratic binder fails.
_LINEAR = textwrap.dedent("""
    from archspec import nodes as n
    from archspec.diagnostics import Span
    from archspec.evaluate import Env, Evaluator
    from archspec.expand import Expander
    N = 60_000
    s = Span("big.arch", 1, 1, 1, 2)
    int_t = n.TypeExpr("int", [], s)
    params = [n.Param(f"p{i}", int_t, None if i < N // 2 else n.Literal(s, i), s)
              for i in range(N)]
    block = n.Definition("big", params, [], s, s, "block")
    args = [n.Arg(None, n.Literal(s, 0), s)] + [
        n.Arg(f"p{i}", n.Literal(s, i), s) for i in range(1, N // 2)]
    call = n.Call(s, "big", args, s)
    values = Expander([], "net").bind_call(block, call, Evaluator(Env(), {}, None, True))
    assert len(values) == N and values[f"p{N - 1}"] == N - 1
""")


def test_binding_is_linear_in_parameters_and_arguments():
    subprocess.run([sys.executable, "-c", _LINEAR], check=True, timeout=30)
