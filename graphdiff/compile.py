"""Validate a networkx graph once and turn it into a flat plan.

Node attributes read by compile (everything else, ``pos``, ``label``, ... is left alone):

================  =====================================================================
``op``            ``"input"``, ``"param"``, ``"const"``, ``"neuron"`` or a registered op
``activation``    neurons: a registered elementwise op (default ``"identity"``); the
                  node's attributes named like the activation's attributes configure it
                  (``activation="sin", scale=100`` is sin(100·z))
``bias``          neurons: a parameter name (str) or an initial value (number); absent
                  means no bias. A numeric bias is the parameter ``"<node>.bias"``
``shape``         params: the parameter's shape
``value``         params: initial value; consts: the constant
``init``          params: ``"glorot"`` (default for 2+ axes), ``"zeros"`` (default
                  otherwise), ``"ones"`` or ``"normal"``
op attributes     the fields of the op's attribute model (``axis``, ``i``, ...)
================  =====================================================================

Edge attributes: ``port`` (operand position of an op node; optional for ops whose
operands commute and for single operands); into neurons, ``param`` (parameter name;
default ``"<u>-><v>"``) and ``weight`` (initial value, a number).

>>> import networkx as nx, graphdiff
>>> G = nx.DiGraph()
>>> G.add_node("x", op="input"); G.add_node("t", op="input")
>>> G.add_node("y", op="neuron", activation="tanh", bias=0.0)
>>> G.add_edge("x", "y", param="w", weight=0.5)
>>> G.add_node("E", op="squared_error")
>>> G.add_edge("y", "E", port=0); G.add_edge("t", "E", port=1)
>>> net = graphdiff.compile(G, loss="E")
>>> sorted(net.param_shapes)
['w', 'y.bias']
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Hashable
from typing import Any, Literal, cast

import networkx as nx
import numpy as np
from pydantic import ValidationError

from .attrs_check import check_numbers, check_size, show_number, warn_misspelled
from .errors import GraphError
from .graphs import (
    ancestors_and_self,
    canonical_ranked,
    default_param_name,
    in_edges,
    node_key,
    snapshot,
    without_gc,
)
from .network import Network
from .plan import (
    ConstStep,
    InputStep,
    NeuronStep,
    OpStep,
    ParamSpec,
    ParamStep,
    ParamTable,
    Plan,
    Step,
    degree,
    spec_of,
)
from .registry import ENGINE_OPS, Op, op_named

__all__ = ["GraphWarning", "ParamSpec", "ParamTable", "compile", "default_param_name", "node_key"]

INITS = ("glorot", "zeros", "ones", "normal")
_F64 = np.dtype(np.float64)


class GraphWarning(UserWarning):
    """Something in the graph is legal but probably not what was meant."""


def _is_number(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _check_graph(G: Any, loss: Hashable | None) -> None:
    if not isinstance(G, nx.DiGraph):  # MultiDiGraph is a DiGraph subclass
        raise GraphError(
            f"compile expects a networkx DiGraph or MultiDiGraph, got {type(G).__name__}"
        )
    for n in G.nodes:
        if isinstance(n, bool) or not isinstance(n, (str, int)):
            raise GraphError(f"node names must be strings or ints, got {n!r} ({type(n).__name__})")
    if loss is not None and loss not in G:
        raise GraphError(f"loss node {loss!r} is not in the graph")


def _op_attrs(node: Hashable, op: Op, data: dict[str, Any], what: str) -> dict[str, Any]:
    fields = op.attrs.model_fields
    given = {k: v for k, v in data.items() if k in fields}
    try:
        return check_numbers(node, op.attrs(**given).model_dump())
    except ValidationError as e:
        errs = "; ".join(
            f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()
        )
        raise GraphError(f"node {node!r}: bad attributes for {what} {op.name!r}: {errs}") from None


def _ordered_operands(G: Any, v: Hashable, op: Op) -> list[Hashable]:
    edges = in_edges(G, v)
    n = len(edges)
    if op.arity is not None and n != op.arity:
        raise GraphError(
            f"node {v!r}: op {op.name!r} takes {op.arity} operand(s), the node has {n}"
        )
    if n == 0:
        raise GraphError(
            f"node {v!r}: op {op.name!r} needs at least one operand, the node has none"
        )
    for u, d, _ in edges:
        if "param" in d:
            raise GraphError(
                f"edge {u!r} -> {v!r}: the edge attribute 'param' only applies to edges "
                f"into neurons; {v!r} is op {op.name!r}"
            )
    ports = [d.get("port") for _, d, _ in edges]
    if all(p is None for p in ports):
        if n > 1 and not op.unordered:
            raise GraphError(
                f"node {v!r}: op {op.name!r} has {n} operands and they are ordered; "
                f"give each in-edge a 'port' (0..{n - 1})"
            )
        return [u for u, _, _ in edges]
    missing = [u for (u, _, _), p in zip(edges, ports, strict=True) if p is None]
    if missing:
        raise GraphError(f"node {v!r}: in-edge(s) from {missing!r} have no 'port' while others do")
    bad = [p for p in ports if isinstance(p, bool) or not isinstance(p, int)]
    if bad:
        raise GraphError(f"node {v!r}: ports must be ints, got {bad!r}")
    by_port: dict[int, Hashable] = {}
    for (u, _, _), p in zip(edges, cast(list[int], ports), strict=True):
        if p in by_port:
            raise GraphError(f"node {v!r}: duplicate port {p} (from {by_port[p]!r} and {u!r})")
        by_port[p] = u
    if sorted(by_port) != list(range(n)):
        raise GraphError(f"node {v!r}: ports must be 0..{n - 1}, got {sorted(by_port)}")
    return [by_port[i] for i in range(n)]


class _Builder:
    def __init__(
        self,
        G: Any,
        order: list[Hashable],
        rank: dict[Hashable, int],
    ) -> None:
        self.G = G
        self.slot = dict(zip(order, range(len(order)), strict=True))
        self.rank = rank
        self.multi = G.is_multigraph()
        # in-edges are sorted by their source's node_key: for string names that is
        # the names' own order, which sorts without calling a key function
        only_str = set(map(type, G._node)) <= {str}
        self.in_key: Callable[[Hashable], Any] | None = None if only_str else rank.__getitem__
        # nodes without a data-point axis, which cannot feed a neuron: the param and
        # const nodes met so far (steps are made in order, before any step reads them)
        self.unbatched: set[Hashable] = set()
        self.acts: dict[str, tuple[Op, tuple[str, ...]]] = {}
        self.act_defaults: dict[str, dict[str, Any]] = {}
        # name -> spec; a bare edge (u, v) for a default-named weight used once
        self.params: dict[str, ParamSpec | tuple[Any, Any]] = {}
        # default names (edge "u->v", bias "<node>.bias") -> their one use
        self.auto_names: dict[str, tuple[Any, ...]] = {}

    def scalar(
        self,
        name: object,
        value: object,
        use: tuple[Any, ...],
        fan_in: int,
        fan_out: int,
        auto: bool = False,
    ) -> str:
        """Declare or reuse the scalar parameter ``name`` at ``use`` (an edge or a
        neuron's bias), checking everything a shared or unusual name can get wrong."""

        def where() -> str:
            return f"edge {use[0]!r} -> {use[1]!r}" if len(use) == 2 else f"node {use[0]!r}"

        if not isinstance(name, str) or not name:
            raise GraphError(
                f"{where()}: a parameter name must be a non-empty string, got {name!r}"
            )
        if value is not None and type(value) is not float:
            if not _is_number(value):
                what = "'weight'" if len(use) == 2 else "'bias'"
                msg = f"{what} must be a number (the initial value), got {value!r}"
                raise GraphError(f"{where()}: {msg}")
            try:
                value = float(value)  # type: ignore[arg-type]
            except OverflowError:  # an int beyond float range, such as 10**400
                raise GraphError(f"{where()}: initial value {show_number(value)} is too large "
                                 "for a float") from None
        if value is not None and not math.isfinite(value):
            raise GraphError(f"{where()}: initial value {value!r} is not finite")
        spec = self.spec(name)
        if spec is None:
            spec = self.params[name] = ParamSpec(
                name, "scalar", (), None, "glorot", fan_in, max(fan_out, 1), [use]
            )
            if value is not None:
                spec.value = np.asarray(value, dtype=np.float64)
            if auto:
                self.auto_names[name] = use
            return name
        if spec.kind != "scalar":
            raise GraphError(
                f"{where()}: parameter {name!r} is used as a scalar weight here and is the "
                f"tensor parameter node {spec.uses[0][0]!r}"
            )
        if auto or name in self.auto_names:
            # a default name is never shared: it met another parameter of that name
            mine = use if auto else self.auto_names[name]
            others = [u for u in [*spec.uses, use] if u != mine]
            raise GraphError(
                f"the default parameter name {name!r} of {mine!r} collides with the "
                f"parameter name {name!r} used at {others!r}; give one of them a 'param'"
            )
        if value is not None:
            if spec.value is None:
                spec.value = np.asarray(value, dtype=np.float64)
            elif spec.value != value:
                raise GraphError(
                    f"{where()}: shared parameter {name!r} gets initial value {value!r} here "
                    f"and {float(spec.value)!r} at {spec.uses!r}"
                )
        spec.uses.append(use)
        return name

    def spec(self, name: str) -> ParamSpec | None:
        """The spec of ``name`` if declared (a bare edge record becomes a spec here)."""
        rec = self.params.get(name)
        if type(rec) is tuple:
            self.auto_names[name] = rec  # only default names are recorded bare
        return spec_of(self.params, name, self.G)

    def tensor(self, v: Hashable, data: dict[str, Any]) -> str:
        name = str(v)
        other = self.spec(name)
        if other is not None:
            if other.kind == "tensor":
                raise GraphError(
                    f"node {v!r}: parameter nodes {other.uses[0][0]!r} and {v!r} are both "
                    f"named {name!r} as parameters; rename one"
                )
            raise GraphError(
                f"node {v!r}: parameter node name {name!r} is already a scalar parameter "
                f"used at {other.uses!r}"
            )
        value = data.get("value")
        shape = data.get("shape")
        arr = None
        if value is not None:
            try:
                arr = np.array(value, dtype=np.float64)
            except OverflowError:
                raise GraphError(f"node {v!r}: 'value' has entries too large for a float") from None
            except (TypeError, ValueError):
                raise GraphError(f"node {v!r}: 'value' is not a numeric array") from None
            if not np.all(np.isfinite(arr)):
                raise GraphError(f"node {v!r}: 'value' has NaN or infinite entries")
        if shape is None:
            if arr is None:
                raise GraphError(f"node {v!r}: a param node needs 'shape' or 'value'")
            shape = arr.shape
        if isinstance(shape, int) and not isinstance(shape, bool):
            shape = (shape,)
        if not isinstance(shape, (tuple, list)) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape
        ):
            raise GraphError(
                f"node {v!r}: 'shape' must be a tuple of non-negative ints, got {shape!r}"
            )
        shape = tuple(shape)
        check_size(v, shape)
        if arr is not None and arr.shape != shape:
            raise GraphError(f"node {v!r}: 'value' has shape {arr.shape}, 'shape' says {shape}")
        init = data.get("init", "glorot" if len(shape) >= 2 else "zeros")
        if not isinstance(init, str) or init not in INITS:
            raise GraphError(f"node {v!r}: unknown init {init!r}; choose one of {', '.join(INITS)}")
        fan_in = math.prod(shape[:-1]) if len(shape) >= 2 else max(math.prod(shape), 1)
        fan_out = shape[-1] if shape else 1
        self.params[name] = ParamSpec(
            name, "tensor", shape, arr, init, fan_in, fan_out, uses=[(v,)]
        )
        return name

    def step(self, v: Hashable) -> Step:
        G, data = self.G, self.G._node[v]
        kind = data.get("op")
        if not isinstance(kind, str):  # an array would compare elementwise below
            if kind is None:
                hint = " (inputs are declared with op='input')" if G.in_degree(v) == 0 else ""
                raise GraphError(f"node {v!r} has no 'op' attribute{hint}")
            raise GraphError(f"node {v!r}: op must be an op name (str), got {show_number(kind)}")
        if kind == "neuron":
            return self.neuron(v, data)
        slot = self.slot[v]
        if kind in ("input", "param", "const") and G.in_degree(v):
            raise GraphError(f"node {v!r} is op={kind!r} and cannot have incoming edges")
        if kind == "input":
            return InputStep(v, slot)
        if kind == "param":
            self.unbatched.add(v)
            return ParamStep(v, slot, name=self.tensor(v, data))
        if kind == "const":
            self.unbatched.add(v)
            if "value" not in data:
                raise GraphError(f"node {v!r}: a const node needs 'value'")
            try:
                value = np.array(data["value"], dtype=np.float64)
            except OverflowError:
                raise GraphError(f"node {v!r}: 'value' has entries too large for a float") from None
            except (TypeError, ValueError):
                raise GraphError(f"node {v!r}: 'value' is not a numeric array") from None
            value.flags.writeable = False
            return ConstStep(v, slot, value=value)
        op = op_named(kind, "op", f"node {v!r}: ")
        args = tuple(self.slot[u] for u in _ordered_operands(G, v, op))
        return OpStep(v, slot, args, op=op, attrs=_op_attrs(v, op, data, "op"))

    def activation(self, v: Hashable, data: dict[str, Any]) -> tuple[Op, dict[str, Any]]:
        name = data.get("activation", "identity")
        known = self.acts.get(name) if isinstance(name, str) else None
        if known is None:
            act = op_named(name, "activation", f"node {v!r}: ")
            if not act.elementwise:
                raise GraphError(f"node {v!r}: activation {act.name!r} is not an elementwise op")
            known = self.acts[name] = (act, tuple(act.attrs.model_fields))
        act, fields = known
        if fields and any(k in data for k in fields):
            return act, _op_attrs(v, act, data, "activation")
        # the common case, no activation attributes: validated once per activation
        if name not in self.act_defaults:
            self.act_defaults[name] = _op_attrs(v, act, data, "activation")
        return act, self.act_defaults[name]

    def edge_param(
        self, u: Hashable, v: Hashable, d: dict[str, Any], k: Any, fan_in: int
    ) -> str:
        """Declare or reuse the weight parameter of edge u -> v (``k``: its key, if any)."""
        auto = "param" not in d
        name = default_param_name(u, v, k) if auto else d["param"]
        fan_out = max(degree(self.G._succ, u, self.multi), 1)
        return self.scalar(name, d.get("weight"), (u, v), fan_in, fan_out, auto)

    def neuron(self, v: Hashable, data: dict[str, Any]) -> NeuronStep:
        G = self.G
        act, act_attrs = self.activation(v, data)
        if self.multi:
            edges = in_edges(G, v, self.rank.__getitem__)
            us = [u for u, _, _ in edges]
        else:  # in_edges, inlined for the common case
            pred = G._pred[v]
            us = sorted(pred, key=self.in_key) if len(pred) > 1 else list(pred)
        if not us:
            raise GraphError(f"neuron {v!r} has no incoming edges")
        fan_in = len(us)
        unbatched = self.unbatched
        if unbatched and not unbatched.isdisjoint(us):
            u = next(u for u in us if u in unbatched)
            raise GraphError(
                f"edge {u!r} -> {v!r}: a neuron's operands must have one value per data "
                f"point; {u!r} is a {G._node[u]['op']} node"
            )
        params = self.params
        weights = []
        if self.multi:
            for u, d, k in edges:
                weights.append(self.edge_param(u, v, d, k, fan_in))
        else:
            for u in us:
                d = pred[u]
                if d and ("param" in d or "weight" in d):
                    name = self.edge_param(u, v, d, None, fan_in)
                else:  # the common case: a default name and no initial value
                    name = f"{u}->{v}"
                    if name in params:  # taken: edge_param says by what
                        self.edge_param(u, v, d, None, fan_in)
                    params[name] = (u, v)  # its spec is made when needed (ParamTable)
                weights.append(name)
        slot = self.slot
        bias = None
        if "bias" in data:
            b = data["bias"]
            if isinstance(b, str):
                bias = self.scalar(b, None, (v,), fan_in, 1)
            elif _is_number(b):
                bias = self.scalar(f"{v}.bias", b, (v,), fan_in, 1, auto=True)
            elif b is not None:
                raise GraphError(
                    f"node {v!r}: 'bias' must be a parameter name (str) or a number, got {b!r}"
                )
        # node, slot, args, weights, bias, act, act_attrs (positional: ~10% faster)
        return NeuronStep(
            v, slot[v], tuple(map(slot.__getitem__, us)), tuple(weights), bias, act, act_attrs
        )


