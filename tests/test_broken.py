"""Intentionally broken specs (tests/broken/*.arch): each file states, in its leading comment
lines, every diagnostic it must give, as

    # expect: CODE [FILE:]LINE:COL "substring" "substring" ...

FILE (relative to tests/broken/) is only written when the diagnostic is in another file than
the spec itself (an imported one). The file must give exactly the expected set of
(code, file, line, column), and each quoted substring must appear in the matching diagnostic's
message, detail, formula or hint: that is where the shapes and the formula's numbers are
asserted. The same files are then run through the command line in every output format.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from archspec import check_file
from archspec.cli import main
from archspec.diagnostics import CODES
from archspec.limits import MAX_FILE_BYTES

BROKEN = Path(__file__).resolve().parent / "broken"
SPECS = sorted(BROKEN.glob("*.arch"))

_EXPECT = re.compile(
    r"#\s*expect:\s*(?P<code>[EW]\d{3})\s+(?:(?P<file>[\w./-]+\.arch):)?"
    r"(?P<line>\d+):(?P<col>\d+)(?P<rest>(?:\s+\"[^\"]*\")*)\s*$")
_QUOTED = re.compile(r"\"([^\"]*)\"")
_UNREADABLE = {"E103", "E403"}  # the main file itself cannot be read: exit status 2


@dataclass(frozen=True)
class Expected:
    code: str
    file: str  # normalised path of the file the diagnostic points into
    line: int
    col: int
    substrings: tuple[str, ...]

    @property
    def key(self) -> tuple:
        return (self.code, self.file, self.line, self.col)

    @property
    def severity(self) -> str:
        return "warning" if self.code.startswith("W") else "error"


def _norm(path: str | Path) -> str:
    return os.path.normpath(os.path.abspath(path))


def expectations(spec: Path) -> list[Expected]:
    """The `# expect:` lines of the spec's leading comment block."""
    found = []
    # Decoded leniently: one spec is deliberately not UTF-8 (after its header).
    for number, text in enumerate(spec.read_bytes().decode("utf-8", "replace").splitlines(), 1):
        stripped = text.strip()
        if stripped and not stripped.startswith("#"):
            break
        if not re.match(r"#\s*expect\b", stripped):
            continue
        match = _EXPECT.fullmatch(stripped)
        assert match, f"{spec.name}:{number}: malformed expectation: {text!r}"
        target = _norm(BROKEN / match["file"]) if match["file"] else _norm(spec)
        found.append(Expected(match["code"], target, int(match["line"]), int(match["col"]),
                              tuple(_QUOTED.findall(match["rest"]))))
    return found


def _text(diag) -> str:
    return "\n".join(part for part in (diag.message, diag.detail, diag.formula, diag.hint)
                     if part)


def _key(diag) -> tuple:
    span = diag.span
    assert span is not None, f"{diag.code} has no location: {diag.message}"
    return (diag.code, _norm(span.file), span.line, span.col)


def _show(keys) -> list[str]:
    return sorted(f"{code} {os.path.relpath(file, BROKEN)}:{line}:{col}"
                  for code, file, line, col in keys)


# The specs that spend a whole limit (the work budget, the layer count): each CLI form of them
# takes seconds, so only test_broken_spec runs them in the fast suite
_EXHAUSTING = {"e408_too_much_work", "e405_too_many_layers"}
CLI_SPECS = [pytest.param(spec, marks=pytest.mark.slow) if spec.stem in _EXHAUSTING else spec
             for spec in SPECS]


def _exit_status(spec: Path) -> int:
    """2 when the spec itself cannot be read (an unreadable import is a spec error: 1),
    1 for any other error, 0 for warnings only."""
    expected = expectations(spec)
    if any(e.code in _UNREADABLE and e.file == _norm(spec) for e in expected):
        return 2
    return 1 if any(e.severity == "error" for e in expected) else 0


# ---------------------------------------------------------------- the collection itself


def test_there_are_enough_broken_specs():
    assert len(SPECS) >= 36, [s.name for s in SPECS]


def test_every_spec_states_its_expectations():
    for spec in SPECS:
        assert expectations(spec), f"{spec.name} has no `# expect:` line"


# Codes that no small broken spec of its own gives, and why.
NOT_A_BROKEN_SPEC = {
    "E109": "a link out of its folder: a symbolic link, which test_files.py makes",
    "E403": "file too large: needs over 200 kB, so test_file_too_large generates one",
    "E501": "PyTorch and the checker disagree: a self-check of the torch backend, "
            "not something `archspec check` reports for a spec",
    "E502": "too large to build: depends on the machine's memory, so test_torch_backend.py "
            "tests it with build(..., max_bytes=...)",
    "E503": "a module path given to `diagram --expand`, not a spec: test_diagram_html.py "
            "gives one",
}


def test_every_code_is_covered():
    """Every code of the table is expected by some broken spec, but for the listed ones; a new
    code needs a broken spec here (or a reason above)."""
    covered = {e.code for spec in SPECS for e in expectations(spec)}
    assert set(CODES) - covered == set(NOT_A_BROKEN_SPEC) & set(CODES), \
        sorted(set(CODES) - covered - set(NOT_A_BROKEN_SPEC))
    assert covered <= set(CODES), sorted(covered - set(CODES))


