"""Training: the lecture's loop, forward → error E → backprop ∇E → θ ← optimizer step.

:func:`fit` runs it over full batches, shuffled minibatches or single samples
(``batch_size=1``, the perceptron's way), records a per-epoch history, and
behaves like a tool for long runs: a progress bar on a terminal, callbacks,
early stopping, divergence detection and exact checkpoint/resume.

>>> import networkx as nx, numpy as np, graphdiff
>>> G = nx.DiGraph()
>>> G.add_nodes_from(["x", "t"], op="input")
>>> G.add_node("z", op="neuron", activation="identity", bias=0.0)
>>> G.add_edge("x", "z", param="w", weight=0.0)
>>> G.add_node("E", op="hinge")
>>> G.add_edge("z", "E", port=0); G.add_edge("t", "E", port=1)
>>> net = graphdiff.compile(G, loss="E")
>>> data = {"x": np.array([-2.0, -1.0, 1.0, 3.0]), "t": np.array([-1.0, -1.0, 1.0, 1.0])}
>>> result = graphdiff.fit(net, net.init_params(), data, optimizer=graphdiff.SGD(lr=1.0),
...                        epochs=10, target_accuracy=1.0)
>>> result.stopped, result.epochs, result.history[-1]["accuracy"]
('target_accuracy', 1, 1.0)
>>> float(result.params["w"]), float(result.params["z.bias"])   # w = -mean(x t) = 1.75
(1.75, 0.0)
"""

from __future__ import annotations

import copy
import logging
import os
import sys
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from .data import fed_inputs
from .diagnostics import node_diagnostics
from .distributed import DataParallel
from .errors import GraphdiffError, InputError, NonFiniteError
from .io import Checkpoint, graph_fingerprint, load_checkpoint, save_checkpoint
from .network import Network
from .optim import SGD, Optimizer, OptimizerError
from .params import Layout, Params
from .predict import check_data, evaluate, is_classifier, metrics
from .progress import Progress, in_notebook
from .runner import QUIET, FitError, InProcess, Runner, as_inputs, batch_gradient

__all__ = [
    "CheckpointError",
    "EpochRecord",
    "FitError",
    "FitResult",
    "TrainingDivergedError",
    "batch_gradient",
    "evaluate",
    "fit",
]

Array = NDArray[np.float64]

Data = dict[Hashable, Array]

log = logging.getLogger(__name__)


