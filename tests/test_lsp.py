"""`archspec lsp` is a real language server: these tests start the server process
(`python -m archspec lsp`) and speak JSON-RPC to it over its stdin and stdout with a client
written here (Content-Length framing, as the protocol specifies), and compare what it
answers with the CLI (`archspec check --format json`) and with the checker's IR."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

from archspec.check import check_file, check_text
from archspec.expand import op_signature
from archspec.ir import iter_layers
from archspec.ops import REGISTRY
from archspec.symbolic import shape_formula

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
WAIT = 120  # seconds: a guard against a hung server, not a time limit on an answer

BROKEN = """\
block unit(c: int, unused: int = 3) {
  conv(c, k=3, p=1)  batchnorm  relu
}

network broken() {
  input [3, 32, 32]
  unit(16)
  convv(32, k=3)
  add { { conv(8, k=3, p=1) } { } }
  linear(10)
}
"""
FIXED = BROKEN.replace("convv", "conv").replace("conv(8, k=3, p=1)", "conv(32, k=3, p=1)")


class Client:
    """A JSON-RPC client over a server process's pipes: requests wait for their answer;
    notifications from the server are kept in order as they come."""

    def __init__(self, command: list[str], stderr) -> None:
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=stderr, cwd=ROOT)
        self.messages: queue.Queue = queue.Queue()
        self.notifications: list[dict] = []
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        stream = self.process.stdout
        while True:
            headers = {}
            while (line := stream.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("ascii").partition(":")
                headers[name.strip().lower()] = value.strip()
            if not headers:
                return
            self.messages.put(json.loads(stream.read(int(headers["content-length"]))))

    def send(self, message: dict) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()

    def notify(self, method: str, params: dict) -> None:
        self.send({"method": method, "params": params})

    def request(self, method: str, params: dict | None = None):
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        while True:
            message = self.messages.get(timeout=WAIT)
            if message.get("id") == self.next_id and "method" not in message:
                assert "error" not in message, message["error"]
                return message.get("result")
            self.notifications.append(message)

    def diagnostics(self, uri: str) -> list[dict]:
        """The next diagnostics the server publishes for `uri`."""
        while True:
            message = self.messages.get(timeout=WAIT)
            if (message.get("method") == "textDocument/publishDiagnostics"
                    and message["params"]["uri"] == uri):
                return message["params"]["diagnostics"]
            self.notifications.append(message)

    def open(self, path: Path, text: str | None = None) -> list[dict]:
        """Open a document (its text from disk unless given); the diagnostics it gets."""
        uri = path.resolve().as_uri()
        self.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri, "languageId": "arch", "version": 1,
            "text": path.read_text() if text is None else text}})
        return self.diagnostics(uri)

    def at(self, method: str, path: Path, line: int, character: int):
        """A request about a position of a document (0-based, as the protocol counts)."""
        return self.request(method, {"textDocument": {"uri": path.resolve().as_uri()},
                                     "position": {"line": line, "character": character}})

    def close(self) -> int:
        self.request("shutdown")
        self.notify("exit", {})
        return self.process.wait(timeout=WAIT)


def start(stderr=subprocess.DEVNULL, flags: tuple[str, ...] = (),
          args: tuple[str, ...] = ()) -> tuple[Client, dict]:
    """A server process (`flags` for Python, `args` for `archspec lsp`), initialized."""
    pytest.importorskip("pygls")
    client = Client([sys.executable, *flags, "-m", "archspec", "lsp", *args], stderr)
    answer = client.request("initialize", {"processId": None, "rootUri": ROOT.as_uri(),
                                           "capabilities": {}})
    client.notify("initialized", {})
    return client, answer


@pytest.fixture(scope="module")
def server():
    client, answer = start()
    client.capabilities = answer["capabilities"]
    yield client
    assert client.close() == 0


def cli_diagnostics(path: Path, inside: Path | None = None) -> list[tuple]:
    """(code, range) of each diagnostic `archspec check --format json` gives for the file
    (of those in the file `inside`, default the file itself), the range 0-based as the
    protocol counts (the specs here are ASCII)."""
    proc = subprocess.run([sys.executable, "-m", "archspec", "check", "--format", "json",
                           str(path)], capture_output=True, text=True, cwd=ROOT, check=False)
    report = json.loads(proc.stdout)
    return sorted((d["code"], (d["line"] - 1, d["column"] - 1, d["end_line"] - 1,
                               d["end_column"] - 1)) for d in report[0]["diagnostics"]
                  if Path(d["file"]) == (inside or path))


def utf16(ranges: list[tuple], text: str) -> list[tuple]:
    """CLI ranges (columns count code points) with the columns in UTF-16 code units, the
    protocol's default unit."""
    lines = text.split("\n")

    def units(line: int, col: int) -> int:
        return len(lines[line][:col].encode("utf-16-le")) // 2

    return [(code, (line, units(line, col), end_line, units(end_line, end_col)))
            for code, (line, col, end_line, end_col) in ranges]


