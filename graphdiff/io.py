"""Model, parameter and checkpoint files: JSON data, never code.

A model file holds a networkx graph (every node and edge with its attributes,
``DiGraph`` or ``MultiDiGraph``), optionally the loss node to compile and the
parameters. Arrays are stored exactly (base64 of little-endian float64 or
float32 bytes with dtype and shape). Nodes are written in a canonical
topological order, so saving the same model twice gives the same bytes.

>>> import os, tempfile, networkx as nx, numpy as np, graphdiff
>>> G = nx.DiGraph()
>>> G.add_node("x", op="input"); G.add_node("t", op="input")
>>> G.add_node("y", op="neuron", activation="tanh")
>>> G.add_edge("x", "y", param="w")
>>> G.add_node("E", op="squared_error")
>>> G.add_edge("y", "E", port=0); G.add_edge("t", "E", port=1)
>>> path = os.path.join(tempfile.mkdtemp(), "model.json")
>>> graphdiff.save(path, G, {"w": np.float64(0.5)}, loss="E")
>>> G2, params = graphdiff.load(path)
>>> sorted(G2.nodes) == sorted(G.nodes), params
(True, {'w': np.float64(0.5)})

Loading trusts nothing in the file. Before anything large is parsed or
allocated it checks the file size, the nesting depth and the declared array
sizes (with exact integer arithmetic) against a :class:`LoadLimits`; it refuses
duplicate JSON keys, NaN/Infinity, unknown keys, duplicate node ids, edges to
missing nodes and cycles; and it resolves op names only by looking them up in
graphdiff's op registry (never importing or calling anything named in the
file). Every refusal is a :class:`GraphFormatError` with a ``code`` and the
``location`` (a JSON pointer) of the culprit.

What :func:`save` refuses: node ids other than ``str`` and ``int``, cycles,
unregistered ops, and attribute values JSON cannot hold exactly (NaN, sets,
objects, integer or bool numpy values); the error names the node (or edge)
and the attribute. Tuples are stored as lists and numpy float scalars as plain
floats; numpy float arrays stay arrays (0-d ones included). In a parameter
dict, shape-``()`` arrays come back as numpy scalars of their dtype.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import math
import os
import re
import reprlib
import stat
import tempfile
import warnings
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

import networkx as nx
import numpy as np
from pydantic import BaseModel, ValidationError

from .errors import GraphdiffError, UnknownOpError
from .graphs import node_key
from .registry import ENGINE_OPS, get_op
from .schema import (
    CHECKPOINT_FORMAT,
    DTYPES,
    FORMAT_VERSION,
    MAX_NAME_CHARS,
    MODEL_FORMAT,
    OP_NAME_PATTERN,
    PARAMS_FORMAT,
    VERSION_PATTERN,
    CheckpointFile,
    EdgeSpec,
    GraphSpec,
    LoadLimits,
    ModelFile,
    NodeSpec,
    ParamsFile,
    PluginSpec,
    TensorSpec,
)

__all__ = [
    "Checkpoint",
    "GraphFormatError",
    "LoadLimits",
    "Model",
    "from_spec",
    "graph_fingerprint",
    "load",
    "load_checkpoint",
    "load_model",
    "load_params",
    "save",
    "save_checkpoint",
    "save_params",
    "to_spec",
]

BUILTIN_SOURCE = "graphdiff (built-in)"
MAX_MESSAGE = 500
# Containers allowed inside one attribute or configuration value: a model file's own
# structure takes 5 of LoadLimits.max_depth (32 by default) above a node attribute, so
# save accepts exactly the attribute nesting that load accepts with the default limits.
MAX_VALUE_DEPTH = 27
_OP_NAME = re.compile(OP_NAME_PATTERN)
_VERSION = re.compile(VERSION_PATTERN)
# A backslash and the character it escapes: once these are gone, every quote left
# opens or closes a string.
_ESCAPE = re.compile(r"\\.", re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_OTHER_FORMATS = {
    MODEL_FORMAT: "graphdiff.load",
    PARAMS_FORMAT: "graphdiff.load_params",
    CHECKPOINT_FORMAT: "graphdiff.load_checkpoint",
}


class GraphFormatError(GraphdiffError, ValueError):
    """A file (or a graph being saved) that graphdiff refuses.

    Attributes
    ----------
    code : what is wrong, one word (``"unknown_op"``, ``"too_large"``,
        ``"duplicate_key"``, ``"checksum"``, ...; see ``docs/format.md``).
    location : JSON pointer to the culprit in the file (``"/graph/nodes/3/attrs/op"``),
        ``""`` when the whole file is at fault.
    path : the file, when the error comes from reading one.

    >>> e = GraphFormatError("unknown_op", "op 'os.system' is not registered", "/graph/nodes/0")
    >>> e.code, str(e)
    ('unknown_op', "/graph/nodes/0: op 'os.system' is not registered [unknown_op]")
    """

    def __init__(self, code: str, message: str, location: str = "", path: str = "") -> None:
        self.code = code
        self.message = message
        self.location = location
        self.path = path
        where = ": ".join(p for p in (path, location) if p)
        text = f"{where}: {message}" if where else message
        tail = f" [{code}]"
        if len(text) + len(tail) > MAX_MESSAGE:
            text = text[: MAX_MESSAGE - len(tail) - 3] + "..."
        super().__init__(text + tail)

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its parts (as multiprocessing does), not from the final text.
        return (type(self), (self.code, self.message, self.location, self.path))


def _short_repr() -> reprlib.Repr:
    r = reprlib.Repr()
    r.maxstring = r.maxother = 80
    r.maxlong = 40
    r.maxlist = r.maxtuple = 8
    r.maxdict = r.maxset = 6
    r.maxlevel = 3
    return r


# Shortens before escaping: a value from a file may be a string of a gigabyte.
_REPR = _short_repr()


def _show(value: object, limit: int = 60) -> str:
    """A value from a file, safe to print: repr'd, ASCII-escaped and truncated."""
    text = _REPR.repr(value).encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _pointer(parts: tuple[Any, ...] | list[Any]) -> str:
    """A JSON pointer; parts from the file are escaped and truncated."""
    out = []
    for p in parts:
        s = str(p)[:200].replace("~", "~0").replace("/", "~1")
        s = s.encode("ascii", "backslashreplace").decode("ascii")
        s = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in s)
        out.append(s if len(s) <= 40 else s[:37] + "...")
    return "/" + "/".join(out) if out else ""


