"""Reductions: sum and mean over ``axis`` (None: every axis, axis 0 = data points)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict

from graphdiff.registry import Op, Sample, register_op

Array = NDArray[np.float64]
Axis = int | tuple[int, ...] | None


class ReduceAttrs(BaseModel):
    """``axis``: the axes reduced (None: all); ``keepdims``: keep them with size 1."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    axis: int | tuple[int, ...] | None = None
    keepdims: bool = False


def _axes(axis: Axis, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else axis
    return tuple(a % ndim for a in axes)


def _spread(g: Array, x: Array, axis: Axis, keepdims: bool) -> Array:
    """g, shaped like the reduced output, repeated over the reduced axes of x."""
    if not keepdims:
        g = np.expand_dims(g, _axes(axis, x.ndim))
    return np.broadcast_to(g, x.shape).copy()


def _count(x: Array, axis: Axis) -> int:
    return int(np.prod([x.shape[a] for a in _axes(axis, x.ndim)]))


def _sum(x: Array, axis: Axis, keepdims: bool) -> Array:
    return np.asarray(np.sum(x, axis=axis, keepdims=keepdims))


def _sum_vjp(g: Array, out: Array, x: Array, axis: Axis, keepdims: bool) -> tuple[Array]:
    return (_spread(g, x, axis, keepdims),)


def _mean(x: Array, axis: Axis, keepdims: bool) -> Array:
    return np.asarray(np.mean(x, axis=axis, keepdims=keepdims))


def _mean_vjp(g: Array, out: Array, x: Array, axis: Axis, keepdims: bool) -> tuple[Array]:
    return (_spread(g, x, axis, keepdims) / _count(x, axis),)


def _samples(rng: np.random.Generator) -> list[Sample]:
    cases: list[tuple[tuple[int, ...], dict[str, object]]] = [
        ((4,), {}),
        ((4, 3), {}),
        ((4, 3), {"axis": 1}),
        ((4, 3), {"axis": 0, "keepdims": True}),
        ((2, 3, 4), {"axis": (1, 2)}),
        ((2, 3, 4), {"axis": -1, "keepdims": True}),
        ((2, 3, 4), {"axis": None, "keepdims": True}),
    ]
    return [((rng.standard_normal(shape),), attrs) for shape, attrs in cases]


def _onnx(op_type: str) -> Any:
    def lower(b: Any, x: str, axis: Axis, keepdims: bool) -> str:
        axes = [] if axis is None else [b.ints([axis] if isinstance(axis, int) else list(axis))]
        name: str = b.node(op_type, [x, *axes], keepdims=int(keepdims))
        return name

    return lower


register_op(
    Op(
        name="sum",
        forward=_sum,
        vjp=_sum_vjp,
        attrs=ReduceAttrs,
        samples=_samples,
        saves=(),
        onnx=_onnx("ReduceSum"),
        builtin=True,
        doc="sum over axis (None: all axes), keepdims like numpy.",
    )
)
register_op(
    Op(
        name="mean",
        forward=_mean,
        vjp=_mean_vjp,
        attrs=ReduceAttrs,
        samples=_samples,
        saves=(),
        onnx=_onnx("ReduceMean"),
        builtin=True,
        doc="mean over axis (None: all axes), keepdims like numpy.",
    )
)
