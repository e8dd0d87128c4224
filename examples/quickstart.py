"""Quickstart: draw a tiny network with networkx, compile it, backpropagate.

Prints the error E and dE/dθ for each parameter: the two weights and the bias
of neuron h, and the weight of the edge h -> y.
"""

from __future__ import annotations

import argparse
from typing import Any

import networkx as nx
import numpy as np

import graphdiff


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="Quickstart (already tiny).")
    parser.add_argument("--fast", action="store_true", help="accepted, like every example")
    parser.parse_args(argv)

    G = nx.DiGraph()
    G.add_nodes_from(["x1", "x2", "t"], op="input")
    G.add_node("h", op="neuron", activation="tanh", bias=0.1)  # h = tanh(w1 x1 + w2 x2 + b)
    G.add_node("y", op="neuron")                               # y = v h
    G.add_edge("x1", "h", param="w1", weight=0.5)
    G.add_edge("x2", "h", param="w2", weight=-1.0)
    G.add_edge("h", "y", param="v", weight=2.0)
    G.add_node("E", op="logistic")                             # E = log(1 + exp(-t y))
    G.add_edge("y", "E", port=0)
    G.add_edge("t", "E", port=1)

    net = graphdiff.compile(G, loss="E")
    data = {"x1": np.array([1.0, -2.0]), "x2": np.array([0.5, 1.0]), "t": np.array([1.0, -1.0])}
    result = net.backward(net.init_params(), data)

    print(f"E = {result.loss:.6f}")
    for name, grad in result.grads.items():
        print(f"dE/d{name} = {grad:+.6f}")
    return {"loss": float(result.loss), "grads": {k: float(v) for k, v in result.grads.items()}}


if __name__ == "__main__":
    main()
