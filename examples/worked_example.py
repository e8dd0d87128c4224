"""The lecture's worked example: every δ and gradient, by the slides' formulas and by graphdiff.

The 7-neuron network (inputs a1 = x1, a2 = x2; tanh neurons 3..6; a7 = z7;
E = max(0, -z7 t)) is drawn as a networkx graph, one node per neuron and one
named weight per edge. For one data point the forward pass and then every
formula of the slides (δ7 = I(-z7 t > 0)·(-t), δ6 = δ7·w67, ...,
δ3 = δ6·g'(z6)·w36 + δ5·g'(z5)·w35 and ∂E/∂w_jk = δ_k·g'(z_k)·a_j) are
evaluated by hand in plain Python, and printed next to what
``net.backward(..., deltas=True)`` computes. The target t is chosen so that
the point is misclassified (otherwise every δ is 0).

Prints the forward values, then one line per δ and per gradient: the
formula, its value by hand, graphdiff's value and their difference.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import networkx as nx
import numpy as np

import graphdiff

WEIGHTS = {"w13": 0.7, "w23": -1.2, "w24": 0.4, "w35": 1.5,
           "w36": -0.8, "w46": 0.9, "w57": 1.1, "w67": -0.6}


def lecture_network() -> nx.DiGraph[Any]:
    """The slides' network as the slides draw it, with the weights above."""
    return graphdiff.lecture_network("tanh", weights=WEIGHTS)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="The lecture's worked example.")
    parser.add_argument("--fast", action="store_true", help="accepted (it is already small)")
    parser.add_argument("--plots", action="store_true", help="write worked_example.png here")
    args = parser.parse_args(argv)

    # -- by hand, exactly as the slides write it ----------------------------------------
    w = WEIGHTS
    g = math.tanh

    def dg(z: float) -> float:
        return 1.0 - math.tanh(z) ** 2

    x1, x2 = 0.5, -1.3
    a1, a2 = x1, x2
    z3 = a1 * w["w13"] + a2 * w["w23"]
    a3 = g(z3)
    z4 = a2 * w["w24"]
    a4 = g(z4)
    z5 = a3 * w["w35"]
    a5 = g(z5)
    z6 = a3 * w["w36"] + a4 * w["w46"]
    a6 = g(z6)
    z7 = a5 * w["w57"] + a6 * w["w67"]
    t = -1.0 if z7 > 0 else 1.0  # a misclassified point: -z7 t > 0
    E = max(0.0, -z7 * t)
    d7 = (1.0 if -z7 * t > 0 else 0.0) * (-t)
    d6 = d7 * w["w67"]
    d5 = d7 * w["w57"]
    d4 = d6 * dg(z6) * w["w46"]
    d3 = d6 * dg(z6) * w["w36"] + d5 * dg(z5) * w["w35"]
    by_hand = {
        ("δ7", "I(-z7·t > 0)·(-t)"): d7,
        ("δ6", "δ7·w67"): d6,
        ("δ5", "δ7·w57"): d5,
        ("δ4", "δ6·g'(z6)·w46"): d4,
        ("δ3", "δ6·g'(z6)·w36 + δ5·g'(z5)·w35"): d3,
        ("∂E/∂w67", "δ7·a6"): d7 * a6,
        ("∂E/∂w57", "δ7·a5"): d7 * a5,
        ("∂E/∂w46", "δ6·g'(z6)·a4"): d6 * dg(z6) * a4,
        ("∂E/∂w36", "δ6·g'(z6)·a3"): d6 * dg(z6) * a3,
        ("∂E/∂w35", "δ5·g'(z5)·a3"): d5 * dg(z5) * a3,
        ("∂E/∂w24", "δ4·g'(z4)·a2"): d4 * dg(z4) * a2,
        ("∂E/∂w23", "δ3·g'(z3)·a2"): d3 * dg(z3) * a2,
        ("∂E/∂w13", "δ3·g'(z3)·a1"): d3 * dg(z3) * a1,
    }

    # -- by graphdiff -------------------------------------------------------------------
    G = lecture_network()
    net = graphdiff.compile(G, loss="E")
    params = net.init_params()  # the weights drawn on the edges
    res = net.backward(params, {"x1": np.array([x1]), "x2": np.array([x2]),
                                "t": np.array([t])}, deltas=True)
    engine = {name: float(res.deltas[f"a{name[1]}"][0]) for name, _ in by_hand
              if name.startswith("δ")}
    engine["δ7"] = float(res.deltas_z["a7"][0])  # ∂E/∂z7 (= ∂E/∂a7: a7 is z7)
    engine.update({name: float(res.grads[name[4:]]) for name, _ in by_hand
                   if name.startswith("∂")})

    print("forward pass (by hand | graphdiff):")
    for name, value in [("z3", z3), ("z4", z4), ("z5", z5), ("z6", z6), ("z7", z7)]:
        print(f"  {name} = {value:+.12f} | {float(res.z['a' + name[1]][0]):+.12f}")
    print(f"  t = {t:+.0f}, E = max(0, -z7·t) = {E:.12f} | {float(res.loss):.12f}")
    print("\nbackward pass (the slides' formula = by hand | graphdiff | difference):")
    worst = abs(E - float(res.loss))
    for (name, formula), value in by_hand.items():
        diff = abs(value - engine[name])
        worst = max(worst, diff)
        print(f"  {name:>8} = {formula:<30} = {value:+.12f} | {engine[name]:+.12f} | {diff:.1e}")
    print(f"largest difference: {worst:.1e}")

    if args.plots:
        neurons = {n: d for n, d in res.deltas.items() if G.nodes[n]["op"] == "neuron"}
        graphdiff.draw_network(G, "worked_example.png", deltas=neurons, params=params,
                               title="the worked example: |δ| = |∂E/∂a| of every neuron")
        print("wrote worked_example.png")
    return {"max_diff": worst, "checked": len(by_hand) + 1, "t": t, "loss": float(res.loss)}


if __name__ == "__main__":
    main()
