"""One diagnostic type, one exception carrying many, and the formatters (text, JSON, GitHub).

Every stage reports problems as `Diagnostic` values so that a whole file's errors can be
collected in one run and printed the same way whatever stage found them.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
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
    "E221": "unknown or not yet computed tensor reference",
    "E222": "misplaced return, side branch or reference",
    "E223": "training-only tensor used outside return",
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
    "E310": "gate does not broadcast against its input",
    "E311": "split needs channels divisible by its branches",
    "E312": "op cannot run inside channels_last",
    "E313": "crop or padding larger than the input",
    "E314": "height or width not divisible by the factor",
    "E315": "op needs a sequence input",
    "E316": "weights depend on the input size",
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
    "E410": "too many or too large imports",
    # backends
    "E501": "PyTorch and the checker disagree on a shape",
    "E502": "network too large to build",
    "E503": "no block call at that module path",
    # warnings
    "W001": "unused parameter",
    "W002": "unused block",
    "W003": "input looks channels last",
}


@dataclass(unsafe_hash=True, slots=True)
class Span:
    """A region of a source file; lines and columns are 1-based, end_col is exclusive. A
    value: nodes and diagnostics share spans, and nothing changes one (`shifted` makes a new
    one). Not a frozen dataclass, whose construction costs four times as much: the parser
    makes one for every node (37,000 in a 10,000-statement file)."""

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


MAX_SUGGEST_NAME = 64  # longer names get no suggestion: comparing long strings is quadratic
SUGGEST_COMPARED = 300  # known names compared per lookup: those of the closest lengths
SUGGEST_WORK = 2_000_000  # per check: names scanned, plus 10 for each one compared


@dataclass
class Suggester:
    """What one check may still spend on "did you mean" hints, and the hints found so far by
    place: a mistake inside a loop asks the same question each round, and a file may hold
    thousands of mistakes next to a library of thousands of names."""

    left: int = SUGGEST_WORK
    hints: dict = field(default_factory=dict)  # (span, name) -> hint or None


_SUGGESTER: ContextVar[Suggester | None] = ContextVar("archspec_suggester", default=None)


@contextmanager
def suggestions() -> Iterator[Suggester]:
    """A fresh allowance for the hints of what runs inside (one check of one file)."""
    token = _SUGGESTER.set(Suggester())
    try:
        yield _SUGGESTER.get()
    finally:
        _SUGGESTER.reset(token)


def did_you_mean(name: str, candidates: Iterable[str] | Callable[[], Iterable[str]],
                 place: Span | None = None) -> str | None:
    """A hint naming the closest known spelling, if one is close enough. `candidates` may be
    a function, called only when the hint is not known yet for `place` (the spot of the
    mistake). Bounded: at most SUGGEST_COMPARED names are compared, and once a check has
    spent SUGGEST_WORK there are no more hints (the callers' plain hints remain)."""
    current = _SUGGESTER.get()
    key = (place, name)
    if current is not None and place is not None and key in current.hints:
        return current.hints[key]
    hint = None
    if len(name) <= MAX_SUGGEST_NAME and (current is None or current.left > 0):
        known = set(candidates() if callable(candidates) else candidates)
        nearest = _nearest(name, known)
        if current is not None:
            current.left -= len(known) + 10 * len(nearest)
        close = difflib.get_close_matches(name, nearest, n=1, cutoff=0.6)
        hint = f"did you mean `{close[0]}`?" if close else None
    if current is not None and place is not None:
        current.hints[key] = hint
    return hint


def _nearest(name: str, known: set[str]) -> list[str]:
    """The SUGGEST_COMPARED names whose length is closest to `name`'s, among those long or
    short enough to reach difflib's cutoff of 0.6 (2 * matches / total length)."""
    size = len(name)
    fit = [k for k in known if 2 * min(len(k), size) >= 0.6 * (len(k) + size)]
    if len(fit) > SUGGEST_COMPARED:
        fit = sorted(fit, key=lambda k: (abs(len(k) - size), k))[:SUGGEST_COMPARED]
    return sorted(fit)


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


MAX_SHOWN_LINE = 120  # columns of a source line shown around the marker
MAX_PRINTED = 100  # diagnostics of one file printed in text and github formats (JSON: all)


@lru_cache(maxsize=8)  # many diagnostics point into the same file: split it once
def source_lines(source: str) -> tuple[str, ...]:
    """The lines of a source, as the parser counts them (not str.splitlines)."""
    return tuple(source.split("\n"))


def _window(text: str, col: int, end: int) -> tuple[str, int, int]:
    """A long line cut to about MAX_SHOWN_LINE columns around the marker (`...` where cut),
    and the marker's columns in it: a 60 kB line is not repeated under every diagnostic."""
    if len(text) <= MAX_SHOWN_LINE:
        return text, col, end
    start = max(0, min(col - 1 - MAX_SHOWN_LINE // 3, len(text) - MAX_SHOWN_LINE))
    stop = start + MAX_SHOWN_LINE
    prefix = "..." if start > 0 else ""
    suffix = "..." if stop < len(text) else ""
    shift = len(prefix) - start
    return (prefix + text[start:stop] + suffix, col + shift,
            min(end, stop + 1 + len(suffix)) + shift)


def one_line(text: str) -> str:
    """Text that prints as one line: every control character, newlines too, shown escaped
    (`\\n`). For paths and names in text output, so that a file called
    `x\\n::error ...` cannot forge a line (a GitHub workflow command, a fake `ok`). A
    relative path that starts with `::` is shown as `./::...`, the same file, so that a line
    it begins is no workflow command either."""
    if text.startswith("::"):
        text = "./" + text
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def _marker_lines(diag: Diagnostic, source: str | None) -> list[str]:
    span = diag.span
    if span is None or source is None:
        return [f"  = {diag.detail}"] if diag.detail else []
    lines = source_lines(source)
    if not 1 <= span.line <= len(lines):
        return [f"  = {diag.detail}"] if diag.detail else []
    line = lines[span.line - 1].rstrip("\r")
    end = span.end_col if span.end_line == span.line else len(line) + 1
    text, col, end = _window(line, span.col, end)
    text = text.expandtabs(1)  # tabs and other characters: one column each
    text = "".join(c if c.isprintable() else "?" for c in text)
    gutter = len(str(span.line))
    width = max(1, end - col)
    marker = " " * (col - 1) + "^" * width
    if diag.detail:
        marker += " " + diag.detail
    return [f" {span.line:>{gutter}} | {text}", f" {'':>{gutter}} | {marker}"]


def printed(diagnostics: list[Diagnostic]) -> tuple[list[Diagnostic], str | None]:
    """The diagnostics to print (the first MAX_PRINTED), and a closing line that counts the
    rest, if any: thousands of errors in one file would print hundreds of megabytes."""
    if len(diagnostics) <= MAX_PRINTED:
        return diagnostics, None
    rest = diagnostics[MAX_PRINTED:]
    errors = sum(d.severity == "error" for d in rest)
    parts = [f"{count:,} more {kind}{'' if count == 1 else 's'}"
             for count, kind in ((errors, "error"), (len(rest) - errors, "warning")) if count]
    return diagnostics[:MAX_PRINTED], ("... and " + " and ".join(parts) +
                                       " (--format json lists them all)")


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
    shown, closing = printed(diagnostics)
    text = "\n\n".join(
        format_one(d, sources.get(d.span.file) if d.span else None) for d in shown)
    return text + (f"\n\n{closing}" if closing else "")


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
