"""One test per limit of archspec/limits.py (the table in docs/errors.md): the diagnostic's
code, line and column, and that a spec just inside the limit still checks. The broken specs
of tests/broken/ show each code once more, through every output format."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from archspec import check_file
from archspec.cli import main
from archspec.limits import (
    INT_LIMIT,
    LIMITS,
    MAX_FILE_BYTES,
    MAX_IMPORT_DEPTH,
    MAX_ITEMS,
    MAX_LAYERS,
    MAX_NESTING,
    MAX_PATH,
    MAX_STEPS,
)

HEAD = "network net() {\n  input [3, 8, 8]\n"  # the body starts on line 3
TAIL = "\n  global_avgpool  flatten\n  linear(10)\n}\n"


def check(tmp_path: Path, text: str, name: str = "spec.arch", **kwargs):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return check_file(str(path), **kwargs)


def where(result, code: str) -> list[tuple[int, int]]:
    """(line, column) of every diagnostic with this code."""
    return [(d.span.line, d.span.col) for d in result.diagnostics
            if d.code == code and d.span is not None]


def only(result, code: str) -> tuple[int, int]:
    assert {d.code for d in result.errors} == {code}, [
        (d.code, d.message) for d in result.diagnostics]
    places = where(result, code)
    assert len(places) == 1, places
    return places[0]


def test_every_limit_is_documented_with_its_code():
    codes = {limit.code for limit in LIMITS}
    assert codes >= {"E401", "E402", "E403", "E404", "E405", "E406", "E407", "E408", "E409",
                     "E105", "E107"}
    doc = (Path(__file__).resolve().parent.parent / "docs" / "errors.md").read_text()
    for limit in LIMITS:
        assert limit.value in doc and limit.code in doc


# ---------------------------------------------------------------- E401 integers and floats


def test_integer_literal_too_large(tmp_path):
    result = check(tmp_path, HEAD + "  conv(9223372036854775808, k=1)" + TAIL)
    assert only(result, "E401") == (3, 8)


def test_integer_literal_longer_than_python_converts(tmp_path):
    """Python refuses int() of over 4300 digits: that was a crash, now it is E401."""
    result = check(tmp_path, HEAD + "  conv(" + "7" * 5000 + ", k=1)" + TAIL)
    assert only(result, "E401") == (3, 8)
    assert "4001 digits" in result.errors[0].detail


def test_computed_integer_too_large(tmp_path):
    result = check(tmp_path, HEAD + f"  let x = {INT_LIMIT} + 1\n  conv(x, k=1)" + TAIL)
    assert only(result, "E401") == (3, 11)


def test_float_literal_too_large(tmp_path):
    result = check(tmp_path, HEAD + "  leaky_relu(1e999)" + TAIL)
    assert only(result, "E401") == (3, 14)


def test_float_overflow_in_arithmetic(tmp_path):
    """10.0 ** 400 raised OverflowError (a crash); 1e308 * 10 gave inf, compiled as `inf`."""
    result = check(tmp_path, HEAD + "  leaky_relu(10.0 ** 400)\n  leaky_relu(1e308 * 10)" + TAIL)
    assert where(result, "E401") == [(3, 14), (4, 14)]


# ---------------------------------------------------------------- E402 sizes and counts


def test_range_too_long(tmp_path):
    result = check(tmp_path, HEAD + f"  let r = range({MAX_ITEMS + 1})\n  relu" + TAIL)
    assert only(result, "E402") == (3, 11)


def test_range_longer_than_sys_maxsize(tmp_path):
    """len() of such a range raised OverflowError (a crash)."""
    result = check(tmp_path, HEAD + f"  let r = range(-{INT_LIMIT}, {INT_LIMIT})\n  relu" + TAIL)
    assert only(result, "E402") == (3, 11)


def test_repeat_count_too_large(tmp_path):
    result = check(tmp_path, HEAD + f"  repeat {MAX_ITEMS + 1} {{ relu }}" + TAIL)
    assert only(result, "E402") == (3, 10)


def test_value_too_large_through_sharing(tmp_path):
    """A list holding one big list twice is twice its size: values cannot grow by sharing."""
    result = check(tmp_path, HEAD + "  let a = range(60000)\n  let b = [a, a]\n  relu" + TAIL)
    assert only(result, "E402") == (4, 11)


def test_sequence_just_inside_the_limit(tmp_path):
    result = check(tmp_path, HEAD + f"  let r = range({MAX_ITEMS})\n  relu" + TAIL)
    assert not result.diagnostics


# ---------------------------------------------------------------- E403 file size


def test_imported_file_too_large(tmp_path):
    (tmp_path / "big.arch").write_text("# padding\n" * (MAX_FILE_BYTES // 10 + 1))
    result = check(tmp_path, 'import "big.arch"\n' + HEAD + "  relu" + TAIL)
    assert only(result, "E403") == (1, 1)
    assert not result.unreadable  # the main file was read: exit status 1, not 2


def test_main_file_too_large_is_unreadable(tmp_path):
    result = check(tmp_path, "#" * (MAX_FILE_BYTES + 1) + "\n" + HEAD + "  relu" + TAIL)
    assert [d.code for d in result.diagnostics] == ["E403"] and result.unreadable


# ---------------------------------------------------------------- E404 nesting


def _braces(depth: int) -> str:
    return HEAD + "  " + "{" * depth + " relu " + "}" * depth + TAIL


def test_source_nesting_limit(tmp_path):
    """The network counts as one level, so MAX_NESTING - 2 groups around a call still fit."""
    assert not check(tmp_path, _braces(MAX_NESTING - 2)).diagnostics
    result = check(tmp_path, _braces(MAX_NESTING - 1))
    assert only(result, "E404") == (3, 3 + MAX_NESTING)  # the `relu`, one level too deep


@pytest.mark.slow
def test_deep_nesting_is_no_recursion_error(tmp_path):
    """Far past the limit, in the source and inside a label's template: E404, no RecursionError
    (the command line said `nested too deeply to check` without a code, or crashed)."""
    assert only(check(tmp_path, _braces(5000)), "E404")
    assert only(check(tmp_path, HEAD + "  linear(" + "1 + " * 5000 + "1)" + TAIL), "E404")
    assert only(check(tmp_path, HEAD + "  linear(" + "-" * 5000 + "1)" + TAIL), "E404")
    result = check(tmp_path, HEAD + "  x{" + "1+" * 3000 + "1}: relu" + TAIL)
    assert only(result, "E404") == (3, 5)


def test_expression_nesting_limit(tmp_path):
    result = check(tmp_path, HEAD + "  let x = " + "-" * (MAX_NESTING + 5) + "1\n  relu" + TAIL)
    line, col = only(result, "E404")
    assert line == 3 and col > 11


def test_block_call_nesting_limit(tmp_path):
    depth = MAX_NESTING + 3
    blocks = "".join(f"block b{i}() {{ inner: b{i + 1} }}\n" for i in range(depth))
    text = blocks + f"block b{depth}() {{ relu }}\n" + HEAD + "  b0" + TAIL
    result = check(tmp_path, text)
    assert only(result, "E404") == (MAX_NESTING, 22)  # the call in b31: one level too deep
    assert any("in block `b0`" in note for note in result.errors[0].notes)


def test_block_call_chain_within_the_limit(tmp_path):
    depth = MAX_NESTING - 3
    blocks = "".join(f"block b{i}() {{ inner: b{i + 1} }}\n" for i in range(depth))
    text = blocks + f"block b{depth}() {{ relu }}\n" + HEAD + "  b0" + TAIL
    assert not check(tmp_path, text).diagnostics


def test_value_nesting_limit(tmp_path):
    steps = "".join(f"  let v{i + 1} = [[[[[[[[v{i}]]]]]]]]\n" for i in range(5))
    result = check(tmp_path, HEAD + "  let v0 = 1\n" + steps + "  relu" + TAIL)
    line, _ = only(result, "E404")
    assert line == 8  # v4 would be 32 levels deep, v5 is 40


def test_variant_chain_limit(tmp_path):
    depth = MAX_NESTING + 10
    chain = "".join(f"variant v{i} = v{i + 1}\n" for i in range(depth))
    text = HEAD + "  relu" + TAIL + chain + f"variant v{depth} = net\n"
    result = check(tmp_path, text)
    assert [d.code for d in result.errors] == ["E404"]  # once, not for every variant
    assert where(result, "E404") == [(7 + MAX_NESTING, 9)]


# ---------------------------------------------------------------- E405 layers


@pytest.mark.slow
def test_too_many_layers(tmp_path):
    start = time.perf_counter()
    result = check(tmp_path, HEAD + f"  repeat {MAX_LAYERS // 2} {{\n    relu  relu  relu\n  }}"
                   + TAIL)
    assert only(result, "E405") == (4, 11)  # the first layer past the limit
    assert time.perf_counter() - start < 30


# ---------------------------------------------------------------- E406 and E105 imports


def test_import_chain_limit(tmp_path):
    for i in range(MAX_IMPORT_DEPTH + 2):
        (tmp_path / f"f{i}.arch").write_text(f'import "f{i + 1}.arch"\n')
    (tmp_path / f"f{MAX_IMPORT_DEPTH + 2}.arch").write_text("")
    result = check_file(str(tmp_path / "f0.arch"))
    assert [d.code for d in result.diagnostics] == ["E406"]
    span = result.diagnostics[0].span
    assert os.path.basename(span.file) == f"f{MAX_IMPORT_DEPTH - 1}.arch"
    assert (span.line, span.col) == (1, 1)


def test_import_chain_within_the_limit(tmp_path):
    for i in range(MAX_IMPORT_DEPTH - 1):
        (tmp_path / f"f{i}.arch").write_text(f'import "f{i + 1}.arch"\n')
    (tmp_path / f"f{MAX_IMPORT_DEPTH - 1}.arch").write_text("")
    assert not check_file(str(tmp_path / "f0.arch")).diagnostics


def test_import_cycle(tmp_path):
    (tmp_path / "a.arch").write_text('import "b.arch"\n')
    (tmp_path / "b.arch").write_text('\nimport "a.arch"\n')
    result = check_file(str(tmp_path / "a.arch"))
    assert [(d.code, os.path.basename(d.span.file), d.span.line, d.span.col)
            for d in result.diagnostics] == [("E105", "b.arch", 2, 1)]


def test_diamond_imports_are_read_once(tmp_path):
    """Each file imported twice by the one before: 2**20 reads before, 21 now."""
    for i in range(20):
        (tmp_path / f"f{i}.arch").write_text(
            f'import "f{i + 1}.arch"\nimport "./f{i + 1}.arch"\nblock b{i}() {{ relu }}\n')
    (tmp_path / "f20.arch").write_text("block b20() { relu }\n")
    (tmp_path / "main.arch").write_text('import "f0.arch"\n' + HEAD + "  b20  b0" + TAIL)
    start = time.perf_counter()
    result = check_file(str(tmp_path / "main.arch"))
    assert time.perf_counter() - start < 10
    # the chain is 22 files long: past the limit at both imports of the 16th file
    assert [(d.code, d.span.line) for d in result.errors] == [("E406", 1), ("E406", 2)]


# ---------------------------------------------------------------- E407 tensors


def test_layer_parameters_beyond_int64(tmp_path):
    result = check(tmp_path, HEAD + "  conv(2**40, k=1)\n  conv(2**40, k=1)" + TAIL)
    assert only(result, "E407") == (4, 3)
    assert "parameters" in result.errors[0].detail


def test_tensor_values_beyond_int64(tmp_path):
    result = check(tmp_path, "network net() {\n  input [2**31, 2**31, 2**31]\n  relu" + TAIL)
    assert only(result, "E407") == (2, 3)


def test_layer_macs_beyond_int64(tmp_path):
    text = ("network net() {\n  input [2**20, 2**10, 2**10]\n  conv(2**20, k=3, p=1)" + TAIL)
    result = check(tmp_path, text)
    assert only(result, "E407") == (3, 3)
    assert "MACs" in result.errors[0].detail


def test_concat_beyond_int64(tmp_path):
    text = ("network net() {\n  input [1, 2**20, 2**20]\n"
            "  concat { conv(2**22, k=1, bias=false) conv(2**22, k=1, bias=false) }" + TAIL)
    result = check(tmp_path, text)
    assert only(result, "E407") == (3, 3)


def test_network_total_beyond_int64(tmp_path):
    """Each branch is within int64, their sum is not."""
    text = ("network net() {\n  input [1]\n  add {\n    linear(2**61)\n    linear(2**61)\n"
            "  }\n  linear(1)\n}\n")
    result = check(tmp_path, text)
    assert only(result, "E407") == (1, 9)


def test_cli_input_beyond_int64(tmp_path, capsys):
    path = tmp_path / "spec.arch"
    path.write_text(HEAD + "  relu" + TAIL)
    assert main(["check", "--input", f"{2**40},{2**40},{2**40}", str(path)]) == 1
    assert "error[E407]" in capsys.readouterr().err


# ---------------------------------------------------------------- E408 work


@pytest.mark.slow
def test_work_budget(tmp_path):
    """Loops inside loops with empty bodies made no layers and never ended."""
    start = time.perf_counter()
    result = check(tmp_path, HEAD + "  repeat 100000 {\n    repeat 100000 { }\n  }" + TAIL)
    assert only(result, "E408") == (4, 5)
    assert f"{MAX_STEPS:,}" in result.errors[0].message
    assert time.perf_counter() - start < 30


def test_work_budget_counts_values_built(tmp_path):
    text = HEAD + "  let a = range(100000)\n  for i in range(100000) {\n    let b = a + []\n  }" \
        + TAIL
    assert only(check(tmp_path, text), "E408") == (5, 5)


@pytest.mark.slow
def test_work_budget_is_per_file(tmp_path):
    """Two checks in a row each get the whole budget."""
    text = HEAD + "  repeat 1000 { repeat 1000 { } }\n  relu" + TAIL
    assert not check(tmp_path, text).diagnostics
    assert not check(tmp_path, text).diagnostics


# ---------------------------------------------------------------- E409 module paths


def test_module_path_too_long(tmp_path):
    label = "x" * 400
    text = HEAD + f"  {label}: {{\n    {label}: {{\n      {label}: relu\n    }}\n  }}" + TAIL
    result = check(tmp_path, text)
    assert only(result, "E409") == (5, 7)
    assert len(".".join([label] * 3)) > MAX_PATH


@pytest.mark.slow
@pytest.mark.parametrize("command", ["check", "summary", "compile", "diagram"])
def test_limits_reach_every_command_as_diagnostics(tmp_path, capsys, command):
    path = tmp_path / "spec.arch"
    path.write_text(HEAD + "  repeat 100000 { repeat 100000 { } }" + TAIL)
    extra = ["-o", str(tmp_path / "out.dot")] if command == "diagram" else []
    assert main([command, str(path), *extra]) == 1
    err = capsys.readouterr().err
    assert "error[E408]" in err and "Traceback" not in err


# ---------------------------------------------------------------- Graphviz layout


def test_drawing_too_large_for_graphviz(tmp_path, capsys):
    """Found by the fuzzer: `dense 5000` drawn as SVG kept Graphviz busy for minutes. Such a
    drawing is refused at once (exit 2, as for other Graphviz failures); its .dot is fine."""
    from archspec.diagram import MAX_LAYOUT_EDGES

    path = tmp_path / "spec.arch"
    path.write_text(HEAD + f"  dense {MAX_LAYOUT_EDGES // 3 + 10} {{ conv(4, k=3, p=1) }}" + TAIL)
    start = time.perf_counter()
    assert main(["diagram", str(path), "-o", str(tmp_path / "n.svg")]) == 2
    assert time.perf_counter() - start < 20
    assert "Graphviz lays out in reasonable time" in capsys.readouterr().err
    assert not (tmp_path / "n.svg").exists()
    assert main(["diagram", str(path), "-o", str(tmp_path / "n.dot")]) == 0
    capsys.readouterr()
