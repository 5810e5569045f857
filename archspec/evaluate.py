"""Evaluation of .arch expressions: an interpreter over the AST (never Python's eval).

Values are Python ints, floats, bools, strs, tuples and lists, plus `BlockRef` for a block
passed as a value. Integers are kept within int64 so that nothing a spec computes can grow
without bound.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass

from . import nodes as n
from .diagnostics import Diagnostic, Span, did_you_mean
from .limits import INT_LIMIT, MAX_ITEMS, MAX_NESTING, charge, measure
from .ops import STRING_CHOICES, Shape, fmt_shape


class EvalError(Exception):
    """A diagnostic raised while evaluating; caught per statement so checking goes on."""

    def __init__(self, diagnostic: Diagnostic, also: tuple[Diagnostic, ...] = ()):
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic
        self.also = also  # independent mistakes found with it (every bad keyword of a call)

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return [self.diagnostic, *self.also]


class UnknownShape(Exception):
    """`in` was read after an earlier error made the shape unknown: skip quietly."""


UNKNOWN = object()  # the value of a `let` whose expression failed (reported there)


def fail(code: str, message: str, span: Span | None, **extra) -> EvalError:
    return EvalError(Diagnostic(code, message, span, **extra))


@dataclass(frozen=True)
class BlockRef:
    """A block as a value: its definition and the names visible where it was defined."""

    definition: n.Definition
    namespace: dict  # name -> BlockRef, the block's own module scope

    @property
    def name(self) -> str:
        return self.definition.name


_UNBOUND = object()  # Env.get's default where lookup() must tell a missing name


class Env:
    """A chain of name bindings: loop and let variables over block parameters."""

    def __init__(self, values: dict | None = None, parent: Env | None = None):
        self.values = values if values is not None else {}  # shared, even when empty
        self.parent = parent

    def lookup(self, name: str):
        value = self.get(name, _UNBOUND)
        if value is _UNBOUND:
            raise KeyError(name)
        return value

    def get(self, name: str, default=None):
        """lookup() without the KeyError: every op a statement calls is looked up here
        first, and raising costs more than the rest of the lookup."""
        env: Env | None = self
        while env is not None:
            if name in env.values:
                return env.values[name]
            env = env.parent
        return default

    def names(self) -> set[str]:
        env, found = self, set()
        while env is not None:
            found |= set(env.values)
            env = env.parent
        return found

    def child(self, values: dict | None = None) -> Env:
        return Env(values, self)


def type_name(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, BlockRef):
        return "block"
    if isinstance(value, int):  # a size with a formula (symbolic.SymDim) is an int
        return "int"
    return type(value).__name__


def show(value, width: int = 200) -> str:
    """A value as the spec would write it, cut short (`...`) after about `width` characters
    so that a message never grows with the size of a value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, BlockRef):
        return value.name
    if isinstance(value, str):
        text = repr(value[:width + 1])
        return text if len(value) <= width else text[:width] + "..."
    if isinstance(value, (list, tuple)):
        parts, used = [], 0
        for item in value:
            if used > width:
                parts.append("...")
                break
            parts.append(show(item, max(width - used, 10)))
            used += len(parts[-1]) + 2
        inner = ", ".join(parts)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    return str(value)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_int(value, span: Span):
    if isinstance(value, int) and not isinstance(value, bool) and abs(int(value)) > INT_LIMIT:
        raise fail("E401", "integer too large", span,
                   detail=f"the value has {len(str(abs(value)))} digits",
                   hint=f"values must stay within +-{INT_LIMIT} (int64)")
    if isinstance(value, float) and not math.isfinite(value):
        raise fail("E401", "number too large", span, detail=f"the value is {value}",
                   hint="floats must stay finite (below about 1.8e308)")
    if isinstance(value, complex):
        raise fail("E212", "the result is not a real number", span,
                   detail="a negative number to a fractional power",
                   hint="raise only non-negative numbers to fractional powers")
    return value


