"""Graph <-> spec: a networkx graph and its parameters as a validated
:class:`~graphdiff.schema.ModelFile`, and back, with every check that load and
save share (ids, edges, cycles, op names, declared sizes, payloads, values JSON
can hold).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from functools import partial
from typing import Any, cast

import networkx as nx
import numpy as np
from pydantic import ValidationError

from .errors import CycleError, UnknownOpError
from .graphs import canonical_order, node_key
from .jsonread import GraphFormatError, Payloads, format_error, pointer, show
from .jsonwrite import compact_json, graph_doc
from .params import Params
from .registry import ENGINE_OPS, get_op
from .schema import (
    DTYPES,
    MAX_NAME_CHARS,
    OP_NAME_PATTERN,
    EdgeSpec,
    GraphSpec,
    LoadLimits,
    ModelFile,
    NodeSpec,
    PluginSpec,
    TensorSpec,
)

__all__ = ["from_spec", "graph_fingerprint", "to_spec"]

BUILTIN_SOURCE = "graphdiff (built-in)"
# Containers allowed inside one attribute or configuration value: a model file's own
# structure takes 5 of LoadLimits.max_depth (32 by default) above a node attribute, so
# save accepts exactly the attribute nesting that load accepts with the default limits.
MAX_VALUE_DEPTH = 27
_OP_NAME = re.compile(OP_NAME_PATTERN)


def _check_graph(spec: ModelFile) -> None:
    """Duplicate ids, edges to missing nodes and cycles, before networkx sees the graph."""
    g = spec.graph
    if g.arrays and g.attrs.keys() & g.arrays.keys():
        _refuse_overlap(g, "/graph", "the graph (G.graph)")
    index: dict[int | str, int] = {}
    for i, node in enumerate(g.nodes):
        if node.id in index:
            raise GraphFormatError(
                "duplicate_id",
                f"node id {show(node.id)} is also node {index[node.id]}",
                f"/graph/nodes/{i}/id",
            )
        index[node.id] = i
        if node.arrays and node.attrs.keys() & node.arrays.keys():
            _refuse_overlap(node, f"/graph/nodes/{i}", f"node {show(node.id)}")
    succ: list[list[int]] = [[] for _ in g.nodes]
    preds: list[list[int]] = [[] for _ in g.nodes]
    seen: set[tuple[int, int, int | str | None]] = set()
    for j, e in enumerate(g.edges):
        u, v = index.get(e.source), index.get(e.target)
        if u is None or v is None:
            end, name = ("source", e.source) if u is None else ("target", e.target)
            raise GraphFormatError(
                "missing_node",
                f"edge {show(e.source)} -> {show(e.target)}: {end} {show(name)} "
                "is not a node",
                f"/graph/edges/{j}/{end}",
            )
        if g.multigraph and e.key is None:
            raise GraphFormatError(
                "missing_field", "an edge of a multigraph needs its 'key'", f"/graph/edges/{j}/key"
            )
        if not g.multigraph and e.key is not None:
            raise GraphFormatError(
                "extra_forbidden", "'key' is only for edges of a multigraph",
                f"/graph/edges/{j}/key",
            )
        if (u, v, e.key) in seen:
            raise GraphFormatError(
                "duplicate_id",
                f"edge {show(e.source)} -> {show(e.target)} is listed twice",
                f"/graph/edges/{j}",
            )
        seen.add((u, v, e.key))
        if e.arrays and e.attrs.keys() & e.arrays.keys():
            _refuse_overlap(e, f"/graph/edges/{j}", f"edge {show(e.source)} -> {show(e.target)}")
        succ[u].append(v)
        preds[v].append(u)
    _check_acyclic(g, succ, preds)
    if spec.loss is not None and spec.loss not in index:
        raise GraphFormatError("missing_node", f"loss {show(spec.loss)} is not a node", "/loss")


def _refuse_overlap(item: NodeSpec | EdgeSpec | GraphSpec, where: str, what: str) -> None:
    name = sorted(item.attrs.keys() & item.arrays.keys())[0]
    raise GraphFormatError(
        "duplicate_key",
        f"{what}: attribute {show(name)} is in both 'attrs' and 'arrays'",
        f"{where}/arrays/{pointer([name])[1:]}",
    )


def _check_acyclic(g: GraphSpec, succ: list[list[int]], preds: list[list[int]]) -> None:
    indeg = [len(p) for p in preds]
    ready = [i for i, d in enumerate(indeg) if d == 0]
    done = 0
    while ready:
        u = ready.pop()
        done += 1
        for v in succ[u]:
            indeg[v] -= 1
            if indeg[v] == 0:
                ready.append(v)
    if done == len(indeg):
        return
    # Every node left has a predecessor that is left too: walk back until one repeats.
    walk = [next(i for i, d in enumerate(indeg) if d > 0)]
    first = {walk[0]: 0}
    while True:
        nxt = next(p for p in preds[walk[-1]] if indeg[p] > 0)
        if nxt in first:
            cycle = walk[first[nxt]:][::-1]
            break
        first[nxt] = len(walk)
        walk.append(nxt)
    names = [show(g.nodes[i].id, 30) for i in [*cycle, cycle[0]]]
    raise GraphFormatError(
        "cycle", "the graph has a cycle: " + " -> ".join(names), f"/graph/nodes/{cycle[0]}"
    )


def _check_ops(spec: ModelFile) -> None:
    """Every op and activation named in the graph must be registered (or installed)."""
    checked: set[str] = set()
    for i, node in enumerate(spec.graph.nodes):
        for attr in ("op", "activation"):
            if attr not in node.attrs:
                continue
            name = node.attrs[attr]
            if isinstance(name, str) and (name in checked or (attr == "op" and name in ENGINE_OPS)):
                continue
            where = f"/graph/nodes/{i}/attrs/{attr}"
            what = f"node {show(node.id)} ({attr})"
            if not isinstance(name, str) or not _OP_NAME.fullmatch(name):
                raise GraphFormatError(
                    "unknown_op",
                    f"{what}: {show(name)} is not an op name (plain names only: ASCII "
                    "letters, digits, '_' and '-'; never a module path)",
                    where,
                )
            try:
                # A dictionary lookup, or an installed plugin's entry point of this
                # exact name: nothing named in the file is ever imported.
                get_op(name)
            except UnknownOpError as e:
                plugin = spec.ops.get(name)
                if plugin is None:
                    raise GraphFormatError("unknown_op", f"{what}: {e}", where) from None
                raise GraphFormatError(
                    "missing_plugin", f"{what}: {name!r} {_plugin_text(plugin)}", where
                ) from None
            checked.add(name)


def _plugin_text(plugin: PluginSpec) -> str:
    if plugin.distribution is None:
        return (
            "was registered by the saving program's own code (no package recorded); "
            "register it with graphdiff.register_op before loading"
        )
    version = f" {plugin.version}" if plugin.version else ""
    return (
        f"comes from the plugin package {plugin.distribution!r}{version}, which is not "
        "installed; install it to load this file (graphdiff never imports code named "
        "in a file)"
    )


def _tensors(spec: ModelFile) -> Iterator[tuple[str, TensorSpec]]:
    for k, t in spec.graph.arrays.items():
        yield f"/graph/arrays/{pointer([k])[1:]}", t
    groups: list[tuple[str, list[NodeSpec] | list[EdgeSpec]]] = [
        ("nodes", spec.graph.nodes), ("edges", spec.graph.edges)
    ]
    for kind, items in groups:
        for i, item in enumerate[NodeSpec | EdgeSpec](items):
            for k, t in item.arrays.items():
                yield f"/graph/{kind}/{i}/arrays/{pointer([k])[1:]}", t
    for name, t in (spec.params or {}).items():
        yield f"/params/{pointer([name])[1:]}", t


def check_sizes(
    tensors: Iterable[tuple[str, TensorSpec]],
    limits: LoadLimits,
    payloads: Payloads | None = None,
    shapes: Iterable[tuple[str, list[int]]] = (),
) -> None:
    """Declared sizes against the limits, in Python ints, before anything is allocated
    (those of arrays, and ``shapes``: other declared shapes, as the ``shape`` attribute
    of a param node); then each payload's length against its declared size."""
    tensors = list(tensors)
    total = 0
    for where, t in [*tensors, *((w, TensorSpec.model_construct(shape=s)) for w, s in shapes)]:
        if len(t.shape) > limits.max_rank:
            raise GraphFormatError(
                "bad_shape",
                f"shape of rank {len(t.shape)}; the limit is {limits.max_rank} "
                "(LoadLimits.max_rank)",
                f"{where}/shape",
            )
        count = math.prod(t.shape)  # exact: numpy's product would wrap around
        # Each axis is bounded too: numpy cannot shape even an empty array [0, 2**64].
        if max([count, *t.shape]) > limits.max_tensor_elements:
            raise GraphFormatError(
                "too_large",
                f"shape {show(t.shape)} has {show(count, 30)} elements; the limit for the "
                f"elements and for each axis is {limits.max_tensor_elements} "
                "(LoadLimits.max_tensor_elements)",
                f"{where}/shape",
            )
        total += count
        if total > limits.max_elements:
            raise GraphFormatError(
                "too_large",
                f"the arrays up to here hold {total} numbers; the limit is "
                f"{limits.max_elements} (LoadLimits.max_elements)",
                f"{where}/shape",
            )
    for where, t in tensors:
        nbytes = math.prod(t.shape) * np.dtype(DTYPES[t.dtype]).itemsize
        expected = 4 * ((nbytes + 2) // 3)
        length = payloads.length(t.data) if payloads else len(t.data)
        if length != expected:
            raise GraphFormatError(
                "payload_mismatch",
                f"'data' has {length} base64 characters; dtype {t.dtype} x shape "
                f"{show(t.shape)} needs {expected} ({nbytes} bytes)",
                f"{where}/data",
            )


def decode(
    t: TensorSpec, where: str, allow_nonfinite: bool, payloads: Payloads | None = None
) -> np.ndarray:
    """The array of a size-checked :class:`TensorSpec` (a new, writable, native array),
    decoded a few MiB at a time straight into its memory."""
    arr = np.empty(math.prod(t.shape), dtype=np.dtype(DTYPES[t.dtype]))
    raw = arr.view(np.uint8)
    at, short = 0, False
    for chunk in payloads.chunks(t.data, where) if payloads else Payloads.text_chunks(t.data):
        try:
            part = binascii.a2b_base64(chunk, strict_mode=True)
            if short:  # padding ended the data, and more follows
                raise ValueError
        except ValueError:
            raise GraphFormatError(
                "bad_base64", "'data' is not standard base64", f"{where}/data"
            ) from None
        short = len(part) * 4 != len(chunk) * 3
        if at + len(part) <= raw.size:
            raw[at:at + len(part)] = np.frombuffer(part, dtype=np.uint8)
        at += len(part)
    if at != raw.size:
        raise GraphFormatError(
            "payload_mismatch",
            f"'data' decodes to {at} bytes; dtype {t.dtype} x shape {t.shape} needs {raw.size}",
            f"{where}/data",
        )
    return _finite(arr.reshape(t.shape).astype(t.dtype, copy=False), where, allow_nonfinite)


def _finite(arr: np.ndarray, where: str, allow_nonfinite: bool) -> np.ndarray:
    if not allow_nonfinite:
        bad = ~np.isfinite(arr)
        if bad.any():
            idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), arr.shape))
            raise GraphFormatError(
                "non_finite",
                f"{arr[idx]} at index {idx} (pass allow_nonfinite=True to load it anyway)",
                where,
            )
    return arr


