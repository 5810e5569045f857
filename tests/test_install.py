"""Install hygiene: LICENSE is the MIT licence pyproject declares, word for word as pytest
ships it, and the README's install lines (a virtual environment of its own, because Spack's
`archspec` has the same name) install and run in a real bash, and tools/test.sh installs into
the virtual environment it creates, not into the active Python."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _words(text: str) -> str:
    return " ".join(text.split())


def _mit_terms(text: str) -> str:
    """The licence's terms: everything from the grant on, whitespace aside."""
    words = _words(text)
    return words[words.index("Permission is hereby granted"):]


def test_license_is_the_mit_licence_pyproject_declares():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    assert (declared["text"] if isinstance(declared, dict) else declared) == "MIT"
    text = (ROOT / "LICENSE").read_text()
    assert text.splitlines()[0] == "MIT License"
    assert re.search(r"^Copyright \(c\) 2026 the archspec authors$", text, re.MULTILINE)
    pytest_dist = importlib.metadata.distribution("pytest")
    assert "MIT" in (pytest_dist.metadata["License-Expression"] or
                     pytest_dist.metadata["License"] or "")
    reference = next(f for f in pytest_dist.files if f.name == "LICENSE").read_text()
    assert _mit_terms(text) == _mit_terms(reference)


def _quickstart_install() -> str:
    """The first sh block of the README's Quickstart: the venv and the first check."""
    quickstart = README[README.index("## Quickstart\n"):README.index("## An example\n")]
    return re.search(r"```sh\n(.*?)```", quickstart, re.DOTALL).group(1)


def test_readme_says_why_it_installs_into_a_virtual_environment():
    quickstart = README[README.index("## Quickstart\n"):README.index("## An example\n")]
    assert "python -m venv .venv && . .venv/bin/activate && pip install ." in \
        _quickstart_install()
    assert "Spack" in quickstart and "conda's base environment" in quickstart


@pytest.mark.slow
def test_readme_install_lines_run_in_bash(tmp_path):
    """In a copy of the project, with `python` this test's Python: the package lands in
    .venv (not the Python that made it), and its `archspec` command checks GoogLeNet."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    project = tmp_path / "archspec"
    shutil.copytree(ROOT, project, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "node_modules", "__pycache__", "*.egg-info", "build", ".*_cache"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    script = "set -e\n" + _quickstart_install() + \
        'cd / && python -c "import archspec, sys; print(archspec.__file__, sys.prefix)"\n'
    done = subprocess.run([bash, "-c", script], cwd=project, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "googlenet: ok" in done.stdout
    module, prefix = done.stdout.strip().splitlines()[-1].split()
    venv = project / ".venv"
    assert Path(prefix) == venv and Path(module).is_relative_to(venv)


ACTIVE_PYTHON = """#!/bin/sh
echo "active $*" >> "$LOG"
if [ "$1 $2" = "-m venv" ]; then
    mkdir -p "$3/bin"
    printf '#!/bin/sh\\necho "venv $*" >> "$LOG"\\n' > "$3/bin/python"
    chmod +x "$3/bin/python"
fi
"""


def test_test_script_installs_into_a_virtual_environment_it_creates(tmp_path):
    """tools/test.sh in a copy of tools/, on a PATH where Graphviz, zsh and Chromium are
    there and `python3`/`python` (the active Python) only log what they are asked: the
    active Python creates .venv-test and nothing else; pip and pytest run in .venv-test."""
    sh = shutil.which("sh")
    if sh is None:
        pytest.skip("no sh")
    shutil.copytree(ROOT / "tools", tmp_path / "project" / "tools")
    path = tmp_path / "bin"
    path.mkdir()
    for tool in ("dirname", "id", "mkdir", "chmod"):
        (path / tool).symlink_to(shutil.which(tool))
    for present in ("dot", "zsh", "chromium"):
        (path / present).write_text("#!/bin/sh\n")
        (path / present).chmod(0o755)
    for active in ("python3", "python"):
        (path / active).write_text(ACTIVE_PYTHON)
        (path / active).chmod(0o755)
    log = tmp_path / "log"
    env = {"PATH": str(path), "LOG": str(log), "HOME": str(tmp_path)}
    for _ in range(2):  # the second run reuses .venv-test
        done = subprocess.run([sh, "tools/test.sh", "-k", "fmt"], cwd=tmp_path / "project",
                              env=env, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert [c for c in calls if c.startswith("active ")] == ["active -m venv .venv-test"]
    installs = [c.split()[4] for c in calls if c.startswith("venv -m pip install ")]
    assert installs == [".[test]", ".[test]"]
    assert sum(c.startswith("venv -m pytest ") and c.endswith(" -k fmt") for c in calls) == 2
