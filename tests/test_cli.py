"""The `archspec check` command: exit statuses, formats, and the static path without torch."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import archspec
from archspec.cli import main

ROOT = Path(__file__).resolve().parent.parent
GOOD = "network n() {\n  input [3, 32, 32]\n  conv(8, k=3, p=1) relu\n  global_avgpool\n}\n"
BAD = ("network n() {\n  input [3, 32, 32]\n  conv(8, k=3, p=1) relu\n  linear(10)\n"
       "  maxpool(3, s=0)\n}\n")


@pytest.fixture
def files(tmp_path):
    good, bad = tmp_path / "good.arch", tmp_path / "bad.arch"
    good.write_text(GOOD)
    bad.write_text(BAD)
    return good, bad


def test_clean_file_exits_zero_and_reports_shapes(files, capsys):
    assert main(["check", str(files[0])]) == 0
    out = capsys.readouterr().out
    assert "n: ok  3x32x32 -> 8x1x1" in out and "224 params" in out


def test_spec_errors_exit_one_with_every_error(files, capsys):
    assert main(["check", str(files[1])]) == 1
    err = capsys.readouterr().err
    assert f"{files[1]}:4:3: error[E307]" in err
    assert f"{files[1]}:5:14: error[E216]: bad value for `s` of `maxpool`: 0" in err
    assert "8x32x32" in err and "^" in err and "Traceback" not in err


def test_usage_and_io_errors_exit_two(tmp_path, capsys):
    assert main(["check", str(tmp_path / "missing.arch")]) == 2
    assert "E103" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["check", "x.arch", "--input", "3,2.5"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2


def test_net_and_input_options(files, capsys):
    assert main(["check", str(files[0]), "--net", "n", "--input", "3,64,64"]) == 0
    assert "3x64x64 -> 8x1x1" in capsys.readouterr().out
    assert main(["check", str(files[0]), "--net", "m"]) == 1
    assert "E211" in capsys.readouterr().err


def test_json_format(files, capsys):
    assert main(["check", str(files[0]), str(files[1]), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report[0]["ok"] and report[0]["networks"][0]["output_shape"] == [8, 1, 1]
    codes = [(d["code"], d["line"]) for d in report[1]["diagnostics"]]
    assert ("E307", 4) in codes
    assert {"file", "line", "column", "severity", "message", "hint"} <= set(
        report[1]["diagnostics"][0])


def test_github_format(files, capsys):
    assert main(["check", str(files[1]), "--format", "github"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith(f"::error file={files[1]},line=4,col=3,") for line in lines)
    assert all(line.startswith("::") for line in lines)


def test_static_path_imports_no_torch():
    specs = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").glob("*.arch"))
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "archspec", "check",
                           "-q", *specs], capture_output=True, text=True, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = [line.split("|")[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")]
    assert "archspec.cli" in imported
    assert not [m for m in imported if m == "torch" or m.startswith("torch.")]


def test_max_bytes_without_verify_is_a_usage_error(files, capsys):
    """--max-bytes is the budget of --verify: alone it would be silently ignored."""
    assert main(["compile", str(files[0]), "--max-bytes", "1000"]) == 2
    captured = capsys.readouterr()
    assert "--verify" in captured.err and captured.out == ""
    with pytest.raises(SystemExit) as info:  # a budget below one byte is a typo
        main(["compile", str(files[0]), "--verify", "--max-bytes", "-1"])
    assert info.value.code == 2 and "positive integer" in capsys.readouterr().err


def test_verify_and_build_without_torch_say_how_to_install_it(files, monkeypatch, capsys):
    """Without torch, `compile --verify` and build() name the package to install, not an
    internal error or a bare ModuleNotFoundError."""
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` fails as if not installed
    monkeypatch.delitem(sys.modules, "archspec.torch_backend", raising=False)
    assert main(["compile", str(files[0]), "--verify"]) == 2
    err = capsys.readouterr().err
    assert "pip install torch" in err and "internal error" not in err
    with pytest.raises(ModuleNotFoundError, match=r"pip install '\.\[torch\]'"):
        archspec.build(files[0])


@pytest.mark.slow
@pytest.mark.parametrize("command, output, module", [
    ("compile", "g.py", "archspec.torch_source"),
    ("diagram", "g.html", "archspec.diagram_html"),  # the HTML page, which draws with dot
])
def test_static_outputs_import_no_torch(tmp_path, command, output, module):
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "archspec", command,
                           "specs/googlenet.arch", "-o", str(tmp_path / output)],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = [line.split("|")[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")]
    assert module in imported
    assert not [m for m in imported if m == "torch" or m.startswith("torch.")]


def test_python_dash_m_has_help():
    proc = subprocess.run([sys.executable, "-m", "archspec", "check", "--help"],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    assert proc.returncode == 0 and "--format" in proc.stdout


def test_diff_of_a_network_with_itself_checks_it_once(monkeypatch, capsys):
    """Found by the fuzzer: `diff big.arch big.arch` of a file at the size limit did the
    whole check twice (10.4 s of CPU); the same file and network is checked once."""
    from archspec import cli

    calls = []
    real = cli.one_network
    monkeypatch.setattr(cli, "one_network", lambda *a: calls.append(a) or real(*a))
    spec = str(ROOT / "specs" / "lenet.arch")
    assert cli.main(["diff", spec, spec]) == 0
    assert len(calls) == 1
    assert cli.main(["diff", f"{spec}:lenet", f"{spec}:lenet5"]) == 0
    assert len(calls) == 3
    capsys.readouterr()


def test_a_reader_that_stops_early_ends_the_run_quietly():
    """`archspec check specs/*.arch | head -1`: no error message once the pipe closes."""
    specs = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").glob("*.arch"))
    run = subprocess.Popen([sys.executable, "-m", "archspec", "check", *specs], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert run.stdout.readline().startswith(b"specs/")
    run.stdout.close()
    assert run.stderr.read() == b"" and run.wait() == 141
