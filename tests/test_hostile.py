"""Specs written to attack: labels and names that would break out of the generated Python or
clash with what it uses, imports outside the allowed folders, file names with quotes and
newlines, terminal escapes. Also: output files are written whole or not at all, every
output is byte-identical under two PYTHONHASHSEED values, the package has no eval/exec, and
the reserved labels cover what torch's module classes define."""

from __future__ import annotations

import ast
import builtins
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import archspec
from archspec import check_file
from archspec.cli import main
from archspec.lowering import lower
from archspec.names import MODULE_ATTRIBUTES

ROOT = Path(__file__).resolve().parent.parent
HEAD = "network net() {\n  input [3, 8, 8]\n"
TAIL = "\n  global_avgpool  flatten\n  linear(10)\n}\n"
ALLOWED_IMPORTS = {"torch", "torch.nn.functional", "collections"}  # and `from torch import nn`


def write(folder: Path, text: str, name: str = "spec.arch") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- reserved labels


@pytest.mark.parametrize("label", ["forward", "training", "add_module", "state_dict", "to",
                                   "values", "_modules", "_program", "__class__"])
def test_reserved_label_is_refused_at_the_label(tmp_path, label):
    """These names would replace a method or attribute of the module: torch refuses them in
    add_module (`attribute already exists`) or, worse, they would shadow one silently."""
    result = check_file(str(write(tmp_path, HEAD + f"  ok: relu\n  {label}: relu" + TAIL)))
    assert [(d.code, d.span.line, d.span.col) for d in result.diagnostics] == [("E220", 4, 3)]
    assert label in result.diagnostics[0].message and result.diagnostics[0].hint


LABELS_TORCH_ACCEPTS = ['block', '"block1-0"', '"0"', 'out_channels', 'input_shape', '_x',
                        'class', '"with space"', '"block{1 + 1}-{0}"']


def test_labels_that_pytorch_accepts_are_state_dict_keys(tmp_path):
    """Any name add_module takes is a label, quoted when it is no identifier; build() and
    compiled files agree (even on names archspec's own classes use), and state_dict keys are
    the labels. The reference is torch itself: these names work in nn.Sequential."""
    torch = pytest.importorskip("torch")
    body = "".join(f"  {label}: conv(4, k=1)\n" for label in LABELS_TORCH_ACCEPTS)
    path = write(tmp_path, HEAD + body + "  merged: add { {} b: { inner: conv(4, k=1) } }" +
                 TAIL.replace("global_avgpool", "global_avgpool"))
    built = archspec.build(str(path))
    expected = ["block", "block1-0", "0", "out_channels", "input_shape", "_x", "class",
                "with space", "block2-0"]
    reference = torch.nn.Sequential()
    for name in expected:
        reference.add_module(name, torch.nn.Conv2d(3 if name == "block" else 4, 4, 1))
    keys = [k for k in built.state_dict() if not k.startswith(("merged", "3."))]
    assert keys[:len(reference.state_dict())] == list(reference.state_dict())
    out = tmp_path / "net.py"
    assert main(["compile", str(path), "-o", str(out), "--verify"]) == 0


def test_label_from_a_template_is_checked_too(tmp_path):
    text = HEAD + '  for name in ["ok", "forward"] {\n    x{name}: relu\n  }' + TAIL
    assert check_file(str(write(tmp_path, text))).diagnostics == []  # `xforward` is fine
    text = HEAD + '  for name in ["ok", "_x"] {\n    {name}: relu\n  }' + TAIL
    assert check_file(str(write(tmp_path, text))).errors  # `{` cannot start a label


def test_non_ascii_label_is_refused(tmp_path):
    """Python folds identifiers with NFKC: `ﬁ` in a label would become `fi` in the compiled
    file, another state_dict key than build()'s."""
    text = HEAD + '  for s in ["ﬁ", "fi"] {\n    x{s}: relu\n  }' + TAIL
    result = check_file(str(write(tmp_path, text)))
    assert [(d.code, d.span.line, d.span.col) for d in result.errors] == [("E216", 4, 5)]


def test_reserved_labels_cover_torch_module_attributes():
    """A new torch version may add attributes: this test names them."""
    from torch import nn

    from archspec.torch_backend import ArchBlock
    from archspec.torch_helpers import DenseConcat

    found = set()
    for module in (nn.Module(), nn.Sequential(), nn.ModuleDict(), nn.ModuleList(),
                   DenseConcat(), ArchBlock(("seq", ()))):
        found |= set(dir(module)) | set(vars(module))
    ordinary = {name for name in found if not (name.startswith("__") and name.endswith("__"))}
    assert ordinary <= MODULE_ATTRIBUTES, sorted(ordinary - MODULE_ATTRIBUTES)


# ---------------------------------------------------------------- compiled source is safe

