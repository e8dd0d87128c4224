"""The multivariate chain rule as a sum over paths, and backprop's factored sums.

∂E/∂w_jk is δ_out times a sum over every path from neuron k to the output of
the product of local derivatives along it (w_uv·g'(z_v) per edge), times
g'(z_k)·a_j. Part 1 evaluates that sum path by path on the lecture's worked
example and compares it with backpropagation (net.backward): the numbers are
equal.

Part 2 does the same on layered networks 1-3-...-3-1 of growing depth. The
number of paths grows like 3^depth (counted with networkx by dynamic
programming over the DAG, and by enumeration where that is feasible), and so
does the work of the path sums; backprop reuses each δ for every path through
it, so its work grows like the number of edges: linearly.

Prints, per weight of the worked example, its paths, both gradients and their
difference; then per depth, the paths, the multiplications of both methods,
and timings.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import time
import timeit
from collections.abc import Callable, Hashable
from typing import Any

import networkx as nx
import numpy as np

import graphdiff

DERIVATIVE: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "tanh": lambda z: 1.0 - np.tanh(z) ** 2,
    "identity": np.ones_like,
}


def lecture_network() -> nx.DiGraph[Any]:
    """The slides' 7-neuron network: g = tanh, a7 = z7, E = max(0, -z7 t)."""
    return graphdiff.lecture_network("tanh")


def weight(G: nx.DiGraph[Any], u: Hashable, v: Hashable) -> str:
    return str(G.edges[u, v].get("param", f"{u}->{v}"))


def grad_by_paths(G: nx.DiGraph[Any], params: dict[str, Any], res: Any, out: Hashable,
                  edge: tuple[Hashable, Hashable]) -> tuple[float, int]:
    """∂E/∂w_jk = Σ_points δ_out Σ_paths k→out g'(z_k) a_j Π_(u,v) w_uv g'(z_v); and #paths."""
    j, k = edge
    local = {v: DERIVATIVE[G.nodes[v]["activation"]](res.z[v]) for v in res.z}
    paths = [[k]] if k == out else nx.all_simple_paths(G, k, out)
    total, count = 0.0, 0
    for path in paths:
        term = local[k] * res.values[j]
        for u, v in itertools.pairwise(path):
            term = term * params[weight(G, u, v)] * local[v]
        total = total + term
        count += 1
    return float(np.sum(res.deltas[out] * total)), count


def count_paths(G: nx.DiGraph[Any], source: Hashable, target: Hashable) -> int:
    """Paths from source to target in a DAG: paths(v) = Σ paths(u) over v's predecessors."""
    paths = dict.fromkeys(G, 0)
    paths[source] = 1
    for v in nx.topological_sort(G):
        if v != source:
            paths[v] = sum(paths[u] for u in G.predecessors(v))
    return paths[target]


def multiplications(G: nx.DiGraph[Any], out: Hashable) -> tuple[int, int]:
    """Per data point: (path sums for every weight, backprop), counting multiplications.

    A path of ℓ edges from k costs 2ℓ + 2 (a_j, g'(z_k), then w·g' per edge, then
    δ_out). Backprop costs one per neuron (δ·g'(z)) and two per edge (δ_j and ∂E/∂w).
    """
    paths: dict[Hashable, int] = {}  # paths from v to out
    lengths: dict[Hashable, int] = {}  # total length of those paths
    for v in reversed(list(nx.topological_sort(G))):
        succ = [s for s in G.successors(v) if s in paths]
        paths[v] = 1 if v == out else sum(paths[s] for s in succ)
        lengths[v] = sum(lengths[s] + paths[s] for s in succ)
    neurons = [v for v in G if G.nodes[v].get("op") == "neuron"]
    edges = [(j, k) for j, k in G.edges if k in neurons]
    naive = sum(2 * lengths[k] + 2 * paths[k] for _, k in edges)
    return naive, len(neurons) + 2 * len(edges)


