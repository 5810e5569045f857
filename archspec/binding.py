"""The one argument binder: op calls, block calls, `init`, variants and the Python API's
`**params` all map arguments to parameters here, so they follow the same rules and give the
same diagnostics at the same places.

Binding is linear in the number of parameters and arguments: names are looked up in sets
and dicts, and defaults are evaluated against one growing environment instead of a copy per
parameter (a block with thousands of parameters is a legitimate generated spec).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from . import nodes as n
from .diagnostics import Diagnostic, Span, did_you_mean
from .evaluate import Env, EvalError, Evaluator, fail, show, type_name


@dataclass(frozen=True)
class Signature:
    """What a callee accepts. `what` names it in messages (e.g. "`conv`")."""

    what: str
    names: tuple[str, ...]  # every parameter, in declared order
    positional: tuple[str, ...]  # those that may be passed by position, in order
    aliases: Mapping[str, str] = field(default_factory=dict)  # spelling -> parameter
    known: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "known", frozenset(self.names))

    @classmethod
    def of(cls, definition: n.Definition) -> Signature:
        """A block's or network's signature: every parameter by position or by name."""
        names = tuple(p.name for p in definition.params)
        return cls(f"`{definition.name}`", names, names)


def collect(sig: Signature, args: Iterable[n.Arg],
            evaluate: Callable[[n.Expr], object]) -> tuple[dict, dict]:
    """Map arguments (positional first, then keyword) to parameter names and evaluate them,
    in source order. Returns the values and the span of the argument that gave each one;
    the first mistake raises EvalError (E202, E203, E210)."""
    given: dict = {}
    spans: dict = {}
    seen_keyword = False
    args = list(args)
    if not args:  # most layers: `relu`, `batchnorm`
        return given, spans
    unknown = [_unknown_keyword(sig, arg) for arg in args
               if arg.name is not None and sig.aliases.get(arg.name, arg.name) not in sig.known]
    if unknown:  # every misspelt keyword of the call at once
        raise EvalError(unknown[0], tuple(unknown[1:]))
    for arg in args:
        seen_keyword = seen_keyword or arg.name is not None
        name = _parameter(sig, arg, len(given), seen_keyword)
        if name in given:
            raise fail("E210", f"`{name}` is given twice", arg.span,
                       hint=_in_channels_hint(sig, name, given)
                       or f"pass `{name}` once, by position or by name")
        given[name] = evaluate(arg.value)
        spans[name] = arg.span
    return given, spans


# PyTorch arguments that archspec decides itself: the hint says how
ARGUMENT_HINTS = {
    "batch_first": "the batch is always first in archspec: rnn, gru and lstm are built "
                   "with batch_first=True and read a T x F sequence; leave the argument out",
}


def _in_channels_hint(sig: Signature, name: str, given: dict) -> str | None:
    """`conv(3, 64, k=3)`: PyTorch's habit of giving the input channels first, which
    shifts the output channels into `k`."""
    if sig.positional[:2] != ("out", "k") or name != "k" or "out" not in given:
        return None
    return (f"the input channels come from the incoming shape (PyTorch's in_channels is not "
            f"an argument here): leave out the first number, "
            f"`{sig.what.strip('`')}({show(given['k'])}, k=...)`")


def _unknown_keyword(sig: Signature, arg: n.Arg) -> Diagnostic:
    return Diagnostic("E202", f"{sig.what} has no parameter `{arg.name}`", arg.span,
                      hint=ARGUMENT_HINTS.get(arg.name)
                      or did_you_mean(arg.name, [*sig.names, *sig.aliases])
                      or f"parameters: {', '.join(sig.names) or 'none'}")


def _parameter(sig: Signature, arg: n.Arg, position: int, seen_keyword: bool) -> str:
    """The parameter an argument is for. While no keyword has been seen, every earlier
    argument was positional, so `position` (the count bound so far) is this one's index."""
    if arg.name is not None:
        return sig.aliases.get(arg.name, arg.name)  # known: `collect` checked every keyword
    if seen_keyword:
        raise fail("E203", "a positional argument follows a keyword argument", arg.span,
                   hint="put positional arguments first")
    if position >= len(sig.positional):
        listed = ", ".join(sig.positional) or "none"
        raise fail("E203", f"{sig.what} takes at most {len(sig.positional)} positional "
                   f"argument(s) ({listed}), got more", arg.span,
                   hint=_by_name_hint(sig))
    return sig.positional[position]


def _by_name_hint(sig: Signature) -> str:
    positional = set(sig.positional)
    keyword_only = [name for name in sig.names if name not in positional]
    if not keyword_only:
        return f"{sig.what} has {len(sig.names)} parameter(s); remove the extra arguments"
    return f"pass the others by name, e.g. `{keyword_only[0]}=...`"


def keywords_hint(missing: list[str]) -> str:
    """How a call, a variant or Python passes missing parameters."""
    return f"pass {', '.join(f'{m}=...' for m in missing)}"


def complete(definition: n.Definition, given: dict, spans: dict, span: Span,
             evaluator: Evaluator,
             missing_hint: Callable[[list[str]], str] = keywords_hint) -> dict:
    """Every parameter's value, in declared order: the given ones, then the defaults, each
    evaluated after the parameters before it (which it may read) and type-checked (E204).
    Missing parameters are E205 at `span`, all named at once, with `missing_hint(names)`;
    after the first missing one, defaults are not evaluated (they may read it)."""
    values: dict = {}
    scoped = Evaluator(Env(values), evaluator.namespace, evaluator.shape, evaluator.shape_known)
    missing = []
    for param in definition.params:
        if param.name in given:
            value = given[param.name]
        elif param.default is None or missing:
            if param.default is None:
                missing.append(param.name)
            continue
        else:
            value = scoped(param.default)
        values[param.name] = _conform(definition, param, value, spans.get(param.name, span))
    if missing:
        raise fail("E205", f"{Signature.of(definition).what} is missing "
                   f"{', '.join(f'`{m}`' for m in missing)}", span, hint=missing_hint(missing))
    return values


def _conform(definition: n.Definition, param: n.Param, value, where: Span):
    """The value, checked against the parameter's declared type (a tuple type makes it a
    tuple)."""
    if not conforms(value, param.type):
        decl = param.span
        raise fail("E204", f"`{param.name}` of `{definition.name}` must be {param.type}, "
                   f"got {type_name(value)}", where, detail=f"the value is {show(value)}",
                   hint=f"declared at {decl.file}:{decl.line}:{decl.col}")
    return tuple(value) if param.type.name is None else value


def conforms(value, type_expr: n.TypeExpr) -> bool:
    """Does a value have a declared parameter type? Ints are accepted for float."""
    if type_expr.name is None:
        return (isinstance(value, (list, tuple)) and len(value) == len(type_expr.items)
                and all(conforms(v, t) for v, t in zip(value, type_expr.items)))
    kind = type_name(value)
    return {
        "int": kind == "int", "float": kind in ("int", "float"), "bool": kind == "bool",
        "str": kind == "str", "list": kind in ("list", "tuple"),
        "tuple": kind in ("list", "tuple"), "block": kind == "block",
    }.get(type_expr.name, True)


def python_args(params: Mapping[str, object], span: Span) -> list[n.Arg]:
    """Keyword arguments given from Python (`archspec.load(path, net, **params)`), as
    arguments written at `span` (the network or variant they configure), so they bind and
    are limit-checked exactly like a spec's keyword arguments."""
    return [n.Arg(name, n.Literal(span, value), span) for name, value in params.items()]
