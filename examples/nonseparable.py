"""A neural network at work on data that is not linearly separable.

XOR and two moons cannot be split by a line, so the perceptron never stops
making mistakes (it runs out of epochs). A 2-8-8-1 tanh network with the
logistic loss, trained with the lecture's basic algorithm (full batches,
θ ← θ − γ∇E with graphdiff.SGD) until every training point is classified
correctly (fit's target_accuracy=1.0), ends with all points on the correct
side of its decision boundary: t·y > 0 for every point.

Prints, per data set, the perceptron's accuracy after its epochs and the
network's epochs, accuracy and smallest t·y. With --plots, writes
nonseparable.png (both classifiers' decision boundaries on both sets).
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

import graphdiff


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="A network on non-separable data.")
    parser.add_argument("--fast", action="store_true", help="fewer points")
    parser.add_argument("--plots", action="store_true", help="write nonseparable.png here")
    args = parser.parse_args(argv)
    n = 60 if args.fast else 200
    results: dict[str, Any] = {}
    pictures = []
    for name in ("xor", "moons"):
        data = graphdiff.load_data(name, n=n, seed=0)
        p = graphdiff.Perceptron(max_epochs=100).fit(data["x"], data["t"])
        p_acc = float(np.mean(p.predict(data["x"]) == data["t"]))

        net = graphdiff.compile(graphdiff.mlp([2, 8, 8, 1], "tanh"), loss="E")
        inputs = graphdiff.feed(net, data)
        result = graphdiff.fit(net, net.init_params(seed=0), inputs,
                               optimizer=graphdiff.SGD(lr=1.0), epochs=2000,
                               target_accuracy=1.0, progress=False)
        y = net.forward(result.params, inputs, outputs=["y"])["y"]
        margin = float(np.min(data["t"] * y))
        acc = result.history[-1]["accuracy"]
        print(f"{name} ({n} points):")
        print(f"  perceptron: converged {p.converged}, accuracy {p_acc:.1%} after "
              f"{p.epochs} epochs")
        print(f"  2-8-8-1 tanh network, gradient descent (lr 1.0): accuracy {acc:.0%} after "
              f"{result.epochs} epochs; smallest t·y = {margin:.3f} "
              f"({'all points on the correct side' if margin > 0 else 'NOT all correct'})")
        results[name] = {"perceptron_converged": p.converged, "perceptron_accuracy": p_acc,
                         "accuracy": acc, "epochs": result.epochs, "margin": margin}
        pictures.append((name, data, p, graphdiff.predictor(net, result.params), acc, p_acc))

    if args.plots:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(11, 9), layout="constrained")
        axes = fig.subplots(2, 2)
        for row, (name, data, p, predict, acc, p_acc) in zip(axes, pictures, strict=True):
            graphdiff.plot_decision_boundary(p.predict, data["x"], data["t"], ax=row[0],
                                             title=f"{name}: perceptron, {p_acc:.0%}")
            graphdiff.plot_decision_boundary(predict, data["x"], data["t"], ax=row[1],
                                             title=f"{name}: 2-8-8-1 network, {acc:.0%}")
        fig.savefig("nonseparable.png", dpi=100)
        print("wrote nonseparable.png")
    return results


if __name__ == "__main__":
    main()
