"""The flat execution plan: steps over numbered slots, no networkx in sight.

Each step computes one node's value from earlier slots and, in reverse order,
turns that node's delta into deltas of its operands and gradients of its
parameters. :mod:`graphdiff.fusion` groups neurons into matrix levels; the
interpreter (:mod:`graphdiff.interpret`) and the generated code
(:mod:`graphdiff.codegen`) run the fused plan, with the same bits.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .errors import InputError, NonFiniteError, OpContractError, ShapeError
from .registry import Op

if TYPE_CHECKING:
    from .params import Grads

__all__ = [
    "ConstStep", "InputStep", "NeuronStep", "OpStep", "ParamSpec", "ParamStep", "ParamTable",
    "Plan", "Rows", "Step", "rows_of", "unbroadcast",
]

Node = Any  # a networkx node name: str or int
Array = np.ndarray
_F64 = np.dtype(np.float64)


def unbroadcast(g: Array, shape: tuple[int, ...]) -> Array:
    """Sum ``g`` back to ``shape``: the gradient of numpy broadcasting.

    >>> unbroadcast(np.ones((4, 3)), (3,))
    array([4., 4., 4.])
    >>> unbroadcast(np.ones((4, 3)), (4, 1)).ravel()
    array([3., 3., 3., 3.])
    """
    g = np.asarray(g)
    if g.shape == shape:
        return g
    extra = g.ndim - len(shape)
    if extra < 0:
        return np.broadcast_to(g, shape)
    if extra:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g


def vjp_args(
    op: Op, out: Array, xs: list[Array] | tuple[Array, ...], dtype: np.dtype[Any] = _F64
) -> tuple[Array, ...]:
    """``(out, *xs)`` as a vjp gets them: what the op does not save (``Op.saves``) is
    replaced by read-only zeros of its shape (of the network's ``dtype``, float64 by
    default), as the generated fast path does after releasing those values.

    >>> from graphdiff import get_op
    >>> out, x = vjp_args(get_op("tanh"), np.ones(2), [np.full(2, 3.0)])
    >>> out.tolist(), x.tolist()
    ([1.0, 1.0], [0.0, 0.0])
    """
    if op.saves is None:
        return (out, *xs)
    keep = op.saves
    return (
        out if "out" in keep else zeros_like(np.shape(out), dtype),
        *(x if i in keep else zeros_like(np.shape(x), dtype) for i, x in enumerate(xs)),
    )


def as_numbers(value: Any, what: str, dtype: np.dtype[Any] = _F64) -> Array:
    """``value`` as a float64 array (or of ``dtype``, a network's float type), refusing
    what is not numbers (a plain float64 conversion would turn None into NaN and the
    text "0.5" into 0.5 without a word).

    >>> as_numbers([1, 2.5], "input 'x'")
    array([1. , 2.5])
    >>> as_numbers(None, "parameter 'w'")
    Traceback (most recent call last):
    ...
    graphdiff.errors.InputError: parameter 'w' is not a numeric array: it holds object values (None)
    """
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as e:
        raise InputError(f"{what} is not a numeric array: {e}") from None
    if arr.dtype.kind not in "biuf":
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise InputError(f"{what} is not a numeric array: it holds {arr.dtype} values ({shown})")
    return arr.astype(dtype, copy=False)


class Rows(list):  # type: ignore[type-arg]
    """A network's inputs (a list, in its input order) of which those at positions
    ``start`` to ``start + len(matrix)`` hold the numbers of the rows of ``matrix``, a
    C-contiguous 2-D array (as ``fit``'s runner stacks neuron notation's
    one-number-per-point inputs): the generated code takes that matrix as it is for a
    level fed by exactly those inputs, instead of copying them into a new one
    (:func:`rows_of`)."""

    __slots__ = ("matrix", "start")

    def __init__(self, xs: list[Array], matrix: Array, start: int) -> None:
        super().__init__(xs)
        self.matrix, self.start = matrix, start


def rows_of(xs: list[Array], start: int, stop: int) -> Array:
    """``xs[start:stop]`` (arrays of one shape) as the rows of one matrix: (a slice of)
    the matrix they are the rows of when ``xs`` is :class:`Rows` saying so, else a new
    one."""
    if type(xs) is Rows and xs.start <= start and stop <= xs.start + len(xs.matrix):
        m: Array = xs.matrix[start - xs.start : stop - xs.start]
        return m
    return np.array(xs[start:stop])


@functools.lru_cache(maxsize=1024)
def zeros_like(shape: tuple[int, ...], dtype: np.dtype[Any] = _F64) -> Array:
    """Read-only zeros of ``shape`` (float64, or ``dtype``) that take no memory (stride 0),
    made once per shape: ``np.broadcast_to`` costs microseconds, which shows on
    one-sample networks."""
    return np.broadcast_to(np.zeros((), dtype), shape)


def check_operand(x: Array, node: Node | None, neuron: Node) -> Array:
    """A neuron's operand ``x`` (from ``node``, if known) must have one value per data point."""
    if x.ndim != 1:
        source = "" if node is None else f" from {node!r}"
        raise ShapeError(
            f"neuron {neuron!r}: every operand must have one value per data point, "
            f"shape (N,); got shape {x.shape}{source}"
        )
    return x


def check_grads(gs: Any, n: int, op: str, node: Node) -> Any:
    """A vjp must return one gradient (or None) per operand."""
    if not isinstance(gs, (tuple, list)) or len(gs) != n:
        got = len(gs) if isinstance(gs, (tuple, list)) else type(gs).__name__
        raise OpContractError(
            f"op {op!r} at node {node!r}: vjp returned {got} gradients for {n} operands"
        )
    return gs


def numeric(
    value: Any, op: str, node: Node, what: str, dtype: np.dtype[Any] = _F64
) -> Array:
    """The one rule, on both paths, for what an op's ``forward`` or ``vjp`` (``what``)
    hands back: arrays of the network's float type (``dtype``, float64 by default) as
    they are, other numbers (a list, a Python float, float32 into a float64 network,
    float64 into a float32 one) converted to it, anything else refused naming the op
    and its node.

    >>> numeric([1, 2], "twice", "y", "forward")
    array([1., 2.])
    >>> numeric(["0.5"], "twice", "y", "forward")
    Traceback (most recent call last):
    ...
    graphdiff.errors.OpContractError: op 'twice' at node 'y': forward returned list of <U3, ...
    """
    if type(value) is np.ndarray and value.dtype is dtype:
        return value
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as e:  # ragged lists
        raise OpContractError(f"op {op!r} at node {node!r}: {what} returned {e}") from None
    if arr.dtype.kind not in "biuf":
        raise OpContractError(
            f"op {op!r} at node {node!r}: {what} returned {type(value).__name__} of "
            f"{arr.dtype}, not numbers"
        )
    return arr.astype(dtype, copy=False)


def activation_delta(
    dz: Any, act: str, neuron: Node, dtype: np.dtype[Any] = _F64
) -> Array:
    """A neuron's dE/dz from its activation's vjp, as :func:`numeric` says (not None)."""
    if dz is None:
        raise OpContractError(f"activation {act!r} of neuron {neuron!r}: vjp returned None")
    return numeric(dz, act, neuron, "vjp", dtype)


def fit_gradient(
    g: Array | None, shape: tuple[int, ...], op: str, node: Node,
    dtype: np.dtype[Any] = _F64,
) -> Array:
    """A vjp's gradient, as :func:`numeric` says, summed back to its operand's ``shape``
    (None: zeros)."""
    if g is None:
        return np.zeros(shape, dtype)
    if type(g) is np.ndarray and g.dtype is dtype and g.shape[1:] == shape and g.ndim:
        # broadcast over the data points only (a bias): unbroadcast's sum, without its
        # general case's work
        return np.add.reduce(g, axis=0)  # type: ignore[no-any-return]
    g = numeric(g, op, node, "vjp", dtype)
    try:
        g = unbroadcast(g, shape)
    except ValueError:
        g = np.asarray(g)  # not even broadcastable: reported just below
    if np.shape(g) != shape:
        raise OpContractError(
            f"op {op!r} at node {node!r}: gradient of shape {np.shape(g)} for an operand "
            f"of shape {shape}"
        )
    return g


def check_loss(node: Node, shape: tuple[int, ...], n: int | str) -> None:
    """The loss node must give one value per data point: shape ``(n,)``."""
    if shape != (n,):
        raise ShapeError(
            f"loss node {node!r} must give one value per data point, shape ({n},); "
            f"got shape {shape}"
        )


def describe(s: Step) -> str:
    """What a step is, for messages: ``op 'tanh'``, ``neuron, activation 'tanh'``, ``param``."""
    if isinstance(s, OpStep) and s.op is not None:
        return f"op {s.op.name!r}"
    if isinstance(s, NeuronStep) and s.act is not None:
        return f"neuron, activation {s.act.name!r}"
    return type(s).__name__.removesuffix("Step").lower()


def all_finite(x: Any) -> bool:
    return bool(np.isfinite(x).all())


def check_value(value: Any, s: Step) -> None:
    """``check_finite``: the value ``s`` just computed (from finite operands) must be finite."""
    if not all_finite(value):
        raise NonFiniteError(
            f"forward: node {s.node!r} ({describe(s)}) produced a non-finite value "
            "from finite operands",
            node=s.node,
            phase="forward",
        )


def check_delta(delta: Any, s: Step) -> None:
    """``check_finite``: the delta of ``s``, complete before its backward rule, must be finite."""
    if not all_finite(delta):
        raise NonFiniteError(
            f"backward: the delta of node {s.node!r} ({describe(s)}) is not finite",
            node=s.node,
            phase="backward",
        )


def check_loss_value(loss: Any, node: Node) -> None:
    """``check_finite``: the error E must be finite."""
    if not np.isfinite(loss):
        raise NonFiniteError(
            f"the loss {node!r} is not finite ({loss})", node=node, phase="forward"
        )


def accumulate(deltas: list[Array | None], slot: int, g: Array) -> None:
    # Never in place: an op may hand the same array to two operands (add's (g, g)).
    old = deltas[slot]
    deltas[slot] = g if old is None else old + g


@dataclass(frozen=True, eq=False, slots=True)
class Step:
    """One node of the plan: ``node`` is its name, ``slot`` its index, ``args`` the
    slots of its operands. Steps are data; the rules for running them are in
    :mod:`graphdiff.interpret` (one forward and one backward rule per kind) and
    :mod:`graphdiff.codegen` (one emitter per kind)."""

    node: Node
    slot: int
    args: tuple[int, ...] = ()


@dataclass(frozen=True, eq=False, slots=True)
class InputStep(Step):
    """An input: one value per data point, placed by the caller."""


@dataclass(frozen=True, eq=False, slots=True)
class ConstStep(Step):
    value: Array = field(default_factory=lambda: np.zeros(()))


@dataclass(frozen=True, eq=False, slots=True)
class ParamStep(Step):
    name: str = ""


@dataclass(frozen=True, eq=False, slots=True)
class OpStep(Step):
    op: Op | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False, slots=True)