def test_some_specs_report_several_independent_errors():
    several = [s.name for s in SPECS
               if len({e.code for e in expectations(s) if e.code.startswith("E")}) >= 3]
    assert len(several) >= 2, several


# ---------------------------------------------------------------- the API


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_broken_spec(spec: Path):
    expected = expectations(spec)
    result = check_file(str(spec))
    actual = {_key(d) for d in result.diagnostics}
    wanted = {e.key for e in expected}
    assert actual == wanted, (
        f"missing: {_show(wanted - actual)}, unexpected: {_show(actual - wanted)}\n"
        + "\n".join(f"  {d.code} {d.span.line}:{d.span.col} {d.message}"
                    for d in result.diagnostics))
    for exp in expected:
        texts = [_text(d) for d in result.diagnostics if _key(d) == exp.key]
        assert any(all(s in text for s in exp.substrings) for text in texts), (
            f"{exp.code} at {exp.line}:{exp.col} lacks one of {exp.substrings}:\n"
            + "\n---\n".join(texts))
    for diag in result.diagnostics:
        assert diag.hint, f"{diag.code} at {diag.span.line}:{diag.span.col} has no hint"
    assert result.unreadable == (_exit_status(spec) == 2)


# ---------------------------------------------------------------- the command line


def _marker(col: int) -> str:
    return "| " + " " * (col - 1) + "^"


@pytest.mark.parametrize("spec", CLI_SPECS, ids=lambda p: p.stem)
def test_broken_spec_cli_text(spec: Path, capsys):
    expected = expectations(spec)
    status = main(["check", str(spec)])
    out, err = capsys.readouterr()
    text = out + err
    assert status == _exit_status(spec), text
    assert "Traceback" not in text and "internal error" not in text, text
    blocks = err.split("\n\n")
    for exp in expected:
        head = f"{exp.file}:{exp.line}:{exp.col}: {exp.severity}[{exp.code}]"
        block = next((b for b in blocks if head in b), None)
        assert block is not None, f"no `{head}` in:\n{text}"
        assert _marker(exp.col) in block, f"no marker at column {exp.col}:\n{block}"


@pytest.mark.parametrize("spec", CLI_SPECS, ids=lambda p: p.stem)
def test_broken_spec_cli_json(spec: Path, capsys):
    expected = expectations(spec)
    status = main(["check", "--format", "json", str(spec)])
    out, err = capsys.readouterr()
    assert status == _exit_status(spec), out + err
    assert "Traceback" not in out + err
    report = json.loads(out)
    assert [r["file"] for r in report] == [str(spec)]
    assert report[0]["ok"] is (_exit_status(spec) == 0)
    got = {(d["code"], _norm(d["file"]), d["line"], d["column"])
           for d in report[0]["diagnostics"]}
    assert got == {e.key for e in expected}
    for diag in report[0]["diagnostics"]:
        assert diag["severity"] == ("warning" if diag["code"].startswith("W") else "error")
        assert diag["message"] and diag["end_line"] >= diag["line"]


@pytest.mark.parametrize("spec", CLI_SPECS, ids=lambda p: p.stem)
def test_broken_spec_cli_github(spec: Path, capsys):
    expected = expectations(spec)
    status = main(["check", "--format", "github", str(spec)])
    out, err = capsys.readouterr()
    assert status == _exit_status(spec), out + err
    assert "Traceback" not in out + err
    lines = out.splitlines()
    assert len(lines) >= len({e.key for e in expected})
    for line in lines:
        assert line.startswith(("::error file=", "::warning file=")), line
    for exp in expected:
        start = f"::{exp.severity} file={exp.file},line={exp.line},col={exp.col},"
        assert any(line.startswith(start) and f"title={exp.code}::" in line
                   for line in lines), f"no `{start}...title={exp.code}` in:\n{out}"


@pytest.mark.slow
def test_all_broken_specs_in_one_process_run():
    """The real entry point, as a user runs it: every broken file in one call; no traceback,
    the worst status wins (2: one file cannot be read)."""
    proc = subprocess.run(
        [sys.executable, "-m", "archspec", "check", *[s.name for s in SPECS]],
        check=False, cwd=BROKEN, capture_output=True, text=True, timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode == max(_exit_status(s) for s in SPECS), output
    assert "Traceback" not in output and "internal error" not in output, output
    for spec in SPECS:
        for exp in expectations(spec):
            where = os.path.relpath(exp.file, BROKEN)
            assert f"{where}:{exp.line}:{exp.col}: {exp.severity}[{exp.code}]" in output


# ---------------------------------------------------------------- E403, generated


def test_file_too_large(tmp_path: Path, capsys):
    spec = tmp_path / "huge.arch"
    filler = "# padding: a spec this large is refused before it is parsed\n"
    spec.write_text(filler * (1_000_000 // len(filler) + 1)
                    + "network net() {\n  input [3, 32, 32]\n  flatten\n  linear(10)\n}\n")
    result = check_file(str(spec))
    assert [d.code for d in result.diagnostics] == ["E403"]
    assert f"larger than the limit of {MAX_FILE_BYTES}" in result.diagnostics[0].message
    assert result.unreadable
    assert main(["check", str(spec)]) == 2
    out, err = capsys.readouterr()
    assert "error[E403]" in err and "Traceback" not in out + err