def build(
    G: Any, loss: Hashable | None, reduction: Literal["mean", "sum"] = "mean",
    dtype: np.dtype[Any] = _F64,
) -> Plan:
    """Validate ``G`` and build the plan for ``loss`` (see :func:`graphdiff.compile`);
    without a loss, every node is kept. Constants are stored as ``dtype``."""
    _check_graph(G, loss)
    loss_kind = None if loss is None else G.nodes[loss].get("op")
    if isinstance(loss_kind, str) and loss_kind in ENGINE_OPS and loss_kind != "neuron":
        raise GraphError(f"loss node {loss!r} is op={loss_kind!r}; it must compute something")
    # Every in-edge of a kept node comes from a kept node, so the plan can read
    # the graph itself; a subgraph view would filter every access (10x slower).
    # In a DAG every node leads to a sink: when the loss is the only one, every node
    # leads to the loss (a cycle, which could break that, fails the sort below).
    only_sink = loss is None or (
        G.out_degree(loss) == 0 and sum(not s for s in G._succ.values()) == 1
    )
    keep = G._node if only_sink else ancestors_and_self(G, loss)
    everything, rank = canonical_ranked(G)
    if len(keep) == len(everything):
        order, pruned = everything, []
    else:
        order = [n for n in everything if n in keep]
        pruned = sorted((n for n in everything if n not in keep), key=rank.__getitem__)
    builder = _Builder(G, order, rank)
    steps = [builder.step(v) for v in order]
    if dtype != np.float64:
        steps = [_const_as(s, dtype) if type(s) is ConstStep else s for s in steps]
    warn_misspelled(G, steps, GraphWarning)
    unused = [n for n in pruned
              if isinstance(k := G._node[n].get("op"), str) and k == "input"]
    if unused:
        warnings.warn(
            f"the loss {loss!r} does not depend on input(s) {unused!r}; they are ignored",
            GraphWarning,
            stacklevel=3,
        )
    inputs = [s.node for s in steps if isinstance(s, InputStep)]
    names = sorted(builder.params)
    tensors = sorted(s.name for s in steps if isinstance(s, ParamStep))
    graph = snapshot(G)
    return Plan(
        graph, loss, reduction, tuple(order), tuple(steps),
        ParamTable(builder.params, names, graph), tuple(names), tuple(tensors), tuple(pruned),
        tuple(inputs), builder.slot, dtype,
    )