HOSTILE = """
block f(nn: int, torch: int, super: int, self: int, x: int, lambda: int, class: int) {
  a: conv(nn, k=1)  b: conv(torch + super, k=3, p=1)  c: conv(self * x + lambda + class, k=1)
}
block none(F: int, OrderedDict: int, in_channels: int, arg1: int, spec_arg1: int, __p: int) {
  a: conv(F, k=1)  relu
  b: conv(OrderedDict, k=(1, 2), p=((0, 0), (0, 1)))
  c: conv(in_channels + arg1 + spec_arg1 + __p, k=1)
}
block padded_conv2d(c: int) { a: conv(c, k=1) relu  d: dense 2 { conv(4, k=3, p=1) } }
block dense_concat(c: int) { a: conv(c, k=1) relu }
block exception(c: int) { a: conv(c, k=1) }
block ordered_dict(c: int) { a: conv(c, k=1) b: { conv(c, k=1) } }
network N(class: int = 10, print: int = 3) {
  input [3, 8, 8]
  s1: f(4, 2, 3, 1, 2, 1, 1)
  s2: f(5, 2, 4, 2, 2, 1, 2)
  none(6, 7, 8, 1, 2, 3)
  none(5, 4, 3, 2, 1, 1)
  padded_conv2d(8)
  dense_concat(3)
  exception(4)
  ordered_dict(print)
  global_avgpool flatten
  fc: linear(class)
}
"""


def top_level_problems(source: str) -> list[str]:
    """Anything in a compiled file but a docstring, the expected imports, classes and
    functions; and anything that could run code (calls of eval & co., global statements)."""
    tree = ast.parse(source)
    problems = []
    for i, node in enumerate(tree.body):
        if i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, ast.Import):
            if {a.name for a in node.names} - ALLOWED_IMPORTS:
                problems.append(ast.dump(node))
        elif isinstance(node, ast.ImportFrom):
            if (node.module, tuple(a.name for a in node.names)) not in {
                    ("torch", ("nn",)), ("collections", ("OrderedDict",))}:
                problems.append(ast.dump(node))
        elif not isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            problems.append(ast.dump(node))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Global, ast.Nonlocal, ast.Lambda, ast.Import, ast.ImportFrom)) \
                and node not in tree.body:
            problems.append(ast.dump(node))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in {
                "eval", "exec", "compile", "__import__", "open", "getattr", "setattr"}:
            problems.append(ast.dump(node))
    return problems


def import_file(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The same names where every definition translates (no per-side padding, a dense block of
# labelled steps), so the classes take their parameters under Python-safe names.
PARAMETRIC = HOSTILE.replace("p=((0, 0), (0, 1))", "p=(0, 1)").replace(
    "dense 2 { conv(4, k=3, p=1) }", "dense k in 2 { l{k}: conv(4, k=3, p=1) }")


@pytest.mark.parametrize("text", [HOSTILE, PARAMETRIC], ids=["written-out", "parametric"])
def test_hostile_names_compile_to_safe_source_that_equals_build(tmp_path, capsys, text):
    """Parameters named like keywords, builtins and the file's own imports, blocks named like
    its classes and helpers, a network named like its class: before, `class` gave a file
    Python could not parse, a parameter `in_channels` was mixed up with the input channels,
    and a network `N` got a builder `N()` that called itself forever."""
    import torch

    spec = write(tmp_path, text)
    out = tmp_path / "hostile.py"
    assert main(["compile", str(spec), "-o", str(out)]) == 0, capsys.readouterr().err
    source = out.read_text()
    assert top_level_problems(source) == []
    tree = ast.parse(source)
    classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert len(set(classes)) == len(classes)
    python_names = set(dir(builtins)) | {"torch", "nn", "F", "OrderedDict"}
    assert not (set(classes) - {"PaddedConv2d", "DenseConcat"}) & python_names
    assert functions == ["build_N"]
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "__init__":
            args = [a.arg for a in node.args.args]
            assert len(set(args)) == len(args)
            assert not set(args[1:]) & (python_names | {"self", "x"}) - {"in_channels"}

    module = import_file(out, "hostile_compiled")
    written = module.build_N().eval()
    built = archspec.build(str(spec)).eval()
    assert list(written.state_dict()) == list(built.state_dict())
    written.load_state_dict(built.state_dict(), strict=True)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(written(x), built(x))
    if text is PARAMETRIC:
        assert lower(archspec.load(str(spec))).translation is not None
        assert module.build_N(spec_class=7)(x).shape == (2, 7)  # renamed, still a parameter


@pytest.mark.slow
def test_file_names_cannot_break_out_of_docstrings(tmp_path, capsys):
    """The spec's path is written into the docstrings: quotes, backslashes and newlines in a
    file or folder name are escaped."""
    folder = tmp_path / 'x"""\nimport os\nos.system("echo pwned")\n"""'
    folder.mkdir()
    name = 'evil"""; import os #\\\u2028.arch'
    write(folder, "block b(c: int) { a: conv(c, k=1)  relu }\n" + HEAD + "  b(4)  b(6)" + TAIL,
          name)
    (folder / "lib.arch").write_text("block l() { relu }\n")
    out = tmp_path / "evil.py"
    assert main(["compile", str(folder / name), "-o", str(out)]) == 0, capsys.readouterr().err
    source = out.read_text()
    assert top_level_problems(source) == []
    docstrings = [ast.get_docstring(n) for n in ast.walk(ast.parse(source))
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef))]
    assert any(str(folder / name) in (d or "") for d in docstrings)
    assert "pwned" not in subprocess.run([sys.executable, str(out)], capture_output=True,
                                         text=True, check=True).stdout


