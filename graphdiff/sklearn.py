"""scikit-learn estimators: a graphdiff network as a classifier or regressor.

:class:`GraphClassifier` and :class:`GraphRegressor` take the parameters of
scikit-learn's ``MLPClassifier`` and ``MLPRegressor`` where they mean the same
(``hidden_layer_sizes``, ``activation``, ``alpha``, ``batch_size``,
``learning_rate_init``, ``max_iter``, ``tol``, ``n_iter_no_change``,
``early_stopping``, ... with the same defaults and the same stopping rule) and
train with Adam, as ``MLPClassifier(solver="adam")`` does
(``hidden_layer_sizes=()`` is a linear model). Three parameters are graphdiff's own:

- ``notation``: ``"op"`` (default), one matrix product per layer, or
  ``"neuron"``, one node per neuron and one weight per edge, as the lecture
  draws a network (see :func:`graphdiff.mlp`);
- ``graph``: a network you drew yourself (a networkx DiGraph with one loss
  node), used instead of the layers. The loss's target operand (port 1) is fed
  from ``y``; the other inputs from the columns of ``X``: by name when ``X`` is
  a DataFrame whose columns include every input's name; else a graph's only
  input gets all of ``X``, (N, d), unless it feeds neurons only; else each
  input gets one column, in the graph's node order;
- ``dtype``: ``np.float64`` (default) or ``np.float32`` (also ``"float32"``), the
  network's float type (:func:`graphdiff.compile`): a float32 estimator takes ``X``
  as float32, trains in float32 and returns float32 predictions, probabilities
  and regression outputs.

Any labels work (0/1, -1/+1, strings, 1..K): they are encoded for the loss,
whose operands decide how (``logistic`` and ``hinge``: two classes as -1/+1;
``softmax_cross_entropy``: class indices 0..K-1). Everything scikit-learn
offers for estimators works with them: ``Pipeline``, ``cross_val_score``,
``GridSearchCV``, ``clone``, pickling.

This module is the only part of graphdiff that imports scikit-learn
(``pip install "graphdiff[sklearn]"``); ``import graphdiff`` does not.

>>> import numpy as np
>>> from graphdiff.sklearn import GraphClassifier
>>> X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]] * 10)
>>> y = np.array(["no", "yes", "yes", "yes"] * 10)
>>> clf = GraphClassifier((4,), learning_rate_init=0.1, random_state=0).fit(X, y)
>>> clf.classes_.tolist(), clf.predict([[0.0, 0.0], [1.0, 1.0]]).tolist()
(['no', 'yes'], ['no', 'yes'])
>>> clf.predict_proba([[0.0, 0.0]]).round(2)   # P('no'), P('yes')
array([[0.97, 0.03]])
>>> clf.n_iter_ < clf.max_iter   # stopped: the loss no longer improved by tol
True
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, ClassVar

import networkx as nx
import numpy as np
from numpy.typing import NDArray
from pydantic import Field
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from .build import mlp
from .compile import as_dtype
from .compile import compile as compile_graph
from .errors import GraphdiffError, GraphError
from .network import Network
from .optim import Adam, AdamConfig
from .params import Grads, Layout, Params
from .registry import ENGINE_OPS, Op, get_op
from .train import EpochRecord, fit

__all__ = ["EXPECTED_FAILED_CHECKS", "EstimatorError", "GraphClassifier", "GraphRegressor"]

Array = NDArray[np.float64]

#: scikit-learn estimator checks these estimators are known to fail, with the reason:
#: {class name: {check name: reason}}; the tests hand it to ``parametrize_with_checks``.
EXPECTED_FAILED_CHECKS: dict[str, dict[str, str]] = {}

# MLPClassifier's activation names -> graphdiff's elementwise ops
_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}


class EstimatorError(GraphdiffError, ValueError):
    """A parameter, graph or label set a graphdiff estimator cannot use; names the culprit."""


# -- the optimizer: Adam with MLPClassifier's L2 penalty on weights only -----------------


class _PenaltyConfig(AdamConfig):
    """Adam's hyperparameters plus ``l2``, the penalty's λ, and the parameters it reaches."""

    l2: float = Field(0.0, ge=0)
    penalized: tuple[str, ...] = ()


class PenalizedAdam(Adam):
    """Adam minimising E + λ/2·Σ w² over the weights ``penalized`` (biases stay free).

    ``MLPClassifier``'s ``alpha`` penalises its weight matrices but not its
    intercepts; the optimizer's own ``weight_decay`` would reach every parameter.
    """

    name = "penalized_adam"
    Config = _PenaltyConfig  # type: ignore[assignment]  # AdamConfig's fields and two more
    config: _PenaltyConfig

    def __init__(self, lr: float | None = None, **hyper: Any) -> None:
        super().__init__(lr, **hyper)
        self._masks: dict[str, Array] = {}  # by layout fingerprint

    def step(self, params: Mapping[str, Any], grads: Mapping[str, Any]) -> Any:
        lam, names = self.config.l2, self.config.penalized
        if not lam:
            return super().step(params, grads)
        if (
            type(params) is Params and type(grads) is Grads
            and grads.layout.fingerprint == params.layout.fingerprint
        ):  # the network's own vectors: one vectorised update
            key = params.layout.fingerprint
            if key not in self._masks:
                self._masks[key] = (lam * _mask(params.layout, names)).astype(params.vector.dtype)
            decay = self._masks[key] * params.vector
            return super().step(params, Grads(grads.layout, grads.vector + decay))
        decayed = dict(grads)
        for n in names:
            decayed[n] = decayed[n] + lam * np.asarray(params[n])
        return super().step(params, decayed)


def _mask(layout: Layout, names: Sequence[str]) -> Array:
    """1.0 where the entries of ``names`` lie in a vector of this layout, else 0.0."""
    mask = np.zeros(layout.size)
    for n in names:
        i = layout.where[n]
        if i >= 0:
            mask[i] = 1.0
        else:
            a, b, _ = layout.slices[~i]
            mask[a:b] = 1.0
    return mask


def _sum_squares(params: Mapping[str, Any], names: Sequence[str], masks: dict[str, Any]) -> float:
    """Σ w² over the parameters ``names``; ``masks`` caches their places by layout."""
    if type(params) is Params:
        key = params.layout.fingerprint
        if key not in masks:
            masks[key] = _mask(params.layout, names) > 0
        v = params.vector[masks[key]]
        return float(v @ v)
    return sum(float(np.sum(np.square(params[n]))) for n in names)


def _penalized(net: Network) -> list[str]:
    """The weights: parameters on edges and parameter tensors with 2+ axes (not biases)."""
    return [
        name for name, spec in net.params.items()
        if any(len(use) == 2 for use in spec.uses) or len(spec.shape) >= 2
    ]


# -- the estimators ---------------------------------------------------------------------


class _GraphEstimator(BaseEstimator):  # type: ignore[misc]
    """What the classifier and the regressor share: the network, training, feeding X."""

    def __init__(
        self,
        hidden_layer_sizes: Sequence[int] | int = (100,),
        activation: str = "relu",
        *,
        notation: str = "op",
        graph: Any = None,
        dtype: Any = np.float64,
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate_init: float = 0.001,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool = False,
        warm_start: bool = False,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int | float = 10,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.notation = notation
        self.graph = graph
        self.dtype = dtype
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change

    # -- pickling: the compiled network holds generated code; it is rebuilt from graph_

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = super().__getstate__()
        state.pop("_net", None)
        return state

    @property
    def net_(self) -> Network:
        """The compiled network (compiled again after unpickling)."""
        check_is_fitted(self, "graph_")
        net: Network | None = self.__dict__.get("_net")
        if net is None:
            dtype = self.__dict__.get("dtype_", np.float64)  # pickles from before dtype_
            net = self._net = compile_graph(self.graph_, loss=self.loss_node_, dtype=dtype)
        return net

    # -- the network ----------------------------------------------------------------

    def _check_params(self) -> None:
        def number(name: str, low: float, high: float | None = None, *, closed: bool) -> None:
            v = getattr(self, name)
            ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            if ok:
                ok = (v >= low if closed else v > low) and (high is None or v < high)
            if not ok:
                bound = f"{'>=' if closed else '>'} {low}" + (f" and < {high}" if high else "")
                raise EstimatorError(f"{name} must be a number {bound}, got {v!r}")

        def integer(name: str, low: int) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise EstimatorError(f"{name} must be an int >= {low}, got {v!r}")

        number("alpha", 0, closed=True)
        number("learning_rate_init", 0, closed=False)
        number("tol", 0, closed=True)
        number("validation_fraction", 0, 1, closed=False)
        number("beta_1", 0, 1, closed=True)
        number("beta_2", 0, 1, closed=True)
        number("epsilon", 0, closed=False)
        integer("max_iter", 1)
        if self.n_iter_no_change != np.inf:  # inf: never stop early, as MLPClassifier's
            integer("n_iter_no_change", 1)
        if self.batch_size != "auto":
            integer("batch_size", 1)
        self._float_type()
        if self.notation not in ("op", "neuron"):
            raise EstimatorError(f"notation must be 'op' or 'neuron', got {self.notation!r}")
        if self.graph is None:
            if self.activation not in _ACTIVATIONS:
                raise EstimatorError(
                    f"activation must be one of {sorted(_ACTIVATIONS)}, got {self.activation!r}"
                )
            if not all(
                isinstance(h, (int, np.integer)) and not isinstance(h, bool) and h >= 1
                for h in self._hidden()
            ):
                raise EstimatorError(
                    "hidden_layer_sizes must be ints >= 1, got "
                    f"{self.hidden_layer_sizes!r}"
                )
        elif not isinstance(self.graph, nx.DiGraph):
            raise EstimatorError(
                f"graph must be a networkx DiGraph, got {type(self.graph).__name__}"
            )

    def _hidden(self) -> list[Any]:
        h = self.hidden_layer_sizes
        return list(h) if isinstance(h, (list, tuple, np.ndarray)) else [h]

    def _graph_and_loss(self, n_features: int, n_outputs: int) -> tuple[Any, Hashable]:
        """The graph to train (a copy) and its loss node."""
        if self.graph is None:
            G = mlp(
                [n_features, *self._hidden(), n_outputs], _ACTIVATIONS[self.activation],
                notation="neuron" if self.notation == "neuron" else "op", loss=self._mlp_loss(),
            )
            return G, "E"
        return self.graph.copy(), _loss_node(self.graph)

    def _setup(self, X: Array, n_outputs: int) -> Network:
        """Compile the network and decide which columns of X feed which inputs."""
        G, loss = self._graph_and_loss(X.shape[1], n_outputs)
        net = compile_graph(G, loss=loss, dtype=self.dtype)
        by_port = {d.get("port"): u for u, _, d in net.graph.in_edges(loss, data=True)}
        target = by_port.get(1)
        if target not in net.inputs:
            raise GraphError(
                f"the loss node {loss!r} must take the target from an input node on port 1, "
                f"got {target!r}"
            )
        inputs = set(net.inputs) - {target}
        features = [n for n in net.graph if n in inputs]  # in the graph's order
        names = list(getattr(self, "feature_names_in_", []))
        columns: list[int | None]
        # a neuron takes one value per data point; another op may take all of X
        whole = len(features) == 1 and any(
            net.graph.nodes[v].get("op") != "neuron" for v in net.graph.successors(features[0])
        )
        if names and all(isinstance(n, str) and n in names for n in features):
            columns = [names.index(str(n)) for n in features]
        elif whole:
            columns = [None]
        elif len(features) == X.shape[1]:
            columns = list(range(len(features)))
        else:
            raise EstimatorError(
                f"X has {X.shape[1]} columns, the graph {len(features)} inputs "
                f"{features!r} besides the target {target!r}: give one column per input "
                "(or a DataFrame with their names), or draw a graph with one input for all of X"
            )
        self.graph_, self.loss_node_, self._net = net.graph, loss, net
        self.dtype_ = net.dtype
        self.target_node_, self.prediction_node_ = target, by_port.get(0)
        self.inputs_ = dict(zip(features, columns, strict=True))
        return net

    def _feed(self, X: Array) -> dict[Hashable, Array]:
        return {n: X if c is None else X[:, c] for n, c in self.inputs_.items()}

    def _forward(self, params: Mapping[str, Any], X: Array) -> Array:
        """The prediction node's values (the loss's operand on port 0)."""
        out = self.net_.forward(params, self._feed(X), outputs=[self.prediction_node_])
        return out[self.prediction_node_]

    # -- training -------------------------------------------------------------------

    def _train(self, X: Array, t: Array, *, incremental: bool) -> None:
        """Train on X and the encoded targets t: max_iter epochs, or one for partial_fit."""
        self._check_params()
        if self.early_stopping and incremental:
            raise EstimatorError("partial_fit does not support early_stopping=True")
        rng = check_random_state(self.random_state)
        first = not hasattr(self, "params_") or not (self.warm_start or incremental)
        if first:
            net = self._setup(X, self._n_outputs(t))
            self.params_ = net.init_params(seed=int(rng.randint(np.iinfo(np.int32).max)))
            self.n_iter_ = 0
            self.t_ = 0
            self.loss_curve_: list[float] = []
            self._no_improvement_count = 0
            self.best_loss_: float | None = None if self.early_stopping else np.inf
            self.validation_scores_: list[float] | None = [] if self.early_stopping else None
            self.best_validation_score_ = -np.inf if self.early_stopping else None
        else:
            net = self.net_
        X_val = t_val = None
        if self.early_stopping:
            stratify = t if isinstance(self, ClassifierMixin) else None
            X, X_val, t, t_val = train_test_split(
                X, t, random_state=rng, test_size=self.validation_fraction, stratify=stratify
            )
            if X_val.shape[0] < 2:
                raise EstimatorError(
                    "early_stopping: the validation set is too small; increase "
                    "validation_fraction or give more data"
                )
        n = X.shape[0]
        batch = min(200, n) if self.batch_size == "auto" else min(int(self.batch_size), n)
        scale = self._loss_scale(t)
        if not incremental or not hasattr(self, "optimizer_"):
            self.optimizer_ = PenalizedAdam(
                lr=self.learning_rate_init, beta1=self.beta_1, beta2=self.beta_2,
                eps=self.epsilon, l2=self.alpha * scale / batch,
                penalized=tuple(_penalized(net)),
            )
        penalized = self.optimizer_.config.penalized
        best_params = self.params_
        masks: dict[str, Any] = {}

        def stop(record: EpochRecord) -> bool:
            """MLPClassifier's rule: no better by tol for more than n_iter_no_change epochs."""
            nonlocal best_params
            weights = _sum_squares(record.params, penalized, masks)
            assert record.loss is not None  # epoch_loss="steps": a loss every epoch
            loss = record.loss / scale + 0.5 * self.alpha * weights / batch
            self.loss_curve_.append(loss)
            if X_val is not None and t_val is not None and self.validation_scores_ is not None:
                score = self._score_encoded(record.params, X_val, t_val)
                self.validation_scores_.append(score)
                assert self.best_validation_score_ is not None
                worse = score < self.best_validation_score_ + self.tol
                if score > self.best_validation_score_:
                    self.best_validation_score_, best_params = score, record.params
            else:
                assert self.best_loss_ is not None
                worse = loss > self.best_loss_ - self.tol
                self.best_loss_ = min(self.best_loss_, loss)
            self._no_improvement_count = self._no_improvement_count + 1 if worse else 0
            return self._no_improvement_count > self.n_iter_no_change and not incremental

        data = {**self._feed(X), self.target_node_: t}
        result = fit(
            net, self.params_, data, optimizer=self.optimizer_,
            epochs=1 if incremental else self.max_iter, batch_size=batch,
            shuffle=bool(self.shuffle), seed=int(rng.randint(np.iinfo(np.int32).max)),
            callbacks=[stop], progress=bool(self.verbose), epoch_loss="steps",
        )
        self.params_ = best_params if self.early_stopping else result.params
        assert isinstance(result.optimizer, PenalizedAdam)
        self.optimizer_ = result.optimizer
        self.n_iter_ += result.epochs
        self.t_ += result.epochs * n
        if not incremental and result.stopped == "epochs":
            warnings.warn(
                f"{type(self).__name__}: max_iter={self.max_iter} epochs reached and the "
                "optimization hasn't converged yet",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _loss_scale(self, t: Array) -> float:
        """The loss node's E over MLP's loss: squared_error has no 1/2 and sums outputs."""
        if self.graph_.nodes[self.loss_node_].get("op") == "squared_error":
            return 2.0 * (1 if t.ndim == 1 else t.shape[1])
        return 1.0

    def _mlp_loss(self) -> str:
        """The loss op of the network built from hidden_layer_sizes."""
        raise NotImplementedError

    def _n_outputs(self, t: Array) -> int:
        """The number of output units of the network built from hidden_layer_sizes."""
        return 1 if t.ndim == 1 else int(t.shape[1])

    def _score_encoded(self, params: Mapping[str, Any], X: Array, t: Array) -> float:
        raise NotImplementedError

    def _float_type(self) -> np.dtype[Any]:
        """``dtype`` as a numpy dtype; anything but float64 or float32 is refused."""
        try:
            return as_dtype(self.dtype)
        except GraphError as e:
            raise EstimatorError(str(e)) from None

    def _validate(self, X: Any, y: Any = "no_validation", *, reset: bool) -> Any:
        """X as (N, d) of the network's float type (``dtype`` when fitting, the fitted
        network's after), with y when given: scikit-learn's checks and messages."""
        dtype = self._float_type() if reset else self.__dict__.get("dtype_", np.float64)
        if isinstance(y, str) and y == "no_validation":
            return validate_data(self, X, reset=reset, dtype=dtype)
        return validate_data(
            self, X, y, reset=reset, dtype=dtype, multi_output=self._multi_output
        )

    _multi_output: ClassVar[bool] = False


def _loss_node(G: Any) -> Hashable:
    """The one node of a user's graph whose op is a loss."""
    losses: list[Hashable] = [
        n for n, op in G.nodes(data="op")
        if isinstance(op, str) and op not in ENGINE_OPS and get_op(op).loss
    ]
    if len(losses) != 1:
        raise GraphError(
            f"graph must have exactly one loss node (an op such as logistic, "
            f"softmax_cross_entropy or squared_error); found {losses!r}"
        )
    return losses[0]


class GraphClassifier(ClassifierMixin, _GraphEstimator):  # type: ignore[misc]
    """A graphdiff network as a scikit-learn classifier, parameters as ``MLPClassifier``'s.

    Two classes train a single output with the ``logistic`` loss on targets
    -1/+1, more a softmax layer with ``softmax_cross_entropy`` on the class
    indices, as ``MLPClassifier`` does. With ``graph``, its loss op decides:
    ``logistic`` and ``hinge`` take two classes, ``softmax_cross_entropy`` any
    number (the prediction node must have one column per class), and so does a
    registered loss op as it declares (``Op.predicts``, ``Op.proba``).

    Attributes
    ----------
    classes_ : the class labels, sorted; ``predict`` returns them.
    params_ : the trained parameters by name (as :func:`graphdiff.fit` returns them).
    graph_, loss_node_ : the graph trained and its loss node; ``net_`` the compiled network.
    loss_curve_ : the training loss of each epoch, as ``MLPClassifier``'s: the
        mean of the epoch's batch losses (each before its step's update), plus
        ``alpha``'s penalty (at the epoch's final weights).
    n_iter_ : epochs trained; ``best_loss_``, ``validation_scores_``,
        ``best_validation_score_``, ``t_`` as ``MLPClassifier``'s.
    """

    def fit(self, X: Any, y: Any) -> GraphClassifier:
        """Train on X (N, d) and labels y (N,) of any kind; returns self."""
        X, y = self._validate(X, y, reset=True)
        self._encode(y, classes=None, reset=True)
        self._train(X, self._targets(y), incremental=False)
        return self

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> GraphClassifier:
        """One epoch over X, y; the first call needs ``classes``, every label there may be."""
        first = not hasattr(self, "classes_")
        X, y = self._validate(X, y, reset=first)
        if first:
            if classes is None:
                raise EstimatorError("partial_fit: the first call needs classes=")
            self._encode(np.asarray(classes), classes=classes, reset=True)
        unknown = np.setdiff1d(unique_labels(y), self.classes_)
        if unknown.size:
            raise EstimatorError(
                f"partial_fit: y has labels {unknown.tolist()} not in classes_ "
                f"{self.classes_.tolist()}"
            )
        self._train(X, self._targets(y), incremental=True)
        return self

    def _encode(self, y: Any, *, classes: Any, reset: bool) -> None:
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y if classes is None else classes)
        if len(encoder.classes_) < 2:
            raise EstimatorError(
                f"y has one class only ({encoder.classes_.tolist()}); a classifier needs 2+"
            )
        self._encoder, self.classes_ = encoder, encoder.classes_

    def _mlp_loss(self) -> str:
        return "logistic" if len(self.classes_) == 2 else "softmax_cross_entropy"

    def _loss_op(self) -> Op:
        """The loss op: the graph's, or the one the layers are built with."""
        if self.graph is None:
            return get_op(self._mlp_loss())
        return get_op(self.graph.nodes[_loss_node(self.graph)]["op"])

    def _n_outputs(self, t: Array) -> int:
        return 1 if self._loss_op().predicts == "sign" else len(self.classes_)

    def _targets(self, y: Any) -> Array:
        """Labels as the loss takes them: -1/+1 (two classes) or class indices 0..K-1."""
        y = column_or_1d(y, warn=True)
        idx: Array = np.asarray(self._encoder.transform(y), dtype=np.float64)
        op, k = self._loss_op(), len(self.classes_)
        if op.predicts == "sign":
            if k != 2:
                raise EstimatorError(
                    f"the graph's loss {op.name!r} takes two classes (-1/+1); y has {k}: "
                    f"{self.classes_.tolist()} (softmax_cross_entropy takes any number)"
                )
            return 2.0 * idx - 1.0
        if op.predicts == "argmax":
            return idx
        raise EstimatorError(
            f"GraphClassifier needs a classifier loss (logistic, hinge, softmax_cross_entropy "
            f"or a registered op that declares predicts); the graph's loss is {op.name!r}"
        )

    def _indices(self, params: Mapping[str, Any], X: Array) -> NDArray[np.intp]:
        """Class indices into classes_: the network's labels (+1/-1 or argmax) encoded."""
        labels = np.ravel(self.net_.predict(params, self._feed(X)))
        if self._loss_op().predicts == "sign":
            labels = labels > 0
        return np.asarray(labels, dtype=np.intp)

    def _score_encoded(self, params: Mapping[str, Any], X: Array, t: Array) -> float:
        truth = t > 0 if self._loss_op().predicts == "sign" else t
        return float(accuracy_score(truth.astype(np.intp), self._indices(params, X)))

    def predict(self, X: Any) -> Any:
        """The class label (one of ``classes_``) of each row of X."""
        check_is_fitted(self, "params_")
        X = self._validate(X, reset=False)
        return self.classes_[self._indices(self.params_, X)]

    def _has_proba(self) -> bool:
        return self._loss_op().proba is not None if self.graph is not None else True

    @available_if(_has_proba)  # type: ignore[untyped-decorator]
    def predict_proba(self, X: Any) -> Array:
        """Class probabilities, shape (N, n_classes), columns in the order of ``classes_``.

        As the loss models them (``Network.predict_proba``): ``logistic``,
        P(classes_[1]) = sigmoid(z) and 1 - that for classes_[0];
        ``softmax_cross_entropy``, softmax(z). Only for losses with probabilities
        (not ``hinge``). Of the network's float type: float32 with ``dtype="float32"``.
        """
        check_is_fitted(self, "params_")
        X = self._validate(X, reset=False)
        proba = self.net_.predict_proba(self.params_, self._feed(X))
        if self._loss_op().predicts == "sign":
            p = proba.reshape(len(X))
            return np.column_stack([1.0 - p, p])
        return proba

    @available_if(_has_proba)  # type: ignore[untyped-decorator]
    def predict_log_proba(self, X: Any) -> Array:
        """The logarithm of :meth:`predict_proba`."""
        proba: Array = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(proba)