# -- reading ---------------------------------------------------------------------


def _read_text(path: str | os.PathLike[str], limits: LoadLimits) -> str:
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        if stat.S_ISREG(st.st_mode) and st.st_size > limits.max_file_bytes:
            raise GraphFormatError(
                "file_too_large",
                f"the file has {st.st_size} bytes; the limit is {limits.max_file_bytes} "
                "(LoadLimits.max_file_bytes)",
            )
        # Never read more than the limit + 1 bytes, even from a file that grows or a pipe.
        budget = limits.max_file_bytes + 1
        chunk = max(st.st_size + 1, 1 << 20) if stat.S_ISREG(st.st_mode) else 1 << 20
        parts = []
        while budget > 0:
            part = f.read(min(budget, chunk))
            if not part:
                break
            parts.append(part)
            budget -= len(part)
    data = b"".join(parts)
    del parts
    if len(data) > limits.max_file_bytes:
        raise GraphFormatError(
            "file_too_large",
            f"the file has more than {limits.max_file_bytes} bytes (LoadLimits.max_file_bytes)",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise GraphFormatError(
            "bad_encoding", f"not UTF-8 text (byte {e.start} is {data[e.start]:#04x})"
        ) from None


def _prescan(text: str, limits: LoadLimits) -> None:
    """Refuse deep nesting and too many containers before the parser recurses or allocates."""
    # Splitting at quotes, not a regular expression over every character of the strings:
    # a model's arrays are megabytes of base64 (see benchmarks W6). Outside strings a
    # backslash is invalid JSON, and the parser stops there before it reaches anything
    # the escapes removed here could hide.
    if "\\" in text:
        text = _ESCAPE.sub("", text)
    parts = text.split('"')
    # Strings hold no raw newlines in valid JSON, so line numbers survive their removal.
    rest = "".join(parts[::2])
    if len(parts) % 2 == 0:  # an odd number of quotes: the text ends inside a string
        line = rest.count("\n") + 1
        raise GraphFormatError("truncated", f"the string starting on line {line} is never closed")
    containers = rest.count("[") + rest.count("{")
    if containers > limits.max_containers:
        raise GraphFormatError(
            "too_large",
            f"{containers} JSON arrays and objects; the limit is {limits.max_containers} "
            "(LoadLimits.max_containers)",
        )
    depth = 0
    for m in _BRACKET.finditer(rest):
        if rest[m.start()] in "[{":
            depth += 1
            if depth > limits.max_depth:
                line = rest.count("\n", 0, m.start()) + 1
                raise GraphFormatError(
                    "too_deep",
                    f"nesting deeper than {limits.max_depth} on line {line} "
                    "(LoadLimits.max_depth)",
                )
        else:
            depth -= 1
    if depth > 0:
        raise GraphFormatError(
            "truncated", f"the file ends inside {depth} unclosed array(s) or object(s)"
        )


class _Refused:
    """Stands in for a value refused while parsing, so its location can be found after."""


def _parse(text: str, limits: LoadLimits) -> Any:
    _prescan(text, limits)
    refused: list[tuple[object, str, str, str | None]] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        d = dict(items)
        if len(d) != len(items):
            seen: set[str] = set()
            for k, _ in items:
                if k in seen:
                    refused.append((d, "duplicate_key", f"duplicate key {_show(k)}", k))
                    break
                seen.add(k)
        return d

    def constant(token: str) -> _Refused:
        marker = _Refused()
        refused.append((marker, "non_finite", f"{token} is not a finite number", None))
        return marker

    def number(token: str) -> float | _Refused:
        x = float(token)
        if math.isfinite(x):
            return x
        marker = _Refused()
        refused.append((marker, "non_finite", f"{_show(token)} overflows a float", None))
        return marker

    try:
        doc = json.loads(text, object_pairs_hook=pairs, parse_constant=constant, parse_float=number)
    except json.JSONDecodeError as e:
        raise GraphFormatError(
            "bad_json", f"not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})"
        ) from None
    except ValueError as e:  # an integer longer than Python's digit limit
        raise GraphFormatError("too_large", f"a number is too long: {_show(str(e))}") from None
    except RecursionError:  # pragma: no cover - the pre-scan bounds the depth
        raise GraphFormatError("too_deep", "nesting too deep") from None
    if refused:
        target, code, message, key = refused[0]
        where = _locate(doc, target) + ([key] if key is not None else [])
        raise GraphFormatError(code, message, _pointer(where))
    return doc


def _locate(doc: Any, target: object) -> list[Any]:
    """Path from the root of ``doc`` to the object ``target`` (found by identity)."""
    stack: list[tuple[Any, list[Any]]] = [(doc, [])]
    while stack:
        node, path = stack.pop()
        if node is target:
            return path
        if isinstance(node, dict):
            stack.extend((v, [*path, k]) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, [*path, i]) for i, v in enumerate(node))
    return []  # pragma: no cover - the target is always in the document


def _check_header(doc: Any, expected: str) -> None:
    if not isinstance(doc, dict):
        raise GraphFormatError("wrong_format", f"expected a JSON object, got {type(doc).__name__}")
    fmt = doc.get("format")
    if fmt != expected:
        other = _OTHER_FORMATS.get(fmt) if isinstance(fmt, str) else None
        hint = f"; read it with {other}" if other else ""
        raise GraphFormatError(
            "wrong_format",
            f"'format' is {_show(fmt)}, expected {expected!r}{hint}",
            "/format",
        )
    version = doc.get("format_version")
    m = _VERSION.fullmatch(version) if isinstance(version, str) else None
    major = int(version.split(".")[0]) if m and isinstance(version, str) else None
    if major != int(FORMAT_VERSION.split(".")[0]):
        from .schema import __version__

        what = "is newer than" if major is not None and major > 1 else "is not one of"
        raise GraphFormatError(
            "unsupported_version",
            f"format_version {_show(version)} {what} the versions this graphdiff "
            f"({__version__}) reads: {FORMAT_VERSION.split('.')[0]}.x (it writes {FORMAT_VERSION})",
            "/format_version",
        )