def fastest(repeats: int, run: Any, *args: Any) -> float:
    """The shortest of several timings of run(*args): the least disturbed by other work."""
    return min(timeit.repeat(functools.partial(run, *args), number=1, repeat=repeats))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="Chain rule over paths vs backprop.")
    parser.add_argument("--fast", action="store_true", help="shallower networks")
    args = parser.parse_args(argv)

    print("1. The worked example: ∂E/∂w as a sum over paths vs backprop")
    G = lecture_network()
    net = graphdiff.compile(G, loss="E")
    params = {"w13": 0.7, "w23": -1.2, "w24": 0.4, "w35": 1.5,
              "w36": -0.8, "w46": 0.9, "w57": 1.1, "w67": -0.6}
    data = {"x1": np.array([0.5, -1.0, 1.5, 0.2]), "x2": np.array([-1.3, 0.4, 0.8, 2.0]),
            "t": np.array([1.0, -1.0, -1.0, 1.0])}
    res = net.backward(params, data, deltas=True)
    print(f"   {'weight':>6}  {'paths':>5}  {'sum over paths':>15}  {'backprop':>15}  "
          f"{'|diff|':>8}")
    worked = 0.0
    for u, v in G.edges:
        if G.nodes[v]["op"] != "neuron":
            continue
        name = weight(G, u, v)
        by_paths, n_paths = grad_by_paths(G, params, res, "a7", (u, v))
        diff = abs(by_paths - res.grads[name])
        worked = max(worked, diff)
        print(f"   {name:>6}  {n_paths:>5}  {by_paths:15.12f}  {res.grads[name]:15.12f}  "
              f"{diff:8.1e}")

    print("\n2. Layered 1-3-...-3-1 tanh networks: paths grow exponentially, backprop linearly")
    print(f"   {'depth':>5}  {'edges':>5}  {'paths x1→y':>10}  {'mults: paths':>13}  "
          f"{'backprop':>8}  {'enumerate':>9}  {'backward':>8}  {'|diff|':>7}")
    enumerate_to, count_to = (5, 12) if args.fast else (9, 20)
    rows = []
    for depth in range(1, count_to + 1):
        H = graphdiff.mlp([1] + [3] * depth + [1], "tanh", loss="squared_error")
        row: dict[str, Any] = {"depth": depth, "edges": H.number_of_edges() - 2,
                               "paths": count_paths(H, "x1", "y")}
        row["naive"], row["backprop"] = multiplications(H, "y")
        line = (f"   {depth:>5}  {row['edges']:>5}  {row['paths']:>10}  {row['naive']:>13}  "
                f"{row['backprop']:>8}")
        if depth <= enumerate_to:
            net_h = graphdiff.compile(H, loss="E")
            p = net_h.init_params(seed=depth)
            d = {"x1": np.linspace(-1, 1, 5), "t": np.linspace(1, -1, 5)}
            r = net_h.backward(p, d, deltas=True)
            backward = fastest(5, net_h.backward, p, d)
            started = time.perf_counter()
            first, n_paths = grad_by_paths(H, p, r, "y", ("x1", "h1_1"))
            paths_time = time.perf_counter() - started
            row["enumerated"] = len(list(nx.all_simple_paths(H, "x1", "y")))
            row["diff"] = abs(first - r.grads["x1->h1_1"]) / max(abs(first), 1e-300)
            line += f"  {paths_time * 1e3:7.1f}ms  {backward * 1e3:6.1f}ms  {row['diff']:7.1e}"
        else:
            line += f"  {'-':>9}  {'-':>8}  {'-':>7}"
        rows.append(row)
        print(line)
    print("   (enumerate: ∂E/∂w for the first weight alone by its paths; backward: every"
          " gradient at once; |diff| relative;")
    print(f"   -: not timed past depth {enumerate_to}, where enumerating the paths takes too"
          " long; the path and multiplication counts are computed, not enumerated)")
    checked = [r for r in rows if "enumerated" in r]
    agree = all(r["enumerated"] == r["paths"] for r in checked)
    print(f"   path counts by dynamic programming equal networkx's enumeration up to depth "
          f"{len(checked)}: {agree}")
    return {"worked_max_diff": worked, "layered": rows}


if __name__ == "__main__":
    main()
