"""The examples of docs/language.md are real: every ```arch block is a complete file that
`archspec check` accepts without errors or warnings, and every `$ archspec check FILE`
transcript shows exactly the output archspec gives.

Conventions of the document:
* a fenced block (```arch or ```text) whose first line is `# file: NAME` is also written to
  NAME, in one directory with all the other named blocks, so examples can import each other
  and transcripts can refer to them (a ```text block names a spec that is meant to fail);
* a ```text block whose first line is `$ archspec check NAME...` is a transcript: the rest of
  the block is the combined output of that command, run in that directory.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

import archspec
from archspec import cli
from archspec.ops import REGISTRY

DOC = Path(__file__).resolve().parent.parent / "docs" / "language.md"
FENCE = re.compile(r"^```([\w-]*)[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
FILE_LINE = re.compile(r"#\s*file:\s*(\S+)")


def _blocks() -> list[tuple[str, str, int]]:
    """(info string, body, line number) of every fenced block of the document."""
    text = DOC.read_text(encoding="utf-8")
    return [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1)
            for m in FENCE.finditer(text)]


def _file_name(body: str) -> str | None:
    first = body.split("\n", 1)[0].strip()
    match = FILE_LINE.fullmatch(first)
    return match.group(1) if match else None


BLOCKS = _blocks()
ARCH = [(body, line) for info, body, line in BLOCKS if info == "arch"]
TRANSCRIPTS = [(body, line) for info, body, line in BLOCKS
               if info == "text" and body.startswith("$ archspec check ")]


def _write_named_files(directory: Path) -> None:
    for _, body, _ in BLOCKS:
        name = _file_name(body)
        if name is not None:
            target = directory / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(body, encoding="utf-8")


def test_document_has_examples():
    assert len(ARCH) >= 20
    assert TRANSCRIPTS


@pytest.mark.parametrize("body,line", ARCH, ids=[f"line{line}" for _, line in ARCH])
def test_arch_block_checks_cleanly(body: str, line: int, tmp_path: Path, monkeypatch):
    _write_named_files(tmp_path)
    name = _file_name(body) or f"example_line{line}.arch"
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = archspec.check_file(name)
    shown = "\n".join(f"{d.code} {d.message} ({d.span})" for d in result.diagnostics)
    assert not result.diagnostics, f"example at docs/language.md:{line}:\n{shown}"
    if re.search(r"^\s*(network|variant)\b", body, re.MULTILINE):
        assert result.networks, f"example at docs/language.md:{line} checks no network"


@pytest.mark.parametrize("body,line", TRANSCRIPTS,
                         ids=[f"line{line}" for _, line in TRANSCRIPTS])
def test_transcript_is_real_output(body: str, line: int, tmp_path: Path, monkeypatch, capsys):
    _write_named_files(tmp_path)
    command, _, expected = body.partition("\n")
    args = shlex.split(command)[2:]  # drop `$ archspec`
    monkeypatch.chdir(tmp_path)
    status = cli.main(args)
    captured = capsys.readouterr()
    actual = captured.out + captured.err

    def normal(text: str) -> str:
        return "\n".join(x.rstrip() for x in text.strip().splitlines())

    assert normal(actual) == normal(expected), f"transcript at docs/language.md:{line}"
    failing = "error[" in expected
    assert status == (1 if failing else 0)


def _op_sections() -> dict[str, str]:
    """The text under each `### `op`` heading (up to the next heading of level 2 or 3),
    and under each `#### `op`` heading of the activations section."""
    text = DOC.read_text(encoding="utf-8")
    sections: dict[str, str] = {}
    for match in re.finditer(r"^(###|####) `(\w+)`\n(.*?)(?=^#{2,4} |\Z)", text,
                             re.MULTILINE | re.DOTALL):
        sections[match.group(2)] = match.group(3)
    return sections


def test_every_op_has_a_section_with_an_example():
    sections = _op_sections()
    missing = sorted(set(REGISTRY) - set(sections))
    assert not missing, f"ops without a section in docs/language.md: {missing}"
    for name in REGISTRY:
        assert "```arch" in sections[name], f"section `{name}` has no example"


def test_op_arguments_are_documented():
    """Every argument, alias that applies, and the positional order of each op are in the
    document, in the op's own section or in the activations table."""
    text = DOC.read_text(encoding="utf-8")
    table = text[text.index("### Activations"):text.index("#### `relu`")]
    sections = _op_sections()
    for name, spec in REGISTRY.items():
        where = sections[name] + (table if name in table else "")
        for field in spec.args.model_fields:
            assert f"`{field}`" in where, f"`{name}` argument `{field}` is not documented"
        for alias, target in spec.aliases.items():
            if target in spec.args.model_fields:
                assert f"`{alias}`" in where, f"`{name}` alias `{alias}` is not documented"
        if spec.positional:
            usage = f"`{name}({', '.join(spec.positional)})`"
            assert usage in where, f"`{name}` positional order {usage} is not documented"