def _check_counts(doc: dict[str, Any], limits: LoadLimits) -> None:
    graph = doc.get("graph")
    if not isinstance(graph, dict):
        return
    for key, cap, name in (("nodes", limits.max_nodes, "max_nodes"),
                           ("edges", limits.max_edges, "max_edges")):
        items = graph.get(key)
        if isinstance(items, list) and len(items) > cap:
            raise GraphFormatError(
                "too_large",
                f"{len(items)} {key}; the limit is {cap} (LoadLimits.{name})",
                f"/graph/{key}",
            )


def _error_code(err: Mapping[str, Any]) -> str:
    kind, loc = err["type"], err["loc"]
    if kind in ("bad_id", "extra_forbidden"):
        return str(kind)
    if loc and loc[0] == "ops" and loc[-1] == "[key]":
        return "unknown_op"  # the plugin table names an op that no name could be
    if loc and (loc[-1] == "shape" or (len(loc) > 1 and loc[-2] == "shape")):
        return "bad_shape"
    if loc and loc[-1] == "dtype":
        return "bad_dtype"
    if kind == "missing":
        return "missing_field"
    return "bad_type"


def _invalid(e: ValidationError) -> GraphFormatError:
    err = e.errors(include_url=False)[0]
    message = str(err["msg"])
    if err["type"] != "missing":
        message += f", got {_show(err['input'])}"
    if e.error_count() > 1:
        message += f" (and {e.error_count() - 1} more problem(s))"
    return GraphFormatError(_error_code(err), message, _pointer(err["loc"]))


def _validate(model: type[BaseModel], doc: Any) -> Any:
    try:
        return model.model_validate(doc, strict=True)
    except ValidationError as e:
        raise _invalid(e) from None


@contextmanager
def _in_file(path: str | os.PathLike[str]) -> Iterator[None]:
    try:
        yield
    except GraphFormatError as e:
        raise GraphFormatError(e.code, e.message, e.location, os.fspath(path)) from None
    except MemoryError:
        raise GraphFormatError(
            "too_large", "not enough memory to load this file", "", os.fspath(path)
        ) from None


def _read_doc(path: str | os.PathLike[str], fmt: str, limits: LoadLimits) -> dict[str, Any]:
    doc = _parse(_read_text(path, limits), limits)
    _check_header(doc, fmt)
    return doc  # type: ignore[no-any-return]


# -- checks shared by load and save ---------------------------------------------------


def _check_graph(spec: ModelFile) -> None:
    """Duplicate ids, edges to missing nodes and cycles, before networkx sees the graph."""
    g = spec.graph
    index: dict[int | str, int] = {}
    for i, node in enumerate(g.nodes):
        if node.id in index:
            raise GraphFormatError(
                "duplicate_id",
                f"node id {_show(node.id)} is also node {index[node.id]}",
                f"/graph/nodes/{i}/id",
            )
        index[node.id] = i
        if node.arrays and node.attrs.keys() & node.arrays.keys():
            _refuse_overlap(node, f"/graph/nodes/{i}", f"node {_show(node.id)}")
    succ: list[list[int]] = [[] for _ in g.nodes]
    preds: list[list[int]] = [[] for _ in g.nodes]
    seen: set[tuple[int, int, int | str | None]] = set()
    for j, e in enumerate(g.edges):
        u, v = index.get(e.source), index.get(e.target)
        if u is None or v is None:
            end, name = ("source", e.source) if u is None else ("target", e.target)
            raise GraphFormatError(
                "missing_node",
                f"edge {_show(e.source)} -> {_show(e.target)}: {end} {_show(name)} "
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
                f"edge {_show(e.source)} -> {_show(e.target)} is listed twice",
                f"/graph/edges/{j}",
            )
        seen.add((u, v, e.key))
        if e.arrays and e.attrs.keys() & e.arrays.keys():
            _refuse_overlap(e, f"/graph/edges/{j}", f"edge {_show(e.source)} -> {_show(e.target)}")
        succ[u].append(v)
        preds[v].append(u)
    _check_acyclic(g, succ, preds)
    if spec.loss is not None and spec.loss not in index:
        raise GraphFormatError("missing_node", f"loss {_show(spec.loss)} is not a node", "/loss")