def check_value(value, span: Span):
    """A list, tuple or string built by a spec stays within MAX_ITEMS in all and MAX_NESTING
    levels deep (E402, E404), however it was built."""
    if isinstance(value, (list, tuple, str)):
        size, depth = measure(value)
        if size > MAX_ITEMS:
            raise fail("E402", "value too large", span,
                       detail=f"more than {MAX_ITEMS} items in all (nested items count too)",
                       hint=f"at most {MAX_ITEMS} items")
        if depth > MAX_NESTING:
            raise fail("E404", f"value nested too deeply: more than {MAX_NESTING} levels",
                       span, hint="lists and tuples inside each other: flatten the value")
    return value


def _arith(op: str, left, right, span: Span):
    if op == "+" and isinstance(left, type(right)) and isinstance(left, (list, tuple, str)) \
            and type(left) is type(right):
        if len(left) + len(right) > MAX_ITEMS:
            raise fail("E402", "sequence too long", span, hint=f"at most {MAX_ITEMS} items")
        charge(len(left) + len(right))
        return check_value(left + right, span)
    if not (_is_number(left) and _is_number(right)):
        raise fail("E212", f"`{op}` cannot combine {type_name(left)} and {type_name(right)}",
                   span, detail=f"left is {show(left)}, right is {show(right)}",
                   hint="arithmetic works on numbers; `+` also joins two lists or two tuples")
    if op in ("//", "%", "/") and right == 0:
        raise fail("E213", "division by zero", span, detail=f"{show(left)} {op} 0",
                   hint="the divisor is 0 here: check the argument or variant that sets it")
    if op == "**":
        if _is_number(right) and right < 0 and isinstance(left, int):
            left = float(left)
        if isinstance(right, int) and isinstance(left, int) and abs(left) > 1 and right > 64:
            raise fail("E401", "integer too large", span, detail=f"{left} ** {right}",
                       hint=f"values must stay within +-{INT_LIMIT} (int64)")
    try:
        result = _ARITH[op](left, right)
    except OverflowError:
        raise fail("E401", "number too large", span, detail=f"{show(left)} {op} {show(right)}",
                   hint="floats must stay finite (below about 1.8e308)") from None
    except ZeroDivisionError:  # 0.0 ** -1
        raise fail("E213", "division by zero", span, detail=f"{show(left)} {op} {show(right)}",
                   hint="the divisor is 0 here: check the argument or variant that sets it") \
            from None
    return check_int(result, span)


_ARITH: dict[str, Callable] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "//": operator.floordiv,
    "%": operator.mod, "/": operator.truediv, "**": operator.pow,
}
_COMPARE: dict[str, Callable] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
}


def _compare(op: str, left, right, span: Span) -> bool:
    if isinstance(left, (list, tuple)):
        measure(left)  # comparing sequences costs their size
    if op in ("==", "!="):
        return _COMPARE[op](left, right)
    comparable = (_is_number(left) and _is_number(right)) or (
        type(left) is type(right) and isinstance(left, (str, tuple, list)))
    if not comparable:
        raise fail("E212", f"`{op}` cannot compare {type_name(left)} and {type_name(right)}",
                   span, detail=f"left is {show(left)}, right is {show(right)}")
    return _COMPARE[op](left, right)


# ---------------------------------------------------------------- built-in functions


def _sequence(value, span: Span, func: str):
    if not isinstance(value, (list, tuple, str)):
        raise fail("E204", f"`{func}` needs a list or tuple, got {type_name(value)}", span,
                   detail=f"the value is {show(value)}")
    return value


def _b_len(args, span):
    return len(_sequence(args[0], span, "len"))


def _numbers_of(args, span, func):
    items = list(_sequence(args[0], span, func)) if len(args) == 1 else list(args)
    charge(len(items))
    if not items:
        raise fail("E216", f"`{func}` of an empty sequence", span)
    for item in items:
        if not _is_number(item):
            raise fail("E204", f"`{func}` needs numbers, got {type_name(item)}", span,
                       detail=f"the value is {show(item)}")
    return items


def _b_min(args, span):
    return min(_numbers_of(args, span, "min"))


