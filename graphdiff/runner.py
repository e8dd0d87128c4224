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

from .data import DataError, fed_inputs
from .errors import GraphdiffError, InputError, NonFiniteError, ShapeError
from .network import BackwardResult, Batch, Network
from .plan import Rows, as_numbers
from .predict import metrics

__all__ = ["QUIET", "FitError", "InProcess", "Runner", "as_inputs", "batch_gradient"]

Array = NDArray[np.float64]
Params = Mapping[str, Any]  # a dict, or a network's graphdiff.params.Params
Data = dict[Hashable, Array]

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
        """The loss (and accuracy) over all the data: :func:`graphdiff.evaluate`'s."""
        ...

    def stats(self) -> dict[str, float]:
        """Extra history columns since the last call (none in process)."""
        ...

    def close(self) -> None:
        """Let go of the data."""
        ...


def batch_gradient(
    net: Network, params: Mapping[str, Any], batch: Mapping[Hashable, Any]
) -> BackwardResult:
    """Loss and gradient of one batch; :class:`~graphdiff.errors.NonFiniteError` if not finite.

    This is the part of each training step a data-parallel engine replaces. It
    runs the network's fast path and, only when the loss or a gradient is not
    finite, reruns the step with the engine's finite checks to name the first
    node whose value or delta went non-finite.
    """
    res = net.backward(params, batch)
    if math.isfinite(res.loss) and res.grads.all_finite():
        return res
    net.backward(params, batch, check_finite=True)  # raises, naming the node
    raise NonFiniteError(  # only an op that is not a pure function gets here
        f"the loss {net.loss!r} or a gradient is not finite ({res.loss}), "
        "but a checked rerun of the step was finite",
        node=net.loss,
        phase="backward",
    )


def as_inputs(net: Network, data: Any, what: str) -> Data:
    try:
        data = fed_inputs(data, list(net.inputs), what)
    except DataError as e:
        raise FitError(str(e)) from None
    # converted once, to the network's float type
    arrays = {n: as_numbers(data[n], f"{what}: input {n!r}", net.dtype) for n in net.inputs}
    sizes = {n: (a.shape[0] if a.ndim else None) for n, a in arrays.items()}
    if len(set(sizes.values())) != 1 or None in sizes.values():
        raise ShapeError(f"{what}: inputs must share a first axis over data points, got {sizes!r}")
    if 0 in sizes.values():
        raise InputError(f"{what} holds no data points")
    return arrays


class InProcess:
    """Batch gradients and metrics over data held in this process.

    The two places a data-parallel engine (``graphdiff.distributed.DataParallel``)
    takes over: ``gradient`` for the data points at ``idx`` (``None``: all) and
    ``evaluate`` over all of them.
    """

    def __init__(self, net: Network, data: Mapping[Hashable, Any]) -> None:
        self.net = net
        self.data = as_inputs(net, data, "data")  # in net.inputs order
        self.n = next(iter(self.data.values())).shape[0]
        # inputs of one number per data point (neuron notation's x1, x2, ...) as the rows
        # of one matrix, so a minibatch is one gather, not one per input; the others
        # follow them, and _order puts them all back in the network's input order
        xs = list(self.data.values())
        columns = [i for i, a in enumerate(xs) if a.ndim == 1]
        columns = columns if len(columns) > 1 else []
        others = [i for i in range(len(xs)) if i not in columns]
        self._rows = np.stack([xs[i] for i in columns]) if columns else None
        self._others = [xs[i] for i in others]
        pool = columns + others  # input positions of the gathered arrays, in gather order
        self._order = [pool.index(i) for i in range(len(xs))]
        self._in_order = self._order == list(range(len(xs)))  # nothing to reorder
        # consecutive inputs: the generated code takes the gathered matrix as it is
        consecutive = bool(columns) and columns == list(range(columns[0], columns[-1] + 1))
        self._start = columns[0] if consecutive else -1
        # checked here, once: every step's inputs are a Batch the network takes as is
        # all the data: the caller's arrays themselves (the generated code computes with
        # them as it always did), and for a level fed by the columns the matrix of them
        self._all = Batch(net, xs, self.n)
        if self._rows is not None and self._start >= 0:
            self._all.xs = Rows(xs, self._rows, self._start)

    def gradient(self, params: Params, idx: NDArray[np.intp] | None) -> BackwardResult:
        if idx is None:
            return batch_gradient(self.net, params, self._all)
        others = [a[idx] for a in self._others]
        if self._rows is None:  # no stacked columns: the others are every input, in order
            xs = others
        else:
            # [:, idx] gathers in Fortran order: each input a strided row, as fit always
            # gave them (np.dot of a strided row sums in another order than of a
            # contiguous one, and checkpoints written before must resume bit for bit)
            rows = self._rows[:, idx]
            pool = [*rows, *others]
            xs = pool if self._in_order else list(map(pool.__getitem__, self._order))
            if self._start >= 0:  # and a level fed by them gets them as a C matrix
                xs = Rows(xs, np.ascontiguousarray(rows), self._start)
        return batch_gradient(self.net, params, Batch(self.net, xs, len(idx)))

    def evaluate(self, params: Params) -> dict[str, float]:
        return metrics(self.net, params, self._all)

    def stats(self) -> dict[str, float]:
        return {}

    def close(self) -> None:
        pass
