"""A heterogeneous graph: neurons feeding tensor ops through ``stack``.

The first layer is drawn neuron by neuron, as in the lecture: 16 tanh
neurons h1..h16, each with its own two weights and bias. ``stack`` gathers
their values into a matrix H of shape (N, 16), and from there the network
is written with tensor ops: A = tanh(H W1 + b1), logits = A W2 + b2, and the
softmax cross-entropy against class indices 0..2. The engine backpropagates
through both kinds of nodes alike: it only needs each op's local derivative.

The network is trained on three interleaved spiral arms (Adam, full
batches), and gradcheck compares all its gradients (scalar edge weights and
tensor parameters) with central differences.

Prints the graph's node kinds, the gradcheck result and the training
accuracy. With --plots, writes heterogeneous.png (the three class regions).
"""

from __future__ import annotations

import argparse
from typing import Any

import networkx as nx

import graphdiff


def network(width: int = 16, classes: int = 3) -> nx.DiGraph[Any]:
    G: nx.DiGraph[Any] = nx.DiGraph()
    G.add_nodes_from(["x1", "x2", "t"], op="input")
    G.add_node("H", op="stack")
    for k in range(1, width + 1):
        G.add_node(f"h{k}", op="neuron", activation="tanh", bias=0.0)
        G.add_edge("x1", f"h{k}")
        G.add_edge("x2", f"h{k}")
        G.add_edge(f"h{k}", "H", port=k - 1)
    G.add_node("W1", op="param", shape=(width, width))
    G.add_node("b1", op="param", shape=(width,))
    G.add_node("W2", op="param", shape=(width, classes))
    G.add_node("b2", op="param", shape=(classes,))
    for node, op, operands in [("HW1", "matmul", ["H", "W1"]), ("Z1", "add", ["HW1", "b1"]),
                               ("A", "tanh", ["Z1"]), ("AW2", "matmul", ["A", "W2"]),
                               ("logits", "add", ["AW2", "b2"]),
                               ("E", "softmax_cross_entropy", ["logits", "t"])]:
        G.add_node(node, op=op)
        for port, u in enumerate(operands):
            G.add_edge(u, node, port=port)
    return G


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="Neurons feeding tensor ops.")
    parser.add_argument("--fast", action="store_true", help="fewer points and epochs")
    parser.add_argument("--plots", action="store_true", help="write heterogeneous.png here")
    args = parser.parse_args(argv)
    n, epochs = (90, 150) if args.fast else (300, 300)

    G = network()
    kinds: dict[str, int] = {}
    for node in G:
        op = str(G.nodes[node]["op"])
        kinds[op] = kinds.get(op, 0) + 1
    print("nodes: " + ", ".join(f"{count} {op}" for op, count in sorted(kinds.items())))
    net = graphdiff.compile(G, loss="E")
    scalars = sum(1 for p in net.params.values() if p.kind == "scalar")
    print(f"parameters: {scalars} scalar (edge weights and biases of the neurons), "
          f"{len(net.params) - scalars} tensors (W1, b1, W2, b2)")

    data = graphdiff.spirals(n, classes=3, seed=0)
    inputs = graphdiff.feed(net, data)
    params = net.init_params(seed=0)
    check = graphdiff.gradcheck(net, params, {k: v[:20] for k, v in inputs.items()})
    print(f"gradcheck: {check.evaluations} evaluations of E, max |backprop − numeric| = "
          f"{check.max_abs_err:.1e}, passes: {check.ok}")
    result = graphdiff.fit(net, params, inputs, optimizer=graphdiff.Adam(lr=0.05),
                           epochs=epochs, progress=False)
    last = result.history[-1]
    print(f"trained on 3 spiral arms ({n} points), {epochs} epochs of Adam: loss "
          f"{last['loss']:.4f}, accuracy {last['accuracy']:.1%}")

    if args.plots:
        graphdiff.plot_decision_boundary(
            graphdiff.predictor(net, result.params, output="logits"), data["x"], data["t"],
            "heterogeneous.png", title=f"neurons → stack → tensor ops: {last['accuracy']:.0%}")
        print("wrote heterogeneous.png")
    return {"gradcheck_ok": check.ok, "gradcheck_max_abs_err": check.max_abs_err,
            "accuracy": last["accuracy"], "kinds": kinds}


if __name__ == "__main__":
    main()
