"""`archspec fmt` changes layout only: on every spec of specs/ and tests/broken/ that parses,
formatting twice gives what formatting once gave, every comment survives in order (read by
Lark's own lexer, not by the formatter), and the formatted file checks exactly the same
(diagnostic codes; networks with every layer's shapes, parameters and MACs). Whitespace
scattered into a spec formats back to the same text; `--check`, `--diff`, `-` and syntax
errors behave as documented."""

from __future__ import annotations

import functools
import importlib.util
import os
import random
import re
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lark import Lark

from archspec import check_file
from archspec.cli import main
from archspec.fmt import format_source, tokens_and_gaps
from archspec.parse import parse_module

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.arch"))


def _syntax_errors(path: Path) -> list | None:
    """The syntax errors of a spec; None for a file that is no readable text."""
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None
    return None if "\0" in text else parse_module(text, str(path))[1]


BROKEN = sorted((ROOT / "tests" / "broken").rglob("*.arch"))
FILES = SPECS + [p for p in BROKEN if _syntax_errors(p) == []]
IDS = [str(p.relative_to(ROOT)) for p in FILES]
UNPARSED = [p for p in BROKEN if _syntax_errors(p)]


_LEXED_COMMENTS: list = []  # what the lexer of _comment_parser() found in its last parse


@functools.cache
def _comment_parser() -> Lark:
    """The grammar's own LALR parser, built once (building it is most of a parse's time),
    with a lexer callback that collects the comments."""
    grammar = resources.files("archspec").joinpath("grammar.lark").read_text()
    return Lark(grammar, parser="lalr", lexer_callbacks={"COMMENT": _LEXED_COMMENTS.append})


def _comments(text: str) -> list[str]:
    """The comments of a text as the grammar's lexer finds them."""
    _LEXED_COMMENTS.clear()
    _comment_parser().parse(text)
    return [str(c).rstrip() for c in _LEXED_COMMENTS]


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_formatting_is_idempotent(path: Path):
    once = format_source(path.read_text(encoding="utf-8"), str(path))
    assert format_source(once, str(path)) == once


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_comments_survive_in_order(path: Path):
    text = path.read_text(encoding="utf-8")
    assert _comments(format_source(text, str(path))) == _comments(text)


def _outcome(path: Path) -> tuple:
    """What checking a file gives, positions aside: codes, and each network's shapes,
    parameters and MACs, layer by layer."""
    result = check_file(str(path))
    networks = [(net.name, net.input_shape, net.output_shape, net.params, net.macs,
                 [(layer.path, layer.op.name, layer.in_shape, layer.out_shape, layer.params,
                   layer.macs) for layer in net.layers()])
                for net in result.networks]
    return sorted(d.code for d in result.diagnostics), networks


@pytest.mark.slow
@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_formatted_file_checks_the_same(path: Path, tmp_path: Path):
    copy = tmp_path / "copy"
    shutil.copytree(path.parent, copy)  # with the files it imports, at the same places
    formatted = copy / path.name
    formatted.write_text(format_source(path.read_text(encoding="utf-8")), encoding="utf-8")
    assert _outcome(formatted) == _outcome(path)


def _scattered(text: str, chance: random.Random) -> str:
    """The text with other whitespace between its tokens: spaces and tabs changed, added
    or removed between tokens on a line, other indentation, trailing blanks, blank lines
    repeated. Line breaks stay where they are (they are the author's)."""
    tokens = tokens_and_gaps(text)[0]
    ends = [0] + [t.end_pos for t in tokens]
    starts = [t.start_pos for t in tokens] + [len(text)]
    pieces = []
    for at, (end, start) in enumerate(zip(ends, starts)):
        gap = text[end:start]
        if "\n" not in gap and "#" not in gap and 0 < at < len(tokens):
            gap = _blanks(chance, 0 if gap == "" else 1)
        else:
            gap = re.sub(r"[ \t]*\n[ \t]*", lambda m: _blanks(chance) + "\n" + _blanks(chance),
                         gap)
            gap = re.sub(r"\n\n", lambda m: "\n" + "\n" * chance.randint(1, 3), gap)
        pieces += [gap, tokens[at].value if at < len(tokens) else ""]
    return "".join(pieces)


def _blanks(chance: random.Random, least: int = 0) -> str:
    return "".join(chance.choice(" \t") for _ in range(chance.randint(least, 4)))


@pytest.mark.slow
@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2**32))
@pytest.mark.parametrize("path", SPECS, ids=[p.name for p in SPECS])
def test_scattered_whitespace_formats_back(path: Path, seed: int):
    text = path.read_text(encoding="utf-8")
    messy = _scattered(text, random.Random(seed))
    assert format_source(messy) == format_source(text)