def lsp_diagnostics(diagnostics: list[dict]) -> list[tuple]:
    return sorted((d["code"], (d["range"]["start"]["line"], d["range"]["start"]["character"],
                               d["range"]["end"]["line"], d["range"]["end"]["character"]))
                  for d in diagnostics)


def line_of(path: Path, text: str) -> int:
    """The 0-based line of the first line of the file that starts with `text`."""
    lines = path.read_text().split("\n")
    return next(i for i, line in enumerate(lines) if line.lstrip().startswith(text))


@pytest.mark.slow
def test_initialize_announces_every_feature(server):
    capabilities = server.capabilities
    for provider in ("hoverProvider", "definitionProvider", "completionProvider",
                     "documentSymbolProvider", "textDocumentSync"):
        assert capabilities.get(provider), provider


@pytest.mark.slow
def test_diagnostics_are_the_checks(server, tmp_path):
    spec = tmp_path / "broken.arch"
    spec.write_text(BROKEN)
    expected = cli_diagnostics(spec)
    assert {"E201", "W001"} <= {code for code, _ in expected}
    assert lsp_diagnostics(server.open(spec)) == expected


@pytest.mark.slow
def test_columns_are_counted_as_the_client_counts(server, tmp_path):
    spec = tmp_path / "unicode.arch"
    text = 'network n() {\n  input [3, 8, 8]\n  "\u00e9\U0001f642": conv(4)  convv(3)\n}\n'
    spec.write_text(text, encoding="utf-8")
    expected = utf16(cli_diagnostics(spec), text)
    assert expected != cli_diagnostics(spec)  # the emoji is two UTF-16 units
    assert lsp_diagnostics(server.open(spec, text)) == expected


@pytest.mark.slow
def test_allowed_folders_are_the_cli_ones(tmp_path):
    shared, project = tmp_path / "shared", tmp_path / "project"
    shared.mkdir()
    project.mkdir()
    (shared / "blocks.arch").write_text("block unit(c: int) {\n  conv(c, k=3, p=1)\n}\n")
    spec = project / "main.arch"
    spec.write_text('from "../shared/blocks.arch" import unit\n\nnetwork n() {\n'
                    "  input [3, 8, 8]\n  unit(4)\n}\n")
    refused = start(args=("--allow-dir", str(project)))[0]
    assert {d["code"] for d in refused.open(spec)} == {"E107"}
    assert refused.close() == 0
    allowed = start(args=("--allow-dir", str(shared)))[0]
    assert allowed.open(spec) == []
    assert allowed.close() == 0


@pytest.mark.slow
def test_diagnostics_in_an_imported_file_are_shown_on_it(server, tmp_path):
    helper, spec = tmp_path / "helper.arch", tmp_path / "main.arch"
    helper.write_text("block unit(c: int) {\n  conv(c, k=3, p=1)  batchnrm\n}\n")
    spec.write_text('from "helper.arch" import unit\n\nnetwork n() {\n  input [3, 8, 8]\n'
                    "  unit(4)\n  convv(3)\n}\n")
    expected = cli_diagnostics(spec, helper)
    assert expected
    assert lsp_diagnostics(server.open(spec)) == cli_diagnostics(spec)
    assert lsp_diagnostics(server.diagnostics(helper.resolve().as_uri())) == expected


