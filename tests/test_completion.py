"""`archspec completion bash|zsh`, loaded into a real bash and a real zsh. The bash function
is run as bash runs it on Tab (COMP_WORDS and COMP_CWORD set) and its candidates compared
with what the parser accepts and what the spec defines; the tests skip without the shell."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from archspec.check import check_file
from archspec.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
SPEC = ("block unit(c: int) {\n  conv(c, k=3, p=1) relu\n}\n\n"
        "network small(c: int = 8) {\n  input [3, 32, 32]\n  unit(c)\n}\n\n"
        "  network wide(c: int) {\n  input [3, 32, 32]\n  unit(c)\n}\n\n"
        "variant wider = wide(c=64)\n")


def script(capsys, shell: str) -> str:
    assert main(["completion", shell]) == 0
    return capsys.readouterr().out


@pytest.fixture
def bash(tmp_path, capsys):
    """complete(words): the candidates bash's completion gives for the last word, in
    tmp_path, which holds a spec, another file and a folder."""
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    loaded = tmp_path / "archspec.bash"
    loaded.write_text(script(capsys, "bash"))
    (tmp_path / "nets.arch").write_text(SPEC)
    (tmp_path / "notes.txt").write_text("not a spec\n")
    (tmp_path / "specs").mkdir()

    def complete(*words: str) -> list[str]:
        quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in ["archspec", *words])
        program = (f"source {loaded}\nCOMP_WORDS=({quoted})\nCOMP_CWORD={len(words)}\n"
                   "_archspec\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n")
        proc = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], cwd=tmp_path,
                              capture_output=True, text=True, check=False, timeout=30)
        assert proc.returncode == 0 and not proc.stderr, proc.stderr
        return sorted(line for line in proc.stdout.splitlines() if line)

    complete.loaded = loaded
    return complete


def subcommands():
    parser = build_parser()
    return next(a for a in parser._actions if a.dest == "command").choices


def test_printing_a_script_imports_no_torch():
    """Shells run `archspec completion` at every start: it must stay on the static path."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "archspec", "completion",
                           "bash"], capture_output=True, text=True, cwd=ROOT, check=True)
    imported = [line.split("|")[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")]
    assert "archspec.completion" in imported
    assert not [m for m in imported if m == "torch" or m.startswith("torch.")]


def test_bash_registers_the_function(bash):
    proc = subprocess.run(["bash", "--norc", "--noprofile", "-c",
                           f"source {bash.loaded}; complete -p archspec"],
                          capture_output=True, text=True, check=True)
    assert "-F _archspec" in proc.stdout and proc.stdout.split()[-1] == "archspec"


def test_bash_completes_subcommands(bash):
    assert bash("") == sorted([*subcommands(), "--help", "--version"])
    assert bash("di") == ["diagram", "diff"]


@pytest.mark.parametrize("command", ["check", "summary", "compile", "diagram", "diff", "fmt"])
def test_bash_completes_each_subcommands_options(bash, command):
    parser = subcommands()[command]
    expected = sorted(flag for action in parser._actions for flag in action.option_strings)
    assert bash(command, "-") == expected
    assert "--set" in expected or command == "fmt"


@pytest.mark.parametrize("command, option", [
    ("check", "--format"), ("summary", "--format"), ("summary", "--count"),
    ("diagram", "--theme"), ("diagram", "--rankdir"), ("diagram", "--format"),
])
def test_bash_completes_choices(bash, command, option):
    action = next(a for a in subcommands()[command]._actions if option in a.option_strings)
    assert bash(command, option, "") == sorted(action.choices)


def test_bash_completes_arch_files_and_folders(bash):
    assert bash("check", "") == ["nets.arch", "specs"]
    assert bash("summary", "--net", "small", "n") == ["nets.arch"]


def test_bash_completes_network_names_of_the_file_on_the_line(bash, tmp_path):
    program = check_file(tmp_path / "nets.arch").program.main
    defined = sorted([d.name for d in program.networks] + [v.name for v in program.variants])
    assert defined == ["small", "wide", "wider"]
    assert bash("summary", "nets.arch", "--net", "") == defined
    assert bash("diagram", "nets.arch", "--net", "wi") == ["wide", "wider"]
    assert bash("summary", "--net", "") == []  # no file yet
    blocks = [d.name for d in program.blocks]
    assert blocks == ["unit"] and bash("diagram", "nets.arch", "--block", "") == blocks


def test_bash_completes_shells_of_completion(bash):
    assert bash("completion", "") == ["bash", "zsh"]


def test_bash_offers_nothing_for_a_value_of_ones_own(bash):
    assert bash("check", "nets.arch", "--set", "") == []
    assert bash("summary", "--depth", "") == []


def zsh(program: str, tmp_path: Path) -> subprocess.CompletedProcess:
    if shutil.which("zsh") is None:
        pytest.skip("no zsh (tools/test.sh installs it with apt)")
    return subprocess.run(["zsh", "-f", "-c", program], cwd=tmp_path, capture_output=True,
                          text=True, check=False, timeout=60,
                          env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})


def test_zsh_loads_after_compinit_and_registers(tmp_path, capsys):
    loaded = tmp_path / "archspec.zsh"
    loaded.write_text(script(capsys, "zsh"))
    proc = zsh(f"autoload -U compinit; compinit -u -d {tmp_path}/dump; source {loaded}; "
               "whence -w _archspec _archspec_defined; print -r -- $_comps[archspec]",
               tmp_path)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    assert proc.stdout.split() == ["_archspec:", "function", "_archspec_defined:",
                                   "function", "_archspec"]


def test_zsh_script_is_an_autoloadable_completion_file(tmp_path, capsys):
    folder = tmp_path / "functions"
    folder.mkdir()
    (folder / "_archspec").write_text(script(capsys, "zsh"))
    proc = zsh(f"fpath=({folder} $fpath); autoload -U compinit; "
               f"compinit -u -d {tmp_path}/dump; print -r -- $_comps[archspec]", tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "_archspec", proc.stderr


# Types LINE and Tab into an interactive zsh on a pseudo-terminal (zsh/zpty), after compinit
# and the script, with compadd wrapped to write each match it is given to OUT; then a key
# bound to a widget that writes OUT.done says the completion has finished.
ZSH_HARNESS = r"""
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PS1=''; autoload -U compinit; compinit -u -d ${2}.dump; source ${(q)1}"
zpty -w z "compadd() { local -a found; builtin compadd -O found \"\$@\";
  print -r -l -- \$found >> ${(q)2}; builtin compadd \"\$@\" }"
zpty -w z "_done() { print -r -- done > ${(q)2}.done }; zle -N _done; bindkey '^Xd' _done"
zpty -w -n z "$3"$'\t\C-xd'
for i in {1..400}; do [[ -e ${2}.done ]] && break; sleep 0.05; done
zpty -d z
[[ -e ${2}.done ]]
"""


@pytest.fixture
def zsh_complete(tmp_path, capsys):
    """complete(line): the matches zsh's completion system offers at the end of `line`, in
    tmp_path (a spec, another file, a folder)."""
    loaded, harness = tmp_path / "archspec.zsh", tmp_path / "harness.zsh"
    loaded.write_text(script(capsys, "zsh"))
    harness.write_text(ZSH_HARNESS)
    (tmp_path / "nets.arch").write_text(SPEC)
    (tmp_path / "notes.txt").write_text("not a spec\n")
    (tmp_path / "specs").mkdir()
    calls = iter(range(1000))

    def complete(line: str) -> set[str]:
        out = tmp_path / f"out{next(calls)}"
        proc = zsh(f"source {harness} {loaded} {out} {line!r}", tmp_path)
        assert proc.returncode == 0, proc.stderr
        return set(out.read_text().split()) if out.exists() else set()

    return complete


def test_zsh_completes_subcommands(zsh_complete):
    assert zsh_complete("archspec di") == {"diagram", "diff"}
    assert set(subcommands()) <= zsh_complete("archspec ")


@pytest.mark.parametrize("command", ["check", "diagram"])
def test_zsh_completes_options(zsh_complete, command):
    parser = subcommands()[command]
    expected = {flag for action in parser._actions for flag in action.option_strings}
    assert zsh_complete(f"archspec {command} -") == expected


def test_zsh_completes_choices_networks_and_files(zsh_complete):
    assert zsh_complete("archspec check --format ") == {"text", "json", "github"}
    assert zsh_complete("archspec summary nets.arch --net ") == {"small", "wide", "wider"}
    assert zsh_complete("archspec diagram nets.arch --block ") == {"unit"}
    assert zsh_complete("archspec check n") == {"nets.arch"}
    assert zsh_complete("archspec completion ") == {"bash", "zsh"}
