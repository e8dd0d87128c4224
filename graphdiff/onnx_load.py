"""ONNX import: an ONNX model made elsewhere as an op-notation networkx graph.

:func:`load` (re-exported as :func:`graphdiff.onnx.load`) reads the common
operators (:data:`IMPORTED`) into a graph named by the model's ONNX value names and
a parameter dict keyed by its initializers. Loading never runs anything from the
file, refuses external data, and checks sizes against :class:`graphdiff.LoadLimits`
before anything is decoded; every refusal is a :class:`graphdiff.GraphFormatError`
naming the node or field. onnx is imported when a function here is called.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np

from .errors import GraphdiffError
from .io import GraphFormatError, LoadLimits
from .schema import MAX_NAME_CHARS

__all__ = ["IMPORTED", "OnnxError", "load", "require_onnx"]


class OnnxError(GraphdiffError, ValueError):
    """A network that cannot be exported to ONNX (an op without a lowering, a name
    that is taken twice), or onnx itself is not installed."""


def require_onnx() -> Any:
    try:
        import onnx
    except ModuleNotFoundError:
        raise OnnxError(
            "ONNX export and import need the onnx package: pip install 'graphdiff[onnx]'"
        ) from None
    return onnx


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
# AttributeProto types: FLOAT 1, INT 2, TENSOR 4, FLOATS 6, INTS 7
_ATTR_TYPES = {"axis": 2, "transA": 2, "transB": 2, "keepdims": 2, "allowzero": 2,
               "noop_with_empty_axes": 2, "alpha": 1, "beta": 1, "axes": 7, "value": 4,
               "value_float": 1, "value_floats": 6, "value_int": 2, "value_ints": 7}
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
    model's float type; ``G.graph`` records it (``"dtype"``: ``"float32"`` or
    ``"float64"``) and the model's outputs (``"outputs"``). Compile ``G`` without a
    loss to run it (``graphdiff.compile(G, dtype=G.graph["dtype"])`` computes in the
    model's float type), or add a loss node to train it. ``Gemm`` with ``transB=1``
    reads its constant B as the parameter ``B`` stored transposed (graphdiff
    multiplies ``x @ W``).

    Raises
    ------
    GraphFormatError
        for anything else than an ONNX model of :data:`IMPORTED` operators within
        ``limits``: a truncated or corrupted file, an unknown operator (named with
        its op type), external data, subgraphs, sizes over the limits; the error's
        ``location`` names the node or field.
    """
    onnx = require_onnx()
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
        taken = name in self.initializers and attrs.get("op") != "param"
        if name in self.nodes or name in self.ints or taken:
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
                if a.type != _ATTR_TYPES[a.name] or a.ref_attr_name:
                    raise GraphFormatError("bad_attribute", f"node {n.name!r} ({n.op_type}): "
                                           f"attribute {a.name!r} has type {a.type}, expected "
                                           f"{_ATTR_TYPES[a.name]} (onnx.AttributeProto)",
                                           f"{where}.attribute")
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
        if out in self.nodes or out in self.ints or out in self.initializers:
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