@pytest.mark.slow
def test_did_change_checks_the_new_text(server, tmp_path):
    spec = tmp_path / "edited.arch"
    spec.write_text(BROKEN)
    before = server.open(spec)
    spec.write_text(FIXED)  # the CLI reads the file; the server gets the edit only
    server.notify("textDocument/didChange", {
        "textDocument": {"uri": spec.resolve().as_uri(), "version": 2},
        "contentChanges": [{"text": FIXED}]})
    after = lsp_diagnostics(server.diagnostics(spec.resolve().as_uri()))
    assert after == cli_diagnostics(spec)
    assert after != lsp_diagnostics(before)


@pytest.mark.slow
def test_hover_on_a_conv_shows_the_checked_shape(server):
    spec = SPECS / "resnet.arch"
    server.open(spec)
    line = line_of(spec, "conv1: conv(64, k=7")
    character = spec.read_text().split("\n")[line].index("conv(")
    text = server.at("textDocument/hover", spec, line, character + 1)["contents"]["value"]
    on_label = server.at("textDocument/hover", spec, line, character - 4)["contents"]["value"]
    assert on_label == text
    layers = [layer for network in check_file(spec).networks for layer in network.layers()
              if layer.span.line == line + 1 and layer.op.name == "conv"]
    assert layers
    for layer in layers:
        assert shape_formula(layer.out_shape) in text
        assert f"{layer.params:,} parameters" in text and f"{layer.macs:,} MACs" in text


@pytest.mark.slow
def test_definition_of_an_imported_block_and_file(server):
    spec, resnet = SPECS / "resnext.arch", SPECS / "resnet.arch"
    server.open(spec)
    line = line_of(spec, "variant resnext50_32x4d")
    character = spec.read_text().split("\n")[line].index("bottleneck")
    answer = server.at("textDocument/definition", spec, line, character + 2)
    assert answer["uri"] == resnet.resolve().as_uri()
    definition = line_of(resnet, "block bottleneck(")
    assert answer["range"]["start"] == {
        "line": definition,
        "character": resnet.read_text().split("\n")[definition].index("bottleneck")}
    imported = server.at("textDocument/definition", spec, line_of(spec, 'from "resnet'), 8)
    assert imported["uri"] == resnet.resolve().as_uri()


@pytest.mark.slow
def test_completion_offers_every_op_and_the_arguments(server, tmp_path):
    spec = tmp_path / "complete.arch"
    text = ("block twice(c: int) {\n  conv(c, k=3, p=1)  conv(c, k=3, p=1)\n}\n\n"
            "network n() {\n  input [3, 8, 8]\n  twice(8)\n}\n")
    server.open(spec, text)
    typing = text.replace("twice(8)", "conv(8, ")  # as the user types, it does not parse
    server.notify("textDocument/didChange", {
        "textDocument": {"uri": spec.resolve().as_uri(), "version": 2},
        "contentChanges": [{"text": typing}]})
    answer = server.at("textDocument/completion", spec, 6, len("  conv(8, "))
    labels = {item["label"] for item in answer["items"]}
    assert set(REGISTRY) <= labels
    assert "twice" in labels  # the block the document defines
    assert set(op_signature(REGISTRY["conv"]).names) <= labels
    assert {"repeat", "network", "concat"} <= labels


@pytest.mark.slow
def test_document_symbols_list_the_networks(server):
    spec = SPECS / "resnet.arch"
    server.open(spec)
    answer = server.request("textDocument/documentSymbol",
                            {"textDocument": {"uri": spec.resolve().as_uri()}})
    names = {symbol["name"] for symbol in answer}
    proc = subprocess.run([sys.executable, "-m", "archspec", "check", "--format", "json",
                           str(spec)], capture_output=True, text=True, cwd=ROOT, check=True)
    checked = {network["name"] for network in json.loads(proc.stdout)[0]["networks"]}
    assert checked and checked <= names
    assert {"basic", "bottleneck", "resnet"} <= names


