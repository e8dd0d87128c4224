"""ONNX export and import (the optional extra ``graphdiff[onnx]``).

:func:`export` writes a compiled network and its parameters as an ONNX model
that onnxruntime (or any ONNX runtime) can run: its inputs are the network's
inputs other than the loss's target, its first output is the prediction (the
loss's operand on port 0), the batch axis is dynamic and the numbers keep the
network's float type (float64). Each op is written by the ONNX lowering it
declares next to its forward and vjp (:attr:`graphdiff.Op.onnx`); neurons of
one depth and activation become one matrix product, as the generated code runs
them (``Z = A · W + b``, ``A_out = g(Z)``), and a shared parameter stays one
initializer.

:func:`load` reads an ONNX model made elsewhere into an op-notation networkx
graph and a parameter dict, for the common operators (:data:`IMPORTED`).
Loading never runs anything from the file, refuses external data, and checks
sizes against :class:`graphdiff.LoadLimits` before anything is decoded; every
refusal is a :class:`graphdiff.GraphFormatError` naming the node or field.

``import graphdiff`` does not import onnx; this module imports it when one of
its functions is called.
"""

from __future__ import annotations

import math
import os
import stat
import warnings
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from .errors import GraphdiffError, InputError
from .io import GraphFormatError, LoadLimits
from .jsonwrite import _atomic_write
from .plan import ConstStep, InputStep, NeuronStep, OpStep, ParamStep, Step
from .registry import Op
from .schema import MAX_NAME_CHARS

__all__ = ["DEFAULT_OPSET", "IMPORTED", "Builder", "OnnxError", "export", "load"]

DEFAULT_OPSET = 18
MIN_OPSET = 18  # ReduceSum and ReduceMean take their axes as an input from opset 18


class OnnxError(GraphdiffError, ValueError):
    """A network that cannot be exported to ONNX (an op without a lowering, a name
    that is taken twice), or onnx itself is not installed."""


def _onnx() -> Any:
    try:
        import onnx
    except ModuleNotFoundError:
        raise OnnxError(
            "ONNX export and import need the onnx package: pip install 'graphdiff[onnx]'"
        ) from None
    return onnx


# -- export ---------------------------------------------------------------------------


@dataclass
class _Node:
    op_type: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any]


@dataclass
class _Model:
    """The ONNX graph being written: nodes, initializers and the names taken."""

    dtype: np.dtype[Any]
    elem_type: int
    opset: int
    used: set[str]
    nodes: list[_Node] = field(default_factory=list)
    initializers: dict[str, np.ndarray] = field(default_factory=dict)

    def fresh(self, hint: str) -> str:
        name, k = hint, 1
        while name in self.used:
            name, k = f"{hint}_{k}", k + 1
        self.used.add(name)
        return name


class Builder:
    """What an op's ONNX lowering builds with (see :attr:`graphdiff.Op.onnx`).

    Attributes
    ----------
    shapes : each operand's shape in a probe run (batch axis first).
    elem_type : the ONNX element type of the model's floats (for ``Cast``).
    int64_type : the ONNX element type int64.
    opset : the ONNX opset being written.
    """

    def __init__(self, model: _Model, where: str, shapes: Sequence[tuple[int, ...]]) -> None:
        self._model = model
        self._where = where
        self._made: list[_Node] = []
        self.shapes = tuple(shapes)
        self.elem_type = model.elem_type
        self.int64_type = 7  # onnx.TensorProto.INT64
        self.opset = model.opset

    def node(self, op_type: str, inputs: Iterable[str], **attributes: Any) -> str:
        """Add the ONNX operator ``op_type`` on the values ``inputs``; its output's name."""
        out = self._model.fresh(f"{self._where}/{op_type}")
        made = _Node(op_type, list(inputs), [out], attributes)
        self._model.nodes.append(made)
        self._made.append(made)
        return out

    def const(self, value: Any) -> str:
        """A constant of the model's float type (a number or an array)."""
        return self._constant(np.asarray(value, dtype=self._model.dtype))

    def ints(self, values: Any) -> str:
        """An int64 constant (axes, indices, shapes): a list, or a number for a scalar."""
        return self._constant(np.asarray(values, dtype=np.int64))

    def _constant(self, value: np.ndarray) -> str:
        out = self._model.fresh(f"{self._where}/const")
        self._model.nodes.append(_Node("Constant", [], [out], {"value": value}))
        return out

    def finish(self, result: object, name: str) -> str:
        """Give the lowering's result the node's own name when a node of this lowering
        made it; otherwise (an identity) the result is an existing value's name."""
        if not isinstance(result, str) or result not in self._model.used:
            raise OnnxError(f"{self._where}: the ONNX lowering returned {result!r}, not a value")
        made = [n for n in self._made if result in n.outputs]
        if not made:
            return result
        for n in self._made:
            n.outputs = [name if o == result else o for o in n.outputs]
            n.inputs = [name if i == result else i for i in n.inputs]
        return name


def _lowering(op: Op, what: str) -> Callable[..., str]:
    if op.onnx is None:
        raise OnnxError(
            f"{what}: op {op.name!r} has no ONNX lowering (Op.onnx); "
            "register it with onnx= to export it"
        )
    return op.onnx


def _prediction(net: Any) -> Hashable:
    step = net._steps[net._slot[net.loss]]
    if not isinstance(step, OpStep) or step.op is None or not step.op.loss:
        loss: Hashable = net.loss  # not a loss op (a neuron, say): export it as it is
        return loss
    prediction: Hashable = net._steps[step.args[0]].node
    return prediction


