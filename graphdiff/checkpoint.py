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
    _check_sizes,
    _copy_json,
    _decode_params,
    _encode,
    _encode_params,
    _json_value,
    _named,
)
from .jsonread import GraphFormatError, _in_file, _pointer, _read_doc, _show, _validate
from .jsonwrite import _atomic_write, _layout, _tensor_doc
from .schema import CHECKPOINT_FORMAT, FORMAT_VERSION, CheckpointFile, LoadLimits

__all__ = ["Checkpoint", "load_checkpoint", "save_checkpoint"]


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
    history : one dict of floats per epoch (``{"loss": ..., "accuracy": ...}``);
        a row may also hold ``"nodes"``, node -> ``{"delta_rms": ..., "dead": ...,
        "saturated": ...}`` (``fit(..., diagnostics=True)``), kept in its order.
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


def _rows(history: Any) -> list[Any]:
    if not isinstance(history, (list, tuple)):
        raise GraphFormatError("bad_type", f"history must be a list of dicts, got {_show(history)}")
    return list(history)


def _row_doc(row: Mapping[str, Any]) -> dict[str, Any]:
    """A history row for the file: diagnostics become a list (JSON keys are only text)."""
    if not isinstance(row, Mapping):
        raise GraphFormatError("bad_type", f"history rows must be dicts, got {_show(row)}")
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
    opt = ckpt.optimizer
    opt_doc = None
    if opt is not None:
        try:
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
        except (AttributeError, TypeError):  # not the dicts of an optimizer's state_dict()
            raise GraphFormatError(
                "bad_type", f"optimizer must be an optimizer's state_dict(), got {_show(opt)}"
            ) from None
    doc: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "format_version": FORMAT_VERSION,
        "checksum": "",
        "epoch": ckpt.epoch,
        "step": ckpt.step,
        "graph_fingerprint": ckpt.graph_fingerprint,
        "config": _named("config", _json_value, ckpt.config),
        "history": _named("history", _json_value, [_row_doc(row) for row in _rows(ckpt.history)]),
        "rng_state": None if ckpt.rng_state is None
        else _named("rng_state", _json_value, _rng_json(ckpt.rng_state)),
        "optimizer": opt_doc,
        "params": {k: _tensor_doc(t) for k, t in _encode_params(ckpt.params).items()},
    }
    try:
        doc["checksum"] = _checksum(doc)
    except (TypeError, ValueError):  # a field that is not JSON (epoch=frozenset(), ...)
        _validate(CheckpointFile, doc)  # names the field
        raise GraphFormatError("bad_type", "the checkpoint holds values that are not "
                               "JSON data") from None
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
    limits = LoadLimits() if limits is None else limits
    if not isinstance(limits, LoadLimits):
        raise GraphFormatError("bad_type", f"limits must be a LoadLimits, got "
                               f"{type(limits).__name__}")
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
            history=[_row(row) for row in spec.history],
            graph_fingerprint=spec.graph_fingerprint,
        )
