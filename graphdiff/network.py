"""A compiled network: parameters in, loss, deltas and gradients out.

>>> import networkx as nx, numpy as np, graphdiff
>>> G = nx.DiGraph()
>>> G.add_nodes_from(["x", "t"], op="input")
>>> G.add_node("z", op="neuron", activation="identity")
>>> G.add_edge("x", "z", param="w", weight=2.0)
>>> G.add_node("E", op="hinge")
>>> G.add_edge("z", "E", port=0); G.add_edge("t", "E", port=1)
>>> net = graphdiff.compile(G, loss="E")
>>> res = net.backward(net.init_params(seed=0), {"x": np.array([1.0]), "t": np.array([-1.0])})
>>> float(res.loss), float(res.grads["w"])   # E = max(0, -z t) = 2, dE/dw = -t x = 1
(2.0, 1.0)
"""

from __future__ import annotations

import functools
import sys
import zlib
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import networkx as nx
import numpy as np

from . import interpret
from .errors import GraphdiffError, GraphError, InputError, ShapeError
from .fusion import Fusion, fuse
from .graphs import without_gc
from .params import Grads, Layout, Params, draw
from .plan import (
    InputStep,
    NeuronStep,
    ParamStep,
    Plan,
    Step,
    all_finite,
    as_numbers,
    check_finite_inputs,
    check_grads_finite,
    check_loss,
    check_loss_value,
    params_of,
)
from .program import Program, generate
from .schema import ModelFile

__all__ = ["BackwardResult", "Batch", "Grads", "Network", "Params"]

Array = np.ndarray


class Batch(Mapping[Hashable, Array]):
    """Inputs gathered for one step from data checked once (what ``fit``'s runner
    makes): ``xs`` in ``net.inputs`` order, arrays of its dtype over the same ``n > 0``
    points. ``net`` takes them as they are, with no per-input checks; read as a
    mapping (by any other network, or the checking path) it is input node -> array.
    """

    __slots__ = ("n", "net", "xs")

    def __init__(self, net: Network, xs: list[Array], n: int) -> None:
        self.net, self.xs, self.n = net, xs, n

    def __getitem__(self, node: Hashable) -> Array:
        return self.xs[self.net._input_index[node]]

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self.net.inputs)

    def __len__(self) -> int:
        return len(self.xs)



@dataclass
class BackwardResult:
    """What :meth:`Network.backward` returns.

    Attributes
    ----------
    loss : the scalar error E (a numpy float of the network's dtype).
    grads : ``dE/dθ`` for every parameter, summed over all its uses, by name (a
        read-only mapping, :class:`Grads`); arrays of the parameter's shape, numpy
        floats for scalar parameters.
    values : with ``deltas=True``, every node's value (for neurons, ``a = g(z)``).
    deltas : with ``deltas=True``, every node's δ = dE/d(value), shape of the value.
        With the mean reduction each data point's δ carries the factor 1/N.
    z : with ``deltas=True``, each neuron's pre-activation ``z``.
    deltas_z : with ``deltas=True``, each neuron's dE/dz = δ·g'(z).
    """

    loss: np.floating[Any]
    grads: Grads
    values: dict[Hashable, Array] = field(default_factory=dict)
    deltas: dict[Hashable, Array] = field(default_factory=dict)
    z: dict[Hashable, Array] = field(default_factory=dict)
    deltas_z: dict[Hashable, Array] = field(default_factory=dict)


