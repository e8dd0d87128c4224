"""The perceptron at work, and the perceptron rule as gradient descent on the hinge loss.

Part 1 runs Rosenblatt's algorithm (graphdiff.Perceptron) on linearly
separable blobs: it stops once every point is classified correctly.

Part 2 checks the lecture's proposition update by update. A single
neuron z = w1 x1 + w2 x2 + b with the hinge loss E = max(0, -z t) is drawn as
a graph; stepping θ ← θ − η ∇E_k one point at a time (net.backward on point
k, in the order k = 1..N) makes exactly the perceptron's updates, from zero
weights and from a random start. graphdiff.fit with batch_size=1,
shuffle=False and SGD(lr=η) gives the same parameters after every epoch.

Prints the perceptron's epochs and updates, then for each start the number
of steps compared and the largest difference between the two (0 when the
rule and gradient descent agree to the last bit).
"""

from __future__ import annotations

import argparse
from typing import Any

import networkx as nx
import numpy as np

import graphdiff


def single_neuron() -> nx.DiGraph[Any]:
    """z = w1 x1 + w2 x2 + b, E = max(0, -z t): the perceptron as a graph."""
    G: nx.DiGraph[Any] = nx.DiGraph()
    G.add_nodes_from(["x1", "x2", "t"], op="input")
    G.add_node("z", op="neuron", activation="identity", bias="b")
    G.add_edge("x1", "z", param="w1")
    G.add_edge("x2", "z", param="w2")
    G.add_node("E", op="hinge")
    G.add_edge("z", "E", port=0)
    G.add_edge("t", "E", port=1)
    return G


def as_params(w: np.ndarray, b: float) -> dict[str, np.float64]:
    return {"w1": np.float64(w[0]), "w2": np.float64(w[1]), "b": np.float64(b)}


def compare(data: dict[str, np.ndarray], eta: float, w0: np.ndarray, b0: float) -> dict[str, Any]:
    """Largest difference between the perceptron's and gradient descent's parameters."""
    x, t = data["x"], data["t"]
    perceptron = graphdiff.Perceptron(eta=eta).fit(x, t, w0=w0, b0=b0)
    net = graphdiff.compile(single_neuron(), loss="E")
    inputs = graphdiff.feed(net, data)

    # update by update: one gradient step per data point, in order
    params = as_params(w0, b0)
    changes = []
    for _ in range(perceptron.epochs):
        for k in range(len(x)):
            point = {name: a[k : k + 1] for name, a in inputs.items()}
            grads = net.backward(params, point).grads
            if any(grads[p] != 0 for p in params):  # ∇E_k = 0 on a correct point
                params = {p: params[p] - eta * grads[p] for p in params}
                changes.append(params)
    assert len(changes) == len(perceptron.updates), "different numbers of updates"
    step_diff = max(
        (max(abs(mine["w1"] - u.w[0]), abs(mine["w2"] - u.w[1]), abs(mine["b"] - u.b))
         for mine, u in zip(changes, perceptron.updates, strict=True)),
        default=0.0,
    )

    # epoch by epoch with graphdiff.fit: the perceptron's state at the end of each epoch
    seen: list[dict[str, Any]] = []
    graphdiff.fit(net, as_params(w0, b0), inputs, optimizer=graphdiff.SGD(lr=eta),
                  epochs=perceptron.epochs, batch_size=1, shuffle=False, progress=False,
                  callbacks=[lambda record: seen.append(record.params)])
    epoch_diff = 0.0
    for epoch, p in enumerate(seen, start=1):
        done = [u for u in perceptron.updates if u.epoch <= epoch]
        w, b = (done[-1].w, done[-1].b) if done else (w0, b0)
        epoch_diff = max(epoch_diff, abs(p["w1"] - w[0]), abs(p["w2"] - w[1]), abs(p["b"] - b))
    return {"updates": len(changes), "epochs": perceptron.epochs,
            "step_diff": float(step_diff), "epoch_diff": float(epoch_diff),
            "perceptron": perceptron}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="The perceptron, and the perceptron as GD.")
    parser.add_argument("--fast", action="store_true", help="fewer data points")
    parser.add_argument("--plots", action="store_true", help="write perceptron.png here")
    args = parser.parse_args(argv)
    n, eta = (40, 1.0) if args.fast else (200, 1.0)

    data = graphdiff.blobs(n, noise=1.5, seed=1)
    data["x"] = data["x"] + np.array([3.0, 1.0])  # off the origin: the bias b has work to do
    print(f"Part 1: the perceptron on {n} linearly separable points (eta = {eta})")
    p = graphdiff.Perceptron(eta=eta).fit(data["x"], data["t"])
    accuracy = float(np.mean(p.predict(data["x"]) == data["t"]))
    print(f"  converged: {p.converged} after {p.epochs} epochs ({len(p.updates)} updates; "
          "the last epoch made no mistake)")
    print(f"  w = {np.round(p.w, 4).tolist()}, b = {p.b:.4g}, training accuracy {accuracy:.0%}")

    print("\nPart 2: the perceptron rule vs gradient descent on max(0, -z t), batch_size=1")
    rng = np.random.default_rng(7)
    starts = {"zero weights": (np.zeros(2), 0.0),
              "random start": (rng.normal(size=2), float(rng.normal()))}
    out: dict[str, Any] = {"converged": p.converged, "epochs": p.epochs,
                           "updates": len(p.updates), "accuracy": accuracy}
    for label, (w0, b0) in starts.items():
        r = compare(data, eta, w0, b0)
        print(f"  from {label}: {r['updates']} updates in {r['epochs']} epochs; "
              f"|θ_perceptron - θ_SGD| <= {r['step_diff']:.1e} after every update, "
              f"<= {r['epoch_diff']:.1e} after every epoch of fit")
        out[label] = {k: v for k, v in r.items() if k != "perceptron"}
    same = all(out[s]["step_diff"] == 0 and out[s]["epoch_diff"] == 0 for s in starts)
    print("  the two make " + ("identical updates (difference 0)" if same
                                else "DIFFERENT updates"))

    if args.plots:
        graphdiff.plot_decision_boundary(p.predict, data["x"], data["t"], "perceptron.png",
                                         title=f"perceptron after {p.epochs} epochs")
        print("wrote perceptron.png")
    return out


if __name__ == "__main__":
    main()
