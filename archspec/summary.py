"""Tables backend: parameters, MACs, FLOPs, activations and receptive fields per row, read
from the checked IR (no torch, nothing run). Conventions are in docs/counting.md.

Rows follow the module tree: a row per module scope (block call or label) and per layer;
`depth` folds rows into their scope (1 = the network's direct children), and consecutive
identical scopes are shown once with a count (a ResNet stage's repeated blocks).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from html import escape
from math import prod

from . import ir
from .ops import Shape, fmt_shape
from .sizes import Sizes
from .symbolic import formula

BYTES_PER_VALUE = 4  # float32
JSON_SCHEMA_VERSION = 1


# what `--count all` calls a merge whose operations are a copy, counted as 0
MERGE_NAMES = {"concat": "concat", "split": "split and concat", "dense": "dense concat"}


@dataclass
class Row:
    name: str  # module path; a folded repeat shows its first and last index
    op: str  # op name, block name, or `group` for a label
    depth: int
    input_shape: Shape | None
    output_shape: Shape | None
    kernel: str = ""  # "3x3/2": kernel / stride for convs and pools
    params: int = 0
    macs: int = 0
    flops: int = 0
    activations: int = 0  # values written by this row, whole batch
    count: int = 1  # identical consecutive scopes folded into this row
    rf: str = ""  # receptive field of one output value, in input pixels
    jump: str = ""  # effective stride: input pixels between neighbouring outputs


@dataclass
class Summary:
    network: str
    input_shape: Shape
    output_shape: Shape | None
    batch: int
    count_all: bool
    rows: list[Row]
    params: int
    macs: int
    flops: int
    activations: int
    zero_by_rule: list[str] = field(default_factory=list)
    outputs: str = ""  # the outputs of `return(...)`, as `Network.describe_outputs` says
    inputs: str = ""  # the inputs, where there are several (`Network.describe_inputs`)
    training_params: int = 0  # in `aux` branches, which run only in training mode
    training_macs: int = 0
    sizes: Sizes | None = None  # with size names: the valid sizes; the numbers at a sample

    @property
    def param_bytes(self) -> int:
        return self.params * BYTES_PER_VALUE

    @property
    def activation_bytes(self) -> int:
        return self.activations * BYTES_PER_VALUE

    def __str__(self) -> str:
        return format_table(self)

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        """IPython prints the table, not the fields."""
        printer.text(str(self))

    def _repr_html_(self) -> str:
        return format_html(self)


# ---------------------------------------------------------------- counting


@dataclass
class _Totals:
    params: int = 0
    macs: int = 0
    flops: int = 0
    activations: int = 0
    zero_ops: set = field(default_factory=set)


class _Counter:
    """Walks the IR once, accumulating totals per scope and receptive fields per node."""

    def __init__(self, batch: int, count_all: bool, input_shape: Shape):
        self.batch, self.count_all = batch, count_all
        spatial = len(input_shape) == 3
        self.fields: dict[int, tuple] = {}  # id(node) -> (rf_h, rf_w, jump_h, jump_w)
        self.named: dict[str, tuple | None] = {}  # the same of each named tensor (`Ref.key`)
        self.start = (1, 1, 1, 1) if spatial else None

    def layer(self, layer: ir.Layer) -> _Totals:
        out = prod(layer.out_shape)
        flops = 2 * layer.macs
        zero = set()
        if self.count_all:
            other = layer.op.other_ops(layer.attrs, layer.in_shape, layer.out_shape)
            flops += other
            if layer.op.other_rule.startswith("0:"):
                zero.add(layer.op.name)
        return _Totals(layer.params, layer.macs * self.batch, flops * self.batch,
                       out * self.batch, zero)

    def merge(self, node: ir.Node) -> _Totals:
        out = prod(node.out_shape)
        if isinstance(node, ir.Merge) and node.kind in ("add", "gate"):
            products = len(node.branches) - (node.kind == "add")  # a gate multiplies once
            extra = products * out if self.count_all else 0
            return _Totals(0, 0, extra * self.batch, out * self.batch)
        kind = node.kind if isinstance(node, ir.Merge) else "dense"
        zero = {MERGE_NAMES[kind]} if self.count_all else set()
        return _Totals(0, 0, 0, out * self.batch, zero)

    def receptive(self, node: ir.Node, before: tuple | None) -> tuple | None:
        """Receptive field and jump after `node`, per axis: r' = r + (k-1)*d*j, j' = j*s."""
        if before is None:
            return None
        if isinstance(node, ir.Layer):
            self.named[node.path] = _through_layer(node, before)
            return self.named[node.path]
        if isinstance(node, ir.Ref):
            return self.named.get(node.key)
        if isinstance(node, ir.Side):
            self.receptive(node.body, before)
            return before
        if isinstance(node, ir.Seq):
            self.named[f"{node.path}@input"] = before
            for child in node.children:
                before = self.receptive(child, before)
                self.fields[id(child)] = before
            if node.name is not None:
                self.named[node.path] = before
            return before
        if isinstance(node, ir.Merge):
            ends = [self.receptive(b, before) for b in node.branches]
            return _widest(ends + [before] * (node.kind == "gate"))
        widest = before  # of the input and every step so far: linear in the steps
        for step in node.steps:
            widest = _widest([widest, self.receptive(step, widest)])
        return widest


def _widest(fields: list) -> tuple | None:
    known = [f for f in fields if f is not None]
    if len(known) < len(fields) or not known:
        return None
    return (max(f[0] for f in known), max(f[1] for f in known),
            max(f[2] for f in known), max(f[3] for f in known))


def _through_layer(layer: ir.Layer, before: tuple) -> tuple | None:
    rf_h, rf_w, j_h, j_w = before
    attrs, shape = layer.attrs, layer.in_shape
    kind = layer.op.receptive
    if kind == "flat" and len(shape) == 3 and len(layer.out_shape) == 3:
        return before  # a linear inside channels_last: each position on its own
    if kind == "none":
        return None  # upsampling: neighbouring outputs are a fraction of a pixel apart
    if kind == "flat" or len(shape) != 3 or len(layer.out_shape) != 3:
        return None if kind == "flat" else before
    if kind == "window":
        (kh, kw), (sh, sw) = attrs["kernel"], attrs["stride"]
        dh, dw = attrs.get("dilation", (1, 1))
    elif kind == "adaptive":
        (_, h, w), (_, oh, ow) = shape, layer.out_shape
        kh, kw, sh, sw, dh, dw = -(-h // oh), -(-w // ow), h // oh, w // ow, 1, 1
    else:
        return before
    return (rf_h + (kh - 1) * dh * j_h, rf_w + (kw - 1) * dw * j_w, j_h * sh, j_w * sw)


def _kernel_text(layer: ir.Layer) -> str:
    attrs = layer.attrs
    if "kernel" not in attrs:
        return ""
    kernel, stride = attrs["kernel"], attrs["stride"]  # one number per axis
    if len(set(kernel)) == 1:
        kernel = (kernel[0],) * len(kernel)  # 3x3 for maps, 3 for sequences, 3x3x3
    stride_text = str(stride[0]) if len(set(stride)) == 1 else "x".join(map(str, stride))
    return "x".join(map(str, kernel)) + "/" + stride_text


def _pair_text(h: int, w: int) -> str:
    return str(h) if h == w else f"{h}x{w}"


# ---------------------------------------------------------------- rows


def summarize(network: ir.Network, depth: int = 1, batch: int = 1,
              count_all: bool = False) -> Summary:
    """The rows and totals of a checked network, rows folded below `depth`."""
    counter = _Counter(batch, count_all, network.input_shape)
    counter.receptive(network.body, counter.start)
    rows: list[Row] = []
    total = _collect(network.body.children, 1, depth, counter, rows, "")
    rows += _output_rows(network)
    aux = network.training_only_layers
    return Summary(network.name, network.input_shape, network.output_shape, batch, count_all,
                   _fold_repeats(rows), total.params, total.macs, total.flops,
                   total.activations, sorted(total.zero_ops), network.describe_outputs(),
                   network.describe_inputs(),
                   sum(layer.params for layer in aux), sum(layer.macs for layer in aux) * batch,
                   network.sizes)


def _output_rows(network: ir.Network) -> list[Row]:
    """A row per output of `return(...)`: which tensor it is, and whether eval gives it."""
    rows = []
    for i, output in enumerate(network.outputs or []):
        name = f"(return {output.key if output.key is not None else i})"
        source = "in" if output.target is None else f"@{output.target}"
        op = source + (" (aux)" if output.training else "")  # aux: training mode only
        rows.append(Row(name, op, 1, output.shape, output.shape))
    return rows


def _collect(nodes: list[ir.Node], level: int, depth: int, counter: _Counter,
             rows: list[Row], scope: str) -> _Totals:
    """Rows for `nodes` at `level` (kept if level <= depth); returns their totals."""
    total = _Totals()
    for node in nodes:
        part = _node_rows(node, level, depth, counter, rows, scope)
        total.params += part.params
        total.macs += part.macs
        total.flops += part.flops
        total.activations += part.activations
        total.zero_ops |= part.zero_ops
    return total


def _node_rows(node: ir.Node, level: int, depth: int, counter: _Counter, rows: list[Row],
               scope: str) -> _Totals:
    if isinstance(node, ir.Layer):
        totals = counter.layer(node)
        if level <= depth:
            rows.append(_row(node.path, node.op.name, level, node, totals, counter,
                             _kernel_text(node)))
        return totals
    if isinstance(node, ir.Seq) and node.name is not None:
        keep = level <= depth
        at = len(rows)
        totals = _collect(node.children, level + 1, depth, counter, rows, node.path)
        if keep:
            op = node.block.name if node.block else "group"
            rows.insert(at, _row(node.path, op, level, node, totals, counter, ""))
        return totals
    if isinstance(node, ir.Seq):
        return _collect(node.children, level, depth, counter, rows, scope)
    if isinstance(node, ir.Side):
        return _collect([node.body], level, depth, counter, rows, scope)
    if isinstance(node, ir.Ref):
        if level <= depth:  # a skip: where the tensor comes from
            name = f"{scope}.(@{node.target})" if scope else f"(@{node.target})"
            rows.append(_row(name, "from", level, node, _Totals(), counter, ""))
        return _Totals()
    children = node.branches if isinstance(node, ir.Merge) else node.steps
    totals = _collect(children, level, depth, counter, rows, scope)
    merge = counter.merge(node)
    if level <= depth:
        kind = node.kind if isinstance(node, ir.Merge) else "dense"
        name = f"{scope}.({kind})" if scope else f"({kind})"
        rows.append(_row(name, kind, level, node, merge, counter, ""))
    totals.flops += merge.flops
    totals.activations += merge.activations
    totals.zero_ops |= merge.zero_ops
    return totals


def _row(name: str, op: str, level: int, node: ir.Node, totals: _Totals, counter: _Counter,
         kernel: str) -> Row:
    field_ = counter.fields.get(id(node))
    rf = jump = ""
    if field_ is not None:
        rf, jump = _pair_text(field_[0], field_[1]), _pair_text(field_[2], field_[3])
    elif counter.start is not None and node.out_shape is not None and len(node.out_shape) == 1:
        rf = jump = "all"
    return Row(name, op, level, node.in_shape, node.out_shape, kernel, totals.params,
               totals.macs, totals.flops, totals.activations, 1, rf, jump)


def _fold_repeats(rows: list[Row]) -> list[Row]:
    """Consecutive identical scopes (same block, shapes and counts) become one row xN,
    together with the rows inside them, which are shown for the first only."""
    folded: list[Row] = []
    skip_prefix = None
    for row in rows:
        if skip_prefix and row.name.startswith(skip_prefix):
            continue
        skip_prefix = None
        previous = next((r for r in reversed(folded) if r.depth == row.depth), None)
        if (previous is not None and previous.op == row.op and row.op not in ("group",)
                and _same(previous, row) and _siblings(previous.name, row.name)):
            previous.count += 1
            previous.name = _range_name(previous.name, row.name)
            previous.params += row.params
            previous.macs += row.macs
            previous.flops += row.flops
            previous.activations += row.activations
            skip_prefix = row.name + "."
            continue
        folded.append(row)
    return folded


def _same(a: Row, b: Row) -> bool:
    """Same block and shapes, and per block the same counts (a folded row holds totals)."""
    per_block = (a.params // a.count, a.macs // a.count, a.flops // a.count)
    return (a.input_shape, a.output_shape, *per_block) == (
        b.input_shape, b.output_shape, b.params, b.macs, b.flops) and not b.name.endswith(")")


def _siblings(first: str, second: str) -> bool:
    parent_a, _, last_a = first.rpartition(".")
    parent_b, _, last_b = second.rpartition(".")
    index = last_a.split("-")[-1]
    return parent_a == parent_b and index.isdigit() and last_b.isdigit() \
        and int(last_b) == int(index) + 1


def _range_name(first: str, second: str) -> str:
    parent, _, last = first.rpartition(".")
    start = last.split("-")[0]
    end = second.rpartition(".")[2]
    return f"{parent}.{start}-{end}" if parent else f"{start}-{end}"


# ---------------------------------------------------------------- formats


def human(value: float) -> str:
    """1234 -> 1.23K: three significant digits, as on a slide."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _megabytes(value: int) -> str:
    return f"{value / 1e6:,.2f} MB"


