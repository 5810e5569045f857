"""`--set NAME=VALUE` on check, summary, compile, diagram and diff. The references: the
Python API with the same parameters as keywords, the spec's own variants (resnet18 is
resnet with block=basic, layers=[2, 2, 2, 2]) and a variant written with the same argument,
whose diagnostic the option must give."""

import ast
import json
from pathlib import Path

import pytest

from archspec.check import check_file, load
from archspec.cli import main
from archspec.summary import format_diff, summarize
from archspec.torch_source import generate

ROOT = Path(__file__).resolve().parent.parent
RESNET = str(ROOT / "specs" / "resnet.arch")
AS_RESNET18 = ["--set", "layers=[2,2,2,2]", "--set", "block=basic"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def network_json(net) -> dict:
    return {"name": net.name, "params": net.params, "macs": net.macs,
            "output_shape": list(net.output_shape)}


def test_check_equals_the_api_with_the_same_keywords(capsys):
    status, out, _ = run(capsys, "check", RESNET, "--format", "json", "--set", "classes=10",
                         "--set", "width_per_group=2**7")
    assert status == 0
    (report,) = json.loads(out)
    expected = check_file(RESNET, overrides={"classes": 10, "width_per_group": 128})
    assert [{k: n[k] for k in ("name", "params", "macs", "output_shape")}
            for n in report["networks"]] == [network_json(n) for n in expected.networks]
    assert report["settings"] == {"classes": "10", "width_per_group": "2**7"}


def test_check_json_without_settings_records_none(capsys):
    assert json.loads(run(capsys, "check", RESNET, "--format", "json")[1])[0]["settings"] == {}


def test_a_block_reference_binds_as_in_a_variant(capsys):
    status, out, _ = run(capsys, "summary", RESNET, "--net", "resnet50", *AS_RESNET18,
                         "--format", "json")
    assert status == 0
    summary = json.loads(out)
    resnet18 = load(RESNET, net="resnet18")
    assert (summary["params"], summary["macs"]) == (resnet18.params, resnet18.macs)


def test_the_template_network_takes_its_required_parameters(capsys):
    status, out, _ = run(capsys, "summary", RESNET, "--net", "resnet", *AS_RESNET18,
                         "--format", "json")
    assert status == 0
    assert json.loads(out)["params"] == load(RESNET, net="resnet18").params


def test_summary_table_equals_the_variants(capsys):
    _, mine, _ = run(capsys, "summary", RESNET, "--net", "resnet50", *AS_RESNET18)
    _, theirs, _ = run(capsys, "summary", RESNET, "--net", "resnet18")
    assert mine.splitlines()[1:] == theirs.splitlines()[1:]  # the first line is the name


def test_diagram_equals_the_variants(capsys):
    common = ["-o", "-", "--depth", "1", "--title", "t"]
    _, mine, _ = run(capsys, "diagram", RESNET, "--net", "resnet50", *AS_RESNET18, *common)
    _, theirs, _ = run(capsys, "diagram", RESNET, "--net", "resnet18", *common)
    assert mine.startswith("digraph resnet50 {") and theirs.startswith("digraph resnet18 {")
    assert mine.splitlines()[1:] == theirs.splitlines()[1:]


def test_compile_builders_default_to_the_settings(capsys):
    status, out, _ = run(capsys, "compile", RESNET, "--net", "resnet18", "--set",
                         "classes=10", "--set", "layers=[1, 1, 1, 1]")
    assert status == 0
    network = load(RESNET, net="resnet18", classes=10, layers=[1, 1, 1, 1])
    assert out == generate([network], RESNET)
    defaults = builder_defaults(out, "resnet18")
    assert (defaults["classes"], defaults["layers"]) == (10, [1, 1, 1, 1])


def builder_defaults(source: str, builder: str) -> dict:
    """The literal values of the `arguments` a compiled file's builder passes by default."""
    function = next(node for node in ast.parse(source).body
                    if isinstance(node, ast.FunctionDef) and node.name == builder)
    assigned = next(node.value for node in function.body if isinstance(node, ast.Assign)
                    and node.targets[0].id == "arguments")
    return {ast.literal_eval(key): ast.literal_eval(value)
            for key, value in zip(assigned.keys, assigned.values)
            if not isinstance(value, ast.Name)}  # a block is a class name


def test_diff_applies_to_both_sides(capsys):
    status, out, _ = run(capsys, "diff", f"{RESNET}:resnet18", f"{RESNET}:resnet34",
                         "--set", "classes=10")
    assert status == 0
    a, b = (summarize(load(RESNET, net=net, classes=10)) for net in ("resnet18", "resnet34"))
    assert out == format_diff(a, b, f"{RESNET}:resnet18", f"{RESNET}:resnet34")


def span_text(text: str, diagnostic: dict) -> str:
    """What a diagnostic's one-line span covers of `text`."""
    assert diagnostic["line"] == diagnostic["end_line"] == 1
    return text[diagnostic["column"] - 1:diagnostic["end_column"] - 1]


@pytest.mark.parametrize("name, value", [
    ("layerz", "[2, 2, 2, 2]"),  # E202, with did-you-mean
    ("layers", "3"),  # E204
    ("block", "bottlenek"),  # E208, with did-you-mean
    ("layers", "[2, 2] * 2.5"),  # E212
    ("classes", "10 // 0"),  # E213
    ("classes", "0"),  # E216, in the spec where the value is used
])
def test_errors_are_a_variants(tmp_path, capsys, name, value):
    spec = tmp_path / "resnet.arch"
    spec.write_text(Path(RESNET).read_text() + f"variant mine = resnet50({name}={value})\n")
    # a variant whose arguments do not bind does not exist: E211 says so as well
    expected = [d for d in check_file(spec, net="mine").diagnostics if d.code != "E211"]
    status, out, _ = run(capsys, "check", RESNET, "--net", "resnet50", "--set",
                         f"{name}={value}", "--format", "json")
    got = json.loads(out)[0]["diagnostics"]
    assert status == 1 and len(got) == len(expected) == 1
    (mine,), (theirs,) = got, expected
    assert (mine["code"], mine["message"], mine["detail"]) == \
        (theirs.code, theirs.message, theirs.detail)
    variant_line = spec.read_text().count("\n")
    if theirs.span.line != variant_line:  # the value is wrong where the spec uses it
        assert mine["file"] == RESNET and mine["line"] == theirs.span.line
        return
    assert mine["file"] == f"<--set {name}>"
    in_variant = spec.read_text().splitlines()[variant_line - 1][
        theirs.span.col - 1:theirs.span.end_col - 1]
    assert span_text(f"{name}={value}", mine) == in_variant


def test_text_output_points_into_the_option(capsys):
    status, _, err = run(capsys, "check", RESNET, "--net", "resnet50", "--set",
                         "block=bottlenek")
    assert status == 1
    assert "<--set block>:1:7: error[E208]" in err
    assert "block=bottlenek" in err and "bottleneck" in err and "Traceback" not in err


def test_syntax_error_in_a_value(capsys):
    status, out, _ = run(capsys, "check", RESNET, "--set", "layers=[2, 2", "--format", "json")
    (diagnostic,) = json.loads(out)[0]["diagnostics"]
    assert status == 1 and diagnostic["code"] == "E101"
    assert diagnostic["file"] == "<--set layers>"
    assert diagnostic["column"] > len("layers=")  # inside the value, not at the name
    assert "--set '" in diagnostic["hint"]  # says how to quote it for a shell
    status, out, _ = run(capsys, "check", RESNET, "--set", "layers=[2 2]", "--format", "json")
    (diagnostic,) = json.loads(out)[0]["diagnostics"]
    assert diagnostic["code"] == "E101" and diagnostic["column"] == len("layers=[2 ") + 1


def test_a_string_whose_quotes_the_shell_removed(capsys):
    spec_free = ["check", RESNET, "--net", "resnet50", "--format", "json"]
    _, out, _ = run(capsys, *spec_free, "--set", "block=same")
    (diagnostic,) = json.loads(out)[0]["diagnostics"]
    assert diagnostic["code"] == "E208" and "quote" in diagnostic["hint"]
    _, out, _ = run(capsys, *spec_free, "--set", 'block="same"')
    (diagnostic,) = json.loads(out)[0]["diagnostics"]
    assert diagnostic["code"] == "E204"  # a string now: the wrong type for a block


@pytest.mark.parametrize("option", ["layers", "=3", "3x=1", "layers=", "layers=  "])
def test_malformed_settings_are_usage_errors(capsys, option):
    with pytest.raises(SystemExit) as info:
        main(["check", RESNET, "--set", option])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "--set" in err and "Traceback" not in err


def test_a_name_set_twice_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["summary", RESNET, "--set", "classes=10", "--set", "classes=20"])
    assert info.value.code == 2 and "classes is set twice" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["check", "summary", "compile", "diagram", "diff"])
