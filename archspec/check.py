"""The front of the pipeline: read files and their imports, run the static checks on the
definitions, and expand the selected networks and variants into checked IR."""

from __future__ import annotations

import keyword
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from numbers import Integral

from . import nodes as n
from .binding import Signature, collect, keywords_hint, python_args
from .diagnostics import ArchError, Diagnostic, Span, did_you_mean, sort_key, unique
from .evaluate import BUILTINS, BlockRef, Env, EvalError, Evaluator
from .expand import SIMPLE_TYPES, Expander
from .ir import Network
from .limits import (
    MAX_FILE_BYTES,
    MAX_IMPORT_BYTES,
    MAX_IMPORT_DEPTH,
    MAX_IMPORT_FILES,
    MAX_NESTING,
    PARSE_STEPS,
    LimitError,
    budget,
    charge,
    collector_paused,
)
from .ops import REGISTRY, Shape
from .parse import parse_module
from .settings import ON_COMMAND_LINE, Settings, fit_hint, parse_settings
from .sizes import Run, SizeSet, Sweep, analyse
from .symbolic import Poly, SymDim, evaluator, formula, recording

# A network's input from Python (C, H, W), as a tuple or a list of positive ints.
InputShape = tuple[int | str, ...] | list[int | str]  # a str is a size name: every size

# Folders besides the main file's own (and their subfolders) that imports may read from: the
# command line's --allow-dir. Imports anywhere else are refused (E107).
ALLOWED_DIRS: ContextVar[tuple[str, ...]] = ContextVar("archspec_allowed_dirs", default=())


@contextmanager
def allowed_dirs(dirs: Iterable[str]) -> Iterator[None]:
    """Let imports read from these folders too, inside the `with` block."""
    token = ALLOWED_DIRS.set(tuple(os.path.realpath(d) for d in dirs))
    try:
        yield
    finally:
        ALLOWED_DIRS.reset(token)


@dataclass
class NetworkRef:
    """An imported network: its definition and the blocks of its own file."""

    definition: n.Definition
    namespace: dict


@dataclass
class Program:
    """A main file with everything it imports, and the names each file can see."""

    main: n.Module | None = None
    sources: dict[str, str] = field(default_factory=dict)
    namespaces: dict[str, dict] = field(default_factory=dict)  # file -> name -> BlockRef
    networks: dict[str, dict] = field(default_factory=dict)  # file -> imported NetworkRefs
    diagnostics: list[Diagnostic] = field(default_factory=list)
    unreadable: bool = False  # the main file itself could not be read (exit status 2)
    allowed: tuple[str, ...] = ()  # folders imports may read from (real paths)
    loaded: dict[str, tuple] = field(default_factory=dict)  # real path -> (module, path)
    imported_bytes: int = 0  # of the imported files read so far (E410)
    text: str | None = None  # the main file's text, given (loads) instead of read
    fileless: bool = False  # the given text has no file (`<string>`): it cannot import


@dataclass
class CheckResult:
    networks: list[Network]
    diagnostics: list[Diagnostic]
    sources: dict[str, str]
    unreadable: bool = False
    program: Program | None = None  # the files read and parsed, and the names each sees

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]


# ---------------------------------------------------------------- loading


# Folders of the operating system's own files: their "files" (process environments, kernel
# settings, devices) are never specs, whatever links lead there.
SYSTEM_DIRS = ("/proc", "/sys", "/dev")
_BOM = b"\xef\xbb\xbf"