def _fuzz_module():
    """tools/fuzz.py, whose Hypothesis strategy draws whole programs from grammar.lark."""
    if "archspec_fuzz" not in sys.modules:  # tests/test_fuzz.py loads it by this name too
        spec = importlib.util.spec_from_file_location("archspec_fuzz",
                                                      ROOT / "tools" / "fuzz.py")
        module = sys.modules["archspec_fuzz"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules["archspec_fuzz"]


@pytest.mark.slow
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(program=_fuzz_module().spec_strategy())
def test_generated_programs_format_idempotently(program):
    """Programs of every statement and expression form: formatting keeps their tokens
    (format_source verifies it) and is idempotent."""
    text = program.decode("utf-8", "replace") if isinstance(program, bytes) else program
    if parse_module(text, "generated")[1]:
        return
    once = format_source(text)
    assert format_source(once) == once


def test_scattered_whitespace_formats_back_quick():
    """One spec with many statement forms, a few times, in the quick run."""
    text = (ROOT / "specs" / "resnet.arch").read_text(encoding="utf-8")
    for seed in range(3):
        messy = _scattered(text, random.Random(seed))
        assert messy != text
        assert format_source(messy) == text


MESSY = """# a messy spec
network  tiny( c : int=8 ){
input [3,32,32]   # the input


conv( c,k = 3 ,p=1)   relu
      add{ {conv(c,k=3,p=1)} {} }
   }
"""


def test_check_lists_what_would_change_and_changes_nothing(tmp_path: Path, capsys):
    messy = tmp_path / "messy.arch"
    messy.write_text(MESSY, encoding="utf-8")
    assert main(["fmt", "--check", str(messy)]) == 1
    assert str(messy) in capsys.readouterr().err
    assert messy.read_text(encoding="utf-8") == MESSY


def test_formatted_library_passes_check(capsys):
    assert main(["fmt", "--check", *map(str, SPECS)]) == 0
    assert capsys.readouterr().err == ""


def test_fmt_rewrites_a_file(tmp_path: Path):
    messy = tmp_path / "messy.arch"
    messy.write_text(MESSY, encoding="utf-8")
    assert main(["fmt", str(messy)]) == 0
    formatted = messy.read_text(encoding="utf-8")
    assert formatted == format_source(MESSY) != MESSY
    assert "network tiny(c: int = 8) {\n  input [3, 32, 32]  # the input\n" in formatted
    assert main(["fmt", "--check", str(messy)]) == 0


def test_diff_shows_the_change_and_changes_nothing(tmp_path: Path, capsys):
    messy = tmp_path / "messy.arch"
    messy.write_text(MESSY, encoding="utf-8")
    assert main(["fmt", "--diff", str(messy)]) == 0
    out = capsys.readouterr().out
    assert "-conv( c,k = 3 ,p=1)   relu\n" in out and "+  conv(c, k=3, p=1)  relu\n" in out
    assert messy.read_text(encoding="utf-8") == MESSY


def test_syntax_error_is_reported_and_file_left_alone(tmp_path: Path, capsys):
    broken = tmp_path / "broken.arch"
    text = "network n() {\n  input [3, 8, 8]\n  conv(8, k=3\n}\n"
    broken.write_text(text, encoding="utf-8")
    assert main(["fmt", str(broken)]) == 1
    assert "E101" in capsys.readouterr().err
    assert broken.read_text(encoding="utf-8") == text


def _codes(command: str, path: Path) -> tuple[int, list[str]]:
    """Exit status and diagnostic codes of `archspec COMMAND PATH` in a process of its own
    (a file that blocks on reading must not hang the test run)."""
    done = subprocess.run([sys.executable, "-m", "archspec", command, str(path)],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    return done.returncode, re.findall(r"error\[(E\d+)\]", done.stderr)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_files_check_refuses_are_refused_alike(tmp_path: Path):
    """A FIFO, a device, a file not in UTF-8: fmt reads as check reads, so each is the same
    diagnostic and exit status 2, never a read that blocks or runs on (`/dev/zero`)."""
    fifo = tmp_path / "pipe.arch"
    os.mkfifo(fifo)
    latin = tmp_path / "latin.arch"
    latin.write_bytes(b"network n() {\n  input [3, 8, 8]\n  relu  # caf\xe9\n}\n")
    for path in (fifo, Path("/dev/zero"), latin):
        status, codes = _codes("fmt", path)
        assert (status, codes) == _codes("check", path) and status == 2 and codes, path


@pytest.mark.parametrize("path", UNPARSED, ids=[p.name for p in UNPARSED])
def test_syntax_errors_are_those_check_gives(path: Path, tmp_path: Path, capsys):
    """A spec that does not parse: fmt reports what check reports, and leaves it alone."""
    copy = tmp_path / path.name
    copy.write_bytes(path.read_bytes())
    assert main(["fmt", str(copy)]) == 1
    printed = re.findall(r"error\[(E\d{3})\]", capsys.readouterr().err)
    assert printed == [d.code for d in check_file(str(copy)).diagnostics]
    assert copy.read_bytes() == path.read_bytes()


def _run(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "archspec", *args], input=stdin,
                          capture_output=True, text=True, check=False, env=env, cwd=ROOT, timeout=60)


def test_stdin_to_stdout_in_a_real_process():
    done = _run("fmt", "-", stdin=MESSY)
    assert done.returncode == 0, done.stderr
    assert done.stdout == format_source(MESSY)


def test_fmt_does_not_import_torch():
    code = ("import sys\nfrom archspec.cli import main\n"
            f"assert main(['fmt', '--check', {str(SPECS[0])!r}]) == 0\n"
            "assert 'torch' not in sys.modules, 'fmt imported torch'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert done.returncode == 0, done.stderr


def test_docs_examples_are_formatted():
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "fmt_docs.py"), "--check"],
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
