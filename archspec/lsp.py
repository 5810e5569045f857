"""`archspec lsp`: a language server for editors, on stdin/stdout (pygls).

Every feature reads one thing: the checker's result for the editor's text (check_text on the
unsaved text, named by the document's path so that imports resolve). Diagnostics are the
checker's own, at their spans; hover, definition and symbols read the checked IR and the
parsed files the check kept; completion reads the op registry and the names in scope. No
torch: nothing here builds a module.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources

from lsprotocol import types as t
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path
from pygls.workspace import PositionCodec

from . import nodes as n
from .check import CheckResult, check_text
from .diagnostics import Diagnostic, Span
from .evaluate import BUILTINS, BlockRef, show
from .expand import INIT, op_signature
from .ir import Layer, Network, Node, Seq, iter_layers, iter_nodes
from .ops import REGISTRY, OpSpec
from .symbolic import SymDim, formula, shape_formula
from .version import __version__

MAX_INSTANCES_SHOWN = 8  # hover lines for a statement expanded many times
CHANGE_PAUSE = 0.3  # seconds without an edit before the text is checked
UNTITLED = "<untitled>"  # a document without a file: it cannot import
KEYWORDS = tuple(sorted(set(re.findall(  # the words the grammar spells out
    r'"([a-z_]+)"', resources.files("archspec").joinpath("grammar.lark").read_text()))))
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")


@dataclass
class Analysis:
    """One check of one document's text, and the parse of its last version that parsed
    (symbols and definitions stay while the text has a syntax error)."""

    path: str
    text: str
    result: CheckResult
    module: n.Module | None
    namespace: dict = field(default_factory=dict)  # name -> BlockRef, as the file sees them
    networks: dict = field(default_factory=dict)  # imported networks (variant bases)


class ArchServer(LanguageServer):
    """pygls's server with the analysis of each open document and the other files whose
    diagnostics it published (imported files with errors)."""

    def __init__(self) -> None:
        super().__init__("archspec", __version__)
        self.analyses: dict[str, Analysis] = {}
        self.published: dict[str, set[str]] = {}


# ---------------------------------------------------------------- positions


def _position(codec: PositionCodec, lines: list[str], line: int, col: int) -> t.Position:
    """A 1-based line and column of the checker (code points) as the client counts."""
    return codec.position_to_client_units(lines, t.Position(line=max(line - 1, 0),
                                                            character=max(col - 1, 0)))


def _range(codec: PositionCodec, source: str | None, span: Span | None) -> t.Range:
    if span is None or source is None:
        return t.Range(start=t.Position(line=0, character=0),
                       end=t.Position(line=0, character=0))
    lines = source.split("\n")
    return t.Range(start=_position(codec, lines, span.line, span.col),
                   end=_position(codec, lines, span.end_line, span.end_col))


def _contains(span: Span, line: int, col: int) -> bool:
    """Whether 1-based (line, col) is inside the span (its end included: the cursor may
    stand just after the last character)."""
    return (span.line, span.col) <= (line, col) <= (span.end_line, span.end_col)


def _extent(span: Span) -> tuple[int, int]:
    """How large a span is, to pick the innermost of those around a position."""
    return (span.end_line - span.line,
            span.end_col - span.col if span.end_line == span.line else span.end_col)


def _excerpt(source: str, span: Span) -> str:
    """The source text a span covers."""
    lines = source.split("\n")[span.line - 1:span.end_line]
    if not lines:
        return ""
    lines[-1] = lines[-1][:span.end_col - 1]
    lines[0] = lines[0][span.col - 1:]
    return "\n".join(lines)


def _uri(path: str) -> str:
    return from_fs_path(os.path.abspath(path)) or path


# ---------------------------------------------------------------- analysis


def _path(uri: str) -> str:
    """The file a document stands for (imports resolve from its folder), or UNTITLED."""
    path = to_fs_path(uri) if uri.startswith("file:") else None
    return os.path.abspath(path) if path else UNTITLED


def _checked(text: str, path: str) -> CheckResult:
    """check_text, which reports spec problems as diagnostics; a spec nested deeper than
    Python's stack is one too (the CLI says the same)."""
    try:
        return check_text(text, path)
    except RecursionError:
        return CheckResult([], [Diagnostic("E404", "the spec is nested too deeply to check")],
                           {})


