"""softmax over one axis (default the last): exp(x) / sum exp(x), stable for any finite x.

Each data point's values along ``axis`` become probabilities (positive, summing
to 1). Its vjp is ``out * (g - sum(g * out, axis))``: the Jacobian
diag(s) - s s^T applied to g without forming it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict

from graphdiff.registry import Op, Sample, register_op

Array = NDArray[np.float64]


class SoftmaxAttrs(BaseModel):
    """``axis``: the axis whose values are normalised (default -1, the last)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    axis: int = -1


def softmax(x: Array, axis: int = -1) -> Array:
    """exp(x - max) / sum exp(x - max) along ``axis``: no overflow for any finite x.

    >>> softmax(np.array([[0.0, np.log(3.0)]])).round(12).tolist()
    [[0.25, 0.75]]
    """
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    out: Array = e / e.sum(axis=axis, keepdims=True)
    return out


def _softmax_vjp(g: Array, out: Array, x: Array, axis: int = -1) -> tuple[Array]:
    return (out * (g - (g * out).sum(axis=axis, keepdims=True)),)


def _samples(rng: np.random.Generator) -> list[Sample]:
    return [
        ((rng.standard_normal((4, 3)),), {}),
        ((rng.standard_normal((5,)),), {}),
        ((rng.standard_normal((3, 4)),), {"axis": 1}),
        ((rng.standard_normal((2, 3, 4)),), {"axis": 1}),
        ((3 * rng.standard_normal((3, 2)),), {"axis": -1}),
    ]


def _softmax_onnx(b: Any, x: str, axis: int = -1) -> str:
    name: str = b.node("Softmax", [x], axis=axis)  # opset 13+: along one axis, as here
    return name


register_op(
    Op(
        name="softmax",
        forward=softmax,
        vjp=_softmax_vjp,
        attrs=SoftmaxAttrs,
        samples=_samples,
        saves=("out",),
        onnx=_softmax_onnx,
        builtin=True,
        doc="exp(x) / sum exp(x) along axis (default -1); vjp = out (g - sum(g out)).",
    )
)
