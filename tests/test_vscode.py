"""The VS Code extension in editors/vscode/ points at files that exist and starts the real
`archspec lsp` subcommand; `npm install` and `vsce package` copy the TextMate grammar into
the extension's folder, where VS Code reads it (the grammar file is another part's: checked
where present).
With node, extension.js itself runs (against stand-ins for VS Code's modules) and the
command it hands the language client starts a server that answers `initialize`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXTENSION = ROOT / "editors" / "vscode"
GRAMMAR = ROOT / "editors" / "textmate" / "arch.tmLanguage.json"
PACKAGE = json.loads((EXTENSION / "package.json").read_text())
CONTRIBUTES = PACKAGE["contributes"]
# activate() with VS Code's modules replaced: prints what it gave the LanguageClient
ACTIVATE = """
const Module = require("module");
const seen = {};
const stubs = {
  vscode: {workspace: {getConfiguration: () => ({get: () => process.argv[2]}),
                       onDidChangeConfiguration: () => ({})}, window: {}},
  "vscode-languageclient/node": {LanguageClient: class {
    constructor(id, name, server, client) { Object.assign(seen, {server, client}); }
    start() { return Promise.resolve(); } }},
};
const load = Module._load;
Module._load = function (request, ...rest) {
  return request in stubs ? stubs[request] : load.call(this, request, ...rest);
};
require(process.argv[1]).activate({subscriptions: []});
console.log(JSON.stringify(seen));
"""


def _server_args() -> list[str]:
    """The arguments extension.js passes to the `archspec.path` command."""
    source = (EXTENSION / PACKAGE["main"]).read_text()
    return json.loads(re.search(r"const SUBCOMMAND = (\[.*?\]);", source).group(1))


def test_the_extension_files_it_names_exist():
    assert (EXTENSION / PACKAGE["main"]).is_file()
    (language,) = CONTRIBUTES["languages"]
    assert language["id"] == "arch" and ".arch" in language["extensions"]
    configuration = json.loads((EXTENSION / language["configuration"]).read_text())
    assert configuration["comments"]["lineComment"] == "#"


def test_the_grammar_is_the_textmate_one():
    (grammar,) = CONTRIBUTES["grammars"]
    assert grammar["language"] == "arch"
    assert (EXTENSION / grammar["path"]).resolve().is_relative_to(EXTENSION)  # vsce packs
    # nothing outside the extension's folder: npm install copies the grammar in (below)
    if not GRAMMAR.exists():
        pytest.skip("the TextMate grammar is not in this checkout")
    assert json.loads(GRAMMAR.read_text())["scopeName"] == grammar["scopeName"]


@pytest.mark.skipif(shutil.which("npm") is None, reason="needs npm")
@pytest.mark.parametrize("script", ["prepare", "vscode:prepublish"])  # npm install, vsce package
def test_install_and_packaging_copy_the_grammar_in(tmp_path, script):
    if not GRAMMAR.exists():
        pytest.skip("the TextMate grammar is not in this checkout")
    copy = tmp_path / "editors"
    shutil.copytree(ROOT / "editors", copy, ignore=shutil.ignore_patterns("node_modules",
                                                                          "syntaxes"))
    subprocess.run(["npm", "run", "--silent", script], cwd=copy / "vscode", check=True,
                   capture_output=True, timeout=120)
    (grammar,) = CONTRIBUTES["grammars"]
    assert (copy / "vscode" / grammar["path"]).read_bytes() == GRAMMAR.read_bytes()


def test_the_server_command_is_the_cli_subcommand():
    args = _server_args()
    default = CONTRIBUTES["configuration"]["properties"]["archspec.path"]["default"]
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get(default) == "archspec.cli:run"  # the command pip installs
    proc = subprocess.run([sys.executable, "-m", "archspec", *args, "--help"],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    assert proc.returncode == 0 and "language server" in proc.stdout.lower()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
def test_activate_starts_a_server_that_answers(tmp_path):
    pytest.importorskip("pygls")
    from test_lsp import Client

    archspec = tmp_path / "archspec"  # what `archspec.path` names: this checkout's CLI
    archspec.write_text(f"#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m archspec "
                        '"$@"\n')
    archspec.chmod(0o755)
    proc = subprocess.run(["node", "-e", ACTIVATE, str(EXTENSION / PACKAGE["main"]),
                           str(archspec)], capture_output=True, text=True, check=True)
    seen = json.loads(proc.stdout)
    assert seen["client"]["documentSelector"] == [{"language": "arch"}]
    run = seen["server"]["run"]
    client = Client([run["command"], *run["args"]], subprocess.DEVNULL)
    answer = client.request("initialize", {"processId": None, "capabilities": {}})
    assert answer["serverInfo"]["name"] == "archspec"
    assert client.close() == 0


def test_the_documented_editor_configurations_run_the_server():
    """docs/editors.md's Neovim and Helix lines start `archspec lsp`, the command the VS
    Code extension runs."""
    tomllib = pytest.importorskip("tomllib")
    doc = (ROOT / "docs" / "editors.md").read_text()
    lua = re.search(r"```lua\n(.*?)```", doc, re.DOTALL).group(1)
    neovim = re.findall(r'"([^"]+)"', re.search(r"cmd = \{(.*?)\}", lua).group(1))
    helix = tomllib.loads(re.search(r"```toml\n(.*?)```", doc, re.DOTALL).group(1))
    server = helix["language-server"]["archspec"]
    args = _server_args()
    assert neovim == [server["command"], *server["args"]] == ["archspec", *args]
    assert helix["language"][0]["file-types"] == ["arch"]
