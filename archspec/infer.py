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
    if len(ranks) > 1 or (ranks == {3} and len({s[1:] for s in shapes}) > 1):
        sizes = sorted({fmt_shape(s[1:]) if len(s) == 3 else "flat" for s in shapes})
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
    main = next((s for s, ident in zip(shapes, identity) if not ident), None)
    if any(identity) and main is not None and len(main) == 3:
        source = shapes[identity.index(True)]
        stride = max(1, source[1] // main[1]) if len(source) == 3 else 1
        projection = f"conv({main[0]}, k=1{f', s={stride}' if stride > 1 else ''}) batchnorm"
        hint = f"give the shortcut a projection: {projection}"
    raise ShapeError("E304", "residual add needs equal shapes", detail=detail, hint=hint)


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
