"""Elementwise ops: one operand, an output of the same shape.

Each op is its forward ``f`` next to its derivative ``df(x, out)``, so the
vjp is ``g * df``. Any of them can be a neuron's activation.

Conventions at kinks (the derivative is taken as the value below):

- ``relu'(x) = 0`` where ``x - shift == 0`` (``relu'(0) = 0``);
- ``abs'(0) = 0``;
- ``sign`` and ``step`` have zero gradient everywhere, at 0 included;
- ``sqrt'(0)`` is ``+inf`` times ``g`` where ``g != 0`` and ``0`` where
  ``g == 0``, never ``0 * inf = nan``; ``log`` follows the same rule at 0.

Outside an op's domain the forward returns IEEE values silently (``log(0) =
-inf``, ``log(-1) = nan``, ``exp(1e3) = inf``); the engine's finite checks
are the place that reports them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict

from graphdiff.registry import Op, Sample, elementwise_op, identity, identity_vjp, register_op

Array = NDArray[np.float64]


# --- samples: smooth, in-domain points of a few small shapes -------------------

_SHAPES: tuple[tuple[int, ...], ...] = ((4,), (3, 2), (2, 3, 2))


def _away_from_zero(rng: np.random.Generator, shape: tuple[int, ...]) -> Array:
    """Values with 0.2 <= |x| <= 2, random signs: away from kinks at 0."""
    signs: Array = rng.choice([-1.0, 1.0], shape)
    return rng.uniform(0.2, 2.0, shape) * signs


def _positive(rng: np.random.Generator, shape: tuple[int, ...]) -> Array:
    return rng.uniform(0.5, 2.0, shape)


def _samples_real(rng: np.random.Generator) -> list[Sample]:
    return [((rng.uniform(-2.0, 2.0, s),), {}) for s in _SHAPES]


def _samples_nonzero(rng: np.random.Generator) -> list[Sample]:
    return [((_away_from_zero(rng, s),), {}) for s in _SHAPES]


def _samples_positive(rng: np.random.Generator) -> list[Sample]:
    return [((_positive(rng, s),), {}) for s in _SHAPES]


def _samples_wide(rng: np.random.Generator) -> list[Sample]:
    return [((rng.uniform(-6.0, 6.0, s),), {}) for s in _SHAPES]


def _floats(x: Array) -> np.dtype[Any]:
    """The float type of a result made from ``x``: its own for floats (a float32
    network's values stay float32), float64 for integers and booleans."""
    return np.result_type(np.asarray(x).dtype, np.float32)


def _zero(x: Array, out: Array, **attrs: Any) -> Array:
    return np.zeros(np.shape(x), _floats(x))


# --- ONNX lowerings (see Op.onnx): most ops are one ONNX operator of the same meaning


def _onnx(op_type: str) -> Callable[..., str]:
    """The lowering of an op that is the one-operand ONNX operator ``op_type``."""

    def lower(b: Any, x: str) -> str:
        name: str = b.node(op_type, [x])
        return name

    return lower


def _identity_onnx(b: Any, x: str) -> str:
    return x


def _step_onnx(b: Any, x: str) -> str:
    name: str = b.node("Cast", [b.node("Greater", [x, b.const(0.0)])], to=b.elem_type)
    return name


def _square_onnx(b: Any, x: str) -> str:
    name: str = b.node("Mul", [x, x])
    return name


def softplus_onnx(b: Any, x: str) -> str:
    """log(1 + exp(x)) as max(x, 0) + log(1 + exp(-|x|)), stable for any x (ONNX's
    Softplus has no float64 kernel in onnxruntime and overflows for large x)."""
    small = b.node("Exp", [b.node("Neg", [b.node("Abs", [x])])])
    tail = b.node("Log", [b.node("Add", [b.const(1.0), small])])
    name: str = b.node("Add", [b.node("Relu", [x]), tail])
    return name


def _relu_onnx(b: Any, x: str, shift: float) -> str:
    name: str = b.node("Relu", [b.node("Sub", [x, b.const(shift)]) if shift else x])
    return name


def _sin_onnx(b: Any, x: str, scale: float) -> str:
    name: str = b.node("Sin", [x if scale == 1.0 else b.node("Mul", [b.const(scale), x])])
    return name


def _pow_onnx(b: Any, x: str, exponent: float) -> str:
    name: str = b.node("Pow", [x, b.const(exponent)])
    return name


# --- identity, neg ---------------------------------------------------------------


register_op(
    Op(
        name="identity",
        forward=identity,
        vjp=identity_vjp,
        onnx=_identity_onnx,
        elementwise=True,
        samples=_samples_real,
        saves=(),
        builtin=True,
        doc="identity(x) = x; its vjp passes g through.",
    )
)

register_op(
    elementwise_op(
        "neg",
        lambda x: -x,
        lambda x, out: np.full(np.shape(x), -1.0, _floats(x)),
        samples=_samples_real,
        saves=(),
        onnx=_onnx("Neg"),
        builtin=True,
        doc="neg(x) = -x.",
    )
)


# --- exp, log, sqrt ---------------------------------------------------------------


def _exp(x: Array) -> Array:
    with np.errstate(over="ignore"):
        return np.exp(x)


register_op(
    elementwise_op(
        "exp",
        _exp,
        lambda x, out: out,
        samples=_samples_real,
        saves=("out",),
        onnx=_onnx("Exp"),
        builtin=True,
        doc="exp(x); overflows to inf without a warning.",
    )
)


def _log(x: Array) -> Array:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(x)


def _log_vjp(g: Array, out: Array, x: Array) -> tuple[Array]:
    # g / x, except 0 where g == 0 so that log'(0) never gives 0 * inf = nan.
    with np.errstate(divide="ignore", invalid="ignore"):
        return (np.where(g == 0, 0.0, g / x),)


register_op(
    Op(
        name="log",
        forward=_log,
        vjp=_log_vjp,
        elementwise=True,
        samples=_samples_positive,
        onnx=_onnx("Log"),
        builtin=True,
        doc="log(x); log(0) = -inf and log(x < 0) = nan, without warnings.",
    )
)


def _sqrt(x: Array) -> Array:
    with np.errstate(invalid="ignore"):
        return np.sqrt(x)


def _sqrt_vjp(g: Array, out: Array, x: Array) -> tuple[Array]:
    # g / (2 sqrt x): +-inf at 0 where g != 0, and 0 where g == 0 (never nan).
    with np.errstate(divide="ignore", invalid="ignore"):
        return (np.where(g == 0, 0.0, g / (2.0 * out)),)


register_op(
    Op(
        name="sqrt",
        forward=_sqrt,
        vjp=_sqrt_vjp,
        elementwise=True,
        samples=_samples_positive,
        onnx=_onnx("Sqrt"),
        builtin=True,
        doc="sqrt(x); the gradient at 0 is inf * g where g != 0 and 0 where g == 0.",
    )
)


# --- abs, sign, step, square ------------------------------------------------------

register_op(
    elementwise_op(
        "abs",
        np.abs,
        lambda x, out: np.sign(x),
        samples=_samples_nonzero,
        onnx=_onnx("Abs"),
        builtin=True,
        doc="|x|; abs'(0) = 0.",
    )
)

register_op(
    elementwise_op(
        "sign",
        lambda x: np.sign(x).astype(_floats(x)),
        _zero,
        samples=_samples_nonzero,
        onnx=_onnx("Sign"),
        builtin=True,
        doc="sign(x) in {-1, 0, 1}; its gradient is 0 everywhere.",
    )
)

register_op(
    elementwise_op(
        "step",
        lambda x: (x > 0).astype(_floats(x)),
        _zero,
        samples=_samples_nonzero,
        onnx=_step_onnx,
        builtin=True,
        doc="step(x) = 1 where x > 0 else 0 (step(0) = 0); its gradient is 0 everywhere.",
    )
)

register_op(
    elementwise_op(
        "square",
        np.square,
        lambda x, out: 2.0 * x,
        samples=_samples_real,
        onnx=_square_onnx,
        builtin=True,
        doc="x**2.",
    )
)


# --- tanh, sigmoid, softplus ------------------------------------------------------


def sigmoid(x: Array) -> Array:
    """1 / (1 + exp(-x)) without overflow: exp is only taken of -|x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


# The two common activations make a large derivative, and g times it, in one new
# array: a large temporary is memory that glibc may hand back to the OS when it is
# freed, and then the next one is page-faulted in again (W3 in benchmarks/). Small
# ones take the plain expression: an in-place ufunc call costs ~0.5 µs more (W1).
# The same operations in the same order as 1 - out*out and g * that: same bits.
_LARGE = 1 << 14  # float64s: 128 KiB, glibc's default threshold for mmap


def _tanh_df(x: Array, out: Array) -> Array:
    d = out * out
    return np.subtract(1.0, d, d) if d.size >= _LARGE else 1.0 - d


def _sigmoid_df(x: Array, out: Array) -> Array:
    d = 1.0 - out
    return np.multiply(d, out, d) if d.size >= _LARGE else d * out


def _times_g(df: Any) -> Any:
    """The vjp ``g * df(x, out)`` of a ``df`` that returns a new array, multiplied in place."""

    def vjp(g: Array, out: Array, x: Array) -> tuple[Array]:
        d = df(x, out)
        return (np.multiply(d, g, d) if d.size >= _LARGE else d * g,)

    return vjp


for _op in (
    elementwise_op("tanh", np.tanh, _tanh_df, samples=_samples_wide, saves=("out",),
                   onnx=_onnx("Tanh"),
                   builtin=True, doc="tanh(x); tanh' = 1 - tanh**2."),
    elementwise_op("sigmoid", sigmoid, _sigmoid_df, samples=_samples_wide, saves=("out",),
                   onnx=_onnx("Sigmoid"),
                   builtin=True,
                   doc="1 / (1 + exp(-x)), stable for any x; sigmoid' = sigmoid (1 - sigmoid)."),
):
    register_op(replace(_op, vjp=_times_g(_op.derivative)))

register_op(
    elementwise_op(
        "softplus",
        lambda x: np.logaddexp(0.0, x),
        lambda x, out: sigmoid(x),
        samples=_samples_wide,
        onnx=softplus_onnx,
        builtin=True,
        doc="log(1 + exp(x)), stable for any x; softplus' = sigmoid.",
    )
)


# --- relu (shift), sin (scale), pow (exponent) ------------------------------------


class ReluAttrs(BaseModel):
    """``shift``: relu computes max(0, x - shift)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    shift: float = 0.0


def _relu_samples(rng: np.random.Generator) -> list[Sample]:
    plain: list[Sample] = [((_away_from_zero(rng, s),), {}) for s in _SHAPES]
    shifted: list[Sample] = [((100.0 + _away_from_zero(rng, (5,)),), {"shift": 100.0})]
    return plain + shifted


register_op(
    elementwise_op(
        "relu",
        # x - 0.0 is x itself (-0.0 included): no temporary for the usual shift 0
        lambda x, shift: np.maximum(x - shift if shift else x, 0.0),
        lambda x, out, shift: ((x - shift if shift else x) > 0).astype(_floats(x)),
        attrs=ReluAttrs,
        samples=_relu_samples,
        onnx=_relu_onnx,
        builtin=True,
        doc="max(0, x - shift); the derivative is 1 where x - shift > 0 else 0 (relu'(0) = 0).",
    )
)


class SinAttrs(BaseModel):
    """``scale``: sin computes sin(scale * x)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    scale: float = 1.0


def _sin_samples(rng: np.random.Generator) -> list[Sample]:
    plain: list[Sample] = [((rng.uniform(-3.0, 3.0, s),), {}) for s in _SHAPES]
    return [*plain, ((rng.uniform(-1.0, 1.0, (5,)),), {"scale": 100.0})]


register_op(
    elementwise_op(
        "sin",
        lambda x, scale: np.sin(scale * x),
        lambda x, out, scale: scale * np.cos(scale * x),
        attrs=SinAttrs,
        samples=_sin_samples,
        onnx=_sin_onnx,
        builtin=True,
        doc="sin(scale * x); the derivative is scale * cos(scale * x).",
    )
)


class PowAttrs(BaseModel):
    """``exponent``: pow computes x**exponent."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    exponent: float


def _pow(x: Array, exponent: float) -> Array:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.power(x, exponent)


def _pow_df(x: Array, out: Array, exponent: float) -> Array:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return exponent * np.power(x, exponent - 1.0)


def _pow_samples(rng: np.random.Generator) -> list[Sample]:
    cases = [((4,), 2.0), ((3, 2), 3.0), ((2, 3, 2), 0.5), ((5,), -1.5)]
    return [((_positive(rng, s),), {"exponent": p}) for s, p in cases]


register_op(
    elementwise_op(
        "pow",
        _pow,
        _pow_df,
        attrs=PowAttrs,
        samples=_pow_samples,
        onnx=_pow_onnx,
        builtin=True,
        doc="x**exponent; the derivative is exponent * x**(exponent - 1).",
    )
)