class CheckpointError(GraphdiffError, OSError):
    """A checkpoint that cannot be written, or found to resume from; names the file.

    Attributes
    ----------
    epoch : the epoch whose checkpoint failed (0 when resuming).
    params : the parameters training had reached.
    """

    def __init__(self, message: str, *, epoch: int, params: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.params = params


class TrainingDivergedError(GraphdiffError, FloatingPointError):
    """The loss, a value, a delta or a gradient became NaN or infinite during :func:`fit`.

    No update was applied after it was seen and no checkpoint was written.

    Attributes
    ----------
    epoch : the epoch (1-based) in which it happened.
    step : the global step (1-based) whose computation went non-finite; for the
        end-of-epoch evaluation, the last step taken.
    node : the first node (or, for ``phase="update"``, parameter) whose value or
        delta went non-finite.
    phase : ``"forward"``, ``"backward"`` (from the engine's finite checks),
        ``"update"`` (the optimizer produced a non-finite parameter) or
        ``"evaluation"`` (the loss on the whole training or validation set).
    params : the parameters in use when it happened (before the bad update).
    """

    def __init__(
        self, message: str, *, epoch: int, step: int, node: object, phase: str,
        params: Mapping[str, Any],
    ) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.step = step
        self.node = node
        self.phase = phase
        self.params = params


@dataclass(frozen=True)
class EpochRecord:
    """What a callback receives after every epoch.

    ``grads`` are the gradients of the epoch's last step, ``loss`` and
    ``accuracy`` (``None`` for non-classifier losses) the end-of-epoch values
    also in ``history[-1]`` (both ``None`` in an epoch that ``evaluate_every``
    leaves unevaluated).
    """

    epoch: int
    step: int
    params: Params
    grads: Mapping[str, Any]
    loss: float | None
    accuracy: float | None
    history: list[dict[str, float]]


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes
    ----------
    params : the trained parameters (new arrays; the caller's are untouched).
    history : one dict per epoch: ``epoch``, ``loss``, ``accuracy`` (classifier
        losses), ``val_loss``/``val_accuracy`` (with validation data) and ``time``
        (seconds spent on the epoch, evaluation included); the metrics only in
        epochs that ``evaluate_every`` evaluates.
    stopped : why training ended: ``"epochs"``, ``"target_loss"``,
        ``"target_accuracy"`` or ``"callback"``.
    epochs : epochs completed (counting those before a resume).
    steps : optimizer steps taken (counting those before a resume).
    optimizer : the optimizer with its final state (a copy of the one passed in).
    """

    params: Params
    history: list[dict[str, float]]
    stopped: str
    epochs: int
    steps: int
    optimizer: Optimizer


def _batches(
    n: int, batch_size: int | None, shuffle: bool, rng: np.random.Generator
) -> Iterator[NDArray[np.intp] | None]:
    """Index arrays of one epoch's batches; ``None`` is the whole set in order."""
    if batch_size is None or (batch_size >= n and not shuffle):
        yield None
        return
    order = rng.permutation(n) if shuffle else np.arange(n)
    for i in range(0, n, batch_size):
        yield order[i : i + batch_size]


# -- the loop ---------------------------------------------------------------------


def _int_at_least(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise FitError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _first_non_finite(params: Mapping[str, Any]) -> str | None:
    if isinstance(params, Params):
        return params.first_non_finite()
    return next((n for n, v in params.items() if not np.all(np.isfinite(v))), None)


def fit(
    net: Network,
    params: Mapping[str, Any] | None,
    data: Mapping[Hashable, Any],
    *,
    optimizer: Optimizer | None = None,
    epochs: int = 100,
    batch_size: int | None = None,
    shuffle: bool = True,
    seed: int = 0,
    validation: Mapping[Hashable, Any] | None = None,
    callbacks: Sequence[Callable[[EpochRecord], Any]] = (),
    target_loss: float | None = None,
    target_accuracy: float | None = None,
    progress: bool | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    every: int = 1,
    resume: str | os.PathLike[str] | None = None,
    client: Any = None,
    evaluate_every: int = 1,
    epoch_loss: Literal["end", "steps"] = "end",
    diagnostics: bool = False,
    log_every: int = 1,
) -> FitResult:
    """Train ``net`` by gradient descent; return the trained parameters and a history.

    Each step takes a batch, computes the error E and its gradient by
    backpropagation (see :func:`batch_gradient`: a non-finite loss or gradient is
    traced to its first node by the engine's finite checks) and lets the
    optimizer update θ. The caller's ``params``, ``data``, graph and optimizer
    are never written to.

    Parameters
    ----------
    net : a compiled :class:`~graphdiff.network.Network`.
    params : initial parameters (name -> value), e.g. ``net.init_params(seed)``;
        ignored (may be ``None``) with ``resume``.
    data : input node -> array over all data points (the ``inputs`` of ``backward``):
        a dict, a pandas ``DataFrame`` (columns feed the inputs of their names) or a
        data set as :func:`graphdiff.feed` maps it (``{"x": ..., "t": ...}``, the
        built-in ones). The targets must be in the loss op's domain (``Op.targets``:
        -1/+1 for hinge and logistic, class indices for softmax cross-entropy),
        checked once per call: others raise :class:`~graphdiff.errors.TargetError`
        naming the loss node, the values found and the fix.
    optimizer : default ``SGD(lr=0.1)``, the lecture's θ ← θ − γ∇E (with
        ``resume``: the checkpoint's). Training continues from its current state;
        ``result.optimizer`` holds the final one.
    epochs : number of passes over the data, counting those before a resume.
    batch_size : ``None`` for full-batch gradient descent; an int for minibatches
        (the last one may be smaller); 1 for per-sample updates.
    shuffle : with minibatches, visit the data points in a new random order each
        epoch, drawn from ``np.random.default_rng(seed)``; ``False`` keeps their order.
    seed : seeds the shuffling (only).
    validation : data in the same form as ``data``; adds ``val_loss`` (and
        ``val_accuracy``) to the history.
    callbacks : each is called after every epoch with an :class:`EpochRecord`;
        a true return value stops training.
    target_loss : stop once the epoch's training loss is <= this.
    target_accuracy : stop once the epoch's training accuracy is >= this
        (``1.0``: once all examples are classified correctly, as the perceptron).
    progress : show a progress bar on stderr; ``None`` (default) shows it only
        when stderr is a terminal or in a Jupyter notebook. Independently, every
        ``log_every``-th epoch (and the last) is logged at INFO on the logger
        ``graphdiff.train`` (see :mod:`graphdiff.progress`), as is every
        checkpoint written.
    checkpoint : a file to write a :class:`~graphdiff.io.Checkpoint` to, atomically,
        every ``every`` epochs and when training ends: parameters, optimizer state,
        the shuffling generator's state, epoch, step, this call's settings,
        history and the graph's fingerprint. A failed write raises
        :class:`CheckpointError` and leaves the previous checkpoint as it was.
    every : epochs between checkpoints.
    resume : a checkpoint file to continue from. With the same data and
        settings, the parameters and history (but ``time``) are bit-identical to
        an uninterrupted run. A checkpoint of another graph or of another
        optimizer (name or hyperparameters), or one trained with another
        ``batch_size``, ``shuffle``, ``seed`` or ``epoch_loss`` (pass the saved
        ones; ``epochs``, the targets and ``every`` may change) is refused.
    evaluate_every : measure the loss (and accuracy, validation metrics) on the
        whole training set every this many epochs and after the last one; 0
        never (history rows then hold ``epoch`` and ``time`` only, and
        ``target_loss``/``target_accuracy`` are refused).
    client : a ``dask.distributed.Client`` to train data-parallel on its
        cluster (``pip install -e ".[dask]"``): ``data`` may then hold
        ``dask.array`` inputs chunked along the data-point axis, and each history
        row gains ``step_time`` and ``bytes_per_step``; the parameters equal
        in-process training's up to the order of float summation. See
        :mod:`graphdiff.distributed`.
    epoch_loss : ``"end"`` (default): each epoch's ``loss`` and ``accuracy`` are
        measured at the end of the epoch, with the epoch's final parameters, on
        the whole training set (see :func:`evaluate`); ``"steps"``: ``loss`` is
        the mean of the epoch's batch losses, each measured before its step's
        update and weighted by the batch's size (summed with ``reduction="sum"``),
        as Keras and scikit-learn's ``MLPClassifier`` report it, in every epoch
        whatever ``evaluate_every``; no ``accuracy`` is recorded and there is no
        extra pass over the training data.
    diagnostics : add to each history row ``"nodes"``: for every neuron and
        elementwise-activation op node, ``{"delta_rms": ..., "dead": ...,
        "saturated": ...}`` (see :mod:`graphdiff.diagnostics`), measured like the
        loss at the end of the epoch on the whole training set, at the cost of
        one more backward pass (with deltas) per epoch. Checkpoints keep them.
        Not with ``client``.
    log_every : log every this many epochs (and the last) at INFO on
        ``graphdiff.train``.

    Raises
    ------
    CheckpointError
        when a checkpoint cannot be written or the one to resume from cannot be read.
    TrainingDivergedError
        when a loss, value, delta, gradient or updated parameter is not finite;
        it names the epoch, the step and the first such node and carries the
        parameters from before the bad update.
    """
    net.require_loss("fit")
    epochs = _int_at_least("epochs", epochs, 0)
    every = _int_at_least("every", every, 1)
    seed = _int_at_least("seed", seed, 0)
    evaluate_every = _int_at_least("evaluate_every", evaluate_every, 0)
    given: object = callbacks  # checked: a caller may pass anything
    if isinstance(given, (str, bytes)) or not isinstance(given, Sequence) or not all(
        map(callable, given)
    ):
        raise FitError(f"callbacks must be a list of functions of the epoch's record, got "
                       f"{callbacks!r}")
    for name, target in (("target_loss", target_loss), ("target_accuracy", target_accuracy)):
        if target is not None and (
            isinstance(target, bool) or not isinstance(target, (int, float, np.number))
        ):
            raise FitError(f"{name} must be a number, got {target!r}")
    if not evaluate_every and (target_loss is not None or target_accuracy is not None):
        raise FitError("target_loss and target_accuracy need evaluate_every >= 1")
    if batch_size is not None:
        batch_size = _int_at_least("batch_size", batch_size, 1)
    log_every = _int_at_least("log_every", log_every, 1)
    if diagnostics and client is not None:
        raise FitError("diagnostics=True needs the training data in this process (no client=)")
    if client is None:
        local = InProcess(net, data)
        engine: Runner = local
        fed: Mapping[Hashable, Any] = local.data
    else:
        fed = fed_inputs(data, list(net.inputs), "data")
        engine = DataParallel(client, net, fed)
    val = None if validation is None else as_inputs(net, validation, "validation")
    if target_accuracy is not None and not is_classifier(net):
        raise FitError(
            "target_accuracy needs a classifier loss (one whose op declares predicts=, as "
            f"hinge, logistic, softmax_cross_entropy); loss node {net.loss!r} is op "
            f"{net.graph.nodes[net.loss].get('op')!r}"
        )
    if optimizer is not None and not isinstance(optimizer, Optimizer):
        raise FitError(f"optimizer must be a graphdiff Optimizer, got {type(optimizer).__name__}")
    if epoch_loss not in ("end", "steps"):
        raise FitError(f"epoch_loss must be 'end' or 'steps', got {epoch_loss!r}")
    if epoch_loss == "steps" and target_accuracy is not None:
        raise FitError("target_accuracy needs epoch_loss='end' (the accuracy at the epoch's end)")
    fingerprint = None if checkpoint is None and resume is None else graph_fingerprint(net.graph)
    rng = np.random.default_rng(seed)
    settings: dict[str, Any] = {
        "epochs": epochs, "batch_size": batch_size, "shuffle": shuffle, "seed": seed,
        "target_loss": target_loss, "target_accuracy": target_accuracy, "every": every,
        "epoch_loss": epoch_loss,
    }
    if resume is None:
        if params is None:
            raise FitError("params is required (unless resuming from a checkpoint)")
        if not isinstance(params, Mapping):
            raise FitError(f"params must map parameter names to values, got "
                           f"{type(params).__name__}")
        missing = [p for p in net._names if p not in params]
        if missing:
            raise InputError(f"params lacks parameter(s) {missing!r} of the network")
        if isinstance(params, Params) and params.layout.fingerprint == net.layout.fingerprint:
            current: Params = params.copy()
        else:
            # numeric and of each parameter's shape, copied into a vector of fit's own
            current = net._new_params(params)
        opt = copy.deepcopy(optimizer) if optimizer is not None else SGD(lr=0.1)
        history: list[dict[str, float]] = []
        epoch = steps = 0
    else:
        current, opt, history, epoch, steps = _resume(
            resume, net, optimizer, fingerprint, rng, settings
        )
    check_data(net, current, fed, "data")  # once per call: the targets fit the loss
    if val is not None:
        check_data(net, current, val, "validation")
    stopped = "epochs"
    show = (sys.stderr.isatty() or in_notebook()) if progress is None else bool(progress)
    bar = Progress(epochs, sys.stderr if show else None, log_every)
    try:
        while epoch < epochs:
            epoch += 1
            started = time.perf_counter()
            grads: Mapping[str, Any] = {}
            total = 0.0  # of the batch losses, weighted by size with the mean reduction
            with np.errstate(**QUIET):  # once per epoch: it costs microseconds
                for idx in _batches(engine.n, batch_size, shuffle, rng):
                    try:
                        res = engine.gradient(current, idx)
                    except NonFiniteError as e:
                        raise _diverged(e, epoch, steps + 1, e.node, e.phase, current) from e
                    new = opt.step(current, res.grads)
                    bad = _first_non_finite(new)
                    if bad is not None:
                        why = f"the optimizer's update made parameter {bad!r} non-finite"
                        raise _diverged(why, epoch, steps + 1, bad, "update", current)
                    current, grads = new, res.grads
                    steps += 1
                    size = engine.n if idx is None else len(idx)
                    total += float(res.loss) * (size if net.reduction == "mean" else 1)
            row: dict[str, float] = {"epoch": epoch}
            if epoch_loss == "steps":
                row["loss"] = total / engine.n if net.reduction == "mean" else total
            evaluated = evaluate_every and (epoch % evaluate_every == 0 or epoch == epochs)
            for prefix, d in [("", None), ("val_", val)]:
                if (prefix and d is None) or not evaluated or (
                    not prefix and epoch_loss == "steps"
                ):
                    continue
                with np.errstate(**QUIET):
                    try:  # the training data where it lives, validation data here
                        scores = engine.evaluate(current) if d is None else metrics(
                            net, current, d
                        )
                    except NonFiniteError as e:
                        what = "validation" if prefix else "training"
                        why = f"at the end of the epoch, on the {what} data, {e}"
                        raise _diverged(why, epoch, steps, e.node, "evaluation", current) from e
                row.update({prefix + k: v for k, v in scores.items()})
            if diagnostics:  # one more backward, with deltas, on the whole training set
                row["nodes"] = node_diagnostics(net, current, fed)  # type: ignore[assignment]
            row["time"] = time.perf_counter() - started
            row.update(engine.stats())
            history.append(row)
            record = EpochRecord(
                epoch, steps, current, grads, row.get("loss"), row.get("accuracy"), history
            )
            if any([bool(cb(record)) for cb in callbacks]):  # a list: every callback runs
                stopped = "callback"
            elif target_loss is not None and evaluated and row["loss"] <= target_loss:
                stopped = "target_loss"
            elif target_accuracy is not None and evaluated and row["accuracy"] >= target_accuracy:
                stopped = "target_accuracy"
            bar.update(row, steps, final=stopped != "epochs" or epoch == epochs)
            if checkpoint is not None and (
                epoch % every == 0 or stopped != "epochs" or epoch == epochs
            ):
                ckpt = Checkpoint(
                    params=current, optimizer=opt.state_dict(current.layout),
                    rng_state=dict(rng.bit_generator.state), epoch=epoch, step=steps,
                    config=settings, history=history, graph_fingerprint=fingerprint,
                )
                _save(checkpoint, ckpt, current)
                log.info("wrote checkpoint %s after epoch %d", os.fspath(checkpoint), epoch)
            if stopped != "epochs":
                break
    finally:
        bar.close()
        engine.close()
    return FitResult(current, history, stopped, epoch, steps, opt)


def _save(path: str | os.PathLike[str], ckpt: Checkpoint, params: Params) -> None:
    try:
        save_checkpoint(path, ckpt)
    except OSError as e:
        raise CheckpointError(
            f"could not write the checkpoint {os.fspath(path)!r} after epoch {ckpt.epoch} "
            f"({e}); the previous checkpoint there, if any, is unchanged, and the "
            "parameters reached are the error's .params",
            epoch=ckpt.epoch,
            params=params,
        ) from e


# Settings that change how a resumed training continues: a resume must use the
# checkpoint's (``epochs``, the targets and ``every`` may change).
RESUME_SETTINGS = ("batch_size", "shuffle", "seed", "epoch_loss")


def _resume(
    path: str | os.PathLike[str],
    net: Network,
    optimizer: Optimizer | None,
    fingerprint: str | None,
    rng: np.random.Generator,
    settings: Mapping[str, Any],
) -> tuple[Params, Optimizer, list[dict[str, float]], int, int]:
    """Parameters, optimizer, history, epoch and step from a checkpoint; rng continues.

    Refused (FitError, naming the checkpoint and what is wrong): another graph, other
    parameters or optimizer, settings that change how training continues
    (``RESUME_SETTINGS``) other than those recorded, and a checkpoint whose history
    or random state ``fit`` cannot have written."""
    where = os.fspath(path)
    try:
        ckpt = load_checkpoint(path)
    except OSError as e:
        raise CheckpointError(
            f"can't find a valid checkpoint at {where!r} to resume from: {e}", epoch=0, params={}
        ) from e
    if ckpt.graph_fingerprint != fingerprint:
        raise FitError(
            f"resume: the checkpoint {where!r} was written for another graph "
            f"(fingerprint {ckpt.graph_fingerprint}, this network's graph {fingerprint})"
        )
    if ckpt.optimizer is None or ckpt.rng_state is None:
        lacks = "optimizer state" if ckpt.optimizer is None else "rng_state"
        raise FitError(f"resume: the checkpoint {where!r} has no {lacks} (not written by fit)")
    params, layout = _saved_params(ckpt, net, where)
    saved = ckpt.optimizer
    try:
        if optimizer is None:
            opt = Optimizer.from_config(saved["name"], saved["config"])
        else:
            opt = copy.deepcopy(optimizer)
        # slots saved in another order of the same names: the optimizer lays them out
        # in the network's layout itself, at its first step
        opt.load_state_dict(saved, layout)
    except OptimizerError as e:
        raise FitError(f"resume: the checkpoint {where!r} cannot continue here: {e}") from e
    changed = [
        f"{k}: saved {ckpt.config[k]!r}, here {settings[k]!r}"
        for k in RESUME_SETTINGS if k in ckpt.config and ckpt.config[k] != settings[k]
    ]
    if changed:
        raise FitError(
            f"resume: the checkpoint {where!r} was trained with other settings "
            f"({'; '.join(changed)}); pass the saved ones to continue the same training"
        )
    for i, row in enumerate(ckpt.history):
        epoch = row.get("epoch")
        if epoch is None or epoch != int(epoch) or not 1 <= epoch <= ckpt.epoch:
            raise FitError(
                f"resume: the checkpoint {where!r} has history row {i} with epoch "
                f"{epoch!r}, not one fit writes (1 to {ckpt.epoch})"
            )
    try:
        rng.bit_generator.state = ckpt.rng_state
    except (TypeError, ValueError, KeyError) as e:
        raise FitError(
            f"resume: the checkpoint {where!r} has an rng_state this generator "
            f"({type(rng.bit_generator).__name__}) cannot take: {e!r}"[:500]
        ) from None
    history = [{**row, "epoch": int(row["epoch"])} for row in ckpt.history]
    return params, opt, history, ckpt.epoch, ckpt.step


def _saved_params(ckpt: Checkpoint, net: Network, where: str) -> tuple[Params, Layout]:
    """A checkpoint's parameters in the network's layout, and the layout they were saved
    in (the network's own, or one of the same names and shapes in another order).

    A vector of another dtype or a layout of other names or shapes is refused
    (FitError naming the file's field); per-name parameters (files of before
    issue 12) are checked as any mapping is."""
    params = ckpt.params
    if not isinstance(params, Params):
        if sorted(params) != sorted(net.params):
            raise FitError(
                f"resume: the checkpoint {where!r} holds parameters {sorted(params)}, "
                f"the network {sorted(net.params)}"
            )
        return net.as_params(params), net.layout
    mine, theirs = net.layout, params.layout
    want = mine.dtype
    if params.vector.dtype != want:
        raise FitError(
            f"resume: the checkpoint {where!r} holds a {params.vector.dtype.name} parameter "
            f"vector ('vector'), the network's parameters are {want.name}"
        )
    if theirs.fingerprint == mine.fingerprint:
        return Params(mine, params.vector), mine
    if theirs.shapes != mine.shapes:
        differ = sorted(
            (n for n in theirs.shapes.keys() | mine.shapes.keys()
             if theirs.shapes.get(n) != mine.shapes.get(n)), key=str
        )
        details = "; ".join(
            f"{n!r}: saved {theirs.shapes.get(n, 'none')}, here {mine.shapes.get(n, 'none')}"
            for n in differ[:5]
        )
        raise FitError(
            f"resume: the checkpoint {where!r} has a parameter layout ('layout') of other "
            f"names or shapes than the network's ({details})"
        )
    return Params.from_mapping(mine, params), theirs


def _diverged(
    why: object, epoch: int, step: int, node: object, phase: str, params: Mapping[str, Any]
) -> TrainingDivergedError:
    return TrainingDivergedError(
        f"training diverged in epoch {epoch}, step {step}, at node {node!r} ({phase}): {why}. "
        "No update was applied; the parameters in use are the error's .params",
        epoch=epoch,
        step=step,
        node=node,
        phase=phase,
        params=params,
    )