def test_generated_source_never_has_nonfinite_floats(tmp_path, capsys):
    """1e308 * 10 was inf, written as `inf`: a NameError when the file is imported."""
    spec = write(tmp_path, HEAD + "  leaky_relu(1e308 * 10)" + TAIL)
    assert main(["compile", str(spec)]) == 1
    assert "error[E401]" in capsys.readouterr().err


# ---------------------------------------------------------------- imports


def test_imports_stay_in_the_spec_folder(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "ok.arch").write_text("block ok() { relu }\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "blocks.arch").write_text("block far() { relu }\n")
    spec_dir = tmp_path / "spec"
    spec_dir.mkdir()
    (spec_dir / "lib").symlink_to(tmp_path / "lib")  # a symlink out of the folder
    imports = ['import "../outside/blocks.arch"', f'import "{outside}/blocks.arch"',
               'import "lib/ok.arch"', 'import "/etc/passwd"', 'import "sub/../../x.arch"']
    spec = write(spec_dir, "\n".join(imports) + "\n" + HEAD + "  relu" + TAIL)
    result = check_file(str(spec))
    assert [(d.code, d.span.line) for d in result.diagnostics] == [
        ("E107", 1), ("E107", 2), ("E107", 3), ("E107", 4), ("E107", 5)]
    allowed = check_file(str(spec), allow_dirs=[str(outside), str(tmp_path / "lib")])
    assert [(d.code, d.span.line) for d in allowed.diagnostics] == [
        ("E107", 4), ("E107", 5)]


def test_allow_dir_on_the_command_line(tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "blocks.arch").write_text("block far() { relu }\n")
    spec = write(tmp_path / "outside", "", "unused.arch")
    (tmp_path / "spec").mkdir()
    spec = write(tmp_path / "spec", 'import "../outside/blocks.arch"\n' + HEAD + "  far" + TAIL)
    assert main(["check", str(spec)]) == 1
    assert "error[E107]" in capsys.readouterr().err
    for command in (["check"], ["summary"], ["compile"], ["diagram", "-o",
                                                           str(tmp_path / "d.dot")]):
        assert main([command[0], str(spec), "--allow-dir", str(outside), *command[1:]]) == 0
    capsys.readouterr()


def test_import_paths_with_odd_characters_are_diagnostics(tmp_path, capsys):
    for path in ["a\x00b.arch", "\x1b[2J.arch", "a" * 5000, "/dev/zero", ".", "lib"]:
        spec = write(tmp_path, f'import "{path}"\n' + HEAD + "  relu" + TAIL)
        # A NUL byte makes the spec itself a binary file (E103, exit status 2).
        assert main(["check", str(spec)]) == (2 if "\x00" in path else 1)
        err = capsys.readouterr().err
        assert "error[E10" in err and "Traceback" not in err
        assert "\x1b" not in err  # no terminal escape reaches the terminal


def test_github_annotations_cannot_be_forged_by_a_file_name(tmp_path, capsys):
    spec = write(tmp_path, HEAD + "  relu\n  conv(0, k=1)" + TAIL,
                 "x\n::warning file=forged::pwned.arch")
    assert main(["check", "--format", "github", str(spec)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("::error file=")
    assert "::warning" not in lines[0].split("::", 2)[1]


# ---------------------------------------------------------------- atomic writes


@pytest.mark.parametrize("command", ["compile", "diagram"])
def test_a_failing_command_leaves_the_output_untouched(tmp_path, capsys, command):
    out = tmp_path / ("out.py" if command == "compile" else "out.dot")
    out.write_text("precious\n")
    bad = write(tmp_path, HEAD + "  conv(0, k=1)" + TAIL)
    assert main([command, str(bad), "-o", str(out)]) == 1
    assert out.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["spec.arch", out.name])
    capsys.readouterr()


def test_compile_interrupted_while_writing_leaves_nothing_behind(tmp_path, capsys, monkeypatch):
    """The write itself fails (disk full, a signal) after the temporary file was made."""
    import archspec.output

    out = tmp_path / "out.py"
    out.write_text("precious\n")
    spec = write(tmp_path, HEAD + "  relu" + TAIL)

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(archspec.output.os, "replace", fail)
    assert main(["compile", str(spec), "-o", str(out)]) == 2
    assert out.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.py", "spec.arch"]
    assert "No space left" in capsys.readouterr().err


def test_compile_that_fails_after_checking_leaves_the_output_untouched(tmp_path, capsys,
                                                                       monkeypatch):
    import archspec.torch_source

    out = tmp_path / "out.py"
    out.write_text("precious\n")
    spec = write(tmp_path, HEAD + "  relu" + TAIL)

    def broken(network, path):
        raise RuntimeError("generator bug")

    monkeypatch.setattr(archspec.torch_source, "generate", broken)
    assert main(["compile", str(spec), "-o", str(out)]) == 2
    assert out.read_text() == "precious\n"
    assert "internal error" in capsys.readouterr().err


# ---------------------------------------------------------------- determinism

_ALL_OUTPUTS = r"""
import contextlib, glob, io, json, os, sys
from archspec.cli import main
outputs = {}
def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    strip = lambda text: text.replace(sys.argv[1], "OUT")  # the folder differs per run
    outputs[strip(" ".join(argv))] = [status, strip(out.getvalue()), strip(err.getvalue())]
specs = sorted(glob.glob("specs/*.arch"))
broken = sorted(glob.glob("tests/broken/*.arch"))
run("check", "--format", "json", *specs, *broken)
run("check", "--format", "github", *specs, *broken)
run("check", *specs, *broken)
for spec in specs:
    for fmt in ("table", "markdown", "csv", "json"):
        run("summary", spec, "--format", fmt, "--count", "all", "--rf", "--depth", "3")
    run("compile", spec)
    run("diagram", spec, "-o", sys.argv[1] + "/" + os.path.basename(spec) + ".dot")
    outputs[spec + ".dot"] = open(sys.argv[1] + "/" + os.path.basename(spec) + ".dot").read()
run("diff", "specs/resnet.arch:resnet18", "specs/resnet.arch:resnet34")
json.dump(outputs, sys.stdout)
"""


@pytest.mark.slow
def test_outputs_are_identical_under_two_hash_seeds(tmp_path):
    """check (json, github, text), summary (every format), compile, diagram (DOT) and diff:
    byte for byte the same in two processes with different string hashing."""
    results = []
    for seed in ("0", "4242"):
        folder = tmp_path / seed
        folder.mkdir()
        env = dict(os.environ, PYTHONHASHSEED=seed)
        proc = subprocess.run([sys.executable, "-c", _ALL_OUTPUTS, str(folder)], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=300, check=True)
        results.append(json.loads(proc.stdout))
    first, second = results
    assert first.keys() == second.keys()
    for key in first:
        assert first[key] == second[key], key
    assert all(status == 0 for key, (status, *_) in
               ((k, v) for k, v in first.items() if k.startswith("compile")))


# ---------------------------------------------------------------- the package itself


# The one module allowed to import code: `compile --verify` imports the file archspec itself
# just generated (from a private temporary folder) to compare it with build().
IMPORTS_GENERATED_CODE = {"torch_backend.py": {"importlib"}}


def test_no_eval_exec_or_dynamic_import_in_the_package():
    """No builtin that runs or loads code from a string is called anywhere in archspec/."""
    banned = {"eval", "exec", "compile", "__import__", "execfile", "input", "breakpoint"}
    found = []
    for path in sorted((ROOT / "archspec").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            name = None
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                name = node.func.id
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                    node.value.id == "builtins":
                name = node.attr
            elif isinstance(node, ast.Name) and node.id in {"eval", "exec", "__import__"}:
                name = node.id
            if name in banned:
                found.append(f"{path.name}:{node.lineno}: {name}")
            if isinstance(node, ast.Import):
                modules = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):  # importlib only for its resources
                modules = {(node.module or "").split(".")[0]} - (
                    {"importlib"} if [a.name for a in node.names] == ["resources"] else set())
            else:
                continue
            modules -= IMPORTS_GENERATED_CODE.get(path.name, set())
            if modules & {"pickle", "marshal", "shelve", "importlib"}:
                found.append(f"{path.name}:{node.lineno}: import {sorted(modules)}")
    assert found == []


def test_parser_cache_is_private():
    """Lark unpickles its cache: it must not live in the shared temporary folder."""
    import tempfile

    from archspec.parse import cache_file

    cache = cache_file("parser", "", {})
    if cache is False:
        return
    folder = os.path.dirname(cache)
    assert os.path.realpath(folder) != os.path.realpath(tempfile.gettempdir())
    info = os.stat(folder)
    assert info.st_uid == os.getuid() and not info.st_mode & 0o022