def _outputs(net: Any, outputs: Iterable[Hashable] | str | None) -> list[Hashable]:
    if outputs is None:
        if net.loss is None:
            return [n for n in net.nodes if not net.graph.out_degree(n)]
        return [_prediction(net)]
    wanted: list[Hashable] = [outputs] if isinstance(outputs, (str, int)) else list(outputs)
    unknown = [n for n in wanted if n not in net._slot]
    if unknown or not wanted:
        raise InputError(f"outputs: unknown or pruned node(s) {unknown!r}" if unknown
                         else "outputs: name at least one node")
    return wanted


def _input_shapes(
    net: Any, steps: list[Step], example: Mapping[Hashable, Any] | None
) -> dict[Hashable, tuple[int, ...]]:
    """Each input's shape per data point: from ``example``, else from what reads it
    (a neuron reads one number per point; ``x @ W`` with a 2-D parameter W reads
    rows of W's first axis)."""
    shapes: dict[Hashable, tuple[int, ...]] = {}
    inputs = [s for s in steps if isinstance(s, InputStep)]
    readers: dict[int, list[tuple[Step, int]]] = {s.slot: [] for s in inputs}
    for s in steps:
        for i, a in enumerate(s.args):
            if a in readers:
                readers[a].append((s, i))
    for s in inputs:
        if example is not None and s.node in example:
            shapes[s.node] = tuple(np.shape(example[s.node]))[1:]
            continue
        for r, i in readers[s.slot]:
            if isinstance(r, NeuronStep):
                shapes[s.node] = ()
                break
            if isinstance(r, OpStep) and r.op is not None and r.op.name == "matmul" and i == 0:
                w = net._steps[r.args[1]]
                if isinstance(w, ParamStep) and len(net.params[w.name].shape) == 2:
                    shapes[s.node] = net.params[w.name].shape[:1]
                    break
        else:
            raise InputError(
                f"input {s.node!r}: its shape per data point is not known from the graph; "
                f"pass example={{{s.node!r}: an array of a few data points}}"
            )
    return shapes


def _probe(
    net: Any,
    params: Mapping[str, Any],
    wanted: list[Hashable],
    shapes: dict[Hashable, tuple[int, ...]],
) -> dict[Hashable, tuple[int, ...]]:
    """Every exported node's shape, from a forward pass on two data points of ones."""
    arrays = {n: np.ones((2, *s)) for n, s in shapes.items()}
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = net.forward(params, arrays, outputs=wanted)
    return {n: np.shape(v) for n, v in values.items()}


@dataclass
class _Level:
    index: int
    members: list[NeuronStep]
    value: str = ""  # the (N, members) value, once written


def _levels(steps: list[Step]) -> tuple[list[Step | _Level], dict[int, tuple[_Level, int]]]:
    """Neurons grouped by depth and activation (with its attributes), as the generated
    code groups them; the items in an order where operands come first."""
    depth: dict[int, int] = {}
    groups: dict[tuple[Any, ...], _Level] = {}
    items: list[tuple[tuple[int, int], Step | _Level]] = []
    for s in steps:
        d = depth[s.slot] = 1 + max((depth[a] for a in s.args), default=-1)
        if isinstance(s, NeuronStep) and s.act is not None:
            key = (d, s.act.name, repr(sorted(s.act_attrs.items())))
            level = groups.get(key)
            if level is None:
                level = groups[key] = _Level(len(groups), [])
                items.append(((d, s.slot), level))
            level.members.append(s)
        else:
            items.append(((d, s.slot), s))
    items.sort(key=lambda item: item[0])
    where = {m.slot: (lv, row) for lv in groups.values() for row, m in enumerate(lv.members)}
    return [item for _, item in items], where