def analyse_text(path: str, text: str, previous: Analysis | None) -> Analysis:
    """Check a document's text; keep `previous`'s definitions if this text does not parse."""
    result = _checked(text, path)
    program = result.program
    module = program.main if program else None
    if module is not None:
        return Analysis(path, text, result, module, program.namespaces.get(path, {}),
                        program.networks.get(path, {}))
    if previous is not None:
        return Analysis(path, text, result, previous.module, previous.namespace,
                        previous.networks)
    return Analysis(path, text, result, None)


def analyse(server: ArchServer, uri: str) -> Analysis:
    """The analysis of the document's current text (checked again only if it changed)."""
    text = server.workspace.get_text_document(uri).source
    known = server.analyses.get(uri)
    if known is None or known.text != text:
        known = server.analyses[uri] = analyse_text(_path(uri), text, known)
    return known


def _lsp_diagnostic(codec: PositionCodec, diag: Diagnostic, source: str | None) -> t.Diagnostic:
    """The checker's diagnostic as the editor shows it: the message with its detail,
    formula and hint under it."""
    extra = [diag.detail, diag.formula and f"formula: {diag.formula}",
             diag.hint and f"hint: {diag.hint}", *diag.notes]
    return t.Diagnostic(
        range=_range(codec, source, diag.span),
        message="\n".join([diag.message, *filter(None, extra)]),
        severity=(t.DiagnosticSeverity.Warning if diag.severity == "warning"
                  else t.DiagnosticSeverity.Error),
        code=diag.code, source="archspec")


def publish(server: ArchServer, uri: str, analysis: Analysis) -> None:
    """Every diagnostic of the check: those in the document and those without a place on
    it, those in imported files on theirs; files that had some and have none now, cleared."""
    codec = server.workspace.position_codec
    by_uri: dict[str, list[t.Diagnostic]] = {uri: []}
    sources = analysis.result.sources
    for diag in analysis.result.diagnostics:
        file = diag.span.file if diag.span else analysis.path
        target = uri if file == analysis.path else _uri(file)
        source = analysis.text if target == uri else sources.get(file)
        by_uri.setdefault(target, []).append(_lsp_diagnostic(codec, diag, source))
    others = set(by_uri) - {uri}
    for stale in server.published.get(uri, set()) - others:
        by_uri[stale] = []
    server.published[uri] = others
    for target, diagnostics in by_uri.items():
        server.text_document_publish_diagnostics(
            t.PublishDiagnosticsParams(uri=target, diagnostics=diagnostics))


# ---------------------------------------------------------------- hover


def _count(value: int) -> str:
    """12,345, or a formula of the input's size names."""
    return formula(value) if isinstance(value, SymDim) else f"{int(value):,}"


def _shape(shape) -> str:
    return "?" if shape is None else shape_formula(shape)


def _totals(node: Node) -> tuple[int, int]:
    """Parameters and MACs of a layer, or of every layer inside a scope."""
    if isinstance(node, Layer):
        return node.params, node.macs
    layers = list(iter_layers(node))
    return sum(layer.params for layer in layers), sum(layer.macs for layer in layers)


def _spans(node: Node) -> list[Span]:
    """Where a node's statement is written: its span, and its label's (`conv1:`)."""
    if isinstance(node, Layer):
        statement = node.call
    elif isinstance(node, Seq) and node.block is not None:
        statement = node.block.call
    else:
        statement = getattr(node, "statement", None)
    label = statement.label if statement is not None else None
    return [node.span] if label is None else [node.span, label.span]


def nodes_at(analysis: Analysis, line: int, col: int) -> list[tuple[Network, Node]]:
    """Every instance (in every network checked) of the innermost statement at 1-based
    (line, col) of the document."""
    found = [(network, node) for network in analysis.result.networks
             for node in iter_nodes(network.body)
             if node.span.file == analysis.path and any(
                 _contains(span, line, col) for span in _spans(node))]
    if not found:
        return _variant_at(analysis, line, col)
    innermost = min(_extent(node.span) for _, node in found)
    return [(network, node) for network, node in found if _extent(node.span) == innermost]


