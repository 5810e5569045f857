"""A checked network in Python and Jupyter: its one-line repr against torchvision's counts,
its HTML view (escaped, with and without Graphviz), summarize/diff/draw against the CLI's
summary/diff/diagram, docs/api.md's examples, and docs/notebook.ipynb run by a real Jupyter
kernel (nbclient), its outputs compared with what the API gives in this process."""

from __future__ import annotations

import ast
import os
import re
import runpy
import shutil
from pathlib import Path

import pytest

import archspec
from archspec.cli import main
from archspec.summary import format_json, human

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
NOTEBOOK = ROOT / "docs" / "notebook.ipynb"


def _resnet(net: str = "resnet18", **kw):
    return archspec.load(SPECS / "resnet.arch", net=net, **kw)


@pytest.fixture
def no_dot(monkeypatch):
    real = shutil.which
    monkeypatch.setattr(shutil, "which",
                        lambda name, *a, **k: None if name == "dot" else real(name, *a, **k))


@pytest.fixture
def dot_program():
    path = shutil.which("dot")
    assert path, "Graphviz's `dot` is needed: apt-get install graphviz (tools/test.sh does)"
    return path


# ---------------------------------------------------------------- repr


def test_repr_is_one_line_with_torchvisions_counts():
    torch = pytest.importorskip("torch")
    models = pytest.importorskip("torchvision.models")
    with torch.device("meta"):  # shapes only: no weights are initialised
        params = sum(p.numel() for p in models.resnet50().parameters())
    gmacs = models.ResNet50_Weights.IMAGENET1K_V1.meta["_ops"]  # torchvision's GFLOPs: MACs
    text = repr(_resnet("resnet50"))
    assert "\n" not in text and len(text) < 100
    assert text.startswith("<Network resnet50 3x224x224 -> 1000,") and text.endswith(">")
    assert f" {params:,} params" in text
    assert f" {gmacs:.2f} GMACs" in text


def test_repr_of_a_network_for_every_size_says_where_it_is_counted():
    net = archspec.loads("network n() {\n  input [3, H, W]\n  conv(8, k=3, s=2, p=1)\n}\n")
    text = repr(net)
    sample = ", ".join(f"{name}={size}" for name, size in net.sizes.witness.items())
    assert "3 x H x W" in text and text.endswith(f" at {sample}>")


# ---------------------------------------------------------------- summary and diff


