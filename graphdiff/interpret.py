"""The interpreter: a flat loop over the plan, one forward and one backward rule per
step kind (:data:`FORWARD`, :data:`BACKWARD`).

It is the readable reference of the generated code (:mod:`graphdiff.codegen`),
which it matches to rounding, and what runs plans too large to generate code for.
A backward rule turns a node's delta into its operands' contributions, which the
loop accumulates (once, here), and adds to the gradients of the parameters it uses.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import GraphdiffError, ShapeError
from .plan import (
    ConstStep,
    InputStep,
    NeuronStep,
    OpStep,
    ParamStep,
    Step,
    accumulate,
    activation_delta,
    check_delta,
    check_grads,
    check_loss_shapes,
    check_operand,
    check_value,
    fit_gradient,
    numeric,
    vjp_args,
)

__all__ = ["BACKWARD", "FORWARD", "Run", "backward", "forward"]

Array = np.ndarray
Contributions = Iterator[tuple[int, Array]]  # (operand slot, its share of the delta)


@dataclass
class Run:
    """One call's state: every value; for neurons z and dE/dz; deltas and gradients;
    ``dtype`` the network's float type, what ops' results are converted to."""

    params: Mapping[str, Any]
    vals: list[Any]
    dtype: np.dtype[Any] = field(default_factory=lambda: np.dtype(np.float64))
    z: dict[int, Array] = field(default_factory=dict)
    dz: dict[int, Array] = field(default_factory=dict)
    deltas: list[Array | None] = field(default_factory=list)
    grads: dict[str, Any] = field(default_factory=dict)
    needs: list[bool] = field(default_factory=list)  # slots whose delta is wanted


def _add_grad(run: Run, name: str, g: Any) -> None:
    old = run.grads.get(name)
    run.grads[name] = g if old is None else old + g


# -- forward rules: the step's value ---------------------------------------------------


def _const(s: ConstStep, run: Run) -> Array:
    return s.value


def _param(s: ParamStep, run: Run) -> Array:
    value: Array = run.params[s.name]
    return value


def _op(s: OpStep, run: Run) -> Array:
    assert s.op is not None
    xs = [run.vals[a] for a in s.args]
    if s.op.loss:
        check_loss_shapes(s, xs[0].shape, xs[1].shape)
    try:
        out = s.op.forward(*xs, **s.attrs)
    except GraphdiffError:
        raise
    except (ValueError, IndexError) as e:
        # numpy's own message names neither the node nor the operand shapes
        shapes = ", ".join(str(np.shape(x)) for x in xs)
        raise ShapeError(
            f"node {s.node!r} (op {s.op.name!r}) failed on operands of shape {shapes}: {e}"
        ) from e
    return numeric(out, s.op.name, s.node, "forward", run.dtype)


def _neuron(s: NeuronStep, run: Run) -> Array:
    assert s.act is not None
    z: Array | None = None
    for a, w in zip(s.args, s.weights, strict=True):
        x = check_operand(run.vals[a], None, s.node)
        z = x * run.params[w] if z is None else z + x * run.params[w]
    assert z is not None
    if s.bias is not None:
        z = z + run.params[s.bias]
    run.z[s.slot] = z
    return numeric(s.act.forward(z, **s.act_attrs), s.act.name, s.node, "forward", run.dtype)


FORWARD: dict[type[Step], Callable[[Any, Run], Array]] = {
    ConstStep: _const, ParamStep: _param, OpStep: _op, NeuronStep: _neuron,
}


# -- backward rules: the delta g of the step into its operands' contributions ----------


def _no_operands(s: Step, g: Array, run: Run) -> Contributions:
    return iter(())


def _param_back(s: ParamStep, g: Array, run: Run) -> Contributions:
    run.grads[s.name] = g
    return iter(())


def _op_back(s: OpStep, g: Array, run: Run) -> Contributions:
    assert s.op is not None
    xs = [run.vals[a] for a in s.args]
    gs = s.op.vjp(g, *vjp_args(s.op, run.vals[s.slot], xs, run.dtype), **s.attrs)
    check_grads(gs, len(xs), s.op.name, s.node)
    for a, x, gx in zip(s.args, xs, gs, strict=True):
        if gx is not None and run.needs[a]:
            yield a, fit_gradient(gx, np.shape(x), s.op.name, s.node, run.dtype)


def _neuron_back(s: NeuronStep, g: Array, run: Run) -> Contributions:
    assert s.act is not None
    z = run.z[s.slot]
    dz = s.act.vjp(g, *vjp_args(s.act, run.vals[s.slot], [z], run.dtype), **s.act_attrs)[0]
    dz = run.dz[s.slot] = activation_delta(dz, s.act.name, s.node, run.dtype)
    for a, w in zip(s.args, s.weights, strict=True):
        _add_grad(run, w, np.dot(dz, run.vals[a]))
        if run.needs[a]:
            yield a, dz * run.params[w]
    if s.bias is not None:
        _add_grad(run, s.bias, dz.sum())


BACKWARD: dict[type[Step], Callable[[Any, Array, Run], Contributions]] = {
    InputStep: _no_operands, ConstStep: _no_operands, ParamStep: _param_back,
    OpStep: _op_back, NeuronStep: _neuron_back,
}


# -- the loops ----------------------------------------------------------------------


def forward(
    steps: list[Step], n_slots: int, params: Mapping[str, Any],
    arrays: Mapping[Hashable, Array], check_finite: bool, dtype: Any = np.float64,
) -> Run:
    """Every step's value, in plan order (inputs from ``arrays``, parameters and
    inputs already of ``dtype``, the network's float type)."""
    run = Run(params, [None] * n_slots, np.dtype(dtype))
    vals = run.vals
    for s in steps:
        if type(s) is InputStep:
            vals[s.slot] = arrays[s.node]
            continue
        out = vals[s.slot] = FORWARD[type(s)](s, run)
        if check_finite:
            check_value(out, s)
    return run


def backward(
    run: Run, steps: list[Step], seed_slot: int, seed: Array, needs: list[bool],
    check_finite: bool,
) -> None:
    """Deltas from ``seed`` at ``seed_slot`` back through the plan, for the slots
    ``needs`` wants (those a parameter reaches, or all of them)."""
    run.needs = needs
    deltas = run.deltas = [None] * len(run.vals)
    deltas[seed_slot] = seed
    for s in reversed(steps):
        g = deltas[s.slot]
        if g is None:
            continue
        if check_finite:
            check_delta(g, s)
        for a, share in BACKWARD[type(s)](s, g, run):
            accumulate(deltas, a, share)
