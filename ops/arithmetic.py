"""Binary arithmetic: add, sub, mul, div, broadcasting like numpy.

Each vjp returns gradients in the broadcast shape of the output; the engine
sums them back to each operand's shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from graphdiff.registry import Op, Sample, register_op

Array = NDArray[np.float64]

# (shape of a, shape of b): equal shapes, then numpy broadcasting both ways.
_PAIRS: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = (
    ((4,), (4,)),
    ((3, 2), (3, 2)),
    ((3, 2), (2,)),
    ((3, 1), (1, 4)),
    ((3,), ()),
    ((2, 1, 3), (4, 1)),
)


def _samples(rng: np.random.Generator) -> list[Sample]:
    return [((rng.uniform(-2.0, 2.0, a), rng.uniform(-2.0, 2.0, b)), {}) for a, b in _PAIRS]


def _samples_nonzero_b(rng: np.random.Generator) -> list[Sample]:
    def away(shape: tuple[int, ...]) -> Array:
        signs: Array = rng.choice([-1.0, 1.0], shape)
        return rng.uniform(0.5, 2.0, shape) * signs

    return [((rng.uniform(-2.0, 2.0, a), away(b)), {}) for a, b in _PAIRS]


def _add(a: Array, b: Array) -> Array:
    return np.add(a, b)


def _add_vjp(g: Array, out: Array, a: Array, b: Array) -> tuple[Array, Array]:
    return g, g


def _sub(a: Array, b: Array) -> Array:
    return np.subtract(a, b)


def _sub_vjp(g: Array, out: Array, a: Array, b: Array) -> tuple[Array, Array]:
    return g, -g


def _mul(a: Array, b: Array) -> Array:
    return np.multiply(a, b)


def _mul_vjp(g: Array, out: Array, a: Array, b: Array) -> tuple[Array, Array]:
    return g * b, g * a


def _div(a: Array, b: Array) -> Array:
    return np.divide(a, b)


def _div_vjp(g: Array, out: Array, a: Array, b: Array) -> tuple[Array, Array]:
    return g / b, -g * out / b


def _onnx(op_type: str) -> Any:
    """The lowering of the two-operand ONNX operator ``op_type`` (which broadcasts
    like numpy)."""

    def lower(b: Any, a: str, c: str) -> str:
        name: str = b.node(op_type, [a, c])
        return name

    return lower


register_op(
    Op(
        name="add",
        forward=_add,
        vjp=_add_vjp,
        arity=2,
        unordered=True,
        samples=_samples,
        saves=(),
        onnx=_onnx("Add"),
        builtin=True,
        doc="a + b.",
    )
)
register_op(
    Op(
        name="sub",
        forward=_sub,
        vjp=_sub_vjp,
        arity=2,
        samples=_samples,
        saves=(),
        onnx=_onnx("Sub"),
        builtin=True,
        doc="a - b (operand order: port 0 minus port 1).",
    )
)
register_op(
    Op(
        name="mul",
        forward=_mul,
        vjp=_mul_vjp,
        arity=2,
        unordered=True,
        samples=_samples,
        onnx=_onnx("Mul"),
        builtin=True,
        doc="a * b, elementwise.",
    )
)
register_op(
    Op(
        name="div",
        forward=_div,
        vjp=_div_vjp,
        arity=2,
        samples=_samples_nonzero_b,
        onnx=_onnx("Div"),
        builtin=True,
        doc="a / b, elementwise (operand order: port 0 over port 1).",
    )
)
