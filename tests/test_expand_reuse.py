"""Reusing a block call's first expansion (archspec/reuse.py) gives the IR and the diagnostics
that expanding every call gives: the same nodes field by field, the same limits reached at
the same place. The reference is the expander itself with reuse turned off."""

from __future__ import annotations

import functools
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest

from archspec import check as check_module
from archspec import expand, ir
from archspec.check import check_file, check_text
from archspec.evaluate import BlockRef
from archspec.limits import MAX_NESTING, MAX_PATH, budget
from archspec.ops import OpSpec

ROOT = Path(__file__).resolve().parent.parent
# the broken specs that spend a whole limit take seconds each way: slow
_EXHAUSTING = {"e408_too_much_work.arch", "e405_too_many_layers.arch"}
SPECS = [pytest.param(spec, marks=pytest.mark.slow) if spec.name in _EXHAUSTING else spec
         for spec in sorted((ROOT / "specs").glob("*.arch"))
         + sorted((ROOT / "tests/broken").glob("*.arch"))]
IR_TYPES = (ir.Node, ir.BlockCall, ir.Output, ir.Network)


def differences(a, b, where: str = "") -> list[str]:
    """Where two values differ: IR nodes field by field; syntax nodes (each check parses
    the file again) by type and span; ops by identity."""
    if type(a) is not type(b):
        return [f"{where}: {type(a).__name__} vs {type(b).__name__}"]
    if isinstance(a, IR_TYPES):
        return [d for f in fields(a)
                for d in differences(getattr(a, f.name), getattr(b, f.name),
                                     f"{where}.{f.name}")]
    if isinstance(a, dict):
        if list(a) != list(b):
            return [f"{where}: keys {list(a)} vs {list(b)}"]
        return [d for k in a for d in differences(a[k], b[k], f"{where}[{k!r}]")]
    if isinstance(a, list | tuple):
        if len(a) != len(b):
            return [f"{where}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b))
                for d in differences(x, y, f"{where}[{i}]")]
    if isinstance(a, OpSpec):
        return [] if a is b else [f"{where}: op {a.name} vs {b.name}"]
    if isinstance(a, BlockRef):
        return differences(a.definition, b.definition, f"{where}.definition")
    if is_dataclass(a) and hasattr(a, "span"):  # a syntax node
        return [] if a.span == b.span else [f"{where}: {a.span} vs {b.span}"]
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


def both(monkeypatch, run):
    """`run()` with reuse, then without, and how often reuse was taken."""
    taken = [0]
    original = expand.Expander.reuse

    def counted(self, *args):
        taken[0] += 1
        return original(self, *args)

    monkeypatch.setattr(expand.Expander, "reuse", counted)
    with_reuse = run()
    monkeypatch.setattr(expand, "REUSE_BLOCKS", False)
    without = run()
    monkeypatch.setattr(expand, "REUSE_BLOCKS", True)
    return with_reuse, without, taken[0]


def same_result(with_reuse, without) -> list[str]:
    found = differences(with_reuse.networks, without.networks, "networks")
    if [d.__dict__ for d in with_reuse.diagnostics] != [d.__dict__ for d in without.diagnostics]:
        found.append("diagnostics differ")
    return found


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_reuse_gives_the_same_ir(spec, monkeypatch):
    with_reuse, without, _ = both(monkeypatch, lambda: check_file(str(spec)))
    assert same_result(with_reuse, without) == []


def test_the_library_reuses_expansions(monkeypatch):
    """Identical bottlenecks of a stage are copied: the comparison above compared copies."""
    _, _, taken = both(monkeypatch, lambda: check_file(str(ROOT / "specs/resnet.arch")))
    assert taken > 100


def test_copies_are_moved_to_their_own_path(monkeypatch):
    with_reuse, _, taken = both(monkeypatch, lambda: check_file(str(ROOT / "specs/resnet.arch")))
    for net in with_reuse.networks:
        paths = [layer.path for layer in net.layers()]
        assert len(paths) == len(set(paths)), net.name
    assert taken


FAMILY = """block unit(c: int) {
  conv(c, k=3, p=1)  bn: batchnorm  relu
}
network net(width: int = 8) {
  input [3, 8, 8]
  unit(width)  unit(16)  global_avgpool  flatten  linear(10)
}
variant wide = net(width=16)  # its calls meet other input shapes: expanded
variant same = net(width=8)  # both calls as in `net`: copied
"""


