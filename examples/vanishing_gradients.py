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

Prints the mean |δ| of each hidden layer (over its neurons and the data
points) for sigmoid, tanh and relu, and per activation the ratio first
layer / last layer and the average factor per layer.
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


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="Vanishing gradients in a deep sigmoid stack.")
    parser.add_argument("--fast", action="store_true", help="8 hidden layers instead of 12")
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
    return out


if __name__ == "__main__":
    main()
