"""Every example in examples/ runs (with --fast) and shows what its docstring says.

Each example's ``main(argv)`` returns its key numbers; the checks below hold
them to expectations from the lecture (equal gradients, the orders of finite
difference errors, path counts 3^depth, ...) or to independent computations,
never to the example's own output.
"""

from __future__ import annotations

import ast
import itertools
import math
import runpy
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_viz import check_png

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))


def run(path: Path, *args: str) -> dict[str, Any]:
    main: Callable[[list[str]], dict[str, Any]] = runpy.run_path(str(path))["main"]
    return main(["--fast", *args])


# -- the checks, one per example ------------------------------------------------------------


def expect_quickstart(r: dict[str, Any]) -> None:
    # by hand: h = tanh(0.5 x1 - x2 + 0.1), y = 2 h, E = mean log(1 + exp(-t y))
    x1, x2, t = np.array([1.0, -2.0]), np.array([0.5, 1.0]), np.array([1.0, -1.0])
    h = np.tanh(0.5 * x1 - 1.0 * x2 + 0.1)
    y = 2.0 * h
    dy = -t / (1.0 + np.exp(t * y)) / len(t)
    dz = dy * 2.0 * (1.0 - h**2)
    expected = {"h.bias": dz.sum(), "v": (dy * h).sum(), "w1": (dz * x1).sum(),
                "w2": (dz * x2).sum()}
    assert r["loss"] == pytest.approx(np.mean(np.log1p(np.exp(-t * y))), rel=1e-13)
    assert r["grads"] == pytest.approx(expected, rel=1e-12)


def expect_perceptron(r: dict[str, Any]) -> None:
    assert r["converged"] and r["accuracy"] == 1.0 and r["updates"] > 0
    for start in ("zero weights", "random start"):
        # the perceptron rule and SGD on the hinge agree to the last bit, step by step
        assert r[start]["updates"] > 0
        assert r[start]["step_diff"] == 0.0 and r[start]["epoch_diff"] == 0.0


def expect_perceptron_vs_nearest_mean(r: dict[str, Any]) -> None:
    assert r["perceptron_converged"]
    assert r["perceptron"] == {"accuracy": 1.0, "error": 0.0}
    assert r["nearest mean"]["accuracy"] < 0.9 and r["nearest mean"]["error"] > 0.1
    assert r["same_decisions"] and abs(r["midpoint"]) < 1e-12


def expect_numerical_vs_backprop(r: dict[str, Any]) -> None:
    assert r["central"]["ok"] and r["central"]["max_abs_err"] < 1e-8
    assert r["forward"]["ok"]
    err = {eps: (fwd, cen) for eps, fwd, cen in r["eps_table"]}
    # truncation: one-sided O(ε), central O(ε²), so 100x and 10^4x from ε = 1e-1 to 1e-3
    assert 30 < err[1e-1][0] / err[1e-3][0] < 300
    assert 3e3 < err[1e-1][1] / err[1e-3][1] < 3e5
    # rounding: both grow again for tiny ε; central differences reach the smaller error
    assert err[1e-11][0] > 100 * min(f for f, _ in err.values())
    assert min(c for _, c in err.values()) < min(f for f, _ in err.values()) / 10
    assert r["numpy_copy_diff"] < 1e-12
    assert r["float64_best"] < 1e-9 and r["float32_best"] > 1000 * r["float64_best"]
    for row in r["cost"]:
        assert row["evaluations"] == 2 * row["parameters"]
    assert r["cost"][-1]["ratio"] > 2 * r["cost"][0]["ratio"]


def expect_chain_rule_paths(r: dict[str, Any]) -> None:
    assert r["worked_max_diff"] < 1e-14
    rows = r["layered"]
    assert any("enumerated" in row for row in rows)
    for row in rows:
        d = row["depth"]
        assert row["paths"] == 3**d
        assert row.get("enumerated", row["paths"]) == row["paths"]
        assert row.get("diff", 0.0) < 1e-12
        # 3d + 1 neurons, 3 + 9(d - 1) + 3 weights: linear in the depth
        assert row["edges"] == 9 * d - 3
        assert row["backprop"] == (3 * d + 1) + 2 * (9 * d - 3)
    assert rows[-1]["naive"] / rows[-2]["naive"] > 2.9  # the path sums grow like 3^depth


def expect_worked_example(r: dict[str, Any]) -> None:
    assert r["checked"] == 14 and r["loss"] > 0  # E, δ3..δ7 and the 8 weights' gradients
    assert r["max_diff"] < 1e-14


def expect_neuron_vs_layer(r: dict[str, Any]) -> None:
    assert max(r["loss_diff"], r["grad_diff"], r["matrix_diff"]) < 1e-13


def expect_shared_parameters(r: dict[str, Any]) -> None:
    assert r["max_diff"] < 1e-13
    assert r["gradcheck_ok"] and r["gradcheck_max_abs_err"] < 1e-8


