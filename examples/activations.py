"""Good and problematic activation functions, and what their gradients look like.

The lecture asks three things of an activation g: a gradient defined (almost)
everywhere, non-zero on a large part of the domain, and informative (its
sign says whether g goes up or down nearby). A 2-8-1 network is trained on
XOR (Adam, full batches) with each of

- good: tanh, relu, sigmoid;
- problematic: step 1_{z>0} (gradient 0 everywhere), max(0, z - 100) (relu
  with shift=100: 0 wherever z < 100, so everywhere in practice) and
  sin(100 z) (sin with scale=100: the gradient changes sign every 0.03, so it
  says nothing about a step of useful size).

Prints, per activation: the fraction of z in [-3, 3] where g'(z) ≠ 0 and how
often g' changes sign there; at the initial parameters, the fraction of the
hidden layer's gradient entries that are exactly 0 and the cosine between
backprop's gradient and the change of E measured over ±0.05 per parameter
(none where E does not change at all: no direction to compare);
then the training accuracy and the accuracy on new points after training.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

import graphdiff

ACTIVATIONS: list[tuple[str, dict[str, float]]] = [
    ("tanh", {}), ("relu", {}), ("sigmoid", {}),
    ("step", {}), ("relu", {"shift": 100.0}), ("sin", {"scale": 100.0}),
]


def label(name: str, attrs: dict[str, float]) -> str:
    return {"shift": "max(0, z-100)", "scale": "sin(100z)"}.get(next(iter(attrs), ""), name)


def derivative(name: str, attrs: dict[str, float], z: np.ndarray) -> np.ndarray:
    """g'(z) from the op's own local derivative (its vjp with g = 1)."""
    op = graphdiff.get_op(name)
    full = op.attrs(**attrs).model_dump()
    return np.asarray(op.vjp(np.ones_like(z), op.forward(z, **full), z, **full)[0])


def informative(net: Any, params: dict[str, Any], data: Any, step: float) -> float:
    """Cosine between ∇E and the central differences of E over ±step, parameter by parameter."""
    grads = net.backward(params, data).grads
    numeric = []
    for name in params:
        plus, minus = dict(params), dict(params)
        plus[name], minus[name] = params[name] + step, params[name] - step
        numeric.append((net.error(plus, data) - net.error(minus, data)) / (2 * step))
    a, b = np.array([grads[k] for k in params]), np.array(numeric)
    if min(np.linalg.norm(a), np.linalg.norm(b)) < 1e-12:
        return float("nan")  # no direction to compare: E does not change at all
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="Good and problematic activations.")
    parser.add_argument("--fast", action="store_true", help="fewer points and epochs")
    args = parser.parse_args(argv)
    n, epochs = (60, 80) if args.fast else (200, 300)
    train, new = graphdiff.xor(n, seed=0), graphdiff.xor(n, seed=1)
    z = np.linspace(-3.0, 3.0, 6001)

    print(f"2-8-1 networks on XOR ({n} points), Adam(lr=0.05), {epochs} epochs")
    print(f"{'activation':>14}  {'g≠0 on [-3,3]':>13}  {'sign flips':>10}  "
          f"{'∂E/∂θ = 0':>9}  {'cos(∇E, ΔE)':>11}  {'train':>6}  {'new':>6}")
    results: dict[str, dict[str, float]] = {}
    for name, attrs in ACTIVATIONS:
        dg = derivative(name, attrs, z)
        nonzero = float(np.mean(dg != 0))
        flips = int(np.sum(np.diff(np.sign(dg[dg != 0])) != 0))
        G = graphdiff.mlp([2, 8, 1], name)
        for node, data in G.nodes(data=True):
            if node.startswith("h"):
                data.update(attrs)  # node attributes named like the op's configure it
        net = graphdiff.compile(G, loss="E")
        params = net.init_params(seed=0)
        inputs = graphdiff.feed(net, train)
        grads = net.backward(params, inputs).grads
        hidden = [p for p, spec in net.params.items() if str(spec.uses[0][-1]).startswith("h")]
        zero = float(np.mean([grads[p] == 0 for p in hidden]))
        cos = informative(net, params, inputs, 0.05)
        result = graphdiff.fit(net, params, inputs, optimizer=graphdiff.Adam(lr=0.05),
                               epochs=epochs, progress=False)
        acc = result.history[-1]["accuracy"]
        new_acc = graphdiff.train.evaluate(net, result.params,
                                           graphdiff.feed(net, new))["accuracy"]
        key = label(name, attrs)
        results[key] = {"nonzero": nonzero, "flips": flips, "zero_grads": zero,
                        "cosine": cos, "accuracy": acc, "new_accuracy": new_acc}
        shown = f"{cos:11.2f}" if np.isfinite(cos) else f"{'none*':>11}"
        print(f"{key:>14}  {nonzero:13.0%}  {flips:>10}  {zero:9.0%}  {shown}  "
              f"{acc:6.0%}  {new_acc:6.0%}")
    print("* none: E does not change at all over ±0.05 and the gradient is 0, so there is no"
          " direction to compare")
    print("step and max(0, z-100): no gradient reaches the hidden layer (max(0, z-100) even"
          " makes the output one constant for every point;\nat 0, no point is on the correct"
          " side); sin(100z): a gradient everywhere, but it does not predict how E changes"
          " over a step of 0.05")
    return results


if __name__ == "__main__":
    main()
