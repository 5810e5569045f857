"""`archspec summary --format latex`: a booktabs table with siunitx numbers.

Where pdflatex with booktabs and siunitx is installed, the table is compiled in a document
(the real TeX engine is the reference for the escapes and the column spec). Everywhere, it is
read back by a small parser of its own: every row has as many cells as the column spec, the
numbers are those of `--format json`, and the text unescapes to the JSON's names.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from archspec.cli import main

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
RULES = (r"\toprule", r"\midrule", r"\bottomrule")
# LaTeX's escapes of the characters it treats specially, and `×` as archspec writes it
UNESCAPES = [(r"\textbackslash{}", "\\"), (r"\textasciitilde{}", "~"),
             (r"\textasciicircum{}", "^"), (r"$\times$", "x"), (r"\&", "&"), (r"\%", "%"),
             (r"\$", "$"), (r"\#", "#"), (r"\_", "_"), (r"\{", "{"), (r"\}", "}")]
UNESCAPE = re.compile("|".join(re.escape(escaped) for escaped, _ in UNESCAPES))
HOSTILE = r"R&D: 100% of #1, a_b {x} ~ ^ $5 \emph"

SPEC = """\
block conv_bn_relu(c: int, k: int = 3) {
  conv_a: conv(c, k=k, p=k // 2, bias=false)  norm_a: batchnorm  relu
}

network tiny_net(classes: int = 10) {
  input [3, 32, 32]
  stem_1: conv_bn_relu(16)
  stage_2: { conv_bn_relu(32, k=1)  conv_bn_relu(32)  conv_bn_relu(32) }
  global_avgpool  flatten
  fc_out: linear(classes)
}
"""


def unescape(text: str) -> str:
    return UNESCAPE.sub(lambda m: dict(UNESCAPES)[m.group(0)], text)


def cells_of(line: str) -> list[str]:
    r"""A tabular row's cells: split at `&` not written `\&`."""
    assert line.endswith(r"\\"), line
    return [cell.strip() for cell in re.split(r"(?<!\\)&", line[:-2])]


class Table:
    """The tabular of a `--format latex` output, read back."""

    def __init__(self, text: str):
        spec = re.search(r"^\\begin\{tabular\}\{(.*)\}$", text, re.MULTILINE).group(1)
        self.columns = re.findall(r"S\[[^\]]*\]|[lcr]", spec.replace("@{}", ""))
        body = text.split(r"\begin{tabular}", 1)[1].split(r"\end{tabular}", 1)[0]
        lines = [line.strip() for line in body.splitlines()[1:] if line.strip()]
        assert lines[0] == r"\toprule" and lines[-1] == r"\bottomrule"
        self.rows = [cells_of(line) for line in lines if line not in RULES]
        self.caption = re.search(r"^\\caption\{(.*)\}$", text, re.MULTILINE).group(1)
        self.label = re.search(r"^\\label\{(.*)\}$", text, re.MULTILINE).group(1)

    def numeric(self) -> list[int]:
        return [i for i, column in enumerate(self.columns) if column.startswith("S")]


def run(capsys, *args) -> str:
    assert main(list(args)) == 0
    return capsys.readouterr().out


@pytest.fixture
def tiny(tmp_path) -> str:
    path = tmp_path / "tiny_net.arch"
    path.write_text(SPEC, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("options", [[], ["--depth", "3"], ["--count", "all", "--batch", "2"]])
def test_rows_and_numbers_are_those_of_the_json_summary(capsys, tiny, options):
    table = Table(run(capsys, "summary", tiny, "--format", "latex", *options))
    data = json.loads(run(capsys, "summary", tiny, "--format", "json", *options))
    assert {len(row) for row in table.rows} == {len(table.columns)}  # every row, every column
    header, *rows, total = table.rows
    numbers = ["params", "macs"] + (["flops"] if "all" in options else [])
    assert [header[i].strip("{}").lower() for i in table.numeric()] == numbers
    assert len(rows) == len(data["layers"])
    for cells, layer in zip(rows, data["layers"]):
        name = re.fullmatch(r"\\texttt\{(.*)\}", cells[0]).group(1)
        assert unescape(name) == layer["name"]
        op = layer["op"] + (f" x{layer['count']}" if layer["count"] > 1 else "")
        assert unescape(cells[1]) == op
        assert unescape(cells[2]) == "x".join(map(str, layer["output_shape"]))
        assert unescape(cells[3]) == layer["kernel"]
        assert [int(cells[i]) for i in table.numeric()] == [layer[key] for key in numbers]
    assert [int(total[i]) for i in table.numeric()] == [data[key] for key in numbers]
    # the S columns are wide enough for every number in them
    for i in table.numeric():
        digits = int(re.fullmatch(r"S\[table-format=(\d+)\.0\]", table.columns[i]).group(1))
        assert max(len(row[i]) for row in rows + [total]) == digits


def test_names_with_underscores_are_escaped(capsys, tiny):
    text = run(capsys, "summary", tiny, "--format", "latex", "--depth", "3")
    table = Table(text)
    names = [row[0] for row in table.rows[1:-1]]
    assert r"\texttt{stem\_1.conv\_a}" in names and r"\texttt{stage\_2.1.norm\_a}" in names
    assert r"conv\_bn\_relu" in {row[1] for row in table.rows}
    for cell in (cell for row in table.rows for cell in row):
        assert not re.search(r"(?<!\\)[_&%#]", cell), cell


def test_caption_is_escaped_and_label_given(capsys, tiny):
    table = Table(run(capsys, "summary", tiny, "--format", "latex", "--caption", HOSTILE,
                      "--label", "tab:tiny-net"))
    assert unescape(table.caption) == HOSTILE
    assert not re.search(r"(?<!\\)[&%#_${}]", re.sub(r"\\\w+\{\}|\$\\times\$", "",
                                                     table.caption))
    assert table.label == "tab:tiny-net"
    default = Table(run(capsys, "summary", tiny, "--format", "latex"))
    assert default.label == "tab:tiny_net" and "tiny" in default.caption


def test_caption_without_latex_is_a_usage_error(capsys, tiny):
    assert main(["summary", tiny, "--caption", "x"]) == 2
    assert "--caption and --label go with --format latex" in capsys.readouterr().err


def test_label_that_latex_cannot_take_is_a_usage_error(capsys, tiny):
    with pytest.raises(SystemExit) as exit_:
        main(["summary", tiny, "--format", "latex", "--label", "a b}"])
    assert exit_.value.code == 2 and "a label is letters" in capsys.readouterr().err


def _tex_ready() -> bool:
    if shutil.which("pdflatex") is None or shutil.which("kpsewhich") is None:
        return False
    found = subprocess.run(["kpsewhich", "booktabs.sty", "siunitx.sty"], capture_output=True,
                           text=True, check=False)
    return len(found.stdout.split()) == 2


@pytest.mark.slow
@pytest.mark.skipif(not _tex_ready(), reason="pdflatex with booktabs and siunitx is missing "
                    "(tools/test.sh installs TeX Live where it can)")
@pytest.mark.parametrize("spec,net,options", [
    ("resnet.arch", "resnet50", ["--depth", "2", "--count", "all"]),
    ("densenet.arch", "densenet121", ["--depth", "3"]),
    ("googlenet.arch", "googlenet", []),
])
def test_pdflatex_compiles_the_table(capsys, tmp_path, spec, net, options):
    table = run(capsys, "summary", str(SPECS / spec), "--net", net, "--format", "latex",
                "--caption", HOSTILE, *options)
    (tmp_path / "table.tex").write_text(table, encoding="utf-8")
    (tmp_path / "doc.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{siunitx}\n"
        "\\begin{document}\n\\input{table.tex}\n\\end{document}\n", encoding="utf-8")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error",
                           "doc.tex"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, check=False)
    log = (tmp_path / "doc.log").read_text(encoding="latin-1")
    assert done.returncode == 0, log[-3000:]
    assert (tmp_path / "doc.pdf").read_bytes()[:5] == b"%PDF-"
    assert not re.search(r"^! ", log, re.MULTILINE)
    assert "Missing" not in log and "Undefined control sequence" not in log


@pytest.mark.slow
def test_latex_summary_does_not_import_torch(tiny):
    code = ("import sys\nfrom archspec.cli import main\n"
            f"main(['summary', {tiny!r}, '--format', 'latex'])\n"
            "assert 'torch' not in sys.modules, 'summary --format latex imported torch'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr


def test_counting_doc_shows_what_the_command_prints(capsys, monkeypatch):
    """docs/counting.md's LaTeX example is the output of the command it shows."""
    doc = (ROOT / "docs" / "counting.md").read_text(encoding="utf-8")
    command = re.search(r"^archspec (summary .*--format latex.*?)(?: > \S+)?$", doc,
                        re.MULTILINE).group(1)
    shown = re.search(r"^```latex\n(.*?)^```$", doc, re.MULTILINE | re.DOTALL).group(1)
    monkeypatch.chdir(ROOT)
    assert run(capsys, *shlex.split(command)) == shown