def _cli_output(capsys, *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_summary_text_is_the_cli_table(capsys):
    table = _resnet().summary(depth=2, batch=4, count="all")
    assert str(table) == _cli_output(capsys, "summary", str(SPECS / "resnet.arch"), "--net",
                                     "resnet18", "--depth", "2", "--batch", "4", "--count", "all")


def test_summary_data_are_the_cli_json(capsys):
    table = archspec.summarize(_resnet("resnet50"))
    cli = _cli_output(capsys, "summary", str(SPECS / "resnet.arch"), "--net", "resnet50",
                      "--format", "json")
    assert format_json(table) == cli
    assert (table.params, table.macs) == (_resnet("resnet50").params, _resnet("resnet50").macs)
    assert [row.name for row in table.rows][:2] == ["conv1", "bn1"]


def test_summary_depth_none_keeps_every_level():
    net = _resnet()
    deepest = max(layer.path.count(".") + 1 for layer in net.layers())  # layer1.0.downsample.0
    every = net.summary(depth=None).rows
    assert max(row.depth for row in every) == deepest
    assert every == net.summary(depth=deepest).rows != net.summary(depth=deepest - 1).rows


@pytest.mark.parametrize("bad", [{"count": "flops"}, {"depth": 0}, {"batch": 0}])
def test_summary_refuses_bad_options(bad):
    with pytest.raises(ValueError):
        _resnet().summary(**bad)


def test_api_refuses_a_path_where_a_network_goes():
    with pytest.raises(TypeError, match="archspec.load"):
        archspec.diff("specs/resnet.arch", _resnet())


def test_diff_text_is_the_cli_diff(capsys):
    spec = str(SPECS / "resnet.arch")
    compared = archspec.diff(_resnet(), _resnet("resnet34"), f"{spec}:resnet18",
                             f"{spec}:resnet34")
    assert str(compared) == _cli_output(capsys, "diff", f"{spec}:resnet18", f"{spec}:resnet34")
    assert compared.params_delta == _resnet("resnet34").params - _resnet().params
    stages = {row.name: row for row in compared.rows}
    assert sum(row.params_delta for row in compared.rows) == compared.params_delta
    assert stages["layer1"].b.count == 1 and stages["fc"].macs_delta == 0


def test_html_tables_show_every_row_and_total():
    net = _resnet()
    table = net.summary()._repr_html_()
    assert table.count("<tr>") == len(net.summary().rows) + 1  # and the header
    assert f"{net.params:,}" in table
    deeper = _resnet("resnet34")
    compared = archspec.diff(net, deeper)._repr_html_()
    assert "<td>layer4</td>" in compared
    assert f"<td>+{human(deeper.params - net.params)}</td>" in compared


# ---------------------------------------------------------------- HTML view and drawings


def test_html_view_is_the_table_and_the_collapsed_svg(dot_program):
    net = _resnet()
    html = net._repr_html_()
    assert html.startswith(net.summary()._repr_html_())
    svg = html[html.index("<svg"):]
    assert svg.rstrip().endswith("</svg>") and "<?xml" not in html
    assert "layer4" in svg and "layer4.0" not in svg  # block calls collapsed, as depth 0


def test_html_view_without_graphviz_is_the_table_and_how_to_install_it(no_dot):
    net = _resnet()
    html = net._repr_html_()
    assert "<svg" not in html and "<table" in html
    assert "apt-get install graphviz" in html.split("</table>")[-1]
    assert net.draw()._repr_svg_() is None


def test_saving_without_graphviz_says_so_but_dot_source_needs_none(tmp_path, no_dot):
    from archspec.diagram import DotMissing

    drawing = _resnet().draw()
    with pytest.raises(DotMissing, match="apt-get install graphviz"):
        drawing.save(tmp_path / "net.png")
    drawing.save(tmp_path / "net.dot")
    assert [path.name for path in tmp_path.iterdir()] == ["net.dot"]
    assert (tmp_path / "net.dot").read_text() == drawing.source


def test_names_cannot_inject_html(dot_program):
    net = _resnet()
    hostile = "<script>alert(1)</script>"
    net.name = hostile
    for row in net.layers():
        row.path = hostile
    html = net._repr_html_() + net.draw(title=hostile, stats=True)._repr_html_()
    assert "<script" not in html.lower()
    assert "&lt;script&gt;" in html


def test_drawing_is_the_cli_diagram(tmp_path, dot_program, capsys):
    spec = str(SPECS / "resnet.arch")
    drawing = _resnet().draw(depth=1, rankdir="LR", theme="slides")
    for suffix in ("dot", "svg"):
        drawing.save(tmp_path / f"api.{suffix}")
        assert main(["diagram", spec, "--net", "resnet18", "--depth", "1", "--rankdir", "LR",
                     "--theme", "slides", "-o", str(tmp_path / f"cli.{suffix}")]) == 0
        assert (tmp_path / f"api.{suffix}").read_bytes() == \
            (tmp_path / f"cli.{suffix}").read_bytes()
    capsys.readouterr()
    assert drawing._repr_svg_() == (tmp_path / "cli.svg").read_text()


def test_drawing_depth_none_opens_every_block_call(dot_program):
    assert "layer4.1" in _resnet().draw(depth=None).svg()


def test_drawing_save_refuses_an_unknown_suffix(tmp_path):
    with pytest.raises(ValueError, match="format"):
        _resnet().draw().save(tmp_path / "net.jpeg")
    assert not list(tmp_path.iterdir())


def test_network_build_is_archspec_build():
    torch = pytest.importorskip("torch")
    net = archspec.load(SPECS / "lenet.arch")
    torch.manual_seed(0)
    built = net.build()
    torch.manual_seed(0)
    reference = archspec.build(SPECS / "lenet.arch")
    assert built.state_dict().keys() == reference.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(built.state_dict().values(),
                                                 reference.state_dict().values()))


# ---------------------------------------------------------------- documented Python


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.DOTALL)


def _run_script(source: str, folder: Path, **names) -> dict:
    """Python source run as a script in `folder` (with `names` defined); its globals."""
    script = folder / "example.py"
    script.write_text(source)
    return runpy.run_path(str(script), init_globals=names)


def _run_in_a_copy(blocks: list[str], tmp_path, monkeypatch) -> dict:
    """The blocks run in order as one script, in a folder with a copy of specs/."""
    shutil.copytree(SPECS, tmp_path / "specs")
    monkeypatch.chdir(tmp_path)
    return _run_script("\n".join(blocks), tmp_path)


