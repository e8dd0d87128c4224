"""Numerical differentiation vs backpropagation.

1. Agreement: graphdiff.gradcheck compares every entry of the backpropagated
   gradient with central differences (E(θ + εδ_t) − E(θ − εδ_t)) / 2ε and
   with the slides' one-sided formula (E(θ + εδ_t) − E(θ)) / ε.
2. One-sided vs central: the largest error against backprop for ε from 1e-1
   to 1e-12. The one-sided error falls like ε (truncation) until rounding,
   about 1e-16·|E|/ε, takes over; central differences fall like ε², so they
   reach a smaller error at a larger ε.
3. float32 vs float64: the same network's error E written in numpy and
   evaluated entirely in float32 (parameters, data and every operation), then
   differentiated by central differences, against float64 backprop. With
   float32's 7 digits, E(θ+ε) − E(θ−ε) keeps fewer and fewer correct digits
   as ε shrinks: the best float32 error is about a million times float64's,
   and at ε = 1e-6, which suits float64, float32 gets no digit right ("one
   must use high precision"). Only E's arithmetic is float32 here; the
   reference is float64 backprop.
4. Cost: numerical differentiation evaluates E twice per parameter, one
   backward pass gives all of them; the time ratio grows with the number of
   parameters.

Prints a table for each part.
"""

from __future__ import annotations

import argparse
import functools
import timeit
from typing import Any, Literal

import numpy as np

import graphdiff


def network(sizes: list[int], notation: Literal["neuron", "op"] = "neuron",
            seed: int = 1) -> tuple[Any, Any, Any]:
    """A tanh network with logistic loss, its parameters, and 30 two-moons points."""
    net = graphdiff.compile(graphdiff.mlp(sizes, "tanh", notation=notation), loss="E")
    params = net.init_params(seed=seed)
    rng = np.random.default_rng(seed)
    # non-zero biases, so that no parameter sits at a special point
    params = {k: v + 0.3 * rng.normal(size=np.shape(v)) for k, v in params.items()}
    return net, params, graphdiff.feed(net, graphdiff.moons(30, seed=seed))


def error_numpy(params: dict[str, np.ndarray], x: np.ndarray, t: np.ndarray, layers: int,
                dtype: type) -> Any:
    """The op-notation network's E = mean log(1 + exp(−t y)) with every operation in dtype."""
    a: np.ndarray = x.astype(dtype)
    for layer in range(1, layers + 1):
        z = a @ params[f"W{layer}"].astype(dtype) + params[f"b{layer}"].astype(dtype)
        a = np.tanh(z) if layer < layers else z
    return np.mean(np.logaddexp(dtype(0), -t.astype(dtype) * a[:, 0]))


def central_errors(params: dict[str, np.ndarray], x: np.ndarray, t: np.ndarray, layers: int,
                   dtype: type, eps: float, exact: dict[str, np.ndarray]) -> float:
    """Largest |central difference − exact| over every entry, computing E in dtype."""
    cast: dict[str, np.ndarray] = {k: np.asarray(v, dtype=dtype) for k, v in params.items()}
    worst = 0.0
    for name, value in cast.items():
        for idx in np.ndindex(value.shape):
            plus, minus = dict(cast), dict(cast)
            plus[name], minus[name] = value.copy(), value.copy()
            plus[name][idx] += dtype(eps)
            minus[name][idx] -= dtype(eps)
            e_plus = error_numpy(plus, x, t, layers, dtype)
            e_minus = error_numpy(minus, x, t, layers, dtype)
            numeric = float(e_plus - e_minus) / (2 * eps)
            worst = max(worst, abs(numeric - float(exact[name][idx])))
    return worst