class _Exporter:
    def __init__(
        self,
        net: Any,
        params: dict[str, Any],
        steps: list[Step],
        shapes: dict[Hashable, tuple[int, ...]],
        opset: int,
    ) -> None:
        onnx = _onnx()
        self.net, self.params, self.steps, self.shapes = net, params, steps, shapes
        names: dict[str, Hashable] = {}
        for s in steps:
            other = names.setdefault(str(s.node), s.node)
            if other != s.node:
                raise OnnxError(
                    f"nodes {other!r} and {s.node!r} have the same name in ONNX, {str(s.node)!r}"
                )
        self.model = _Model(np.dtype(np.float64), onnx.TensorProto.DOUBLE, opset, set(names))
        self.value: dict[int, str] = {}
        self.items, self.where = _levels(steps)
        self.uses = {n: len(net.params[n].uses) for s in steps for n in _scalars_of(s)}
        self.shared: dict[str, str] = {}  # scalar parameter -> its initializer, shape (1,)

    def run(self) -> None:
        for item in self.items:
            if isinstance(item, _Level):
                self.level(item)
            else:
                self.step(item)

    def get(self, slot: int) -> str:
        """The value of the node in ``slot``; a neuron of a level is its column there."""
        name = self.value.get(slot)
        if name is None:
            level, row = self.where[slot]
            name = str(self.net._steps[slot].node)
            self.model.used.add(name)
            b = Builder(self.model, name, ())
            column = _Node("Gather", [level.value, b.ints(row)], [name], {"axis": 1})
            self.model.nodes.append(column)
            self.value[slot] = name
        return name

    def step(self, s: Step) -> None:
        name = str(s.node)
        if isinstance(s, InputStep):
            self.value[s.slot] = name
        elif isinstance(s, ParamStep):
            self.model.initializers[name] = np.asarray(self.params[s.name], dtype=np.float64)
            self.value[s.slot] = name
        elif isinstance(s, ConstStep):
            self.model.nodes.append(_Node("Constant", [], [name], {"value": s.value}))
            self.value[s.slot] = name
        elif isinstance(s, OpStep) and s.op is not None:
            lower = _lowering(s.op, f"node {s.node!r}")
            b = Builder(self.model, name, [self.shapes[self.net._steps[a].node] for a in s.args])
            result = lower(b, *(self.get(a) for a in s.args), **s.attrs)
            self.value[s.slot] = b.finish(result, name)
        else:  # pragma: no cover - every step kind is handled above
            raise OnnxError(f"node {s.node!r}: {type(s).__name__} cannot be exported")

    def scalar(self, name: str) -> str:
        """The shape-(1,) initializer of a shared scalar parameter (one for all its uses)."""
        init = self.shared.get(name)
        if init is None:
            init = self.shared[name] = self.model.fresh(name)
            self.model.initializers[init] = np.reshape(self.params[name], (1,)).astype(np.float64)
        return init

    def matrix(
        self, b: Builder, hint: str, cells: list[list[str]], shape: tuple[int, ...]
    ) -> str:
        """A matrix (or vector) of scalar parameters: ``cells[i]`` lists the parameters
        summed into entry i (row-major). One initializer when each is used only here,
        once; else entries gathered from the level's own values and the shared ones."""
        if all(len(c) <= 1 and all(self.uses[p] == 1 for p in c) for c in cells):
            init = self.model.fresh(hint)
            flat = [float(self.params[c[0]]) if c else 0.0 for c in cells]
            self.model.initializers[init] = np.reshape(np.array(flat, dtype=np.float64), shape)
            return init
        own = sorted({p for c in cells for p in c if self.uses[p] == 1})
        shared = sorted({p for c in cells for p in c if self.uses[p] > 1})
        pieces = []
        if own:
            init = self.model.fresh(hint + "s")
            self.model.initializers[init] = np.array([float(self.params[p]) for p in own])
            pieces.append(init)
        pieces += [self.scalar(p) for p in shared]
        pieces.append(b.const([0.0]))
        index = {p: i for i, p in enumerate([*own, *shared])}
        zero = len(index)
        theta = b.node("Concat", pieces, axis=0)
        total = None
        for layer in range(max(len(c) for c in cells)):
            idx = np.reshape([index[c[layer]] if layer < len(c) else zero for c in cells], shape)
            part = b.node("Gather", [theta, b.ints(idx)])  # indices of W's shape: W
            total = part if total is None else b.node("Add", [total, part])
        assert total is not None
        return total

    def level(self, lv: _Level) -> None:
        members = lv.members
        act = members[0].act
        assert act is not None
        lower = _lowering(act, f"neuron {members[0].node!r} (activation)")
        hint = f"neurons_{members[0].node}" if len(members) > 1 else str(members[0].node)
        b = Builder(self.model, hint, [(0, len(members))])
        # A's columns: earlier levels' rows in their order (a whole level is used as it
        # is), then other operands one by one
        sources = sorted(
            {a for m in members for a in m.args},
            key=lambda a: (0, self.where[a][0].index, self.where[a][1]) if a in self.where
            else (1, 0, a),
        )
        pieces: list[str] = []
        i = 0
        while i < len(sources):
            a = sources[i]
            if a not in self.where:
                pieces.append(b.node("Reshape", [self.get(a), b.ints([0, 1])]))  # (N, 1)
                i += 1
                continue
            src = self.where[a][0]
            rows = []
            while i < len(sources) and self.where.get(sources[i], (None,))[0] is src:
                rows.append(self.where[sources[i]][1])
                i += 1
            whole = rows == list(range(len(src.members)))
            part = src.value if whole else b.node("Gather", [src.value, b.ints(rows)], axis=1)
            pieces.append(part)
        a_matrix = pieces[0] if len(pieces) == 1 else b.node("Concat", pieces, axis=1)
        row = {a: k for k, a in enumerate(sources)}
        cells: list[list[list[str]]] = [[[] for _ in members] for _ in sources]
        for m_index, m in enumerate(members):
            for a, w in zip(m.args, m.weights, strict=True):
                cells[row[a]][m_index].append(w)
        flat = [c for r in cells for c in r]
        w_matrix = self.matrix(b, f"{hint}.W", flat, (len(sources), len(members)))
        z = b.node("MatMul", [a_matrix, w_matrix])
        if any(m.bias is not None for m in members):
            biases = [[m.bias] if m.bias is not None else [] for m in members]
            z = b.node("Add", [z, self.matrix(b, f"{hint}.b", biases, (len(members),))])
        result = lower(b, z, **members[0].act_attrs)
        lv.value = b.finish(result, self.model.fresh(hint))


def _scalars_of(s: Step) -> tuple[str, ...]:
    if isinstance(s, NeuronStep):
        return s.weights + ((s.bias,) if s.bias else ())
    return ()


