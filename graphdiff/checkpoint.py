"""Training checkpoints: parameters, optimizer state, random state, progress and
history in one JSON file, with a SHA-256 checksum of its content."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .graphspec import (
    check_sizes,
    copy_json,
    decode,
    decode_params,
    encode,
    encode_params,
    json_value,
    named,
)
from .jsonread import GraphFormatError, in_file, pointer, read_doc, show, validate_doc
from .jsonwrite import atomic_write, doc_lines, tensor_doc
from .params import Layout, Params
from .schema import (
    CHECKPOINT_FORMAT,
    DTYPES,
    FORMAT_VERSION,
    CheckpointFile,
    LayoutSpec,
    LoadLimits,
    TensorSpec,
)

__all__ = ["Checkpoint", "load_checkpoint", "save_checkpoint"]


@dataclass
class Checkpoint:
    """Everything needed to resume training exactly.

    Attributes
    ----------
    params : parameter name -> array (or numpy scalar), float64 or float32. A
        :class:`~graphdiff.params.Params` (what ``fit`` writes) is stored as its
        layout and one vector, of its dtype, and loads back as one.
    optimizer : the optimizer's ``state_dict()``: ``{"name": str, "config": JSON
        dict, "step": int, "state": {param: {slot: array}}}``, or with ``params`` a
        ``Params``, ``"slots": {slot: vector}`` in its layout instead of ``"state"``
        (``state_dict(params.layout)``, what ``fit`` writes); or ``None``.
    rng_state : ``rng.bit_generator.state`` (integer arrays in it are stored as
        lists, which numpy accepts back), or ``None``.
    epoch, step : where training stopped.
    config : the training configuration (a JSON dict: hyperparameters, data spec, ...).
    history : one dict of floats per epoch (``{"loss": ..., "accuracy": ...}``);
        a row may also hold ``"nodes"``, node -> ``{"delta_rms": ..., "dead": ...,
        "saturated": ...}`` (``fit(..., diagnostics=True)``), kept in its order.
    graph_fingerprint : :func:`graph_fingerprint` of the trained graph, so that
        resuming on another graph can be refused.

    Floats in ``config`` and ``history`` must be finite. A loaded checkpoint has
    numpy scalars where shape-``()`` arrays were saved.
    """

    params: Mapping[str, Any]
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


def _rows(history: Any) -> list[Any]:
    if not isinstance(history, (list, tuple)):
        raise GraphFormatError("bad_type", f"history must be a list of dicts, got {show(history)}")
    return list(history)


def _row_doc(row: Mapping[str, Any]) -> dict[str, Any]:
    """A history row for the file: diagnostics become a list (JSON keys are only text)."""
    if not isinstance(row, Mapping):
        raise GraphFormatError("bad_type", f"history rows must be dicts, got {show(row)}")
    nodes = row.get("nodes")
    if not isinstance(nodes, Mapping):
        return dict(row)
    if not all(isinstance(stats, Mapping) for stats in nodes.values()):
        raise GraphFormatError("bad_type", "history: the diagnostics of each node must be a dict")
    return {**row, "nodes": [{"node": n, **stats} for n, stats in nodes.items()]}


def _row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A history row from the file (the inverse of :func:`_row_doc`)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, list):
            value = {
                s.node: {"delta_rms": s.delta_rms, "dead": s.dead, "saturated": s.saturated}
                for s in value
            }
        out[key] = value
    return out


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
    params = ckpt.params
    layout = params.layout if isinstance(params, Params) else None
    opt = ckpt.optimizer
    opt_doc = None
    if opt is not None:
        try:
            opt_doc = {
                "name": opt.get("name"),
                "config": named("optimizer config", json_value, opt.get("config") or {}),
                "step": opt.get("step", 0),
            }
            if opt.get("slots") is not None:
                opt_doc["slots"] = _slots_doc(opt["slots"], layout)
            else:
                opt_doc["state"] = {
                    p: {s: tensor_doc(named(f"optimizer state {p!r}/{s!r}", encode, a))
                        for s, a in sorted(slots.items())}
                    for p, slots in sorted((opt.get("state") or {}).items())
                }
        except (AttributeError, TypeError):  # not the dicts of an optimizer's state_dict()
            raise GraphFormatError(
                "bad_type", f"optimizer must be an optimizer's state_dict(), got {show(opt)}"
            ) from None
    doc: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "format_version": FORMAT_VERSION,
        "checksum": "",
        "epoch": ckpt.epoch,
        "step": ckpt.step,
        "graph_fingerprint": ckpt.graph_fingerprint,
        "config": named("config", json_value, ckpt.config),
        "history": named("history", json_value, [_row_doc(row) for row in _rows(ckpt.history)]),
        "rng_state": None if ckpt.rng_state is None
        else named("rng_state", json_value, _rng_json(ckpt.rng_state)),
        "optimizer": opt_doc,
    }
    if isinstance(params, Params):
        doc["layout"] = _layout_doc(params.layout)
        doc["vector"] = tensor_doc(named("the parameter vector", encode, params.vector))
    else:
        doc["params"] = {k: tensor_doc(t) for k, t in encode_params(params).items()}
    try:
        doc["checksum"] = _checksum(doc)
    except (TypeError, ValueError):  # a field that is not JSON (epoch=frozenset(), ...)
        validate_doc(CheckpointFile, doc)  # names the field
        raise GraphFormatError("bad_type", "the checkpoint holds values that are not "
                               "JSON data") from None
    validate_doc(CheckpointFile, doc)
    expand = {(), ("params",), ("optimizer",), ("optimizer", "state"), ("optimizer", "slots"),
              ("history",), ("layout",)}
    atomic_write(path, [*doc_lines(doc, expand), "\n"])


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
    limits = LoadLimits() if limits is None else limits
    if not isinstance(limits, LoadLimits):
        raise GraphFormatError("bad_type", f"limits must be a LoadLimits, got "
                               f"{type(limits).__name__}")
    with in_file(path):
        doc = read_doc(path, CHECKPOINT_FORMAT, limits)
        spec: CheckpointFile = validate_doc(CheckpointFile, doc)
        if _checksum(doc) != spec.checksum:
            raise GraphFormatError(
                "checksum",
                "the content does not match its checksum: the file is corrupted",
                "/checksum",
            )
        opt = spec.optimizer
        tensors = [(f"/params/{pointer([k])[1:]}", t) for k, t in (spec.params or {}).items()]
        if spec.vector is not None:
            tensors.append(("/vector", spec.vector))
        if opt is not None:
            tensors += [(f"/optimizer/state/{pointer([p, s])[1:]}", t)
                        for p, slots in opt.state.items() for s, t in slots.items()]
            tensors += [(f"/optimizer/slots/{pointer([k])[1:]}", t)
                        for k, t in (opt.slots or {}).items()]
        shapes = [] if spec.layout is None else [
            (f"/layout/tensors/{i}", t.shape) for i, t in enumerate(spec.layout.tensors)
        ]
        check_sizes(tensors, limits, shapes=shapes)
        params: Mapping[str, Any]
        if spec.params is not None:
            if spec.layout is not None or spec.vector is not None:
                raise GraphFormatError(
                    "bad_type", "a checkpoint holds 'params' or 'layout' and 'vector', "
                    "not both", "/layout" if spec.layout is not None else "/vector"
                )
            params = decode_params(spec.params, "/params", allow_nonfinite)
        else:
            params = _params_of(spec, allow_nonfinite)
        optimizer = None
        if opt is not None:
            optimizer = {"name": opt.name, "config": copy_json(opt.config), "step": opt.step}
            if opt.slots is not None:
                if opt.state or not isinstance(params, Params):
                    raise GraphFormatError(
                        "bad_type", "optimizer 'slots' (vectors) need the parameters as "
                        "'layout' and 'vector', and no per-parameter 'state'",
                        "/optimizer/slots",
                    )
                optimizer["slots"] = _slots_of(opt.slots, params, allow_nonfinite)
            else:
                optimizer["state"] = {
                    p: decode_params(slots, f"/optimizer/state/{pointer([p])[1:]}",
                                      allow_nonfinite)
                    for p, slots in opt.state.items()
                }
        return Checkpoint(
            params=params,
            optimizer=optimizer,
            rng_state=copy_json(spec.rng_state),
            epoch=spec.epoch,
            step=spec.step,
            config=copy_json(spec.config),
            history=[_row(row) for row in spec.history],
            graph_fingerprint=spec.graph_fingerprint,
        )


# -- the vector format ---------------------------------------------------------------


def _layout_doc(layout: Layout) -> dict[str, Any]:
    where = layout.where  # the scalars in vector order, then the tensors in theirs
    return {
        "scalars": [n for n, i in where.items() if i >= 0],
        "tensors": [
            {"name": n, "shape": list(layout.shapes[n])} for n, i in where.items() if i < 0
        ],
    }


def _slots_doc(slots: Mapping[str, Any], layout: Layout | None) -> dict[str, Any]:
    """Optimizer slots as vectors in the layout of the checkpoint's ``Params``."""
    if layout is None:
        raise GraphFormatError(
            "bad_type", "optimizer 'slots' (vectors) need params as a Params (their layout)"
        )
    out = {}
    for k, v in sorted(slots.items()):
        t = named(f"optimizer slot {k!r}", encode, v)
        if t.shape != [layout.size]:
            raise GraphFormatError(
                "bad_shape", f"optimizer slot {k!r} has shape {tuple(t.shape)}, not the "
                f"parameter vector's ({layout.size},)"
            )
        out[k] = tensor_doc(t)
    return out


