"""Data-parallel training on a Dask cluster: ``graphdiff.fit(..., client=client)``.

Everything Dask-specific lives here; :func:`graphdiff.fit` hands each step's
gradient and each epoch's evaluation to a :class:`DataParallel` when it is given
a ``client``, and keeps the optimizer, history, progress bar and checkpoints.
Install with ``pip install -e ".[dask]"``. On this machine::

    from dask.distributed import Client, LocalCluster
    with LocalCluster(n_workers=4, threads_per_worker=1) as cluster, Client(cluster) as client:
        result = graphdiff.fit(net, params, data, client=client, batch_size=1024)

and on a cluster started elsewhere (``dask scheduler``, ``dask worker ADDRESS`` on
each machine, graphdiff and the plugins the network uses installed on every
worker), ``Client("tcp://SCHEDULER-HOST:8786")`` instead. ``data`` may hold
``dask.array`` inputs (``dask.array.from_zarr(...)``, ...) that never pass
through this process.

How a step runs:

1. **Shards.** The data points are cut into contiguous shards that live on the
   workers, each built by a task from the data, so Dask can rebuild a shard
   after its worker dies: a ``dask.array`` input gives one shard per chunk
   along the data-point axis (its other axes in one piece); numpy data goes out
   as one task per shard, one shard per worker at least and none over 8 MiB.
   (Inputs chunked differently follow the one with the most chunks.)
2. **The network** travels once, as its model-file spec (JSON, see
   :meth:`Network.spec <graphdiff.network.Network.spec>`), never as a pickled
   graph or function; each worker process compiles it once, with
   ``reduction="sum"``, and caches it under the spec's sha256. Ops must be
   installed on the workers: a worker lacking one fails with the model-file
   load error (:class:`~graphdiff.io.GraphFormatError`, code ``"missing_plugin"``
   or ``"unknown_op"``) naming the node, the op and the package.
3. **Each step** broadcasts the parameters to every worker once, sends each
   shard the local positions of this step's data points (a minibatch drawn on
   the driver exactly as in-process training draws it; nothing for a full
   batch), and each shard returns its loss sum, gradient sums and count. A
   binary tree of pairwise sums, in shard order, combines them on the workers;
   the driver divides by the batch size (for the ``"mean"`` reduction) and
   steps the optimizer. Results equal in-process training up to the order of
   float summation, and a step's result does not depend on where it ran.
4. **Faults.** A step that loses a worker is completed by Dask (shards are
   rebuilt from their tasks); if it still fails for want of workers or of a
   connection, the step is resubmitted, up to three times. A client that is
   closed or has lost its scheduler raises :class:`ClusterError`; the last
   checkpoint ``fit`` wrote stays as it was.

Each epoch's history row gains ``step_time`` (seconds per step, gradient on the
cluster, averaged over the epoch) and ``bytes_per_step``: an estimate from the
arrays sent, the parameters to each worker, one gradient-sized partial sum
from each worker taking part, and minibatch positions.

Workers should run numpy with one BLAS thread each (they share the machine's
cores with each other): :func:`local_cluster` and Dask's nannies (``dask
worker``) set ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` and
``MKL_NUM_THREADS`` to 1.

>>> import graphdiff
>>> issubclass(ClusterError, graphdiff.GraphdiffError) and issubclass(ClusterError, RuntimeError)
True
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import logging
import math
import time
import warnings
from collections.abc import Hashable, Iterator, Mapping
from concurrent.futures import CancelledError
from contextlib import contextmanager
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from .compile import GraphWarning, compile
from .errors import GraphdiffError, InputError, NonFiniteError, ShapeError
from .io import GraphFormatError, from_spec
from .network import BackwardResult, Network
from .params import Grads
from .params import Params as ParamVector
from .predict import is_classifier, metrics
from .runner import QUIET, FitError, as_inputs, batch_gradient
from .schema import ModelFile

log = logging.getLogger(__name__)

__all__ = ["ClusterError", "DaskMissingError", "DataParallel", "connect", "local_cluster"]

Array = NDArray[np.float64]
Params = Mapping[str, Any]
Shard = dict[Hashable, Array]
# numpy data leaves the driver as task arguments; shards under Dask's large-graph
# warning (10 MB) keep each task message ordinary.
SHARD_BYTES = 8 * 2**20
RETRIES = 3
ONE_BLAS_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# Worker side: spec sha256 -> the network compiled from it, once per worker process
# (the oldest dropped beyond CACHED, for workers that outlive many trainings).
_NETWORKS: dict[str, Network] = {}
CACHED = 16


class ClusterError(GraphdiffError, RuntimeError):
    """The Dask cluster went away (or kept failing) during :func:`graphdiff.fit`.

    Attributes
    ----------
    params : the parameters training had reached (before the failed step).
    """

    def __init__(self, message: str, *, params: Params | None = None) -> None:
        super().__init__(message)
        self.params = params or {}


class DaskMissingError(GraphdiffError, ImportError):
    """``client=`` was given but Dask's distributed scheduler is not installed."""


