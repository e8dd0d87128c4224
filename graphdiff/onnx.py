"""ONNX export and import (the optional extra ``graphdiff[onnx]``).

:func:`export` writes a compiled network and its parameters as an ONNX model
that onnxruntime (or any ONNX runtime) can run: its inputs are the network's
inputs other than the loss's target, its first output is the prediction (the
loss's operand on port 0), the batch axis is dynamic and the numbers keep the
network's float type (a float32 network is a float32 model, every float in it
float32). Each op is written by the ONNX lowering it
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

import os
import warnings
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InputError
from .jsonwrite import atomic_write
from .onnx_load import IMPORTED, OnnxError, load, require_onnx
from .plan import ConstStep, InputStep, NeuronStep, OpStep, ParamStep, Step, params_of
from .registry import Op

__all__ = ["DEFAULT_OPSET", "IMPORTED", "Builder", "OnnxError", "export", "load"]

DEFAULT_OPSET = 18
# A level whose weight matrix would have more cells than this and than 4 per edge is
# written neuron by neuron (one small MatMul each): ONNX has no sparse matrix product.
SPARSE_CELLS = 1 << 16
MIN_OPSET = 18  # ReduceSum and ReduceMean take their axes as an input from opset 18


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
    levels: list[_Level] = []
    for i, (at, item) in enumerate(list(items)):
        if not isinstance(item, _Level):
            continue
        edges = sum(len(m.args) for m in item.members)
        cells = len({a for m in item.members for a in m.args}) * len(item.members)
        if cells > max(SPARSE_CELLS, 4 * edges):  # sparse: a dense W would be mostly zeros
            items[i] = (at, _Level(-1, item.members[:1]))
            items += [((at[0], m.slot), _Level(-1, [m])) for m in item.members[1:]]
    items.sort(key=lambda item: item[0])
    for _, item in items:
        if isinstance(item, _Level):
            item.index = len(levels)
            levels.append(item)
    where = {m.slot: (lv, row) for lv in levels for row, m in enumerate(lv.members)}
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
        onnx = require_onnx()
        self.net, self.params, self.steps, self.shapes = net, params, steps, shapes
        names: dict[str, Hashable] = {}
        for s in steps:
            other = names.setdefault(str(s.node), s.node)
            if other != s.node:
                raise OnnxError(
                    f"nodes {other!r} and {s.node!r} have the same name in ONNX, {str(s.node)!r}"
                )
        dtype = np.dtype(net.dtype)
        elem = onnx.TensorProto.FLOAT if dtype == np.float32 else onnx.TensorProto.DOUBLE
        self.model = _Model(dtype, elem, opset, set(names))
        self.value: dict[int, str] = {}
        self.items, self.where = _levels(steps)
        self.uses = {n: len(net.params[n].uses) for s in steps
                     if isinstance(s, NeuronStep) for n in params_of(s)}
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
            self.model.initializers[name] = np.asarray(self.params[s.name], self.model.dtype)
            self.value[s.slot] = name
        elif isinstance(s, ConstStep):
            value = np.asarray(s.value, self.model.dtype)
            self.model.nodes.append(_Node("Constant", [], [name], {"value": value}))
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
            value = np.reshape(self.params[name], (1,))
            self.model.initializers[init] = value.astype(self.model.dtype)
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
            self.model.initializers[init] = np.reshape(np.array(flat, self.model.dtype), shape)
            return init
        own = sorted({p for c in cells for p in c if self.uses[p] == 1})
        shared = sorted({p for c in cells for p in c if self.uses[p] > 1})
        pieces = []
        if own:
            init = self.model.fresh(hint + "s")
            values = [float(self.params[p]) for p in own]
            self.model.initializers[init] = np.array(values, self.model.dtype)
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
    without a loss, its nodes that nothing reads). Its numbers are of the network's
    float type (``tensor(double)``, or ``tensor(float)`` for a network compiled with
    ``dtype=np.float32``: initializers, constants and inputs alike), and it passes
    ``onnx.checker``. ``example`` (input -> a few data points) gives the
    inputs' shapes where the graph does not tell them. The file is written
    atomically; on an error nothing is written.

    Raises
    ------
    OnnxError
        naming the node whose op (or activation) has no ONNX lowering.
    InputError, ShapeError
        for missing or malformed parameters, unknown outputs or unknown input shapes.
    """
    onnx = require_onnx()
    opset = DEFAULT_OPSET if opset is None else opset
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise OnnxError(f"opset must be an int from {MIN_OPSET} to {newest}, got {opset!r}")
    wanted = _outputs(net, outputs)
    steps = net._plan_for(("outputs", tuple(wanted)))
    used = sorted({p for s in steps for p in params_of(s)})
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
    atomic_write(path, [proto.SerializeToString()])


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
