"""Regression tests for issue 16 (hostile files, paths and sizes). Each spec is generated;
the work is bounded by counting (calls, characters, bytes printed), not by the clock."""

from __future__ import annotations

import contextlib
import functools
import io
import sys
from pathlib import Path

import pytest
from lark.exceptions import UnexpectedInput

from archspec import check as check_module
from archspec import check_file, torch_source
from archspec import expand as expand_module
from archspec import parse as parse_module
from archspec.check import load_program
from archspec.cli import main
from archspec.diagnostics import MAX_PRINTED, SUGGEST_COMPARED, _nearest
from archspec.expand import Expander, Scope
from archspec.limits import (
    CALL_STEPS,
    ERROR_STEPS,
    LAYER_STEPS,
    MAX_FILE_BYTES,
    MAX_IMPORT_BYTES,
    MAX_IMPORT_FILES,
    MAX_PATH,
    MAX_STEPS,
    PARSE_ROOM,
    PARSE_STEPS,
    budget,
)
from archspec.parse import MAX_SYNTAX_ERRORS


def _codes(path) -> list[str]:
    return [d.code for d in check_file(str(path)).diagnostics]


def test_long_labels_refused_before_they_are_built(tmp_path, monkeypatch):
    """A label of ten 100,000-character pieces is E409 without building it (it used to
    build 1,000,000 characters a round, for 100,000 rounds)."""
    spec = tmp_path / "labels.arch"
    spec.write_text('network net() {\n  input [3, 8, 8]\n  let a = "aaaaaaaaaa"\n'
                    + "".join(f"  let {b} = " + " + ".join([p] * 10) + "\n"
                              for p, b in zip("abcd", "bcde"))
                    + "  repeat 3 { x{e}{e}{e}{e}{e}{e}{e}{e}{e}{e}: relu }\n}\n")
    longest = []
    take = Scope.take

    def spy(self, label, span):
        longest.append(len(label or ""))
        return take(self, label, span)

    monkeypatch.setattr(Scope, "take", spy)
    assert set(_codes(spec)) == {"E409"}
    assert max(longest, default=0) <= MAX_PATH


def test_unknown_call_in_a_loop_lists_the_known_names_once(tmp_path, monkeypatch):
    """The known names (here 1,500 blocks) are gathered once per place, not once a round."""
    (tmp_path / "lib.arch").write_text("".join(f"block blk{i:04d}() {{ relu }}\n"
                                               for i in range(1500)))
    spec = tmp_path / "main.arch"
    spec.write_text('import "lib.arch"\nnetwork n() {\n input [3, 8, 8]\n'
                    ' repeat 1_000 { blk000 }\n}\n')
    gathered = []
    real = expand_module.did_you_mean

    def spy(name, candidates, *place):
        if not callable(candidates):  # gathered before the call
            gathered.append(name)
            return real(name, candidates, *place)

        def counted():
            gathered.append(name)
            return candidates()
        return real(name, counted, *place)

    monkeypatch.setattr(expand_module, "did_you_mean", spy)
    result = check_file(str(spec))
    assert {d.code for d in result.diagnostics} == {"E201"}
    assert "did you mean `blk" in result.diagnostics[0].hint
    assert len(gathered) == 1


def test_a_lookup_compares_a_bounded_number_of_names():
    known = {f"name{i:05d}" for i in range(20_000)}
    nearest = _nearest("name0001x", known)
    assert len(nearest) <= SUGGEST_COMPARED


def limit_calls(monkeypatch, method: str, most: int) -> list[int]:
    """Fail the test as soon as Expander.`method` runs more than `most` times; the list
    counts the calls so far."""
    original, calls = getattr(Expander, method), [0]

    def spy(self, *args):
        calls[0] += 1
        if calls[0] > most:
            pytest.fail(f"more than {most:,} calls of {method}")
        return original(self, *args)

    monkeypatch.setattr(Expander, method, spy)
    return calls