def _dask() -> Any:
    try:
        import distributed
    except ImportError as e:
        raise DaskMissingError(
            f"training with client= needs Dask: pip install -e \".[dask]\" ({e})"
        ) from None
    return distributed


def local_cluster(n_workers: int) -> Any:
    """A ``LocalCluster`` of single-threaded worker processes on loopback, one BLAS thread each.

    Every port (scheduler, workers, HTTP) is a free one on 127.0.0.1.

    What ``graphdiff train --workers N`` starts; close it (or use it in a
    ``with`` block) when done.

    >>> import graphdiff.distributed
    >>> callable(graphdiff.distributed.local_cluster)
    True
    """
    distributed = _dask()
    return distributed.LocalCluster(
        n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
        # Dask's HTTP endpoint on a free loopback port: its default, 8787, is taken by
        # the second cluster on a machine (and Dask warns).
        dashboard_address="127.0.0.1:0", env=dict(ONE_BLAS_THREAD),
    )


@contextmanager
def connect(
    workers: int | None = None, scheduler: str | None = None, *, timeout: float = 10.0
) -> Iterator[Any]:
    """A Dask client for ``graphdiff train``: ``--workers N`` or ``--scheduler ADDRESS``.

    With ``workers``, starts a :func:`local_cluster` of that many processes and
    closes it on exit; with ``scheduler``, connects to it (waiting ``timeout``
    seconds at most); with neither, gives ``None`` (train in-process).

    >>> with connect() as client:
    ...     client is None
    True
    """
    if workers is None and scheduler is None:
        yield None
        return
    distributed = _dask()
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout=timeout)
        except (OSError, ValueError) as e:  # TimeoutError is an OSError
            raise ClusterError(f"can't reach the Dask scheduler at {scheduler!r}: {e}") from None
        with client:
            yield client
        return
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise FitError(f"--workers must be an int >= 1, got {workers!r}")
    with local_cluster(workers) as cluster, distributed.Client(cluster) as client:
        yield client


# -- worker side -------------------------------------------------------------------


class _LoadFailed(Exception):
    """A worker could not load the spec: (code, message, location, worker), picklable."""


def _network(key: str, text: str) -> Network:
    net = _NETWORKS.get(key)
    if net is None:
        try:
            spec = ModelFile.model_validate_json(text, strict=True)
            G, _ = from_spec(spec)
        except GraphFormatError as e:
            # GraphFormatError's own arguments do not survive pickling; the driver rebuilds it.
            raise _LoadFailed(e.code, e.message, e.location, _worker_address()) from None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GraphWarning)  # the driver showed them already
            net = compile(G, loss=spec.loss, reduction="sum", dtype=spec.dtype)
        while len(_NETWORKS) >= CACHED:
            _NETWORKS.pop(next(iter(_NETWORKS)))
        _NETWORKS[key] = net
    return net


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return "?"


def _shard(part: Mapping[Hashable, Any], dtype: str = "float64") -> Shard:
    """A worker's data, of the network's float type (converted once, here)."""
    return {k: np.ascontiguousarray(v, dtype=dtype) for k, v in part.items()}


