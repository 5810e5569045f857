"""The hooks of .pre-commit-hooks.yaml run as pre-commit runs them: each hook's entry, split
as a shell would, then its args, then the staged files its `files` pattern selects; the hook
fails on a non-zero exit or when it changed a file; and, with pre-commit installed, pre-commit
itself runs them from this checkout (`pre-commit try-repo`)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from archspec.fmt import format_source

ROOT = Path(__file__).resolve().parent.parent
HOOKS = {hook["id"]: hook for hook in
         yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))}
MESSY = "network tiny(){\ninput [3,8,8]\n  conv(4,k=3,p=1)  relu }\n"


def _run_hook(hook_id: str, files: list[Path]) -> tuple[bool, list[str]]:
    """Whether the hook passes on these files, and the contents of the files afterwards.
    The entry's `archspec` is this checkout's (python -m archspec)."""
    hook = HOOKS[hook_id]
    selected = [str(f) for f in files if re.search(hook["files"], str(f))]
    before = [f.read_bytes() for f in files]
    command, *rest = shlex.split(hook["entry"])
    assert command == "archspec"
    done = subprocess.run([sys.executable, "-m", "archspec", *rest, *hook.get("args", []),
                           *selected], capture_output=True, text=True, check=False, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    after = [f.read_bytes() for f in files]
    return done.returncode == 0 and before == after, [a.decode() for a in after]


def test_both_hooks_are_declared_for_arch_files():
    assert set(HOOKS) == {"archspec-check", "archspec-fmt"}
    for hook in HOOKS.values():
        assert hook["language"] == "python"
        assert re.search(hook["files"], "model.arch") and not re.search(hook["files"], "a.py")


def test_fmt_hook_formats_then_passes(tmp_path: Path):
    spec, other = tmp_path / "tiny.arch", tmp_path / "notes.txt"
    spec.write_text(MESSY, encoding="utf-8")
    other.write_text(MESSY, encoding="utf-8")
    passed, contents = _run_hook("archspec-fmt", [spec, other])
    assert not passed  # it rewrote the spec, so the commit stops for a look
    assert contents[0] != MESSY and contents[1] == MESSY
    assert _run_hook("archspec-fmt", [spec, other])[0]


def test_check_hook_passes_good_specs_and_fails_broken_ones(tmp_path: Path):
    good = tmp_path / "lenet.arch"
    shutil.copy(ROOT / "specs" / "lenet.arch", good)
    assert _run_hook("archspec-check", [good])[0]
    broken = tmp_path / "broken.arch"
    broken.write_text(MESSY.replace("conv(4,", "conv(0,"), encoding="utf-8")
    assert not _run_hook("archspec-check", [good, broken])[0]


def _try_repo(work: Path, hook_id: str, *files: str) -> subprocess.CompletedProcess:
    """Real pre-commit running this checkout's hook (its uncommitted changes too) on files
    of the git repository `work`, as a user's commit would; pre-commit installs archspec
    into an environment of its own under work/../cache (once)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PRE_COMMIT_HOME"] = str(work.parent / "cache")
    return subprocess.run([sys.executable, "-m", "pre_commit", "try-repo", str(ROOT), hook_id,
                           "--files", *files], cwd=work, env=env, capture_output=True,
                          text=True, check=False, timeout=600)


@pytest.mark.slow
def test_hooks_under_real_pre_commit(tmp_path: Path):
    pytest.importorskip("pre_commit")
    if shutil.which("git") is None:
        pytest.skip("no git")
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(ROOT / "specs" / "lenet.arch", work / "lenet.arch")
    (work / "tiny.arch").write_text(MESSY, encoding="utf-8")
    (work / "broken.arch").write_text(MESSY.replace("conv(4,", "conv(0,"), encoding="utf-8")
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    subprocess.run(["git", "add", "."], cwd=work, check=True)
    fmt = _try_repo(work, "archspec-fmt", "tiny.arch")
    assert fmt.returncode == 1 and "files were modified by this hook" in fmt.stdout
    assert (work / "tiny.arch").read_text() == format_source(MESSY)
    assert _try_repo(work, "archspec-fmt", "tiny.arch", "lenet.arch").returncode == 0
    assert _try_repo(work, "archspec-check", "lenet.arch").returncode == 0
    broken = _try_repo(work, "archspec-check", "lenet.arch", "broken.arch")
    assert broken.returncode == 1 and "broken.arch" in broken.stdout