def test_every_command_takes_set(capsys, command):
    target = {"diff": [f"{RESNET}:resnet18", f"{RESNET}:resnet34"],
              "diagram": [RESNET, "-o", "-"]}.get(command, [RESNET])
    status, _, err = run(capsys, command, *target, "--set", "classez=10")
    assert status == 1 and "<--set classez>:1:1: error[E202]" in err
    assert "did you mean `classes`?" in err


def test_missing_parameters_hint_at_set_on_the_command_line(capsys):
    _, _, err = run(capsys, "summary", RESNET, "--net", "resnet")
    assert "error[E205]" in err and "--set block=... --set layers=..." in err
    with pytest.raises(Exception) as info:  # from Python, the hint speaks of keywords
        load(RESNET, net="resnet")
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.code == "E205" and "--set" not in diagnostic.hint
    assert "block=..., layers=..." in diagnostic.hint


def test_settings_make_a_template_checkable(tmp_path, capsys):
    spec = tmp_path / "t.arch"
    spec.write_text("network t(c: int) {\n  input [3, 8, 8]\n  conv(c, k=1)\n}\n")
    status, _, err = run(capsys, "summary", str(spec))
    assert status == 1 and "E211" in err and "--set NAME=VALUE" in err
    status, out, _ = run(capsys, "summary", str(spec), "--set", "c=4", "--format", "json")
    assert status == 0 and json.loads(out)["output_shape"] == [4, 8, 8]


@pytest.mark.slow
def test_compiled_builder_matches_torchvision_with_the_same_arguments(tmp_path, capsys):
    torchvision = pytest.importorskip("torchvision")
    out = tmp_path / "resnet.py"
    assert main(["compile", RESNET, "--net", "resnet50", "-o", str(out), *AS_RESNET18,
                 "--set", "classes=10"]) == 0
    namespace: dict = {}
    exec(compile(out.read_text(), str(out), "exec"), namespace)  # noqa: S102 - our own output
    mine = namespace["resnet50"]().state_dict()
    theirs = torchvision.models.resnet18(num_classes=10).state_dict()
    assert [tuple(t.shape) for t in mine.values()] == [tuple(t.shape) for t in theirs.values()]


def test_a_value_nested_too_deeply_is_a_limit_in_the_option(capsys):
    status, out, _ = run(capsys, "check", RESNET, "--set", "layers=" + "[" * 500 + "]" * 500,
                         "--format", "json")
    (diagnostic,) = json.loads(out)[0]["diagnostics"]
    assert status == 1 and diagnostic["code"] == "E404"
    assert diagnostic["file"] == "<--set layers>"
