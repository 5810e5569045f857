"""One diagnostic type, one exception carrying many, and the formatters (text, JSON, GitHub).

Every stage reports problems as `Diagnostic` values so that a whole file's errors can be
collected in one run and printed the same way whatever stage found them.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

# Stable codes. The table is the single source for docs/errors.md and for tests.
CODES: dict[str, str] = {
    # syntax and files
    "E101": "syntax error: unexpected token",
    "E102": "syntax error: unexpected character",
    "E103": "cannot read file",
    "E104": "imported file not found",
    "E105": "import cycle",
    "E106": "name imported from a file that does not define it",
    "E107": "import outside the allowed folders",
    "E108": "not a regular file",
    "E109": "link that leads out of its folder",
    # names, arguments, types
    "E201": "unknown op or block",
    "E202": "unknown keyword argument",
    "E203": "wrong number of arguments",
    "E204": "argument of the wrong type",
    "E205": "missing required argument",
    "E206": "duplicate label",
    "E207": "recursive block",
    "E208": "unknown name",
    "E209": "duplicate definition",
    "E210": "argument given twice",
    "E211": "unknown network or variant",
    "E212": "bad operand types",
    "E213": "division by zero",
    "E214": "index out of range",
    "E215": "misplaced or missing input",
    "E216": "bad argument value",
    "E217": "unknown type",
    "E218": "wrong number of names to unpack",
    "E219": "misplaced init",
    "E220": "reserved label",
    # shapes
    "E301": "size becomes smaller than 1",
    "E302": "kernel larger than the padded input",
    "E303": "concat needs equal height and width",
    "E304": "residual add needs equal shapes",
    "E305": "groups must divide channels",
    "E306": "op needs a C x H x W input",
    "E307": "op needs a flat input",
    "E308": "pooling padding larger than half the kernel",
    "E309": "incoming shape has no such field",
    # limits
    "E401": "integer or float too large",
    "E402": "sequence, value or repeat count too large",
    "E403": "file too large",
    "E404": "nested too deeply",
    "E405": "expanded network too large",
    "E406": "imports nested too deeply",
    "E407": "tensor too large",
    "E408": "too much work to expand",
    "E409": "module path too long",
    # backends
    "E501": "PyTorch and the checker disagree on a shape",
    # warnings
    "W001": "unused parameter",
    "W002": "unused block",
}


@dataclass(frozen=True)
class Span:
    """A region of a source file; lines and columns are 1-based, end_col is exclusive."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def shifted(self, line_offset: int, col_offset: int) -> Span:
        """Move a span parsed from a substring back to its place in the file."""
        first_col = col_offset if self.line == 1 else 0
        last_col = col_offset if self.end_line == 1 else 0
        return Span(self.file, self.line + line_offset, self.col + first_col,
                    self.end_line + line_offset, self.end_col + last_col)


@dataclass
class Diagnostic:
    """An error or warning at a place in a spec, with what a reader needs to fix it."""

    code: str
    message: str
    span: Span | None = None
    detail: str | None = None  # the shapes or values involved, printed under the marker
    formula: str | None = None  # for sizes: the formula with its numbers
    hint: str | None = None
    notes: list[str] = field(default_factory=list)  # call chain: where a block was used

    @property
    def severity(self) -> str:
        return "warning" if self.code.startswith("W") else "error"

    def key(self) -> tuple:
        """Identity used to drop repeats (a block used by several variants errs once)."""
        return (self.code, self.span, self.message, self.detail)

    def to_json(self) -> dict:
        data = {"code": self.code, "severity": self.severity, "message": self.message}
        span = self.span
        data.update(
            file=span.file if span else None,
            line=span.line if span else None,
            column=span.col if span else None,
            end_line=span.end_line if span else None,
            end_column=span.end_col if span else None,
        )
        data.update(detail=self.detail, formula=self.formula, hint=self.hint, notes=self.notes)
        return data


