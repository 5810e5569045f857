"""Shape inference: an op's rule applied to its incoming shape, and the merge rules (concat,
residual add, dense concat). Called by the expander statement by statement, because the
language lets a statement read the shape arriving at it (`in.c`)."""

from __future__ import annotations

from .limits import TENSOR_HINT, tensor_problem
from .ops import Args, OpSpec, Shape, ShapeError, fmt_shape


def check_tensor(shape: Shape, params: int = 0, macs: int = 0) -> None:
    """E407 when a tensor's values, or a layer's parameters or MACs, go beyond int64."""
    problem = tensor_problem(shape, params, macs)
    if problem is not None:
        raise ShapeError("E407", "tensor too large", detail=f"{problem} ({fmt_shape(shape)})",
                         hint=TENSOR_HINT)


def apply_op(spec: OpSpec, args: Args, shape: Shape) -> tuple[Shape, dict, int, int]:
    """Outgoing shape, resolved attributes, parameter count and MACs of one layer."""
    out, attrs = spec.shape(args, shape)
    if any(d < 1 for d in out):
        raise ShapeError("E301", f"`{spec.name}` output becomes {fmt_shape(out)}",
                         detail=f"incoming shape is {fmt_shape(shape)}",
                         hint="the input is too small for this op")
    params, macs = spec.params(attrs, out), spec.macs(attrs, out)
    check_tensor(out, params, macs)
    return out, attrs, params, macs


def _branch_list(names: list[str], shapes: list[Shape]) -> str:
    return ", ".join(f"{name} gives {fmt_shape(s)}" for name, s in zip(names, shapes))


def concat_shape(names: list[str], shapes: list[Shape]) -> Shape:
    """Channel concatenation: equal H x W (or all flat), channels summed."""
    ranks = {len(s) for s in shapes}
    if len(ranks) > 1 or (len(shapes[0]) > 1 and len({s[1:] for s in shapes}) > 1):
        sizes = sorted({fmt_shape(s[1:]) if len(s) > 1 else "flat" for s in shapes})
        raise ShapeError(
            "E303", "concat needs equal height and width in every branch",
            detail=_branch_list(names, shapes),
            hint=f"branches give {' and '.join(sizes)}: give every branch the same stride, "
                 "and pad k x k convs and pools by k // 2 (or use p='same')")
    out = (sum(s[0] for s in shapes), *shapes[0][1:])
    check_tensor(out)
    return out


def add_shape(names: list[str], shapes: list[Shape], identity: list[bool]) -> Shape:
    """Residual add: every branch must give exactly the same shape."""
    if len(set(shapes)) == 1:
        return shapes[0]
    detail = _branch_list(names, shapes)
    hint = "make every branch give the same channels and size"
    widest = max(shapes, key=len)
    gating = [s for s in shapes if s != widest and len(s) == len(widest)
              and all(g in (w, 1) for w, g in zip(widest, s))]
    if gating and len(widest) == 3:
        hint = (f"a branch gives {fmt_shape(gating[0])}, which only broadcasts: to multiply "
                "the input by it (squeeze-excitation), write it as gate { ... } instead of "
                "a branch of add")
        raise ShapeError("E304", "residual add needs equal shapes", detail=detail, hint=hint)
    main = next((s for s, ident in zip(shapes, identity) if not ident), None)
    fix = projection(shapes[identity.index(True)], main) if any(identity) and main else None
    if fix is not None:
        hint = f"give the shortcut a projection: {fix}"
    raise ShapeError("E304", "residual add needs equal shapes", detail=detail, hint=hint)


def projection(source: Shape, main: Shape) -> str | None:
    """The shortcut that turns `source` into the main branch's `main` map: a 1x1 conv whose
    stride gives its size (ceil(H / s), unpadded), or None if no stride does."""
    if len(source) != 3 or len(main) != 3:
        return None
    strides = []
    for size, want in zip(source[1:], main[1:]):
        stride = -(-size // want)  # the smallest stride with ceil(size / stride) <= want
        if -(-size // stride) != want:
            return None
        strides.append(stride)
    stride = strides[0] if strides[0] == strides[1] else tuple(strides)
    return f"conv({main[0]}, k=1{f', s={stride}' if stride != 1 else ''}) batchnorm"


def dense_step_shape(step: int, block_in: Shape, current: Shape, step_out: Shape) -> Shape:
    """The concat after dense step `step`: the step must keep H x W."""
    if len(step_out) != 3 or step_out[1:] != block_in[1:]:
        raise ShapeError(
            "E303", f"dense step {step} must keep height and width",
            detail=f"the block input is {fmt_shape(block_in)}, step {step} gives "
                   f"{fmt_shape(step_out)}",
            hint="inside `dense`, use stride 1 and pad k x k convs by k // 2")
    out = (current[0] + step_out[0], *current[1:])
    check_tensor(out)
    return out


def split_shape(shape: Shape, count: int) -> Shape:
    """Each branch of a split gets C / count channels (torch.chunk of equal parts)."""
    if len(shape) != 3 or shape[0] % count:
        raise ShapeError(
            "E311", f"split needs channels divisible by its {count} branches",
            detail=f"incoming shape is {fmt_shape(shape)}",
            formula=f"{shape[0]} % {count} = {shape[0] % count}" if len(shape) == 3 else None,
            hint=f"make the channels before the split a multiple of {count} (they are "
                 f"{shape[0]})" if len(shape) == 3 else
                 "split divides the channels of a C x H x W map: split before `flatten`")
    return (shape[0] // count, *shape[1:])


def gate_shape(shape: Shape, gate: Shape) -> Shape:
    """The input times the gate: every gate dimension equals the input's or is 1 (a
    per-channel gate is C x 1 x 1, a spatial one 1 x H x W); the output is the input's."""
    if len(gate) == len(shape) and all(g in (s, 1) for s, g in zip(shape, gate)):
        return shape
    detail = f"the input is {fmt_shape(shape)}, the gate gives {fmt_shape(gate)}"
    if len(gate) != len(shape):
        hint = ("the gate must keep the input's rank: use 1x1 convs (conv(c, k=1)) rather "
                "than flatten and linear, as squeeze-excitation does")
    elif gate[0] not in (shape[0], 1):
        hint = (f"end the gate with {shape[0]} channels (or 1), e.g. conv({shape[0]}, k=1) "
                "before its sigmoid")
    else:
        hint = (f"the gate's height and width must be the input's "
                f"({fmt_shape(shape[1:])}) or 1x1: pool globally (global_avgpool) or keep "
                "the size (stride 1, padding k // 2)")
    raise ShapeError("E310", "the gate does not broadcast against its input", detail=detail,
                     hint=hint)
