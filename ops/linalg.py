"""Linear algebra: matmul.

``matmul(x, W)`` with ``x`` of shape (N, d_in) and ``W`` of shape (d_in, d_out)
is a dense layer's pre-activation; a 1-D second operand gives (N,).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from graphdiff.registry import Op, Sample, register_op

SOURCE = "graphdiff (built-in)"
Array = NDArray[np.float64]


def _matmul(a: Array, b: Array) -> Array:
    return np.asarray(np.matmul(a, b))


def _matmul_vjp(g: Array, out: Array, a: Array, b: Array) -> tuple[Array, Array]:
    if a.ndim == 1 and b.ndim == 1:
        return g * b, g * a
    # Treat a 1-D operand as a one-row (a) or one-column (b) matrix, and give
    # g the axis matmul dropped for it; then drop that axis from the results.
    a2 = a[np.newaxis, :] if a.ndim == 1 else a
    b2 = b[:, np.newaxis] if b.ndim == 1 else b
    g2 = g[..., np.newaxis, :] if a.ndim == 1 else g
    g2 = g2[..., np.newaxis] if b.ndim == 1 else g2
    ga = g2 @ np.swapaxes(b2, -1, -2)
    gb = np.swapaxes(a2, -1, -2) @ g2
    if a.ndim == 1:
        ga = ga[..., 0, :]
    if b.ndim == 1:
        gb = gb[..., 0]
    return ga, gb


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


register_op(
    Op(
        name="matmul",
        forward=_matmul,
        vjp=_matmul_vjp,
        arity=2,
        samples=_samples,
        saves=(0, 1),
        source=SOURCE,
        doc="a @ b: x (N, d_in) @ W (d_in, d_out) -> (N, d_out); (N, d) @ (d,) -> (N,).",
    )
)
