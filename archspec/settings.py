"""`--set NAME=VALUE`: a network's parameter given on the command line. VALUE is written in
the language itself (`[3, 4, 6, 3]`, `bottleneck`, `"same"`, `2**3`), parsed by the spec's
own expression grammar into an argument that binds like a variant's, so a mistake in it is
the same diagnostic a variant gets, at a place inside the option (`<--set layers>:1:8`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace

from . import nodes as n
from .diagnostics import ArchError, Diagnostic, Span
from .parse import parse_expr

# Inside the command line's runs, hints say `--set name=...` where Python would pass a keyword.
ON_COMMAND_LINE: ContextVar[bool] = ContextVar("archspec_on_command_line", default=False)


@contextmanager
def on_command_line() -> Iterator[None]:
    """Hints inside the `with` block speak of --set."""
    token = ON_COMMAND_LINE.set(True)
    try:
        yield
    finally:
        ON_COMMAND_LINE.reset(token)


def setting_file(name: str) -> str:
    """The file name diagnostics inside `--set name=...` show."""
    return f"<--set {name}>"


def is_setting_file(file: str) -> bool:
    return file.startswith("<--set ") and file.endswith(">")


def split_setting(text: str) -> tuple[str, str]:
    """NAME and VALUE of `NAME=VALUE`; ValueError saying what is wrong with its form (the
    value itself is checked by the parser)."""
    name, equals, value = text.partition("=")
    name = name.strip()
    if not equals:
        raise ValueError(f"expected NAME=VALUE, got {text!r}: the `=` is missing")
    if not name.isidentifier():
        raise ValueError(f"expected NAME=VALUE with NAME a parameter's name, got {text!r}")
    if not value.strip():
        raise ValueError(f"{name}= has no value: write one as in a variant, such as "
                         f"{name}=10 or '{name}=[3, 4, 6, 3]'")
    return name, value


@dataclass(frozen=True)
class Settings:
    """Parsed settings: each an argument (span: the whole option), the option texts as the
    sources diagnostics show, and the syntax errors of the values."""

    args: tuple[n.Arg, ...]
    sources: Mapping[str, str]
    diagnostics: tuple[Diagnostic, ...]


def parse_settings(settings: Mapping[str, str]) -> Settings:
    """Each `name: value text` as an argument `name=value`, as a variant writes it."""
    args, sources, diagnostics = [], {}, []
    for name, value in settings.items():
        file, text = setting_file(name), f"{name}={value}"
        sources[file] = text
        try:
            expr = parse_expr(value, file, 1, len(name) + 2)
        except ArchError as exc:
            diagnostics.extend(_value_syntax(d) for d in exc.diagnostics)
            continue
        end_line = text.count("\n") + 1
        end_col = len(text) - text.rfind("\n") if end_line > 1 else len(text) + 1
        args.append(n.Arg(name, expr, Span(file, 1, 1, end_line, end_col)))
    return Settings(tuple(args), sources, tuple(diagnostics))


def _value_syntax(diagnostic: Diagnostic) -> Diagnostic:
    """A syntax error in a value; at its end, the parser's hint speaks of definitions."""
    if not diagnostic.message.endswith("end of file"):
        return diagnostic
    return replace(diagnostic, message="unexpected end of the value",
                   hint="a bracket is not closed or a value is missing; in a shell, quote the "
                        "option: --set 'layers=[3, 4, 6, 3]'")


def fit_hint(diagnostic: Diagnostic) -> Diagnostic:
    """An unknown name inside a setting is most often a string whose quotes the shell took
    away (`--set padding="same"` arrives as `padding=same`): say so, rather than the spec
    author's advice to declare it."""
    span = diagnostic.span
    if diagnostic.code != "E208" or span is None or not is_setting_file(span.file) \
            or (diagnostic.hint or "").startswith("did you mean"):
        return diagnostic
    return replace(diagnostic, hint="a value is a number, true or false, a list, a string "
                                    "in quotes or a block of the file; the shell removes "
                                    "quotes unless the option is quoted: "
                                    "--set 'padding=\"same\"'")