def export(
    net: Any,
    params: Mapping[str, Any],
    path: str | os.PathLike[str],
    *,
    outputs: Iterable[Hashable] | None = None,
    opset: int | None = None,
    example: Mapping[Hashable, Any] | None = None,
) -> None:
    """Write the compiled network ``net`` with ``params`` as an ONNX model at ``path``.

    The model's inputs are the inputs the outputs need (so not the loss's target),
    with the same names and a dynamic batch axis; its outputs are ``outputs`` (node
    names), by default the prediction: the loss's operand on port 0 (for a network
    without a loss, its nodes that nothing reads). It holds float64 numbers and
    passes ``onnx.checker``. ``example`` (input -> a few data points) gives the
    inputs' shapes where the graph does not tell them. The file is written
    atomically; on an error nothing is written.

    Raises
    ------
    OnnxError
        naming the node whose op (or activation) has no ONNX lowering.
    InputError, ShapeError
        for missing or malformed parameters, unknown outputs or unknown input shapes.
    """
    onnx = _onnx()
    opset = DEFAULT_OPSET if opset is None else opset
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise OnnxError(f"opset must be an int from {MIN_OPSET} to {newest}, got {opset!r}")
    wanted = _outputs(net, outputs)
    steps = net._plan_for(("outputs", tuple(wanted)))
    used = sorted({p for s in steps for p in _params_of(s)})
    checked = net._check_params(params, used)
    shapes = _probe(net, checked, wanted, _input_shapes(net, steps, example))
    ex = _Exporter(net, checked, steps, shapes, opset)
    ex.run()
    model = ex.model
    graph_outputs = []
    for n in wanted:
        name = str(n)
        value = ex.get(net._slot[n])
        if value != name:
            if isinstance(net._steps[net._slot[n]], InputStep):
                raise OnnxError(f"outputs: {n!r} is an input of the model, not an output")
            model.nodes.append(_Node("Identity", [value], [name], {}))
        graph_outputs.append(name)
    proto = _proto(onnx, model, steps, shapes, graph_outputs)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise OnnxError(f"the exported model fails onnx.checker: {e}") from None
    _atomic_write(path, [proto.SerializeToString()])


def _params_of(s: Step) -> tuple[str, ...]:
    return (s.name,) if isinstance(s, ParamStep) else _scalars_of(s)


def _proto(
    onnx: Any,
    model: _Model,
    steps: list[Step],
    shapes: dict[Hashable, tuple[int, ...]],
    outputs: list[str],
) -> Any:
    from onnx import helper, numpy_helper

    from . import __version__

    batched: set[int] = set()  # the values that have a data-point axis: what inputs reach
    for s in steps:
        if isinstance(s, InputStep) or not batched.isdisjoint(s.args):
            batched.add(s.slot)

    def info(name: str, s: Step) -> Any:
        shape: list[Any] = list(shapes[s.node])
        if s.slot in batched:
            shape[0] = "N"
        return helper.make_tensor_value_info(name, model.elem_type, shape)

    nodes = []
    for n in model.nodes:
        attrs = dict(n.attrs)
        if n.op_type == "Constant":
            attrs["value"] = numpy_helper.from_array(np.asarray(attrs["value"]), n.outputs[0])
        nodes.append(helper.make_node(n.op_type, n.inputs, n.outputs, name=n.outputs[0], **attrs))
    inputs = [info(str(s.node), s) for s in steps if isinstance(s, InputStep)]
    by_name = {str(s.node): s for s in steps}
    graph = helper.make_graph(
        nodes,
        "graphdiff",
        inputs,
        [info(o, by_name[o]) for o in outputs],
        [numpy_helper.from_array(v, k) for k, v in model.initializers.items()],
    )
    opsets = [helper.make_opsetid("", model.opset)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="graphdiff",
                              producer_version=__version__)
    proto.ir_version = helper.find_min_ir_version_for(opsets)
    return proto


# -- import ---------------------------------------------------------------------------

_UNARY = {
    "Identity": "identity", "Relu": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid",
    "Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Abs": "abs", "Neg": "neg", "Sign": "sign",
    "Sin": "sin", "Softplus": "softplus",
}
_BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "MatMul": "matmul"}
_OTHER = ("Constant", "Concat", "Flatten", "Gather", "Gemm", "Pow", "ReduceMean", "ReduceSum",
          "Reshape", "Softmax")
#: The ONNX operators :func:`load` imports (default domain); any other is refused.
IMPORTED = tuple(sorted([*_UNARY, *_BINARY, *_OTHER]))
# the attributes each imported operator may carry (others are refused, never ignored)
_ATTRS: dict[str, set[str]] = {
    "Concat": {"axis"}, "Flatten": {"axis"}, "Gather": {"axis"},
    "Gemm": {"alpha", "beta", "transA", "transB"},
    "ReduceMean": {"axes", "keepdims", "noop_with_empty_axes"},
    "ReduceSum": {"axes", "keepdims", "noop_with_empty_axes"}, "Reshape": {"allowzero"},
    "Softmax": {"axis"}, "Constant": {"value", "value_float", "value_floats", "value_int",
                                      "value_ints"},
}
# TensorProto.FLOAT and DOUBLE
_FLOATS: dict[int, np.dtype[Any]] = {1: np.dtype("<f4"), 11: np.dtype("<f8")}
_INT64 = 7


def _read_bytes(path: str | os.PathLike[str], limits: LoadLimits) -> bytes:
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        if stat.S_ISREG(st.st_mode) and st.st_size > limits.max_file_bytes:
            raise GraphFormatError(
                "file_too_large",
                f"the file has {st.st_size} bytes; the limit is {limits.max_file_bytes} "
                "(LoadLimits.max_file_bytes)",
            )
        data = f.read(limits.max_file_bytes + 1)
    if len(data) > limits.max_file_bytes:
        raise GraphFormatError(
            "file_too_large",
            f"the file has more than {limits.max_file_bytes} bytes (LoadLimits.max_file_bytes)",
        )
    return data


