"""The package's import graph goes one way: front end -> IR -> backends -> API and CLI, with
no cycles, function-level imports included (docs/architecture.md draws it). The front end
imports the IR's types to build it; backends read the IR and the syntax tree it keeps."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "archspec"

# Each module's stage; a module may import its own stage and the stages before it only.
STAGES = {
    "support": ["diagnostics", "limits", "names", "pytext", "output", "version", "ops",
                "torch_helpers", "symbolic", "sizes"],
    "syntax tree": ["nodes", "flow"],
    "ir": ["ir"],
    "front end": ["parse", "fmt", "evaluate", "binding", "infer", "reuse", "expand", "settings",
                  "check"],
    "backends": ["translate", "lowering", "torch_backend", "block_classes", "diagram_fit",
                 "diagram_options",
                 "sequential_classes", "torch_source", "summary", "diagram", "diagram_html"],
    "api": ["notebook", "__init__", "cli", "completion", "lsp", "__main__"],
}
ORDER = list(STAGES)
# What a backend may read of the front end: the value semantics of expressions (to fold
# constants as the checker does); never the parser, the expander or the checker.
BACKEND_MAY_READ = {"evaluate"}
# The formatter lays out the parser's tokens: it never evaluates or checks a spec.
FORMATTER_MAY_READ = {"diagnostics", "parse"}


def stage_of(module: str) -> str:
    return next(stage for stage, names in STAGES.items() if module in names)


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {node.module} if node.module else {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("archspec"):
            found.add(node.module.split(".")[1] if "." in node.module else "__init__")
    return found


GRAPH = {path.stem: imports_of(path) for path in PACKAGE.glob("*.py")}


def test_every_module_has_a_stage():
    assert sorted(GRAPH) == sorted(m for names in STAGES.values() for m in names)


def test_imports_go_one_way():
    wrong = []
    for module, imported in GRAPH.items():
        for other in imported:
            mine, theirs = ORDER.index(stage_of(module)), ORDER.index(stage_of(other))
            backend_reads_front = (stage_of(module) == "backends"
                                   and stage_of(other) == "front end"
                                   and other not in BACKEND_MAY_READ)
            if theirs > mine or backend_reads_front:
                wrong.append(f"{module} imports {other}")
    assert wrong == []


def test_no_import_cycles():
    def visit(module: str, path: list[str]) -> None:
        for other in sorted(GRAPH[module]):
            assert other not in path, " -> ".join(path + [other])
            visit(other, path + [other])

    for module in sorted(GRAPH):
        visit(module, [module])


def test_formatter_reads_only_the_parser():
    assert GRAPH["fmt"] <= FORMATTER_MAY_READ
