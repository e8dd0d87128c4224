"""Vanishing gradients: how δ shrinks on its way back through a deep sigmoid stack.

Backprop multiplies δ by g'(z_k)·w_jk at every layer
(δ_j = Σ_k δ_k g'(z_k) w_jk). The sigmoid's derivative is at most 1/4, so in
a deep stack of sigmoid layers δ shrinks by a roughly constant factor per
layer and the first layers' weights, whose gradients are δ_k g'(z_k) a_j,
hardly learn. tanh (g' ≤ 1, and close to 1 near 0) loses little; relu
(g' = 1 where active, 0 for the inactive half) loses less than a factor 2
per layer with these weights. This is the analysis the lecture mentions for
the vanishing/exploding gradients problem.

A 2-8-...-8-1 network (12 hidden layers; 8 with --fast) with Glorot-uniform
initial weights and zero biases is run forward and backward once on 100
two-moons points with ``backward(deltas=True)``.

Then a deep sigmoid network and the same one with relu are trained for a few
epochs with ``fit(..., diagnostics=True)``, which records after every epoch,
for every neuron, the RMS of its δ over the data points and the fractions of
points where it is dead (g'(z) = 0) or saturated (|g'(z)| < 1e-3 of its
largest value). Grouped by layer, δ falls from the output to the input in the
sigmoid network at every epoch: the first layers hardly learn.

Prints the mean |δ| of each hidden layer (over its neurons and the data
points) for sigmoid, tanh and relu, and per activation the ratio first
layer / last layer and the average factor per layer; then, from training
with diagnostics, the RMS of δ per layer (output first) for sigmoid and relu
after the first and the last epoch, and the dead and saturated fractions.
With --plots, writes vanishing_gradients.png: δ per layer over the epochs
(log scale) and the dead/saturated fractions, sigmoid above relu.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

import graphdiff


def mean_abs_delta(activation: str, depth: int, width: int, data: Any) -> list[float]:
    """Mean |δ| of each hidden layer, first to last, at the initial parameters."""
    net = graphdiff.compile(graphdiff.mlp([2] + [width] * depth + [1], activation), loss="E")
    res = net.backward(net.init_params(seed=0), graphdiff.feed(net, data), deltas=True)
    return [float(np.mean([np.abs(res.deltas[f"h{layer}_{k}"]) for k in range(1, width + 1)]))
            for layer in range(1, depth + 1)]


def train_with_diagnostics(activation: str, depth: int, width: int, data: Any,
                           epochs: int) -> dict[str, Any]:
    """Train with fit(diagnostics=True); δ RMS per layer, output layer first, per epoch."""
    G = graphdiff.mlp([2] + [width] * depth + [1], activation)
    net = graphdiff.compile(G, loss="E")
    result = graphdiff.fit(net, net.init_params(seed=0), graphdiff.feed(net, data),
                           optimizer=graphdiff.Adam(lr=0.01), epochs=epochs,
                           diagnostics=True, progress=False)
    groups = graphdiff.diagnostics.layers(G, result.history[0]["nodes"])[::-1]
    per_epoch = [[graphdiff.diagnostics.layer_rms(row["nodes"], g) for g in groups]
                 for row in result.history]
    last = result.history[-1]["nodes"]
    return {"graph": G, "history": result.history, "layers": groups, "per_epoch": per_epoch,
            "dead": float(np.mean([s["dead"] for s in last.values()])),
            "saturated": float(np.mean([s["saturated"] for s in last.values()]))}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="Vanishing gradients in a deep sigmoid stack.")
    parser.add_argument("--fast", action="store_true", help="8 hidden layers instead of 12")
    parser.add_argument("--plots", action="store_true", help="write vanishing_gradients.png")
    args = parser.parse_args(argv)
    depth, width = (8, 8) if args.fast else (12, 8)
    data = graphdiff.moons(100, seed=0)
    acts = ("sigmoid", "tanh", "relu")
    table = {a: mean_abs_delta(a, depth, width, data) for a in acts}

    print(f"mean |δ| per hidden layer of a 2-{'-'.join([str(width)] * depth)}-1 network "
          "(layer 1 is next to the inputs)")
    print(f"{'layer':>5}  " + "  ".join(f"{a:>9}" for a in acts))
    for layer in range(depth):
        print(f"{layer + 1:>5}  " + "  ".join(f"{table[a][layer]:9.1e}" for a in acts))
    out: dict[str, Any] = {}
    for a in acts:
        ratio = table[a][0] / table[a][-1]
        factor = ratio ** (1 / (depth - 1))
        out[a] = {"per_layer": table[a], "ratio": ratio, "factor": factor}
        print(f"{a:>9}: first / last layer = {ratio:.1e}, δ shrinks by a factor of {factor:.2f} "
              "per layer")

    epochs = 10 if args.fast else 40
    trained = {a: train_with_diagnostics(a, depth, width, data, epochs) for a in ("sigmoid", "relu")}
    print(f"\ntrained {epochs} epochs (Adam, lr 0.01) with diagnostics: RMS of δ per layer, "
          "output layer first")
    print(f"{'layer':>6}  " + "  ".join(f"{a} {when:>5}" for a in trained
                                         for when in ("first", "last")))
    names = ["y"] + [f"h{k}" for k in range(depth, 0, -1)]
    for i, name in enumerate(names):
        print(f"{name:>6}  " + "  ".join(f"{r['per_epoch'][e][i]:13.2e}" for r in trained.values()
                                          for e in (0, -1)))
    for a, r in trained.items():
        print(f"{a:>9}: after the last epoch {r['dead']:.0%} of the values dead, "
              f"{r['saturated']:.0%} saturated")
        out[a]["trained"] = {k: r[k] for k in ("per_epoch", "dead", "saturated")}
    if args.plots:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(11, 8), layout="constrained")
        for row, (a, r) in zip(fig.subplots(2, 2), trained.items(), strict=True):
            graphdiff.plot_diagnostics(r["history"], G=r["graph"], axes=row,
                                       title=f"{a}: 2-{width}×{depth}-1")
        fig.savefig("vanishing_gradients.png", dpi=100)
        print("wrote vanishing_gradients.png")
    return out


if __name__ == "__main__":
    main()