def _variant_at(analysis: Analysis, line: int, col: int) -> list[tuple[Network, Node]]:
    """A variant's line stands for the whole network it checks."""
    variants = analysis.module.variants if analysis.module else []
    names = {v.name for v in variants if _contains(v.span, line, col)}
    return [(network, network.body) for network in analysis.result.networks
            if network.name in names]


def signature(definition: n.Definition, source: str | None) -> str:
    """`block name(c: int, stride: int = 1)`, defaults as the spec writes them."""
    params = [f"{p.name}: {p.type}" + (f" = {_excerpt(source, p.default.span)}"
                                       if p.default is not None and source else "")
              for p in definition.params]
    return f"{definition.kind} {definition.name}({', '.join(params)})"


def _heading(network: Network, node: Node, sources: dict[str, str]) -> str:
    """What the statement is: an op and its doc, a block call's signature, a network."""
    if isinstance(node, Layer):
        return f"**{node.op.name}**: {node.op.doc}" if node.op.doc else f"**{node.op.name}**"
    if isinstance(node, Seq) and node.block is not None and node.block.definition is not None:
        definition = node.block.definition
        return f"```\n{signature(definition, sources.get(definition.span.file))}\n```"
    if node is network.body and network.source is not None:
        return f"```\n{signature(network.source, sources.get(network.source.span.file))}\n```"
    return f"**{type(node).__name__.lower()}**"


def _instance_line(network: Network, node: Node) -> str:
    """One instance: where it is, its shapes, parameters and MACs."""
    params, macs = _totals(node)
    where = getattr(node, "path", "") or ("network" if node is network.body else "")
    arguments = ""
    if isinstance(node, Seq) and node.block is not None and node.block.args:
        arguments = " (" + ", ".join(f"{k}={show(v, 40)}" for k, v in node.block.args.items()) + ")"
    return (f"- `{network.name}` {where}{arguments}: {_shape(node.in_shape)} -> "
            f"{_shape(node.out_shape)}, {_count(params)} parameters, {_count(macs)} MACs")


def hover_text(analysis: Analysis, line: int, col: int) -> str | None:
    """Markdown for the statement at (line, col): its kind, then each instance."""
    found = nodes_at(analysis, line, col)
    if not found:
        return None
    lines = [_instance_line(network, node) for network, node in found]
    distinct = list(dict.fromkeys(lines))
    shown = distinct[:MAX_INSTANCES_SHOWN]
    if len(distinct) > len(shown):
        shown.append(f"- ... and {len(distinct) - len(shown)} more")
    network, node = found[0]
    return "\n".join([_heading(network, node, analysis.result.sources), "", *shown])


# ---------------------------------------------------------------- definition


def word_at(text: str, line: int, col: int) -> str | None:
    """The identifier at 1-based (line, col), or None."""
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        return None
    for match in IDENTIFIER.finditer(lines[line - 1]):
        if match.start() < col <= match.end() + 1:
            return match.group()
    return None


def _import_target(analysis: Analysis, imp: n.Import) -> str:
    return os.path.normpath(os.path.join(os.path.dirname(analysis.path), imp.path))


def definition_span(analysis: Analysis, line: int, col: int) -> Span | None:
    """Where the name at (line, col) is defined: a block, a network, a variant, or (on an
    import) the imported file."""
    word = word_at(analysis.text, line, col)
    module = analysis.module
    if module is None or word is None:
        return None
    for imp in module.imports:
        if _contains(imp.span, line, col) and not any(
                name == word and _contains(span, line, col) for name, span in imp.names or ()):
            return Span(_import_target(analysis, imp), 1, 1, 1, 1)
    ref = analysis.namespace.get(word) or analysis.networks.get(word)
    if ref is not None:
        return ref.definition.name_span
    own = {item.name: item for item in module.networks + module.variants}
    return own[word].name_span if word in own else None


