"""A custom op as a plugin: swish(z) = z·sigmoid(β z), checked, then trained with.

An op is a name, a forward function, its local derivative (the vjp: given
g = ∂E/∂out, return ∂E/∂x) and a pydantic model of its attributes; the
engine does the chain rule. This file defines swish like that, registers it
with graphdiff.register_op, checks its derivative against float64 central
differences with graphdiff.testing.check_op, and then uses it as the
activation of a 2-8-8-1 network (β = 1.5, set as a node attribute) trained
on two moons; gradcheck confirms the whole network's gradient.

A package can ship the op without anyone importing it: an entry point in its
pyproject.toml, ``[project.entry-points."graphdiff.ops"]`` with
``swish = "yourpackage.swish:SWISH"``, and graphs that name ``op="swish"``
or ``activation="swish"`` find it by name.

Prints check_op's result, the network's gradcheck and its training accuracy.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

import graphdiff
from graphdiff.testing import check_op


class SwishAttrs(BaseModel):
    """``beta``: swish computes z·sigmoid(beta·z)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    beta: float = 1.0


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # exp of -|x| only: no overflow for large |x|
    e = np.exp(-np.abs(x))
    s: np.ndarray = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return s


def swish(z: np.ndarray, beta: float) -> np.ndarray:
    out: np.ndarray = z * _sigmoid(beta * z)
    return out


def swish_vjp(g: np.ndarray, out: np.ndarray, z: np.ndarray, beta: float) -> tuple[np.ndarray]:
    # d/dz z·s(βz) = s + βz·s(1 − s) = s + β·out·(1 − s)
    s = _sigmoid(beta * z)
    return (g * (s + beta * out * (1.0 - s)),)


def swish_samples(rng: np.random.Generator) -> list[tuple[tuple[np.ndarray, ...], dict[str, Any]]]:
    """Points at which check_op compares the vjp with central differences."""
    return [((rng.normal(size=6),), {}), ((3 * rng.normal(size=(4, 3)),), {"beta": 2.5})]


SWISH = graphdiff.Op(name="swish", forward=swish, vjp=swish_vjp, attrs=SwishAttrs,
                     elementwise=True, samples=swish_samples, source="examples/custom_op.py",
                     doc="z·sigmoid(beta·z), the swish activation.")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="A custom op, registered and trained with.")
    parser.add_argument("--fast", action="store_true", help="fewer points and epochs")
    args = parser.parse_args(argv)
    n, epochs = (60, 60) if args.fast else (200, 300)

    graphdiff.register_op(SWISH, replace=True)  # replace: main() may run twice in one process
    report = check_op("swish")
    print(f"check_op('swish'): {report.samples} samples, worst error "
          f"{report.worst_error:.2g} of the tolerance (≤ 1 passes)")

    G = graphdiff.mlp([2, 8, 8, 1], "swish")
    for node in G:
        if G.nodes[node].get("activation") == "swish":
            G.nodes[node]["beta"] = 1.5
    net = graphdiff.compile(G, loss="E")
    data = graphdiff.feed(net, graphdiff.moons(n, seed=0))
    params = net.init_params(seed=0)
    small = {k: v[:20] for k, v in data.items()}
    check = graphdiff.gradcheck(net, params, small)
    print(f"gradcheck of a 2-8-8-1 swish network ({len(net.params)} parameters): "
          f"max |backprop − numeric| = {check.max_abs_err:.1e}, passes: {check.ok}")
    result = graphdiff.fit(net, params, data, optimizer=graphdiff.Adam(lr=0.05), epochs=epochs,
                           progress=False)
    last = result.history[-1]
    print(f"trained on two moons ({n} points), {epochs} epochs of Adam: loss "
          f"{last['loss']:.4f}, accuracy {last['accuracy']:.1%}")
    return {"check_op_worst": report.worst_error, "gradcheck_ok": check.ok,
            "gradcheck_max_abs_err": check.max_abs_err, "accuracy": last["accuracy"]}


if __name__ == "__main__":
    main()
