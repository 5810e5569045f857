"""Networks imported from another file are variant bases in the importing file; the
importing file's check covers its own networks and variants only."""

from __future__ import annotations

from pathlib import Path

import pytest

from archspec import check_file

LIB = """\
block unit(c: int) { conv(c, k=3, p=1)  relu }

network small(width: int, classes: int = 10) {
  input [3, 32, 32]
  unit(width)
  global_avgpool  flatten  linear(classes)
}

variant small8 = small(width=8)
"""


def _check(tmp_path: Path, text: str):
    (tmp_path / "lib.arch").write_text(LIB)
    (tmp_path / "main.arch").write_text(text)
    return check_file(str(tmp_path / "main.arch"))


@pytest.mark.parametrize("imp", ['from "lib.arch" import small', 'import "lib.arch"'])
def test_imported_network_is_a_variant_base(tmp_path, imp):
    result = _check(tmp_path, f"{imp}\nvariant wide = small(width=16, classes=4)\n")
    assert not result.diagnostics
    [network] = result.networks  # the file's own variant, not lib's `small8`
    assert (network.name, network.definition) == ("wide", "small")
    assert network.output_shape == (4,) and network.args["width"] == 16


def test_mistakes_in_the_imported_network_point_into_its_file(tmp_path):
    result = _check(tmp_path, 'from "lib.arch" import small\nvariant bad = small(width=0)\n')
    [diag] = result.errors
    assert diag.code == "E216" and diag.span.file.endswith("lib.arch")
    assert any("while checking `bad`" in note for note in diag.notes)


def test_variants_of_variants_of_an_imported_network(tmp_path):
    text = 'from "lib.arch" import small\nvariant a = small(width=4)\nvariant b = a(classes=3)\n'
    result = _check(tmp_path, text)
    assert [(n.name, n.output_shape, n.args["width"]) for n in result.networks] == [
        ("a", (10,), 4), ("b", (3,), 4)]


def test_importing_a_variant_is_e106_with_its_own_hint(tmp_path):
    result = _check(tmp_path, 'from "lib.arch" import small8\n')
    [diag] = result.errors
    assert (diag.code, diag.span.line, diag.span.col) == ("E106", 1, 24)
    assert "variant" in diag.message and "import its network" in diag.hint


def test_unknown_base_suggests_imported_networks(tmp_path):
    result = _check(tmp_path, 'from "lib.arch" import small\nvariant v = smal(width=4)\n')
    [diag] = result.errors
    assert (diag.code, diag.span.line, diag.span.col) == ("E211", 2, 13)
    assert "did you mean `small`?" in diag.hint


def test_an_imported_network_is_not_a_block(tmp_path):
    text = ('from "lib.arch" import small\nnetwork n2() {\n  input [3, 8, 8]\n  small(4)\n}\n')
    [diag] = _check(tmp_path, text).errors
    assert (diag.code, diag.span.line) == ("E201", 4)


def test_a_blocks_argument_must_be_visible_in_the_importing_file(tmp_path):
    text = ('from "lib.arch" import small\n'
            'network holder(b: block = unit) {\n  input [3, 8, 8]\n  b(4)\n}\n')
    [diag] = _check(tmp_path, text).errors
    assert (diag.code, diag.span.line) == ("E208", 2)  # `unit` is lib's, not imported
