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
objects, integer or bool numpy values); the error names the node (or the
edge, or the graph: ``G.graph`` is kept like a node's attributes) and the
attribute. Tuples are stored as lists and numpy float scalars as plain floats;
numpy float arrays stay arrays (0-d ones included). In a parameter dict,
shape-``()`` arrays come back as numpy scalars of their dtype.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from typing import Any, NamedTuple

import networkx as nx
import numpy as np

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .graphspec import (
    check_sizes,
    decode_params,
    encode_params,
    from_file_spec,
    from_spec,
    graph_fingerprint,
    to_file_spec,
    to_spec,
)
from .jsonread import (
    GraphFormatError,
    check_counts,
    in_file,
    open_doc,
    pointer,
    show,
    validate_doc,
)
from .jsonwrite import atomic_write, doc_lines, model_text, tensor_doc
from .schema import FORMAT_VERSION, MODEL_FORMAT, PARAMS_FORMAT, LoadLimits, ModelFile, ParamsFile

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


class _Model(NamedTuple):
    graph: nx.DiGraph[Any]
    params: dict[str, Any]
    loss: int | str | None


class Model(_Model):
    """What :func:`load_model` returns: ``G, params, loss = graphdiff.load_model(path)``;
    ``.dtype`` is the float type the network was saved with, to compile it with
    (``"float64"`` or ``"float32"``; files from before dtypes say float64)."""

    dtype: str

    def __new__(
        cls, graph: nx.DiGraph[Any], params: dict[str, Any], loss: int | str | None,
        dtype: str = "float64",
    ) -> Model:
        self = super().__new__(cls, graph, params, loss)
        self.dtype = dtype
        return self


def save(
    path: str | os.PathLike[str],
    G: nx.DiGraph[Any],
    params: Mapping[str, Any] | None = None,
    *,
    loss: Hashable | None = None,
    dtype: Any = None,
) -> None:
    """Save a graph, and optionally its parameters and loss node, to a JSON file.

    The write is atomic: a failure or crash leaves the previous file as it was;
    concurrent saves to one path all succeed (the last one wins); a symbolic link
    is written through to the file it points to. A path that cannot be written
    raises :class:`~graphdiff.errors.FileError` naming it.
    ``loss`` (a node) is recorded so that tools (``graphdiff info``,
    ``graphdiff gradcheck``) know what to compile, and so is ``dtype``, the float
    type to compile it with: ``"float32"`` (or ``np.float32``) or float64; by default
    that of ``params`` when they are a network's ``Params`` (a float32 network's
    file loads back float32, :attr:`Model.dtype`), else float64. See :func:`to_spec`
    for what is refused.

    >>> import os, tempfile, networkx as nx, graphdiff
    >>> path = os.path.join(tempfile.mkdtemp(), "m.json")
    >>> graphdiff.save(path, nx.DiGraph([(1, 2)]))
    >>> graphdiff.load(path)[0].edges
    OutEdgeView([(1, 2)])
    """
    arrays: dict[str, np.ndarray] = {}
    atomic_write(path, model_text(to_file_spec(G, params, loss, arrays, dtype), arrays))


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
        ``location`` where); :class:`~graphdiff.errors.FileError` (an OSError) when
        it cannot be read, or is not a regular file (FIFOs and devices are refused
        before they are opened for reading).
    """
    limits = LoadLimits() if limits is None else limits
    if not isinstance(limits, LoadLimits):
        raise GraphFormatError("bad_type", f"limits must be a LoadLimits, got "
                               f"{type(limits).__name__}")
    with in_file(path), open_doc(path, MODEL_FORMAT, limits) as (doc, payloads):
        check_counts(doc, limits)
        spec: ModelFile = validate_doc(ModelFile, doc)
        del doc
        G, params = from_file_spec(spec, limits, allow_nonfinite, payloads, share=True)
    return Model(G, params, spec.loss, spec.dtype)


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
    arrays: dict[str, np.ndarray] = {}
    doc = {
        "format": PARAMS_FORMAT,
        "format_version": FORMAT_VERSION,
        "params": {k: tensor_doc(t, arrays[k]) for k, t in encode_params(params, arrays).items()},
    }
    atomic_write(path, [*doc_lines(doc, {(), ("params",)}), "\n"])


def load_params(
    path: str | os.PathLike[str],
    *,
    limits: LoadLimits | None = None,
    allow_nonfinite: bool = False,
) -> dict[str, Any]:
    """Load a parameter dict saved by :func:`save_params` (checked like :func:`load`)."""
    limits = LoadLimits() if limits is None else limits
    if not isinstance(limits, LoadLimits):
        raise GraphFormatError("bad_type", f"limits must be a LoadLimits, got "
                               f"{type(limits).__name__}")
    with in_file(path), open_doc(path, PARAMS_FORMAT, limits) as (doc, payloads):
        spec: ParamsFile = validate_doc(ParamsFile, doc)
        del doc
        check_sizes(((f"/params/{pointer([k])[1:]}", t) for k, t in spec.params.items()),
                     limits, payloads)
        return decode_params(spec.params, "/params", allow_nonfinite, payloads)



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
        raise GraphFormatError("missing_node", f"--loss {show(loss)} is not a node of {file}")
    return loss