class GraphRegressor(RegressorMixin, _GraphEstimator):  # type: ignore[misc]
    """A graphdiff network as a scikit-learn regressor, parameters as ``MLPRegressor``'s.

    The network ends in a linear layer with one output per target column and
    the ``squared_error`` loss; with ``graph``, the graph's loss is trained.
    ``loss_curve_`` is in ``MLPRegressor``'s units (half the mean squared error
    per output, plus ``alpha``'s penalty), and so is ``alpha``: graphdiff's
    ``squared_error`` has no factor 1/2, the penalty is scaled to keep
    ``MLPRegressor``'s minimiser. Attributes as :class:`GraphClassifier`'s.
    """

    _multi_output = True

    def _mlp_loss(self) -> str:
        return "squared_error"

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X: Any, y: Any) -> GraphRegressor:
        """Train on X (N, d) and real targets y, (N,) or (N, k); returns self."""
        X, y = self._validate(X, y, reset=True)
        self._train(X, self._targets(y), incremental=False)
        return self

    def partial_fit(self, X: Any, y: Any) -> GraphRegressor:
        """One epoch over X, y (the first call sets the network up)."""
        X, y = self._validate(X, y, reset=not hasattr(self, "params_"))
        self._train(X, self._targets(y), incremental=True)
        return self

    def _targets(self, y: Any) -> Array:
        t: Array = np.asarray(y, dtype=np.float64)
        return np.ravel(t) if t.ndim == 2 and t.shape[1] == 1 else t

    def predict(self, X: Any) -> Array:
        """The network's prediction for each row of X: (N,), or (N, k) for k targets,
        of the network's float type (float32 with ``dtype="float32"``; scikit-learn's
        ``check_regressor_multioutput`` expects float64, the one check such an
        estimator fails)."""
        check_is_fitted(self, "params_")
        X = self._validate(X, reset=False)
        return self._forward(self.params_, X)

    def _score_encoded(self, params: Mapping[str, Any], X: Array, t: Array) -> float:
        return float(r2_score(t, self._forward(params, X)))