def load(
    path: str | os.PathLike[str], *, limits: LoadLimits | None = None
) -> tuple[nx.DiGraph[Any], dict[str, np.ndarray]]:
    """Read an ONNX model into an op-notation graph and its parameters: ``(G, params)``.

    Graph inputs become ``input`` nodes, initializers ``param`` nodes (``params`` is
    keyed by their names) and each node's output a node of the same name; an
    operator lowered to several graphdiff ops (``Gemm`` -> ``matmul`` + ``add``)
    names the extra nodes after its output (``"y:matmul"``). Parameters keep the
    model's float type; ``G.graph`` records it (``"dtype"``) and the model's outputs
    (``"outputs"``). Compile ``G`` without a loss to run it, or add a loss node to
    train it. ``Gemm`` with ``transB=1`` reads its constant B as the parameter
    ``B`` stored transposed (graphdiff multiplies ``x @ W``).

    Raises
    ------
    GraphFormatError
        for anything else than an ONNX model of :data:`IMPORTED` operators within
        ``limits``: a truncated or corrupted file, an unknown operator (named with
        its op type), external data, subgraphs, sizes over the limits; the error's
        ``location`` names the node or field.
    """
    onnx = _onnx()
    limits = LoadLimits() if limits is None else limits
    where = os.fspath(path)
    try:
        data = _read_bytes(path, limits)
        model = onnx.ModelProto()
        try:
            model.ParseFromString(data)
        except Exception as e:  # protobuf's DecodeError and its C++ variants
            raise GraphFormatError(
                "not_onnx", f"not an ONNX model (truncated or corrupted protobuf: {e})"
            ) from None
        del data
        return _Importer(model, limits).run()
    except GraphFormatError as e:
        raise GraphFormatError(e.code, e.message, e.location, where) from None