def _vector(t: TensorSpec, where: str, size: int, allow_nonfinite: bool) -> np.ndarray:
    if t.shape != [size]:
        raise GraphFormatError(
            "bad_shape", f"the layout holds {size} numbers: shape must be [{size}], "
            f"got {t.shape}", f"{where}/shape"
        )
    return decode(t, where, allow_nonfinite)


def _params_of(spec: CheckpointFile, allow_nonfinite: bool) -> Params:
    """The ``Params`` of a checkpoint's ``layout`` and ``vector`` (of the vector's dtype)."""
    if spec.layout is None or spec.vector is None:
        raise GraphFormatError(
            "missing_field", "a checkpoint holds 'params', or 'layout' and 'vector'",
            "/vector" if spec.layout is not None else "/layout"
        )
    layout = _layout_of(spec.layout, DTYPES[spec.vector.dtype])
    return Params(layout, _vector(spec.vector, "/vector", layout.size, allow_nonfinite))


def _layout_of(spec: LayoutSpec, dtype: str) -> Layout:
    seen: set[str] = set()
    names = [(f"/layout/scalars/{i}", n) for i, n in enumerate(spec.scalars)]
    names += [(f"/layout/tensors/{i}/name", t.name) for i, t in enumerate(spec.tensors)]
    for where, n in names:
        if n in seen:
            raise GraphFormatError("duplicate_id", f"parameter {show(n)} appears twice", where)
        seen.add(n)
    return Layout(spec.scalars, [(t.name, tuple(t.shape)) for t in spec.tensors], dtype)


def _slots_of(
    slots: Mapping[str, TensorSpec], params: Params, allow_nonfinite: bool
) -> dict[str, np.ndarray]:
    out = {}
    for k, t in slots.items():
        where = f"/optimizer/slots/{pointer([k])[1:]}"
        if t.dtype != params.vector.dtype.name:
            raise GraphFormatError(
                "bad_dtype", f"optimizer slot {show(k)} is {t.dtype}, the parameter vector "
                f"{params.vector.dtype.name}", f"{where}/dtype"
            )
        out[k] = _vector(t, where, params.layout.size, allow_nonfinite)
    return out