def test_the_networks_of_a_file_share_expansions(monkeypatch):
    """A family's variants call the same blocks alike: one check expands each call once."""
    with_reuse, without, taken = both(monkeypatch, lambda: check_text(FAMILY))
    assert taken == 2
    assert same_result(with_reuse, without) == []
    assert [net.name for net in with_reuse.networks] == ["net", "wide", "same"]


BLOCKS = """block unit(c: int) {
  conv(c, k=3, p=1)  bn: batchnorm  relu
}
network net() {
  input [3, 8, 8]
  repeat 40 { unit(8) }  # 120 layers, then 3
  global_avgpool  flatten  linear(10)
}
"""


@pytest.mark.parametrize("steps", range(2_000, 40_000, 1_237))
def test_the_budget_runs_out_where_it_would(steps, monkeypatch):
    """E408 at the same statement, whatever the budget (reuse charges the first
    expansion's work at once, and only where the budget holds it)."""
    monkeypatch.setattr(check_module, "budget", functools.partial(budget, steps))
    with_reuse, without, _ = both(monkeypatch, lambda: check_text(BLOCKS))
    assert same_result(with_reuse, without) == []


@pytest.mark.parametrize("most", [50, 121, 122, 123, 124, 125, 126, 300])
def test_the_layer_count_stops_where_it_would(most, monkeypatch):
    """E405 at the same layer, whatever the most layers a network may have."""
    monkeypatch.setattr(check_module, "Expander",
                        functools.partial(expand.Expander, max_nodes=most))
    with_reuse, without, _ = both(monkeypatch, lambda: check_text(BLOCKS))
    assert same_result(with_reuse, without) == []


LONG_LABEL = "x" * (MAX_PATH - 2)
NESTED = "{ " * (MAX_NESTING - 4) + "relu" + " }" * (MAX_NESTING - 4)
LIMITS_AT_A_LATER_CALL = {
    # the eleventh call's module path is one character longer than the first's
    "E409": (f'block b() {{ "{LONG_LABEL}": relu }}\n'
             "network net() {\n  input [3, 8, 8]\n  repeat 11 { b }\n}\n"),
    # the second call sits deeper, past MAX_NESTING
    "E404": (f"block b() {{ {NESTED} }}\n"
             "network net() {\n  input [3, 8, 8]\n  b\n  { { { { b } } } }\n}\n"),
    # b(1) first expands without a cycle; called from c(true), on the same input, it calls c
    "E207": ("block c(deep: bool) { if deep { b(1) } else { relu } }\n"
             "block b(k: int) { conv(3 * k, k=1)  c(false) }\n"
             "network net() {\n  input [3, 8, 8]\n  b(1)\n  c(true)\n}\n"),
}


@pytest.mark.parametrize("code", LIMITS_AT_A_LATER_CALL)
def test_a_later_call_is_refused_as_it_would_be(code, monkeypatch):
    """A call whose first expansion passed, refused again where only its place differs."""
    spec = LIMITS_AT_A_LATER_CALL[code]
    with_reuse, without, _ = both(monkeypatch, lambda: check_text(spec))
    assert code in [d.code for d in without.diagnostics]
    assert same_result(with_reuse, without) == []


NAMED = """block res(c: int) {
  a: conv(c, k=3, p=1)  relu
  add { conv(c, k=3, p=1)  { @a } }
  @input  relu
  add { { @a } { @input } }
}
network net() {
  input [4, 8, 8]
  stage: { res(4) }
  b1: res(4)
  b2: res(4)
  concat { { @b1.a } { @b2.a } }
  global_avgpool  flatten  linear(10)
}
"""


def test_named_tensors_inside_a_copy_are_its_own(monkeypatch):
    """`@name` inside a reused call reads its own scope's tensor (the key moves with it);
    `@scope.module` outside reads the copy's module."""
    with_reuse, without, taken = both(monkeypatch, lambda: check_text(NAMED))
    assert taken and not without.diagnostics
    assert same_result(with_reuse, without) == []


def test_the_arguments_shape_rules_read_are_pydantic_s_dump(monkeypatch):
    """Args.attrs() copies the fields instead of model_dump(): the same dict, value for
    value and type for type, for every call of every network of specs/."""
    real, checked = expand._validated, []

    def validated(spec, given):
        args = real(spec, given)
        dumped, copied = args.model_dump(), args.attrs()
        checked.append(spec.name)
        assert copied == dumped and list(map(type, copied.values())) == list(
            map(type, dumped.values())), spec.name
        return args

    monkeypatch.setattr(expand, "_validated", validated)
    for spec in sorted((ROOT / "specs").glob("*.arch")):
        check_file(spec)
    assert len(set(checked)) > 20