# ---------------------------------------------------------------- completion


def open_call(text: str, line: int, col: int) -> str | None:
    """The callee whose argument list the position is in (`conv(64, k|`), or None."""
    lines = text.split("\n")[:line]
    if not lines:
        return None
    lines[-1] = lines[-1][:col - 1]
    before = "\n".join(lines)
    depth = 0
    for index in range(len(before) - 1, -1, -1):
        char = before[index]
        if char in "{}":
            return None
        depth += {")": 1, "(": -1}.get(char, 0)
        if depth < 0:
            match = re.search(r"([A-Za-z_][A-Za-z_0-9]*)\s*$", before[:index])
            return match.group(1) if match else None
    return None


def _argument_names(analysis: Analysis, callee: str) -> list[str]:
    """The parameter names (and aliases) a call of `callee` takes."""
    ref = analysis.namespace.get(callee)
    if isinstance(ref, BlockRef):
        return [p.name for p in ref.definition.params]
    spec: OpSpec | None = INIT if callee == "init" else REGISTRY.get(callee)
    if spec is None:
        return []
    sig = op_signature(spec)
    return [*sig.names, *sig.aliases]


def _op_item(spec: OpSpec) -> t.CompletionItem:
    names = ", ".join(op_signature(spec).names)
    return t.CompletionItem(label=spec.name, kind=t.CompletionItemKind.Function,
                            detail=f"{spec.name}({names})", documentation=spec.doc or None,
                            sort_text=f"2{spec.name}")


def completions(analysis: Analysis, line: int, col: int) -> list[t.CompletionItem]:
    """Argument names of the call the cursor is in first, then ops, blocks in scope,
    keywords and built-in functions."""
    callee = open_call(analysis.text, line, col)
    items = [t.CompletionItem(label=name, kind=t.CompletionItemKind.Field,
                              insert_text=f"{name}=", detail=f"argument of {callee}",
                              sort_text=f"0{name}")
             for name in (_argument_names(analysis, callee) if callee else [])]
    items += [_op_item(spec) for spec in REGISTRY.values()]
    items += [t.CompletionItem(label=name, kind=t.CompletionItemKind.Class,
                               detail=signature(ref.definition, analysis.result.sources.get(
                                   ref.definition.span.file)), sort_text=f"1{name}")
              for name, ref in analysis.namespace.items() if isinstance(ref, BlockRef)]
    items += [t.CompletionItem(label=word, kind=t.CompletionItemKind.Keyword,
                               sort_text=f"3{word}") for word in KEYWORDS]
    items += [t.CompletionItem(label=name, kind=t.CompletionItemKind.Function,
                               detail="built-in function", sort_text=f"4{name}")
              for name in BUILTINS]
    return items


# ---------------------------------------------------------------- symbols


def _definitions(module: n.Module) -> Iterator[tuple[n.Definition | n.Variant, t.SymbolKind]]:
    yield from ((block, t.SymbolKind.Class) for block in module.blocks)
    yield from ((network, t.SymbolKind.Module) for network in module.networks)
    yield from ((variant, t.SymbolKind.Object) for variant in module.variants)


def symbols(codec: PositionCodec, analysis: Analysis) -> list[t.DocumentSymbol]:
    """Blocks, networks and variants of the document, in that order."""
    if analysis.module is None:
        return []
    found = []
    for item, kind in _definitions(analysis.module):
        detail = (f"variant of {item.base}" if isinstance(item, n.Variant)
                  else signature(item, analysis.text))
        found.append(t.DocumentSymbol(
            name=item.name, kind=kind, detail=detail,
            range=_range(codec, analysis.text, item.span),
            selection_range=_range(codec, analysis.text, item.name_span)))
    return found


# ---------------------------------------------------------------- the server


def _cursor(server: ArchServer, uri: str, position: t.Position) -> tuple[Analysis, int, int]:
    """The analysis of the document's current text and the 1-based line and column (code
    points) of a client's position."""
    analysis = analyse(server, uri)
    lines = analysis.text.split("\n")
    at = server.workspace.position_codec.position_from_client_units(lines, position)
    return analysis, at.line + 1, at.character + 1