class Network:
    """A validated, compiled network (made by :func:`graphdiff.compile`).

    Attributes
    ----------
    loss : the loss node; ``None`` for a forward-only network (compiled without a
        loss: every node kept, ``backward``, ``error`` and ``fit`` refuse).
    nodes : the nodes the loss depends on, in execution (topological) order.
    inputs : the input nodes the loss depends on.
    params : name -> :class:`~graphdiff.plan.ParamSpec`, sorted by name (a read-only
        mapping, :class:`~graphdiff.plan.ParamTable`).
    param_shapes : name -> shape (``()`` for scalar weights and biases).
    pruned : nodes that do not lead to the loss (left out of the plan).
    graph : a copy of the graph it was compiled from.
    dtype : the float type of parameters, values, deltas and gradients (numpy
        float64 by default, float32 when compiled with ``dtype=np.float32``).
    """

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.dtype: np.dtype[Any] = plan.dtype
        self._float: type[np.floating[Any]] = plan.dtype.type  # np.float64 or np.float32
        self.graph: nx.DiGraph[Hashable] = plan.graph
        self.loss = plan.loss
        self.reduction = plan.reduction
        self.nodes: tuple[Hashable, ...] = plan.order
        self.inputs: tuple[Hashable, ...] = plan.inputs
        self._input_index = {node: i for i, node in enumerate(self.inputs)}
        self.params = plan.params
        self._tensors = list(plan.tensors)
        self._tensor_shapes = [self.params[n].shape for n in self._tensors]
        self.pruned: tuple[Hashable, ...] = plan.pruned
        self._steps: list[Step] = list(plan.steps)
        self._slot = plan.slot
        self._loss_slot = -1 if self.loss is None else self._slot[self.loss]
        # needs[s]: does any parameter reach slot s (so its delta is worth computing)?
        # Every neuron has one; the other steps (few, in a neuron graph) are looked at
        # in order (steps[slot] is the step of that slot).
        needs = [type(s) is NeuronStep for s in self._steps]
        for s in [s for s in self._steps if type(s) is not NeuronStep]:
            needs[s.slot] = isinstance(s, ParamStep) or any(map(needs.__getitem__, s.args))
        self._needs = needs
        self._forward_plans: dict[Any, list[Step]] = {}
        tensors = set(self._tensors)
        names = list(plan.names)
        self._scalars = [n for n in names if n not in tensors] if tensors else names
        self._names = names  # sorted
        # itemgetter with one name gives the value itself, not a 1-tuple
        self._get_scalars = (
            itemgetter(*self._scalars) if len(self._scalars) > 1
            else (lambda p, n=self._scalars: tuple(map(p.__getitem__, n)))
        )

    # The fused plan and its generated code are made when the network first runs
    # (backward, error, interpret): a network compiled to be checked, inspected, saved
    # or drawn (``graphdiff info``) never needs them, and they are a quarter of
    # compiling a large graph. The first run pays what compiling no longer does.

    @functools.cached_property
    def _fusion(self) -> Fusion | None:
        """The fused plan (:mod:`graphdiff.fusion`), run by the generated code and the
        interpreter; None for a forward-only network."""
        if self.loss is None:
            return None
        scalars = self._scalars
        return without_gc(
            lambda: fuse(self._steps, dict(zip(scalars, range(len(scalars)), strict=True)))
        )

    @functools.cached_property
    def _program(self) -> Program | None:
        """The generated functions of the fused plan (None: the interpreter runs it)."""
        fusion = self._fusion
        if fusion is None:
            return None
        return without_gc(lambda: generate(
            fusion, self._tensors, self._loss_slot, self.reduction, self._needs, self.dtype
        ))

    @functools.cached_property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Parameter name -> shape (``()`` for scalar weights and biases), sorted by
        name (made on first use: a dict of every edge's weight costs compiling time)."""
        shapes: dict[str, tuple[int, ...]] = dict.fromkeys(self.plan.names, ())
        shapes.update(zip(self._tensors, self._tensor_shapes, strict=True))
        return shapes

    @functools.cached_property
    def layout(self) -> Layout:
        """Where each parameter sits in the vector of this network's
        :class:`~graphdiff.params.Params` (made on first use: compiling needs none)."""
        return Layout(
            self._scalars, list(zip(self._tensors, self._tensor_shapes, strict=True)), self.dtype
        )

    @functools.cached_property
    def _fingerprint(self) -> str:
        return self.layout.fingerprint

    def __repr__(self) -> str:
        dtype = "" if self.dtype == np.float64 else f", {self.dtype.name}"
        return (
            f"<Network loss={self.loss!r}: {len(self.nodes)} nodes, "
            f"{len(self.params)} parameters, inputs {list(self.inputs)!r}{dtype}>"
        )

    def require_loss(self, what: str) -> Hashable:
        """The loss node; a :class:`~graphdiff.errors.GraphError` saying that ``what``
        needs one when the network was compiled without a loss."""
        if self.loss is None:
            raise GraphError(
                f"{what} needs a loss: this network was compiled without one (forward "
                "only); add a loss node to the graph and compile it with loss=..."
            )
        return self.loss

    def _repr_png_(self) -> bytes | None:
        """The drawing of the graph, for notebooks (``None`` for a big one: the text repr)."""
        from .viz import network_png

        return network_png(self.graph)

    def spec(self) -> ModelFile:
        """The model-file spec of the compiled graph and loss (no parameters).

        What a data-parallel trainer sends to its workers instead of the graph
        object: :func:`graphdiff.from_spec` rebuilds the graph from it.

        >>> import graphdiff
        >>> net = graphdiff.compile(graphdiff.mlp([2, 1]), loss="E")
        >>> spec = net.spec()
        >>> spec.loss, len(spec.graph.nodes), spec.params, spec.dtype
        ('E', 5, None, 'float64')
        """
        from .io import to_spec

        return to_spec(self.graph, loss=self.loss, dtype=self.dtype)

    # -- parameters ---------------------------------------------------------------

    def init_params(self, seed: int | None = None) -> Params:
        """Initial parameters: values given in the graph, the rest drawn from ``seed``.

        Scalar edge weights are drawn like a Glorot-uniform matrix entry,
        ``U(-a, a)`` with ``a = sqrt(6 / (fan_in + fan_out))``, where fan_in is the
        target neuron's in-degree and fan_out the source's out-degree (for a dense
        layer, exactly Glorot's rule for its weight matrix); biases start at 0.
        Tensor parameters follow their ``init`` (default ``"glorot"`` for 2+
        axes, ``"zeros"`` otherwise; ``"normal"`` is N(0, 1/fan_in)). Each
        parameter has its own stream derived from ``(seed, name)``, so adding a
        parameter never changes the others. The result is a
        :class:`~graphdiff.params.Params`: a mapping from name to value (scalars
        are numpy floats) backed by one vector, ``.vector``, of the network's
        ``dtype`` (a float32 network's values are the float64 draws rounded).

        >>> import networkx as nx, graphdiff
        >>> G = nx.DiGraph([("x", "y")]); G.nodes["x"]["op"] = "input"
        >>> G.nodes["y"].update(op="neuron", activation="tanh")
        >>> net = graphdiff.compile(G, loss="y")
        >>> net.init_params(seed=0) == net.init_params(seed=0)
        True
        """
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0
        ):
            raise InputError(f"seed must be None or a whole number >= 0, got {seed!r}")
        out: dict[str, Any] = {}
        for name, spec in self.params.items():
            if spec.value is not None:
                value = spec.value.copy()
            else:
                key = [int(seed), zlib.crc32(name.encode())] if seed is not None else None
                rng = np.random.default_rng(key)
                try:
                    value = draw(spec, rng)
                except MemoryError:
                    raise ShapeError(
                        f"parameter {name!r} of shape {spec.shape} does not fit in memory"
                    ) from None
            out[name] = value
        return Params.from_mapping(self.layout, out)

    def params_from_vector(self, vector: Any) -> Params:
        """Parameters from one vector in this network's layout (``.layout``: the
        scalar parameters first, then each tensor's entries), copied. A float array
        must be of the network's ``dtype`` (a float64 vector for a float32 network is
        refused, naming both: convert it with ``.astype`` if that is meant); lists
        and integers are converted.

        >>> import graphdiff
        >>> net = graphdiff.compile(graphdiff.mlp([2, 1]), loss="E")
        >>> p = net.params_from_vector([0.5, -1.0, 2.0])
        >>> list(p), net.params_from_vector(p.vector * 2)["y.bias"]
        (['x1->y', 'x2->y', 'y.bias'], np.float64(4.0))
        """
        given = np.asarray(vector) if isinstance(vector, (np.ndarray, np.generic)) else None
        if given is not None and given.dtype.kind == "f" and given.dtype != self.dtype:
            raise InputError(
                f"the parameter vector is {given.dtype.name}, this network's parameters are "
                f"{self.dtype.name} (layout {self._fingerprint})"
            )
        arr = as_numbers(vector, "the parameter vector", self.dtype)
        if arr.shape != (self.layout.size,):
            raise ShapeError(
                f"the parameter vector must have shape ({self.layout.size},) for this network "
                f"(layout {self._fingerprint}), got {arr.shape}"
            )
        return Params(self.layout, np.array(arr, dtype=self.dtype))

    def as_params(self, params: Mapping[str, Any]) -> Params:
        """``params`` as this network's :class:`~graphdiff.params.Params`, in a vector of
        its own: a mapping is checked (every parameter present, numeric, of its shape;
        extra names are ignored), a ``Params`` of this network's layout only copied."""
        if isinstance(params, Params) and params.layout.fingerprint == self._fingerprint:
            return params.copy()
        if not isinstance(params, Mapping):
            raise InputError(
                f"params must map parameter names to values, got {type(params).__name__}"
            )
        try:
            return self._new_params(params)
        except InputError as e:
            if isinstance(params, Params):  # say why the vector was not taken as it is
                raise type(e)(
                    f"{e} (the Params are of another network: layout "
                    f"{params.layout.fingerprint}, this network's {self._fingerprint})"
                ) from None
            raise

    def _new_params(self, params: Mapping[str, Any]) -> Params:
        """A checked copy of the mapping ``params`` in a vector of its own; the scalar
        parameters in one piece when numpy reads them as one numeric vector."""
        scalars = self._scalar_vector(params) if len(self._scalars) > 1 else None
        if scalars is None:
            return Params.from_mapping(self.layout, self._check_params(params))
        vector = np.empty(self.layout.size, self.dtype)
        vector[: self.layout.n_scalars] = scalars
        self.layout.fill(vector, self._check_params(params, self._tensors))
        return Params(self.layout, vector)

    def _check_params(
        self, params: Mapping[str, Any], names: Iterable[str] | None = None
    ) -> dict[str, Any]:
        _mapping(params, "params")
        names = list(self.params if names is None else names)
        if isinstance(params, Params) and params.layout.fingerprint == self._fingerprint:
            return {n: params[n] for n in names}  # checked when it was made
        missing = [n for n in names if n not in params]
        if missing:
            raise InputError(f"missing parameter(s) {missing!r}")
        checked: dict[str, Any] = {}
        dtype, scalar = self.dtype, self._float
        # every parameter: the scalars' values as one array first; numbers all (no None,
        # text or arrays among them) when numpy makes one numeric vector of them
        scalars = (
            self._scalar_vector(params)
            if len(names) == len(self._names) and len(self._scalars) > 1 else None
        )
        order = names
        if scalars is not None:
            checked = dict(zip(self._scalars, scalars, strict=True))
            names = [n for n in names if n not in checked]
        for name in names:
            spec = self.params[name]
            value = as_numbers(params[name], f"parameter {name!r}", dtype)
            if spec.kind == "scalar":
                if np.ndim(value) != 0:
                    raise ShapeError(
                        f"parameter {name!r} is a scalar weight; got shape {np.shape(value)}"
                    )
                checked[name] = scalar(value)
            else:
                if value.shape != spec.shape:
                    raise ShapeError(
                        f"parameter {name!r} must have shape {spec.shape}, got {value.shape}"
                    )
                checked[name] = value
        return checked if scalars is None else {n: checked[n] for n in order}

    def _scalar_vector(self, params: Mapping[str, Any]) -> Array | None:
        """The scalar parameters' values as a vector of the network's dtype, if numpy reads
        them as one numeric vector (else None: the parameter-by-parameter check names the
        culprit)."""
        try:
            values = np.array(self._get_scalars(params))
        except (TypeError, ValueError, KeyError):
            return None
        if values.shape != (len(self._scalars),) or values.dtype.kind not in "biuf":
            return None
        return values.astype(self.dtype, copy=False)

    def _check_inputs(
        self, inputs: Mapping[Hashable, Any], needed: Iterable[Hashable]
    ) -> dict[Hashable, Array]:
        _mapping(inputs, "inputs")
        needed = list(needed)
        missing = [n for n in needed if n not in inputs]
        if missing:
            raise InputError(f"missing input(s) {missing!r}")
        arrays = {}
        for n in needed:
            arr = as_numbers(inputs[n], f"input {n!r}", self.dtype)
            if arr.ndim == 0:
                raise ShapeError(
                    f"input {n!r} must have a first axis over data points, got a scalar"
                )
            arrays[n] = arr
        sizes = {n: a.shape[0] for n, a in arrays.items()}
        if len(set(sizes.values())) > 1:
            raise ShapeError(f"inputs disagree on the number of data points: {sizes!r}")
        if 0 in sizes.values():
            raise _no_data_points(arrays)
        return arrays

    # -- running ------------------------------------------------------------------

    def forward(
        self,
        params: Mapping[str, Any],
        inputs: Mapping[Hashable, Any],
        outputs: Iterable[Hashable] | None = None,
    ) -> dict[Hashable, Array]:
        """Compute node values (no gradients).

        ``outputs`` names the nodes wanted; only the inputs they depend on are
        needed (predicting needs no target). By default every node that can be
        computed from the given inputs is returned.
        """
        _mapping(inputs, "inputs")
        if outputs is None:
            given = frozenset(n for n in self.inputs if n in inputs)
            steps = self._plan_for(("available", given))
        else:
            wanted = _node_list(outputs, "outputs")
            unknown = [n for n in wanted if not _is_key(n, self._slot)]
            if unknown:
                raise InputError(f"outputs: unknown or pruned output node(s) {unknown!r}")
            steps = self._plan_for(("outputs", wanted))
        needed = [s.node for s in steps if isinstance(s, InputStep)]
        arrays = self._check_inputs(inputs, needed)
        used = sorted({p for s in steps for p in params_of(s)})
        checked = self._check_params(params, used)
        vals = interpret.forward(
            steps, len(self._steps), checked, arrays, False, self.dtype
        ).vals
        return {s.node: np.array(vals[s.slot]) for s in steps}

    def _plan_for(self, key: tuple[str, Any]) -> list[Step]:
        plan = self._forward_plans.get(key)
        if plan is not None:
            return plan
        kind, arg = key
        if kind == "available":
            ok = [False] * len(self._steps)
            for s in self._steps:
                ok[s.slot] = s.node in arg if isinstance(s, InputStep) else all(
                    ok[a] for a in s.args
                )
            plan = [s for s in self._steps if ok[s.slot]]
        else:
            want = [False] * len(self._steps)
            for n in arg:
                want[self._slot[n]] = True
            for s in reversed(self._steps):
                if want[s.slot]:
                    for a in s.args:
                        want[a] = True
            plan = [s for s in self._steps if want[s.slot]]
        self._forward_plans[key] = plan
        return plan

    def backward(
        self,
        params: Mapping[str, Any],
        inputs: Mapping[Hashable, Any],
        deltas: bool = False,
        check_finite: bool = False,
    ) -> BackwardResult:
        """Forward pass, error E, and backpropagation of every gradient.

        Parameters
        ----------
        params : name -> value for every parameter (extra keys are ignored).
        inputs : input node -> array over the batch (first axis = data points).
        deltas : also return every node's value and δ (and neurons' z and dE/dz).
        check_finite : raise :class:`~graphdiff.errors.NonFiniteError` naming the
            first node whose value or delta is NaN or infinite.
        """
        self.require_loss("backward")
        _mapping(params, "params")
        _mapping(inputs, "inputs")
        if self._program is None:
            return self.interpret(params, inputs, deltas, check_finite)
        try:
            if deltas or check_finite:
                return self._program_backward(params, inputs, deltas, check_finite)
            return self._fast_backward(params, inputs)
        except GraphdiffError:
            raise
        except Exception:
            # Generated code fails with numpy's bare errors; the interpreter
            # raises the same problem as an error naming its node.
            self.interpret(params, inputs, deltas=True)
            raise

    def interpret(
        self,
        params: Mapping[str, Any],
        inputs: Mapping[Hashable, Any],
        deltas: bool = False,
        check_finite: bool = False,
    ) -> BackwardResult:
        """:meth:`backward` run by the interpreter, step by step over the fused plan:
        the readable reference of the generated code, which gives the same bits, and
        what runs plans too large to generate code for."""
        self.require_loss("backward")
        assert self._fusion is not None
        checked = self._check_params(params)
        arrays = self._check_inputs(inputs, self.inputs)
        if check_finite:
            check_finite_inputs(checked, arrays)
        dtype = self.dtype
        P = np.array([checked[n] for n in self._scalars], dtype=dtype)
        run = interpret.forward(
            self._fusion.order, len(self._steps), checked, arrays, check_finite, dtype,
            self._fusion, P,
        )
        values = run.vals[self._loss_slot]
        n = next(iter(arrays.values())).shape[0] if arrays else values.shape[0]
        check_loss(self.loss, values.shape, n)
        # as the generated code: np.add.reduce, divided by N for the mean
        loss = np.add.reduce(values) / n if self.reduction == "mean" else np.add.reduce(values)
        loss = self._float(loss)
        if check_finite:
            check_loss_value(loss, self.loss)
        needs = self._needs
        want = [True] * len(self._steps) if deltas else needs
        seed = interpret.seed(n, 1.0 / n if self.reduction == "mean" else 1.0, dtype)
        gs = interpret.backward(run, self._loss_slot, seed, want, needs, check_finite)
        result = BackwardResult(
            loss=loss, grads=self._grads(gs, [run.GT.get(n) for n in self._tensors])
        )
        if check_finite:
            check_grads_finite(result.grads)
        if deltas:
            # Copies: values alias the caller's inputs and params, and deltas alias
            # each other (add hands one array to both operands).
            for s in self._steps:
                v, d, z, dz = interpret.slot_results(run, s)
                result.values[s.node] = np.array(v)
                result.deltas[s.node] = np.zeros(np.shape(v), dtype) if d is None else np.array(d)
                if z is not None:
                    result.z[s.node] = np.array(z)
                    result.deltas_z[s.node] = (
                        np.zeros(np.shape(v), dtype) if dz is None else np.array(dz)
                    )
        return result

    def _program_backward(
        self, params: Mapping[str, Any], inputs: Mapping[Hashable, Any], deltas: bool,
        check_finite: bool,
    ) -> BackwardResult:
        """The generated backward with every delta kept and/or every value and delta
        checked finite: the same operations as the default, so the same bits."""
        assert self._program is not None
        scalars, tensors, xs, n = self._fast_args(params, inputs)
        if check_finite and not (
            all_finite(scalars) and all(map(all_finite, tensors)) and all(map(all_finite, xs))
        ):
            arrays = dict(zip(self.inputs, xs, strict=True))
            check_finite_inputs(self._check_params(params), arrays)
        run = self._program.variant(deltas, check_finite)
        out = run(scalars, tensors, xs, n)
        loss = out[0] if type(out[0]) is self._float else self._float(out[0])
        result = BackwardResult(loss=loss, grads=self._grads(out[1], out[2]))
        if check_finite:
            check_grads_finite(result.grads)
        if deltas:
            per_slot = self._program.collect(out[3], self._steps)  # the caller's own arrays
            for s, (v, d, z, dz) in zip(self._steps, per_slot, strict=True):
                result.values[s.node] = v
                result.deltas[s.node] = np.zeros(np.shape(v), self.dtype) if d is None else d
                if z is not None:
                    result.z[s.node] = z
                    result.deltas_z[s.node] = (
                        np.zeros(np.shape(v), self.dtype) if dz is None else dz
                    )
        return result

    # -- the fast path (graphdiff.codegen) -------------------------------------------

    def _fast_args(
        self, params: Mapping[str, Any], inputs: Mapping[Hashable, Any]
    ) -> tuple[Array, Sequence[Array], list[Array], int]:
        """Arguments of the generated code; anything unusual takes the checking path."""
        if type(params) is Params and params.layout.fingerprint == self._fingerprint:
            # checked when made: the scalars are the vector's head, tensors its views
            head = params.vector[: self.layout.n_scalars]
            return self._fast_inputs(head, params._tensor_views, inputs)
        f64 = self.dtype  # native float64 (or float32): `is` tells it apart faster than `==`
        try:
            # no dtype: float64 (or float32 from numpy float32 scalars) only when every
            # value is a number (not None or text); anything else is converted below
            scalars = np.array(self._get_scalars(params))
            tensors = list(map(params.__getitem__, self._tensors))
            ok = scalars.dtype is f64 and scalars.shape == (len(self._scalars),)
        except (KeyError, TypeError, ValueError):
            ok = False
        if ok:
            for t, shape in zip(tensors, self._tensor_shapes, strict=True):
                if type(t) is not np.ndarray or t.dtype is not f64 or t.shape != shape:
                    ok = False
        if not ok:  # the checking path raises the error that names the culprit
            checked = self._check_params(params)
            scalars = np.array([checked[n] for n in self._scalars], dtype=self.dtype)
            tensors = [checked[n] for n in self._tensors]
        return self._fast_inputs(scalars, tensors, inputs)

    def _fast_inputs(
        self, scalars: Array, tensors: Sequence[Array], inputs: Mapping[Hashable, Any]
    ) -> tuple[Array, Sequence[Array], list[Array], int]:
        if type(inputs) is Batch and inputs.net is self:  # checked when gathered
            return scalars, tensors, inputs.xs, inputs.n
        f64 = self.dtype
        try:
            xs = list(map(inputs.__getitem__, self.inputs))
            ok = True
        except (KeyError, TypeError):
            ok = False
        # a plain loop, as few tests as can be: this runs on every call, for every input
        # (65 of them in neuron notation on 8x8 images), and generators cost more than
        # the tests; len() is the first axis (a TypeError for a 0-d array)
        n = -1
        if ok:
            try:
                for i, x in enumerate(xs):
                    if type(x) is not np.ndarray or x.dtype is not f64:
                        # labels as integers, say: converted here, one input at a time
                        x = xs[i] = (
                            x.astype(f64) if type(x) is np.ndarray and x.dtype.kind in "biuf"
                            else as_numbers(x, f"input {self.inputs[i]!r}", f64)
                        )
                    if len(x) != n:
                        if n >= 0:
                            ok = False
                            break
                        n = len(x)
            except (InputError, TypeError):
                ok = False
            if n == 0:
                ok = False  # the checking path says there are no data points
        if not ok:  # the checking path raises the error that names the culprit
            arrays = self._check_inputs(inputs, self.inputs)
            xs = [arrays[name] for name in self.inputs]
            n = xs[0].shape[0] if xs else 1
        elif not xs:
            n = 1
        return scalars, tensors, xs, n

    def _fast_backward(
        self, params: Mapping[str, Any], inputs: Mapping[Hashable, Any]
    ) -> BackwardResult:
        assert self._program is not None
        scalars, tensors, xs, n = self._fast_args(params, inputs)
        loss, gs, gt = self._program.backward(scalars, tensors, xs, n)
        loss = loss if type(loss) is self._float else self._float(loss)
        return BackwardResult(loss=loss, grads=self._grads(gs, gt))

    def as_grads(self, grads: Mapping[str, Any]) -> Grads:
        """Gradients by name (0 where missing) as :class:`Grads`, copied."""
        scalars = np.array([grads.get(n, 0.0) for n in self._scalars], dtype=self.dtype)
        return self._grads(scalars, [grads.get(n) for n in self._tensors])

    def _grads(self, scalars: Array, tensors: Sequence[Array | None]) -> Grads:
        """:class:`Grads` of the scalars' vector and the tensors' gradients (in
        ``self._tensors`` order, None for zeros), copied into one vector."""
        return Grads.of(self.layout, scalars, tensors)

    def loss_terms(
        self, params: Mapping[str, Any], inputs: Mapping[Hashable, Any]
    ) -> tuple[np.floating[Any], Array, tuple[Array, ...]]:
        """The error E, the loss node's value per data point, and the values of the loss's
        operands in port order (the prediction, the target): one forward pass, in the
        generated code where there is one (what evaluating a classifier needs).

        >>> import graphdiff, numpy as np
        >>> net = graphdiff.compile(graphdiff.mlp([1, 1], loss="hinge"), loss="E")
        >>> E, per_point, (y, t) = net.loss_terms({"x1->y": 2.0, "y.bias": 0.0},
        ...                                       {"x1": np.array([1.0, -1.0]), "t": np.ones(2)})
        >>> float(E), per_point.tolist(), y.tolist()
        (1.0, [0.0, 2.0], [2.0, -2.0])
        """
        self.require_loss("loss_terms")
        step = self._steps[self._loss_slot]
        if self._program is None:
            nodes = [self._steps[a].node for a in step.args]
            values = self.forward(params, inputs, outputs=[self.loss, *nodes])
            per_point = values[self.loss]
            check_loss(self.loss, per_point.shape, per_point.shape[0] if per_point.ndim else "N")
            E = self._float(per_point.mean() if self.reduction == "mean" else per_point.sum())
            return E, per_point, tuple(values[n] for n in nodes)
        scalars, tensors, xs, n = self._fast_args(params, inputs)
        try:
            E, per_point, operands = self._program.terms(scalars, tensors, xs, n)
        except GraphdiffError:
            raise
        except Exception:
            self.forward(params, inputs, outputs=[self.loss])  # raises, naming the node
            raise
        return self._float(E), per_point, tuple(np.asarray(x) for x in operands)

    def predict(self, params: Mapping[str, Any], inputs: Any) -> Array:
        """Class labels (+1/-1 or class indices) for a classifier loss, else the prediction
        itself; see :func:`graphdiff.predict.predict`."""
        from .predict import predict

        return predict(self, params, inputs)

    def predict_proba(self, params: Mapping[str, Any], inputs: Any) -> Array:
        """The probabilities the loss models (sigmoid for logistic, softmax for softmax
        cross-entropy); see :func:`graphdiff.predict.predict_proba`."""
        from .predict import predict_proba

        return predict_proba(self, params, inputs)

    def error(
        self, params: Mapping[str, Any], inputs: Mapping[Hashable, Any]
    ) -> np.floating[Any]:
        """The error E alone (the loss node reduced over data points), without gradients.

        >>> import networkx as nx, numpy as np, graphdiff
        >>> G = nx.DiGraph([("x", "E"), ("t", "E")])
        >>> G.add_nodes_from(["x", "t"], op="input"); G.nodes["E"]["op"] = "squared_error"
        >>> G.edges["x", "E"]["port"], G.edges["t", "E"]["port"] = 0, 1
        >>> float(graphdiff.compile(G, loss="E").error({}, {"x": np.ones(2), "t": np.zeros(2)}))
        1.0
        """
        self.require_loss("error")
        _mapping(params, "params")
        _mapping(inputs, "inputs")
        if self._program is None:
            values = self.forward(params, inputs, outputs=[self.loss])[self.loss]
            check_loss(self.loss, values.shape, values.shape[0] if values.ndim else "N")
            return self._float(values.mean() if self.reduction == "mean" else values.sum())
        scalars, tensors, xs, n = self._fast_args(params, inputs)
        try:
            return self._float(self._program.error(scalars, tensors, xs, n))
        except GraphdiffError:
            raise
        except Exception:
            self.forward(params, inputs, outputs=[self.loss])  # raises, naming the node
            raise