def _refuse_overlap(item: NodeSpec | EdgeSpec, where: str, what: str) -> None:
    name = sorted(item.attrs.keys() & item.arrays.keys())[0]
    raise GraphFormatError(
        "duplicate_key",
        f"{what}: attribute {_show(name)} is in both 'attrs' and 'arrays'",
        f"{where}/arrays/{_pointer([name])[1:]}",
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
    names = [_show(g.nodes[i].id, 30) for i in [*cycle, cycle[0]]]
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
            what = f"node {_show(node.id)} ({attr})"
            if not isinstance(name, str) or not _OP_NAME.fullmatch(name):
                raise GraphFormatError(
                    "unknown_op",
                    f"{what}: {_show(name)} is not an op name (plain names only: ASCII "
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
    groups: list[tuple[str, list[NodeSpec] | list[EdgeSpec]]] = [
        ("nodes", spec.graph.nodes), ("edges", spec.graph.edges)
    ]
    for kind, items in groups:
        for i, item in enumerate[NodeSpec | EdgeSpec](items):
            for k, t in item.arrays.items():
                yield f"/graph/{kind}/{i}/arrays/{_pointer([k])[1:]}", t
    for name, t in (spec.params or {}).items():
        yield f"/params/{_pointer([name])[1:]}", t


def _check_sizes(tensors: Iterable[tuple[str, TensorSpec]], limits: LoadLimits) -> None:
    """Declared sizes against the limits, in Python ints, before anything is allocated;
    then each payload's length against its declared size."""
    tensors = list(tensors)
    total = 0
    for where, t in tensors:
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
                f"shape {_show(t.shape)} has {_show(count, 30)} elements; the limit for the "
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
        if len(t.data) != expected:
            raise GraphFormatError(
                "payload_mismatch",
                f"'data' has {len(t.data)} base64 characters; dtype {t.dtype} x shape "
                f"{_show(t.shape)} needs {expected} ({nbytes} bytes)",
                f"{where}/data",
            )


def _decode(t: TensorSpec, where: str, allow_nonfinite: bool) -> np.ndarray:
    """The array of a size-checked :class:`TensorSpec` (a new, writable, native array)."""
    dtype = np.dtype(DTYPES[t.dtype])
    try:
        # Straight from the str: base64.b64decode would first copy it to bytes.
        raw = binascii.a2b_base64(t.data, strict_mode=True)
    except ValueError:
        raise GraphFormatError(
            "bad_base64", "'data' is not standard base64", f"{where}/data"
        ) from None
    count = math.prod(t.shape)
    if len(raw) != count * dtype.itemsize:
        raise GraphFormatError(
            "payload_mismatch",
            f"'data' decodes to {len(raw)} bytes; dtype {t.dtype} x shape {t.shape} "
            f"needs {count * dtype.itemsize}",
            f"{where}/data",
        )
    arr = np.frombuffer(raw, dtype=dtype).reshape(t.shape).astype(t.dtype)
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


def _decode_params(
    tensors: Mapping[str, TensorSpec], prefix: str, allow_nonfinite: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, t in tensors.items():
        arr = _decode(t, f"{prefix}/{_pointer([name])[1:]}", allow_nonfinite)
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
    limits = limits or LoadLimits()
    _check_graph(spec)
    _check_ops(spec)
    _check_sizes(_tensors(spec), limits)
    g = spec.graph
    G: nx.DiGraph[Any] = nx.MultiDiGraph() if g.multigraph else nx.DiGraph()
    for i, node in enumerate(g.nodes):
        data = _attr_values(node, f"/graph/nodes/{i}", allow_nonfinite)
        G.add_node(node.id)
        # Never as keyword arguments: a file's attribute names must not reach a signature.
        G.nodes[node.id].update(data)
    for j, e in enumerate(g.edges):
        data = _attr_values(e, f"/graph/edges/{j}", allow_nonfinite)
        if g.multigraph:
            G.add_edge(e.source, e.target, key=e.key)
            cast("nx.MultiDiGraph[Any]", G).edges[e.source, e.target, e.key].update(data)
        else:
            G.add_edge(e.source, e.target)
            G.edges[e.source, e.target].update(data)
    params = _decode_params(spec.params or {}, "/params", allow_nonfinite)
    return G, params


def _attr_values(item: NodeSpec | EdgeSpec, where: str, allow_nonfinite: bool) -> dict[str, Any]:
    data: dict[str, Any] = {k: _copy_json(v) for k, v in item.attrs.items()}
    for k, t in item.arrays.items():
        data[k] = _decode(t, f"{where}/arrays/{_pointer([k])[1:]}", allow_nonfinite)
    return data


def _copy_json(v: Any) -> Any:
    """A copy of a JSON value (the graph must not share lists or dicts with the spec)."""
    if isinstance(v, list):
        return [_copy_json(x) for x in v]
    if isinstance(v, dict):
        return {k: _copy_json(x) for k, x in v.items()}
    return v


def to_spec(
    G: nx.DiGraph[Any], params: Mapping[str, Any] | None = None, *, loss: Hashable | None = None
) -> ModelFile:
    """The :class:`~graphdiff.schema.ModelFile` of a graph and its parameters.

    Nodes come in canonical topological order (``networkx``'s lexicographical
    topological sort with :func:`graphdiff.compile.node_key`), edges by their
    endpoints' positions, attributes by name. Ops that are not built in are
    listed in ``ops`` with the package that provides them.

    Raises :class:`GraphFormatError` for what a file cannot hold or :func:`load`
    would refuse, naming the node or edge and the attribute.

    >>> import networkx as nx, graphdiff
    >>> G = nx.DiGraph([("b", "c"), ("a", "c")])
    >>> [n.id for n in graphdiff.to_spec(G).graph.nodes]
    ['a', 'b', 'c']
    """
    if not isinstance(G, nx.DiGraph):
        raise GraphFormatError(
            "bad_graph", f"expected a networkx DiGraph or MultiDiGraph, got {type(G).__name__}"
        )
    for n in G:
        if not _is_node_id(n):
            raise GraphFormatError(
                "bad_id",
                f"node {_show(n)} ({type(n).__name__}): node ids must be str (1 to "
                f"{MAX_NAME_CHARS} characters) or int (64-bit)",
            )
    try:
        order = list(nx.lexicographical_topological_sort(G, key=node_key))
    except nx.NetworkXUnfeasible:
        cycle = [u for u, *_ in nx.find_cycle(G)]
        names = " -> ".join(_show(n, 30) for n in [*cycle, cycle[0]])
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
                "bad_id", f"edge {_show(u)} -> {_show(v)}: key {_show(k)} is not a str or int"
            )
    edges.sort(key=lambda e: (pos[e[0]], pos[e[1]], node_key(e[2])))
    try:
        nodes = [_node_spec(n, G.nodes[n]) for n in order]
        edge_specs = [_edge_spec(u, v, k, d) for u, v, k, d in edges]
        spec = ModelFile(
            graph=GraphSpec(multigraph=multi, nodes=nodes, edges=edge_specs),
            loss=loss,  # type: ignore[arg-type]
            params=None if params is None else _encode_params(params),
            ops=_plugin_table(G),
        )
    except ValidationError as e:
        raise _invalid(e) from None
    _check_graph(spec)
    _check_ops(spec)
    return spec


def _is_node_id(n: object) -> bool:
    if type(n) is int:
        return -(2**63) <= n < 2**63
    return isinstance(n, str) and 0 < len(n) <= MAX_NAME_CHARS


def _node_spec(n: Hashable, data: Mapping[str, Any]) -> NodeSpec:
    attrs, arrays = _split_attrs(data, lambda: f"node {_show(n)}")
    return NodeSpec(id=n, attrs=attrs, arrays=arrays)  # type: ignore[arg-type]


def _edge_spec(u: Hashable, v: Hashable, k: Hashable, data: Mapping[str, Any]) -> EdgeSpec:
    key = "" if k is None else f"[{_show(k)}]"
    attrs, arrays = _split_attrs(data, lambda: f"edge {_show(u)} -> {_show(v)}{key}")
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
                arrays[k] = _encode(v)
            else:
                attrs[k] = _json_value(v)
        except GraphFormatError as e:  # named here: the name costs time on every attribute
            raise GraphFormatError(e.code, f"{what()}, attribute {_show(k)}: {e.message}") from None
    return attrs, arrays


def _named(where: str, convert: Callable[[Any], Any], value: Any) -> Any:
    """``convert(value)``, with ``where`` in front of the message of its error."""
    try:
        return convert(value)
    except GraphFormatError as e:
        raise GraphFormatError(e.code, f"{where}: {e.message}") from None


def _json_value(v: Any, depth: int = 0) -> Any:
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
                    "unsupported_value", f"dict key {_show(bad[0])} is not a string"
                )
            return {k: _json_value(v[k], depth + 1) for k in sorted(v)}
        return [_json_value(x, depth + 1) for x in v]
    raise GraphFormatError(
        "unsupported_value",
        f"a {type(v).__name__} ({_show(v)}) cannot be stored; use None, bool, int, float, "
        "str, lists and dicts of them, or a float numpy array",
    )


def _encode(value: Any) -> TensorSpec:
    arr = np.asarray(value)
    if arr.dtype.kind in "iu" and not isinstance(value, (np.ndarray, np.generic)):
        arr = arr.astype(np.float64)  # plain Python numbers are float64 parameters
    if arr.dtype.kind != "f" or arr.dtype.itemsize not in (4, 8):
        raise GraphFormatError(
            "bad_dtype", f"dtype {arr.dtype} cannot be stored; use float64 or float32"
        )
    little = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    return TensorSpec(
        dtype="float64" if arr.dtype.itemsize == 8 else "float32",
        shape=list(arr.shape),
        data=base64.b64encode(little.reshape(-1).view(np.uint8).data).decode("ascii"),
    )


def _encode_params(params: Mapping[str, Any]) -> dict[str, TensorSpec]:
    out = {}
    for name in sorted(params, key=str):
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_CHARS:
            raise GraphFormatError(
                "bad_id", f"parameter name {_show(name)}: names must be non-empty strings"
            )
        out[name] = _named(f"parameter {name!r}", _encode, params[name])
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
                raise GraphFormatError("unknown_op", f"node {_show(n)} ({attr}): {e}") from None
            if op.source != BUILTIN_SOURCE:
                table[name] = PluginSpec(distribution=op.distribution, version=op.version)
    return dict(sorted(table.items()))


# -- writing -----------------------------------------------------------------------


def _compact(v: Any) -> str:
    return json.dumps(v, ensure_ascii=True, allow_nan=False, separators=(",", ":"))


_BASE64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


def _tensor_text(doc: dict[str, Any]) -> Iterator[str | bytes]:
    """A parameter's tensor document, as ``_compact`` writes it, with its base64 data
    as bytes: JSON-escaping megabytes of text that needs no escape cost more than
    the rest of a save. Data with any other character goes through ``_compact``."""
    data = doc["data"]
    raw = data.encode("ascii") if isinstance(data, str) and data.isascii() else None
    if raw is None or raw.translate(None, _BASE64) or list(doc) != ["dtype", "shape", "data"]:
        yield _compact(doc)
        return
    yield _compact({"dtype": doc["dtype"], "shape": doc["shape"]})[:-1] + ',"data":"'
    yield raw
    yield '"}'


def _layout(
    doc: Any, expand: set[tuple[str, ...]], path: tuple[str, ...] = ()
) -> Iterator[str | bytes]:
    """JSON text in pieces: containers at the paths in ``expand`` one item per line, the
    rest compact. Pieces, so that a large file is never held twice in memory."""
    if len(path) == 2 and path[0] == "params" and isinstance(doc, dict) and "data" in doc:
        yield from _tensor_text(doc)
        return
    if path not in expand or not isinstance(doc, (dict, list)) or not doc:
        yield _compact(doc)
        return
    items = doc.items() if isinstance(doc, dict) else (("*", v) for v in doc)
    yield "{\n" if isinstance(doc, dict) else "[\n"
    for i, (k, v) in enumerate(items):
        yield (",\n" if i else "") + (f"{_compact(k)}:" if isinstance(doc, dict) else "")
        yield from _layout(v, expand, (*path, k))
    yield "\n}" if isinstance(doc, dict) else "\n]"


def _tensor_doc(t: TensorSpec) -> dict[str, Any]:
    return {"dtype": t.dtype, "shape": list(t.shape), "data": t.data}


def _item_doc(item: NodeSpec | EdgeSpec) -> dict[str, Any]:
    doc: dict[str, Any] = (
        {"id": item.id} if isinstance(item, NodeSpec)
        else {"source": item.source, "target": item.target}
    )
    if isinstance(item, EdgeSpec) and item.key is not None:
        doc["key"] = item.key
    if item.attrs:
        doc["attrs"] = dict(item.attrs)
    if item.arrays:
        doc["arrays"] = {k: _tensor_doc(t) for k, t in item.arrays.items()}
    return doc


def _graph_doc(g: GraphSpec) -> dict[str, Any]:
    return {
        "directed": True,
        "multigraph": g.multigraph,
        "nodes": [_item_doc(n) for n in g.nodes],
        "edges": [_item_doc(e) for e in g.edges],
    }


def _model_text(spec: ModelFile) -> Iterator[str | bytes]:
    doc = {
        "format": MODEL_FORMAT,
        "format_version": FORMAT_VERSION,
        "loss": spec.loss,
        "graph": _graph_doc(spec.graph),
        "params": None if spec.params is None
        else {k: _tensor_doc(t) for k, t in spec.params.items()},
        "ops": {k: p.model_dump() for k, p in spec.ops.items()},
    }
    expand = {(), ("graph",), ("graph", "nodes"), ("graph", "edges"), ("params",), ("ops",)}
    yield from _layout(doc, expand)
    yield "\n"


def graph_fingerprint(G: nx.DiGraph[Any]) -> str:
    """``"sha256:..."`` of the graph's canonical form (nodes, edges, every attribute).

    Two graphs get the same fingerprint exactly when they save to the same graph
    section; a trainer stores it in a checkpoint to refuse resuming on another graph.

    >>> import networkx as nx
    >>> graph_fingerprint(nx.DiGraph([("a", "b")])) == graph_fingerprint(nx.DiGraph([("a", "b")]))
    True
    """
    text = _compact(_graph_doc(to_spec(G).graph))
    return "sha256:" + hashlib.sha256(text.encode("ascii")).hexdigest()


def _atomic_write(path: str | os.PathLike[str], text: Iterable[str | bytes]) -> None:
    """Write ``text`` (ASCII pieces, str or bytes) to ``path`` so that a crash leaves
    either the old or the new file.

    A temporary file in the same directory is written, fsynced and renamed over
    ``path``, then the directory is fsynced. Temporary files left by an earlier
    save of the same path that was killed are removed first.
    """
    path = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(path)
    prefix, suffix = f".{name}.", ".tmp"
    for other in os.listdir(folder):
        if other.startswith(prefix) and other.endswith(suffix):
            with suppress(FileNotFoundError):  # another save may have removed it
                os.unlink(os.path.join(folder, other))
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    try:
        try:
            os.fchmod(fd, _file_mode(path))
            chunk: list[str] = []
            size = 0
            for piece in text:  # written in chunks of about 1 MiB
                if isinstance(piece, bytes):  # ASCII already: written as it is
                    _write_all(fd, "".join(chunk).encode("ascii"))
                    _write_all(fd, piece)
                    chunk, size = [], 0
                    continue
                chunk.append(piece)
                size += len(piece)
                if size >= 1 << 20:
                    _write_all(fd, "".join(chunk).encode("ascii"))
                    chunk, size = [], 0
            _write_all(fd, "".join(chunk).encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _file_mode(path: str) -> int:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# -- public API: models --------------------------------------------------------------


class Model(NamedTuple):
    """What :func:`load_model` returns: ``G, params, loss = graphdiff.load_model(path)``."""

    graph: nx.DiGraph[Any]
    params: dict[str, Any]
    loss: int | str | None


def save(
    path: str | os.PathLike[str],
    G: nx.DiGraph[Any],
    params: Mapping[str, Any] | None = None,
    *,
    loss: Hashable | None = None,
) -> None:
    """Save a graph, and optionally its parameters and loss node, to a JSON file.

    The write is atomic: a failure or crash leaves the previous file as it was.
    ``loss`` (a node) is recorded so that tools (``graphdiff info``,
    ``graphdiff gradcheck``) know what to compile. See :func:`to_spec` for what
    is refused.

    >>> import os, tempfile, networkx as nx, graphdiff
    >>> path = os.path.join(tempfile.mkdtemp(), "m.json")
    >>> graphdiff.save(path, nx.DiGraph([(1, 2)]))
    >>> graphdiff.load(path)[0].edges
    OutEdgeView([(1, 2)])
    """
    _atomic_write(path, _model_text(to_spec(G, params, loss=loss)))


def load_model(
    path: str | os.PathLike[str],
    *,
    limits: LoadLimits | None = None,
    allow_nonfinite: bool = False,
) -> Model:
    """Load a model file: ``G, params, loss = graphdiff.load_model(path)``.

    ``params`` is ``{}`` when the file has none, ``loss`` is ``None`` when none
    was saved. ``limits`` bounds sizes (see :class:`LoadLimits`);
    ``allow_nonfinite=True`` accepts NaN and infinity inside arrays.

    Raises
    ------
    GraphFormatError
        for anything wrong with the file (its ``code`` says what, its
        ``location`` where); OSError when it cannot be read.
    """
    limits = limits or LoadLimits()
    with _in_file(path):
        doc = _read_doc(path, MODEL_FORMAT, limits)
        _check_counts(doc, limits)
        spec: ModelFile = _validate(ModelFile, doc)
        del doc
        G, params = from_spec(spec, limits=limits, allow_nonfinite=allow_nonfinite)
    return Model(G, params, spec.loss)


def load(
    path: str | os.PathLike[str],
    *,
    limits: LoadLimits | None = None,
    allow_nonfinite: bool = False,
) -> tuple[nx.DiGraph[Any], dict[str, Any]]:
    """Load a model file saved by :func:`save`: ``G, params = graphdiff.load(path)``.

    The graph is a ``DiGraph`` or ``MultiDiGraph`` as saved; ``params`` is ``{}``
    when the file has none. See :func:`load_model` for the options and errors.
    """
    G, params, _ = load_model(path, limits=limits, allow_nonfinite=allow_nonfinite)
    return G, params


# -- public API: parameters and checkpoints ----------------------------------------------


def save_params(path: str | os.PathLike[str], params: Mapping[str, Any]) -> None:
    """Save a parameter dict (name -> float64/float32 array or number), atomically.

    >>> import os, tempfile, numpy as np, graphdiff
    >>> path = os.path.join(tempfile.mkdtemp(), "p.json")
    >>> graphdiff.save_params(path, {"w": np.arange(3, dtype=np.float32)})
    >>> graphdiff.load_params(path)
    {'w': array([0., 1., 2.], dtype=float32)}
    """
    doc = {
        "format": PARAMS_FORMAT,
        "format_version": FORMAT_VERSION,
        "params": {k: _tensor_doc(t) for k, t in _encode_params(params).items()},
    }
    _atomic_write(path, [*_layout(doc, {(), ("params",)}), "\n"])


def load_params(
    path: str | os.PathLike[str],
    *,
    limits: LoadLimits | None = None,
    allow_nonfinite: bool = False,
) -> dict[str, Any]:
    """Load a parameter dict saved by :func:`save_params` (checked like :func:`load`)."""
    limits = limits or LoadLimits()
    with _in_file(path):
        spec: ParamsFile = _validate(ParamsFile, _read_doc(path, PARAMS_FORMAT, limits))
        _check_sizes(((f"/params/{_pointer([k])[1:]}", t) for k, t in spec.params.items()),
                     limits)
        return _decode_params(spec.params, "/params", allow_nonfinite)


@dataclass
class Checkpoint:
    """Everything needed to resume training exactly.

    Attributes
    ----------
    params : parameter name -> array (or numpy scalar), float64 or float32.
    optimizer : the optimizer's ``state_dict()``: ``{"name": str, "config": JSON
        dict, "step": int, "state": {param: {slot: array}}}``, or ``None``.
    rng_state : ``rng.bit_generator.state`` (integer arrays in it are stored as
        lists, which numpy accepts back), or ``None``.
    epoch, step : where training stopped.
    config : the training configuration (a JSON dict: hyperparameters, data spec, ...).
    history : one dict of floats per epoch (``{"loss": ..., "accuracy": ...}``).
    graph_fingerprint : :func:`graph_fingerprint` of the trained graph, so that
        resuming on another graph can be refused.

    Floats in ``config`` and ``history`` must be finite. A loaded checkpoint has
    numpy scalars where shape-``()`` arrays were saved.
    """

    params: dict[str, Any]
    optimizer: dict[str, Any] | None = None
    rng_state: dict[str, Any] | None = None
    epoch: int = 0
    step: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    graph_fingerprint: str | None = None


def _checksum(doc: Mapping[str, Any]) -> str:
    body = {k: v for k, v in doc.items() if k != "checksum"}
    text = json.dumps(body, sort_keys=True, ensure_ascii=True, allow_nan=False,
                      separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode("ascii")).hexdigest()


def _rng_json(state: Any) -> Any:
    if isinstance(state, dict):
        return {k: _rng_json(v) for k, v in state.items()}
    if isinstance(state, np.ndarray) and state.dtype.kind in "iu":
        return state.tolist()
    if isinstance(state, np.integer):
        return int(state)
    return state


def save_checkpoint(path: str | os.PathLike[str], ckpt: Checkpoint) -> None:
    """Save a :class:`Checkpoint` atomically, with a SHA-256 checksum of its content.

    >>> import os, tempfile, numpy as np, graphdiff
    >>> rng = np.random.default_rng(7)
    >>> ck = graphdiff.Checkpoint(params={"w": np.ones(2)}, rng_state=rng.bit_generator.state,
    ...                           epoch=3, step=30, history=[{"loss": 0.5}])
    >>> path = os.path.join(tempfile.mkdtemp(), "ck.json")
    >>> graphdiff.save_checkpoint(path, ck)
    >>> back = graphdiff.load_checkpoint(path)
    >>> back.epoch, back.rng_state == rng.bit_generator.state
    (3, True)
    """
    opt = ckpt.optimizer
    opt_doc = None
    if opt is not None:
        state = opt.get("state") or {}
        opt_doc = {
            "name": opt.get("name"),
            "config": _named("optimizer config", _json_value, opt.get("config") or {}),
            "step": opt.get("step", 0),
            "state": {
                p: {s: _tensor_doc(_named(f"optimizer state {p!r}/{s!r}", _encode, a))
                    for s, a in sorted(slots.items())}
                for p, slots in sorted(state.items())
            },
        }
    doc: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "format_version": FORMAT_VERSION,
        "checksum": "",
        "epoch": ckpt.epoch,
        "step": ckpt.step,
        "graph_fingerprint": ckpt.graph_fingerprint,
        "config": _named("config", _json_value, ckpt.config),
        "history": _named("history", _json_value, ckpt.history),
        "rng_state": None if ckpt.rng_state is None
        else _named("rng_state", _json_value, _rng_json(ckpt.rng_state)),
        "optimizer": opt_doc,
        "params": {k: _tensor_doc(t) for k, t in _encode_params(ckpt.params).items()},
    }
    doc["checksum"] = _checksum(doc)
    _validate(CheckpointFile, doc)
    expand = {(), ("params",), ("optimizer",), ("optimizer", "state"), ("history",)}
    _atomic_write(path, [*_layout(doc, expand), "\n"])


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    limits: LoadLimits | None = None,
    allow_nonfinite: bool = False,
) -> Checkpoint:
    """Load a :class:`Checkpoint`, verifying its checksum (code ``"checksum"`` if it fails).

    ``allow_nonfinite`` applies to the arrays only; configuration values are
    always finite.
    """
    limits = limits or LoadLimits()
    with _in_file(path):
        doc = _read_doc(path, CHECKPOINT_FORMAT, limits)
        spec: CheckpointFile = _validate(CheckpointFile, doc)
        if _checksum(doc) != spec.checksum:
            raise GraphFormatError(
                "checksum",
                "the content does not match its checksum: the file is corrupted",
                "/checksum",
            )
        opt = spec.optimizer
        tensors = [(f"/params/{_pointer([k])[1:]}", t) for k, t in spec.params.items()]
        if opt is not None:
            tensors += [(f"/optimizer/state/{_pointer([p, s])[1:]}", t)
                        for p, slots in opt.state.items() for s, t in slots.items()]
        _check_sizes(tensors, limits)
        params = _decode_params(spec.params, "/params", allow_nonfinite)
        optimizer = None
        if opt is not None:
            optimizer = {
                "name": opt.name,
                "config": _copy_json(opt.config),
                "step": opt.step,
                "state": {
                    p: _decode_params(slots, f"/optimizer/state/{_pointer([p])[1:]}",
                                      allow_nonfinite)
                    for p, slots in opt.state.items()
                },
            }
        return Checkpoint(
            params=params,
            optimizer=optimizer,
            rng_state=_copy_json(spec.rng_state),
            epoch=spec.epoch,
            step=spec.step,
            config=_copy_json(spec.config),
            history=[dict(row) for row in spec.history],
            graph_fingerprint=spec.graph_fingerprint,
        )


