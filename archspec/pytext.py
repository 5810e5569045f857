"""Python text as ruff format lays it out: literals, and lines wrapped at 88 columns the
way ruff would wrap them, so generated files pass `ruff format --check` untouched."""

from __future__ import annotations

import json
import re

LINE = 88  # ruff's default line length
INDENT = "    "


def literal(value) -> str:
    """Python text for a value, with double quotes as ruff format writes them."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple):
        items = [literal(v) for v in value]
        return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
    return repr(value)


def wrap(prefix: str, body: str, suffix: str = "") -> str:
    """Lay out `prefix + body + suffix` the way ruff format does: one line if it fits, else
    a call's arguments on one indented line, else (and always for a list, tuple or dict
    display of several items) one item per line."""
    line = prefix + body + suffix
    if len(line) <= LINE:
        return line
    match = re.match(r"[^([{]*[([{]", body)
    closer = {"(": ")", "[": "]", "{": "}"}.get(body[match.end() - 1]) if match else None
    if closer is None or not body.endswith(closer):
        return line
    head, inner = body[:match.end()], body[match.end():-1]
    outer = re.match(r"\s*", prefix).group(0)
    indent = outer + INDENT
    items = split_args(inner)
    one_line = indent + ", ".join(items)
    display = not re.search(r"[\w)\]]$", head[:-1])  # a literal, not a call or subscript
    if len(one_line) <= LINE and (len(items) == 1 or not display):
        return f"{prefix}{head}\n{one_line}\n{outer}{closer}{suffix}"
    wrapped = [prefix + head] + [wrap(indent, item, ",") for item in items]
    return "\n".join(wrapped) + f"\n{outer}{closer}{suffix}"


def wrap_def(prefix: str, params: str, suffix: str) -> str:
    line = prefix + params + suffix
    if len(line) <= LINE:
        return line
    indent = re.match(r"\s*", prefix).group(0)
    lines = [prefix] + [f"{indent}{INDENT}{p}," for p in split_args(params)]
    return "\n".join(lines) + f"\n{indent}{suffix}"


def wrap_line(line: str) -> str:
    if len(line) <= LINE:
        return line
    match = re.match(r"(\s*\S+ = )(.*)$", line)
    return wrap(match.group(1), match.group(2)) if match else line


def split_args(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    if text[start:].strip():
        parts.append(text[start:].strip())
    return parts
