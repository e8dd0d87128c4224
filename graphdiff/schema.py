"""The file format: pydantic models of model, parameter and checkpoint files.

These models describe the JSON documents :mod:`graphdiff.io` writes and reads.
They are strict (no coercion: ``true`` is never a number, ``"3"`` never an int),
forbid unknown keys everywhere, and are frozen. :mod:`graphdiff.io` parses the
bytes itself (size, depth, duplicate keys and non-finite numbers are refused
before these models see anything) and checks the declared sizes against a
:class:`LoadLimits` before any array is allocated.

Arrays are :class:`TensorSpec` objects: a dtype from an allowlist, a shape, and
the little-endian bytes in standard base64.

>>> TensorSpec(dtype="float64", shape=[2], data="AAAAAAAA8D8AAAAAAAAAQA==").shape
[2]
>>> ModelFile.model_json_schema()["properties"]["format_version"]["pattern"]
'^[0-9]{1,4}\\\\.[0-9]{1,4}$'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    PlainValidator,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from ._version import __version__ as __version__  # graphdiff's own (the package re-exports it)

__all__ = [
    "CHECKPOINT_FORMAT",
    "DTYPES",
    "FORMAT_VERSION",
    "MODEL_FORMAT",
    "PARAMS_FORMAT",
    "CheckpointFile",
    "EdgeSpec",
    "GraphSpec",
    "LayoutSpec",
    "LayoutTensorSpec",
    "LoadLimits",
    "ModelFile",
    "NodeSpec",
    "OptimizerSpec",
    "ParamsFile",
    "PluginSpec",
    "TensorSpec",
]

FORMAT_VERSION = "1.0"
MODEL_FORMAT = "graphdiff"
PARAMS_FORMAT = "graphdiff-params"
CHECKPOINT_FORMAT = "graphdiff-checkpoint"
# dtype name in the file -> numpy dtype string (always little-endian).
DTYPES = {"float64": "<f8", "float32": "<f4"}

MAX_NAME_CHARS = 1024  # node ids, parameter names, attribute names
MAX_RANK_SCHEMA = 64  # the static bound; LoadLimits.max_rank is the one applied
INT64 = 2**63
VERSION_PATTERN = r"^[0-9]{1,4}\.[0-9]{1,4}$"
# Plain names only: no dots, colons, slashes, spaces or non-ASCII, so an op name can
# never read as a module path or a look-alike of a registered name.
OP_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$"
SHA256_PATTERN = r"^sha256:[0-9a-f]{64}$"
DIST_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,99}$"
DIST_VERSION_PATTERN = r"^[A-Za-z0-9.+!_\-]{1,64}$"


@dataclass(frozen=True)
class LoadLimits:
    """Bounds a file must respect before anything large is parsed or allocated.

    The defaults admit real models (2·10^8 float64 numbers, a 2 GiB file); raise
    one deliberately for a bigger model you trust:
    ``graphdiff.load(path, limits=LoadLimits(max_elements=10**9, ...))``.

    Attributes
    ----------
    max_file_bytes : file size, checked before reading.
    max_depth : nesting of JSON arrays and objects, checked before parsing.
    max_containers : JSON arrays and objects in the file, counted before parsing
        (a node takes two or three).
    max_json_values : JSON values in the file, object keys and containers included,
        counted before parsing (this bounds the parser's memory and time: a value
        costs about 100 bytes in Python; a node with a few attributes takes 5 to 10,
        an array one per axis and 6 more). Raise it for graphs of more than about
        10^5 nodes.
    max_text_bytes : characters of the file outside array payloads (the string
        values of ``"data"`` keys), counted before parsing.
    max_nodes, max_edges : graph size.
    max_rank : axes of one array.
    max_tensor_elements : numbers in one array (and the length of any of its axes).
    max_elements : numbers in all arrays of the file together.

    >>> LoadLimits().max_elements >= 10**8
    True
    >>> LoadLimits(max_nodes=10).max_nodes
    10
    """

    max_file_bytes: int = 2 * 1024**3
    max_depth: int = 32
    max_containers: int = 2 * 10**7
    max_json_values: int = 10**6
    max_text_bytes: int = 32 * 1024**2
    max_nodes: int = 10**6
    max_edges: int = 4 * 10**6
    max_rank: int = 32
    max_tensor_elements: int = 2 * 10**8
    max_elements: int = 2 * 10**8


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


def _node_id(v: Any) -> int | str:
    # A plain validator: the union int | str in strict mode would report one error
    # per branch; one error with its own code is clearer.
    if type(v) is int and -INT64 <= v < INT64:
        return v
    if type(v) is str and 0 < len(v) <= MAX_NAME_CHARS:
        return v
    raise PydanticCustomError(
        "bad_id",
        "a node id must be a non-empty string of at most {n} characters or a 64-bit "
        "integer",
        {"n": MAX_NAME_CHARS},
    )


NodeId = Annotated[
    int | str,
    PlainValidator(_node_id),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": -INT64, "maximum": INT64 - 1},
                {"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS},
            ]
        }
    ),
]
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]
OpName = Annotated[str, Field(pattern=OP_NAME_PATTERN)]
Dim = Annotated[int, Field(ge=0)]


class TensorSpec(_Strict):
    """An array: ``data`` is standard base64 of the little-endian bytes, C order."""

    dtype: Literal["float64", "float32"]
    shape: list[Dim] = Field(max_length=MAX_RANK_SCHEMA)
    data: str


class NodeSpec(_Strict):
    """A node: its id, its JSON attributes, and its array-valued attributes."""

    id: NodeId
    attrs: dict[Name, JsonValue] = Field(default_factory=dict)
    arrays: dict[Name, TensorSpec] = Field(default_factory=dict)


class EdgeSpec(_Strict):
    """An edge; ``key`` only in multigraphs (the networkx edge key)."""

    source: NodeId
    target: NodeId
    key: NodeId | None = None
    attrs: dict[Name, JsonValue] = Field(default_factory=dict)
    arrays: dict[Name, TensorSpec] = Field(default_factory=dict)


class GraphSpec(_Strict):
    """The networkx graph: always directed; nodes in canonical topological order;
    ``attrs`` and ``arrays``: the graph's own attributes (``G.graph``), as a node's."""

    directed: Literal[True] = True
    multigraph: bool = False
    attrs: dict[Name, JsonValue] = Field(default_factory=dict)
    arrays: dict[Name, TensorSpec] = Field(default_factory=dict)
    nodes: list[NodeSpec]
    edges: list[EdgeSpec]


class PluginSpec(_Strict):
    """Where a non-built-in op came from when the file was saved (``None``: unknown)."""

    distribution: Annotated[str, Field(pattern=DIST_PATTERN)] | None = None
    version: Annotated[str, Field(pattern=DIST_VERSION_PATTERN)] | None = None


Version = Annotated[str, Field(pattern=VERSION_PATTERN)]


class ModelFile(_Strict):
    """A model file: the graph, the loss node to compile, the parameters, the plugins."""

    format: Literal["graphdiff"] = "graphdiff"
    format_version: Version = FORMAT_VERSION
    graph: GraphSpec
    loss: NodeId | None = None
    # the float type to compile the network with; written only for float32 (a file
    # without it, as every file before it, is float64)
    dtype: Literal["float64", "float32"] = "float64"
    params: dict[Name, TensorSpec] | None = None
    ops: dict[OpName, PluginSpec] = Field(default_factory=dict)


class ParamsFile(_Strict):
    """Parameters alone (:func:`graphdiff.save_params`)."""

    format: Literal["graphdiff-params"] = "graphdiff-params"
    format_version: Version = FORMAT_VERSION
    params: dict[Name, TensorSpec]


class OptimizerSpec(_Strict):
    """An optimizer's ``state_dict()`` and its step: per-parameter slots of arrays
    (``state``), or each slot as one vector in the checkpoint's ``layout`` (``slots``)."""

    name: Annotated[str, Field(min_length=1, max_length=64)]
    config: dict[Name, JsonValue] = Field(default_factory=dict)
    step: Dim = 0
    state: dict[Name, dict[Name, TensorSpec]] = Field(default_factory=dict)
    slots: dict[Name, TensorSpec] | None = None


