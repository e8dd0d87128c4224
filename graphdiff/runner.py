"""How :func:`graphdiff.fit` gets a step's gradient and an epoch's metrics.

A *runner* holds the training data and answers two questions: the loss and
gradient over some of its data points (``gradient``), and the loss and accuracy
over all of them (``evaluate``). :class:`InProcess` answers them here;
``graphdiff.distributed.DataParallel`` answers them on a Dask cluster. Both
implement :class:`Runner`, which is all ``fit`` knows about them.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from .errors import GraphdiffError, InputError, NonFiniteError, ShapeError
from .network import BackwardResult, Network
from .plan import as_numbers

__all__ = [
    "CLASSIFIER_LOSSES",
    "QUIET",
    "FitError",
    "InProcess",
    "Runner",
    "as_inputs",
    "batch_gradient",
    "classifier_operands",
    "evaluate",
]

Array = NDArray[np.float64]
Params = dict[str, Any]
Data = dict[Hashable, Array]

CLASSIFIER_LOSSES = ("hinge", "logistic", "softmax_cross_entropy")

# Non-finite values are detected and reported by fit, naming the node; numpy's
# overflow warnings would only repeat them (or, as errors, hide which node it was).
QUIET: dict[str, Any] = {"over": "ignore", "invalid": "ignore", "divide": "ignore"}


class FitError(GraphdiffError, ValueError):
    """An argument of :func:`~graphdiff.train.fit` that cannot be used; the message names it."""


class Runner(Protocol):
    """What :func:`~graphdiff.train.fit` asks of the place its data lives."""

    n: int  # the number of data points

    def gradient(self, params: Params, idx: NDArray[np.intp] | None) -> BackwardResult:
        """Loss and gradients over the data points ``idx`` (``None``: all, in order)."""
        ...

    def evaluate(self, params: Params) -> dict[str, float]:
        """:func:`evaluate` over all the data."""
        ...

    def stats(self) -> dict[str, float]:
        """Extra history columns since the last call (none in process)."""
        ...

    def close(self) -> None:
        """Let go of the data."""
        ...


def batch_gradient(net: Network, params: Params, batch: Data) -> BackwardResult:
    """Loss and gradient of one batch; :class:`~graphdiff.errors.NonFiniteError` if not finite.

    This is the part of each training step a data-parallel engine replaces. It
    runs the network's fast path and, only when the loss or a gradient is not
    finite, reruns the step with the engine's finite checks to name the first
    node whose value or delta went non-finite.
    """
    res = net.backward(params, batch)
    if np.isfinite(res.loss) and res.grads.all_finite():
        return res
    net.backward(params, batch, check_finite=True)  # raises, naming the node
    raise NonFiniteError(  # only an op that is not a pure function gets here
        f"the loss {net.loss!r} or a gradient is not finite ({res.loss}), "
        "but a checked rerun of the step was finite",
        node=net.loss,
        phase="backward",
    )


# -- reading the loss node --------------------------------------------------------


def classifier_operands(net: Network) -> tuple[Hashable, Hashable] | None:
    """The loss node's (prediction, target) operands, ports 0 and 1, if it is a classifier's."""
    if net.graph.nodes[net.loss].get("op") not in CLASSIFIER_LOSSES:
        return None
    by_port = {d.get("port"): u for u, _, d in net.graph.in_edges(net.loss, data=True)}
    return by_port[0], by_port[1]


def accuracy(op: str, pred: Array, t: Array) -> float:
    if op == "softmax_cross_entropy":
        labels = t if t.ndim == 1 else np.argmax(t, axis=1)
        return float(np.mean(np.argmax(pred, axis=1) == labels))
    # sign(prediction) == t with sign(0) counted as wrong
    return float(np.mean(pred * t > 0))


def evaluate(
    net: Network, params: Mapping[str, Any], data: Mapping[Hashable, Any]
) -> dict[str, float]:
    """The loss over ``data`` and, for hinge, logistic and softmax cross-entropy, the accuracy.

    The loss is reduced as the network's ``reduction`` says (mean by default).
    Accuracy is the fraction of data points classified correctly: for hinge and
    logistic ``prediction · t > 0`` (a prediction of 0 is wrong), for softmax
    cross-entropy ``argmax(prediction) == t`` (class indices) or ``argmax(t)``
    (one-hot or probabilities). The prediction is the loss node's port-0 operand.
    A non-finite loss raises :class:`~graphdiff.errors.NonFiniteError` naming
    the first node whose value went non-finite.
    """
    operands = classifier_operands(net)
    if operands is None:
        loss = float(net.error(params, data))
    else:
        values = net.forward(params, data, outputs=[net.loss, *operands])
        per_point = values[net.loss]
        loss = float(per_point.mean() if net.reduction == "mean" else per_point.sum())
    if not math.isfinite(loss):
        every = net.forward(params, data, outputs=[net.loss])
        first = next((n for n, v in every.items() if not np.all(np.isfinite(v))), net.loss)
        raise NonFiniteError(
            f"the loss {net.loss!r} is not finite ({loss}); the first non-finite value is "
            f"node {first!r}",
            node=first,
            phase="forward",
        )
    out = {"loss": loss}
    if operands is not None:
        op = str(net.graph.nodes[net.loss]["op"])
        out["accuracy"] = accuracy(op, values[operands[0]], values[operands[1]])
    return out


# -- data and batches -------------------------------------------------------------


def as_inputs(net: Network, data: Mapping[Hashable, Any], what: str) -> Data:
    if not isinstance(data, Mapping):
        raise FitError(f"{what} must map input names to arrays, got {type(data).__name__}")
    missing = [n for n in net.inputs if n not in data]
    if missing:
        raise InputError(f"{what} lacks input(s) {missing!r} of the network")
    arrays = {n: as_numbers(data[n], f"{what}: input {n!r}") for n in net.inputs}
    sizes = {n: (a.shape[0] if a.ndim else None) for n, a in arrays.items()}
    if len(set(sizes.values())) != 1 or None in sizes.values():
        raise ShapeError(f"{what}: inputs must share a first axis over data points, got {sizes!r}")
    if 0 in sizes.values():
        raise ShapeError(f"{what} holds no data points")
    return arrays


class InProcess:
    """Batch gradients and metrics over data held in this process.

    The two places a data-parallel engine (``graphdiff.distributed.DataParallel``)
    takes over: ``gradient`` for the data points at ``idx`` (``None``: all) and
    ``evaluate`` over all of them.
    """

    def __init__(self, net: Network, data: Mapping[Hashable, Any]) -> None:
        self.net = net
        self.data = as_inputs(net, data, "data")
        self.n = next(iter(self.data.values())).shape[0]

    def gradient(self, params: Params, idx: NDArray[np.intp] | None) -> BackwardResult:
        batch = self.data if idx is None else {k: a[idx] for k, a in self.data.items()}
        return batch_gradient(self.net, params, batch)

    def evaluate(self, params: Params) -> dict[str, float]:
        return evaluate(self.net, params, self.data)

    def stats(self) -> dict[str, float]:
        return {}

    def close(self) -> None:
        pass
