"""Perceptron vs nearest mean: two linear classifiers that disagree.

The data are linearly separable along x2 = 0, but a quarter of class -1 sits
far to the right. The nearest-mean classifier (w = 2(μ1 − μ2),
b = ‖μ2‖² − ‖μ1‖²) follows the class means, which that far group drags away,
so its boundary, the perpendicular bisector of μ1 and μ2, cuts through class
-1. The perceptron ignores where the points are and only fixes mistakes, so
it separates them all: "nearest mean describes the data, the perceptron
minimizes the error".

Prints both classifiers' w, b, accuracy and perceptron error
E = mean max(0, -z t); checks that the nearest mean's linear form decides as
the distances to the means do, and that its boundary passes through the
midpoint of the means.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

import graphdiff


def lopsided(n: int, seed: int = 3) -> dict[str, np.ndarray]:
    """Class +1 around (0, 1); class -1 around (0, -1) with a quarter of it near (8, -1)."""
    rng = np.random.default_rng(seed)
    m1, m2 = n // 2, n - n // 2
    far = m2 // 4
    plus = rng.normal([0.0, 1.0], [1.0, 0.25], (m1, 2))
    minus = np.concatenate([rng.normal([0.0, -1.0], [1.0, 0.25], (m2 - far, 2)),
                            rng.normal([8.0, -1.0], [0.5, 0.25], (far, 2))])
    x = np.concatenate([plus, minus])
    t = np.concatenate([np.ones(m1), -np.ones(m2)])
    order = rng.permutation(n)
    return {"x": x[order], "t": t[order]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="Perceptron vs nearest-mean classifier.")
    parser.add_argument("--fast", action="store_true", help="fewer data points")
    parser.add_argument("--plots", action="store_true",
                        help="write perceptron_vs_nearest_mean.png here")
    args = parser.parse_args(argv)
    data = lopsided(40 if args.fast else 200)
    x, t = data["x"], data["t"]

    nm = graphdiff.NearestMean().fit(x, t)
    p = graphdiff.Perceptron(max_epochs=1000).fit(x, t)
    rows = {}
    for name, c in (("nearest mean", nm), ("perceptron", p)):
        z = x @ c.w + c.b
        rows[name] = {"accuracy": float(np.mean(c.predict(x) == t)),
                      "error": float(np.mean(np.maximum(0.0, -z * t)))}
        print(f"{name:>12}: w = {np.round(c.w, 3).tolist()}, b = {c.b:8.3f}, "
              f"accuracy {rows[name]['accuracy']:6.1%}, E = mean max(0, -z t) = "
              f"{rows[name]['error']:.4f}")

    # The nearest mean describes the data: it is the distance rule, built from the means.
    d1 = np.sum((x - nm.mu1) ** 2, axis=1)
    d2 = np.sum((x - nm.mu2) ** 2, axis=1)
    distance_rule = np.sign(d2 - d1)
    same_decisions = bool(np.array_equal(distance_rule, nm.predict(x)))
    midpoint = float(nm.w @ (nm.mu1 + nm.mu2) / 2 + nm.b)
    print(f"\nclass means: μ1 = {np.round(nm.mu1, 3).tolist()}, "
          f"μ2 = {np.round(nm.mu2, 3).tolist()}")
    print(f"nearest mean's w·x + b decides as ‖x − μ2‖² − ‖x − μ1‖² on every point: "
          f"{same_decisions}")
    print(f"w·(μ1 + μ2)/2 + b = {midpoint:.2e}: the boundary passes through the means' midpoint")
    print("nearest mean describes the data; the perceptron minimizes the error "
          f"(E = {rows['perceptron']['error']:.4f}, after {p.epochs} epochs)")

    if args.plots:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(11, 4.5), layout="constrained")
        for ax, (name, predict) in zip(fig.subplots(1, 2), (("nearest mean", nm.predict),
                                                             ("perceptron", p.predict)),
                                       strict=True):
            graphdiff.plot_decision_boundary(predict, x, t, ax=ax,
                                             title=f"{name}: {rows[name]['accuracy']:.0%}")
        means = np.array([nm.mu1, nm.mu2])
        fig.axes[0].scatter(means[:, 0], means[:, 1], marker="*", s=250, color="black")
        fig.savefig("perceptron_vs_nearest_mean.png", dpi=100)
        print("wrote perceptron_vs_nearest_mean.png")
    return {**rows, "same_decisions": same_decisions, "midpoint": midpoint,
            "perceptron_converged": p.converged}


if __name__ == "__main__":
    main()
