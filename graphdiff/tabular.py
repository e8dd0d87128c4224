"""From a table of named columns to a network's inputs and targets, as ``graphdiff train``
does it (the Python API stays explicit: :func:`graphdiff.fit` refuses labels outside the
loss's domain instead of mapping them).

- **The label column**: ``label`` if given, else the loss's target input's name, then
  ``t``, ``y``, ``label``, ``target`` (a file without a header row: its last column).
- **The features**: the network's other inputs take the columns of their names; an
  op-notation input ``x`` takes every feature column, in order, as a matrix; inputs
  ``x1``, ``x2``, ... (or any inputs, with ``features`` given) take the feature
  columns by position. Columns that feed nothing are reported, not dropped silently.
- **The labels**, by the loss's target domain (``Op.targets``): for a -1/+1 loss a
  column with two distinct values is mapped, the smaller (or first in sort order)
  to -1; for softmax cross-entropy class names (and numbers that are not class
  indices from 0) are encoded 0..K-1 in sort order;
  ``labels`` sets the order explicitly (``["NEG", "POS"]``). Every mapping made is
  reported.

>>> import graphdiff
>>> net = graphdiff.compile(graphdiff.mlp([2, 1], loss="logistic"), loss="E")
>>> table = {"b": np.array([1.0, 2.0]), "a": np.array([3.0, 4.0]),
...          "y": np.array(["no", "yes"]), "id": np.array([7.0, 8.0])}
>>> got = prepare(net, table, features=["a", "b"])
>>> print("\\n".join(got.notes))
label column: 'y'
features: columns 'a', 'b' -> inputs 'x1', 'x2' (by position)
ignored column(s): 'id' (not a feature)
labels: 'no' -> -1, 'yes' -> +1 (--labels NEG,POS to choose)
>>> got.inputs["t"], got.inputs["x1"]
(array([-1.,  1.]), array([3., 4.]))
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from .data import DataError
from .predict import loss_op, operands

if TYPE_CHECKING:
    from .network import Network

__all__ = ["TARGET_NAMES", "Prepared", "encode_labels", "prepare"]

Array = NDArray[np.float64]

TARGET_NAMES = ("t", "y", "label", "target")
_XK = re.compile(r"x[1-9][0-9]*")


@dataclass
class Prepared:
    """What :func:`prepare` gives: the network's ``inputs`` (targets included), the
    ``notes`` to show the user, and the label ``mapping`` made (value -> target)."""

    inputs: dict[Hashable, Array]
    notes: list[str] = field(default_factory=list)
    mapping: dict[str, float] = field(default_factory=dict)


def _quoted(names: Sequence[object]) -> str:
    return ", ".join(repr(str(n)) for n in names)


def _show(v: object) -> str:
    return f"{v:g}" if isinstance(v, (float, np.floating)) else repr(str(v))


def _is_text(a: Any) -> bool:
    return np.asarray(a).dtype.kind in "US"


def label_column(net: Network, table: Mapping[str, Any], label: str | None) -> str:
    """The column holding the targets (see the module docstring)."""
    names = list(table)
    if label is not None:
        if label not in table:
            raise DataError(f"--label {label!r} is not a column; the columns are {names!r}")
        return label
    target = str(operands(net)[1])
    for name in (target, *TARGET_NAMES):
        if name in table:
            return name
    if all(n.isdigit() for n in names):  # no header row: the last column, as load_data
        return names[-1]
    raise DataError(
        f"no label column: none of {_quoted([target, *TARGET_NAMES])} is a column; "
        f"the columns are {names!r}; name it with --label COLUMN"
    )


def _numbers(table: Mapping[str, Any], column: str) -> Array:
    values = np.asarray(table[column])
    if _is_text(values):
        bad = next(v for v in values if _number(v) is None)
        raise DataError(f"column {column!r} holds text ({str(bad)!r}), not numbers")
    return values.astype(np.float64)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def encode_labels(
    net: Network, values: Any, column: str, labels: Sequence[str] | None = None
) -> tuple[Array, dict[str, float]]:
    """The targets for the loss's domain from a label column, and the mapping made
    (empty when the values are used as they are)."""
    op = loss_op(net)
    domain = op.targets if op is not None else None
    values = np.asarray(values)
    text = _is_text(values)
    what = f"{op.name if op else 'the loss'} (loss node {net.loss!r})"
    if domain not in ("signs", "classes"):
        if labels:
            raise DataError(f"--labels maps class labels; {what} takes numbers as they are")
        return _numbers({column: values}, column), {}
    distinct = sorted(set(values.tolist()))
    if labels:
        order = _explicit(values, text, labels, column)
        if domain == "signs" and len(order) != 2:
            raise DataError(f"--labels for {what} names two labels, NEG,POS; got {len(order)}")
    elif not text and _usable(domain, distinct):
        return values.astype(np.float64), {}
    else:
        order = distinct
    if domain == "signs" and len(order) != 2:
        shown = "{" + ", ".join(_show(v) for v in order[:6]) + (", ..." if len(order) > 6 else "")
        raise DataError(
            f"{what} tells two classes apart (targets -1/+1), but column {column!r} holds "
            f"{len(order)} distinct value(s) {shown}}}; use softmax_cross_entropy for more "
            "classes"
        )
    codes = [-1.0, 1.0] if domain == "signs" else [float(k) for k in range(len(order))]
    mapping = {_show(v): c for v, c in zip(order, codes, strict=True)}
    lookup = dict(zip(order, codes, strict=True))
    return np.array([lookup[v] for v in values.tolist()], dtype=np.float64), mapping


def _usable(domain: str, distinct: list[float]) -> bool:
    """Are numeric labels already targets: -1/+1, or class indices 0, 1, ...?"""
    if domain == "signs":
        return set(distinct) <= {-1.0, 1.0}
    # class indices start at 0: labels 1..K (as many data sets number them) are encoded
    return all(float(v).is_integer() for v in distinct) and distinct[0] == 0


def _explicit(values: Any, text: bool, labels: Sequence[str], column: str) -> list[Any]:
    order: list[Any] = []
    for token in labels:
        v = token if text else _number(token)
        if v is None:
            raise DataError(f"--labels: {token!r} is not a number, and column {column!r} "
                            "holds numbers")
        order.append(v)
    if len(set(order)) != len(order):
        raise DataError(f"--labels names a label twice: {list(labels)!r}")
    missing = sorted(set(values.tolist()) - set(order))
    if missing:
        raise DataError(
            f"column {column!r} holds label(s) {', '.join(_show(v) for v in missing[:6])} "
            f"that --labels {','.join(labels)} does not name"
        )
    return order


def prepare(
    net: Network,
    table: Mapping[str, Any],
    *,
    label: str | None = None,
    features: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
) -> Prepared:
    """The network's inputs from a table of named columns (see the module docstring)."""
    target = operands(net)[1]
    if target not in net.inputs:
        raise DataError(
            f"the loss {net.loss!r} takes its target from node {target!r}, which is not an "
            "input: there is no column to feed it"
        )
    column = label_column(net, table, label)
    notes = [f"label column: {column!r}"]
    if features is not None:
        unknown = [c for c in features if c not in table]
        if unknown:
            raise DataError(f"--features: no column(s) {unknown!r}; the columns are "
                            f"{list(table)!r}")
        if column in features:
            raise DataError(f"--features names the label column {column!r}")
        candidates = list(features)
    else:
        candidates = [c for c in table if c != column]
    wanted = [n for n in net.inputs if n != target]
    names = [str(n) for n in wanted]
    matrix = False  # one input 'x' takes every feature column
    if all(n in candidates for n in names):
        used = names
        if names != candidates[: len(names)] or len(names) != len(candidates):
            notes.append(f"features: columns {_quoted(used)} -> the inputs of those names")
    elif names == ["x"]:
        used, matrix = candidates, True
        notes.append(f"features: columns {_quoted(used)} -> input 'x' (in this order)")
    elif len(names) == len(candidates) and (
        features is not None or all(_XK.fullmatch(n) for n in names)
    ):
        used = candidates
        notes.append(f"features: columns {_quoted(used)} -> inputs {_quoted(names)} "
                     "(by position)")
    else:
        lacking = [n for n in names if n not in candidates]
        raise DataError(
            f"the model's input(s) {lacking!r} match no column; the feature columns are "
            f"{candidates!r}; name the columns for the inputs {names!r}, in this order, "
            "with --features a,b,..."
        )
    ignored = [c for c in table if c != column and c not in used]
    if ignored:
        why = "not a feature" if features is not None else "no input of that name"
        notes.append(f"ignored column(s): {_quoted(ignored)} ({why})")
    if not used:
        raise DataError("no feature columns to feed the model's inputs")
    X = np.column_stack([_numbers(table, c) for c in used])
    inputs: dict[Hashable, Array] = (
        {wanted[0]: X} if matrix else {n: X[:, k] for k, n in enumerate(wanted)}
    )
    t, mapping = encode_labels(net, table[column], column, labels)
    if mapping:
        op = loss_op(net)
        signs = op is not None and op.targets == "signs"
        shown = ", ".join(f"{k} -> {v:+g}" if signs else f"{k} -> {v:g}"
                          for k, v in list(mapping.items())[:10])
        more = f", ... ({len(mapping)} classes)" if len(mapping) > 10 else ""
        choose = "NEG,POS" if signs else "A,B,..."
        notes.append(f"labels: {shown}{more} (--labels {choose} to choose)")
    inputs[target] = t
    return Prepared(inputs, notes, mapping)
