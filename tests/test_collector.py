"""The cyclic collector: off while a check runs and for the command's whole process, back as
it was for in-process callers, and never at the cost of output or of unbounded memory."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from archspec import check_file, cli, limits

SPECS = Path(__file__).resolve().parent.parent / "specs"


@pytest.fixture
def collector_on():
    gc.enable()
    yield
    gc.enable()


def test_a_check_runs_without_the_collector_and_puts_it_back(collector_on, monkeypatch):
    seen = []
    real = limits.charge

    def charge(*args, **kwargs):
        seen.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr("archspec.check.charge", charge)
    check_file(SPECS / "lenet.arch")
    assert seen and not any(seen)
    assert gc.isenabled()


def test_a_check_leaves_a_collector_that_was_off_off():
    gc.disable()
    try:
        check_file(SPECS / "lenet.arch")
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_collector_comes_back_after_an_exception(collector_on):
    with pytest.raises(ZeroDivisionError), limits.collector_paused():
        assert not gc.isenabled()
        raise ZeroDivisionError
    assert gc.isenabled()


def test_main_in_process_leaves_the_collector_on(collector_on, capsys):
    assert cli.main(["check", "-q", str(SPECS / "lenet.arch")]) == 0
    assert gc.isenabled()


def test_files_on_one_command_line_do_not_pile_up_garbage(monkeypatch):
    monkeypatch.setattr(limits, "PILED_UP_OBJECTS", 1000)
    gc.disable()
    try:
        for _ in range(5000):  # cycles that only the collector frees
            loop: list = []
            loop.append(loop)
        assert gc.get_count()[0] > 1000
        limits.collect_if_piled_up()
        assert gc.get_count()[0] < 1000
    finally:
        gc.enable()


# as users run it: output to a pipe is buffered (these machines set PYTHONUNBUFFERED)
BUFFERED = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}


@pytest.mark.parametrize("form", [["--format", "json"], []])
def test_the_command_exits_with_all_of_its_output(form):
    """`run` ends the process without tearing it down: whatever it wrote must arrive."""
    files = sorted(str(p) for p in SPECS.glob("*.arch"))
    done = subprocess.run([sys.executable, "-m", "archspec", "check", *form, *files],
                          capture_output=True, text=True, timeout=120, env=BUFFERED,
                          check=False)
    assert done.returncode == 0, done.stderr
    networks = sum(len(check_file(f).networks) for f in files)
    if form:
        report = json.loads(done.stdout)
        assert [entry["file"] for entry in report] == files
        assert sum(len(entry["networks"]) for entry in report) == networks
    else:
        assert done.stdout.count(": ok ") == networks


def test_the_command_reports_an_error_exit():
    done = subprocess.run([sys.executable, "-m", "archspec", "check", "no-such-file.arch"],
                          capture_output=True, text=True, timeout=60, env=BUFFERED,
                          check=False)
    assert done.returncode == 2
    assert "E103" in done.stderr


def test_the_language_server_runs_with_the_collector(monkeypatch):
    seen = []
    monkeypatch.setattr("archspec.lsp.serve", lambda: seen.append(gc.isenabled()))
    gc.disable()
    try:
        assert cli.run_lsp(None) == 0
    finally:
        gc.enable()
    assert seen == [True]


# the command, saying `scan` each time something reads every installed package's metadata
COUNT_SCANS = """
import importlib.metadata as metadata, sys
real = metadata.distributions
metadata.distributions = lambda *a, **k: sys.stderr.write("scan\\n") and real(*a, **k)
from archspec import cli
sys.argv = ["archspec", "check", "-q", sys.argv[1]]
cli.run()
"""


@pytest.mark.parametrize(("setting", "scanned"), [(None, False), ("", True)])
def test_the_command_does_not_look_for_pydantic_plugins(setting, scanned):
    """Unless the environment asks for them (here: an empty PYDANTIC_DISABLE_PLUGINS)."""
    env = {k: v for k, v in BUFFERED.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    if setting is not None:
        env["PYDANTIC_DISABLE_PLUGINS"] = setting
    done = subprocess.run([sys.executable, "-c", COUNT_SCANS, str(SPECS / "lenet.arch")],
                          capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert ("scan" in done.stderr.split()) == scanned