def _b_max(args, span):
    return max(_numbers_of(args, span, "max"))


def _b_sum(args, span):
    items = list(_sequence(args[0], span, "sum"))
    return check_int(sum(_numbers_of([items], span, "sum")) if items else 0, span)


def _b_abs(args, span):
    return abs(_numbers_of([args], span, "abs")[0])


def _b_range(args, span):
    for value in args:
        if not isinstance(value, int) or isinstance(value, bool):
            raise fail("E204", f"`range` needs integers, got {type_name(value)}", span,
                       detail=f"the value is {show(value)}")
    if len(args) == 3 and args[2] == 0:
        raise fail("E216", "`range` step must not be zero", span)
    values = range(*args)
    step = values.step
    count = max(0, (values.stop - values.start + step - (1 if step > 0 else -1)) // step)
    if count > MAX_ITEMS:  # counted without len(), which fails beyond sys.maxsize
        raise fail("E402", "sequence too long", span, detail=f"range of {count} items",
                   hint=f"at most {MAX_ITEMS} items")
    charge(count)
    return list(values)


def _b_enumerate(args, span):
    start = args[1] if len(args) > 1 else 0
    if not isinstance(start, int) or isinstance(start, bool):
        raise fail("E204", f"`enumerate` start must be an int, got {type_name(start)}", span,
                   detail=f"the value is {show(start)}")
    items = _sequence(args[0], span, "enumerate")
    check_int(start + len(items), span)
    return check_value([(start + i, v) for i, v in enumerate(items)], span)


def _b_zip(args, span):
    return check_value([tuple(t) for t in zip(*(_sequence(a, span, "zip") for a in args))],
                       span)


# name -> (function, fewest arguments, most arguments)
def _number(value, span: Span, func: str):
    if not _is_number(value):
        raise fail("E204", f"`{func}` needs a number, got {type_name(value)}", span,
                   detail=f"the value is {show(value)}")
    return value


def _to_int(func: str, convert: Callable[[float], int]) -> Callable:
    """int, ceil, floor, round: a number to an int, within int64."""
    def builtin(args, span):
        value = _number(args[0], span, func)
        if len(args) == 2:  # round(x, digits) stays a float, as in Python
            return check_int(round(value, check_int(_integer(args[1], span, func), span)), span)
        return check_int(convert(value), span)
    return builtin


def _integer(value, span: Span, func: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise fail("E204", f"`{func}` needs an int here, got {type_name(value)}", span,
                   detail=f"the value is {show(value)}")
    return value


def _b_float(args, span):
    return float(_number(args[0], span, "float"))


def _b_sqrt(args, span):
    value = _number(args[0], span, "sqrt")
    if value < 0:
        raise fail("E216", "`sqrt` of a negative number", span, detail=f"the value is {value}")
    return math.sqrt(value)


def _b_log(args, span):
    values = [_number(a, span, "log") for a in args]
    if values[0] <= 0 or (len(values) == 2 and (values[1] <= 0 or values[1] == 1)):
        raise fail("E216", "`log` needs a positive number (and a positive base other than 1)",
                   span, detail=", ".join(str(v) for v in values))
    return math.log(*values)


BUILTINS: dict[str, tuple[Callable, int, int]] = {
    "len": (_b_len, 1, 1), "min": (_b_min, 1, 64), "max": (_b_max, 1, 64),
    "sum": (_b_sum, 1, 1), "abs": (_b_abs, 1, 1), "range": (_b_range, 1, 3),
    "enumerate": (_b_enumerate, 1, 2), "zip": (_b_zip, 1, 8),
    "int": (_to_int("int", int), 1, 1), "float": (_b_float, 1, 1),
    "round": (_to_int("round", round), 1, 2), "ceil": (_to_int("ceil", math.ceil), 1, 1),
    "floor": (_to_int("floor", math.floor), 1, 1), "sqrt": (_b_sqrt, 1, 1),
    "log": (_b_log, 1, 2),
}


def unpack(target: n.Target, value, bound: dict) -> None:
    """Bind a loop target (`i, (n, c)`) to one item, into `bound`."""
    if len(target.names) == 1 and isinstance(target.names[0], str):
        bound[target.names[0]] = value
        return
    if not isinstance(value, (list, tuple)) or len(value) != len(target.names):
        count = len(value) if isinstance(value, (list, tuple)) else 1
        raise fail("E218", f"cannot unpack {show(value)} into {len(target.names)} names",
                   target.span, detail=f"the item has {count} value(s)",
                   hint=f"give every item {len(target.names)} values, or change the names")
    for name, item in zip(target.names, value):
        if isinstance(name, n.Target):
            unpack(name, item, bound)
        else:
            bound[name] = item


# ---------------------------------------------------------------- the interpreter


class Evaluator:
    """Evaluates expressions against an environment, the module's blocks and the incoming
    shape of the statement being expanded (for `in.c`, `in.h`, ...)."""

    def __init__(self, env: Env, namespace: dict, shape: Shape | None, shape_known: bool):
        self.env, self.namespace = env, namespace
        self.shape, self.shape_known = shape, shape_known
        self.tensors: Callable[[n.TensorRef], object] | None = None  # where `@name` may be

    def __call__(self, expr: n.Expr):
        charge(1)
        return _DISPATCH[type(expr)](self, expr)

    def _Literal(self, e: n.Literal):
        return check_value(check_int(e.value, e.span), e.span)

    def _Name(self, e: n.Name):
        try:
            value = self.env.lookup(e.id)
        except KeyError:
            pass
        else:
            if value is UNKNOWN:
                raise UnknownShape()  # its `let` failed and was reported: skip quietly
            return value
        if e.id in self.namespace:
            return self.namespace[e.id]
        def known() -> set[str]:
            return self.env.names() | set(self.namespace)

        quoted = (f'`{e.id}` is a string value of an op argument: write it in quotes, '
                  f'`"{e.id}"`' if e.id in STRING_CHOICES else None)
        raise fail("E208", f"unknown name `{e.id}`", e.span,
                   hint=quoted or did_you_mean(e.id, known, e.span)
                   or "declare it as a parameter, or bind it with `let` or a loop before this")

    def _TensorRef(self, e: n.TensorRef):
        if self.tensors is None:
            raise fail("E204", "a tensor reference is not a value here", e.span,
                       hint="`@name` is a statement (go on from that tensor), a merge branch, "
                            "an op's `like=` argument or an output of `return(...)`")
        return self.tensors(e)

    def _InRef(self, e: n.InRef):
        raise fail("E309", "`in` is the incoming shape: read one of its fields", e.span,
                   detail=f"incoming shape is {fmt_shape(self.shape)}" if self.shape else None,
                   hint="use `in.c`, `in.h`, `in.w`, `in.features` or `in.shape`")

    def _Attr(self, e: n.Attr):
        if not isinstance(e.target, n.InRef):
            raise fail("E212", f"`.{e.attr}` works only on `in`", e.span,
                       hint="index tuples and lists with `[i]`")
        if not self.shape_known:
            raise UnknownShape()
        if self.shape is None:
            raise fail("E215", "`in` is not defined here", e.span,
                       hint="`in` is the shape arriving at a statement inside a network")
        return self.shape_field(e.attr, e.span)

    def shape_field(self, attr: str, span: Span):
        shape = self.shape
        fields = {"c": 0, "features": None, "shape": None}
        if len(shape) == 3:
            fields.update(h=1, w=2)
        if len(shape) == 4:
            fields.update(d=1, h=2, w=3)
        if attr not in fields:
            raise fail("E309", f"the incoming shape {fmt_shape(shape)} has no field `{attr}`",
                       span, detail=f"incoming shape is {fmt_shape(shape)}",
                       hint=did_you_mean(attr, fields) or
                       ("`h` and `w` exist only before `flatten`" if attr in "hw" else
                        "fields are c, h, w, features and shape"))
        if attr == "shape":
            return tuple(shape)
        if attr == "features":
            total = 1
            for d in shape:
                total *= d
            return total
        return shape[fields[attr]]

    def _TupleExpr(self, e: n.TupleExpr):
        return check_value(tuple(self(x) for x in e.items), e.span)

    def _ListExpr(self, e: n.ListExpr):
        return check_value([self(x) for x in e.items], e.span)

    def _BinOp(self, e: n.BinOp):
        return _arith(e.op, self(e.left), self(e.right), e.span)

    def _UnaryOp(self, e: n.UnaryOp):
        value = self(e.operand)
        if e.op == "not":
            return not self.truth(value, e.operand.span)
        if not _is_number(value):
            raise fail("E212", f"unary `{e.op}` needs a number, got {type_name(value)}", e.span)
        return -value if e.op == "-" else value

    def truth(self, value, span: Span) -> bool:
        if not isinstance(value, bool):
            raise fail("E204", f"a condition must be true or false, got {type_name(value)}",
                       span, detail=f"the value is {show(value)}",
                       hint="compare explicitly, e.g. `n > 0`")
        return value

    def _BoolOp(self, e: n.BoolOp):
        left = self.truth(self(e.left), e.left.span)
        if e.op == "and" and not left:
            return False
        if e.op == "or" and left:
            return True
        return self.truth(self(e.right), e.right.span)

    def _Compare(self, e: n.Compare):
        left = self(e.first)
        for op, right_expr in e.rest:
            right = self(right_expr)
            if not _compare(op, left, right, e.span):
                return False
            left = right
        return True

    def _CondExpr(self, e: n.CondExpr):
        return self(e.then) if self.truth(self(e.cond), e.cond.span) else self(e.other)

    def _Index(self, e: n.Index):
        target, index = self(e.target), self(e.index)
        if not isinstance(target, (list, tuple, str)):
            raise fail("E212", f"cannot index a {type_name(target)}", e.span,
                       detail=f"the value is {show(target)}")
        if not isinstance(index, int) or isinstance(index, bool):
            raise fail("E204", f"an index must be an int, got {type_name(index)}",
                       e.index.span)
        if not -len(target) <= index < len(target):
            raise fail("E214", f"index {index} is out of range", e.span,
                       detail=f"{show(target)} has {len(target)} items",
                       hint=f"indices run from 0 to {len(target) - 1}, or from -1 backwards"
                       if target else "the sequence is empty")
        return target[index]

    def _ListComp(self, e: n.ListComp):
        items = self(e.items)
        if not isinstance(items, (list, tuple)):
            raise fail("E204", f"a comprehension needs a list or tuple, got {type_name(items)}",
                       e.items.span, detail=f"the value is {show(items)}")
        result = []
        for item in items:
            bound: dict = {}
            unpack(e.target, item, bound)
            inner = Evaluator(self.env.child(bound), self.namespace, self.shape,
                              self.shape_known)
            if e.condition is None or inner.truth(inner(e.condition), e.condition.span):
                result.append(inner(e.item))
        return check_value(result, e.span)

    def _FunCall(self, e: n.FunCall):
        if e.func not in BUILTINS:
            raise fail("E208", f"unknown function `{e.func}`", e.span,
                       hint=did_you_mean(e.func, BUILTINS) or
                       "functions: " + ", ".join(sorted(BUILTINS)))
        func, fewest, most = BUILTINS[e.func]
        if any(a.name for a in e.args):
            raise fail("E202", f"`{e.func}` takes no keyword arguments", e.span)
        if not fewest <= len(e.args) <= most:
            expected = str(fewest) if fewest == most else f"{fewest} to {most}"
            raise fail("E203", f"`{e.func}` takes {expected} argument(s), got {len(e.args)}",
                       e.span)
        return func([self(a.value) for a in e.args], e.span)


# expression type -> its method: one dict lookup a step rather than a name built and looked up
_DISPATCH = {getattr(n, name[1:]): method for name, method in vars(Evaluator).items()
             if name[1:2].isupper() and isinstance(getattr(n, name[1:], None), type)}
