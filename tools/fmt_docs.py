"""Format the ```arch examples of the README and docs/*.md as `archspec fmt` formats files.

    python tools/fmt_docs.py          # rewrite the examples that are not formatted
    python tools/fmt_docs.py --check  # exit 1, naming them, if any is not formatted

docs/errors.md is left out: it is generated (tools/gen_errors_md.py) from tests/broken/,
whose specs are broken on purpose. An example that does not parse is left as it is.
tests/test_fmt.py runs the check.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archspec.diagnostics import ArchError
from archspec.fmt import format_source

FENCE = re.compile(r"^(```arch[ \t]*\n)(.*?)(^```[ \t]*$)", re.MULTILINE | re.DOTALL)
GENERATED = {"errors.md"}


def documents() -> list[Path]:
    docs = sorted(p for p in (ROOT / "docs").glob("*.md") if p.name not in GENERATED)
    return [ROOT / "README.md"] + docs


def formatted(text: str) -> str:
    """The document with each of its ```arch blocks formatted (those that parse)."""
    def one(match: re.Match) -> str:
        try:
            body = format_source(match.group(2))
        except ArchError:
            return match.group(0)
        return match.group(1) + body + match.group(3)

    return FENCE.sub(one, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if an example is not formatted")
    args = parser.parse_args(argv)
    stale = []
    for path in documents():
        text = path.read_text(encoding="utf-8")
        new = formatted(text)
        if new != text:
            stale.append(path.relative_to(ROOT))
            if not args.check:
                path.write_text(new, encoding="utf-8")
    for path in stale:
        print(f"{'would reformat' if args.check else 'reformatted'} examples in {path}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