class NeuronStep(Step):
    """``z = sum_j w_j a_j + b``, ``a = g(z)``; ``weights[j]`` names the parameter of edge j."""

    weights: tuple[str, ...] = ()
    bias: str | None = None
    act: Op | None = None
    act_attrs: dict[str, Any] = field(default_factory=dict)


def check_loss_shapes(s: OpStep, pred: tuple[int, ...], target: tuple[int, ...]) -> None:
    """A loss step's prediction and target shapes must agree (as its op says)."""
    assert s.op is not None
    if s.op.check_shapes is not None:
        why = s.op.check_shapes(pred, target)
    else:
        why = None if pred == target else "prediction and target must have the same shape"
    if why:
        raise ShapeError(
            f"loss node {s.node!r} ({s.op.name}): {why}; "
            f"got prediction (port 0) {pred} and target (port 1) {target}"
        )


# -- parameters and the plan as a whole ------------------------------------------


@dataclass(slots=True)
class ParamSpec:
    """One trainable parameter.

    ``kind`` is ``"scalar"`` for edge weights and biases of neurons (shape ``()``)
    and ``"tensor"`` for parameter nodes. ``uses`` lists where it is used: edges
    ``(u, v)`` for weights, ``(node,)`` for biases and parameter nodes.
    """

    name: str
    kind: Literal["scalar", "tensor"]
    shape: tuple[int, ...]
    value: np.ndarray | None = None
    init: str = "zeros"
    fan_in: int = 1
    fan_out: int = 1
    uses: list[tuple[Any, ...]] = field(default_factory=list)