@pytest.mark.slow
def test_server_never_imports_torch(tmp_path):
    log = (tmp_path / "imports.txt").open("w")
    client, _ = start(log, ("-X", "importtime"))
    spec = SPECS / "resnet.arch"
    client.open(spec)
    client.at("textDocument/hover", spec, line_of(spec, "conv1: conv(64"), 12)
    assert client.close() == 0
    log.close()
    imported = [line.split("|")[-1].strip() for line in
                (tmp_path / "imports.txt").read_text().splitlines()
                if line.startswith("import time:")]
    assert "archspec.lsp" in imported
    assert not [m for m in imported if m == "torch" or m.startswith("torch.")]


# ---------------------------------------------------------------- in process (fast)


def _analysis(text: str, tmp_path: Path):
    pytest.importorskip("pygls")
    from archspec.lsp import Analysis

    path = str(tmp_path / "spec.arch")
    result = check_text(text, path)
    program = result.program
    return Analysis(path, text, result, program.main, program.namespaces[path],
                    program.networks[path])


def test_argument_completion_follows_the_signature(tmp_path):
    from archspec.lsp import completions

    text = BROKEN.replace("unit(16)", "unit(16, )")
    analysis = _analysis(text, tmp_path)
    line = text.split("\n").index("  unit(16, )") + 1
    arguments = {item.label for item in completions(analysis, line, len("  unit(16, ") + 1)
                 if item.insert_text}
    definition = analysis.namespace["unit"].definition
    assert arguments == {p.name for p in definition.params}


def test_hover_on_a_block_call_gives_its_totals(tmp_path):
    from archspec.lsp import hover_text

    analysis = _analysis(FIXED, tmp_path)
    network = analysis.result.networks[0]
    call = network.body.children[0]
    assert call.block is not None and call.block.name == "unit"
    text = hover_text(analysis, call.span.line, call.span.col + 1)
    params = sum(layer.params for layer in call.children)
    macs = sum(layer.macs for layer in call.children)
    assert "block unit(c: int, unused: int = 3)" in text
    assert f"{params:,} parameters" in text and shape_formula(call.out_shape) in text
    assert f"{macs:,} MACs" in text


def test_hover_on_the_label_of_a_block_call_in_a_loop_gives_the_call(tmp_path):
    """`layer{i+1}: stage(...)` inside a `for`: the label names the block call, so hovering
    it shows each stage (resnet18's layer1..layer4), not the whole network."""
    from archspec.lsp import analyse_text, hover_text

    spec = SPECS / "resnet.arch"
    text = spec.read_text()
    analysis = analyse_text(str(spec), text, None)
    line = line_of(spec, "layer{i+1}: stage(") + 1
    row = text.split("\n")[line - 1]
    on_label = hover_text(analysis, line, row.index("layer{") + 2)
    assert on_label == hover_text(analysis, line, row.index("stage(") + 2)
    resnet18 = next(net for net in analysis.result.networks if net.name == "resnet18")
    stages = [node for node in resnet18.body.children if getattr(node, "block", None)]
    assert [stage.path for stage in stages] == ["layer1", "layer2", "layer3", "layer4"]
    for stage in stages:
        params = sum(layer.params for layer in iter_layers(stage))
        assert f"`resnet18` {stage.path} (" in on_label and f"{params:,} parameters" in on_label


def test_definitions_outlive_a_syntax_error(tmp_path):
    from archspec.lsp import analyse_text, definition_span

    good = _analysis(FIXED, tmp_path)
    typing = analyse_text(good.path, FIXED.replace("unit(16)", "unit(16, "), good)
    assert {d.code for d in typing.result.diagnostics} == {"E101"}
    line = FIXED.split("\n").index("  unit(16)") + 1
    assert definition_span(typing, line, 4) == good.namespace["unit"].definition.name_span


@pytest.mark.slow
def test_without_pygls_the_command_says_what_to_install():
    code = ("import sys; sys.modules['pygls'] = None; from archspec.cli import main; "
            "sys.exit(main(['lsp']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, check=False)
    assert proc.returncode == 2
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["lsp"]
    assert f"pip install '{' '.join(extra)}'" in proc.stderr and "Traceback" not in proc.stderr
