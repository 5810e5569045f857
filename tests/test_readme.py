"""The README's example and its printed output stay true to the code."""

import re
from pathlib import Path

import pytest

from archspec.cli import main

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
SHORTCUT = ("    downsample: if stride != 1 or in.c != c { conv(c, k=1, s=stride, bias=false)"
            "  batchnorm }\n")


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", README, re.DOTALL)


def _run(tmp_path, monkeypatch, capsys, source: str) -> str:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "myresnet.arch").write_text(source)
    main(["check", "myresnet.arch"])
    captured = capsys.readouterr()
    return "$ archspec check myresnet.arch\n" + captured.err + captured.out


def test_readme_error_output_is_what_archspec_prints(tmp_path, monkeypatch, capsys):
    spec = _blocks("arch")[0]
    assert _run(tmp_path, monkeypatch, capsys, spec) == _blocks("text")[0]


def test_readme_fixed_output_is_what_archspec_prints(tmp_path, monkeypatch, capsys):
    spec = _blocks("arch")[0].replace("batchnorm }\n  }", "batchnorm }\n" + SHORTCUT + "  }")
    assert SHORTCUT in spec
    assert _run(tmp_path, monkeypatch, capsys, spec) == _blocks("text")[1]


def _section(title: str) -> str:
    """The README's text under a `## title` heading, up to the next `## ` one."""
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def _subcommands(text: str) -> set[str]:
    """The subcommands of the `archspec ...` lines in the text's code blocks."""
    return {match for block in re.findall(r"```\w*\n(.*?)```", text, re.DOTALL)
            for match in re.findall(r"^\$? ?archspec ([\w-]+)", block, re.MULTILINE)}


def test_readme_workplace_commands_are_real_subcommands(capsys):
    commands = _subcommands(_section("In your editor, in CI, in a notebook"))
    assert "lsp" in commands
    for command in sorted(commands):
        with pytest.raises(SystemExit) as exit_:  # argparse: 0 after --help, 2 if unknown
            main([command, "--help"])
        assert exit_.value.code == 0, command
    capsys.readouterr()