def degree(adj: dict[Hashable, Any], n: Hashable, multi: bool) -> int:
    """Edges of node ``n`` in one networkx adjacency dict (``_pred`` or ``_succ``)."""
    return sum(map(len, adj[n].values())) if multi else len(adj[n])


def _edge_weight(name: str, use: tuple[Any, Any], G: Any) -> ParamSpec:
    """The spec of a default-named edge weight without an initial value, used once."""
    multi = G.is_multigraph()
    fan_in = degree(G._pred, use[1], multi)
    fan_out = max(degree(G._succ, use[0], multi), 1)
    return ParamSpec(name, "scalar", (), None, "glorot", fan_in, fan_out, [use])


def spec_of(records: dict[str, Any], name: str, graph: Any) -> ParamSpec | None:
    """The spec of ``name`` in ``records``, None if absent; a bare edge record (see
    :class:`ParamTable`) is replaced by its spec on the way."""
    rec = records.get(name)
    if type(rec) is tuple:
        rec = records[name] = _edge_weight(name, rec, graph)
    return rec


class ParamTable(Mapping[str, ParamSpec]):
    """``Network.params``: parameter name -> :class:`ParamSpec`, iterated sorted by name.

    A read-only mapping. Most edges of a large neuron graph carry a default-named
    weight used exactly once; compile records just the edge for those, and their
    spec is made (from the compiled graph's degrees) when it is first looked up.
    """

    __slots__ = ("_graph", "_names", "_records")

    def __init__(
        self, records: dict[str, ParamSpec | tuple[Any, Any]], names: list[str], graph: Any
    ) -> None:
        self._records = records
        self._names = names
        self._graph = graph

    def __getitem__(self, name: str) -> ParamSpec:
        spec = spec_of(self._records, name, self._graph)
        if spec is None:
            raise KeyError(name)
        return spec

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._records

    def __repr__(self) -> str:
        return f"<ParamTable: {len(self)} parameters>"


