"""The README's example and its printed output stay true to the code."""

import re
from pathlib import Path

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
