"""graphdiff.sklearn: scikit-learn's own estimator checks, and its tools at work.

Expected values come from scikit-learn (MLPClassifier run as an oracle on the
same data) or from the data (labels), never from graphdiff's own output.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings
from typing import Any

import networkx as nx
import numpy as np
import pytest
from numpy.typing import NDArray

pytest.importorskip("sklearn")

from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import graphdiff
from graphdiff.errors import GraphError
from graphdiff.sklearn import (
    EXPECTED_FAILED_CHECKS,
    EstimatorError,
    GraphClassifier,
    GraphRegressor,
    PenalizedAdam,
)

# small, fast instances: few epochs, a large step to make up for them
CHECKED = [
    GraphClassifier((8,), learning_rate_init=0.05, max_iter=40, random_state=0),
    GraphRegressor((8,), learning_rate_init=0.05, max_iter=40, random_state=0),
    # float32 networks: the same checks (X taken as float32, float32 outputs)
    GraphClassifier((8,), dtype="float32", learning_rate_init=0.05, max_iter=40, random_state=0),
    GraphRegressor((8,), dtype="float32", learning_rate_init=0.05, max_iter=40, random_state=0),
]


def expected_failures(estimator: Any) -> dict[str, str]:
    failed = dict(EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {}))
    if isinstance(estimator, GraphRegressor) and estimator.dtype == "float32":
        # scikit-learn asks multi-output regressors for float64 predictions
        failed["check_regressor_multioutput"] = "a float32 network predicts float32"
    return failed


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(CHECKED, expected_failed_checks=expected_failures)
def test_sklearn_estimator_checks(estimator: Any, check: Any) -> None:
    check(estimator)


# -- scikit-learn stays optional ------------------------------------------------------


def test_import_graphdiff_does_not_import_sklearn() -> None:
    code = "import sys, graphdiff; print(sorted(m for m in sys.modules if m.startswith('sklearn')))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


# -- real data, scikit-learn's tools ---------------------------------------------------


@pytest.mark.parametrize("notation", ["op", "neuron"])
def test_breast_cancer_cross_val_score_with_0_1_labels(notation: str) -> None:
    X, y = load_breast_cancer(return_X_y=True)
    assert set(np.unique(y)) == {0, 1}
    model = make_pipeline(StandardScaler(), GraphClassifier(
        (16,), notation=notation, learning_rate_init=0.01, max_iter=30, random_state=0
    ))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(model, X, y, cv=3)
    assert scores.mean() >= 0.94


def blobs(labels: list[Any], n: int = 40, seed: int = 0) -> tuple[NDArray[np.float64], Any]:
    """Well-separated Gaussian blobs, one per label, centres on a circle of radius 4."""
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * np.arange(len(labels)) / len(labels)
    centres = 4 * np.column_stack([np.cos(angles), np.sin(angles)])
    X = np.concatenate([c + 0.5 * rng.standard_normal((n, 2)) for c in centres])
    y = np.repeat(np.array(labels), n)
    return X, y


@pytest.mark.parametrize(
    "labels", [[0, 1], [-1, 1], ["cat", "dog"], [1, 2, 3], ["a", "b", "c", "d"]],
    ids=str,
)
def test_any_labels(labels: list[Any]) -> None:
    X, y = blobs(labels)
    clf = GraphClassifier((8,), learning_rate_init=0.05, max_iter=60, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    assert clf.classes_.tolist() == sorted(labels)
    assert clf.predict(X).dtype == y.dtype
    assert clf.score(X, y) == 1.0  # the blobs are 8 standard deviations apart
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), len(labels))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert (clf.classes_[proba.argmax(axis=1)] == clf.predict(X)).all()
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), proba, rtol=1e-12)


def test_one_class_is_refused() -> None:
    with pytest.raises(EstimatorError, match="one class"):
        GraphClassifier((2,), max_iter=1).fit(np.zeros((4, 2)), ["a"] * 4)


def test_pickle_clone_pipeline_grid_search() -> None:
    X, y = blobs(["no", "yes"])
    model = make_pipeline(
        StandardScaler(), GraphClassifier((4,), learning_rate_init=0.05, random_state=0)
    )
    grid = GridSearchCV(model, {"graphclassifier__alpha": [1e-4, 1.0]}, cv=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        grid.fit(X, y)
    assert grid.best_score_ == 1.0
    fitted = grid.best_estimator_
    again = pickle.loads(pickle.dumps(fitted))  # noqa: S301  (our own bytes)
    np.testing.assert_array_equal(again.predict_proba(X), fitted.predict_proba(X))
    fresh = clone(fitted)
    assert not hasattr(fresh[-1], "params_") and fresh.get_params()["graphclassifier__alpha"] in (
        1e-4, 1.0,
    )


def test_partial_fit() -> None:
    X, y = blobs(["a", "b", "c"])
    clf = GraphClassifier((8,), learning_rate_init=0.05, random_state=0)
    with pytest.raises(EstimatorError, match="classes="):
        clf.partial_fit(X, y)
    for epoch in range(1, 31):
        clf.partial_fit(X, y, classes=["a", "b", "c"])
        assert clf.n_iter_ == epoch and len(clf.loss_curve_) == epoch
    assert clf.loss_curve_[-1] < clf.loss_curve_[0] / 4
    assert clf.score(X, y) == 1.0
    with pytest.raises(EstimatorError, match=r"\['z'\] not in classes_"):
        clf.partial_fit(X[:2], ["a", "z"])


def test_warm_start_continues_and_a_cold_fit_starts_over() -> None:
    X, y = blobs([0, 1])
    kw: dict[str, Any] = {"max_iter": 5, "tol": 0.0, "n_iter_no_change": 100, "random_state": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warm = GraphClassifier((4,), warm_start=True, **kw).fit(X, y).fit(X, y)
        cold = GraphClassifier((4,), **kw).fit(X, y).fit(X, y)
    assert warm.n_iter_ == 10 and len(warm.loss_curve_) == 10
    assert cold.n_iter_ == 5 and len(cold.loss_curve_) == 5


def test_stopping_rule_is_mlp_classifiers() -> None:
    # a loss that cannot improve by tol stops after n_iter_no_change + 1 epochs, as MLP's
    X, y = blobs([0, 1])
    kw: dict[str, Any] = {"max_iter": 100, "tol": 1e9, "n_iter_no_change": 3, "random_state": 0}
    ours = GraphClassifier((4,), **kw).fit(X, y)
    theirs = MLPClassifier((4,), **kw).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ == 5
    assert len(ours.loss_curve_) == 5
    kw.update(n_iter_no_change=np.inf, max_iter=7)  # never stop early
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours, theirs = GraphClassifier((4,), **kw).fit(X, y), MLPClassifier((4,), **kw).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ == 7


def test_early_stopping_keeps_the_best_validation_score() -> None:
    X, y = blobs([0, 1, 2], n=30)
    clf = GraphClassifier(
        (8,), early_stopping=True, learning_rate_init=0.05, max_iter=200, random_state=0
    ).fit(X, y)
    assert clf.validation_scores_ is not None and len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_) == 1.0
    assert clf.n_iter_ < 200  # stopped: no improvement over a perfect score


# -- alpha: MLPClassifier's L2 penalty, on weights only ------------------------------------


def test_penalized_adam_decays_weights_not_biases() -> None:
    # one Adam step by hand (numpy) on g + λ w for the weight, g for the bias
    lam, lr = 0.3, 0.01
    p = {"W": np.array([[1.0, -2.0]]), "b": np.array([0.5, 0.5])}
    g = {"W": np.array([[0.1, 0.2]]), "b": np.array([1.0, -1.0])}
    opt = PenalizedAdam(lr=lr, l2=lam, penalized=("W",))
    new = opt.step(p, g)
    for name, grad in (("W", g["W"] + lam * p["W"]), ("b", g["b"])):
        m, v = 0.1 * grad, 0.001 * grad**2
        expected = p[name] - lr * (m / 0.1) / (np.sqrt(v / 0.001) + 1e-8)
        np.testing.assert_allclose(new[name], expected, rtol=1e-12)


@pytest.mark.parametrize("notation", ["op", "neuron"])
def test_penalized_adam_on_a_networks_vectors_equals_name_by_name(notation: str) -> None:
    net = graphdiff.compile(graphdiff.mlp([2, 3, 2], notation=notation,  # type: ignore[arg-type]
                                          loss="softmax_cross_entropy"), loss="E")
    rng = np.random.default_rng(0)
    data = {"x": rng.standard_normal((5, 2)), "t": np.array([0.0, 1.0, 1.0, 0.0, 1.0])}
    params = net.init_params(0)
    grads = net.backward(params, graphdiff.feed(net, data)).grads
    weights = [n for n in params if n.startswith("W") or "->" in n]
    assert sum(np.size(params[n]) for n in weights) == 2 * 3 + 3 * 2
    as_vectors = PenalizedAdam(lr=0.01, l2=0.5, penalized=tuple(weights)).step(params, grads)
    by_name = PenalizedAdam(lr=0.01, l2=0.5, penalized=tuple(weights)).step(
        dict(params), dict(grads)
    )
    for n in params:
        np.testing.assert_allclose(as_vectors[n], by_name[n], rtol=1e-15, atol=0)


@pytest.mark.parametrize("dtype", [np.float64, "float32"])
def test_linear_regressor_with_alpha_is_ridge(dtype: Any) -> None:
    # no hidden layer, full batch: MLPRegressor's objective times 2N is Ridge's
    rng = np.random.default_rng(1)
    X = rng.standard_normal((60, 3))
    y = X @ np.array([1.5, -2.0, 0.5]) + 0.3 + 0.1 * rng.standard_normal(60)
    reg = GraphRegressor(
        (), alpha=20.0, batch_size=60, learning_rate_init=0.05, max_iter=3000, tol=0,
        n_iter_no_change=3000, shuffle=False, random_state=0, dtype=dtype,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, y)
    ridge = Ridge(alpha=20.0).fit(X, y)
    assert reg.params_.vector.dtype == np.dtype(dtype) and reg.predict(X).dtype == np.dtype(dtype)
    np.testing.assert_allclose(reg.params_["W1"].ravel(), ridge.coef_, atol=1e-4)
    np.testing.assert_allclose(reg.params_["b1"], ridge.intercept_, atol=1e-4)


def test_linear_classifier_with_alpha_is_logistic_regression() -> None:
    # no hidden layer, full batch: the logistic loss plus alpha/2 |w|^2 / N is
    # LogisticRegression's objective with C = 1 / alpha
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X[:, :5])
    clf = GraphClassifier(
        (), alpha=5.0, batch_size=len(X), learning_rate_init=0.05, max_iter=3000, tol=0,
        n_iter_no_change=3000, shuffle=False, random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    oracle = LogisticRegression(C=1 / 5.0, tol=1e-10, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(clf.params_["W1"].ravel(), oracle.coef_.ravel(), atol=1e-4)
    np.testing.assert_allclose(clf.params_["b1"], oracle.intercept_, atol=1e-4)


# -- float32 networks -------------------------------------------------------------------


@pytest.mark.parametrize("notation", ["op", "neuron"])
def test_digits_pipeline_in_float32(notation: str) -> None:
    """A float32 Pipeline on the digits data learns as well as the float64 one, and
    hands back float32 probabilities that survive pickling."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    scores, models = {}, {}
    for dtype in (np.float64, "float32"):
        model = make_pipeline(StandardScaler(), GraphClassifier(
            (32,), notation=notation, dtype=dtype, learning_rate_init=0.01, max_iter=30,
            random_state=0,
        ))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X_train, y_train)
        scores[str(np.dtype(dtype))] = float(model.score(X_test, y_test))
        models[str(np.dtype(dtype))] = model
    print(f"digits {notation}: test accuracy {scores}")
    assert scores["float64"] > 0.9
    assert abs(scores["float32"] - scores["float64"]) <= 0.02
    model = models["float32"]
    clf = model[-1]
    assert clf.params_.vector.dtype == np.float32 and clf.net_.dtype == np.float32
    proba = model.predict_proba(X_test)
    assert proba.dtype == np.float32 and proba.shape == (len(X_test), 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    again = pickle.loads(pickle.dumps(model))  # noqa: S301  (our own bytes)
    np.testing.assert_array_equal(again.predict_proba(X_test), proba)
    assert clone(model).get_params()["graphclassifier__dtype"] == "float32"


def test_float32_two_classes_and_partial_fit() -> None:
    X, y = blobs(["no", "yes"])
    clf = GraphClassifier((4,), dtype=np.float32, learning_rate_init=0.05, random_state=0)
    for _ in range(20):
        clf.partial_fit(X, y, classes=["no", "yes"])
    assert clf.params_.vector.dtype == np.float32
    proba = clf.predict_proba(X)
    assert proba.dtype == np.float32
    assert (clf.classes_[proba.argmax(axis=1)] == y).mean() >= 0.95


@pytest.mark.parametrize("bad", ["float16", np.int32, "double precision", None])
def test_other_dtypes_are_refused_naming_the_parameter(bad: Any) -> None:
    X, y = blobs(["no", "yes"])
    with pytest.raises(EstimatorError, match="dtype"):
        GraphClassifier((2,), dtype=bad, max_iter=1).fit(X, y)


# -- a graph you drew -------------------------------------------------------------------


def drawn_linear_graph() -> nx.DiGraph[Any]:
    """z = w_a a + w_b b + bias, one neuron; squared error against the input 'target'."""
    G: nx.DiGraph[Any] = nx.DiGraph()
    G.add_nodes_from(["a", "b", "target"], op="input")
    G.add_node("z", op="neuron", activation="identity", bias=0.0)
    G.add_edges_from([("a", "z"), ("b", "z")])
    G.add_node("loss", op="squared_error")
    G.add_edge("z", "loss", port=0)
    G.add_edge("target", "loss", port=1)
    return G


# no penalty, and no stopping before max_iter
EXACT: dict[str, Any] = {
    "alpha": 0.0, "learning_rate_init": 0.1, "max_iter": 400, "tol": 0.0,
    "n_iter_no_change": 400, "random_state": 0,
}


def test_drawn_graph_takes_dataframe_columns_by_name() -> None:
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.standard_normal((80, 3)), columns=["b", "noise", "a"])
    y = 3.0 * X["a"] - 2.0 * X["b"] + 1.0
    G = drawn_linear_graph()
    reg = GraphRegressor(graph=G, **EXACT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, y)
    assert reg.params_["a->z"] == pytest.approx(3.0, abs=1e-3)
    assert reg.params_["b->z"] == pytest.approx(-2.0, abs=1e-3)
    assert reg.params_["z.bias"] == pytest.approx(1.0, abs=1e-3)
    assert reg.score(X, y) > 0.999
    assert nx.utils.graphs_equal(G, drawn_linear_graph())  # the user's graph is untouched


