"""Linear algebra: matmul.

``matmul(x, W)`` with ``x`` of shape (N, d_in) and ``W`` of shape (d_in, d_out)
is a dense layer's pre-activation; a 1-D second operand gives (N,).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from graphdiff.registry import Op, Sample, register_op

Array = NDArray[np.float64]


def _matmul(a: Array, b: Array) -> Array:
    return np.asarray(np.matmul(a, b))


def _as_matrices(g: Array, a: Array, b: Array) -> tuple[Array, Array, Array]:
    """Treat a 1-D operand as a one-row (a) or one-column (b) matrix, and give g the
    axis matmul dropped for it."""
    a2 = a[np.newaxis, :] if a.ndim == 1 else a
    b2 = b[:, np.newaxis] if b.ndim == 1 else b
    g2 = g[..., np.newaxis, :] if a.ndim == 1 else g
    g2 = g2[..., np.newaxis] if b.ndim == 1 else g2
    return a2, b2, g2


def _matmul_da(g: Array, out: Array, a: Array, b: Array) -> Array:
    if a.ndim == 2 and b.ndim == 2:  # a dense layer: what the general case computes
        return g @ b.T
    if b.ndim == 1:
        # an outer product: one multiplication per entry, exactly what the matrix
        # product with an inner dimension of 1 computes, without its overhead
        return g * b if a.ndim == 1 else g[..., np.newaxis] * b
    _, b2, g2 = _as_matrices(g, a, b)
    ga = g2 @ np.swapaxes(b2, -1, -2)
    return ga[..., 0, :] if a.ndim == 1 else ga


def _matmul_db(g: Array, out: Array, a: Array, b: Array) -> Array:
    if a.ndim == 2 and b.ndim == 2:  # a dense layer: what the general case computes
        return a.T @ g
    if a.ndim == 1 and b.ndim == 1:
        return g * a
    a2, _, g2 = _as_matrices(g, a, b)
    gb = np.swapaxes(a2, -1, -2) @ g2
    return gb[..., 0] if b.ndim == 1 else gb


def _matmul_vjp(g: Array, out: Array, a: Array, b: Array) -> tuple[Array, Array]:
    return _matmul_da(g, out, a, b), _matmul_db(g, out, a, b)


def _samples(rng: np.random.Generator) -> list[Sample]:
    shapes = [
        ((4, 3), (3, 2)),  # x (N, d_in) @ W (d_in, d_out)
        ((5, 3), (3,)),  # (N, d) @ (d,) -> (N,)
        ((1, 2), (2, 1)),
        ((3,), (3, 2)),
        ((3,), (3,)),
        ((2, 3, 4), (4, 2)),  # a batch of matrices times one matrix
    ]
    return [((rng.standard_normal(a), rng.standard_normal(b)), {}) for a, b in shapes]


def _matmul_onnx(b: Any, a: str, c: str) -> str:
    name: str = b.node("MatMul", [a, c])  # numpy's matmul rules, 1-D operands included
    return name


register_op(
    Op(
        name="matmul",
        forward=_matmul,
        vjp=_matmul_vjp,
        vjps=(_matmul_da, _matmul_db),
        arity=2,
        samples=_samples,
        saves=(0, 1),
        onnx=_matmul_onnx,
        builtin=True,
        doc="a @ b: x (N, d_in) @ W (d_in, d_out) -> (N, d_out); (N, d) @ (d,) -> (N,).",
    )
)
