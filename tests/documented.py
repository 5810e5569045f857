"""Run the `archspec ...` lines the documentation shows, as a shell would: globs expanded,
a `< FILE` redirection read, in the current folder (a copy of specs/, for commands that
change files)."""

from __future__ import annotations

import glob
import io
import shlex
import shutil
from pathlib import Path

from archspec.cli import main

ROOT = Path(__file__).resolve().parent.parent


def run_line(line: str, monkeypatch, capsys) -> tuple[int, str]:
    """The exit status and stdout of a documented `archspec ...` line."""
    command, _, stdin = line.partition(" < ")
    if stdin:
        monkeypatch.setattr("sys.stdin", io.StringIO(Path(stdin.strip()).read_text()))
    words = [m for w in shlex.split(command)[1:] for m in (sorted(glob.glob(w)) or [w])]
    status = main(words)
    return status, capsys.readouterr().out


def copy_specs(tmp_path: Path, monkeypatch) -> Path:
    """A copy of specs/ in tmp_path, the current folder from now on."""
    shutil.copytree(ROOT / "specs", tmp_path / "specs")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "specs"