def test_drawn_graph_takes_array_columns_in_node_order() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 2))  # columns: a, b (the graph's node order)
    y = 3.0 * X[:, 0] - 2.0 * X[:, 1] + 1.0
    reg = GraphRegressor(graph=drawn_linear_graph(), **EXACT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, y)
    assert reg.params_["a->z"] == pytest.approx(3.0, abs=1e-3)
    with pytest.raises(EstimatorError, match="X has 3 columns, the graph 2 inputs"):
        GraphRegressor(graph=drawn_linear_graph()).fit(np.zeros((4, 3)), np.zeros(4))


def test_drawn_hinge_classifier_has_no_probabilities() -> None:
    G = drawn_linear_graph()
    G.nodes["loss"]["op"] = "hinge"
    X, y = blobs(["left", "right"])
    clf = GraphClassifier(graph=G, learning_rate_init=0.1, max_iter=20, random_state=0)
    assert not hasattr(clf, "predict_proba")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    assert clf.score(X, y) > 0.95
    with pytest.raises(EstimatorError, match="takes two classes"):
        clf.fit(*blobs([1, 2, 3]))


def test_graph_without_one_loss_is_refused() -> None:
    G = drawn_linear_graph()
    G.remove_node("loss")
    with pytest.raises(GraphError, match="exactly one loss node"):
        GraphRegressor(graph=G).fit(np.zeros((4, 2)), np.zeros(4))