def _mapping(value: object, what: str) -> Mapping[Any, Any]:
    """``value`` if it is a mapping (or a pandas DataFrame, read by column); else an
    :class:`InputError` naming the argument."""
    if type(value) is dict or type(value) is Params or isinstance(value, Mapping):
        return value
    pandas = sys.modules.get("pandas")  # never imported here: the caller made one
    if pandas is not None and isinstance(value, pandas.DataFrame):
        return value  # type: ignore[no-any-return]
    raise InputError(f"{what} must be a mapping (a dict of name -> value), got "
                     f"{type(value).__name__}")


def _node_list(value: object, what: str) -> tuple[Any, ...]:
    """``value`` as a tuple of its items if it is a list-like of nodes (not a string)."""
    if not isinstance(value, (str, bytes)) and isinstance(value, Iterable):
        try:
            return tuple(value)
        except TypeError:  # a 0-d array, or an iterator that fails
            pass
    raise InputError(f"{what} must be a list of node names, got {value!r}")


def _is_key(value: object, table: Mapping[Any, Any]) -> bool:
    try:
        return value in table
    except TypeError:  # unhashable
        return False


def _no_data_points(arrays: Mapping[Hashable, Array]) -> InputError:
    return InputError(f"no data points: input(s) {sorted(map(str, arrays))!r} have 0 rows")