def footer_lines(summary: Summary) -> list[str]:
    unit = f" (batch {summary.batch})" if summary.batch != 1 else ""
    flops_rule = ("2 x MACs + the other operations of every op (--count all)"
                  if summary.count_all else "2 x MACs")
    lines = [
        f"Total params:      {summary.params:,} ({_megabytes(summary.param_bytes)}, float32)",
        f"Trainable params:  {summary.params:,}",
        (f"MACs{unit}:{' ' * (13 - len(unit))} {summary.macs:,} ({human(summary.macs)}, "
         "conv, linear and recurrent weight multiply-accumulates)"),
        (f"FLOPs{unit}:{' ' * (12 - len(unit))} {summary.flops:,} ({human(summary.flops)}, "
         f"{flops_rule})"),
        (f"Activations{unit}:{' ' * (6 - len(unit))} {summary.activations:,} values, "
         f"{_megabytes(summary.activation_bytes)} float32 (every output, one forward pass)"),
        (f"Input {summary.inputs or fmt_shape(summary.input_shape)} -> output "
         f"{summary.outputs or fmt_shape(summary.output_shape)}"),
    ]
    lines += _size_lines(summary)
    if summary.training_params or summary.training_macs:
        lines.append(f"Training only:     {summary.training_params:,} params, "
                     f"{summary.training_macs:,} MACs (`aux`, counted above, not in eval mode)")
    if summary.count_all and summary.zero_by_rule:
        lines.append("Zero by rule (see docs/counting.md): " + ", ".join(summary.zero_by_rule))
    return lines


