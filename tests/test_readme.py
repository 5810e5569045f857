"""The README's example and its printed output stay true to the code, and its editor and CI
commands (those of docs/editors.md too) run as written."""

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from documented import copy_specs, run_line

from archspec.cli import main

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

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


ROOT = Path(__file__).resolve().parent.parent
EDITORS = (ROOT / "docs" / "editors.md").read_text()


def _section(text: str, heading: str) -> str:
    """The text under a heading, up to the next heading of that level or higher."""
    level = heading.split(" ")[0]
    start = text.index(heading + "\n")
    end = re.search(rf"^#{{1,{len(level)}}} ", text[start + len(heading):], re.MULTILINE)
    return text[start:start + len(heading) + (end.start() if end else len(text))]


def _commands(section: str) -> list[str]:
    return [line.split("  #")[0].strip() for block in re.findall(r"```sh\n(.*?)```", section,
                                                                 re.DOTALL)
            for line in block.splitlines() if line.startswith("archspec ")]


@pytest.mark.parametrize("text,heading", [(README, "### In your editor"),
                                          (EDITORS, "## Formatter")],
                         ids=["README", "editors.md"])
def test_documented_fmt_commands_run(text, heading, tmp_path, monkeypatch, capsys):
    copy_specs(tmp_path, monkeypatch)
    commands = [c for c in _commands(_section(text, heading)) if c.startswith("archspec fmt ")]
    assert any("fmt --check" in c for c in commands) and any(" - < " in c for c in commands)
    for line in commands:
        assert run_line(line, monkeypatch, capsys)[0] == 0, line
    assert (tmp_path / "specs" / "resnet.arch").read_text() == \
        (ROOT / "specs" / "resnet.arch").read_text()  # the library is formatted already


@pytest.mark.parametrize("text,heading", [(README, "### In CI"), (EDITORS, "## pre-commit")],
                         ids=["README", "editors.md"])
def test_documented_pre_commit_hooks_exist(text, heading):
    snippet = re.search(r"```yaml\n(.*?)```", _section(text, heading), re.DOTALL).group(1)
    used = {hook["id"] for repo in yaml.safe_load(snippet)["repos"] for hook in repo["hooks"]}
    declared = {hook["id"] for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml")
                                                      .read_text())}
    assert used == declared == {"archspec-check", "archspec-fmt"}


def _subcommands(text: str) -> set[str]:
    """The subcommands of the `archspec ...` lines in the text's code blocks."""
    return {match for block in re.findall(r"```\w*\n(.*?)```", text, re.DOTALL)
            for match in re.findall(r"^\$? ?archspec ([\w-]+)", block, re.MULTILINE)}


def test_readme_workplace_commands_are_real_subcommands(capsys):
    commands = _subcommands(_section(README, "## In your editor, in CI, in a notebook"))
    assert "lsp" in commands
    for command in sorted(commands):
        with pytest.raises(SystemExit) as exit_:  # argparse: 0 after --help, 2 if unknown
            main([command, "--help"])
        assert exit_.value.code == 0, command
    capsys.readouterr()


def _sh_lines(text: str, heading: str) -> list[str]:
    """The lines of the sh blocks under a heading, comments cut."""
    return [line.split("  #")[0].strip()
            for block in re.findall(r"```sh\n(.*?)```", _section(text, heading), re.DOTALL)
            for line in block.splitlines() if line.strip()]


def test_readme_ci_commands_run(tmp_path, monkeypatch, capsys):
    copy_specs(tmp_path, monkeypatch)
    commands = [line for line in _sh_lines(README, "### In CI") if line.startswith("archspec ")]
    assert any(" --set " in line for line in commands)
    for line in commands:
        assert run_line(line, monkeypatch, capsys)[0] == 0, line


COMPLETION_LINE = re.compile(r'eval "\$\(archspec completion (\w+)\)"')
REGISTERED = {  # after the README's line: how the shell names archspec's completion
    "bash": ["complete -p archspec"],
    "zsh": ["print -r -- $_comps[archspec]"],
}


@pytest.mark.parametrize("shell", ["bash", "zsh"])
@pytest.mark.parametrize("text,heading", [(README, "### In CI"),
                                          (EDITORS, "## Shell completion")],
                         ids=["README", "editors.md"])
def test_documented_completion_lines_load_in_the_shell(shell, text, heading, tmp_path):
    if shutil.which(shell) is None:
        pytest.skip(f"no {shell}")
    (line,) = [x for x in _sh_lines(text, heading)
               if (m := COMPLETION_LINE.fullmatch(x)) and m[1] == shell]
    # `archspec` as this checkout's code, whatever is installed
    define = f'archspec() {{ PYTHONPATH={shlex.quote(str(ROOT))} {shlex.quote(sys.executable)} ' \
             '-m archspec "$@"; }'
    start = [] if shell == "bash" else [f"autoload -U compinit; compinit -u -d {tmp_path}/d"]
    program = "\n".join([*start, define, line, *REGISTERED[shell]])
    flags = ["--norc", "--noprofile"] if shell == "bash" else ["-f"]
    proc = subprocess.run([shell, *flags, "-c", program], capture_output=True, text=True,
                          check=False, timeout=60, cwd=tmp_path, env={"HOME": str(tmp_path),
                                                                      "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    assert "_archspec" in proc.stdout


PIP_EXTRAS = re.compile(r"^pip install '\.\[([\w,-]+)\]'")


@pytest.mark.parametrize("text,heading", [(README, "### In your editor"),
                                          (EDITORS, "## Language server")],
                         ids=["README", "editors.md"])
def test_documented_lsp_install_brings_the_servers_library(text, heading):
    """The `pip install '.[lsp]'` line installs an extra pyproject declares, and that extra
    brings pygls, the library `archspec lsp` runs on."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    (named,) = [m[1] for line in _sh_lines(text, heading) if (m := PIP_EXTRAS.match(line))]
    assert named == "lsp" and named in extras
    assert any(re.match(r"pygls\b", requirement) for requirement in extras[named])
