"""Shape ops: stack, concat, index, reshape. Axis 0 (data points) is never moved.

``stack`` turns k arrays of shape (N,) into one (N, k) (neurons into a layer),
``index`` takes column i back out, ``concat`` joins along an existing axis and
``reshape`` reshapes each data point.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict

from graphdiff.registry import Op, Sample, register_op

Array = NDArray[np.float64]


class AxisAttrs(BaseModel):
    """``axis``: where the operands are stacked or joined (0 is the data-point axis)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    axis: int = 1


# --- stack -----------------------------------------------------------------------


def _stack(*xs: Array, axis: int) -> Array:
    if axis == 1 or axis == -1:  # k of (N,) -> (N, k), as neurons make a layer
        try:
            rows = np.array(xs)
        except ValueError:  # shapes differ: np.stack says so below
            rows = None
        if rows is not None and rows.ndim == 2:
            return rows.T.copy()  # np.stack's numbers and C order, faster for k of (N,)
    return np.stack(xs, axis=axis)


def _stack_vjp(g: Array, out: Array, *xs: Array, axis: int) -> tuple[Array, ...]:
    # the slices as rows of one contiguous copy (as many numbers as np.take's copies,
    # one call); deltas are never written in place, so they may share it
    return tuple(np.moveaxis(g, axis, 0).copy())


def _stack_samples(rng: np.random.Generator) -> list[Sample]:
    return [
        ((rng.standard_normal(4), rng.standard_normal(4), rng.standard_normal(4)), {}),
        ((rng.standard_normal(3),), {}),
        ((rng.standard_normal((3, 2)), rng.standard_normal((3, 2))), {"axis": -1}),
        ((rng.standard_normal((3, 2)), rng.standard_normal((3, 2))), {"axis": 1}),
    ]


def _stack_onnx(b: Any, *xs: str, axis: int) -> str:
    shape = b.shapes[0]
    at = axis % (len(shape) + 1)
    if at == 0:
        where = b.ints([0])
        parts = [b.node("Unsqueeze", [x, where]) for x in xs]
    else:  # a Reshape that keeps the batch axis (0), which graphdiff.onnx.load reads back
        target = b.ints([0, *shape[1:at], 1, *shape[at:]])
        parts = [b.node("Reshape", [x, target]) for x in xs]
    name: str = b.node("Concat", parts, axis=axis)
    return name


register_op(
    Op(
        name="stack",
        forward=_stack,
        vjp=_stack_vjp,
        attrs=AxisAttrs,
        arity=None,
        samples=_stack_samples,
        saves=(),
        onnx=_stack_onnx,
        builtin=True,
        doc="Stack one or more same-shape arrays on a new axis: k of (N,) -> (N, k).",
    )
)


# --- concat ----------------------------------------------------------------------


def _concat(*xs: Array, axis: int) -> Array:
    return np.concatenate(xs, axis=axis)


def _concat_vjp(g: Array, out: Array, *xs: Array, axis: int) -> tuple[Array, ...]:
    ends = np.cumsum([x.shape[axis] for x in xs])[:-1]
    return tuple(np.split(g, ends, axis=axis))


def _concat_samples(rng: np.random.Generator) -> list[Sample]:
    return [
        ((rng.standard_normal((4, 2)), rng.standard_normal((4, 3))), {}),
        ((rng.standard_normal((3, 1)),), {}),
        ((rng.standard_normal((2, 3, 1)), rng.standard_normal((2, 3, 2))), {"axis": -1}),
        ((rng.standard_normal((2, 2)), rng.standard_normal((3, 2))), {"axis": 0}),
    ]


def _concat_onnx(b: Any, *xs: str, axis: int) -> str:
    name: str = b.node("Concat", list(xs), axis=axis)
    return name


register_op(
    Op(
        name="concat",
        forward=_concat,
        vjp=_concat_vjp,
        attrs=AxisAttrs,
        arity=None,
        samples=_concat_samples,
        saves=(),
        onnx=_concat_onnx,
        builtin=True,
        doc="Join one or more arrays along an existing axis: (N, a), (N, b) -> (N, a + b).",
    )
)


# --- index -----------------------------------------------------------------------


class IndexAttrs(BaseModel):
    """``i``: the position taken along ``axis``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    i: int
    axis: int = 1


def _index(x: Array, i: int, axis: int) -> Array:
    column: Array = np.take(x, i, axis=axis)
    return column


def _index_vjp(g: Array, out: Array, x: Array, i: int, axis: int) -> tuple[Array]:
    dx = np.zeros(x.shape, np.asarray(g).dtype)  # float32 in a float32 network
    where: list[int | slice] = [slice(None)] * x.ndim
    where[axis] = i
    dx[tuple(where)] = g
    return (dx,)


def _index_samples(rng: np.random.Generator) -> list[Sample]:
    return [
        ((rng.standard_normal((4, 3)),), {"i": 0}),
        ((rng.standard_normal((4, 3)),), {"i": -1}),
        ((rng.standard_normal((2, 3, 2)),), {"i": 1, "axis": -1}),
        ((rng.standard_normal((3, 2)),), {"i": 2, "axis": 0}),
    ]


def _index_onnx(b: Any, x: str, i: int, axis: int) -> str:
    name: str = b.node("Gather", [x, b.ints(i)], axis=axis)
    return name


register_op(
    Op(
        name="index",
        forward=_index,
        vjp=_index_vjp,
        attrs=IndexAttrs,
        samples=_index_samples,
        saves=(),
        onnx=_index_onnx,
        builtin=True,
        doc="Position i along axis: column i of (N, k) -> (N,).",
    )
)


# --- reshape ---------------------------------------------------------------------


class ReshapeAttrs(BaseModel):
    """``shape``: the new shape of each data point (the batch axis is kept; -1 allowed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    shape: tuple[int, ...]


def _reshape(x: Array, shape: tuple[int, ...]) -> Array:
    return x.reshape((x.shape[0], *shape))


def _reshape_vjp(g: Array, out: Array, x: Array, shape: tuple[int, ...]) -> tuple[Array]:
    return (g.reshape(x.shape),)


def _reshape_samples(rng: np.random.Generator) -> list[Sample]:
    return [
        ((rng.standard_normal((4, 6)),), {"shape": (2, 3)}),
        ((rng.standard_normal((3, 2, 2)),), {"shape": (-1,)}),
        ((rng.standard_normal((2, 3)),), {"shape": (3, 1)}),
        ((rng.standard_normal((5,)),), {"shape": (1,)}),
    ]


def _reshape_onnx(b: Any, x: str, shape: tuple[int, ...]) -> str:
    if 0 in shape:  # ONNX reads a 0 as "copy this axis": join the batch size instead
        batch = b.node("Shape", [x], end=1)
        target = b.node("Concat", [batch, b.ints(list(shape))], axis=0)
    else:
        target = b.ints([0, *shape])  # 0: the batch axis as it is
    name: str = b.node("Reshape", [x, target])
    return name


register_op(
    Op(
        name="reshape",
        forward=_reshape,
        vjp=_reshape_vjp,
        attrs=ReshapeAttrs,
        samples=_reshape_samples,
        saves=(),
        onnx=_reshape_onnx,
        builtin=True,
        doc="Reshape each data point: (N, ...) -> (N, *shape); -1 is inferred.",
    )
)