# -- command line --------------------------------------------------------------------


def add_commands(sub: Any) -> None:
    """``graphdiff info``, ``graphdiff gradcheck`` and ``graphdiff schema``."""
    p = sub.add_parser("info", help="show a model file's nodes, parameters and plugins")
    p.add_argument("file", help="a model file written by graphdiff.save")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser("gradcheck", help="check a model file's gradients numerically")
    p.add_argument("file", help="a model file written by graphdiff.save")
    p.add_argument("--data", required=True,
                   help="a built-in data set (moons, xor, ...) or a .csv/.npz file")
    p.add_argument("--loss", help="the loss node (default: the one saved in the file)")
    p.add_argument("--n", type=int, default=200, help="size of a built-in data set")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of a built-in data set and of parameters the file lacks")
    p.add_argument("--directions", type=int, default=None,
                   help="check this many random directions instead of every entry")
    p.set_defaults(func=_cmd_gradcheck)
    p = sub.add_parser("schema", help="print the JSON Schema of model files")
    p.set_defaults(func=_cmd_schema)


def _cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(ModelFile.model_json_schema(), indent=2, sort_keys=True))
    return 0


def _node_label(n: Hashable) -> str:
    return repr(n) if isinstance(n, str) else str(n)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*header).rstrip(), fmt.format(*("-" * w for w in widths)).rstrip()] + [
        fmt.format(*r).rstrip() for r in rows
    ]