def _size_lines(summary: Summary) -> list[str]:
    """With size names: where the numbers above are taken, the valid sizes, and the MACs as
    a function of the sizes."""
    sizes = summary.sizes
    if sizes is None:
        return []
    at = ", ".join(f"{name}={size}" for name, size in sizes.witness.items())
    valid = ", ".join(s.describe(name) for name, s in sizes.sets.items())
    return [f"Sizes:             the numbers above are at {at}; valid: {valid}",
            (f"MACs{' (batch 1)' if summary.batch != 1 else ''} as a function of the sizes: "
             f"{formula(summary.macs // summary.batch)}")]


_TABLE = [("name", 19, "<"), ("op", 14, "<"), ("input", 12, ">"), ("output", 12, ">"),
          ("k/s", 6, ">"), ("params", 7, ">"), ("MACs", 7, ">"), ("FLOPs", 7, ">")]


def _cell(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "~"


def format_table(summary: Summary, rf: bool = False) -> str:
    """A terminal table that fits 100 columns."""
    columns = list(_TABLE)
    if rf:
        columns = [c for c in columns if c[0] not in ("input", "FLOPs")] + [
            ("RF", 7, ">"), ("jump", 5, ">")]
    else:
        columns.append(("act", 7, ">"))
    header = " ".join(f"{title:{align}{width}}" for title, width, align in columns)
    lines = [f"{summary.network}", header, "-" * len(header)]
    for row in summary.rows:
        name = "  " * (row.depth - 1) + row.name.rpartition(".")[2] if row.depth > 1 \
            else row.name
        values = {"name": name, "op": row.op + (f" x{row.count}" if row.count > 1 else ""),
                  "input": fmt_shape(row.input_shape), "output": fmt_shape(row.output_shape),
                  "k/s": row.kernel, "params": human(row.params), "MACs": human(row.macs),
                  "FLOPs": human(row.flops), "act": human(row.activations), "RF": row.rf,
                  "jump": row.jump}
        lines.append(" ".join(f"{_cell(values[title], width):{align}{width}}"
                              for title, width, align in columns).rstrip())
    lines.append("-" * len(header))
    return "\n".join(lines + footer_lines(summary)) + "\n"


_FIELDS = ["name", "op", "depth", "count", "input_shape", "output_shape", "kernel", "params",
           "macs", "flops", "activations", "rf", "jump"]


def _flat(row: Row) -> dict:
    data = asdict(row)
    data["input_shape"] = fmt_shape(row.input_shape)
    data["output_shape"] = fmt_shape(row.output_shape)
    return {key: data[key] for key in _FIELDS}


_FULL_HEAD = ["name", "op", "input", "output", "k/s", "params", "MACs", "FLOPs", "activations",
              "RF", "jump"]


def _full_cells(row: Row) -> list[str]:
    """A row's cells under _FULL_HEAD, the numbers exact (markdown and HTML)."""
    op = row.op + (f" x{row.count}" if row.count > 1 else "")
    return [row.name, op, fmt_shape(row.input_shape), fmt_shape(row.output_shape), row.kernel,
            f"{row.params:,}", f"{row.macs:,}", f"{row.flops:,}", f"{row.activations:,}",
            row.rf, row.jump]


def format_markdown(summary: Summary) -> str:
    lines = [f"**{summary.network}**", "", "| " + " | ".join(_FULL_HEAD) + " |",
             "|" + "---|" * len(_FULL_HEAD)]
    for row in summary.rows:
        name, *cells = _full_cells(row)
        lines.append("| " + " | ".join([f"`{name}`", *cells]) + " |")
    lines.append("")
    lines += [f"- {line}" for line in footer_lines(summary)]
    return "\n".join(lines) + "\n"


def format_html(summary: Summary) -> str:
    """The table as HTML, for notebooks; names come from specs, so every text is escaped."""
    return html_table(summary.network, _FULL_HEAD, [_full_cells(row) for row in summary.rows],
                      footer_lines(summary))


def html_table(title: str, head: list[str], rows: list[list[str]], notes: list[str]) -> str:
    """A captioned <table> and its notes below it, every text escaped."""
    def cells(tag: str, values: list[str]) -> str:
        return "<tr>" + "".join(f"<{tag}>{escape(value)}</{tag}>" for value in values) + "</tr>"

    body = "\n".join(cells("td", row) for row in rows)
    lines = "<br>\n".join(escape(" ".join(note.split())) for note in notes)
    return (f'<table class="archspec">\n<caption>{escape(title)}</caption>\n'
            f"<thead>{cells('th', head)}</thead>\n<tbody>\n{body}\n</tbody>\n</table>\n"
            f"<p>{lines}</p>\n")


def format_csv(summary: Summary) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in summary.rows:
        writer.writerow(_flat(row))
    return out.getvalue()


def to_json(summary: Summary) -> dict:
    """The documented JSON form (docs/counting.md, "JSON schema")."""
    return {
        "schema": JSON_SCHEMA_VERSION, "network": summary.network,
        "input_shape": list(summary.input_shape),
        "output_shape": list(summary.output_shape or ()), "batch": summary.batch,
        "count": "all" if summary.count_all else "macs",
        "params": summary.params, "trainable_params": summary.params,
        "param_bytes": summary.param_bytes, "macs": summary.macs, "flops": summary.flops,
        "activations": summary.activations, "activation_bytes": summary.activation_bytes,
        "zero_by_rule": summary.zero_by_rule,
        **_sizes_json(summary),
        "layers": [dict(_flat(row), input_shape=list(row.input_shape or ()),
                        output_shape=list(row.output_shape or ())) for row in summary.rows],
    }


def _sizes_json(summary: Summary) -> dict:
    if summary.sizes is None:
        return {}
    return {"input_sizes": {name: s.to_json() for name, s in summary.sizes.sets.items()},
            "sample_sizes": summary.sizes.witness, "macs_formula": formula(summary.macs)}


def format_json(summary: Summary) -> str:
    return json.dumps(to_json(summary), indent=2) + "\n"


# ---------------------------------------------------------------- LaTeX

_LATEX_SPECIAL = str.maketrans({
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "×": r"$\times$"})
_TIMES = r"$\times$"


def latex_escape(text: str) -> str:
    """Text as LaTeX prints it literally (one pass: an escape is never escaped again)."""
    return text.translate(_LATEX_SPECIAL)


def _latex_shape(shape: Shape | None) -> str:
    """`64$\\times$56$\\times$56`, the dimensions as fmt_shape writes them."""
    return "?" if shape is None else _TIMES.join(latex_escape(str(d)) for d in shape)


# (header, the number of a row, of the totals): siunitx S columns, digits grouped
_LATEX_NUMBERS = [("Params", lambda r: r.params, lambda s: s.params),
                  ("MACs", lambda r: r.macs, lambda s: s.macs)]
_LATEX_FLOPS = ("FLOPs", lambda r: r.flops, lambda s: s.flops)


def format_latex(summary: Summary, caption: str | None = None,
                 label: str | None = None) -> str:
    """A booktabs table (no vertical rules) in a `table` float, the numbers in siunitx S
    columns (`\\usepackage{booktabs, siunitx}`); text is escaped, `caption` too. FLOPs get a
    column of their own with --count all (otherwise they are 2 x MACs)."""
    numbers = _LATEX_NUMBERS + ([_LATEX_FLOPS] if summary.count_all else [])
    widths = [len(str(int(total(summary)))) for _, _, total in numbers]
    spec = "@{}llrc" + "".join(f"S[table-format={w}.0]" for w in widths) + "@{}"
    head = ["Module", "Op", "Output", "Kernel"] + [f"{{{name}}}" for name, _, _ in numbers]
    lines = [r"\toprule", _latex_row(head), r"\midrule"]
    for row in summary.rows:
        op = latex_escape(row.op) + (f" {_TIMES}{row.count}" if row.count > 1 else "")
        lines.append(_latex_row(
            [rf"\texttt{{{latex_escape(row.name)}}}", op, _latex_shape(row.output_shape),
             latex_escape(row.kernel).replace("x", _TIMES)]
            + [str(int(value(row))) for _, value, _ in numbers]))
    lines += [r"\midrule", _latex_row(["Total", "", "", ""]
                                      + [str(int(total(summary))) for _, _, total in numbers]),
              r"\bottomrule"]
    batch = f", batch {summary.batch}" if summary.batch != 1 else ""
    caption = caption if caption is not None else (
        f"{summary.network}: parameters and multiply-accumulates (MACs) per module, input "
        f"{summary.inputs or '×'.join(map(str, summary.input_shape))}{batch}")
    body = "\n".join("  " + line for line in lines)
    return (f"% archspec summary --format latex: needs \\usepackage{{booktabs}} and "
            f"\\usepackage{{siunitx}}\n\\begin{{table}}\n\\centering\n"
            f"\\small\n\\sisetup{{group-minimum-digits=4}}\n\\begin{{tabular}}{{{spec}}}\n{body}\n"
            f"\\end{{tabular}}\n"
            f"\\caption{{{latex_escape(caption)}}}\n"
            f"\\label{{{label or 'tab:' + summary.network}}}\n\\end{{table}}\n")


def _latex_row(cells: list[str]) -> str:
    return " & ".join(cells) + r" \\"


FORMATS = {"table": format_table, "markdown": format_markdown, "csv": format_csv,
           "json": format_json, "latex": format_latex}


# ---------------------------------------------------------------- diff


@dataclass
class DiffRow:
    """A stage of two networks: its row in each (None where one has no such stage)."""

    name: str
    a: Row | None
    b: Row | None

    @property
    def params_delta(self) -> int:
        return (self.b.params if self.b else 0) - (self.a.params if self.a else 0)

    @property
    def macs_delta(self) -> int:
        return (self.b.macs if self.b else 0) - (self.a.macs if self.a else 0)


@dataclass
class Diff:
    """Two summaries compared stage by stage, as `archspec diff` prints them."""

    a: Summary
    b: Summary
    label_a: str
    label_b: str

    @property
    def rows(self) -> list[DiffRow]:
        return diff_rows(self.a, self.b)

    @property
    def params_delta(self) -> int:
        return self.b.params - self.a.params

    @property
    def macs_delta(self) -> int:
        return self.b.macs - self.a.macs

    def __str__(self) -> str:
        return format_diff(self.a, self.b, self.label_a, self.label_b)

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        """IPython prints the table, not the fields."""
        printer.text(str(self))

    def _repr_html_(self) -> str:
        rows = [_diff_cells(row) for row in [*self.rows, _total_diff_row(self.a, self.b)]]
        return html_table(f"A = {self.label_a}, B = {self.label_b}",
                          [title for title, _, _ in _DIFF], rows, [])


_DIFF = [("stage", 18, "<"), ("output A", 11, ">"), ("output B", 11, ">"),
         ("params A", 8, ">"), ("params B", 8, ">"), ("delta", 8, ">"), ("MACs A", 7, ">"),
         ("MACs B", 7, ">"), ("delta", 7, ">")]


def diff_rows(a: Summary, b: Summary) -> list[DiffRow]:
    """Depth-1 rows matched by name, and rows of the same name, such as a scope's merges
    `(concat)`, in their order; A's order first, then the stages only B has."""
    rows_a, rows_b = _by_occurrence(a.rows), _by_occurrence(b.rows)
    names = list(rows_a) + [key for key in rows_b if key not in rows_a]
    return [DiffRow(key[0], rows_a.get(key), rows_b.get(key)) for key in names]


def format_diff(a: Summary, b: Summary, label_a: str, label_b: str) -> str:
    """Two networks side by side per stage (`diff_rows`), with deltas."""
    header = " ".join(f"{title:{align}{width}}" for title, width, align in _DIFF)
    lines = [f"A = {label_a}", f"B = {label_b}", header, "-" * len(header)]
    lines += [_diff_line(row) for row in diff_rows(a, b)]
    lines.append("-" * len(header))
    lines.append(_diff_line(_total_diff_row(a, b)))
    return "\n".join(lines) + "\n"


def _by_occurrence(rows: list[Row]) -> dict[tuple[str, int], Row]:
    """Rows by name and how many rows of that name came before."""
    seen: dict[str, int] = {}
    keyed = {}
    for row in rows:
        keyed[row.name, seen.get(row.name, 0)] = row
        seen[row.name] = seen.get(row.name, 0) + 1
    return keyed


def _total_diff_row(a: Summary, b: Summary) -> DiffRow:
    return DiffRow("total", _total_row(a), _total_row(b))


def _total_row(summary: Summary) -> Row:
    return Row("total", "", 0, summary.input_shape, summary.output_shape, "", summary.params,
               summary.macs)


def _signed(value: int) -> str:
    return ("+" if value > 0 else "") + human(value) if value else "0"


def _diff_cells(row: DiffRow) -> list[str]:
    a, b = row.a, row.b
    return [row.name, fmt_shape(a.output_shape) if a else "-",
            fmt_shape(b.output_shape) if b else "-", human(a.params if a else 0),
            human(b.params if b else 0), _signed(row.params_delta), human(a.macs if a else 0),
            human(b.macs if b else 0), _signed(row.macs_delta)]


def _diff_line(row: DiffRow) -> str:
    name, *cells = _diff_cells(row)
    (_, name_width, _), *widths = _DIFF
    return " ".join([f"{_cell(name, name_width):<{name_width}}",
                     *(f"{cell:>{width}}" for cell, (_, width, _) in zip(cells, widths))])
