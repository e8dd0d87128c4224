"""Shared parameters: the slides' network with two parameters u and v on eight edges.

u is the weight of the edges 1→3, 2→4, 3→6 and 5→7; v of 2→3, 3→5, 4→6 and
6→7. In graphdiff, sharing is just the same ``param`` name on several edges.
Treating each original weight as a "neuron" fed by u (or v) with local
derivative 1, the chain rule gives ∂z7/∂u = ∂z7/∂w13 + ∂z7/∂w24 + ∂z7/∂w36 +
∂z7/∂w57, and likewise for v.

The example differentiates z7 (one data point, the slides' equations) and the
hinge error E over a batch, once with u and v shared and once with eight
separate weights set to the same values, and checks that the shared
gradients are the sums over their edges. Then gradcheck compares the shared
gradients with central differences.

Prints each sum term by term next to graphdiff's shared gradient, and the
gradcheck table.
"""

from __future__ import annotations

import argparse
from typing import Any

import networkx as nx
import numpy as np

import graphdiff

SHARED = graphdiff.LECTURE_SHARED  # w13 = w24 = w36 = w57 = u, the other four = v


def lecture_network(shared: bool, loss: str = "E") -> nx.DiGraph[Any]:
    """The slides' network; with ``loss="a7"`` it ends at z7 (= a7), without target and error."""
    return graphdiff.lecture_network(shared=shared, loss=loss == "E")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="Shared parameters u and v.")
    parser.add_argument("--fast", action="store_true", help="fewer data points")
    parser.add_argument("--plots", action="store_true", help="write shared_parameters.png here")
    args = parser.parse_args(argv)
    values = {"u": 0.8, "v": -0.5}
    separate_values = {w: values[p] for w, p in SHARED.items()}
    rng = np.random.default_rng(0)
    n = 8 if args.fast else 100
    batch: dict[Any, np.ndarray] = {"x1": rng.normal(size=n), "x2": rng.normal(size=n),
             "t": rng.choice([-1.0, 1.0], size=n)}
    cases = {
        "z7, one point (the slides' equations)": ("a7", {k: batch[k][:1] for k in ("x1", "x2")}),
        f"E = mean max(0, -z7 t), {n} points": ("E", batch),
    }
    worst = 0.0
    for title, (loss, data) in cases.items():
        shared = graphdiff.compile(lecture_network(True, loss), loss=loss)
        separate = graphdiff.compile(lecture_network(False, loss), loss=loss)
        gs = shared.backward(values, data).grads
        gw = separate.backward(separate_values, data).grads
        print(title)
        for p in ("u", "v"):
            edges = [w for w, q in SHARED.items() if q == p]
            total = sum(gw[w] for w in edges)
            worst = max(worst, abs(total - gs[p]))
            terms = " ".join(f"{gw[w]:+.6f}" for w in edges)
            print(f"  ∂/∂{p} = " + " + ".join(f"∂/∂{w}" for w in edges))
            print(f"       = {terms} = {total:+.12f} | graphdiff, shared: {gs[p]:+.12f}")
    print(f"largest |sum over the edges − shared gradient|: {worst:.1e}")

    net = graphdiff.compile(lecture_network(True), loss="E")
    report = graphdiff.gradcheck(net, values, batch)
    print(report)

    if args.plots:
        graphdiff.draw_network(lecture_network(True), "shared_parameters.png", params=values,
                               title="shared parameters u and v")
        print("wrote shared_parameters.png")
    return {"max_diff": worst, "gradcheck_ok": report.ok,
            "gradcheck_max_abs_err": report.max_abs_err}


if __name__ == "__main__":
    main()