def _text_of(server: ArchServer, uri: str) -> str | None:
    """The document's text, None once it is closed."""
    document = server.workspace.text_documents.get(uri)
    return None if document is None else document.source


async def _check_and_publish(server: ArchServer, uri: str) -> None:
    """Check in a worker thread (a large spec takes seconds; requests go on meanwhile) and
    publish, unless the text changed in the meantime: its own check will."""
    text = _text_of(server, uri)
    if text is None:
        return
    analysis = await asyncio.to_thread(analyse_text, _path(uri), text,
                                       server.analyses.get(uri))
    if _text_of(server, uri) == text:
        server.analyses[uri] = analysis
        publish(server, uri, analysis)


async def _on_open(server: ArchServer, params: t.DidOpenTextDocumentParams) -> None:
    await _check_and_publish(server, params.text_document.uri)


async def _on_change(server: ArchServer, params: t.DidChangeTextDocumentParams) -> None:
    """Check once typing pauses: each edit waits, and the last one of a burst checks."""
    uri = params.text_document.uri
    text = _text_of(server, uri)
    await asyncio.sleep(CHANGE_PAUSE)
    if _text_of(server, uri) == text:
        await _check_and_publish(server, uri)


async def _on_save(server: ArchServer, params: t.DidSaveTextDocumentParams) -> None:
    """A saved file may be imported by the other open documents: check them all again."""
    for uri in list(server.workspace.text_documents):
        await _check_and_publish(server, uri)


def _on_close(server: ArchServer, params: t.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    server.analyses.pop(uri, None)
    for target in server.published.pop(uri, set()) | {uri}:
        server.text_document_publish_diagnostics(
            t.PublishDiagnosticsParams(uri=target, diagnostics=[]))


def _on_hover(server: ArchServer, params: t.HoverParams) -> t.Hover | None:
    text = hover_text(*_cursor(server, params.text_document.uri, params.position))
    if text is None:
        return None
    return t.Hover(contents=t.MarkupContent(kind=t.MarkupKind.Markdown, value=text))


def _on_definition(server: ArchServer, params: t.DefinitionParams) -> t.Location | None:
    analysis, line, col = _cursor(server, params.text_document.uri, params.position)
    span = definition_span(analysis, line, col)
    if span is None:
        return None
    source = (analysis.text if span.file == analysis.path
              else analysis.result.sources.get(span.file))
    return t.Location(uri=_uri(span.file),
                      range=_range(server.workspace.position_codec, source, span))


def _on_completion(server: ArchServer, params: t.CompletionParams) -> t.CompletionList:
    items = completions(*_cursor(server, params.text_document.uri, params.position))
    return t.CompletionList(is_incomplete=False, items=items)


def _on_symbols(server: ArchServer,
                params: t.DocumentSymbolParams) -> list[t.DocumentSymbol]:
    analysis = analyse(server, params.text_document.uri)
    return symbols(server.workspace.position_codec, analysis)


FEATURES = [
    (t.TEXT_DOCUMENT_DID_OPEN, _on_open, None),
    (t.TEXT_DOCUMENT_DID_CHANGE, _on_change, None),
    (t.TEXT_DOCUMENT_DID_SAVE, _on_save, None),
    (t.TEXT_DOCUMENT_DID_CLOSE, _on_close, None),
    (t.TEXT_DOCUMENT_HOVER, _on_hover, None),
    (t.TEXT_DOCUMENT_DEFINITION, _on_definition, None),
    (t.TEXT_DOCUMENT_COMPLETION, _on_completion,
     t.CompletionOptions(trigger_characters=["(", ","])),
    (t.TEXT_DOCUMENT_DOCUMENT_SYMBOL, _on_symbols, None),
]


def create_server() -> ArchServer:
    server = ArchServer()
    for method, handler, options in FEATURES:
        server.feature(method, options)(handler)
    return server


def serve() -> None:
    """Answer the editor on stdin/stdout until it asks the server to exit."""
    create_server().start_io()
