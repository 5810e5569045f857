"""Redraw every picture in docs/img with the commands docs/diagrams.md shows.

    python tools/draw_docs_images.py          # all of them
    python tools/draw_docs_images.py --list   # the commands, one a line

A command is an `archspec diagram ... -o docs/img/NAME.png` line of the page (in a code
block, or inline as for the small residual network, whose spec is the page's `arch` block
that defines `network tiny`, saved as tiny.arch). A picture that also has an .svg in
docs/img is drawn as SVG too. tests/test_diagram_fit.py runs the same commands and checks
that they give the committed pictures' sizes. Run it from the repository's root after a
change to the drawings, and look at every picture.
"""

from __future__ import annotations

import re
import shlex
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's archspec, not an installed one
DOC = ROOT / "docs" / "diagrams.md"
COMMAND = re.compile(r"archspec diagram ([^`\n]*?) -o (docs/img/[\w.-]+\.png)")


def commands(doc: str) -> list[tuple[list[str], str]]:
    """(arguments after `archspec`, the picture's path) of every command on the page."""
    return [(["diagram", *shlex.split(args)], image) for args, image in COMMAND.findall(doc)]


def tiny_spec(doc: str) -> str:
    """The page's small residual network, the file its command calls tiny.arch."""
    blocks = re.findall(r"```arch\n(.*?)```", doc, re.DOTALL)
    return next(block for block in blocks if "network tiny" in block)


def draw(args: list[str], output: Path, folder: Path) -> int:
    """Run one command with its output sent to `output`; tiny.arch is read from `folder`."""
    from archspec.cli import main

    args = [str(folder / a) if a == "tiny.arch" else a for a in args]
    return main([*args, "-o", str(output)])


def main() -> int:
    doc = DOC.read_text(encoding="utf-8")
    found = commands(doc)
    if sys.argv[1:] == ["--list"]:
        for args, image in found:
            print("archspec", shlex.join(args), "-o", image)
        return 0
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "tiny.arch").write_text(tiny_spec(doc), encoding="utf-8")
        for args, image in found:
            targets = [ROOT / image]
            if (ROOT / image).with_suffix(".svg").exists():
                targets.append((ROOT / image).with_suffix(".svg"))
            for target in targets:
                if draw(args, target, Path(folder)) != 0:
                    print(f"failed: archspec {shlex.join(args)}", file=sys.stderr)
                    return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
