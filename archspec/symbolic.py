"""Symbolic sizes: an input dimension written as a name (`input [3, H, W]`) is checked for
every value at once.

The checker runs unchanged on `SymDim`s: ints that carry, next to the value of one sample
size (the witness), the exact formula of that size in the input's names. Arithmetic builds
the formula (sums, products and floor divisions, kept in a normal form in which nested
floors compose: floor((floor((H + a) / s) + b) / t) = floor((H + a + b*s) / (s*t))). Every
comparison the checker makes answers for the witness and is recorded as a condition, as
torch.compile's guards are: the run's outcome (its errors, its shapes) holds for exactly the
sizes that meet all its conditions. sizes.py sweeps the sizes with that, checking again only
where a condition fails.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from fractions import Fraction
from math import gcd, lcm
from typing import ClassVar

Monomial = tuple  # of Atoms, sorted by key; () is the constant term


class Atom:
    """A name (`H`) or a floor division `floor(inner / den)`; interned, so that equal atoms
    are the same object and a formula's terms can be dict keys."""

    _interned: ClassVar[dict[str, Atom]] = {}

    def __init__(self, key: str, name: str | None, inner: Poly | None, den: int) -> None:
        self.key, self.name, self.inner, self.den = key, name, inner, den
        self.evaluate: Callable[[dict[str, int]], int] | None = None  # made when needed

    @classmethod
    def var(cls, name: str) -> Atom:
        return cls._intern(name, name, None, 1)

    @classmethod
    def floor(cls, inner: Poly, den: int) -> Atom:
        return cls._intern(f"(({inner.key})//{den})", None, inner, den)

    @classmethod
    def _intern(cls, key: str, name: str | None, inner: Poly | None, den: int) -> Atom:
        atom = cls._interned.get(key)
        if atom is None:
            atom = cls._interned[key] = cls(key, name, inner, den)
        return atom

    def names(self) -> set[str]:
        return {self.name} if self.name else self.inner.names()


