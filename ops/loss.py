"""Losses: operands (prediction z, target t), one value per data point, shape (N,).

For predictions with more than one axis, each data point's loss is summed
over the non-batch axes. Gradients are per data point: the engine's ``g`` has
shape (N,).

- ``hinge`` = max(0, m - z t) with attribute ``margin`` m: 0 (default) is the
  lecture's perceptron criterion max(0, -z t), 1 the SVM hinge max(0, 1 - z t);
  t in {-1, +1}. At z t = m the point counts as inside the margin: the
  subgradient is -t there, so gradient descent on the perceptron criterion makes
  the perceptron's updates, even from zero weights.
- ``logistic`` = log(1 + exp(-t z)), stable for any z (t in {-1, +1}); it models
  P(t = +1) = sigmoid(z).
- ``squared_error`` = (z - t)**2, without a factor 1/2 (its gradient is 2 (z - t));
  any real t.
- ``softmax_cross_entropy`` = -sum_k t_k log softmax(z)_k, logits z of shape
  (N, k); targets t are probabilities (N, k) or class indices (N,). For
  targets summing to 1 this is logsumexp(z) - sum_k t_k z_k; for any targets
  d/dz = softmax(z) sum_k t_k - t and d/dt = -log softmax(z).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from graphdiff.errors import InputError
from graphdiff.registry import Op, Sample, register_op

from .elementwise import sigmoid, softplus_onnx
from .softmax import softmax

Array = NDArray[np.float64]


def _per_point(a: Array) -> Array:
    """Sum over every axis but the first: one value per data point."""
    if a.ndim == 1:
        return a  # already one value per point; summing over no axes would copy
    per_point: Array = a.sum(axis=tuple(range(1, a.ndim)))
    return per_point


def _per_point_onnx(b: Any, a: str) -> str:
    """:func:`_per_point` in ONNX: (N, ...) -> (N, m) -> sum over axis 1."""
    flat = b.node("Reshape", [a, b.ints([0, -1])])
    name: str = b.node("ReduceSum", [flat, b.ints([1])], keepdims=0)
    return name


def _like(g: Array, x: Array) -> Array:
    """g of shape (N,), with size-1 axes appended to broadcast against x."""
    return g if g.ndim == x.ndim else g.reshape(g.shape + (1,) * (x.ndim - g.ndim))


def _signs(rng: np.random.Generator, shape: tuple[int, ...]) -> Array:
    return rng.choice([-1.0, 1.0], shape)


def _away_from_zero(rng: np.random.Generator, shape: tuple[int, ...]) -> Array:
    return rng.uniform(0.2, 2.0, shape) * _signs(rng, shape)


def _pm1_samples(rng: np.random.Generator) -> list[Sample]:
    """Predictions away from 0 (the hinge kink), targets in {-1, +1}."""
    shapes: list[tuple[int, ...]] = [(6,), (4, 2), (3, 2, 2)]
    return [((_away_from_zero(rng, s), _signs(rng, s)), {}) for s in shapes]


# --- hinge (the perceptron criterion; the SVM hinge with margin=1) ---------------------


class HingeAttrs(BaseModel):
    """``margin``: m in max(0, m - z t); 0 (default) is the perceptron criterion, 1 the SVM
    hinge."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    margin: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)


def _hinge(z: Array, t: Array, margin: float = 0.0) -> Array:
    if margin:
        return _per_point(np.maximum(0.0, margin - z * t))
    return _per_point(np.maximum(0.0, -z * t))


def _hinge_active(g: Array, z: Array, t: Array, margin: float) -> Array:
    """-g where the point is inside the margin (z t <= m: the boundary counts), else 0."""
    return np.where(z * t <= margin, -_like(g, z), 0.0)


def _hinge_dz(g: Array, out: Array, z: Array, t: Array, margin: float = 0.0) -> Array:
    return _hinge_active(g, z, t, margin) * t


def _hinge_dt(g: Array, out: Array, z: Array, t: Array, margin: float = 0.0) -> Array:
    return _hinge_active(g, z, t, margin) * z


def _hinge_samples(rng: np.random.Generator) -> list[Sample]:
    """Targets in {-1, +1}, z t away from the kink at the margin."""
    out = _pm1_samples(rng)
    for s in [(6,), (4, 2)]:
        t = _signs(rng, s)
        out.append(((t * (1.0 + _away_from_zero(rng, s)), t), {"margin": 1.0}))
    return out


def _hinge_onnx(b: Any, z: str, t: str, margin: float) -> str:
    zt = b.node("Mul", [z, t])
    below = b.node("Sub", [b.const(margin), zt]) if margin else b.node("Neg", [zt])
    return _per_point_onnx(b, b.node("Relu", [below]))