def _points(shard: Shard) -> int:
    return int(next(iter(shard.values())).shape[0])


def _shard_sums(
    key: str, text: str, vector: Array, shard: Shard, pick: NDArray[np.intp] | None
) -> tuple[np.floating[Any], Array, int]:
    """Loss sum, gradient sums (one vector) and count over the shard's points at ``pick``
    (all: None), for the parameters ``vector`` in the network's layout."""
    batch = shard if pick is None else {k: a[pick] for k, a in shard.items()}
    net = _network(key, text)
    with np.errstate(**QUIET):
        res = batch_gradient(net, ParamVector(net.layout, vector), batch)
    return res.loss, res.grads.vector, _points(batch)


def _shard_metrics(
    key: str, text: str, vector: Array, shard: Shard, pick: NDArray[np.intp] | None
) -> tuple[float, int, int]:
    """Loss sum, points classified correctly (0 without accuracy) and count at ``pick``."""
    batch = shard if pick is None else {k: a[pick] for k, a in shard.items()}
    net = _network(key, text)
    with np.errstate(**QUIET):
        m = metrics(net, ParamVector(net.layout, vector), batch)
    n = _points(batch)
    return m["loss"], round(m.get("accuracy", 0.0) * n), n


def _add(a: tuple[Any, ...], b: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(x + y for x, y in zip(a, b, strict=True))


# -- driver side -------------------------------------------------------------------


class DataParallel:
    """Gradients and metrics of a network over data sharded on a Dask cluster.

    :func:`graphdiff.fit` builds one per call with ``client=``; it checks the
    data at once and sends it to the workers at the first step. ``gradient``
    and ``evaluate`` give what :func:`~graphdiff.train.batch_gradient` and
    :func:`~graphdiff.train.evaluate` give in-process, for the data points at
    the given global indices (all of them for ``None``).

    Parameters
    ----------
    client : a ``dask.distributed.Client``.
    net : the compiled network (its ``reduction`` is honoured).
    data : input node -> numpy-like array or ``dask.array`` over all data points.

    Attributes
    ----------
    n : the number of data points.
    bounds : shard i holds the data points ``bounds[i]:bounds[i + 1]``; fixed at
        the first step (empty before), so the order of summation never changes.
    """

    def __init__(self, client: Any, net: Network, data: Mapping[Hashable, Any]) -> None:
        distributed = _dask()
        if not isinstance(client, distributed.Client):
            raise FitError(f"client must be a dask.distributed.Client, got {type(client).__name__}")
        self.client = client
        self.net = net
        self.address = str(getattr(client.scheduler, "address", "?"))
        self._text = net.spec().model_dump_json()
        self._key = hashlib.sha256(self._text.encode()).hexdigest()
        self._data = _check_data(net, data)
        self.n = int(next(iter(self._data.values())).shape[0])
        self.bounds = np.zeros(0, dtype=np.intp)
        self._futures: list[Any] = []  # the spec, then one per shard
        self._sent: tuple[Params, Any] | None = None
        self._steps: list[tuple[float, int]] = []

    # -- setting up on the cluster ----------------------------------------------------

    def _start(self) -> None:
        """Put the spec and the shards on the cluster (again, if they were cancelled)."""
        if any(f.status in ("error", "cancelled") for f in self._futures):
            self._futures = []
        if self._futures:
            return
        dask_data = any(_is_dask(a) for a in self._data.values())
        if not len(self.bounds):  # fixed at the first step: the sums' order never changes
            self.bounds = self._dask_bounds() if dask_data else self._numpy_bounds()
        spec = self.client.submit(str, self._text, key=f"graphdiff-spec-{self._key}")
        shards = self._from_dask() if dask_data else self._from_numpy()
        self._futures = [spec, *shards]
        _dask().wait(self._futures)

    def _numpy_bounds(self) -> NDArray[np.intp]:
        nbytes = sum(a.nbytes for a in self._data.values())
        k = min(self.n, max(len(self.client.nthreads()), math.ceil(nbytes / SHARD_BYTES), 1))
        return np.array([i * self.n // k for i in range(k + 1)], dtype=np.intp)

    def _dask_bounds(self) -> NDArray[np.intp]:
        # the finest chunking along the data-point axis; the other inputs follow it
        chunks = max((a.chunks[0] for a in self._data.values() if _is_dask(a)), key=len)
        return np.concatenate([[0], np.cumsum(chunks)]).astype(np.intp)

    def _from_numpy(self) -> list[Any]:
        b = self.bounds
        return [
            self.client.submit(
                _shard, {name: a[lo:hi] for name, a in self._data.items()}, self.net.dtype.name
            )
            for lo, hi in itertools.pairwise(b)
        ]

    def _from_dask(self) -> list[Any]:
        da: Any = importlib.import_module("dask.array")  # untyped
        delayed: Any = importlib.import_module("dask").delayed
        chunks = tuple(int(c) for c in np.diff(self.bounds))
        blocks = {}
        for name, a in self._data.items():
            a = a if _is_dask(a) else da.from_array(a, chunks=(chunks, *a.shape[1:]))
            # one chunk per shard along the data-point axis, the other axes whole
            blocks[name] = a.rechunk((chunks, *a.shape[1:])).to_delayed().reshape(-1)
        parts = [
            delayed(_shard)({name: b[i] for name, b in blocks.items()}, self.net.dtype.name)
            for i in range(len(chunks))
        ]
        return list(self.client.compute(parts))

    # -- steps ------------------------------------------------------------------------

    def gradient(self, params: Params, idx: NDArray[np.intp] | None) -> BackwardResult:
        """Loss and gradients over the data points ``idx`` (all of them for ``None``)."""
        started = time.perf_counter()
        count = self.n if idx is None else len(idx)
        (loss, grads, got), tasks = self._run(_shard_sums, params, idx, "a training step")
        if got != count:
            raise ClusterError(
                f"the shards on the Dask cluster at {self.address} returned {got} data "
                f"points for a batch of {count}", params=params,
            )
        scale = count if self.net.reduction == "mean" else 1
        loss = self.net.dtype.type(loss / scale)
        grads = Grads(self.net.layout, grads / scale)
        if not (np.isfinite(loss) and grads.all_finite()):
            raise NonFiniteError(
                f"the loss {self.net.loss!r} or a gradient summed over the shards is not "
                f"finite ({loss})", node=self.net.loss, phase="backward",
            )
        # parameters out to every worker, a partial gradient back from each one used
        workers = len(self.client.nthreads())
        sent = (workers + min(workers, tasks)) * self.net.layout.size * self.net.dtype.itemsize
        if idx is not None:
            sent += idx.nbytes
        self._steps.append((time.perf_counter() - started, sent))
        return BackwardResult(loss=loss, grads=grads)

    def evaluate(self, params: Params) -> dict[str, float]:
        """:func:`~graphdiff.train.evaluate` over all the data, computed shard by shard."""
        (loss, correct, n), _ = self._run(_shard_metrics, params, None, "the evaluation")
        out = {"loss": float(loss / n if self.net.reduction == "mean" else loss)}
        if is_classifier(self.net):
            out["accuracy"] = correct / n
        return out

    def stats(self) -> dict[str, float]:
        """Mean ``step_time`` and ``bytes_per_step`` of the steps since the last call."""
        steps, self._steps = self._steps, []
        if not steps:
            return {}
        return {
            "step_time": sum(s for s, _ in steps) / len(steps),
            "bytes_per_step": sum(b for _, b in steps) / len(steps),
        }

    def close(self) -> None:
        """Let go of the shards and parameters held on the cluster."""
        self._futures, self._sent = [], None

    def _run(
        self, fn: Any, params: Params, idx: NDArray[np.intp] | None, what: str
    ) -> tuple[tuple[Any, ...], int]:
        """Run ``fn`` on the shards, sum the results up a tree; resubmit a step that failed
        for want of workers. Returns the sum and the number of shard tasks."""
        distributed = _dask()
        lost = (CancelledError, distributed.KilledWorker, OSError)
        why = ""
        for attempt in range(RETRIES + 1):
            if self.client.status != "running":
                break
            try:
                self._start()
                p = self._broadcast(params)
                spec, *shards = self._futures
                parts = [
                    self.client.submit(fn, self._key, spec, p, shard, pick, pure=False)
                    for shard, pick in zip(shards, self._picks(idx), strict=True)
                    if pick is None or len(pick)
                ]
                return self._tree(parts).result(), len(parts)
            except _LoadFailed as e:
                code, message, location, worker = e.args
                raise GraphFormatError(
                    code, f"on the Dask worker {worker}: {message}", location
                ) from None
            except lost as e:
                why = f"; last failure {type(e).__name__}: {e}"
                self._sent = None
                if attempt < RETRIES:
                    log.warning(
                        "%s on the Dask cluster at %s failed (%s: %s); resubmitting it "
                        "(retry %d of %d)", what, self.address, type(e).__name__, e,
                        attempt + 1, RETRIES,
                    )
                    time.sleep(0.2 * 2**attempt)
        raise ClusterError(
            f"the Dask cluster at {self.address} went away during {what} (client "
            f"{self.client.status}{why}); training stopped there, the last checkpoint "
            "written (if any) is intact, and the parameters reached are the error's .params",
            params=params,
        )

    def _picks(self, idx: NDArray[np.intp] | None) -> list[NDArray[np.intp] | None]:
        """Each shard's local positions of the points ``idx`` (``None``: all of its points)."""
        if idx is None:
            return [None] * (len(self.bounds) - 1)
        s = np.sort(idx)  # only the order of summation changes
        cuts = np.searchsorted(s, self.bounds)
        return [s[a:b] - lo for a, b, lo in zip(cuts[:-1], cuts[1:], self.bounds[:-1], strict=True)]

    def _broadcast(self, params: Params) -> Any:
        """A future of the parameters' vector on every worker (kept while the same
        parameters come back): one array per step, whatever the number of parameters."""
        if self._sent is None or self._sent[0] is not params:
            if isinstance(params, ParamVector) and (
                params.layout.fingerprint == self.net.layout.fingerprint
            ):
                vector = params.vector
            else:
                vector = self.net.as_params(params).vector
            [future] = self.client.scatter([vector], broadcast=True, hash=False)
            self._sent = (params, future)
        return self._sent[1]

    def _tree(self, parts: list[Any]) -> Any:
        while len(parts) > 1:
            parts = [
                self.client.submit(_add, parts[i], parts[i + 1], pure=False)
                if i + 1 < len(parts) else parts[i]
                for i in range(0, len(parts), 2)
            ]
        return parts[0]


def _is_dask(a: object) -> bool:
    return type(a).__module__.startswith("dask.array")



def _check_data(net: Network, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
    """The inputs the network needs, numpy ones of its float type, with in-process fit's
    errors."""
    if not isinstance(data, Mapping) or not any(_is_dask(a) for a in data.values()):
        return as_inputs(net, data, "data")
    missing = [n for n in net.inputs if n not in data]
    if missing:
        raise InputError(f"data lacks input(s) {missing!r} of the network")
    arrays = {n: data[n] if _is_dask(data[n]) else np.asarray(data[n], net.dtype)
              for n in net.inputs}
    sizes = {n: (a.shape[0] if a.ndim else None) for n, a in arrays.items()}
    if len(set(sizes.values())) != 1 or None in sizes.values():
        raise ShapeError(f"data: inputs must share a first axis over data points, got {sizes!r}")
    for n, a in arrays.items():
        if _is_dask(a) and any(math.isnan(c) for c in cast(Any, a).chunks[0]):
            raise ShapeError(
                f"data: input {n!r} is a dask array of unknown chunk sizes; call its "
                ".compute_chunk_sizes() first"
            )
    if 0 in sizes.values():
        raise InputError("data holds no data points")
    return arrays