class Poly:
    """An integer polynomial over atoms: {monomial: coefficient}, zero terms left out."""

    __slots__ = ("_key", "terms")

    def __init__(self, terms: dict) -> None:
        self.terms = {m: c for m, c in terms.items() if c}
        self._key: str | None = None

    @classmethod
    def const(cls, value: int) -> Poly:
        return cls({(): value})

    @classmethod
    def var(cls, name: str) -> Poly:
        return cls({(Atom.var(name),): 1})

    @property
    def constant(self) -> int:
        return self.terms.get((), 0)

    @property
    def is_const(self) -> bool:
        return all(not m for m in self.terms)

    @property
    def key(self) -> str:
        """Python text of the formula: a canonical key, and what conditions compile to."""
        if self._key is None:
            self._key = " + ".join(
                "*".join([str(c), *(a.key for a in m)]) for m, c in
                sorted(self.terms.items(), key=lambda t: tuple(a.key for a in t[0]))) or "0"
        return self._key

    def names(self) -> set[str]:
        return {name for m in self.terms for atom in m for name in atom.names()}

    def degree(self) -> int:
        return max((len(m) for m in self.terms), default=0)

    def __add__(self, other: Poly) -> Poly:
        terms = dict(self.terms)
        for m, c in other.terms.items():
            terms[m] = terms.get(m, 0) + c
        return Poly(terms)

    def scale(self, factor: int) -> Poly:
        return Poly({m: c * factor for m, c in self.terms.items()})

    def __neg__(self) -> Poly:
        return self.scale(-1)

    def __sub__(self, other: Poly) -> Poly:
        return self + -other

    def __mul__(self, other: Poly) -> Poly:
        terms: dict = {}
        for m1, c1 in self.terms.items():
            for m2, c2 in other.terms.items():
                m = tuple(sorted(m1 + m2, key=lambda a: a.key))
                terms[m] = terms.get(m, 0) + c1 * c2
        return Poly(terms)

    def floordiv(self, den: int) -> Poly:
        """floor(self / den), exact, in normal form."""
        if den < 0:
            return (-self).floordiv(-den)
        if den == 1:
            return self
        quotient = Poly({m: c // den for m, c in self.terms.items()})
        rest = {m: c % den for m, c in self.terms.items() if m and c % den}
        if not rest:
            return quotient
        remainder, offset = Poly(rest), self.constant % den
        common = gcd(den, *rest.values())
        if common > 1:  # floor((g*y + r) / (g*t)) = floor((y + floor(r/g)) / t)
            reduced = Poly({m: c // common for m, c in rest.items()})
            return quotient + (reduced + Poly.const(offset // common)).floordiv(den // common)
        (monomial, coefficient), = rest.items() if len(rest) == 1 else ((None, 0),)
        if coefficient == 1 and len(monomial) == 1 and monomial[0].inner is not None:
            inner = monomial[0]  # floor((floor(u / s) + r) / t) = floor((u + r*s) / (s*t))
            nested = inner.inner + Poly.const(offset * inner.den)
            return quotient + nested.floordiv(inner.den * den)
        atom = Atom.floor(remainder + Poly.const(offset), den)
        return quotient + Poly({(atom,): 1})

    def mod(self, den: int) -> Poly:
        return self - self.floordiv(den).scale(den)

    def slope(self, name: str) -> Fraction | None:
        """d/dname of the formula's linear part for large values (None if not linear)."""
        if self.degree() > 1:
            return None
        total = Fraction(0)
        for m, c in self.terms.items():
            if m:
                part = atom_slope(m[0], name)
                if part is None:
                    return None
                total += c * part
        return total

    def spread(self, name: str) -> Fraction:
        """A bound on |formula - slope * name| for every value (its floors' rounding and
        constants)."""
        total = Fraction(abs(self.constant))
        for m, c in self.terms.items():
            if m:
                total += abs(c) * atom_spread(m[0], name)
        return total

    def period(self) -> int:
        """The formula minus its linear part repeats with this period in every name."""
        return lcm(1, *(atom_period(a) for m in self.terms for a in m))


def atom_slope(atom: Atom, name: str) -> Fraction | None:
    if atom.name is not None:
        return Fraction(1 if atom.name == name else 0)
    inner = atom.inner.slope(name)
    return None if inner is None else inner / atom.den


def atom_spread(atom: Atom, name: str) -> Fraction:
    if atom.name is not None:
        return Fraction(0)
    return atom.inner.spread(name) / atom.den + 1


def atom_period(atom: Atom) -> int:
    if atom.name is not None:
        return 1
    return atom.den * atom.inner.period()


# ---------------------------------------------------------------- conditions

class Condition:
    """A recorded comparison that held: `formula > 0`, `== 0` or `!= 0`."""

    __slots__ = ("poly", "relation")

    def __init__(self, poly: Poly, relation: str) -> None:
        self.poly, self.relation = poly, relation

    @property
    def text(self) -> str:
        return f"({self.poly.key}) {self.relation} 0"


class Recorder:
    """The conditions of one checking run, each once."""

    def __init__(self) -> None:
        self.conditions: dict[str, Condition] = {}

    def add(self, poly: Poly, relation: str) -> None:
        if not poly.is_const:
            condition = Condition(poly, relation)
            self.conditions.setdefault(condition.text, condition)

    def test(self) -> Callable[[dict[str, int]], bool]:
        """A function of the names' values: whether every condition holds there."""
        checks = [(evaluator(c.poly), RELATIONS[c.relation]) for c in self.conditions.values()]
        return lambda values: all(holds(value(values)) for value, holds in checks)


RELATIONS = {">": lambda v: v > 0, "==": lambda v: v == 0, "!=": lambda v: v != 0}


def evaluator(poly: Poly) -> Callable[[dict[str, int]], int]:
    """The formula as a function of the names' values (closures, not compiled text)."""
    terms = [(c, [atom_evaluator(a) for a in m]) for m, c in poly.terms.items()]

    def value(values: dict[str, int]) -> int:
        total = 0
        for coefficient, atoms in terms:
            for atom in atoms:
                coefficient *= atom(values)
            total += coefficient
        return total
    return value


def atom_evaluator(atom: Atom) -> Callable[[dict[str, int]], int]:
    found = atom.evaluate
    if found is None:
        if atom.name is not None:
            name = atom.name
            found = atom.evaluate = lambda values: values[name]
        else:
            inner, den = evaluator(atom.inner), atom.den
            found = atom.evaluate = lambda values: inner(values) // den
    return found


RECORDER: ContextVar[Recorder | None] = ContextVar("symbolic_recorder", default=None)


@contextmanager
def recording() -> Iterator[Recorder]:
    recorder = Recorder()
    token = RECORDER.set(recorder)
    try:
        yield recorder
    finally:
        RECORDER.reset(token)


def _record(poly: Poly, relation: str) -> None:
    recorder = RECORDER.get()
    if recorder is not None:
        recorder.add(poly, relation)


# ---------------------------------------------------------------- the int that knows

def as_poly(value) -> Poly | None:
    if isinstance(value, SymDim):
        return value.poly
    if isinstance(value, int):
        return Poly.const(int(value))
    return None


def has_formula(value) -> bool:
    """Whether a value (a size, or a tuple of them) carries a formula."""
    if isinstance(value, list | tuple):
        return any(has_formula(v) for v in value)
    return isinstance(value, SymDim)


def sym(value: int, poly: Poly) -> int:
    """A SymDim, or a plain int when the formula is a constant."""
    return int(value) if poly.is_const else SymDim(value, poly)


def pin(value) -> int:
    """The plain value, recording that only this value gives what follows (an operation
    the formulas cannot express, such as a float scale or a symbolic divisor)."""
    if isinstance(value, SymDim):
        _record(value.poly - Poly.const(int(value)), "==")
        return int(value)
    return value


def _compare(left, right, op: Callable) -> bool | type(NotImplemented):
    lp, rp = as_poly(left), as_poly(right)
    if lp is None or rp is None:
        return op(pin(left), pin(right))
    outcome = op(int(left), int(right))
    diff = lp - rp
    if op is operator.eq or op is operator.ne:
        _record(diff, "==" if outcome == (op is operator.eq) else "!=")
    elif op is operator.lt or op is operator.ge:  # a < b: b - a > 0; else a - b + 1 > 0
        _record(-diff if outcome == (op is operator.lt) else diff + Poly.const(1), ">")
    else:  # a > b: a - b > 0; else b - a + 1 > 0
        _record(diff if outcome == (op is operator.gt) else Poly.const(1) - diff, ">")
    return outcome


def _comparison(op: Callable):
    def method(self, other):
        return _compare(self, other, op)
    return method


def _arith(build: Callable[[Poly, Poly], Poly], op: Callable):
    def method(self, other):
        po = as_poly(other)
        if po is None:
            return op(pin(self), other)
        return sym(op(int(self), int(other)), build(self.poly, po))
    return method


def _rarith(build: Callable[[Poly, Poly], Poly], op: Callable):
    def method(self, other):
        po = as_poly(other)
        if po is None:
            return op(other, pin(self))
        return sym(op(int(other), int(self)), build(po, self.poly))
    return method


def _product(a: Poly, b: Poly) -> Poly:
    return a * b


class SymDim(int):
    """A size with its formula: behaves as its value, records what the checker asks."""

    poly: Poly

    def __new__(cls, value: int, poly: Poly):
        obj = super().__new__(cls, value)
        obj.poly = poly
        return obj

    def __reduce__(self):
        return SymDim, (int(self), self.poly)

    def __copy__(self) -> SymDim:
        return self

    def __deepcopy__(self, memo) -> SymDim:
        return self

    __add__ = _arith(Poly.__add__, operator.add)
    __radd__ = _rarith(Poly.__add__, operator.add)
    __sub__ = _arith(Poly.__sub__, operator.sub)
    __rsub__ = _rarith(Poly.__sub__, operator.sub)
    __mul__ = _arith(_product, operator.mul)
    __rmul__ = _rarith(_product, operator.mul)

    def __floordiv__(self, other):
        if not isinstance(other, int):
            return pin(self) // other
        den = pin(other)
        return sym(int(self) // den, self.poly.floordiv(den))

    def __rfloordiv__(self, other):
        return other // pin(self)

    def __mod__(self, other):
        if not isinstance(other, int):
            return pin(self) % other
        den = pin(other)
        return sym(int(self) % den, self.poly.mod(den))

    def __rmod__(self, other):
        return other % pin(self)

    def __divmod__(self, other):
        return self // other, self % other

    def __truediv__(self, other):
        return pin(self) / pin(other)

    def __rtruediv__(self, other):
        return pin(other) / pin(self)

    def __pow__(self, other, modulo=None):
        return pow(pin(self), pin(other), modulo)

    def __neg__(self):
        return sym(-int(self), -self.poly)

    def __pos__(self):
        return self

    def __abs__(self):
        return -self if self < 0 else self

    def __bool__(self) -> bool:
        return self != 0

    def __index__(self) -> int:
        return pin(self)

    def __int__(self) -> int:
        return int.__int__(self)

    __eq__ = _comparison(operator.eq)
    __ne__ = _comparison(operator.ne)
    __lt__ = _comparison(operator.lt)
    __le__ = _comparison(operator.le)
    __gt__ = _comparison(operator.gt)
    __ge__ = _comparison(operator.ge)

    __hash__ = int.__hash__


# ---------------------------------------------------------------- how people read it

def formula(value) -> str:
    """`ceil(H/32)`, `floor(H/2) - 2`, `2*H`: a size as people write it."""
    poly = value if isinstance(value, Poly) else as_poly(value)
    if poly is None:
        return str(value)
    parts = []
    for m, c in sorted(poly.terms.items(), key=lambda t: (-len(t[0]),
                                                         [(a.den, a.key) for a in t[0]])):
        if not m:
            parts.append(str(c))
            continue
        text = "*".join(_atom_text(a) for a in m)
        parts.append(text if c == 1 else f"-{text}" if c == -1 else f"{c}*{text}")
    text = " + ".join(parts) or "0"
    return text.replace("+ -", "- ")


def shape_formula(shape) -> str:
    """`512 x ceil(H/32) x ceil(W/32)` (`3x224x224` when nothing is symbolic)."""
    if not any(isinstance(d, SymDim) for d in shape):
        return "x".join(map(str, shape))
    return " x ".join(_factor(d) for d in shape)


def _factor(value) -> str:
    """A size that is a sum in parentheses, so `2 x (16*floor(H/16) - 188)` cannot read as if
    `x` bound tighter than `-`."""
    poly = value if isinstance(value, Poly) else as_poly(value)
    text = formula(value)
    return f"({text})" if poly is not None and len(poly.terms) > 1 else text


def _atom_text(atom: Atom) -> str:
    if atom.name is not None:
        return atom.name
    inner, den = atom.inner, atom.den
    offset = inner.constant
    body = formula(inner - Poly.const(offset))
    simple = len(inner.terms) - (offset != 0) == 1 and "+" not in body and " - " not in body
    if offset == 0:
        return f"floor({body}/{den})" if simple else f"floor(({body})/{den})"
    if offset == den - 1:
        return f"ceil({body}/{den})" if simple else f"ceil(({body})/{den})"
    return f"floor(({body} + {offset})/{den})"
