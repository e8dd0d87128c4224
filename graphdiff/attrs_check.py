"""Checks compile makes on the attributes of nodes and edges, beyond their types.

* numbers a float64 array cannot hold: op attributes (``i``, ``axis``, ...) beyond
  int64 and parameter shapes beyond what numpy can allocate are refused naming the
  node, instead of failing later inside numpy;
* misspellings: an attribute compile does not read that is close to one it reads
  for that node's kind or op gives a ``GraphWarning`` (see :func:`warn_misspelled`).

>>> check_numbers("n", {"i": 10**40})
Traceback (most recent call last):
...
graphdiff.errors.GraphError: node 'n': attribute 'i' = (an int of 133 bits) does not fit in int64
"""

from __future__ import annotations

import difflib
import math
import sys
import warnings
from collections.abc import Hashable, Sequence
from itertools import compress
from operator import attrgetter, not_
from typing import Any

from .errors import GraphError
from .plan import NeuronStep, OpStep, Step

__all__ = ["USER_ATTRS", "check_numbers", "check_size", "show_number", "warn_misspelled"]

INT_MAX = 2**63 - 1  # numpy's int64: indices, axes and sizes beyond it overflow


def show_number(x: Any) -> str:
    """``repr(x)``, or for an int too long to print usefully, its size in bits."""
    if isinstance(x, int) and abs(x) > 10**30:
        return f"{'-' if x < 0 else ''}(an int of {x.bit_length()} bits)"
    if isinstance(x, (tuple, list)) and len(x) <= 8:
        inner = ", ".join(map(show_number, x))
        return f"({inner},)" if isinstance(x, tuple) and len(x) == 1 else (
            f"({inner})" if isinstance(x, tuple) else f"[{inner}]")
    text = repr(x)
    return text if len(text) <= 80 else text[:77] + "..."


def _too_large(x: Any) -> bool:
    if isinstance(x, int):
        return abs(x) > INT_MAX
    if isinstance(x, (tuple, list)):
        return any(map(_too_large, x))
    return False


def check_numbers(node: Hashable, attrs: dict[str, Any]) -> dict[str, Any]:
    """``attrs`` (an op's validated attributes), refused if an int in them is beyond int64."""
    for k, x in attrs.items():
        if _too_large(x):
            raise GraphError(
                f"node {node!r}: attribute {k!r} = {show_number(x)} does not fit in int64"
            )
    return attrs


def check_size(node: Hashable, shape: tuple[int, ...]) -> None:
    """Refuse a parameter shape whose float64 array numpy could never allocate."""
    if shape and math.prod(shape) > sys.maxsize // 8:
        raise GraphError(
            f"node {node!r}: 'shape' {show_number(shape)} has more entries than a float64 "
            f"array can hold ({sys.maxsize // 8})"
        )


# -- misspelled attributes ---------------------------------------------------------------

# Attributes people keep on nodes and edges for themselves (drawing, notes): never
# taken for a misspelling, however close to a name compile reads.
USER_ATTRS = frozenset({
    "pos", "label", "labels", "color", "colour", "title", "name", "description", "comment",
    "note", "notes", "layer", "group", "style", "tag", "tags", "kind", "type", "size", "width",
    "height", "font", "alpha", "marker", "linestyle", "xlabel",
})
CUTOFF = 0.75  # difflib ratio: 'bais' -> 'bias' (0.75), 'wieght' -> 'weight' (0.83)

_NODE_ATTRS: dict[str, tuple[str, ...]] = {
    "input": ("op",),
    "param": ("op", "shape", "value", "init"),
    "const": ("op", "value"),
}
_NEURON_EDGE = frozenset({"param", "weight"})
_OP_EDGE = frozenset({"port"})


