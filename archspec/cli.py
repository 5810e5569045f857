"""The `archspec` command line. Exit status: 0 clean, 1 spec errors, 2 usage or I/O errors.
No input, however broken, reaches the user as a Python traceback."""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shutil
import sys
from contextlib import nullcontext

from .check import CheckResult, allowed_dirs, check_file, is_size_name, read_spec
from .diagnostics import (
    ArchError,
    Diagnostic,
    format_github,
    format_one,
    format_text,
    one_line,
    printed,
)
from .limits import collect_if_piled_up
from .ops import Shape
from .settings import on_command_line, split_setting
from .sizes import note_lines
from .symbolic import SymDim, formula
from .version import __version__

EXIT_OK, EXIT_SPEC, EXIT_USAGE = 0, 1, 2
EXIT_BROKEN_PIPE = 128 + 13  # as a shell reports a command ended by SIGPIPE


class _Parser(argparse.ArgumentParser):
    """argparse that exits with status 2 and a short message, as documented."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"archspec: error: {message}\n")


def parse_shape(text: str) -> Shape:
    """`--input 3,224,224` (C,H,W), `--input 784` (features), `--input 35,28` (a sequence)
    or `--input 1,16,32,32` (a volume)."""
    try:
        dims = tuple(_dimension(x.strip()) for x in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected C,H,W, F, T,F or C,D,H,W, got {text!r}"
                                         ) from None
    if len(dims) not in (1, 2, 3, 4) or min((d for d in dims if isinstance(d, int)), default=1) < 1:
        raise argparse.ArgumentTypeError(
            f"expected C,H,W, F, T,F or C,D,H,W of positive ints, got {text!r}")
    return dims


def _dimension(text: str) -> int | str:
    """A number, or a size name (`H`): checked for every size at once."""
    return text if is_size_name(text) else int(text)


def _setting(text: str) -> tuple[str, str]:
    """`--set NAME=VALUE`: the form here; VALUE is parsed with the spec's grammar later."""
    try:
        return split_setting(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _Settings(argparse.Action):
    """--set, repeatable: NAME -> VALUE text, each NAME once."""

    repeatable = True  # for the completion scripts

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        name, value = values
        settings = dict(getattr(namespace, self.dest) or {})
        if name in settings:
            parser.error(f"argument --set: {name} is set twice ({name}={settings[name]} and "
                         f"{name}={value}): keep one")
        settings[name] = value
        setattr(namespace, self.dest, settings)


def add_set_argument(parser) -> None:
    parser.add_argument("--set", dest="settings", type=_setting, action=_Settings,
                        default={}, metavar="NAME=VALUE",
                        help="give the network's parameter NAME the VALUE, written as in a "
                             "variant: --set classes=10 --set 'layers=[3, 4, 6, 3]' --set "
                             "block=bottleneck (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="archspec", description="Check, compile, summarise and draw "
                     "convolutional networks written as .arch specs.")
    parser.add_argument("--version", action="version", version=f"archspec {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    check = commands.add_parser(
        "check", help="check shapes and channels of every network statically",
        description="Check every network and variant in the files (or the one --net names) "
                    "and report all errors. Exit 0 when clean, 1 on spec errors, 2 on usage "
                    "or I/O errors.")
    check.add_argument("files", nargs="+", metavar="FILE", help=".arch files to check")
    check.add_argument("--net", help="check only this network or variant")
    check.add_argument("--input", type=parse_shape, metavar="C,H,W",
                       help="check at another input shape (C,H,W, F, a sequence T,F or a "
                            "volume C,D,H,W)")
    check.add_argument("--format", choices=["text", "json", "github"], default="text",
                       help="text for people, json for tools, github for workflow annotations")
    check.add_argument("-q", "--quiet", action="store_true",
                       help="print diagnostics only, not the per-network lines")
    compile_ = commands.add_parser(
        "compile", help="write a network as a standalone PyTorch file",
        description="Compile a file's networks and variants (or the one --net names) to "
                    "a PyTorch model definition that needs only torch: a class per block, a "
                    "network class taking the network's parameters, a builder per network "
                    "and variant. Prints to stdout unless -o is given; the file is written "
                    "atomically (on any error an existing file is left untouched).")
    add_target_arguments(compile_)
    compile_.add_argument("-o", "--output", metavar="OUT.py", help="write here, not to stdout")
    compile_.add_argument("--verify", action="store_true",
                          help="run the built module once on PyTorch's meta device and "
                               "confirm every layer's shape, and import the compiled source "
                               "and confirm it builds the same modules and state_dict "
                               "(imports torch); a network build() would refuse for its "
                               "memory is E502")
    compile_.add_argument("--max-bytes", type=_positive, default=None, metavar="N",
                          help="with --verify: the memory budget in bytes (default: the "
                               "memory free now)")
    _add_summary_parsers(commands)
    _add_diagram_parser(commands)
    _add_lsp_parser(commands)
    for name in ("check", "compile", "summary", "diff", "diagram"):
        add_set_argument(commands.choices[name])
    for command in commands.choices.values():
        command.add_argument("--allow-dir", action="append", default=[], metavar="DIR",
                             help="let imports also read from DIR and below (repeatable; "
                                  "the spec's own folder is always allowed)")
    _add_fmt_parser(commands)
    completion = commands.add_parser(
        "completion", help="print a shell completion script (bash or zsh)",
        description="Print the completion script for bash or zsh: subcommands, options, "
                    "choices, .arch files, and --net names read from the FILE on the line. "
                    'Load it with eval "$(archspec completion bash)" in ~/.bashrc, or eval '
                    '"$(archspec completion zsh)" after compinit in ~/.zshrc.')
    completion.add_argument("shell", choices=["bash", "zsh"])
    return parser


def run_completion(args) -> int:
    from .completion import bash_script, zsh_script

    script = bash_script if args.shell == "bash" else zsh_script
    sys.stdout.write(script(build_parser()))
    return EXIT_OK


def _add_fmt_parser(commands) -> None:
    fmt = commands.add_parser(
        "fmt", help="lay out .arch files in the one canonical style",
        description="Rewrite the files in archspec's layout (indentation, spacing, comments "
                    "kept; the tokens never change, so the files check the same). `-` reads "
                    "stdin and writes stdout. A file with syntax errors is reported and left "
                    "untouched. Exit 0 when done, 1 on syntax errors (or, with --check, if "
                    "a file would change), 2 on I/O errors.")
    fmt.add_argument("files", nargs="+", metavar="FILE", help=".arch files, or - for stdin")
    fmt.add_argument("--check", action="store_true",
                     help="change nothing; list the files that would change, exit 1 if any")
    fmt.add_argument("--diff", action="store_true",
                     help="change nothing; print what would change as a unified diff")


def _add_summary_parsers(commands) -> None:
    summary = commands.add_parser(
        "summary", help="parameter, MAC and FLOP table of a network",
        description="Rows per module (folded to --depth), with parameters, MACs, FLOPs and "
                    "activations, and totals. MACs are conv, linear and recurrent weight "
                    "multiply-accumulates, FLOPs = 2 x MACs unless --count all; see "
                    "docs/counting.md. Nothing is run and torch is not needed.")
    add_target_arguments(summary)
    summary.add_argument("--input", type=parse_shape, metavar="C,H,W",
                         help="summarise at another input shape")
    summary.add_argument("--batch", type=_positive, default=1, metavar="N",
                         help="batch size for MACs, FLOPs and activations (default 1)")
    summary.add_argument("--depth", type=_positive, default=1, metavar="N",
                         help="levels of modules to show (default 1: the network's children)")
    summary.add_argument("--format", choices=["table", "markdown", "csv", "json", "latex"],
                         default="table", help="latex: a booktabs table with siunitx numbers")
    summary.add_argument("--count", choices=["macs", "all"], default="macs",
                         help="all: FLOPs also count bias, norms, activations, pooling and "
                              "adds, by the rules in docs/counting.md")
    summary.add_argument("--rf", action="store_true",
                         help="show receptive field and effective stride per row")
    _add_latex_arguments(summary)
    diff = commands.add_parser(
        "diff", help="compare two networks stage by stage",
        description="Two networks or variants side by side per stage (the network's direct "
                    "children), with the deltas of parameters and MACs. Name a variant as "
                    "FILE:NET.")
    diff.add_argument("first", metavar="A.arch[:NET]")
    diff.add_argument("second", metavar="B.arch[:NET]")
    diff.add_argument("--input", type=parse_shape, metavar="C,H,W")


def _add_latex_arguments(summary) -> None:
    summary.add_argument("--caption", metavar="TEXT",
                         help="with --format latex: the table's caption (printed as written: "
                              "LaTeX's special characters are escaped)")
    summary.add_argument("--label", type=_latex_key, metavar="KEY",
                         help="with --format latex: the table's \\label (default tab:NET)")


def _latex_key(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9:._/+-]+", text):
        raise argparse.ArgumentTypeError(
            f"a label is letters, digits and : . _ / + -, got {text!r}")
    return text


def _summary_text(args, summary) -> str:
    """The table in the format asked for."""
    from .summary import FORMATS, format_latex, format_table

    if args.format == "latex":
        return format_latex(summary, args.caption, args.label)
    return format_table(summary, args.rf) if args.format == "table" else \
        FORMATS[args.format](summary)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_target_arguments(parser) -> None:
    """FILE and --net, as every command that works on one network takes them."""
    parser.add_argument("file", metavar="FILE", help=".arch file")
    parser.add_argument("--net", help="network or variant (default: the first in the file)")


def one_network(path: str, net: str | None, shape, settings: dict[str, str],
                inputs: list[str] | None = None):
    """Check a file and return (network, status); diagnostics are printed. The files read
    (the spec and its imports) are added to `inputs`, which outputs may not replace."""
    networks, status = some_networks(path, net, shape, settings, inputs, first_only=net is None)
    return (networks[0] if networks else None), status


def some_networks(path: str, net: str | None, shape, settings: dict[str, str],
                  inputs: list[str] | None = None, first_only: bool = False):
    """(networks, status): `net`, or every network and variant of the file that needs no
    arguments (the first only with `first_only`), with `settings` (--set); diagnostics are
    printed."""
    result = check_file(path, net, shape, None, first_only=first_only, settings=settings)
    if inputs is not None:
        inputs.extend([path, *result.sources])
    _print_diagnostics(result)
    if result.errors or result.unreadable or not result.networks:
        if not result.errors and not result.unreadable:  # perhaps warnings, but no reason
            print(format_one(Diagnostic(
                "E211", f"`{path}` has no network that can be used without arguments", None,
                hint="name a variant with --net, or give the network's parameters with "
                     "--set NAME=VALUE"), None) + "\n", file=sys.stderr)
        return [], _status(result) or EXIT_SPEC
    return result.networks, EXIT_OK


def run_summary(args) -> int:
    from .summary import summarize

    if args.format != "latex" and (args.caption is not None or args.label is not None):
        print("archspec: error: --caption and --label go with --format latex", file=sys.stderr)
        return EXIT_USAGE
    network, status = one_network(args.file, args.net, args.input, args.settings)
    if network is None:
        return status
    summary = summarize(network, args.depth, args.batch, args.count == "all")
    sys.stdout.write(_summary_text(args, summary))
    return EXIT_OK


def run_diff(args) -> int:
    from .summary import format_diff, summarize

    summaries, checked = [], {}
    for target in (args.first, args.second):
        path, _, net = target.partition(":") if target.count(":") == 1 else (target, "", "")
        key = (os.path.realpath(path), net)
        if key not in checked:  # the same network twice is checked once
            checked[key] = one_network(path, net or None, args.input, args.settings)
        network, status = checked[key]
        if network is None:
            return status
        summaries.append(summarize(network))
    sys.stdout.write(format_diff(*summaries, one_line(args.first), one_line(args.second)))
    return EXIT_OK


def _add_diagram_parser(commands) -> None:
    """Register `archspec diagram` (graphviz itself is imported only to draw)."""
    from .diagram_options import THEMES, parse_depth, parse_fit_option

    diagram = commands.add_parser(
        "diagram", help="draw a network with Graphviz (SVG, PNG, PDF or DOT)",
        description="Draw one network or variant: block calls as nodes (consecutive identical "
                    "ones as one node marked xN), or as labelled clusters up to --depth "
                    "levels; merges as their own nodes; edges labelled with tensor shapes. "
                    "The format follows OUT's suffix; the file is written atomically. Without "
                    "Graphviz's `dot`, the DOT source is written instead (exit 0 for .dot, 2 "
                    "otherwise).")
    add_target_arguments(diagram)
    diagram.add_argument("-o", "--output", required=True,
                         metavar="OUT.{svg,png,pdf,dot,html}",
                         help="where to write; the suffix picks the format; `-` writes to "
                              "stdout (DOT unless --format says otherwise); .html: one page "
                              "whose blocks open and close on click")
    diagram.add_argument("--depth", type=parse_depth, default=0, metavar="N",
                         help="levels of block calls drawn as clusters (default 0: every "
                              "block call one node; `all` expands everything)")
    diagram.add_argument("--rankdir", choices=["TB", "LR"], default="TB",
                         help="top to bottom (default) or left to right")
    diagram.add_argument("--theme", choices=sorted(THEMES), default="paper",
                         help="paper: compact serif; slides: large sans-serif")
    diagram.add_argument("--no-shapes", action="store_true",
                         help="leave the tensor shapes off the edges")
    diagram.add_argument("--fit", type=parse_fit_option, metavar="W:H|none",
                         help="wrap the drawing into columns (rows for LR) to this aspect "
                              "ratio, such as 16:9 or 4:3 (default: 16:9 with the slides "
                              "theme, none with paper)")
    diagram.add_argument("--input", type=parse_shape, metavar="C,H,W",
                         help="draw at another input shape")
    _add_block_argument(diagram)
    _add_diagram_view_options(diagram)


def _add_block_argument(diagram) -> None:
    diagram.add_argument("--block", metavar="NAME",
                         help="draw only this block, for its first call in the network "
                              "(or the block call or label at this module path, such as "
                              "layer1.1), as papers draw a module; --depth opens the calls "
                              "inside it")


def _add_diagram_view_options(diagram) -> None:
    """--expand, --stats, --no-legend, --title and --format of `archspec diagram`."""
    diagram.add_argument("--format", choices=[*DIAGRAM_FORMATS], default=None,
                         help="the format, whatever OUT's suffix (needed for -o - but for DOT)")
    diagram.add_argument("--expand", type=_names, default=[], metavar="NAME[,NAME...]",
                         help="open these block calls, by module path (`layer2.0`, "
                              "`inception3a`), and the block calls around them")
    diagram.add_argument("--stats", action="store_true",
                         help="write each node's parameters and MACs on it")
    diagram.add_argument("--no-legend", action="store_true",
                         help="leave off the title line and the colour legend")
    diagram.add_argument("--title", metavar="TEXT",
                         help="the title, in place of the network's name (kept with "
                              "--no-legend)")


DIAGRAM_FORMATS = ("svg", "png", "pdf", "dot", "html")


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected NAME[,NAME...], got {text!r}")
    return names


def _diagram_format(args) -> str | None:
    """--format, else OUT's suffix (`.html` too), else DOT for stdout."""
    from .diagram import output_format

    if args.format is not None:
        return args.format
    if args.output == "-":
        return "dot"
    return "html" if args.output.lower().endswith((".html", ".htm")) else \
        output_format(args.output)


def _diagram_bytes(network, args, fmt: str, source: str) -> bytes:
    """The output of `source` (the DOT text) in `fmt`: an HTML page draws its own pictures.
    Raises DotMissing or RenderError as render()."""
    from .diagram import render

    if fmt != "html":
        return render(source, fmt, args.theme)
    from .diagram_html import to_html

    return to_html(network, args.depth, args.rankdir, args.theme, not args.no_shapes,
                   stats=args.stats, legend=not args.no_legend, title=args.title,
                   fit=args.fit or "theme").encode("utf-8")


def run_diagram(args) -> int:
    """`archspec diagram`: 0 written, 1 spec errors, 2 usage, I/O or Graphviz errors."""
    from .diagram import INSTALL_HINT, DotMissing, RenderError, to_dot
    from .diagram_options import depth_text
    from .output import write_atomic

    fmt = _diagram_format(args)
    if fmt is None:
        print(f"archspec: error: cannot tell the format of `{one_line(args.output)}`: use a "
              ".svg, .png, .pdf, .dot or .html file, or --format", file=sys.stderr)
        return 2
    if fmt == "html" and args.expand:
        print("archspec: error: --expand does not apply to an HTML page, whose blocks open "
              "on click: leave it off", file=sys.stderr)
        return 2
    inputs: list[str] = []
    network, status = one_network(args.file, args.net, args.input, args.settings, inputs)
    if network is None:
        return status
    source = to_dot(network, args.depth, args.rankdir, args.theme, not args.no_shapes,
                    args.block, expand=args.expand, stats=args.stats,
                    legend=not args.no_legend, title=args.title, fit=args.fit or "theme")
    try:
        try:
            data = _diagram_bytes(network, args, fmt, source)
        except DotMissing:
            if args.output == "-" or fmt == "html":
                print(f"archspec: error: Graphviz's `dot` was not found, so no "
                      f"{fmt.upper()} was drawn\n  = hint: {INSTALL_HINT}", file=sys.stderr)
                return 2
            fallback = os.path.splitext(args.output)[0] + ".dot"
            write_atomic(fallback, source.encode("utf-8"), inputs)
            shown, target = one_line(fallback), one_line(args.output)
            print(f"archspec: error: Graphviz's `dot` was not found, so no {fmt.upper()} was "
                  f"drawn; wrote the DOT source to {shown}\n  = hint: {INSTALL_HINT}, then "
                  f"run `dot -T{fmt} {shown} -o {target}`", file=sys.stderr)
            return 2
        except RenderError as exc:
            print(f"archspec: error: {one_line(str(exc))}", file=sys.stderr)
            return 2
        if args.output == "-":
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
            return 0
        write_atomic(args.output, data, inputs)
    except OSError as exc:
        print(f"archspec: error: cannot write {one_line(args.output)}: "
              f"{one_line(str(exc.strerror or exc))}", file=sys.stderr)
        return 2
    block = f", block {one_line(args.block)}" if args.block else ""
    print(f"{one_line(args.output)}: {one_line(network.name)} ({fmt}, depth "
          f"{depth_text(args.depth)}{block})",
          file=sys.stderr)
    if fmt == "dot" and shutil.which("dot") is None:
        print(f"note: Graphviz's `dot` was not found; to draw this file, {INSTALL_HINT}",
              file=sys.stderr)
    return 0


def _add_lsp_parser(commands) -> None:
    """Register `archspec lsp` (pygls is imported only to serve)."""
    lsp = commands.add_parser(
        "lsp", help="run the language server for editors (stdin/stdout)",
        description="Serve the Language Server Protocol on stdin/stdout for an editor: "
                    "diagnostics as you type, hover with shapes, parameters and MACs, go to "
                    "definition, completion and document symbols. Needs pygls "
                    "(pip install 'pygls>=2.0,<3', or the lsp extra: pip install '.[lsp]' in "
                    "archspec's folder); see docs/editors.md.")
    lsp.add_argument("--stdio", action="store_true",
                     help="talk over stdin/stdout (the default and only transport; accepted "
                          "because editors' clients pass it)")


def run_lsp(args) -> int:
    """`archspec lsp`: serves until the editor says exit; 2 without pygls."""
    try:
        from .lsp import serve
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in ("pygls", "lsprotocol"):
            raise
        print("archspec: error: the language server needs pygls: pip install "
              "'pygls>=2.0,<3' (archspec's lsp extra)", file=sys.stderr)
        return EXIT_USAGE
    gc.enable()  # a long-lived process: each check pauses the collector on its own
    serve()
    return EXIT_OK


def _print_diagnostics(result: CheckResult) -> None:
    """Text diagnostics on stderr, at most MAX_PRINTED of them."""
    shown, closing = printed(result.diagnostics)
    for diag in shown:
        source = result.sources.get(diag.span.file) if diag.span else None
        print(format_one(diag, source) + "\n", file=sys.stderr)
    if closing:
        print(closing + "\n", file=sys.stderr)


def _print_github(result: CheckResult) -> None:
    """Workflow commands on stdout, at most MAX_PRINTED of them."""
    shown, closing = printed(result.diagnostics)
    for diag in shown:
        print(format_github(diag))
    if closing:
        print(closing)


def run_compile(args) -> int:
    if args.max_bytes is not None and not args.verify:
        print("archspec: error: --max-bytes goes with --verify", file=sys.stderr)
        return EXIT_USAGE
    inputs: list[str] = []
    networks, status = some_networks(args.file, args.net, None, args.settings, inputs)
    if not networks:
        return status
    from .output import write_atomic
    from .torch_source import generate

    if args.verify:
        try:
            from .torch_backend import verify_network, verify_source
        except ModuleNotFoundError as exc:
            if exc.name != "torch":
                raise
            print(f"archspec: error: --verify runs the network: {exc}", file=sys.stderr)
            return EXIT_USAGE
        for network in networks:
            verify_network(network, args.max_bytes)
            verify_source(network, generate(network, args.file))
    source = generate(networks, args.file)
    if args.output:
        try:
            write_atomic(args.output, source, inputs)
        except OSError as exc:
            print(f"archspec: error: cannot write {one_line(args.output)}: "
                  f"{one_line(str(exc.strerror or exc))}", file=sys.stderr)
            return EXIT_USAGE
        names = ", ".join(one_line(n.name) for n in networks)
        print(f"{one_line(args.output)}: {names}", file=sys.stderr)
    else:
        sys.stdout.write(source)
    return EXIT_OK


def _network_line(path: str, network) -> str:
    line = (f"{one_line(path)}: {one_line(network.name)}: ok  {network.describe()}  "
            f"{network.params:,} params  {network.macs:,} MACs")
    sizes = network.sizes
    if sizes is None:
        return line
    at = ", ".join(f"{name}={size}" for name, size in sizes.witness.items())
    valid = ", ".join(s.describe(name) for name, s in sizes.sets.items())
    notes = "".join(f"\n  {one_line(line)}" for line in note_lines(sizes.notes))
    return f"{line} at {at}\n  valid sizes: {valid}{notes}"


def _sizes_json(network) -> dict:
    """`input_sizes` of a network with size names: each name's set, and why others fail."""
    sizes = network.sizes
    if sizes is None:
        return {}
    return {"input_sizes": {name: s.to_json() for name, s in sizes.sets.items()},
            "sample_sizes": sizes.witness,
            "size_notes": [{"axis": note.axis, "sizes": note.sizes.describe(note.axis),
                            "sizes_set": note.sizes.to_json(),
                            **note.diagnostic.to_json()} for note in sizes.notes]}


def _json_shape(shape) -> list:
    """Numbers, and formulas (`"ceil(H/32)"`) for sizes that depend on size names."""
    return [formula(d) if isinstance(d, SymDim) else d for d in shape]


def _outputs_json(network) -> dict:
    """`outputs` of a network with `return(...)`: key (null in a tuple), shape, training."""
    if network.outputs is None:
        return {}
    return {"outputs": [{"key": o.key, "shape": list(o.shape), "training": o.training}
                        for o in network.outputs]}


def _status(result: CheckResult) -> int:
    if result.unreadable:
        return EXIT_USAGE
    return EXIT_SPEC if result.errors else EXIT_OK


def run_check(args) -> int:
    results = [(path, _check_one(path, args)) for path in args.files]
    if args.format == "json":
        report = [{
            "file": path,
            "ok": not result.errors and not result.unreadable,
            "settings": args.settings,
            "networks": [{"name": net.name, "input_shape": _json_shape(net.input_shape),
                          "output_shape": _json_shape(net.output_shape or ()),
                          **_outputs_json(net),
                          **({"inputs": [{"name": name, "shape": list(shape)}
                                         for name, shape in net.inputs]} if net.inputs else {}),
                          "params": int(net.params), "macs": int(net.macs),
                          **_sizes_json(net)} for net in result.networks],
            "diagnostics": [d.to_json() for d in result.diagnostics],
        } for path, result in results]
        print(json.dumps(report, indent=2))
    for path, result in results if args.format != "json" else ():
        if args.format == "github":
            _print_github(result)
        else:
            _print_diagnostics(result)
        if args.format == "text" and not args.quiet and not result.errors:
            for network in result.networks:
                print(_network_line(path, network))
    _summary_line(results, args.format)
    return max((_status(r) for _, r in results), default=EXIT_OK)


def _summary_line(results, fmt: str) -> None:
    if fmt != "text":
        return
    errors = sum(len(r.errors) for _, r in results)
    warnings = sum(len(r.diagnostics) - len(r.errors) for _, r in results)
    if errors or warnings:
        print(f"{errors} error(s), {warnings} warning(s) in {len(results)} file(s)",
              file=sys.stderr)


def run_fmt(args) -> int:
    return max(_fmt_one(path, args.check, args.diff) for path in args.files)


def _fmt_one(path: str, check: bool, diff: bool) -> int:
    """Format one file (or stdin): its exit status."""
    from .fmt import format_source, unified_diff
    from .output import write_atomic

    stdin = path == "-"
    name = "<stdin>" if stdin else path
    try:
        source = sys.stdin.read() if stdin else read_spec(path)
    except ArchError as exc:  # refused or unreadable, as `check` refuses it
        print(format_text(exc.diagnostics, exc.sources), file=sys.stderr)
        return EXIT_USAGE
    except UnicodeDecodeError as exc:
        print(f"archspec: error: cannot read {name}: {one_line(exc.reason)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        formatted = format_source(source, name)
    except ArchError as exc:
        print(format_text(exc.diagnostics, exc.sources), file=sys.stderr)
        return EXIT_SPEC
    changed = formatted != source
    if diff:
        sys.stdout.write(unified_diff(source, formatted, name))
    if check or diff:
        if changed and check:
            print(f"would reformat {one_line(name)}", file=sys.stderr)
        return EXIT_SPEC if changed and check else EXIT_OK
    if stdin:
        sys.stdout.write(formatted)
    elif changed:
        write_atomic(path, formatted)
        print(f"reformatted {one_line(name)}", file=sys.stderr)
    return EXIT_OK


def _degrade_streams() -> None:
    """On a console that cannot show a character (an ASCII locale), print it escaped
    (`\\xfc`) rather than fail with UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # a closed or unusual stream: leave it be
                pass


def _reader_went_away() -> int:
    """`archspec check ... | head`: the reader closed the pipe; stop quietly, as cat does
    (stdout goes to /dev/null so that the interpreter's final flush cannot fail again)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_BROKEN_PIPE


def _check_one(path: str, args) -> CheckResult:
    result = check_file(path, args.net, args.input, settings=args.settings)
    collect_if_piled_up()
    return result


def run() -> None:
    """The `archspec` command: main() in a process that runs without the cyclic collector,
    which a short run does not need (limits.collector_paused: a fifth of a large check's
    time). It ends without tearing its objects down one by one (a 90,000-layer network:
    0.2 s), unless torch was loaded, whose exit handlers must run, or the output cannot
    be flushed, which the interpreter reports in its usual way. Pydantic's plugins (tools
    that watch an application's validation) have nothing to watch in archspec's own
    argument schemas: unless the environment says otherwise, pydantic does not look for
    them, which reads the metadata of every installed package."""
    gc.disable()
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    code = main()
    if "torch" in sys.modules:
        raise SystemExit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a stream that fails or was closed (the language server)
        raise SystemExit(code) from None
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    _degrade_streams()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        runners = {"check": run_check, "compile": run_compile, "summary": run_summary,
                   "diff": run_diff, "diagram": run_diagram, "lsp": run_lsp, "fmt": run_fmt,
                   "completion": run_completion}
        settings_hints = on_command_line() if hasattr(args, "settings") else nullcontext()
        with allowed_dirs(getattr(args, "allow_dir", [])), settings_hints:
            return runners[args.command](args)
    except ArchError as exc:
        print(format_text(exc.diagnostics, exc.sources), file=sys.stderr)
        return EXIT_SPEC
    except BrokenPipeError:
        return _reader_went_away()
    except OSError as exc:
        print(f"archspec: error: {one_line(str(exc.strerror or exc))}: "
              f"{one_line(str(exc.filename or ''))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except RecursionError:
        print("archspec: error: the spec is nested too deeply to check", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - a bug in archspec: say so, never a traceback
        print(f"archspec: internal error: {type(exc).__name__}: {one_line(str(exc))}\n"
              "please report this with the spec that caused it", file=sys.stderr)
        return EXIT_USAGE