def _assert_shown_reprs_hold(blocks: list[str], namespace: dict) -> int:
    """`print(name)  # <...>` lines show the repr the code gives; how many there are."""
    shown = [match for block in blocks
             for match in re.findall(r"^print\((\w+)\)  # (<.*>)$", block, re.MULTILINE)]
    for name, text in shown:
        assert repr(namespace[name]) == text
    return len(shown)


def test_api_doc_examples_run(tmp_path, monkeypatch, dot_program):
    pytest.importorskip("torch")
    blocks = _python_blocks((ROOT / "docs" / "api.md").read_text())
    assert len(blocks) >= 5
    namespace = _run_in_a_copy(blocks, tmp_path, monkeypatch)
    assert _assert_shown_reprs_hold(blocks, namespace) == 1
    assert (tmp_path / "resnet50.svg").read_text().lstrip().startswith("<?xml")


def test_api_doc_lists_every_public_function():
    doc = (ROOT / "docs" / "api.md").read_text()
    headings = [line for line in doc.splitlines() if line.startswith("## ")]
    documented = {name for line in headings for name in re.findall(r"`archspec\.(\w+)\(", line)}
    public = {name for name in archspec.__all__ if callable(getattr(archspec, name))
              and name[0].islower()}
    assert public <= documented


def _readme_section(heading: str) -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index(heading + "\n")
    end = re.search(r"^#{1,3} ", readme[start + len(heading):], re.MULTILINE)
    return readme[start:start + len(heading) + (end.start() if end else len(readme))]


def test_readme_notebook_block_runs(tmp_path, monkeypatch, dot_program):
    pytest.importorskip("torch")
    blocks = _python_blocks(_readme_section("### In a notebook"))
    assert len(blocks) == 1
    namespace = _run_in_a_copy(blocks, tmp_path, monkeypatch)
    saved = [path for path in tmp_path.iterdir() if path.suffix == ".svg"]
    assert saved and saved[0].read_text().lstrip().startswith("<?xml")
    assert _assert_shown_reprs_hold(blocks, namespace) == 1


# ---------------------------------------------------------------- the notebook, in a kernel


def test_committed_notebook_has_no_outputs():
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.fixture(scope="module")
def executed():
    """The notebook run by an IPython kernel in docs/, importing this checkout's archspec;
    its code cells by tag. nbclient raises if a cell fails."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute(env={**os.environ, "PYTHONPATH": str(ROOT)})
    return {cell.metadata["tags"][0]: cell for cell in notebook.cells
            if cell.cell_type == "code"}


def _result(cell) -> dict:
    """The data of the cell's value (its execute_result), by MIME type."""
    results = [out for out in cell.outputs if out.output_type == "execute_result"]
    assert len(results) == 1, cell.outputs
    return results[0].data




@pytest.mark.slow
def test_notebook_shows_the_network_as_the_api_does(executed, dot_program):
    data = _result(executed["load"])
    net = _resnet()
    assert data["text/plain"] == repr(net)
    assert "<svg" in data["text/html"] and data["text/html"] == net._repr_html_()


@pytest.mark.slow
def test_notebook_summary_and_totals(executed):
    table = _resnet().summary(depth=2)
    data = _result(executed["summary"])
    assert data["text/plain"].rstrip("\n") == str(table).rstrip("\n")
    assert data["text/html"] == table._repr_html_()
    totals = ast.literal_eval(_result(executed["totals"])["text/plain"])
    assert totals == (table.params, table.macs, len(table.rows))


@pytest.mark.slow
def test_notebook_draws_and_diffs(executed, dot_program):
    drawn = _result(executed["draw"])
    assert drawn["image/svg+xml"] == _resnet().draw(depth=1, rankdir="LR").svg()
    compared = _result(executed["diff"])["text/plain"].rstrip("\n")
    assert compared == str(archspec.diff(_resnet(), _resnet("resnet34"))).rstrip("\n")


@pytest.mark.slow
def test_notebook_loads_a_string_and_runs_it(executed, tmp_path):
    tiny = _run_script(executed["loads"].source, tmp_path, archspec=archspec)["tiny"]
    assert _result(executed["loads"])["text/plain"] == repr(tiny)
    shape = ast.literal_eval(_result(executed["forward"])["text/plain"])
    assert shape == (2, *tiny.output_shape)