def _compiled(G: nx.DiGraph[Any], loss: Hashable | None) -> tuple[Any, str]:
    """Compile for ``info``: the saved loss, else the only sink; (None, why) if not."""
    from .compile import compile as compile_graph

    if loss is None:
        sinks = [n for n in G if G.out_degree(n) == 0]
        if len(sinks) != 1:
            return None, "no loss node saved and no single sink to compile"
        loss = sinks[0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return compile_graph(G, loss=loss), ""
    except GraphdiffError as e:
        return None, f"does not compile: {e}"


def _cmd_info(args: argparse.Namespace) -> int:
    G, params, loss = load_model(args.file)
    kind = "MultiDiGraph" if G.is_multigraph() else "DiGraph"
    out = [f"{args.file}: {kind}, {G.number_of_nodes()} nodes, {G.number_of_edges()} edges, "
           f"loss {_node_label(loss) if loss is not None else '(not saved)'}", ""]
    rows = [
        [_node_label(n), str(d.get("op", "-")),
         str(d.get("activation", "-")) if d.get("op") == "neuron" else "",
         str(G.in_degree(n)), str(G.out_degree(n))]
        for n, d in G.nodes(data=True)
    ]
    out += [*_table(["node", "op", "activation", "in", "out"], rows), ""]
    net, why = _compiled(G, loss)
    prows = []
    names = sorted(set(params) | set(net.params if net else ()))
    for name in names:
        spec = net.params.get(name) if net else None
        value = params.get(name)
        shape = spec.shape if spec is not None else np.shape(value)  # type: ignore[arg-type]
        uses = len(spec.uses) if spec is not None else 0
        stored = str(np.asarray(value).dtype) if value is not None else "(not saved)"
        prows.append([name, str(shape), str(math.prod(shape)), stored,
                      str(uses) if spec is not None else "(unused)",
                      "yes" if uses > 1 else ""])
    if prows:
        out += _table(["parameter", "shape", "size", "stored", "uses", "shared"], prows)
    total = sum(int(r[2]) for r in prows)
    shared = sum(1 for r in prows if r[5])
    out.append(f"total: {len(prows)} parameters ({shared} shared), {total} numbers"
               + (f"; {why}" if why else ""))
    used = {d[a] for _, d in G.nodes(data=True) for a in ("op", "activation") if a in d}
    ops = [get_op(name) for name in sorted(used - set(ENGINE_OPS))]
    extra = [f"{op.name} ({op.source})" for op in ops if op.source != BUILTIN_SOURCE]
    out.append("plugins: " + (", ".join(extra) if extra else "none"))
    print("\n".join(out))
    return 0


def loss_node(model: Model, given: str | None, file: str | os.PathLike[str]) -> Hashable:
    """The loss node to compile a loaded model with: ``given`` (command-line text;
    ``"7"`` names the int node 7 when there is no node ``"7"``) or the saved one."""
    loss = given if given is not None else model.loss
    if loss is None:
        raise GraphFormatError("missing_node", f"{file}: the file names no loss node; "
                               "pass --loss NODE")
    if loss not in model.graph and isinstance(loss, str) and loss.lstrip("-").isdigit():
        loss = int(loss)
    if loss not in model.graph:
        raise GraphFormatError("missing_node", f"--loss {_show(loss)} is not a node of {file}")
    return loss


def _cmd_gradcheck(args: argparse.Namespace) -> int:
    from .compile import compile as compile_graph
    from .data import feed, load_data
    from .numgrad import gradcheck

    model = load_model(args.file)
    G, stored = model.graph, model.params
    net = compile_graph(G, loss=loss_node(model, args.loss, args.file))
    params = {**net.init_params(seed=args.seed),
              **{k: v for k, v in stored.items() if k in net.params}}
    inputs = feed(net, load_data(args.data, n=args.n, seed=args.seed))
    report = gradcheck(net, params, inputs, directions=args.directions, seed=args.seed)
    print(report)
    bad = [r.name for r in report.rows if not r.ok]
    print(f"{len(report.rows) - len(bad)} of {len(report.rows)} checks pass"
          + (f"; mismatch: {', '.join(bad)}" if bad else ""))
    return 0 if report.ok else 1

