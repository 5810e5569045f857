"""Hostile files, paths and sizes (issue 16): spec arguments that are links or special files,
paths that would forge lines of output, outputs that would replace an input or a device,
Python class names from hostile block names, a BOM, path objects, an ASCII console."""

from __future__ import annotations

import ast
import os
import pathlib
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import archspec
from archspec import check_file
from archspec.cli import main
from archspec.names import GENERATED_GLOBALS, PYTHON_NAMES, ClassNames, class_name

ROOT = Path(__file__).resolve().parent.parent
GOOD = "network n() {\n  input [3, 8, 8]\n  conv(4, k=3, p=1) relu\n  global_avgpool\n}\n"
BAD = "network n() {\n  input [3, 8, 8]\n  conv(4, k=3, p=1) relu\n  linear(10)\n}\n"
SECRET = "AWS_SECRET_ACCESS_KEY=hunter2\n"


def child(argv: list[str], **env: str) -> subprocess.CompletedProcess:
    """Run Python in a child process on this tree (with a generous timeout, as a guard)."""
    return subprocess.run([sys.executable, *argv], capture_output=True, timeout=120,
                          check=False, env=dict(os.environ, PYTHONPATH=str(ROOT), **env))


def codes(result) -> list[str]:
    return [d.code for d in result.diagnostics]


def secret_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    (folder / "credentials").write_text(SECRET)
    return folder


# ---------------------------------------------------------------- spec arguments


def test_link_to_a_file_outside_its_folder_is_refused(tmp_path, capsys):
    secret = secret_dir(tmp_path) / "credentials"
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "model.arch").symlink_to(secret)
    assert main(["check", str(specs / "model.arch")]) == 2
    captured = capsys.readouterr()
    assert "hunter2" not in captured.out + captured.err
    assert "[E109]" in captured.err and "Traceback" not in captured.err
    result = check_file(specs / "model.arch")
    assert codes(result) == ["E109"] and result.unreadable and not result.sources
    assert "outside" in result.diagnostics[0].message and "--allow-dir" in \
        result.diagnostics[0].hint


def test_link_to_proc_environ_is_refused(tmp_path, capsys):
    link = tmp_path / "model.arch"
    link.symlink_to("/proc/self/environ")
    assert main(["check", str(link)]) == 2
    captured = capsys.readouterr()
    assert "[E109]" in captured.err and "PATH=" not in captured.out + captured.err


def test_proc_file_given_directly_is_refused(capsys):
    assert main(["check", "/proc/self/environ"]) == 2
    captured = capsys.readouterr()
    assert "[E108]" in captured.err and "PATH=" not in captured.out + captured.err


def test_link_inside_its_folder_or_an_allowed_dir_is_read(tmp_path, capsys):
    (tmp_path / "real.arch").write_text(GOOD)
    (tmp_path / "model.arch").symlink_to("real.arch")
    assert main(["check", str(tmp_path / "model.arch")]) == 0
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "net.arch").write_text(GOOD)
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "net.arch").symlink_to(shared / "net.arch")
    assert main(["check", str(specs / "net.arch")]) == 2
    assert main(["check", str(specs / "net.arch"), "--allow-dir", str(shared)]) == 0


def test_fifo_is_refused_without_blocking(tmp_path, capsys):
    fifo = tmp_path / "model.arch"
    os.mkfifo(fifo)
    # In a child with a generous timeout: opening a FIFO for reading would block forever.
    code = ("import sys; from archspec.cli import main; sys.exit(main(['check', sys.argv[1]]))")
    done = child(["-c", code, str(fifo)])
    assert done.returncode == 2 and b"[E108]" in done.stderr and b"FIFO" in done.stderr


def device(folder: Path) -> Path:
    """A character device like /dev/null (major 1, minor 3), or skip where none can be made."""
    path = folder / "null"
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot make a device node here: {exc}")
    return path


