"""The interpreter: a flat loop over the fused plan (:mod:`graphdiff.fusion`), one
forward and one backward rule per step kind (:data:`FORWARD`, :data:`BACKWARD`).

It is the readable reference of the generated code (:mod:`graphdiff.codegen`): the
same numpy operations in the same order, so the same bits. For a fused level the
generated code calls this module's rules themselves (:func:`level_forward`,
:func:`level_backward`). A backward rule turns a node's delta into its operands'
contributions, which the loop accumulates (once, :func:`add_delta`), and adds to
the gradients of the parameters it uses: scalar gradients of neurons outside
levels are summed per parameter and added, at the end, to what the levels added.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from .errors import GraphdiffError, ShapeError
from .fusion import Fusion, Group, Level, bound, passes, reads
from .plan import (
    ConstStep,
    InputStep,
    NeuronStep,
    OpStep,
    ParamStep,
    Step,
    activation_delta,
    all_finite,
    check_delta,
    check_grads,
    check_loss_shapes,
    check_operand,
    check_value,
    fit_gradient,
    numeric,
    vjp_args,
    zeros_like,
)
from .registry import Op

__all__ = [
    "BACKWARD", "FORWARD", "Run", "backward", "check_level_deltas", "check_level_values",
    "delta_z", "forward", "level_backward", "level_forward", "seed", "slot_results",
]

Array = np.ndarray
Target = int | Group  # a slot, or rows of a level's delta
Contributions = Iterator[tuple[Target, Array]]  # (where, its share of the delta)
_F64: np.dtype[Any] = np.dtype(np.float64)


@lru_cache(maxsize=64)
def seed(n: int, value: float, dtype: np.dtype[Any] = _F64) -> Array:
    """dE/d(loss values), 1/N each for the mean: one number broadcast over the batch
    (read-only, stride 0, like the placeholders), so no array of N is filled per call."""
    return np.broadcast_to(dtype.type(value), (n,))


@dataclass
class Run:
    """One call's state: every value (a fused level's matrices V, Z, A, W), for neurons
    z and dE/dz; deltas (a level's as one matrix) and gradients; ``dtype`` the
    network's float type, what ops' results are converted to."""

    params: Mapping[str, Any]
    vals: list[Any]
    dtype: np.dtype[Any] = _F64
    P: Array | None = None  # the scalar parameters as one vector, as levels read them
    fusion: Fusion | None = None
    z: dict[int, Array] = field(default_factory=dict)
    dz: dict[int, Array] = field(default_factory=dict)
    mats: dict[int, tuple[Array, Array, Array, Array]] = field(default_factory=dict)
    deltas: list[Array | None] = field(default_factory=list)
    dv: dict[int, Array] = field(default_factory=dict)  # level -> its delta
    dzs: dict[int, Array] = field(default_factory=dict)  # level -> its dE/dZ
    scale: dict[int, Any] = field(default_factory=dict)  # delta of slot = scale * deltas[slot]
    g: dict[str, Any] = field(default_factory=dict)  # scalar gradients, neuron by neuron
    GS: Array = field(default_factory=lambda: np.zeros(0))  # ... and from levels
    GT: dict[str, Array] = field(default_factory=dict)  # tensor gradients
    want: list[bool] = field(default_factory=list)  # slots whose delta is wanted
    needs: list[bool] = field(default_factory=list)  # those a parameter reaches


# -- a fused level: the rules the generated code calls ------------------------------------


def level_forward(lv: Level, P: Array, A: Array) -> tuple[Array, Array, Array]:
    """``Z = W·A + b`` and ``V = g(Z)`` for level ``lv`` (``A``: one row per source,
    ``P``: the scalar parameters). Returns ``(V, Z, W)``, W being the edge weights
    for a sparse level."""
    if lv.block is not None:  # every (member, source) pair once: W is one gather
        W = P[lv.block]
        Z = W @ A
    elif lv.dense:
        W = np.zeros((len(lv.members), len(lv.sources)), P.dtype)
        if lv.pairs_unique:
            W[lv.ti, lv.si] = P[lv.pi]
        else:  # parallel edges add up
            np.add.at(W, (lv.ti, lv.si), P[lv.pi])
        Z = W @ A
    else:  # each member's edges are one segment
        assert lv.starts is not None
        W = P[lv.pi]
        Z = np.add.reduceat(A[lv.si] * W[:, None], lv.starts, axis=0)
    if lv.bias is not None:
        if lv.bias_rows is None:
            Z += P[lv.bias][:, None]
        else:
            Z[lv.bias_rows] += P[lv.bias][:, None]
    if lv.g is None:  # the identity
        return Z, Z, W
    V = lv.g(Z)
    if type(V) is not np.ndarray or V.dtype is not P.dtype:
        V = numeric(V, lv.act.name, lv.members[0].node, "forward", P.dtype)
    return V, Z, W


def level_backward(
    lv: Level, DV: Array, A: Array, W: Array, Z: Array | None, V: Array | None,
    GS: Array, owned: bool, sources: bool,
) -> tuple[Array, Array | None]:
    """Level ``lv``'s backward from its delta ``DV``: adds its parameters' gradients
    to ``GS`` and returns ``(dE/dZ, the sources' deltas)`` (None unless ``sources``).
    ``Z`` and ``V`` may be None where the activation reads them not; an ``owned``
    delta is dead after this and is scaled in place."""
    DZ = delta_z(lv.act, lv.g is None, lv.dg, lv.vjp, DV, Z if lv.reads_z else None,
                 V if lv.reads_v else None, lv.members[0].node, GS.dtype, owned)
    if lv.block is not None:  # its gradient scatters the same way
        GE = DZ @ A.T
        index = lv.block
    else:
        GE = (DZ @ A.T)[lv.ti, lv.si] if lv.dense else np.einsum("ij,ij->i", DZ[lv.ti], A[lv.si])
        index = lv.pi
    if lv.grads_unique:
        GS[index] += GE
    else:  # a parameter used twice in the level
        np.add.at(GS, index, GE)
    if lv.bias is not None:
        gb = DZ.sum(axis=1) if lv.bias_rows is None else DZ.sum(axis=1)[lv.bias_rows]
        if lv.bias_unique:
            GS[lv.bias] += gb
        else:
            np.add.at(GS, lv.bias, gb)
    if not sources:
        return DZ, None
    if lv.dense:
        return DZ, W.T @ DZ
    assert lv.back_order is not None and lv.back_starts is not None
    return DZ, np.add.reduceat((DZ[lv.ti] * W[:, None])[lv.back_order], lv.back_starts, axis=0)


def delta_z(
    act: Op, identity: bool, dg: Callable[..., Any] | None, vjp: Callable[..., Any],
    d: Array, z: Array | None, a: Array | None, node: Hashable, dtype: np.dtype[Any],
    owned: bool = False,
) -> Array:
    """dE/dz from the delta ``d``: ``d`` itself through the identity, ``d · g'(z, a)``
    when the activation declares its derivative, else its vjp. ``z`` or ``a`` None:
    not read, zeros in their place."""
    if identity:
        return d
    z = zeros_like(d.shape, dtype) if z is None else z
    a = zeros_like(d.shape, dtype) if a is None else a
    if dg is not None:
        if owned:
            d *= dg(z, a)
            return d
        out: Array = d * dg(z, a)
        return out
    return activation_delta(vjp(d, a, z)[0], act.name, node, dtype)


def check_level_values(lv: Level, V: Array) -> None:
    """``check_finite``: a level's values, naming its first member (in slot order) at fault."""
    if not all_finite(V):
        for r, m in enumerate(lv.members):
            check_value(V[r], m)


def check_level_deltas(lv: Level, DV: Array) -> None:
    """``check_finite``: a level's delta, naming its last member at fault (backward order)."""
    if not all_finite(DV):
        for r in range(len(lv.members) - 1, -1, -1):
            check_delta(DV[r], lv.members[r])


def _gather(lv: Level, run: Run) -> Array:
    """A: the level's sources, one row each (as the generated code gathers them)."""
    pieces = []
    for grp in lv.groups:
        if grp.level is None:
            x = run.vals[grp.rows]
            if x.ndim != 1:
                assert run.fusion is not None
                first = next(m for m in lv.members if grp.rows in m.args)
                check_operand(x, run.fusion.steps[grp.rows].node, first.node)
            pieces.append(x[None])
        else:
            pieces.append(run.mats[grp.level][0][grp.rows])
    if len(pieces) > 1 and all(grp.level is None for grp in lv.groups):
        # only single values: one array of them, in one call (the same numbers)
        return np.array([run.vals[grp.rows] for grp in lv.groups])
    return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)


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
    if passes(s.act, s.act_attrs):
        return z
    return numeric(s.act.forward(z, **s.act_attrs), s.act.name, s.node, "forward", run.dtype)


def _level(lv: Level, run: Run) -> None:
    assert run.P is not None
    A = _gather(lv, run)
    V, Z, W = level_forward(lv, run.P, A)
    run.mats[lv.index] = (V, Z, A, W)
    for r, m in enumerate(lv.members):
        run.vals[m.slot] = V[r]


FORWARD: dict[type[Step], Callable[[Any, Run], Array]] = {
    ConstStep: _const, ParamStep: _param, OpStep: _op, NeuronStep: _neuron,
}


# -- backward rules: the delta g of the step into its operands' contributions ----------


def _no_operands(s: Step, g: Array, run: Run) -> Contributions:
    return iter(())


def _param_back(s: ParamStep, g: Array, run: Run) -> Contributions:
    run.GT[s.name] = g
    return iter(())


def _op_back(s: OpStep, g: Array, run: Run) -> Contributions:
    op = s.op
    assert op is not None
    wanted = [j for j, a in enumerate(s.args) if run.want[a]]
    if not wanted:
        return
    xs = [run.vals[a] for a in s.args]
    args = vjp_args(op, run.vals[s.slot], xs, run.dtype)
    # only the gradients something needs, where the op gives them one by one
    parts = op.vjps is not None and sum(run.needs[a] for a in s.args) < len(s.args)
    if not parts:
        gs = check_grads(op.vjp(g, *args, **s.attrs), len(xs), op.name, s.node)
    for j in wanted:
        if parts:
            assert op.vjps is not None
            gx = op.vjps[j](g, *args, **s.attrs)
        else:
            gx = gs[j]
        # None from a vjp means a zero gradient: fit_gradient makes it one
        yield s.args[j], fit_gradient(gx, np.shape(xs[j]), op.name, s.node, run.dtype)


def _neuron_back(s: NeuronStep, g: Array, run: Run) -> Contributions:
    act = s.act
    assert act is not None and run.fusion is not None
    c = run.scale.get(s.slot)  # the delta is c * g (see Fusion.deferred)
    dz = run.dz[s.slot] = delta_z(
        act, passes(act, s.act_attrs),
        None if act.derivative is None else bound(act.derivative, s.act_attrs),
        bound(act.vjp, s.act_attrs), g, run.z[s.slot] if reads(act, 0) else None,
        run.vals[s.slot] if reads(act, "out") else None, s.node, run.dtype,
    )
    for a, w in zip(s.args, s.weights, strict=True):
        grad = np.dot(dz, run.vals[a])
        _add_grad(run, w, grad if c is None else c * grad)
        factor = run.params[w] if c is None else c * run.params[w]
        if a in run.fusion.deferred:  # a's delta: dz, times a number kept apart
            run.scale[a] = factor
            yield a, dz
        else:
            yield a, dz * factor
    if s.bias is not None:
        _add_grad(run, s.bias, dz.sum() if c is None else c * dz.sum())


def _level_back(lv: Level, DV: Array, run: Run) -> Contributions:
    V, Z, A, W = run.mats[lv.index]
    want = run.want
    sources = any(want[a] for a in lv.sources)
    DZ, DA = level_backward(lv, DV, A, W, Z, V, run.GS, False, sources)
    run.dzs[lv.index] = DZ
    if DA is None:
        return
    for grp in lv.groups:
        if grp.level is None:
            yield grp.rows, DA[grp.j0]
        elif any(want[a] for a in lv.sources[grp.j0 : grp.j1]):
            yield grp, DA[grp.j0 : grp.j1]


def _add_grad(run: Run, name: str, g: Any) -> None:
    old = run.g.get(name)
    run.g[name] = g if old is None else old + g


BACKWARD: dict[type[Step], Callable[[Any, Array, Run], Contributions]] = {
    InputStep: _no_operands, ConstStep: _no_operands, ParamStep: _param_back,
    OpStep: _op_back, NeuronStep: _neuron_back,
}


def add_delta(run: Run, target: Target, share: Array) -> None:
    """Add ``share`` to the delta of ``target``: a slot (a fused neuron's delta is a
    row of its level's) or rows of a level, whose delta is made at its first share
    (zeros, or a share of all its rows itself)."""
    if isinstance(target, Group):
        assert target.level is not None
        b, rows, whole = target.level, target.rows, target.whole
    else:
        if not run.want[target]:
            return
        assert run.fusion is not None
        lv = run.fusion.level_of(target)
        if lv is None:
            # never in place: an op may hand the same array to two operands (add's (g, g))
            old = run.deltas[target]
            run.deltas[target] = share if old is None else old + share
            return
        (b, rows), whole = lv, False
    DV = run.dv.get(b)
    if DV is None and whole:
        run.dv[b] = share  # this call's own array: adopted
        return
    if DV is None:
        DV = run.dv[b] = np.zeros_like(run.mats[b][0])
    DV[rows] += share  # rows are distinct within a level: exact


def slot_results(run: Run, s: Step) -> tuple[Any, Any, Any, Any]:
    """After a run: (value, delta, z, dE/dz) of step ``s`` (z and dE/dz None off
    neurons, a delta None where none reached it); a fused neuron's are rows of its
    level's matrices, and a deferred delta is multiplied out, as the generated
    code's variant with every delta kept does (``Program.collect``)."""
    lv = None if run.fusion is None else run.fusion.level_of(s.slot)
    if lv is not None:
        b, r = lv
        V, Z, _, _ = run.mats[b]
        DV, DZ = run.dv.get(b), run.dzs.get(b)
        return V[r], None if DV is None else DV[r], Z[r], None if DZ is None else DZ[r]
    d, dz, z = run.deltas[s.slot], run.dz.get(s.slot), run.z.get(s.slot)
    c = run.scale.get(s.slot)
    if c is not None:
        d = None if d is None else c * d
        dz = None if dz is None else c * dz
    return run.vals[s.slot], d, z, dz


# -- the loops ----------------------------------------------------------------------


def forward(
    order: Sequence[Step | Level], n_slots: int, params: Mapping[str, Any],
    arrays: Mapping[Hashable, Array], check_finite: bool, dtype: Any = np.float64,
    fusion: Fusion | None = None, P: Array | None = None,
) -> Run:
    """Every step's value, in plan order (inputs from ``arrays``, parameters and inputs
    already of ``dtype``, the network's float type); a fused plan's levels read the
    scalar parameters from the vector ``P``."""
    run = Run(params, [None] * n_slots, np.dtype(dtype), P, fusion)
    vals = run.vals
    for s in order:
        if type(s) is InputStep:
            vals[s.slot] = arrays[s.node]
        elif isinstance(s, Level):
            _level(s, run)
            if check_finite:
                check_level_values(s, run.mats[s.index][0])
        else:
            out = vals[s.slot] = FORWARD[type(s)](s, run)
            if check_finite:
                check_value(out, s)
    return run


def backward(
    run: Run, loss_slot: int, seed_delta: Array, want: list[bool], needs: list[bool],
    check_finite: bool,
) -> Array:
    """Deltas from ``seed_delta`` at ``loss_slot`` back through the fused plan, for the
    slots ``want`` says (those a parameter reaches, ``needs``, or all of them).
    Returns the scalar parameters' gradients, as one vector."""
    fusion = run.fusion
    assert fusion is not None
    run.want, run.needs = want, needs
    run.deltas = [None] * len(run.vals)
    run.GS = np.zeros(len(fusion.sidx), run.dtype)
    add_delta(run, loss_slot, seed_delta)
    for s in reversed(fusion.order):
        if isinstance(s, Level):
            DV = run.dv.get(s.index)
            if DV is None:
                continue  # nothing downstream sent a delta
            if check_finite:
                check_level_deltas(s, DV)
            shares = _level_back(s, DV, run)
        else:
            g = run.deltas[s.slot]
            if g is None:
                continue
            if check_finite:
                c = run.scale.get(s.slot)
                check_delta(g if c is None else c * g, s)
            shares = BACKWARD[type(s)](s, g, run)
        for target, share in shares:
            add_delta(run, target, share)
    for name, g in run.g.items():
        run.GS[fusion.sidx[name]] += g
    return run.GS