class ArchError(Exception):
    """Raised by the public API when a spec has errors; carries every diagnostic found."""

    def __init__(self, diagnostics: list[Diagnostic], sources: dict[str, str] | None = None):
        self.diagnostics = diagnostics
        self.sources = sources or {}
        super().__init__(format_text(diagnostics, self.sources))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A hint naming the closest known spelling, if one is close enough."""
    return _did_you_mean(name, tuple(sorted(set(candidates))))


@lru_cache(maxsize=1024)  # a mistake inside a loop asks the same question each round
def _did_you_mean(name: str, candidates: tuple[str, ...]) -> str | None:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


def unique(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Drop exact repeats, keeping first-seen order."""
    seen: set = set()
    kept = []
    for diag in diagnostics:
        if diag.key() not in seen:
            seen.add(diag.key())
            kept.append(diag)
    return kept


def sort_key(diag: Diagnostic) -> tuple:
    span = diag.span
    return (span.file, span.line, span.col) if span else ("", 0, 0)


def printable(text: str) -> str:
    """Text safe to print on a terminal: control characters (a spec may hold escape sequences)
    are shown escaped; newlines are kept."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == "\n" else ascii(c)[1:-1] for c in text)


def one_line(text: str) -> str:
    """Text that prints as one line: every control character, newlines too, shown escaped
    (`\\n`). For paths and names in text output, so that a file called
    `x\\n::error ...` cannot forge a line (a GitHub workflow command, a fake `ok`)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def _marker_lines(diag: Diagnostic, source: str | None) -> list[str]:
    span = diag.span
    if span is None or source is None:
        return [f"  = {diag.detail}"] if diag.detail else []
    lines = source.split("\n")  # lines as the parser counts them (not str.splitlines)
    if not 1 <= span.line <= len(lines):
        return [f"  = {diag.detail}"] if diag.detail else []
    text = lines[span.line - 1].rstrip("\r").expandtabs(1)
    text = "".join(c if c.isprintable() else "?" for c in text)  # one column each
    gutter = len(str(span.line))
    end = span.end_col if span.end_line == span.line else len(text) + 1
    width = max(1, end - span.col)
    marker = " " * (span.col - 1) + "^" * width
    if diag.detail:
        marker += " " + diag.detail
    return [f" {span.line:>{gutter}} | {text}", f" {'':>{gutter}} | {marker}"]


def format_one(diag: Diagnostic, source: str | None) -> str:
    span = diag.span
    where = f"{one_line(span.file)}:{span.line}:{span.col}: " if span else ""
    out = [f"{where}{diag.severity}[{diag.code}]: {one_line(diag.message)}"]
    shown = Diagnostic(diag.code, diag.message, span, diag.detail and one_line(diag.detail))
    out += _marker_lines(shown, source)
    if diag.formula:
        out.append(f"  = formula: {one_line(diag.formula)}")
    if diag.hint:
        out.append(f"  = hint: {one_line(diag.hint)}")
    out += [f"  = note: {one_line(note)}" for note in diag.notes]
    return "\n".join(out)


def format_text(diagnostics: list[Diagnostic], sources: dict[str, str]) -> str:
    return "\n\n".join(
        format_one(d, sources.get(d.span.file) if d.span else None) for d in diagnostics
    )


def format_json(diagnostics: list[Diagnostic]) -> str:
    return json.dumps([d.to_json() for d in diagnostics], indent=2)


def _gh_escape(text: str, prop: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def format_github(diag: Diagnostic) -> str:
    """A GitHub Actions workflow command that annotates the line in a pull request."""
    props = []
    if diag.span:
        s = diag.span
        props += [f"file={_gh_escape(s.file, True)}", f"line={s.line}", f"col={s.col}"]
        if s.end_line == s.line:
            props += [f"endLine={s.end_line}", f"endColumn={s.end_col}"]
    props.append(f"title={_gh_escape(diag.code, True)}")
    body = diag.message
    for extra in (diag.detail, diag.formula and f"formula: {diag.formula}",
                  diag.hint and f"hint: {diag.hint}"):
        if extra:
            body += "\n" + extra
    return f"::{diag.severity} {','.join(props)}::{_gh_escape(printable(body))}"