class LayoutTensorSpec(_Strict):
    """A tensor parameter of a :class:`LayoutSpec`: its name and shape."""

    name: Name
    shape: list[Dim] = Field(max_length=MAX_RANK_SCHEMA)


class LayoutSpec(_Strict):
    """Where each parameter lives in a checkpoint's ``vector``: the scalars first, in
    this order, then each tensor's entries in C order (:class:`graphdiff.params.Layout`)."""

    scalars: list[Name]
    tensors: list[LayoutTensorSpec]


class NodeStats(_Strict):
    """One node's training diagnostics in a checkpoint's history row (graphdiff.diagnostics)."""

    node: NodeId
    delta_rms: float
    dead: float
    saturated: float


class CheckpointFile(_Strict):
    """A training checkpoint; ``checksum`` covers every other field (see graphdiff.io)."""

    format: Literal["graphdiff-checkpoint"] = "graphdiff-checkpoint"
    format_version: Version = FORMAT_VERSION
    checksum: Annotated[str, Field(pattern=SHA256_PATTERN)]
    # the parameters: ``layout`` and one 1-D ``vector`` holding them all (what fit
    # writes), or ``params``, one entry per name (fit's files before issue 12)
    params: dict[Name, TensorSpec] | None = None
    layout: LayoutSpec | None = None
    vector: TensorSpec | None = None
    optimizer: OptimizerSpec | None = None
    rng_state: dict[Name, JsonValue] | None = None
    epoch: Dim = 0
    step: Dim = 0
    config: dict[Name, JsonValue] = Field(default_factory=dict)
    # a row's "nodes" (fit(diagnostics=True)) is a list: node ids may be ints
    history: list[dict[Name, float | list[NodeStats]]] = Field(default_factory=list)
    graph_fingerprint: Annotated[str, Field(pattern=SHA256_PATTERN)] | None = None