class _Importer:
    def __init__(self, model: Any, limits: LoadLimits) -> None:
        self.model = model
        self.limits = limits
        if model.ir_version <= 0 or not model.HasField("graph"):
            raise GraphFormatError("not_onnx", "not an ONNX model: no IR version or no graph",
                                   "ir_version" if model.ir_version <= 0 else "graph")
        self.graph = model.graph
        self.opset = 0
        for o in model.opset_import:
            if o.domain in ("", "ai.onnx"):
                self.opset = o.version
        if not 1 <= self.opset <= 10**4:
            raise GraphFormatError("not_onnx", "no opset of the default ONNX domain",
                                   "opset_import")
        self.nodes: dict[str, dict[str, Any]] = {}  # graphdiff node -> attributes
        self.edges: list[tuple[str, str, int]] = []
        self.params: dict[str, np.ndarray] = {}
        self.ints: dict[str, np.ndarray] = {}  # int64 constants: shapes, axes
        self.floats: dict[str, np.ndarray] = {}  # float constants and initializers' values
        self.dtype: np.dtype[Any] | None = None
        self.elements = 0

    # -- checks ---------------------------------------------------------------------

    def name(self, value: str, where: str) -> str:
        if not value or len(value) > MAX_NAME_CHARS:
            raise GraphFormatError("bad_name", f"a value name must have 1 to {MAX_NAME_CHARS} "
                                   f"characters, got {len(value)}", where)
        return value

    def float_type(self, elem: int, where: str, what: str) -> np.dtype[Any]:
        dtype = _FLOATS.get(elem)
        if dtype is None:
            raise GraphFormatError("bad_dtype", f"{what} has element type {elem}; graphdiff "
                                   "imports float32 (1) and float64 (11) values", where)
        if self.dtype is None:
            self.dtype = dtype
        elif dtype != self.dtype:
            raise GraphFormatError("bad_dtype", f"{what} is {dtype.name} while the model's "
                                   f"other values are {self.dtype.name}", where)
        return dtype

    def tensor(self, t: Any, where: str) -> np.ndarray:
        """A TensorProto's array, after its declared size is checked against the limits
        and its stored bytes (never external data)."""
        from onnx import numpy_helper

        if t.data_location == 1 or len(t.external_data):
            raise GraphFormatError("external_data", f"tensor {t.name!r} refers to external "
                                   "data; graphdiff reads no file but the model", where)
        if t.HasField("segment"):
            raise GraphFormatError("bad_tensor", f"tensor {t.name!r} is segmented", where)
        dims = list(t.dims)
        if len(dims) > self.limits.max_rank:
            raise GraphFormatError("bad_shape", f"tensor {t.name!r} has rank {len(dims)}; the "
                                   f"limit is {self.limits.max_rank} (LoadLimits.max_rank)", where)
        count = math.prod(dims)
        if any(d < 0 for d in dims) or max([count, *dims]) > self.limits.max_tensor_elements:
            raise GraphFormatError("too_large", f"tensor {t.name!r} has shape {dims}; the limit "
                                   f"for its elements and each axis is "
                                   f"{self.limits.max_tensor_elements} "
                                   "(LoadLimits.max_tensor_elements)", where)
        self.elements += count
        if self.elements > self.limits.max_elements:
            raise GraphFormatError("too_large", f"the tensors up to {t.name!r} hold "
                                   f"{self.elements} numbers; the limit is "
                                   f"{self.limits.max_elements} (LoadLimits.max_elements)", where)
        dtype: np.dtype[Any]
        if t.data_type == _INT64:
            dtype, stored = np.dtype("<i8"), len(t.int64_data)
        elif t.data_type in _FLOATS:
            dtype = _FLOATS[t.data_type]
            stored = len(t.double_data) if t.data_type == 11 else len(t.float_data)
        else:
            raise GraphFormatError("bad_dtype", f"tensor {t.name!r} has element type "
                                   f"{t.data_type}; graphdiff imports float32, float64 and "
                                   "int64 (shapes, axes) tensors", where)
        if t.HasField("raw_data"):
            stored = len(t.raw_data) // dtype.itemsize
            exact = len(t.raw_data) % dtype.itemsize == 0
        else:
            exact = True
        if stored != count or not exact:
            raise GraphFormatError("payload_mismatch", f"tensor {t.name!r} declares shape "
                                   f"{dims} ({count} numbers) and stores {stored}", where)
        try:
            arr = np.array(numpy_helper.to_array(t), dtype=dtype)
        except Exception as e:
            raise GraphFormatError("bad_tensor", f"tensor {t.name!r}: {e}", where) from None
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise GraphFormatError("non_finite", f"tensor {t.name!r} has NaN or infinite "
                                   "entries", where)
        return arr

    # -- building -------------------------------------------------------------------

    def add(self, name: str, where: str, operands: Sequence[str] = (), **attrs: Any) -> str:
        if name in self.nodes or name in self.ints:
            raise GraphFormatError("duplicate_name", f"value {name!r} is defined twice", where)
        self.nodes[name] = attrs
        for port, u in enumerate(operands):
            self.edges.append((u, name, port))
        return name

    def derived(self, base: str, suffix: str) -> str:
        name, k = f"{base}:{suffix}", 1
        while name in self.nodes or name in self.defined:
            name, k = f"{base}:{suffix}{k}", k + 1
        return name

    def operand(self, value: str, node: Any, where: str) -> str:
        if value in self.nodes:
            return value
        what = "an int64 constant" if value in self.ints else "not defined before it"
        raise GraphFormatError("bad_operand", f"node {node.name!r} ({node.op_type}) reads "
                               f"{value!r}, which is {what}", where)

    def const_ints(self, value: str, node: Any, where: str) -> np.ndarray:
        arr = self.ints.get(value)
        if arr is None:
            raise GraphFormatError("not_constant", f"node {node.name!r} ({node.op_type}) needs "
                                   f"{value!r} to be an int64 constant", where)
        return arr

    def run(self) -> tuple[nx.DiGraph[Any], dict[str, np.ndarray]]:
        g, limits = self.graph, self.limits
        if len(g.node) > limits.max_nodes:
            raise GraphFormatError("too_large", f"{len(g.node)} nodes; the limit is "
                                   f"{limits.max_nodes} (LoadLimits.max_nodes)", "graph.node")
        edges = sum(len(n.input) for n in g.node)
        if edges > limits.max_edges:
            raise GraphFormatError("too_large", f"{edges} node inputs; the limit is "
                                   f"{limits.max_edges} (LoadLimits.max_edges)", "graph.node")
        if len(g.sparse_initializer):
            raise GraphFormatError("unsupported", "sparse initializers are not imported",
                                   "graph.sparse_initializer")
        # every operator first: an unknown one is named before anything is decoded
        for i, n in enumerate(g.node):
            where = f"graph.node[{i}]"
            if n.domain not in ("", "ai.onnx") or n.op_type not in IMPORTED:
                op = f"{n.domain}::{n.op_type}" if n.domain else n.op_type
                raise GraphFormatError(
                    "unknown_op", f"node {n.name!r} has op type {op!r}, which graphdiff does "
                    f"not import (it imports {', '.join(IMPORTED)})", where)
            for a in n.attribute:
                if a.name not in _ATTRS.get(n.op_type, set()):
                    raise GraphFormatError("unknown_attribute", f"node {n.name!r} "
                                           f"({n.op_type}) has attribute {a.name!r}, which "
                                           "graphdiff does not import", f"{where}.attribute")
        self.defined = {i.name for i in g.input} | {t.name for t in g.initializer}
        self.defined |= {o for n in g.node for o in n.output}
        init_names: set[str] = set()
        self.initializers = init_names
        for i, t in enumerate(g.initializer):
            where = f"graph.initializer[{i}]"
            self.name(t.name, where)
            arr = self.tensor(t, where)
            if t.name in init_names:
                raise GraphFormatError("duplicate_name", f"initializer {t.name!r} is defined "
                                       "twice", where)
            init_names.add(t.name)
            if arr.dtype.kind == "i":
                self.ints[t.name] = arr
            else:
                self.float_type(t.data_type, where, f"initializer {t.name!r}")
                self.floats[t.name] = arr
        for i, v in enumerate(g.input):
            if v.name in init_names:
                continue  # an initializer listed as an input too (IR version < 4)
            where = f"graph.input[{i}]"
            self.name(v.name, where)
            tt = v.type.tensor_type
            if not v.type.HasField("tensor_type"):
                raise GraphFormatError("bad_input", f"input {v.name!r} is not a tensor", where)
            self.float_type(tt.elem_type, where, f"input {v.name!r}")
            dims = [d.dim_value for d in tt.shape.dim if d.HasField("dim_value")]
            if len(tt.shape.dim) > limits.max_rank or any(
                d < 0 or d > limits.max_tensor_elements for d in dims
            ):
                raise GraphFormatError("too_large", f"input {v.name!r} has shape {dims} "
                                       "beyond the limits (LoadLimits)", where)
            self.add(v.name, where, op="input")
        transposed: dict[str, bool] = {}
        for n in g.node:
            if n.op_type == "Gemm":
                b_trans = bool(_attr(n, "transB", 0))
                if len(n.input) > 1 and transposed.setdefault(n.input[1], b_trans) != b_trans:
                    transposed[n.input[1]] = None  # type: ignore[assignment]
        self.transposed = transposed
        for i, n in enumerate(g.node):
            self.convert(n, f"graph.node[{i}]")
        # the parameters that are read: initializers become param nodes when first read
        outputs = []
        for i, o in enumerate(g.output):
            where = f"graph.output[{i}]"
            if o.name in self.floats and o.name not in self.nodes:
                self.param(o.name, where)
            outputs.append(self.operand(o.name, _Named(o.name, "output"), where))
        multi = len({(u, v) for u, v, _ in self.edges}) < len(self.edges)
        G: nx.DiGraph[Any] = nx.MultiDiGraph() if multi else nx.DiGraph()
        for name, attrs in self.nodes.items():
            G.add_node(name, **attrs)
        for u, v, port in self.edges:
            G.add_edge(u, v, port=port)
        G.graph["dtype"] = "float64" if self.dtype is None else self.dtype.name
        G.graph["outputs"] = outputs
        return G, self.params

    def param(self, name: str, where: str) -> str:
        value = self.floats[name]
        if self.transposed.get(name):
            value = value.T.copy()
        self.params[name] = value
        return self.add(name, where, op="param", shape=tuple(value.shape))

    def read(self, value: str, node: Any, where: str) -> str:
        """The graph node of an operand: an initializer becomes a param node when first
        read, a float constant a const node."""
        if value not in self.nodes and value in self.floats:
            if self.transposed.get(value) is None and value in self.transposed:
                raise GraphFormatError("unsupported", f"initializer {value!r} is read both as "
                                       "Gemm's B with and without transB", where)
            self.param(value, where)
        return self.operand(value, node, where)

    def convert(self, n: Any, where: str) -> None:
        for k, o in enumerate(n.output):
            self.name(o, f"{where}.output[{k}]")
        if len(n.output) != 1:
            raise GraphFormatError("bad_node", f"node {n.name!r} ({n.op_type}) has "
                                   f"{len(n.output)} outputs; graphdiff imports one", where)
        out = n.output[0]
        ins = list(n.input)
        op = n.op_type
        arity = {"Constant": 0, "Gemm": (2, 3), "Pow": 2, "Reshape": 2, "Concat": None, "Gather": 2,
                 "ReduceSum": (1, 2), "ReduceMean": (1, 2)}.get(op, 2 if op in _BINARY else 1)
        if arity is not None:
            ok = len(ins) in arity if isinstance(arity, tuple) else len(ins) == arity
            if not ok or any(not v for v in ins[:2]):
                raise GraphFormatError("bad_node", f"node {n.name!r} ({op}) has inputs {ins!r}",
                                       where)
        if op in _UNARY:
            self.add(out, where, [self.read(ins[0], n, where)], op=_UNARY[op])
        elif op in _BINARY:
            self.add(out, where, [self.read(v, n, where) for v in ins], op=_BINARY[op])
        elif op == "Constant":
            self.constant(n, out, where)
        elif op == "Concat":
            if not ins:
                raise GraphFormatError("bad_node", f"node {n.name!r} (Concat) has no inputs",
                                       where)
            self.add(out, where, [self.read(v, n, where) for v in ins], op="concat",
                     axis=_attr(n, "axis", 1))
        elif op == "Flatten":
            if _attr(n, "axis", 1) != 1:
                raise GraphFormatError("unsupported", f"node {n.name!r} (Flatten) has axis "
                                       f"{_attr(n, 'axis', 1)}; graphdiff imports axis 1 "
                                       "(one row per data point)", where)
            self.add(out, where, [self.read(ins[0], n, where)], op="reshape", shape=(-1,))
        elif op == "Reshape":
            self.reshape(n, out, ins, where)
        elif op == "Pow":
            exponent = self.floats.get(ins[1])
            if exponent is None or exponent.size != 1 or ins[1] in self.params:
                raise GraphFormatError("not_constant", f"node {n.name!r} (Pow) needs a constant "
                                       "scalar exponent", where)
            self.add(out, where, [self.read(ins[0], n, where)], op="pow",
                     exponent=float(exponent.reshape(())))
        elif op == "Softmax":
            axis = _attr(n, "axis", -1 if self.opset >= 13 else 1)
            if self.opset < 13:
                raise GraphFormatError("unsupported", f"node {n.name!r} (Softmax) of opset "
                                       f"{self.opset} flattens its input; graphdiff imports "
                                       "Softmax from opset 13", where)
            self.add(out, where, [self.read(ins[0], n, where)], op="softmax", axis=axis)
        elif op in ("ReduceSum", "ReduceMean"):
            self.reduce(n, out, ins, where)
        elif op == "Gemm":
            self.gemm(n, out, ins, where)
        elif op == "Gather":
            self.gather(n, out, ins, where)

    def gather(self, n: Any, out: str, ins: list[str], where: str) -> None:
        """Gather with constant indices: an ``index`` op per index, ``stack``-ed in the
        shape of the indices (np.take(x, idx, axis) is that stack)."""
        idx = self.const_ints(ins[1], n, where)
        axis = int(_attr(n, "axis", 0))
        if idx.size == 0 or 0 in idx.shape or (axis < 0 and idx.ndim > 1):
            raise GraphFormatError("unsupported", f"node {n.name!r} (Gather) with indices of "
                                   f"shape {list(idx.shape)} on axis {axis}", where)
        if len(self.nodes) + 2 * idx.size > self.limits.max_nodes:
            raise GraphFormatError("too_large", f"node {n.name!r} (Gather) takes {idx.size} "
                                   "indices, one graphdiff node each; the limit is "
                                   f"{self.limits.max_nodes} nodes (LoadLimits.max_nodes)", where)
        x = self.read(ins[0], n, where)

        def take(indices: np.ndarray, name: str) -> str:
            if indices.ndim == 0:
                return self.add(name, where, [x], op="index", i=int(indices), axis=axis)
            parts = [take(indices[j], self.derived(name, str(j))) for j in range(len(indices))]
            return self.add(name, where, parts, op="stack", axis=axis)

        take(idx, out)

    def constant(self, n: Any, out: str, where: str) -> None:
        from onnx import helper

        if len(n.attribute) != 1:
            raise GraphFormatError("bad_node", f"node {n.name!r} (Constant) needs one value "
                                   "attribute", where)
        a = n.attribute[0]
        if a.name == "value":
            arr = self.tensor(a.t, f"{where}.attribute")
        else:
            arr = np.asarray(helper.get_attribute_value(a))
            floats = self.dtype or np.float64
            arr = arr.astype(np.int64 if a.name.startswith("value_int") else floats)
            self.elements += arr.size
        if out in self.nodes or out in self.ints:
            raise GraphFormatError("duplicate_name", f"value {out!r} is defined twice", where)
        if arr.dtype.kind == "i":
            self.ints[out] = arr
        else:
            if a.name == "value":
                self.float_type(a.t.data_type, where, f"constant {out!r}")
            self.floats[out] = arr
            self.add(out, where, op="const", value=arr)

    def reshape(self, n: Any, out: str, ins: list[str], where: str) -> None:
        shape = [int(d) for d in self.const_ints(ins[1], n, where).reshape(-1)]
        allowzero = _attr(n, "allowzero", 0)
        rest = shape[1:]
        if not shape or shape[0] not in (0, -1) or (shape[0] == -1 and -1 in rest) or (
            0 in rest and not allowzero
        ) or any(d < -1 for d in rest) or math.prod(
            d for d in rest if d > 0
        ) > self.limits.max_tensor_elements:
            raise GraphFormatError("unsupported", f"node {n.name!r} (Reshape) to {shape}: "
                                   "graphdiff imports reshapes that keep the first axis (0 or "
                                   "-1 first, then a shape per data point)", where)
        self.add(out, where, [self.read(ins[0], n, where)], op="reshape", shape=tuple(rest))

    def reduce(self, n: Any, out: str, ins: list[str], where: str) -> None:
        if _attr(n, "noop_with_empty_axes", 0):
            raise GraphFormatError("unsupported", f"node {n.name!r} ({n.op_type}) has "
                                   "noop_with_empty_axes=1", where)
        axes: Any = _attr(n, "axes", None)
        if len(ins) == 2 and ins[1]:
            axes = [int(a) for a in self.const_ints(ins[1], n, where).reshape(-1)]
        axis = None if not axes else tuple(axes) if len(axes) > 1 else int(axes[0])
        self.add(out, where, [self.read(ins[0], n, where)],
                 op="sum" if n.op_type == "ReduceSum" else "mean", axis=axis,
                 keepdims=bool(_attr(n, "keepdims", 1)))

    def gemm(self, n: Any, out: str, ins: list[str], where: str) -> None:
        if _attr(n, "transA", 0):
            raise GraphFormatError("unsupported", f"node {n.name!r} (Gemm) has transA=1", where)
        if _attr(n, "transB", 0) and ins[1] not in self.initializers:
            raise GraphFormatError("unsupported", f"node {n.name!r} (Gemm) has transB=1 on "
                                   f"{ins[1]!r}, which is not an initializer", where)
        alpha, beta = float(_attr(n, "alpha", 1.0)), float(_attr(n, "beta", 1.0))
        c = ins[2] if len(ins) == 3 and ins[2] else None
        a, b = self.read(ins[0], n, where), self.read(ins[1], n, where)
        product = out if c is None and alpha == 1.0 else self.derived(out, "matmul")
        self.add(product, where, [a, b], op="matmul")
        if alpha != 1.0:
            scale = self.add(self.derived(out, "alpha"), where, op="const",
                             value=np.array(alpha, dtype=self.dtype or np.float64))
            scaled = out if c is None else self.derived(out, "scaled")
            product = self.add(scaled, where, [product, scale], op="mul")
        if c is None:
            return
        bias = self.read(c, n, where)
        if beta != 1.0:
            scale = self.add(self.derived(out, "beta"), where, op="const",
                             value=np.array(beta, dtype=self.dtype or np.float64))
            bias = self.add(self.derived(out, "bias"), where, [bias, scale], op="mul")
        self.add(out, where, [product, bias], op="add")


@dataclass
class _Named:
    name: str
    op_type: str


def _attr(n: Any, name: str, default: Any) -> Any:
    from onnx import helper

    for a in n.attribute:
        if a.name == name:
            value = helper.get_attribute_value(a)
            return list(value) if isinstance(value, (list, tuple)) else value
    return default