def test_empty_block_calls_cost_work(tmp_path, monkeypatch):
    """b30 calls b29 twice ... b1 is empty: 2**30 calls, refused (E408) after at most
    budget / CALL_STEPS of them (it used to make 5 million, in 2.8 GB). A tenth of the real
    budget here, for speed: the calls are charged the same. Each call is expanded (no
    reuse of the first expansion, which charges the same: tests/test_expand_reuse.py)."""
    steps = MAX_STEPS // 10
    monkeypatch.setattr(check_module, "budget", functools.partial(budget, steps))
    monkeypatch.setattr(expand_module, "REUSE_BLOCKS", False)
    lines = ["block b1() { }"] + [f"block b{i}() {{ b{i - 1} b{i - 1} }}"
                                  for i in range(2, 31)]
    spec = tmp_path / "double.arch"
    spec.write_text("\n".join(lines) + "\nnetwork net() {\n  input [3, 8, 8]\n  b30\n}\n")
    calls = limit_calls(monkeypatch, "call_block", steps // CALL_STEPS)
    assert "E408" in _codes(spec)
    assert calls[0] > steps // CALL_STEPS // 2  # the calls spent it, not the parse


def test_variants_share_one_budget(tmp_path, monkeypatch):
    """200 variants of a 5,000-layer network: all together expand at most budget /
    LAYER_STEPS layers (two variants' worth) before E408; each with its own budget would be
    a million. A tenth of the real budget, for speed."""
    steps = MAX_STEPS // 10
    monkeypatch.setattr(check_module, "budget", functools.partial(budget, steps))
    lines = ["network big(w: int = 1) {", "  input [3, 8, 8]", "  repeat 5_000 { relu }", "}"]
    lines += [f"variant v{i} = big(w={i})" for i in range(200)]
    spec = tmp_path / "variants.arch"
    spec.write_text("\n".join(lines) + "\n")
    calls = limit_calls(monkeypatch, "call_op", steps // LAYER_STEPS)
    assert "E408" in _codes(spec)
    assert calls[0] > 5_000  # more than one variant was expanded before the budget ran out


def test_imported_bytes_are_capped(tmp_path):
    """Three imports of half MAX_IMPORT_BYTES each pass it together: E410, and the third file
    is not parsed."""
    size = MAX_IMPORT_BYTES // 2 - 10
    imports = ""
    for k in range(3):
        (tmp_path / f"lib{k}.arch").write_text("#" * (size - 1) + "\n"
                                               + f"block f{k}() {{ relu }}\n")
        imports += f'import "lib{k}.arch"\n'
    spec = tmp_path / "main.arch"
    spec.write_text(imports + "network net() {\n  input [3, 8, 8]\n  relu\n}\n")
    assert _codes(spec) == ["E410"]


def test_import_count_is_capped(tmp_path):
    """There was no cap on the number of imported files either: 40 files of a block each
    are E410 at the import past MAX_IMPORT_FILES."""
    imports = ""
    for k in range(40):
        (tmp_path / f"lib{k}.arch").write_text(f"block f{k}() {{ relu }}\n")
        imports += f'import "lib{k}.arch"\n'
    spec = tmp_path / "main.arch"
    spec.write_text(imports + "network net() {\n  input [3, 8, 8]\n  relu\n}\n")
    (diag,) = check_file(str(spec)).diagnostics
    assert diag.code == "E410" and "too many imports" in diag.message
    assert diag.span.line == MAX_IMPORT_FILES + 1


def test_a_big_file_imported_32_times_is_refused_once(tmp_path, monkeypatch):
    """32 imports of a 238 kB file took 134 s. Such a file is E403 now; one just over
    MAX_IMPORT_BYTES is E410 at the first import, once, and never parsed."""
    (tmp_path / "big.arch").write_text("# padding\n" * (MAX_IMPORT_BYTES // 10 + 1))
    spec = tmp_path / "main.arch"
    spec.write_text('import "big.arch"\n' * 32 + "network net() {\n  input [3, 8, 8]\n  relu\n}\n")
    parsed = []
    real = check_module.parse_module
    monkeypatch.setattr(check_module, "parse_module",
                        lambda source, path: parsed.append(path) or real(source, path))
    assert _codes(spec) == ["E410"]
    assert parsed == [str(spec)]


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def many_errors(tmp_path):
    """600 unknown calls on one line of about 4 kB."""
    spec = tmp_path / "errors.arch"
    spec.write_text("network net() { input [3, 8, 8] "
                    + " ".join(f"zq{i}" for i in range(600)) + " }\n")
    return spec


def test_text_output_is_bounded(many_errors):
    status, _, err = _run(["check", str(many_errors)])
    assert status == 1
    assert err.count("error[E201]") == MAX_PRINTED
    assert f"... and {600 - MAX_PRINTED:,} more errors" in err
    assert "600 error(s)" in err
    assert len(err) < 100_000  # it was 600 copies of the 4 kB line and its marker: 5 MB


def test_github_output_is_bounded(many_errors):
    _, out, _ = _run(["check", "--format", "github", str(many_errors)])
    assert out.count("::error ") == MAX_PRINTED
    assert f"... and {600 - MAX_PRINTED:,} more errors" in out


def test_json_output_has_every_diagnostic(many_errors):
    _, out, _ = _run(["check", "--format", "json", str(many_errors)])
    assert out.count('"code": "E201"') == 600


def test_warnings_alone_print_a_bounded_output_and_exit_zero(tmp_path):
    """Warnings alone printed 376 MB for a file that exits 0: 2,000 unused blocks (with an
    unused parameter each) on one 57 kB line."""
    spec = tmp_path / "warnings.arch"
    spec.write_text("network net() { input [3, 8, 8] relu } " + " ".join(
        f"block u{i}(x: int) {{ relu }}" for i in range(2000)) + "\n")
    for fmt in ("text", "github"):
        status, out, err = _run(["check", "--format", fmt, str(spec)])
        assert status == 0 and len(out + err) < 100_000, fmt
        assert f"... and {4000 - MAX_PRINTED:,} more warnings" in out + err


def test_long_line_cut_around_the_marker(tmp_path):
    spec = tmp_path / "long.arch"
    spec.write_text("network net() { input [3, 8, 8] " + "relu " * 12_000 + "zz }\n")
    _, _, err = _run(["check", str(spec)])
    line, marker = err.splitlines()[1:3]
    assert line.startswith(" 1 | ...") and len(line) < 200
    assert line[marker.index("^"):].startswith("zz")


# ---------------------------------------------------------------- parsing


def test_parsing_is_charged_to_the_work_budget(tmp_path):
    """Parsing is most of a large file's check (a 200 kB file of dense tokens takes ~6.5 s), so
    it is charged before it runs: what is left to expand shrinks with the files' size, and a
    main file and imports at their limits still leave PARSE_ROOM steps."""
    (tmp_path / "lib.arch").write_text("# padding\n" * 1000 + "block b() { relu }\n")
    spec = tmp_path / "main.arch"
    spec.write_text('import "lib.arch"\nnetwork n() {\n  input [3, 8, 8]\n  b\n}\n'
                    + "# a comment\n" * 10_000)
    with budget() as work:
        load_program(str(spec))
    chars = len(spec.read_text()) + len((tmp_path / "lib.arch").read_text())
    assert MAX_STEPS - work.left == PARSE_STEPS * chars
    assert PARSE_ROOM == MAX_STEPS - PARSE_STEPS * (MAX_FILE_BYTES + MAX_IMPORT_BYTES)
    assert PARSE_ROOM >= MAX_STEPS // 10


def test_files_at_their_size_limits_still_check(tmp_path):
    """The parse charge never refuses files within the size limits on its own."""
    imports = ""
    for k in range(4):
        lib = tmp_path / f"lib{k}.arch"
        lib.write_text(f"block b{k}() {{ relu }}\n" + "#" * (MAX_IMPORT_BYTES // 4 - 40) + "\n")
        imports += f'import "lib{k}.arch"\n'
    head = imports + "network n() {\n  input [3, 8, 8]\n  b0 b1 b2 b3\n}\n"
    spec = tmp_path / "main.arch"
    spec.write_text(head + "#" * (MAX_FILE_BYTES - len(head) - 1) + "\n")
    assert len(spec.read_bytes()) == MAX_FILE_BYTES
    assert _codes(spec) == []


class _CountingParser:
    """Lark's parser, counting the characters it reads (up to the error, if any: the lexer
    stops there)."""

    def __init__(self, real):
        self.real, self.chars = real, 0

    def parse(self, text, **kwargs):
        try:
            tree = self.real.parse(text, **kwargs)
        except UnexpectedInput as exc:
            at = getattr(exc, "pos_in_stream", None)
            self.chars += len(text) if at is None or at < 0 else at + 1
            raise
        self.chars += len(text)
        return tree

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_syntax_errors_parse_each_part_a_bounded_number_of_times(tmp_path, monkeypatch):
    """After a syntax error parsing went on from the top of the file: 60 broken blocks after
    a 50 kB network were 100 parses of the file (103 s). Now each part is parsed at most
    twice (the try, and the check for a definition left open)."""
    counting = _CountingParser(parse_module._parser())
    monkeypatch.setattr(parse_module, "_parser", lambda: counting)
    text = ("network n() {\n  input [3, 8, 8]\n  let a = [" + "1, " * 5000 + "1]\n  relu\n}\n"
            + "".join(f"block x{i}() {{ relu ) }}\n" for i in range(60)))
    spec = tmp_path / "errors.arch"
    spec.write_text(text)
    assert _codes(spec) == ["E101"] * MAX_SYNTAX_ERRORS
    assert counting.chars <= 2 * len(text)


def test_definitions_left_open_are_one_error_at_the_first_open_one(tmp_path):
    """`block b1() {` never closed swallows the (balanced) definitions after it: one E101 at
    the next place the parser fails, naming b1's `{` (not one error per definition)."""
    spec = tmp_path / "open.arch"
    spec.write_text("block b0() { relu }\nblock b1() {\n"
                    + "".join(f"block b{i}() {{ relu }}\n" for i in range(2, 9))
                    + "network n() {\n  input [3, 8, 8]\n  relu\n}\n")
    (diag,) = check_file(str(spec)).diagnostics
    assert diag.code == "E101" and diag.span.line == 10
    assert diag.notes == [f"the `{{` at {spec}:2:{'block b1() {'.index('{') + 1} is never closed"]


def test_errors_inside_a_loop_cost_work(tmp_path, monkeypatch):
    """A mistake repeated by a loop made a diagnostic a round, charged one step each:
    `repeat 100000 { repeat 100 { conv(-1) } }` ran 30 s in 1.3 GB. Each error costs
    ERROR_STEPS, so the budget (a small one here) ends it after budget / ERROR_STEPS."""
    steps = 200_000
    monkeypatch.setattr(check_module, "budget", functools.partial(budget, steps))
    reported = []
    real = Expander.report

    def spy(self, diag):
        reported.append(diag.code)
        return real(self, diag)

    monkeypatch.setattr(Expander, "report", spy)
    for statement in ("conv(-1)", "x: relu", "rleu", "let q = 1 + \"a\""):
        reported.clear()
        spec = tmp_path / "loop.arch"
        spec.write_text("network n() {\n  input [3, 8, 8]\n  repeat 100000 { repeat 100 { "
                        + statement + " } }\n}\n")
        assert "E408" in _codes(spec), statement
        assert len(reported) <= steps // ERROR_STEPS + 1, statement


# ---------------------------------------------------------------- compile is linear

_BACKEND = {str(Path(expand_module.__file__).with_name(name)) for name in (
    "lowering.py", "translate.py", "torch_source.py", "names.py", "pytext.py", "flow.py")}


N = 60  # statements (a loop of 4N classes)


def _compile_lines(tmp_path, text: str) -> int:
    """Lines of compile's back end (lowering, translation, source, naming) run for a spec:
    work counted, not timed."""
    spec = tmp_path / "big.arch"
    spec.write_text(text)
    count = [0]

    def line(frame, event, arg):
        count[0] += event == "line"
        return line

    def call(frame, event, arg):
        return line if frame.f_code.co_filename in _BACKEND else None

    sys.settrace(call)
    try:
        status, _, _ = _run(["compile", str(spec)])
    finally:
        sys.settrace(None)
    assert status == 0
    return count[0]


@pytest.mark.parametrize("body", [
    "  leaky_relu(0.2)\n" * 4,  # attribute naming was cubic: 3,000 of them, over 300 s
    "  for i in range(4) {\n    s{i}: b(i + 1)\n  }\n",  # written-out classes, numbered
], ids=["attributes", "classes"])
def test_compile_work_is_linear_in_the_network(tmp_path, body):
    """Twice the statements, twice the work (within 10%) of compile's back end."""
    def spec(n: int) -> str:
        many = body.replace("range(4)", f"range({4 * n})") if "range" in body else body * n
        return ("block b(c: int) {\n  let q = in.h\n  conv(c, k=1)\n}\n"
                "network n() {\n  input [4, 8, 8]\n" + many + "}\n")

    small, large = _compile_lines(tmp_path, spec(N)), _compile_lines(tmp_path, spec(2 * N))
    assert large <= 2.2 * small, (small, large)


def test_forward_names_take_one_try_each(tmp_path, monkeypatch):
    """forward()'s variables (`out`, `out2` ...) were found by trying every earlier number:
    20,000 residuals took 155 s. Now each name is one or two set lookups."""
    looked, made = [0], [0]

    class Counted(set):
        def __contains__(self, name):
            looked[0] += 1
            return super().__contains__(name)

    init, fresh = torch_source.Forward.__init__, torch_source.Forward.fresh

    def counted_init(self, parts):
        init(self, parts)
        self.used = Counted(self.used)

    def counted_fresh(self, base):
        made[0] += 1
        return fresh(self, base)

    monkeypatch.setattr(torch_source.Forward, "__init__", counted_init)
    monkeypatch.setattr(torch_source.Forward, "fresh", counted_fresh)
    spec = tmp_path / "residuals.arch"
    spec.write_text("network n() {\n  input [4, 8, 8]\n"
                    + "  add { { conv(4, k=1) relu } identity }\n" * 1000 + "}\n")
    assert _run(["compile", str(spec)])[0] == 0
    assert made[0] >= 1000 and looked[0] <= 2 * made[0]


def test_compile_parses_each_file_once(tmp_path, monkeypatch):
    """compile parsed the spec 5 times, and 4 more per exposed parameter."""
    parsed = []
    real = check_module.parse_module

    def counted(source, path):
        parsed.append(path)
        return real(source, path)

    monkeypatch.setattr(check_module, "parse_module", counted)
    (tmp_path / "lib.arch").write_text("block b(c: int) { conv(c, k=1) relu }\n")
    spec = tmp_path / "main.arch"
    spec.write_text('import "lib.arch"\nnetwork n(c: int = 4, d: int = 2, e: int = 3) {\n'
                    "  input [3, 8, 8]\n  b(c)\n  b(d)\n  b(e)\n}\nvariant m = n(c=8)\n")
    assert _run(["compile", str(spec)])[0] == 0
    assert sorted(parsed) == sorted([str(spec), str(tmp_path / "lib.arch")])