def _const_as(s: ConstStep, dtype: np.dtype[Any]) -> ConstStep:
    value = s.value.astype(dtype)
    value.flags.writeable = False
    return ConstStep(s.node, s.slot, s.args, value)


def as_dtype(dtype: object) -> np.dtype[Any]:
    """``compile``'s ``dtype`` argument: float64 (the default) or float32, given as the
    numpy type, its dtype or its name; anything else a :class:`GraphError` naming it."""
    try:
        dt = np.dtype(dtype) if isinstance(dtype, (str, type, np.dtype)) else None
    except TypeError:
        dt = None
    if dt is None or dt not in (np.float64, np.float32):
        raise GraphError(
            f"dtype must be float64 or float32 (np.float32 or \"float32\"), got {dtype!r}"
        )
    return dt


def compile(
    G: Any, *, loss: Hashable | None = None, reduction: Literal["mean", "sum"] = "mean",
    dtype: Any = np.float64,
) -> Network:
    """Validate a networkx DAG and compile it into a :class:`~graphdiff.network.Network`.

    Parameters
    ----------
    G : nx.DiGraph or nx.MultiDiGraph
        The network (see the module docstring for the attributes read).
    loss : node or None
        The node whose value, one number per data point, is the error. Without
        one (``None``, the default) the network is forward-only: every node is
        kept, ``Network.forward`` runs and ``backward`` and ``fit`` refuse.
    reduction : "mean" or "sum"
        How the loss node's values are reduced to the scalar E (``"sum"`` for
        data-parallel shards whose sums are added later).
    dtype : np.float64 (default) or np.float32 (also as ``"float32"``)
        The float type of the parameters, values, deltas, gradients and optimizer
        state. A float32 network converts its inputs once where they enter
        (float64 or integer arrays alike, silently) and returns float32 results;
        :func:`graphdiff.gradcheck` still differentiates it numerically in float64.

    Raises
    ------
    GraphError
        (or a subclass: :class:`CycleError`, :class:`UnknownOpError`) naming the
        node or edge at fault.
    """
    if not isinstance(reduction, str) or reduction not in ("mean", "sum"):
        raise GraphError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    dt = as_dtype(dtype)
    return without_gc(lambda: Network(build(G, loss, reduction, dt)))
