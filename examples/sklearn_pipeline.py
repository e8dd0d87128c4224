"""A graphdiff network as a scikit-learn estimator, on real data that scikit-learn ships.

Handwritten digits (8x8 images, 10 classes) in a Pipeline with StandardScaler:
``GraphClassifier`` next to scikit-learn's own ``MLPClassifier`` with the same
settings (one hidden layer of 32 relu units, Adam, MLPClassifier's defaults).
Then the breast cancer data, labels 0/1 as they come, scored by 3-fold
``cross_val_score``. Needs the extra: ``pip install -e ".[sklearn]"``.

Prints each model's test accuracy, training time and epochs, and the
cross-validation scores.
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from graphdiff.sklearn import GraphClassifier

HIDDEN = (32,)


def digits_split() -> tuple[Any, Any, Any, Any]:
    """The digits, 3/4 to train and 1/4 to test, stratified, the same split every time."""
    X, y = load_digits(return_X_y=True)
    split: tuple[Any, Any, Any, Any] = train_test_split(X, y, random_state=0, stratify=y)
    return split


def train(model: Any, X: Any, y: Any) -> float:
    """Fit the model; the seconds it took (hitting max_iter is not an error here)."""
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true",
                        help="50 epochs, op notation only (MLPClassifier's default: 200)")
    args = parser.parse_args(argv)
    max_iter = 50 if args.fast else 200

    X_train, X_test, y_train, y_test = digits_split()
    print(f"digits: {len(X_train)} training and {len(X_test)} test images, 64 pixels, "
          f"10 classes; hidden layer {HIDDEN}, at most {max_iter} epochs\n")
    models = {
        "MLPClassifier": MLPClassifier(HIDDEN, max_iter=max_iter, random_state=0),
        "GraphClassifier (op)": GraphClassifier(HIDDEN, max_iter=max_iter, random_state=0),
    }
    if not args.fast:
        models["GraphClassifier (neuron)"] = GraphClassifier(
            HIDDEN, notation="neuron", max_iter=max_iter, random_state=0
        )
    digits: dict[str, dict[str, float]] = {}
    print(f"{'model':26s} {'test accuracy':>13s} {'time':>8s} {'epochs':>6s}")
    for name, estimator in models.items():
        pipe = make_pipeline(StandardScaler(), estimator)
        seconds = train(pipe, X_train, y_train)
        accuracy = float(pipe.score(X_test, y_test))
        epochs = int(pipe[-1].n_iter_)
        digits[name] = {"accuracy": accuracy, "time": seconds, "epochs": epochs}
        print(f"{name:26s} {accuracy:13.4f} {seconds:7.2f}s {epochs:6d}")
    base = digits["MLPClassifier"]["time"]
    for name in digits:
        if name != "MLPClassifier":
            print(f"{name}: {digits[name]['time'] / base:.1f}x MLPClassifier's time")

    X, y = load_breast_cancer(return_X_y=True)
    model = make_pipeline(StandardScaler(), GraphClassifier(
        (16,), learning_rate_init=0.01, max_iter=30 if args.fast else 200, random_state=0
    ))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(model, X, y, cv=3)
    print(f"\nbreast cancer: {len(X)} patients, 30 features, labels {sorted(set(y.tolist()))}; "
          f"3-fold cross_val_score {np.round(scores, 4).tolist()}, mean {scores.mean():.4f}")
    return {
        "fast": args.fast, "max_iter": max_iter, "digits": digits,
        "breast_cancer": [float(s) for s in scores],
    }


if __name__ == "__main__":
    main()