def fastest(repeats: int, run: Any, *args: Any) -> float:
    """The shortest of several timings of run(*args): the least disturbed by other work."""
    return min(timeit.repeat(functools.partial(run, *args), number=1, repeat=repeats))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="Numerical differentiation vs backprop.")
    parser.add_argument("--fast", action="store_true", help="fewer ε and smaller networks")
    args = parser.parse_args(argv)
    out: dict[str, Any] = {}

    print("1. Agreement on a 2-4-4-1 tanh network (logistic loss, 30 points)")
    net, params, data = network([2, 4, 4, 1])
    for mode in ("central", "forward"):
        report = graphdiff.gradcheck(net, params, data, mode=mode)
        print(f"   {mode:>7} differences, ε = {report.eps:g}: {len(report.rows)} parameters, "
              f"{report.evaluations} evaluations of E, max |backprop − numeric| = "
              f"{report.max_abs_err:.1e}, within tolerance: {report.ok}")
        out[mode] = {"ok": report.ok, "max_abs_err": report.max_abs_err}

    print("\n2. Error against backprop for each ε (float64)")
    exps = range(1, 13, 2) if args.fast else range(1, 13)
    print(f"   {'ε':>7}  {'one-sided':>10}  {'central':>10}")
    table = []
    for k in exps:
        eps = 10.0**-k
        fwd = graphdiff.gradcheck(net, params, data, mode="forward", eps=eps).max_abs_err
        cen = graphdiff.gradcheck(net, params, data, mode="central", eps=eps).max_abs_err
        table.append((eps, fwd, cen))
        print(f"   {eps:7.0e}  {fwd:10.1e}  {cen:10.1e}")
    best_fwd = min(table, key=lambda r: r[1])
    best_cen = min(table, key=lambda r: r[2])
    print(f"   best: one-sided {best_fwd[1]:.1e} at ε = {best_fwd[0]:g}, "
          f"central {best_cen[2]:.1e} at ε = {best_cen[0]:g}")
    out["eps_table"] = table

    print("\n3. float32 vs float64: central differences of E computed in each precision")
    net_op, params_op, data_op = network([2, 8, 1], notation="op")
    x, t = graphdiff.moons(30, seed=1)["x"], data_op["t"]
    same = abs(float(error_numpy(params_op, x, t, 2, np.float64)) - net_op.error(params_op,
                                                                                 data_op))
    print(f"   (in float64 the numpy copy of E differs from graphdiff's E by {same:.1e})")
    exact = net_op.backward(params_op, data_op).grads
    print(f"   {'ε':>7}  {'float64':>10}  {'float32':>10}")
    precision: dict[str, list[float]] = {"float64": [], "float32": []}
    for k in (range(1, 10, 2) if args.fast else range(1, 10)):
        eps = 10.0**-k
        row = [central_errors(params_op, x, t, 2, d, eps, exact)
               for d in (np.float64, np.float32)]
        precision["float64"].append(row[0])
        precision["float32"].append(row[1])
        print(f"   {eps:7.0e}  {row[0]:10.1e}  {row[1]:10.1e}")
    print(f"   best: float64 {min(precision['float64']):.1e}, "
          f"float32 {min(precision['float32']):.1e}")
    out["float64_best"] = min(precision["float64"])
    out["float32_best"] = min(precision["float32"])
    out["numpy_copy_diff"] = same

    print("\n4. Cost: numerical gradient (2 evaluations of E per parameter) vs one backward pass")
    print(f"   {'network':>12}  {'parameters':>10}  {'evaluations':>11}  {'numeric':>9}  "
          f"{'backward':>9}  {'ratio':>6}")
    cost = []
    for h in ((2, 4, 8) if args.fast else (2, 4, 8, 16, 32)):
        net_h, params_h, data_h = network([2, h, h, 1])
        report = graphdiff.gradcheck(net_h, params_h, data_h)
        numeric = fastest(3, graphdiff.gradcheck, net_h, params_h, data_h)
        backward = fastest(20, net_h.backward, params_h, data_h)
        cost.append({"parameters": len(net_h.params), "evaluations": report.evaluations,
                     "ratio": numeric / backward})
        print(f"   {f'2-{h}-{h}-1':>12}  {len(net_h.params):>10}  {report.evaluations:>11}  "
              f"{numeric * 1e3:7.1f}ms  {backward * 1e3:7.3f}ms  {numeric / backward:6.0f}")
    out["cost"] = cost
    return out


if __name__ == "__main__":
    main()