def expect_activations(r: dict[str, Any]) -> None:
    for good in ("tanh", "relu", "sigmoid"):
        assert r[good]["accuracy"] >= 0.95 and r[good]["new_accuracy"] >= 0.9, good
        assert r[good]["zero_grads"] == 0.0 and r[good]["cosine"] > 0.99, good
    for flat in ("step", "max(0, z-100)"):
        assert r[flat]["nonzero"] == 0.0 and r[flat]["zero_grads"] == 1.0, flat
    assert math.isnan(r["max(0, z-100)"]["cosine"])  # E does not change at all
    assert r["max(0, z-100)"]["new_accuracy"] <= 0.5  # one constant output for every point
    sine = r["sin(100z)"]
    # g' = 100 cos(100 z) vanishes at z = (π/2 + kπ)/100; in [-3, 3] for k = -95..94
    assert sine["nonzero"] == 1.0 and sine["flips"] == 190
    assert sine["cosine"] < 0.5 and sine["new_accuracy"] < 0.9


def expect_vanishing_gradients(r: dict[str, Any]) -> None:
    sigmoid = r["sigmoid"]["per_layer"]
    assert all(a < b for a, b in itertools.pairwise(sigmoid))
    assert r["sigmoid"]["factor"] < 0.35  # sigmoid' <= 1/4 at every layer
    assert r["sigmoid"]["ratio"] < 1e-3
    assert r["tanh"]["ratio"] > 100 * r["sigmoid"]["ratio"]
    assert r["relu"]["ratio"] > 100 * r["sigmoid"]["ratio"]
    # trained with fit(diagnostics=True): δ RMS per layer, output layer first, falls strictly
    # towards the inputs at every epoch in the sigmoid net, by orders of magnitude overall
    for per_layer in r["sigmoid"]["trained"]["per_epoch"]:
        assert all(a > b for a, b in itertools.pairwise(per_layer))
        assert per_layer[-1] < 1e-4 * per_layer[0]
    assert r["sigmoid"]["trained"]["dead"] == 0.0  # sigmoid' > 0 everywhere
    assert r["relu"]["trained"]["dead"] > 0.0  # relu units off for some points


def expect_nonseparable(r: dict[str, Any]) -> None:
    for name in ("xor", "moons"):
        assert r[name]["accuracy"] == 1.0 and r[name]["margin"] > 0, name
        assert not r[name]["perceptron_converged"] and r[name]["perceptron_accuracy"] < 0.9


def expect_custom_op(r: dict[str, Any]) -> None:
    assert r["check_op_worst"] <= 1.0
    assert r["gradcheck_ok"] and r["gradcheck_max_abs_err"] < 1e-8
    assert r["accuracy"] >= 0.97


def expect_heterogeneous(r: dict[str, Any]) -> None:
    assert {"neuron", "stack", "matmul", "softmax_cross_entropy"} <= set(r["kinds"])
    assert r["gradcheck_ok"] and r["gradcheck_max_abs_err"] < 1e-8
    assert r["accuracy"] >= 0.9


def expect_sklearn_pipeline(r: dict[str, Any]) -> None:
    # the oracle: scikit-learn's MLPClassifier, trained here on the same split and settings
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)
    oracle = make_pipeline(StandardScaler(), MLPClassifier((32,), max_iter=r["max_iter"],
                                                           random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        oracle.fit(X_train, y_train)
    accuracy = oracle.score(X_test, y_test)
    assert accuracy > 0.9
    assert r["digits"]["MLPClassifier"]["accuracy"] == accuracy
    ours = [row for name, row in r["digits"].items() if name.startswith("GraphClassifier")]
    assert len(ours) == (1 if r["fast"] else 2)
    for row in ours:
        assert row["accuracy"] >= accuracy - 0.02
        assert 1 <= row["epochs"] <= r["max_iter"]
    # breast cancer with its 0/1 labels as they come
    assert len(r["breast_cancer"]) == 3 and np.mean(r["breast_cancer"]) >= 0.94


EXPECT: dict[str, Callable[[dict[str, Any]], None]] = {
    name.removeprefix("expect_"): f for name, f in globals().items() if name.startswith("expect_")
}


# -- the tests ------------------------------------------------------------------------------


def test_every_example_has_expectations() -> None:
    assert sorted(p.stem for p in SCRIPTS) == sorted(EXPECT)


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.stem)
def test_example(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], fresh_registry: Any,
) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    doc = ast.get_docstring(tree)
    assert doc and "Prints" in doc, "the docstring says what the example prints"
    assert ast.unparse(tree.body[-1]) == "if __name__ == '__main__':\n    main()"
    monkeypatch.chdir(tmp_path)
    result = run(path)
    assert capsys.readouterr().out.strip()
    assert list(tmp_path.iterdir()) == []  # pictures only with --plots
    EXPECT[path.stem](result)


PLOTTING = [p for p in SCRIPTS if "--plots" in p.read_text(encoding="utf-8")]


@pytest.mark.parametrize("path", PLOTTING, ids=lambda p: p.stem)
def test_example_plots(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], fresh_registry: Any,
) -> None:
    monkeypatch.chdir(tmp_path)
    run(path, "--plots")
    written = sorted(tmp_path.iterdir())
    assert [p.name for p in written] == [f"{path.stem}.png"]
    assert f"wrote {path.stem}.png" in capsys.readouterr().out
    check_png(written[0])
