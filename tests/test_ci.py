"""docs/ci.md's GitHub Actions workflow: it is valid YAML whose steps install archspec and
run `archspec ...` commands that pass on the library of specs/, and its `--format github`
check turns a broken spec's diagnostics into the workflow commands GitHub reads."""

import re

import yaml
from documented import ROOT, copy_specs, run_line

from archspec.check import check_file

DOC = (ROOT / "docs" / "ci.md").read_text()
# GitHub's workflow command for an annotation: ::error file=F,line=L,col=C,...::message
ANNOTATION = re.compile(r"^::(error|warning) file=([^,]*),line=(\d+),col=(\d+)[,:]")


def workflow() -> dict:
    (block,) = re.findall(r"```yaml\n(.*?)```", DOC, re.DOTALL)
    return yaml.safe_load(block)


def run_lines() -> list[str]:
    """Every line of every `run:` step of the workflow's jobs."""
    return [line.strip() for job in workflow()["jobs"].values() for step in job["steps"]
            if "run" in step for line in step["run"].splitlines() if line.strip()]


def archspec_commands() -> list[str]:
    return [line for line in run_lines() if line.startswith("archspec ")]


def test_workflow_installs_archspec_and_checks_and_formats():
    assert any("pip install" in line and "archspec" in line for line in run_lines())
    commands = archspec_commands()
    assert "archspec check --format github specs/*.arch" in commands
    assert "archspec fmt --check specs/*.arch" in commands
    assert any(" --set " in c for c in commands)
    steps = [s for job in workflow()["jobs"].values() for s in job["steps"]]
    assert any(s.get("uses", "").startswith("actions/checkout@") for s in steps)


def test_workflow_commands_pass_on_the_library(tmp_path, monkeypatch, capsys):
    copy_specs(tmp_path, monkeypatch)
    for line in archspec_commands():
        status, out = run_line(line, monkeypatch, capsys)
        assert status == 0, line
        assert not [x for x in out.splitlines() if x.startswith("::error")], line


def test_github_format_annotates_a_broken_spec(tmp_path, monkeypatch, capsys):
    specs = copy_specs(tmp_path, monkeypatch)
    broken = specs / "broken.arch"
    broken.write_text((ROOT / "tests" / "broken" / "multi_three_mistakes.arch").read_text())
    expected = check_file(broken.relative_to(tmp_path)).diagnostics
    assert len([d for d in expected if d.severity == "error"]) >= 2
    check = next(c for c in archspec_commands() if "--format github specs/*.arch" in c)
    status, out = run_line(check, monkeypatch, capsys)
    assert status == 1
    found = [ANNOTATION.match(line) for line in out.splitlines()]
    assert all(found), out  # nothing but workflow commands
    assert sorted((m[1], m[2], int(m[3]), int(m[4])) for m in found) == sorted(
        (d.severity, d.span.file, d.span.line, d.span.col) for d in expected)

