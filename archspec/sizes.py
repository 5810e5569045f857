"""Which input sizes a network accepts, for every size at once.

A checking run on symbolic sizes (symbolic.py) holds for the sizes that meet its recorded
conditions. The sweep asks, size by size, which recorded run holds there, and checks again
only where none does. Each condition is linear in the swept size up to the rounding of its
floors: past a threshold it keeps its sign (a slope) or repeats (no slope), so the sweep stops
once the threshold and two whole periods are covered, and the valid sizes are exactly a finite
set plus a periodic tail: `SizeSet`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from math import lcm

from .diagnostics import Diagnostic
from .symbolic import Poly, Recorder

MAX_SIZE = 20_000  # the sweep's last size: past it a set is reported as checked up to here
MAX_RUNS = 64  # checking runs one sweep may make before it stops


@dataclass(frozen=True)
class SizeSet:
    """Exactly the sizes `finite` plus those n >= `start` with (n - start) % `period` in
    `residues` (no tail when `start` is None). `limit`: sizes were checked up to it only."""

    finite: tuple[int, ...] = ()
    start: int | None = None
    period: int = 1
    residues: tuple[int, ...] = (0,)
    limit: int | None = None

    @classmethod
    def exactly(cls, value: int) -> SizeSet:
        return cls(finite=(value,))

    @classmethod
    def at_least(cls, value: int) -> SizeSet:
        return cls(start=value)

    def __contains__(self, size: int) -> bool:
        if size in self.finite:
            return True
        return (self.start is not None and size >= self.start
                and (size - self.start) % self.period in self.residues)

    @property
    def exactly_one(self) -> bool:
        return len(self.finite) == 1 and self.start is None

    @property
    def empty(self) -> bool:
        return not self.finite and self.start is None

    @property
    def arithmetic(self) -> tuple[int, int] | None:
        """(min, step) when the set is exactly min + k*step, k >= 0."""
        if self.start is not None and not self.finite and len(self.residues) == 1:
            return self.start, self.period
        return None

    @property
    def smallest(self) -> int | None:
        return min([*self.finite, *([self.start] if self.start is not None else [])],
                   default=None)

    def describe(self, axis: str) -> str:
        """`H >= 32`, `H = 124 + 16k`, `H in 32..35`: the set as people write it."""
        parts = []
        if self.finite:
            parts.append(_finite_text(axis, self.finite))
        if self.start is not None:
            if self.period == 1:
                parts.append(f"{axis} >= {self.start}")
            elif len(self.residues) == 1:
                parts.append(f"{axis} = {self.start} + {self.period}k")
            else:
                offsets = ", ".join(str(self.start + r) for r in self.residues)
                parts.append(f"{axis} >= {self.start} with {axis} = {offsets} (mod "
                             f"{self.period})")
        text = " or ".join(parts) or f"no {axis}"
        return text + (f" (checked up to {self.limit})" if self.limit else "")

    def to_json(self) -> dict:
        """{"min": m, "step": s} for exactly m + k*s; any other set says its form."""
        if self.arithmetic is not None and self.limit is None:
            return {"min": self.start, "step": self.period}
        if self.start is None:
            return {"form": "finite", "values": list(self.finite),
                    **({"checked_up_to": self.limit} if self.limit else {})}
        return {"form": "periodic", "start": self.start, "period": self.period,
                "residues": [self.start + r for r in self.residues], "also": list(self.finite),
                **({"checked_up_to": self.limit} if self.limit else {})}


def _finite_text(axis: str, values: tuple[int, ...]) -> str:
    if len(values) == 1:
        return f"{axis} = {values[0]}"
    if values[-1] - values[0] == len(values) - 1:
        return f"{axis} in {values[0]}..{values[-1]}"
    shown = ", ".join(map(str, values[:8])) + (", ..." if len(values) > 8 else "")
    return f"{axis} in {{{shown}}}"


def from_flags(flags: dict[int, bool], tail: int, period: int,
               limit: int | None = None) -> SizeSet:
    """The set whose members among 1..max(flags) are the true flags, repeating from `tail`
    on with `period` (flags must cover tail .. tail + period - 1)."""
    pattern = [flags[tail + i] for i in range(period)]
    period = next(p for p in range(1, period + 1)
                  if period % p == 0 and pattern == pattern[:p] * (period // p))
    pattern = pattern[:period]
    if not any(pattern):
        return SizeSet(finite=tuple(n for n in sorted(flags) if flags[n] and n < tail),
                       limit=limit)
    start = tail
    while start > 1 and flags[start - 1] == pattern[(start - 1 - tail) % period]:
        start -= 1
    while not pattern[(start - tail) % period]:
        start += 1
    residues = tuple(r for r in range(period) if pattern[(start + r - tail) % period])
    finite = tuple(n for n in sorted(flags) if flags[n] and n < start)
    return SizeSet(finite, start, period, residues, limit)


# ---------------------------------------------------------------- the sweep

@dataclass
class Run:
    """One checking run: where it holds (`holds(values)`), and what it found there."""

    recorder: Recorder
    errors: list[Diagnostic]
    result: object  # what the caller's run gave (a checked network, or None)
    values: dict[str, int]
    holds: Callable[[dict[str, int]], bool] = field(init=False)

    def __post_init__(self) -> None:
        self.holds = self.recorder.test()

    @property
    def valid(self) -> bool:
        return not self.errors


class Sweep:
    """Runs of one network at sample sizes, reused wherever their conditions hold."""

    def __init__(self, check: Callable[[dict[str, int]], Run]) -> None:
        self.check = check
        self.runs: list[Run] = []
        self.tail, self.period = 1, 1  # of the last complete axis sweep

    def at(self, values: dict[str, int]) -> Run:
        for i, run in enumerate(self.runs):
            if run.holds(values):
                if i:
                    self.runs.insert(0, self.runs.pop(i))  # the next size likely the same
                return run
        if len(self.runs) >= MAX_RUNS:
            raise RunsExhausted
        run = self.check(values)
        self.runs.insert(0, run)
        return run

    def axis(self, name: str, fixed: dict[str, int],
             tied: tuple[str, ...] = ()) -> tuple[SizeSet, dict[int, Run]]:
        """The sizes of `name` (the others at `fixed`, the `tied` ones equal to it) that
        check without errors, and the run that decided each swept size."""
        decided: dict[int, Run] = {}
        size, last, runs = 1, 1, -1
        while size <= last:
            try:
                decided[size] = self.at({**fixed, name: size, **dict.fromkeys(tied, size)})
            except RunsExhausted:
                return _checked_up_to(decided, size - 1), decided
            if len(self.runs) != runs:  # new conditions: the sweep may have to go further
                runs = len(self.runs)
                tail, period = self.bounds(name, {**fixed, **{t: Poly.var(name) for t in tied}})
                last = tail + 2 * period - 1
                if last > MAX_SIZE:
                    last = MAX_SIZE
                    tail = period = None
            size += 1
        if tail is None:
            return _checked_up_to(decided, MAX_SIZE), decided
        self.tail, self.period = tail, period
        return from_flags({n: r.valid for n, r in decided.items()}, tail, period), decided

    def where(self, run: Run, decided: dict[int, Run], limited: bool) -> SizeSet:
        """The swept sizes `run` decided, as a set (repeating as the sweep's tail does)."""
        flags = {size: other is run for size, other in decided.items()}
        if limited:
            return SizeSet(tuple(n for n, hit in sorted(flags.items()) if hit))
        return from_flags(flags, self.tail, self.period)

    def bounds(self, name: str, fixed: dict[str, int | Poly]) -> tuple[int, int]:
        """(tail, period): from `tail` on, every recorded condition keeps its outcome or
        repeats with a period dividing `period`."""
        tail, period = 1, 1
        for condition in self.conditions():
            poly = substitute(condition.poly, fixed)
            if name not in poly.names():
                continue
            slope = poly.slope(name)
            if slope is None:  # a product (a size limit): it holds far beyond any sweep
                continue
            if slope == 0:
                period = lcm(period, poly.period())
            else:
                tail = max(tail, int(poly.spread(name) / abs(slope)) + 2)
        return tail, period

    def conditions(self):
        seen: set[str] = set()
        for run in self.runs:
            for key, condition in run.recorder.conditions.items():
                if key not in seen:
                    seen.add(key)
                    yield condition


def _checked_up_to(decided: dict[int, Run], limit: int) -> SizeSet:
    """What the sweep found before it had to stop: the valid sizes up to `limit`."""
    return SizeSet(tuple(n for n, r in sorted(decided.items()) if r.valid and n <= limit),
                   limit=limit)


class RunsExhausted(Exception):
    """The sweep needed more checking runs than MAX_RUNS."""


def substitute(poly: Poly, values: dict[str, int | Poly]) -> Poly:
    """The formula with the named sizes set to values, in normal form."""
    if not values or not (poly.names() & set(values)):
        return poly
    total = Poly.const(0)
    for monomial, coefficient in poly.terms.items():
        term = Poly.const(coefficient)
        for atom in monomial:
            term = term * _substitute_atom(atom, values)
        total = total + term
    return total


def _substitute_atom(atom, values: dict[str, int | Poly]) -> Poly:
    if atom.name is not None:
        value = values.get(atom.name, Poly.var(atom.name))
        return value if isinstance(value, Poly) else Poly.const(value)
    return substitute(atom.inner, values).floordiv(atom.den)



# ---------------------------------------------------------------- a network's sizes

TYPICAL = 224  # the sample size a network without declared sizes is shown at


@dataclass
class SizeNote:
    """Why some sizes of one axis fail: the first error there."""

    axis: str
    sizes: SizeSet
    diagnostic: Diagnostic

    def cause(self) -> str:
        d = self.diagnostic
        where = f"{d.span.file}:{d.span.line}:{d.span.col}: " if d.span else ""
        return f"{where}{d.code} {d.message}"


def note_lines(notes: list[SizeNote], most: int = 6) -> list[str]:
    """`H, W in 1..4: file:3:5: E302 ...`: one line per cause and sizes, the axes that share
    both together, the causes of the largest failing sizes first, at most `most` lines."""
    grouped: dict[tuple[str, str], list[SizeNote]] = {}
    for note in _merged(notes):
        key = (note.sizes.describe("\0"), note.cause().replace("width", "height"))
        grouped.setdefault(key, []).append(note)
    ordered = sorted(grouped.items(), key=lambda item: -_reach(item[1][0].sizes))
    lines = [f"{sizes.replace(chr(0), ', '.join(n.axis for n in group))}: {cause}"
             for (sizes, cause), group in ordered]
    if len(lines) > most:
        lines = [*lines[:most], f"... and {len(lines) - most} more"]
    return lines


def _merged(notes: list[SizeNote]) -> list[SizeNote]:
    """One note per axis and error place: the sizes of the runs that fail there alike
    (a pool that becomes 0 at several roundings) together, where they are finite."""
    merged: dict[tuple, SizeNote] = {}
    for note in notes:
        d = note.diagnostic
        key = (note.axis, d.code, d.span, note.sizes.start is None)
        if key in merged and note.sizes.start is None:
            found = merged[key]
            both = tuple(sorted({*found.sizes.finite, *note.sizes.finite}))
            merged[key] = SizeNote(note.axis, SizeSet(both), found.diagnostic)
        else:
            merged.setdefault(key if note.sizes.start is None else (*key, id(note)), note)
    return list(merged.values())


def _reach(sizes: SizeSet) -> int:
    return MAX_SIZE + 1 if sizes.start is not None else max(sizes.finite, default=0)


@dataclass
class Sizes:
    """What the sweep found: the valid sizes of each name, the run shown (at `witness`) and
    why the other sizes fail."""

    sets: dict[str, SizeSet]
    witness: dict[str, int]
    run: Run
    notes: list[SizeNote]


def analyse(sweep: Sweep, names: tuple[str, ...], declared: dict[str, int]) -> Sizes:
    """Every name's valid sizes, the others held at a valid sample (the declared sizes, or
    the valid size nearest TYPICAL for all names alike)."""
    if all(name in declared for name in names):
        witness = dict(declared)
    else:
        joint, _ = sweep.axis(names[0], {}, names[1:])
        size = nearest(joint, TYPICAL)
        if size is None:  # no size checks: show the errors at a typical one
            run = sweep.check(dict.fromkeys(names, TYPICAL))
            return Sizes({name: joint for name in names}, dict.fromkeys(names, TYPICAL), run,
                         [])
        witness = dict.fromkeys(names, size)
    sets, notes = {}, []
    for name in names:
        fixed = {other: witness[other] for other in names if other != name}
        sets[name], decided = sweep.axis(name, fixed)
        failing = {id(r): r for r in decided.values() if not r.valid}
        for run in failing.values():
            notes.append(SizeNote(name, sweep.where(run, decided, sets[name].limit is not None),
                                  run.errors[0]))
    return Sizes(sets, witness, sweep.check(witness), notes)  # its numbers at the witness


def nearest(sizes: SizeSet, target: int) -> int | None:
    """The member of `sizes` nearest `target` (the smaller one on a tie)."""
    if sizes.empty:
        return None
    for distance in range(MAX_SIZE):
        for size in (target - distance, target + distance):
            if size >= 1 and size in sizes:
                return size
    return sizes.smallest