def warn_misspelled(G: Any, steps: Sequence[Step], category: type[Warning]) -> None:
    """A warning of ``category`` (compile's ``GraphWarning``) for each attribute of a compiled node
    or of an edge into one that compile does not read and that is close to one it
    does for that kind of node or op (``activaton`` -> ``activation``, ``scal`` on
    sin -> ``scale``, ``wieght``/``parm`` on edges into neurons), in step order: a
    node's attributes, then its in-edges'.

    Most graphs have no such attribute anywhere, so the steps worth a look are found
    first, in passes that run in C: nodes holding an attribute name that is close to
    a name some kind of step in the graph reads without being read by it, and nodes
    with an in-edge that has attributes at all.
    """
    nodes, pred, multi = G._node, G._pred, G.is_multigraph()
    # one step of each kind tells what that kind reads (picked in C: dict(zip) keeps one)
    neurons = list(filter(NeuronStep.__instancecheck__, steps))
    op_steps = list(filter(OpStep.__instancecheck__, steps))
    some = [
        *dict(zip(map(type, steps), steps, strict=True)).values(),
        *dict(zip(map(id, map(attrgetter("act"), neurons)), neurons, strict=True)).values(),
        *dict(zip(map(id, map(attrgetter("op"), op_steps)), op_steps, strict=True)).values(),
    ]
    names_of = {_kind(s): _known_names(s) for s in some}
    on_steps = list(map(attrgetter("node"), steps))
    datas = list(map(nodes.__getitem__, on_steps))
    risky = {
        k for k in set().union(*datas)
        if isinstance(k, str) and k not in USER_ATTRS and not k.startswith("_")
        and any(k not in names and _close(k, names) for names in names_of.values())
    }
    if multi:
        look = {v for v, into in pred.items() if any(map(any, map(dict.values, into.values())))}
    else:  # nodes with an in-edge that has attributes
        look = set(compress(pred, map(any, map(dict.values, pred.values()))))
    if risky:
        look.update(compress(on_steps, map(not_, map(risky.isdisjoint, datas))))
    for s in compress(steps, map(look.__contains__, on_steps)):
        names = names_of[_kind(s)]
        data = nodes[s.node]
        if not names.issuperset(data):
            _check(data, names, f"node {s.node!r}", _reader(s), category)
        if isinstance(s, NeuronStep):
            edge_known = _NEURON_EDGE
        elif isinstance(s, OpStep):
            edge_known = _OP_EDGE
        else:
            continue
        into = pred[s.node]
        if multi:
            edges = [(u, d) for u, kd in into.items() for d in kd.values() if d]
        else:
            edges = [(u, d) for u, d in into.items() if d]
        reader = "an edge into a neuron" if edge_known is _NEURON_EDGE else "an edge into an op"
        for u, d in edges:
            if not edge_known.issuperset(d):
                _check(d, edge_known, f"edge {u!r} -> {s.node!r}", reader, category)


def _kind(s: Step) -> tuple[Any, ...]:
    """What decides the attribute names a step reads: its kind and its activation or op."""
    if isinstance(s, NeuronStep):
        return ("neuron", s.act.name if s.act is not None else None)
    if isinstance(s, OpStep):
        return ("op", s.op.name if s.op is not None else None)
    return ("node", type(s).__name__)


def _known_names(s: Step) -> frozenset[str]:
    if isinstance(s, NeuronStep):
        fields = tuple(s.act.attrs.model_fields) if s.act is not None else ()
        return frozenset({"op", "activation", "bias", *fields})
    if isinstance(s, OpStep):
        fields = tuple(s.op.attrs.model_fields) if s.op is not None else ()
        return frozenset({"op", *fields})
    kind = type(s).__name__.removesuffix("Step").lower()
    return frozenset(_NODE_ATTRS.get(kind, ("op",)))


def _reader(s: Step) -> str:
    if isinstance(s, NeuronStep) and s.act is not None:
        return f"a neuron with activation {s.act.name!r}"
    if isinstance(s, OpStep) and s.op is not None:
        return f"op {s.op.name!r}"
    return f"a {type(s).__name__.removesuffix('Step').lower()} node"


def _check(data: dict[Any, Any], names: frozenset[str], where: str, reader: str,
           category: type[Warning]) -> None:
    for k in data:
        if k in names or not isinstance(k, str) or k in USER_ATTRS or k.startswith("_"):
            continue
        close = _close(k, names)
        if close:
            warnings.warn(
                f"{where}: attribute {k!r} is not read by {reader} and is ignored; "
                f"did you mean {close[0]!r}?",
                category,
                stacklevel=5,
            )


def _close(k: str, names: frozenset[str]) -> list[str]:
    """The name of ``names`` that ``k`` most likely misspells (none: ``[]``)."""
    return difflib.get_close_matches(k, sorted(names), n=1, cutoff=CUTOFF)