def decode_params(
    tensors: Mapping[str, TensorSpec],
    prefix: str,
    allow_nonfinite: bool,
    payloads: Payloads | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, t in tensors.items():
        arr = decode(t, f"{prefix}/{pointer([name])[1:]}", allow_nonfinite, payloads)
        out[name] = arr[()] if arr.ndim == 0 else arr
    return out


# -- in memory ---------------------------------------------------------------------


def from_spec(
    spec: ModelFile, *, limits: LoadLimits | None = None, allow_nonfinite: bool = False
) -> tuple[nx.DiGraph[Any], dict[str, Any]]:
    """The graph and parameters of a validated :class:`~graphdiff.schema.ModelFile`.

    Runs every check :func:`load` runs after parsing (ids, edges, cycles, op
    names, declared sizes, payloads, non-finite values) and builds a new graph.

    >>> import networkx as nx, graphdiff
    >>> G = nx.MultiDiGraph([(1, "1"), (1, "1")])
    >>> G2, params = graphdiff.from_spec(graphdiff.to_spec(G))
    >>> type(G2).__name__, sorted(G2.edges(keys=True), key=str), params
    ('MultiDiGraph', [(1, '1', 0), (1, '1', 1)], {})
    """
    return from_file_spec(spec, limits or LoadLimits(), allow_nonfinite)


def from_file_spec(
    spec: ModelFile,
    limits: LoadLimits,
    allow_nonfinite: bool,
    payloads: Payloads | None = None,
    share: bool = False,
) -> tuple[nx.DiGraph[Any], dict[str, Any]]:
    """:func:`from_spec`, with the large payloads of a file being loaded; ``share``:
    attribute values may be the spec's own (the spec is thrown away after)."""
    _check_graph(spec)
    _check_ops(spec)
    check_sizes(_tensors(spec), limits, payloads, _declared_shapes(spec))
    if payloads and len(payloads.spans) > sum(payloads.length(t.data) != len(t.data)
                                              for _, t in _tensors(spec)):
        copy: Callable[[Any], Any] = payloads.restore  # a payload outside an array
    else:
        copy = _identity if share else copy_json
    g = spec.graph
    G: nx.DiGraph[Any] = nx.MultiDiGraph() if g.multigraph else nx.DiGraph()
    G.graph.update(_attr_values(g, "/graph", allow_nonfinite, payloads, copy))
    for i, node in enumerate(g.nodes):
        data = _attr_values(node, f"/graph/nodes/{i}", allow_nonfinite, payloads, copy)
        G.add_node(node.id)
        # Never as keyword arguments: a file's attribute names must not reach a signature.
        G.nodes[node.id].update(data)
    for j, e in enumerate(g.edges):
        data = _attr_values(e, f"/graph/edges/{j}", allow_nonfinite, payloads, copy)
        if g.multigraph:
            G.add_edge(e.source, e.target, key=e.key)
            cast("nx.MultiDiGraph[Any]", G).edges[e.source, e.target, e.key].update(data)
        else:
            G.add_edge(e.source, e.target)
            G.edges[e.source, e.target].update(data)
    params = decode_params(spec.params or {}, "/params", allow_nonfinite, payloads)
    return G, params


def _declared_shapes(spec: ModelFile) -> Iterator[tuple[str, list[int]]]:
    """The ``shape`` attributes of param nodes (what ``init_params`` will allocate)."""
    for i, node in enumerate(spec.graph.nodes):
        shape = node.attrs.get("shape")
        if node.attrs.get("op") != "param" or shape is None:
            continue
        dims = [shape] if isinstance(shape, int) else shape
        if isinstance(dims, list) and all(type(d) is int and d >= 0 for d in dims):
            yield f"/graph/nodes/{i}/attrs", cast("list[int]", dims)


def _identity(v: Any) -> Any:
    return v


def _attr_values(
    item: NodeSpec | EdgeSpec | GraphSpec,
    where: str,
    allow_nonfinite: bool,
    payloads: Payloads | None = None,
    copy: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    copy = copy or copy_json
    data: dict[str, Any] = {k: copy(v) for k, v in item.attrs.items()}
    for k, t in item.arrays.items():
        data[k] = decode(t, f"{where}/arrays/{pointer([k])[1:]}", allow_nonfinite, payloads)
    return data


def copy_json(v: Any) -> Any:
    """A copy of a JSON value (the graph must not share lists or dicts with the spec)."""
    if isinstance(v, list):
        return [copy_json(x) for x in v]
    if isinstance(v, dict):
        return {k: copy_json(x) for k, x in v.items()}
    return v


def to_spec(
    G: nx.DiGraph[Any], params: Mapping[str, Any] | None = None, *, loss: Hashable | None = None,
    dtype: Any = None,
) -> ModelFile:
    """The :class:`~graphdiff.schema.ModelFile` of a graph and its parameters.

    ``dtype`` is the float type to compile it with (``"float64"`` or ``"float32"``,
    or the numpy type); ``None``: that of ``params`` when they are a network's
    :class:`~graphdiff.params.Params`, else float64.

    Nodes come in canonical topological order (:func:`graphdiff.graphs.canonical_order`,
    the order compile uses: among the nodes ready, the smallest by
    :func:`~graphdiff.graphs.node_key` first), edges by their endpoints' positions,
    attributes by name. Ops that are not built in are
    listed in ``ops`` with the package that provides them.

    Raises :class:`GraphFormatError` for what a file cannot hold or :func:`load`
    would refuse, naming the node or edge and the attribute.

    >>> import networkx as nx, graphdiff
    >>> G = nx.DiGraph([("b", "c"), ("a", "c")])
    >>> [n.id for n in graphdiff.to_spec(G).graph.nodes]
    ['a', 'b', 'c']
    """
    return to_file_spec(G, params, loss, dtype=dtype)


def _dtype_name(dtype: Any, params: Mapping[str, Any] | None) -> Any:
    """``dtype`` as the name a model file stores (the schema refuses what it is not)."""
    if dtype is None:
        return params.layout.dtype.name if isinstance(params, Params) else "float64"
    try:
        return np.dtype(dtype).name if isinstance(dtype, (str, type, np.dtype)) else dtype
    except TypeError:
        return dtype


def to_file_spec(
    G: nx.DiGraph[Any],
    params: Mapping[str, Any] | None,
    loss: Hashable | None,
    arrays: dict[str, np.ndarray] | None = None,
    dtype: Any = None,
) -> ModelFile:
    """:func:`to_spec`; with ``arrays``, the parameters' data is left to the writer
    (see :func:`encode`)."""
    if not isinstance(G, nx.DiGraph):
        raise GraphFormatError(
            "bad_graph", f"expected a networkx DiGraph or MultiDiGraph, got {type(G).__name__}"
        )
    for n in G:
        if not _is_node_id(n):
            raise GraphFormatError(
                "bad_id",
                f"node {show(n)} ({type(n).__name__}): node ids must be str (1 to "
                f"{MAX_NAME_CHARS} characters) or int (64-bit)",
            )
    try:
        order = canonical_order(G)  # compile's order: one topological order everywhere
    except CycleError:
        cycle = [u for u, *_ in nx.find_cycle(G)]
        names = " -> ".join(show(n, 30) for n in [*cycle, cycle[0]])
        raise GraphFormatError("cycle", f"the graph has a cycle: {names}") from None
    pos = {n: i for i, n in enumerate(order)}
    multi = G.is_multigraph()
    edges: list[tuple[Any, Any, Any, dict[str, Any]]] = (
        list(cast("nx.MultiDiGraph[Any]", G).edges(keys=True, data=True)) if multi
        else [(u, v, None, d) for u, v, d in G.edges(data=True)]
    )
    for u, v, k, _ in edges:
        if multi and not _is_node_id(k):
            raise GraphFormatError(
                "bad_id", f"edge {show(u)} -> {show(v)}: key {show(k)} is not a str or int"
            )
    edges.sort(key=lambda e: (pos[e[0]], pos[e[1]], node_key(e[2])))
    try:
        nodes = [_node_spec(n, G.nodes[n]) for n in order]
        edge_specs = [_edge_spec(u, v, k, d) for u, v, k, d in edges]
        attrs, arrays_ = _split_attrs(G.graph, lambda: "the graph (G.graph)")
        spec = ModelFile(
            graph=GraphSpec(multigraph=multi, nodes=nodes, edges=edge_specs, attrs=attrs,
                            arrays=arrays_),
            loss=loss,  # type: ignore[arg-type]
            dtype=_dtype_name(dtype, params),
            params=None if params is None else encode_params(params, arrays),
            ops=_plugin_table(G),
        )
    except ValidationError as e:
        raise format_error(e) from None
    _check_graph(spec)
    _check_ops(spec)
    return spec


def _is_node_id(n: object) -> bool:
    if type(n) is int:
        return -(2**63) <= n < 2**63
    return isinstance(n, str) and 0 < len(n) <= MAX_NAME_CHARS


def _node_spec(n: Hashable, data: Mapping[str, Any]) -> NodeSpec:
    attrs, arrays = _split_attrs(data, lambda: f"node {show(n)}")
    return NodeSpec(id=n, attrs=attrs, arrays=arrays)  # type: ignore[arg-type]


def _edge_spec(u: Hashable, v: Hashable, k: Hashable, data: Mapping[str, Any]) -> EdgeSpec:
    key = "" if k is None else f"[{show(k)}]"
    attrs, arrays = _split_attrs(data, lambda: f"edge {show(u)} -> {show(v)}{key}")
    return EdgeSpec(source=u, target=v, key=k, attrs=attrs, arrays=arrays)  # type: ignore[arg-type]


def _split_attrs(
    data: Mapping[str, Any], what: Callable[[], str]
) -> tuple[dict[str, Any], dict[str, TensorSpec]]:
    attrs: dict[str, Any] = {}
    arrays: dict[str, TensorSpec] = {}
    for k in sorted(data, key=str):
        v = data[k]
        try:
            if not isinstance(k, str) or not 0 < len(k) <= MAX_NAME_CHARS:
                raise GraphFormatError(
                    "unsupported_value", "attribute names must be non-empty strings"
                )
            if isinstance(v, np.ndarray):
                arrays[k] = encode(v)
            else:
                attrs[k] = json_value(v)
        except GraphFormatError as e:  # named here: the name costs time on every attribute
            raise GraphFormatError(e.code, f"{what()}, attribute {show(k)}: {e.message}") from None
    return attrs, arrays


def named(where: str, convert: Callable[[Any], Any], value: Any) -> Any:
    """``convert(value)``, with ``where`` in front of the message of its error."""
    try:
        return convert(value)
    except GraphFormatError as e:
        raise GraphFormatError(e.code, f"{where}: {e.message}") from None


def json_value(v: Any, depth: int = 0) -> Any:
    """``v`` as plain JSON data (dict keys sorted), or a GraphFormatError."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return int(v)
    if isinstance(v, (float, np.floating)) and np.dtype(type(v)).itemsize <= 8:
        x = float(v)
        if not math.isfinite(x):
            raise GraphFormatError(
                "non_finite", f"{x} cannot be stored (JSON has no NaN or infinity)"
            )
        return x
    if isinstance(v, (list, tuple, dict)):
        if depth >= MAX_VALUE_DEPTH:
            raise GraphFormatError("too_deep", f"nested more than {MAX_VALUE_DEPTH} levels deep")
        if isinstance(v, dict):
            bad = [k for k in v if not isinstance(k, str)]
            if bad:
                raise GraphFormatError(
                    "unsupported_value", f"dict key {show(bad[0])} is not a string"
                )
            return {k: json_value(v[k], depth + 1) for k in sorted(v)}
        return [json_value(x, depth + 1) for x in v]
    raise GraphFormatError(
        "unsupported_value",
        f"a {type(v).__name__} ({show(v)}) cannot be stored; use None, bool, int, float, "
        "str, lists and dicts of them, or a float numpy array",
    )


def encode(value: Any, arrays: dict[str, np.ndarray] | None = None, name: str = "") -> TensorSpec:
    """The :class:`TensorSpec` of an array; with ``arrays``, its ``data`` is left empty
    and the little-endian array is put in ``arrays[name]`` (a writer encodes it a
    few MiB at a time, see :func:`graphdiff.jsonwrite._tensor_text`)."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError, OverflowError):  # ragged lists, say
        raise GraphFormatError("bad_dtype", "not a numeric array of one shape") from None
    if arr.dtype.kind in "iu" and not isinstance(value, (np.ndarray, np.generic)):
        arr = arr.astype(np.float64)  # plain Python numbers are float64 parameters
    if arr.dtype.kind != "f" or arr.dtype.itemsize not in (4, 8):
        raise GraphFormatError(
            "bad_dtype", f"dtype {arr.dtype} cannot be stored; use float64 or float32"
        )
    little = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    if arrays is not None:
        arrays[name] = little
    return TensorSpec(
        dtype="float64" if arr.dtype.itemsize == 8 else "float32",
        shape=list(arr.shape),
        data="" if arrays is not None
        else base64.b64encode(little.reshape(-1).view(np.uint8).data).decode("ascii"),
    )


def encode_params(
    params: Mapping[str, Any], arrays: dict[str, np.ndarray] | None = None
) -> dict[str, TensorSpec]:
    """The parameters' :class:`TensorSpec`; ``arrays``: see :func:`encode`."""
    if not isinstance(params, Mapping):
        raise GraphFormatError(
            "bad_type", f"params must map names to arrays, got {type(params).__name__}"
        )
    out = {}
    for name in sorted(params, key=str):
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_CHARS:
            raise GraphFormatError(
                "bad_id", f"parameter name {show(name)}: names must be non-empty strings"
            )
        out[name] = named(f"parameter {name!r}", partial(encode, arrays=arrays, name=name),
                           params[name])
    return out


def _plugin_table(G: nx.DiGraph[Any]) -> dict[str, PluginSpec]:
    table: dict[str, PluginSpec] = {}
    for n, data in G.nodes(data=True):
        for attr in ("op", "activation"):
            name = data.get(attr)
            if not isinstance(name, str) or name in table or name in ENGINE_OPS:
                continue
            if not _OP_NAME.fullmatch(name):
                continue  # _check_ops names the node
            try:
                op = get_op(name)
            except UnknownOpError as e:
                raise GraphFormatError("unknown_op", f"node {show(n)} ({attr}): {e}") from None
            if not op.builtin:
                table[name] = PluginSpec(distribution=op.distribution, version=op.version)
    return dict(sorted(table.items()))


def graph_fingerprint(G: nx.DiGraph[Any]) -> str:
    """``"sha256:..."`` of the graph's canonical form (nodes, edges, every attribute).

    Two graphs get the same fingerprint exactly when they save to the same graph
    section; a trainer stores it in a checkpoint to refuse resuming on another graph.

    >>> import networkx as nx
    >>> graph_fingerprint(nx.DiGraph([("a", "b")])) == graph_fingerprint(nx.DiGraph([("a", "b")]))
    True
    """
    text = compact_json(graph_doc(to_spec(G).graph))
    return "sha256:" + hashlib.sha256(text.encode("ascii")).hexdigest()