@dataclass(frozen=True, eq=False)
class Plan:
    """What :func:`graphdiff.compile` hands to :class:`~graphdiff.network.Network`:
    the steps for one loss over a snapshot of the graph, and the parameter table."""

    graph: Any  # an independent copy of the compiled graph
    loss: Hashable | None  # None: forward only
    reduction: Literal["mean", "sum"]
    order: tuple[Hashable, ...]  # the nodes the loss depends on, in step order
    steps: tuple[Step, ...]  # steps[slot] computes node order[slot]
    params: ParamTable
    names: tuple[str, ...]  # every parameter, sorted
    tensors: tuple[str, ...]  # the tensor parameters, sorted
    pruned: tuple[Hashable, ...]
    inputs: tuple[Hashable, ...]
    slot: Mapping[Hashable, int]  # node -> its step's index
    dtype: np.dtype[Any] = _F64  # of parameters, values, deltas and gradients


def params_of(s: Step) -> tuple[str, ...]:
    """The names of the parameters a step reads."""
    if isinstance(s, ParamStep):
        return (s.name,)
    if isinstance(s, NeuronStep):
        return s.weights + ((s.bias,) if s.bias else ())
    return ()


def check_grads_finite(grads: Grads) -> None:
    """:class:`NonFiniteError` naming the parameters whose gradient is NaN or infinite."""
    if grads.all_finite():
        return
    bad = [k for k, v in grads.items() if not np.all(np.isfinite(v))]
    raise NonFiniteError(
        f"backward: the gradient of parameter(s) {bad!r} is not finite",
        node=bad[0],
        phase="backward",
    )


def check_finite_inputs(params: dict[str, Any], arrays: dict[Hashable, Array]) -> None:
    """:class:`NonFiniteError` naming the first parameter or input that is not finite."""
    for name, v in params.items():
        if not np.all(np.isfinite(v)):
            raise NonFiniteError(f"parameter {name!r} is not finite", node=name, phase="forward")
    for node, a in arrays.items():
        if not np.all(np.isfinite(a)):
            raise NonFiniteError(f"input {node!r} is not finite", node=node, phase="forward")