register_op(
    Op(
        name="hinge",
        forward=_hinge,
        vjps=(_hinge_dz, _hinge_dt),
        attrs=HingeAttrs,
        arity=2,
        loss=True,
        targets="signs",
        predicts="sign",
        samples=_hinge_samples,
        onnx=_hinge_onnx,
        builtin=True,
        doc="max(0, m - z t), margin m = 0 (default: the perceptron criterion) or 1 (the "
        "SVM hinge); d/dz = -t where z t <= m, else 0. Targets -1 or +1.",
    )
)


# --- logistic ---------------------------------------------------------------------


def _logistic(z: Array, t: Array) -> Array:
    return _per_point(np.logaddexp(0.0, -t * z))


def _logistic_scale(g: Array, z: Array, t: Array) -> Array:
    """g sigmoid(-t z): each operand's gradient is minus the other operand times it."""
    return sigmoid(-t * z) * _like(g, z)


def _logistic_dz(g: Array, out: Array, z: Array, t: Array) -> Array:
    return -t * _logistic_scale(g, z, t)


def _logistic_dt(g: Array, out: Array, z: Array, t: Array) -> Array:
    return -z * _logistic_scale(g, z, t)


def _logistic_onnx(b: Any, z: str, t: str) -> str:
    return _per_point_onnx(b, softplus_onnx(b, b.node("Mul", [b.node("Neg", [t]), z])))


register_op(
    Op(
        name="logistic",
        forward=_logistic,
        vjps=(_logistic_dz, _logistic_dt),
        arity=2,
        loss=True,
        targets="signs",
        predicts="sign",
        proba=sigmoid,
        samples=_pm1_samples,
        onnx=_logistic_onnx,
        builtin=True,
        doc="log(1 + exp(-t z)), stable; d/dz = -t sigmoid(-t z). Targets -1 or +1; "
        "P(t = +1) = sigmoid(z).",
    )
)


# --- squared error ----------------------------------------------------------------


def _squared_error(z: Array, t: Array) -> Array:
    return _per_point(np.square(z - t))


def _squared_error_dz(g: Array, out: Array, z: Array, t: Array) -> Array:
    return 2.0 * (z - t) * _like(g, z)


def _squared_error_dt(g: Array, out: Array, z: Array, t: Array) -> Array:
    return -_squared_error_dz(g, out, z, t)


def _real_samples(rng: np.random.Generator) -> list[Sample]:
    shapes: list[tuple[int, ...]] = [(6,), (4, 2), (3, 2, 2)]
    return [((rng.standard_normal(s), rng.standard_normal(s)), {}) for s in shapes]


def _squared_error_onnx(b: Any, z: str, t: str) -> str:
    d = b.node("Sub", [z, t])
    return _per_point_onnx(b, b.node("Mul", [d, d]))


register_op(
    Op(
        name="squared_error",
        forward=_squared_error,
        vjps=(_squared_error_dz, _squared_error_dt),
        arity=2,
        loss=True,
        targets="real",
        samples=_real_samples,
        onnx=_squared_error_onnx,
        builtin=True,
        doc="(z - t)**2 summed over non-batch axes, no factor 1/2; d/dz = 2 (z - t).",
    )
)


# --- softmax cross-entropy --------------------------------------------------------


# the ufuncs' reductions themselves: what ndarray.max/.sum/.all run, without their
# Python wrappers (microseconds a call, on every training step)
_max, _min, _sum, _all = np.maximum.reduce, np.minimum.reduce, np.add.reduce, np.logical_and.reduce


@lru_cache(maxsize=16)
def _points(n: int) -> NDArray[np.intp]:
    """0, 1, ..., n-1: each data point's row, made once per batch size (read-only)."""
    rows = np.arange(n)
    rows.flags.writeable = False
    return rows


def _exp_shifted(z: Array) -> tuple[Array, Array]:
    """Each row's maximum m (keepdims) and exp(z - m), a new array (the exponential taken
    in place where it can be: one temporary of z's shape, not two)."""
    m: Array = _max(z, axis=1, keepdims=True)
    e: Array = z - m
    return m, (np.exp(e, out=e) if e.dtype.kind == "f" else np.exp(e))


def _logsumexp(z: Array) -> Array:
    """log sum_k exp(z_nk) over axis 1, keepdims; stable for any finite z."""
    m, e = _exp_shifted(z)
    total: Array = _sum(e, axis=1, keepdims=True)
    return m + np.log(total)