def test_directory_and_device_are_refused(tmp_path, capsys):
    assert main(["check", str(tmp_path)]) == 2
    assert "[E108]" in capsys.readouterr().err
    assert main(["check", str(device(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert "[E108]" in err and "device" in err


def test_importing_a_directory_says_so(tmp_path):
    (tmp_path / "lib.arch").mkdir()
    spec = tmp_path / "spec.arch"
    spec.write_text('import "lib.arch"\n' + GOOD)
    result = check_file(spec)
    assert [(d.code, d.span.line, d.span.col) for d in result.diagnostics] == [("E108", 1, 1)]
    assert "directory" in result.diagnostics[0].message


def test_binary_file_is_not_echoed(tmp_path, capsys):
    spec = tmp_path / "model.arch"
    spec.write_bytes(b"PATH=/usr/bin\x00HOME=/root\x00")
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "[E103]" in err and "HOME=/root" not in err and "/usr/bin" not in err


# ---------------------------------------------------------------- paths in text output


FORGED = "x\n::error title=forged::pwned\n.arch"


def _no_forged_line(text: str) -> None:
    assert not any(line.startswith("::") for line in text.splitlines()), text
    assert "\\n::error title=forged::pwned\\n" in text


def test_file_name_cannot_forge_lines_of_check_output(tmp_path, capsys):
    good = tmp_path / FORGED
    good.write_text(GOOD)
    assert main(["check", str(good)]) == 0
    _no_forged_line(capsys.readouterr().out)
    good.write_text(BAD)
    assert main(["check", str(good)]) == 1
    _no_forged_line(capsys.readouterr().err)


def test_relative_file_name_cannot_start_a_workflow_command(tmp_path, monkeypatch, capsys):
    """Found by the fuzzer: a file named `::error title=x::.arch`, given relative, began the
    `ok` line and every diagnostic header with `::error`. It is shown as `./::error ...`."""
    monkeypatch.chdir(tmp_path)
    name = "::error title=x::.arch"
    (tmp_path / name).write_text(GOOD)
    assert main(["check", name]) == 0
    out = capsys.readouterr().out
    assert out.startswith("./::error title=x::.arch: ")
    (tmp_path / name).write_text(BAD)
    assert main(["check", name]) == 1
    err = capsys.readouterr().err
    assert not any(line.startswith("::") for line in err.splitlines()), err
    assert "./::error title=x::.arch:" in err


def test_file_name_cannot_forge_notes(tmp_path, capsys):
    """The call chain of a block's error names the file: `called at FILE:4:3`."""
    spec = tmp_path / FORGED
    spec.write_text("block b() {\n  linear(10)\n}\nnetwork n() {\n  input [3, 8, 8]\n  b\n}\n")
    assert main(["check", str(spec)]) == 1
    err = capsys.readouterr().err
    assert "[E307]" in err and "called at" in err
    _no_forged_line(err)


def test_file_name_cannot_forge_lines_of_summary_diff_compile_and_diagram(tmp_path, capsys):
    good = tmp_path / FORGED
    good.write_text(GOOD)
    assert main(["diff", str(good), str(good)]) == 0
    _no_forged_line(capsys.readouterr().out)
    out = tmp_path / "o\n::error title=forged::pwned\n.py"
    assert main(["compile", str(good), "-o", str(out)]) == 0
    _no_forged_line(capsys.readouterr().err)
    assert main(["diagram", str(good), "-o", str(tmp_path / (FORGED + ".dot"))]) == 0
    _no_forged_line(capsys.readouterr().err)


# ---------------------------------------------------------------- outputs


def test_compile_refuses_to_overwrite_the_spec(tmp_path, capsys):
    spec = tmp_path / "in.arch"
    spec.write_text(GOOD)
    assert main(["compile", str(spec), "-o", str(spec)]) == 2
    assert spec.read_text() == GOOD
    assert "this command reads it" in capsys.readouterr().err
    alias = tmp_path / "alias.py"
    alias.symlink_to(spec)
    assert main(["compile", str(spec), "-o", str(alias)]) == 2
    assert spec.read_text() == GOOD and alias.is_symlink()


def test_compile_refuses_to_overwrite_an_imported_file(tmp_path, capsys):
    lib = tmp_path / "lib.arch"
    lib.write_text("block b() {\n  relu\n}\n")
    spec = tmp_path / "in.arch"
    spec.write_text('import "lib.arch"\n' + GOOD.replace("relu", "b"))
    assert main(["compile", str(spec), "-o", str(lib)]) == 2
    assert lib.read_text() == "block b() {\n  relu\n}\n"
    assert "this command reads it (the spec or a file it imports" in capsys.readouterr().err


def test_output_that_is_not_a_regular_file_is_refused(tmp_path, capsys):
    spec = tmp_path / "in.arch"
    spec.write_text(GOOD)
    fifo = tmp_path / "out.py"
    os.mkfifo(fifo)
    assert main(["compile", str(spec), "-o", str(fifo)]) == 2
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert "FIFO" in capsys.readouterr().err
    folder = tmp_path / "d.dot"
    folder.mkdir()
    assert main(["diagram", str(spec), "-o", str(folder)]) == 2
    assert folder.is_dir()
    link = tmp_path / "link.py"
    link.symlink_to(tmp_path / "elsewhere.py")
    assert main(["compile", str(spec), "-o", str(link)]) == 2
    assert link.is_symlink() and not (tmp_path / "elsewhere.py").exists()
    assert "symbolic link" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".archspec-")) == []


def test_a_device_is_never_replaced(tmp_path, capsys):
    """As root, `-o /dev/null` replaced the device node with a regular file."""
    spec = tmp_path / "in.arch"
    spec.write_text(GOOD)
    null = device(tmp_path)
    before = os.lstat(null)
    assert main(["compile", str(spec), "-o", str(null)]) == 2
    after = os.lstat(null)
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino


def test_sigterm_while_writing_leaves_no_temporary_file(tmp_path):
    code = (
        "import os, signal, sys\n"
        "import archspec.output as output\n"
        "def replace(src, dst):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    for _ in range(1000): pass\n"
        "output.os.replace = replace\n"
        "output.write_atomic(sys.argv[1], 'data')\n")
    target = tmp_path / "out.py"
    done = child(["-c", code, str(target)])
    assert done.returncode == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- class names


@pytest.mark.parametrize("name, expected", [
    ("bottleneck", "Bottleneck"), ("dense_layer", "DenseLayer"), ("resnet", "ResNet"), ("googlenet", "GoogLeNet"), ("vgg", "VGG"),
    ("resNet", "ResNet"), ("vgg_16", "VGG16")])
def test_class_name_camel_cases(name, expected):
    assert class_name(name, set()) == expected


HOSTILE = ["_9", "_8", "_0x", "__", "_", "9", "", "none", "true", "false", "nn", "torch", "f",
           "F", "exception", "type_error", "padded_conv2d", "dense_concat", "ordered_dict",
           "init_weights", "class", "ﬁ", "ñet", "ǆ", "ŉ", "١٢", "x\n", "a-b", "Module"]


@pytest.mark.parametrize("name", HOSTILE)
def test_class_name_is_always_a_safe_identifier(name):
    import keyword
    import unicodedata

    result = class_name(name, set())
    assert result.isidentifier() and result == unicodedata.normalize("NFKC", result)
    assert not keyword.iskeyword(result) and not keyword.issoftkeyword(result)
    assert result not in PYTHON_NAMES and result not in GENERATED_GLOBALS
    assert result not in {"nn", "torch", "F"}
    compile(f"class {result}:\n    pass\n", "<test>", "exec")


def test_class_names_are_distinct():
    taken: set[str] = set()
    names = ClassNames()  # the same names, each base's numbers continued, not tried again
    wanted = HOSTILE + ["bottleneck", "Bottleneck", "bottle_neck", "bottleneck2", "_9"] * 3
    for i, name in enumerate(wanted):
        result = class_name(name, taken)
        assert result.isidentifier() and result not in taken, (name, result)
        taken.add(result)
        assert names.get(("key", i), name) == result


def test_blocks_named_like_numbers_compile_to_valid_python(tmp_path, capsys):
    """Blocks named `_9`, `_8`, `_0x` became `class 82(nn.Module):` in compiled files."""
    spec = tmp_path / "digits.arch"
    spec.write_text("block _9() { conv(4, k=1) }\nblock _8() { relu }\nblock _0x() { relu }\n"
                    "network n() {\n  input [3, 8, 8]\n  a: _9\n  b: _8\n  c: _0x\n}\n")
    assert main(["compile", str(spec)]) == 0
    tree = ast.parse(capsys.readouterr().out)
    classes = [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
    assert len(classes) == len(set(classes)) == 4


# ---------------------------------------------------------------- smaller ones


def test_bom_is_skipped_and_positions_are_unchanged(tmp_path):
    spec = tmp_path / "bom.arch"
    spec.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    assert codes(check_file(spec)) == []
    spec.write_bytes(b"\xef\xbb\xbf" + b"network n() { input [3, 8, 8] linear(10) }\n")
    diag = check_file(spec).diagnostics[0]
    assert (diag.code, diag.span.line, diag.span.col) == ("E307", 1, 31)


def test_path_objects_are_accepted_everywhere(tmp_path):
    one, two = tmp_path / "one.arch", tmp_path / "two.arch"
    two.write_text("block b() {\n  linear(10)\n}\n")
    one.write_text('import "two.arch"\nnetwork n() {\n  input [3, 8, 8]\n  b\n  relu\n'
                   '  linear(q)\n}\n')
    with pytest.raises(archspec.ArchError) as caught:
        archspec.load(pathlib.Path(one))
    assert {d.span.file for d in caught.value.diagnostics} == {str(one), str(two)}
    assert check_file(pathlib.Path(one)).errors
    good = tmp_path / "good.arch"
    good.write_text(GOOD)
    assert archspec.load(pathlib.Path(good)).params > 0


def test_ascii_console_degrades_gracefully(tmp_path):
    """stdout of an ASCII console is strict: a non-ASCII file name in the ok line was an
    `internal error: UnicodeEncodeError`."""
    spec = tmp_path / "\u00fcn\u00efcode.arch"
    spec.write_text(GOOD.replace("relu", "relu  # \u2713"), encoding="utf-8")
    env = {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": "",
           "PYTHONCOERCECLOCALE": "0"}
    for args in (["check", str(spec)], ["summary", str(spec)], ["compile", str(spec)],
                 ["diff", str(spec), str(spec)]):
        done = child(["-m", "archspec", *args], **env)
        err = done.stderr.decode("ascii", "replace")
        assert done.returncode == 0 and "internal error" not in err, (args, err)
    out = child(["-m", "archspec", "check", str(spec)], **env).stdout.decode("ascii")
    assert "code.arch: n: ok" in out and "\\" in out  # the name's bytes shown escaped