def _kind(mode: int) -> str | None:
    """What a file that is not a regular file is, in words; None for a regular file."""
    kinds = [(stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
             (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket")]
    if stat.S_ISREG(mode):
        return None
    return next((words for test, words in kinds if test(mode)), "not a regular file")


def _refusal(path: str, span: Span | None, allowed: tuple[str, ...]) -> Diagnostic | None:
    """Why a file must not be read, from its metadata alone (a FIFO is never opened, so a
    check cannot block), or None. Files named on the command line are as untrusted as
    imports: a link may not lead out of the allowed folders (the link's own, --allow-dir)."""
    try:
        info = os.stat(path)
        real = os.path.realpath(path)
    except (OSError, ValueError):
        return None  # reading says why (not found, permission denied)
    if os.path.islink(path) and not _inside(real, allowed):
        return Diagnostic(
            "E109", f"`{path}` is a link to a file outside its folder", span,
            detail=f"it leads to {real}; allowed: {', '.join(allowed)}",
            hint="check the file itself, or allow its folder with --allow-dir DIR")
    kind = _kind(info.st_mode)
    if kind is None and _inside(real, SYSTEM_DIRS):
        kind = "a file of the operating system"
    if kind is not None:
        return Diagnostic("E108", f"`{path}` is {kind}, not a spec file", span,
                          hint="name a .arch file" if span is None else
                          "import a .arch file (a path relative to this file)")
    return None


def _read(path: str, span: Span | None,
          allowed: tuple[str, ...] = ()) -> tuple[str | None, Diagnostic | None]:
    """A spec file's text, or why it cannot be had. Bytes of a file that is not a readable
    spec are never returned (they would be echoed as "source lines" of a diagnostic), but
    for text in another encoding, kept to point at the bad byte."""
    refused = _refusal(path, span, allowed or (os.path.realpath(os.path.dirname(
        os.path.abspath(path))),))
    if refused:
        return None, refused
    try:
        data, problem = _read_bytes(path, span)
    except OSError as exc:
        return None, Diagnostic("E103", f"cannot read `{path}`: {exc.strerror or exc}", span)
    if problem:
        return None, problem
    offset = len(_BOM) if data.startswith(_BOM) else 0  # a BOM: invisible, so skipped
    try:
        return data[offset:].decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return _not_utf8(path, span, data[offset:], exc, offset)


def _read_bytes(path: str, span: Span | None) -> tuple[bytes, Diagnostic | None]:
    """The file's bytes, up to the size limit. Opened without blocking and checked again
    once open, in case the file was swapped for a FIFO or device after the stat."""
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) |
                         getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(handle.fileno())
        kind = _kind(info.st_mode)
        if kind is not None:
            return b"", Diagnostic("E108", f"`{path}` is {kind}, not a spec file", span)
        if info.st_size > MAX_FILE_BYTES:
            return b"", Diagnostic("E403", f"`{path}` is {info.st_size} bytes, larger than "
                                   f"the limit of {MAX_FILE_BYTES}", span)
        data = handle.read(MAX_FILE_BYTES + 1)  # the size may have lied (or grown)
    return data, _content_problem(path, data, span)


def _content_problem(path: str, data: bytes, span: Span | None) -> Diagnostic | None:
    """What makes a file's bytes (or a given text's) no spec: too large, or binary."""
    if len(data) > MAX_FILE_BYTES:
        return Diagnostic("E403", f"`{path}` is larger than the limit of {MAX_FILE_BYTES} "
                          "bytes", span)
    nul = data.find(b"\x00")
    if nul >= 0:
        return Diagnostic(
            "E103", f"`{path}` is a binary file, not a spec", span,
            detail=f"byte {nul} is a NUL", hint="name a .arch text file",
            notes=[f"imported at {span.file}:{span.line}:{span.col}"] if span else [])
    return None


def _not_utf8(path: str, span: Span | None, data: bytes, exc: UnicodeDecodeError,
              offset: int) -> tuple[str, Diagnostic]:
    """Point at the first bad byte, in the file's text decoded leniently for the marker."""
    start = data.rfind(b"\n", 0, exc.start) + 1
    line = data.count(b"\n", 0, exc.start) + 1
    col = len(data[start:exc.start].decode("utf-8", "replace")) + 1
    return data.decode("utf-8", "replace"), Diagnostic(
        "E103", f"`{path}` is not UTF-8 text", Span(path, line, col, line, col + 1),
        detail=f"byte {exc.start + offset} cannot be decoded",
        hint="save the file as UTF-8 (this byte looks like another encoding, e.g. Latin-1)",
        notes=[f"imported at {span.file}:{span.line}:{span.col}"] if span else [])


def is_fileless(name: str) -> bool:
    """A name in angle brackets (`<string>`, as Python names code that is no file) is a given
    text's, not a path: it has no folder to import from."""
    return name.startswith("<") and name.endswith(">")


def _given(name: str, text: str) -> tuple[str | None, Diagnostic | None]:
    """A text given instead of a file, under the limits a file's bytes are."""
    problem = _content_problem(name, text.encode("utf-8", "surrogatepass"), None)
    return (None, problem) if problem else (text.removeprefix("\ufeff"), None)


def _main_allowed(path: str) -> tuple[str, ...]:
    """Where a file named on the command line may be: its own folder and every --allow-dir."""
    return (os.path.realpath(os.path.dirname(os.path.abspath(path))),) + ALLOWED_DIRS.get()


def read_spec(path: str) -> str:
    """A file named on the command line read as `check` reads it: refused as a folder, FIFO,
    device, file of the system, link out of its folder, binary or too large a file, or not
    UTF-8 (ArchError with that diagnostic); a BOM skipped, newlines kept."""
    text, problem = _read(path, None, _main_allowed(path))
    if problem:
        raise ArchError([problem], {path: text} if text is not None else {})
    return text


def load_program(path: str, text: str | None = None) -> Program:
    """Read the main file (or take its `text`: `path` is then only its name) and its imports."""
    program = Program(text=text, fileless=text is not None and is_fileless(path))
    program.allowed = ALLOWED_DIRS.get() if program.fileless else _main_allowed(path)
    program.main = _load(program, path, None, ())
    if program.main is None and not program.diagnostics:
        program.unreadable = True
    return program


def _load(program: Program, path: str, span: Span | None, chain: tuple) -> n.Module | None:
    key = os.path.realpath(path)
    if key in chain:
        cycle = " -> ".join(os.path.basename(c) for c in chain + (key,))
        program.diagnostics.append(Diagnostic("E105", "import cycle", span, detail=cycle,
                                              hint="move the shared blocks to a third file"))
        return None
    if key in program.loaded:  # imported again (a diamond): read and parsed once
        module, first_path = program.loaded[key]
        if module is not None:
            program.namespaces[path] = program.namespaces[first_path]
            program.networks[path] = program.networks[first_path]
        return module
    if span is not None and len(program.loaded) > MAX_IMPORT_FILES:  # the main file + imports
        _refuse(program, _too_many_imports(span))
        return None
    program.loaded[key] = (None, path)
    module = _load_new(program, path, span, chain, key)
    program.loaded[key] = (module, path)
    return module


def _load_new(program: Program, path: str, span: Span | None, chain: tuple,
              key: str) -> n.Module | None:
    source, problem = (_given(path, program.text) if span is None and program.text is not None
                       else _read(path, span, program.allowed))
    if problem:
        if source is not None:  # readable but not UTF-8: kept to show the line with the marker
            program.sources[path] = source
        program.diagnostics.append(problem)
        program.unreadable = span is None
        return None
    program.sources[path] = source
    if span is not None:
        program.imported_bytes += len(source.encode("utf-8", "replace"))
        if program.imported_bytes > MAX_IMPORT_BYTES:
            _refuse(program, _imports_too_large(span, program.imported_bytes))
            return None
    try:
        charge(PARSE_STEPS * len(source), span)  # before parsing: it is most of the time
    except LimitError as exc:
        program.diagnostics.append(exc.diagnostic)
        return None
    module, syntax = parse_module(source, path)
    program.diagnostics.extend(syntax)
    if module is None:
        return None
    namespace: dict = {}
    networks: dict = {}
    for imp in module.imports:
        _import(program, module, imp, namespace, networks, chain + (key,))
    for block in module.blocks:
        namespace[block.name] = BlockRef(block, namespace)
    program.namespaces[path] = namespace
    program.networks[path] = networks
    return module


def _refuse(program: Program, diagnostic: Diagnostic) -> None:
    """Record an E410, once: every later import would repeat it."""
    if not any(d.code == "E410" for d in program.diagnostics):
        program.diagnostics.append(diagnostic)


def _too_many_imports(span: Span) -> Diagnostic:
    """E410: parsing is the slow part of a check, so the files it parses are counted."""
    return Diagnostic("E410", f"too many imports: more than {MAX_IMPORT_FILES} different "
                      "files", span, detail="counting the files that imported files import",
                      hint="put the blocks a spec needs into fewer files")


def _imports_too_large(span: Span, size: int) -> Diagnostic:
    """E410: the imported files are parsed too; together they may be half a file's size."""
    return Diagnostic("E410", f"imports too large: more than {MAX_IMPORT_BYTES:,} bytes in "
                      "all", span, detail=f"{size:,} bytes with this file",
                      hint="import only the files with the blocks this spec uses")


def _inside(path: str, folders: tuple[str, ...]) -> bool:
    return any(path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)
               for folder in folders)


def _import(program: Program, module: n.Module, imp: n.Import, namespace: dict,
            networks: dict, chain: tuple) -> None:
    if program.fileless:  # only the given text itself can import: nothing else is read
        program.diagnostics.append(Diagnostic(
            "E107", f"`{module.file}` is a text, not a file: it cannot import `{imp.path}`",
            imp.span, detail="imports are relative to the importing file's folder",
            hint="give the text the path it stands for, loads(text, name='specs/net.arch'): "
                 "imports then read from that folder and below"))
        return
    target = os.path.normpath(os.path.join(os.path.dirname(module.file), imp.path))
    try:
        real = os.path.realpath(target)
    except (OSError, ValueError):  # e.g. a NUL character in the path
        real = None
    if real is not None and not _inside(real, program.allowed):
        program.diagnostics.append(Diagnostic(
            "E107", f"import of `{imp.path}` is outside the allowed folders", imp.span,
            detail=f"it resolves to {real}; allowed: {', '.join(program.allowed)}",
            hint="keep imported files in the spec's folder or below, or allow their folder "
                 "with --allow-dir DIR"))
        return
    if len(chain) >= MAX_IMPORT_DEPTH:
        program.diagnostics.append(Diagnostic(
            "E406", f"imports nested too deeply: more than {MAX_IMPORT_DEPTH} files in a chain",
            imp.span, detail=" -> ".join(os.path.basename(c) for c in chain[-3:]) + " -> ...",
            hint="import the shared blocks directly from the file that uses them"))
        return
    if real is None or not os.path.exists(target):
        program.diagnostics.append(Diagnostic(
            "E104", f"imported file `{imp.path}` not found", imp.span,
            detail=f"looked for {target}", hint="import paths are relative to this file"))
        return
    imported = _load(program, target, imp.span, chain)
    if imported is None:
        return
    _bind_imports(program, imp, imported, program.namespaces[target], namespace, networks)


def _bind_imports(program: Program, imp: n.Import, imported: n.Module, theirs_ns: dict,
                  namespace: dict, networks: dict) -> None:
    """Make the imported file's own blocks (callable) and networks (variant bases) visible;
    each keeps seeing the blocks of its own file."""
    blocks = {b.name: BlockRef(b, theirs_ns) for b in imported.blocks}
    nets = {d.name: NetworkRef(d, theirs_ns) for d in imported.networks}
    if imp.names is None:
        namespace.update(blocks)
        networks.update(nets)
        return
    for name, span in imp.names:
        if name in blocks:
            namespace[name] = blocks[name]
        elif name in nets:
            networks[name] = nets[name]
        else:
            program.diagnostics.append(_not_importable(imp, imported, name, span, [*blocks, *nets]))


def _not_importable(imp: n.Import, imported: n.Module, name: str, span: Span,
                    names: list[str]) -> Diagnostic:
    if any(v.name == name for v in imported.variants):
        return Diagnostic("E106", f"`{name}` is a variant of `{imp.path}`; only blocks and "
                          "networks can be imported", span,
                          hint="import its network and define the variant in this file")
    return Diagnostic("E106", f"`{imp.path}` defines no block or network `{name}`", span,
                      hint=did_you_mean(name, names) or f"it defines: {', '.join(names) or 'none'}")


# ---------------------------------------------------------------- static checks


def lint(module: n.Module) -> list[Diagnostic]:
    """Checks that need no expansion: duplicate names, unknown types, unused things."""
    diags: list[Diagnostic] = []
    seen: dict[str, Span] = {}
    for item in module.blocks + module.networks + module.variants:
        name_span = item.name_span
        if item.name in seen:
            first = seen[item.name]
            diags.append(Diagnostic("E209", f"`{item.name}` is defined twice", name_span,
                                    hint="rename one of the two, or delete the copy",
                                    notes=[f"first defined at {first.file}:{first.line}"]))
        elif item.name in REGISTRY or item.name in BUILTINS:
            diags.append(Diagnostic("E209", f"`{item.name}` is the name of a built-in",
                                    name_span, hint="choose another name"))
        seen.setdefault(item.name, name_span)
    for definition in module.blocks + module.networks:
        diags += _lint_params(definition)
    if module.networks or module.variants:
        diags += _unused_blocks(module)
    return diags


def _referenced_names(node) -> set[str]:
    found = set()
    for item in n.walk(node):
        if isinstance(item, n.Name):
            found.add(item.id)
        elif isinstance(item, n.Call):
            found.add(item.name)
    return found


def _lint_params(definition: n.Definition) -> list[Diagnostic]:
    if not definition.params:
        return []  # nothing to lint, and the body's walk is a tenth of a flat spec's check
    diags = []
    names: set[str] = set()
    used = _referenced_names(definition.body) | _referenced_names(
        [p.default for p in definition.params])
    for param in definition.params:
        if param.name in names:
            diags.append(Diagnostic("E209", f"parameter `{param.name}` is declared twice",
                                    param.span, hint="rename or remove one of the two"))
        names.add(param.name)
        for type_expr in n.walk(param.type):
            if type_expr.name is not None and type_expr.name not in SIMPLE_TYPES:
                diags.append(Diagnostic(
                    "E217", f"unknown type `{type_expr.name}`", type_expr.span,
                    hint=did_you_mean(type_expr.name, SIMPLE_TYPES) or
                    "types: " + ", ".join(sorted(SIMPLE_TYPES)) + ", or a tuple (int, int)"))
        if param.name not in used:
            diags.append(Diagnostic(
                "W001", f"parameter `{param.name}` of `{definition.name}` is never used",
                param.span, hint="remove it, or use it in the body"))
    return diags


def _unused_blocks(module: n.Module) -> list[Diagnostic]:
    if not module.blocks:
        return []
    used: set[str] = set()
    for item in module.blocks + module.networks + module.variants:
        own = {item.name} if isinstance(item, n.Definition) else set()
        used |= _referenced_names(item) - own
    return [Diagnostic("W002", f"block `{b.name}` is never used", b.name_span,
                       hint="remove it, or call it from a network")
            for b in module.blocks if b.name not in used]


# ---------------------------------------------------------------- targets


@dataclass
class Target:
    """A network or variant that can be checked: a network definition, the blocks its body
    sees (those of the network's own file), and bound argument values with their spans."""

    name: str
    definition: n.Definition
    namespace: dict
    args: dict
    spans: dict
    span: Span


def _targets(module: n.Module, namespace: dict, imported: dict,
             sink: list[Diagnostic]) -> dict[str, Target]:
    """The file's own networks and variants; a variant may be based on an imported network."""
    bases = {name: Target(name, ref.definition, ref.namespace, {}, {}, ref.definition.name_span)
             for name, ref in imported.items()}
    targets: dict[str, Target] = {}
    for definition in module.networks:
        targets[definition.name] = bases[definition.name] = Target(
            definition.name, definition, namespace, {}, {}, definition.name_span)
    variants = {v.name: v for v in module.variants}
    for variant in module.variants:
        resolved = _resolve_variant(variant, bases, variants, namespace, sink, ())
        if resolved is not None:
            targets[variant.name] = resolved
    return targets


def _resolve_variant(variant: n.Variant, bases: dict, variants: dict, namespace: dict,
                     sink: list[Diagnostic], chain: tuple) -> Target | None:
    """The variant as a target: its base's arguments overridden by its own, which bind like
    a block call's (binding.collect)."""
    if len(chain) >= MAX_NESTING:
        if any(d.code == "E404" and d.message.startswith("variants") for d in sink):
            return None  # once is enough: every longer chain goes through the same variants
        sink.append(Diagnostic("E404", f"variants nested too deeply: more than {MAX_NESTING} "
                               "variants based on each other", variant.name_span,
                               detail=" -> ".join(chain[:3]) + " -> ...",
                               hint="base the variant on the network, with all its arguments"))
        return None
    if variant.name in chain:
        sink.append(Diagnostic("E207", f"variant `{variant.name}` is defined through itself",
                               variant.name_span, detail=" -> ".join(chain + (variant.name,)),
                               hint="base one of these variants on the network itself"))
        return None
    if variant.base in bases:
        base = bases[variant.base]
    elif variant.base in variants:
        base = _resolve_variant(variants[variant.base], bases, variants, namespace, sink,
                                chain + (variant.name,))
        if base is None:
            return None
    else:
        sink.append(Diagnostic("E211", f"unknown network or variant `{variant.base}`",
                               variant.base_span,
                               hint=did_you_mean(variant.base, [*bases, *variants])
                               or "a variant is based on a network or variant of this file, "
                                  "or on a network it imports"))
        return None
    try:
        args, spans = _override(base, variant.args, Evaluator(Env(), namespace, None, True))
    except (EvalError, LimitError) as exc:
        sink.append(exc.diagnostic)
        return None
    return Target(variant.name, base.definition, base.namespace, args, spans, variant.name_span)


def _override(base: Target, args: list[n.Arg], evaluator: Evaluator) -> tuple[dict, dict]:
    """The base's arguments with `args` bound over them: a variant's own, or those given
    from outside (Given)."""
    given, spans = collect(Signature.of(base.definition), args, evaluator)
    return {**base.args, **given}, {**base.spans, **spans}


@dataclass(frozen=True)
class Given:
    """Arguments from outside the spec, bound over every target's own as a variant's are:
    the Python API's **params (values) and the command line's --set (expressions, which
    may name the main file's blocks, as a variant's arguments may)."""

    values: dict = field(default_factory=dict)
    settings: tuple[n.Arg, ...] = ()
    namespace: dict = field(default_factory=dict)

    def names(self) -> set[str]:
        return set(self.values) | {arg.name for arg in self.settings}

    def args(self, span: Span) -> list[n.Arg]:
        """The Python values as keyword arguments written at `span` (the target's name),
        then the settings."""
        return [*python_args(self.values, span), *self.settings]


def _checkable(target: Target, given: Given) -> bool:
    """Networks with required parameters are templates: only their variants are checked."""
    names = set(target.args) | given.names()
    return all(p.default is not None or p.name in names for p in target.definition.params)


def check_file(path: str | os.PathLike, net: str | None = None,
               input_shape: InputShape | None = None, overrides: dict | None = None,
               first_only: bool = False, allow_dirs: Iterable[str] | None = None,
               settings: dict[str, str] | None = None) -> CheckResult:
    """Check every network and variant of a file (or just `net`, or with `first_only` the
    first one that can be checked); never raises for spec problems, which all end up in the
    result's diagnostics. Imports may read from the file's folder (and below) and from
    `allow_dirs` (default: those of `allowed_dirs()`, the CLI's --allow-dir). The whole check
    runs on one work budget (limits.MAX_STEPS). `path` may be a str or any os.PathLike;
    `input_shape` (a tuple or list: (3, 224, 224)) replaces the network's `input`.
    `overrides` are parameter values; `settings` parameters as the language writes them
    (`{"layers": "[3, 4, 6, 3]", "block": "bottleneck"}`, the CLI's --set)."""
    return _check(os.fspath(path), None, net, input_shape, overrides, first_only, allow_dirs,
                  settings)


def check_text(text: str, name: str = "<string>", net: str | None = None,
               input_shape: InputShape | None = None, overrides: dict | None = None,
               first_only: bool = False, allow_dirs: Iterable[str] | None = None) -> CheckResult:
    """check_file() for a spec given as text. `name` is the file name its diagnostics show
    and the path it stands for: imports resolve relative to its folder and may read from
    there (and below, and `allow_dirs`). A name in angle brackets, the default `<string>`,
    is no path, so such a text cannot import (E107): nothing is read behind the caller's
    back, from a folder that depends on where the program runs."""
    if not isinstance(text, str):
        raise TypeError(f"the spec's text must be a str, not {type(text).__name__} (decode "
                        "bytes first: text.decode('utf-8'))")
    return _check(os.fspath(name), text, net, input_shape, overrides, first_only, allow_dirs)


def _check(path: str, text: str | None, net: str | None, input_shape: InputShape | None,
           overrides: dict | None, first_only: bool, allow_dirs: Iterable[str] | None,
           settings: dict[str, str] | None = None) -> CheckResult:
    """One check on one work budget; spans hold str paths, which are compared and sorted."""
    parsed = parse_settings(settings or {})
    with budget(), collector_paused():
        if allow_dirs is None:
            return _check_file(path, text, net, input_shape, overrides or {}, parsed,
                               first_only)
        with allowed_dirs([*ALLOWED_DIRS.get(), *allow_dirs]):
            return _check_file(path, text, net, input_shape, overrides or {}, parsed,
                               first_only)


def input_shape_problem(shape: object) -> Diagnostic | None:
    """E216 for an `input_shape` from Python that is not 1 to 4 positive ints (NumPy's too)
    or size names (`(3, "H", "W")`: every size at once): C, H, W, features, a sequence's two
    or a volume's four dimensions (no batch)."""
    ok = isinstance(shape, (tuple, list)) and 1 <= len(shape) <= 4 and all(
        isinstance(d, Integral) and not isinstance(d, bool) and d >= 1 or is_size_name(d)
        for d in shape)
    if ok:
        return None
    return Diagnostic("E216", f"input_shape must be a tuple of 1 to 4 positive ints, got "
                      f"{shape!r}"[:200], None,
                      hint="(C, H, W) for a map, e.g. (3, 224, 224) or (3, 'H', 'W') for "
                           "every size; (F,) for features; (T, F) for a sequence; "
                           "(C, D, H, W) for a volume; no batch")


def _check_file(path: str, text: str | None, net: str | None,
                input_shape: InputShape | None, overrides: dict, settings: Settings,
                first_only: bool) -> CheckResult:
    program = load_program(path, text)
    program.sources.update(settings.sources)
    problem = None if input_shape is None else input_shape_problem(input_shape)
    diags = [*program.diagnostics, *([problem] if problem else []), *settings.diagnostics]
    shape = None if input_shape is None or problem else tuple(
        d if isinstance(d, str) else int(d) for d in input_shape)
    networks: list[Network] = []
    module = program.main
    if module is not None and not diags:
        diags += lint(module)
        targets = _targets(module, program.namespaces[path], program.networks[path], diags)
        given = Given(overrides, settings.args, program.namespaces[path])
        if net is not None and net not in targets:
            diags.append(Diagnostic("E211", f"`{path}` has no network or variant `{net}`",
                                    None, hint=did_you_mean(net, targets) or
                                    f"it has: {', '.join(targets) or 'none'}"))
            selected = []
        elif net is not None:
            selected = [targets[net]]
        else:
            selected = [t for t in targets.values() if _checkable(t, given)]
            selected = selected[:1] if first_only else selected
        expansions: dict = {}  # block expansions, shared by the file's networks
        for target in selected:
            network = _expand_sizes(target, given, shape, diags, expansions)
            if network is not None:
                networks.append(network)
    diags = sorted(unique(diags), key=sort_key)
    return CheckResult(networks, diags, program.sources, program.unreadable, program)


def _expand(target: Target, given: Given, input_shape: Shape | None,
            sink: list[Diagnostic], symbols: dict | None = None,
            expansions: dict | None = None) -> Network | None:
    """Expand one target, with the arguments given from outside bound over its own (and
    `symbols`, the input's size names, as their SymDims; `expansions`: Expander's)."""
    expander = Expander(sink, target.name, symbols=symbols, missing_hint=_missing_hint(target),
                        expansions=expansions)
    try:
        args, spans = _override(target, given.args(target.span),
                                Evaluator(Env(), given.namespace, None, True))
    except (EvalError, LimitError) as exc:
        expander.report(fit_hint(exc.diagnostic))
        return None
    network = expander.instantiate(target.definition, target.namespace, args, target.span,
                                   input_shape, spans)
    if network is not None:
        network.name = target.name
    return network


def _missing_hint(target: Target) -> Callable[[list[str]], str]:
    """How to give a network's missing parameters: keywords from Python (and in a variant),
    --set on the command line, where a network can also be swapped for a variant."""
    if not ON_COMMAND_LINE.get():
        return keywords_hint
    is_variant = target.name != target.definition.name

    def hint(missing: list[str]) -> str:
        settings = " ".join(f"--set {m}=..." for m in missing)
        if is_variant:
            return f"pass {settings}"
        them = "them" if len(missing) > 1 else "it"
        return f"pass {settings}, or name a variant that gives {them} with --net"

    return hint


def is_size_name(value: object) -> bool:
    """A size name of an input shape: an identifier (`H`), not a keyword."""
    return isinstance(value, str) and value.isidentifier() and not keyword.iskeyword(value)


def input_symbols(target: Target) -> tuple[str, ...]:
    """The size names of a network's input (`input [3, H, W]`): names its first statement
    reads that nothing defines."""
    body = target.definition.body
    if not body or not isinstance(body[0], n.Input):
        return ()
    defined = {p.name for p in target.definition.params} | set(target.namespace) | set(BUILTINS)
    found: list[str] = []
    for node in n.walk(body[0].shape):
        if isinstance(node, n.Name) and node.id not in defined and node.id not in found:
            found.append(node.id)
    return tuple(found)


def _expand_sizes(target: Target, given: Given, input_shape: tuple | None,
                  sink: list[Diagnostic], expansions: dict) -> Network | None:
    """Expand one target; where its input has size names (in the spec, or `input_shape`
    holding names), for every size at once (sizes.py), keeping the network at a sample
    size with the valid sizes of each name."""
    names = input_symbols(target)
    if input_shape is not None:  # it replaces the spec's input, names and all
        names = tuple(d for d in input_shape if isinstance(d, str))
    if not names:
        return _expand(target, given, input_shape, sink, expansions=expansions)
    declared = _declared_sizes(target, given, input_shape)
    sweep = Sweep(lambda values: _sized_run(target, given, input_shape, values, declared))
    found = analyse(sweep, names, declared)
    network, diagnostics = found.run.result
    if network is None or not found.run.valid and all(s.empty for s in found.sets.values()):
        sink.extend(diagnostics)
        return None
    sink.extend(d for d in diagnostics if d.severity == "warning")
    network.sizes = found
    return network


AXES = {1: ("F",), 2: ("T", "F"), 3: ("C", "H", "W"), 4: ("C", "D", "H", "W")}


def input_sizes(network: Network) -> dict[str, SizeSet]:
    """The sizes each dimension of a checked network's first input may take, channels
    included, with the weights it was built with: every dim a name (AXES), declared at the
    network's own size. A built module accepts exactly these (named extra inputs: their
    declared shape)."""
    target = Target(network.name, network.source, network.namespace, network.args, {},
                    network.span)
    names = AXES[len(network.input_shape)]
    declared = dict(zip(names, map(int, network.input_shape)))
    sweep = Sweep(lambda values: _sized_run(target, Given(), names, values, declared))
    return analyse(sweep, names, declared).sets


def _declared_sizes(target: Target, given: Given, input_shape: tuple | None) -> dict:
    """The spec's own sizes where `--input` names them (`--input 3,H,W` on a spec declaring
    3x224x224: H=224, W=224): the network's weights are those of these sizes."""
    if input_shape is None or input_symbols(target):
        return {}
    network = _expand(target, given, None, [])
    if network is None or len(network.input_shape) != len(input_shape):
        return {}
    return {name: size for name, size in zip(input_shape, network.input_shape)
            if isinstance(name, str)}


def _sized_run(target: Target, given: Given, input_shape: tuple | None,
               values: dict[str, int], declared: dict[str, int]) -> Run:
    """One checking run at sample sizes, recording the conditions it holds under."""
    dims = {name: SymDim(size, Poly.var(name)) for name, size in values.items()}
    sink: list[Diagnostic] = []
    with recording() as recorder, budget():
        if input_shape is None:
            network = _expand(target, given, None, sink, symbols=dims)
        else:
            shape = tuple(dims[d] if isinstance(d, str) else d for d in input_shape)
            network = _expand(target, given, shape, sink)
        if network is not None:
            fixed_weights(network, declared, sink)
    errors = [d for d in sink if d.severity == "error"]
    return Run(recorder, errors, (network, sink), values)


def fixed_weights(network: Network, declared: dict[str, int], sink: list[Diagnostic]) -> None:
    """A network's weights cannot depend on its input size: with declared sizes they are
    those sizes' weights, and a size that needs others fails (E316, recorded as a
    condition); without, a layer whose weights depend on the size is an error at every size."""
    for layer in network.layers():
        if not isinstance(layer.params, SymDim):
            continue
        inputs = formula(layer.in_shape[-1]) if layer.in_shape else "?"
        if layer.params.poly.names() <= set(declared):
            weights = evaluator(layer.params.poly)(declared)
            if layer.params == weights:  # recorded: these sizes give the declared weights
                continue
            sink.append(Diagnostic(
                "E316", f"`{layer.op.name}` would need other weights at this size", layer.span,
                detail=f"it has {weights:,} parameters at the declared size, "
                       f"{int(layer.params):,} at this size",
                hint="give the network an input of the declared size, or pool to a fixed "
                     "size (adaptive_avgpool) before the layer"))
            return
        sink.append(Diagnostic(
            "E316", f"the weights of `{layer.op.name}` depend on the input size", layer.span,
            detail=f"it has {formula(layer.params)} parameters ({inputs} inputs per output)",
            hint="fix the size before it: pool to a fixed size (adaptive_avgpool(7) or "
                 "global_avgpool) before `flatten`, or give the input a number"))
        return


def load(path: str | os.PathLike, net: str | None = None,
         input_shape: InputShape | None = None, **params) -> Network:
    """The checked network `net` of a file (default: the first network or variant that can be
    checked), with `params` overriding its parameters and `input_shape` its `input`. Raises
    ArchError with every diagnostic when the file has errors. `path` may be a str or any
    os.PathLike; spec text is refused with a pointer to loads() rather than guessed at."""
    path = os.fspath(path)
    if isinstance(path, str) and ("\n" in path or "{" in path) and not os.path.exists(path):
        raise ArchError([Diagnostic("E103", "load() takes a path, and this looks like a "
                                    "spec's text", None, detail=f"got {path[:60]!r}...",
                                    hint="load a spec from text with archspec.loads(text)")])
    return _one(check_file(path, net, input_shape, params or None, first_only=net is None),
                path)


def loads(text: str, net: str | None = None, input_shape: InputShape | None = None, *,
          name: str = "<string>", **params) -> Network:
    """load() for a spec given as text; diagnostics point into it as `name`:line:col. The
    default name, `<string>`, cannot import; another name is the path the text stands for,
    and imports resolve relative to its folder (check_text)."""
    return _one(check_text(text, name, net, input_shape, params or None,
                           first_only=net is None), os.fspath(name))


def _one(result: CheckResult, path: str) -> Network:
    """The first network checked, or ArchError with every diagnostic."""
    if result.errors or not result.networks:
        if not result.diagnostics:
            result.diagnostics.append(Diagnostic(
                "E211", f"`{path}` has no network that can be checked without arguments",
                None, hint="pass net=... and the network's parameters"))
        raise ArchError(result.diagnostics, result.sources)
    return result.networks[0]