def _class_indices(t: Array, k: int) -> NDArray[np.intp]:
    """Integer class indices from a (float) array holding integers in [0, k)."""
    # min/max first (NaN fails both tests), so the cast below only sees numbers in
    # range; it then tells integers from fractions
    if t.size:
        lo, hi = _min(t), _max(t)
        if lo >= 0 and hi < k:
            idx = t.astype(np.intp)
            if _all(idx == t):
                return idx
        raise InputError(
            f"softmax_cross_entropy: class-index targets must be integers in [0, {k}); "
            f"got values from {t.min()} to {t.max()}"
        )
    return t.astype(np.intp)


def _softmax_cross_entropy(z: Array, t: Array) -> Array:
    if t.ndim == 1:
        idx = _class_indices(t, z.shape[1])
        # -(z - logsumexp(z)) at each point's class, taken before subtracting: the
        # same numbers (a - b is exactly -(b - a)) without the (N, k) log-softmax
        lse = _logsumexp(z)[:, 0]
        picked: Array = z[_points(len(idx)), idx]
        return lse - picked
    log_softmax = z - _logsumexp(z)
    # -sum_k t_k log softmax_k; equals logsumexp(z) - sum_k t_k z_k when sum_k t_k = 1.
    weighted: Array = (t * log_softmax).sum(axis=1)
    return -weighted


def _softmax(z: Array) -> Array:
    """softmax over axis 1, one exp of the shifted logits (a new array)."""
    e = _exp_shifted(z)[1]
    e /= _sum(e, axis=1, keepdims=True)
    return e


def _softmax_cross_entropy_dz(g: Array, out: Array, z: Array, t: Array) -> Array:
    # softmax(z) sum_k t_k - t, the one-hot t subtracted in place (no log-softmax,
    # no one-hot matrix); class indices were checked by the forward pass
    d = _softmax(z)
    if t.ndim == 1:
        d[_points(len(t)), t.astype(np.intp)] -= 1.0
    else:
        d *= t.sum(axis=1, keepdims=True)
        d -= t
    d *= g[:, np.newaxis]
    return d


def _softmax_cross_entropy_dt(g: Array, out: Array, z: Array, t: Array) -> Array | None:
    if t.ndim == 1:
        return None  # class indices: no gradient
    dt: Array = (z - _logsumexp(z)) * -g[:, np.newaxis]  # -log softmax(z) g
    return dt


def _softmax_cross_entropy_shapes(pred: tuple[int, ...], target: tuple[int, ...]) -> str | None:
    if len(pred) != 2:
        return f"softmax_cross_entropy takes logits of shape (N, k), got {pred}"
    if target == pred or target == pred[:1]:
        return None
    return (
        f"softmax_cross_entropy takes targets of shape {pred} (probabilities) "
        f"or {pred[:1]} (class indices) for logits {pred}, got {target}"
    )


def _softmax_cross_entropy_samples(rng: np.random.Generator) -> list[Sample]:
    probs = rng.dirichlet(np.ones(3), size=4)
    onehot = np.eye(4)[rng.integers(0, 4, size=5)]
    classes = rng.integers(0, 3, size=6).astype(float)
    unnormalised = rng.uniform(0.1, 1.0, (3, 2))
    return [
        ((rng.standard_normal((4, 3)), probs), {}),
        ((rng.standard_normal((5, 4)), onehot), {}),
        ((rng.standard_normal((6, 3)), classes), {}),
        ((rng.standard_normal((3, 2)), unnormalised), {}),
    ]


def _softmax_cross_entropy_onnx(b: Any, z: str, t: str) -> str:
    log_softmax = b.node("LogSoftmax", [z], axis=1)
    if len(b.shapes[1]) == 1:  # class indices: each row's entry at its class
        classes = b.node("Reshape", [b.node("Cast", [t], to=b.int64_type), b.ints([0, 1])])
        picked = b.node("GatherElements", [log_softmax, classes], axis=1)
    else:
        picked = b.node("Mul", [t, log_softmax])
    name: str = b.node("Neg", [b.node("ReduceSum", [picked, b.ints([1])], keepdims=0)])
    return name


register_op(
    Op(
        name="softmax_cross_entropy",
        forward=_softmax_cross_entropy,
        vjps=(_softmax_cross_entropy_dz, _softmax_cross_entropy_dt),
        arity=2,
        loss=True,
        targets="classes",
        predicts="argmax",
        proba=softmax,
        check_shapes=_softmax_cross_entropy_shapes,
        samples=_softmax_cross_entropy_samples,
        onnx=_softmax_cross_entropy_onnx,
        builtin=True,
        doc=(
            "-sum_k t_k log softmax(z)_k for logits z (N, k) and targets t, probabilities "
            "(N, k) or class indices (N,); d/dz = softmax(z) sum_k t_k - t."
        ),
    )
)
