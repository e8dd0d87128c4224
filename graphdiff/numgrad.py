"""Check a network's backpropagated gradient against float64 numerical differentiation.

The lecture's numerical gradient, ``(E(θ + ε·δ_t) − E(θ)) / ε`` for each parameter
entry t, is available as ``mode="forward"``; the default ``mode="central"`` uses
``(E(θ + ε·δ_t) − E(θ − ε·δ_t)) / 2ε``, whose error is O(ε²) instead of O(ε).
For large networks ``directions=k`` compares k random directional derivatives
instead of every entry (2k evaluations of E instead of 2·#parameters).

>>> import networkx as nx, numpy as np, graphdiff
>>> G = nx.DiGraph()
>>> G.add_nodes_from(["x", "t"], op="input")
>>> G.add_node("y", op="neuron", activation="tanh", bias=0.1)
>>> G.add_edge("x", "y", weight=0.5)
>>> G.add_node("E", op="squared_error")
>>> G.add_edge("y", "E", port=0); G.add_edge("t", "E", port=1)
>>> net = graphdiff.compile(G, loss="E")
>>> data = {"x": np.array([1.0, -2.0]), "t": np.array([0.3, 0.1])}
>>> report = graphdiff.gradcheck(net, net.init_params(), data)
>>> report.ok
True
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = ["GradcheckReport", "GradcheckRow", "gradcheck"]

TOLERANCES = {"central": (1e-6, 1e-5), "forward": (1e-4, 1e-3)}


@dataclass(frozen=True)
class GradcheckRow:
    """One parameter (or one random direction) of a :class:`GradcheckReport`."""

    name: str
    size: int
    max_abs_err: float
    max_rel_err: float
    ok: bool


@dataclass(frozen=True)
class GradcheckReport:
    """Result of :func:`gradcheck`: one row per parameter (or direction)."""

    mode: str
    eps: float
    atol: float
    rtol: float
    rows: list[GradcheckRow] = field(default_factory=list)
    evaluations: int = 0

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def max_abs_err(self) -> float:
        return max((r.max_abs_err for r in self.rows), default=0.0)

    def __str__(self) -> str:
        head = f"{'parameter':<24} {'size':>6} {'max abs err':>12} {'max rel err':>12}  ok"
        lines = [
            f"gradcheck ({self.mode} differences, eps={self.eps:g}; pass if "
            f"|Δ| <= {self.atol:g} + {self.rtol:g}·|numeric|; {self.evaluations} evaluations of E)",
            head,
            "-" * len(head),
        ]
        for r in self.rows:
            lines.append(
                f"{r.name[:24]:<24} {r.size:>6} {r.max_abs_err:>12.3e} "
                f"{r.max_rel_err:>12.3e}  {'yes' if r.ok else 'NO'}"
            )
        return "\n".join(lines)


def gradcheck(
    net: Any,
    params: Mapping[str, Any],
    inputs: Mapping[Hashable, Any],
    *,
    mode: Literal["central", "forward"] = "central",
    eps: float | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    directions: int | None = None,
    names: list[str] | None = None,
    seed: int = 0,
) -> GradcheckReport:
    """Compare ``net.backward``'s gradients with numerical differentiation of E.

    Parameters
    ----------
    mode : ``"central"`` (default) or ``"forward"`` (the slides' one-sided formula).
    eps : the step (default 1e-6 central, 1e-7 forward); always float64.
    atol, rtol : an entry passes if ``|analytic - numeric| <= atol + rtol·|numeric|``
        (defaults 1e-6/1e-5 central, 1e-4/1e-3 forward).
    directions : check this many random unit directions instead of every entry.
    names : check only these parameters (default all).
    """
    if mode not in TOLERANCES:
        raise ValueError(f"mode must be 'central' or 'forward', got {mode!r}")
    if directions is not None and directions < 1:  # none would be checked, and all "pass"
        raise ValueError(f"directions must be at least 1, got {directions}")
    eps = eps if eps is not None else (1e-6 if mode == "central" else 1e-7)
    atol = atol if atol is not None else TOLERANCES[mode][0]
    rtol = rtol if rtol is not None else TOLERANCES[mode][1]
    base = {k: np.array(v, dtype=np.float64) for k, v in params.items() if k in net.params}
    analytic = net.backward(base, inputs).grads
    names = list(net.params) if names is None else names
    counter = [0]

    def error(p: dict[str, np.ndarray]) -> float:
        counter[0] += 1
        return float(net.error(p, inputs))

    e0 = error(base) if mode == "forward" else 0.0

    def derivative(direction: dict[str, np.ndarray]) -> float:
        plus = {k: v + eps * direction[k] if k in direction else v for k, v in base.items()}
        if mode == "forward":
            return (error(plus) - e0) / eps
        minus = {k: v - eps * direction[k] if k in direction else v for k, v in base.items()}
        return (error(plus) - error(minus)) / (2 * eps)

    rows = []
    if directions:
        rng = np.random.default_rng(seed)
        for i in range(directions):
            u = {k: rng.normal(size=np.shape(base[k])) for k in names}
            norm = np.sqrt(sum(float(np.sum(x * x)) for x in u.values()))
            u = {k: x / norm for k, x in u.items()}
            a = sum(float(np.sum(np.asarray(analytic[k]) * u[k])) for k in names)
            rows.append(_row(f"direction {i}", 1, np.array([a]), np.array([derivative(u)]),
                             atol, rtol))
    else:
        for k in names:
            shape = np.shape(base[k])
            numeric = np.zeros(shape)
            for idx in np.ndindex(*shape):
                e = np.zeros(shape)
                e[idx] = 1.0
                numeric[idx] = derivative({k: e})
            rows.append(_row(k, max(numeric.size, 1), np.asarray(analytic[k]), numeric,
                             atol, rtol))
    return GradcheckReport(mode, eps, atol, rtol, rows, counter[0])


def _row(
    name: str, size: int, a: np.ndarray, n: np.ndarray, atol: float, rtol: float
) -> GradcheckRow:
    diff = np.abs(a - n)
    rel = diff / np.maximum(np.abs(n), 1e-300)
    ok = bool(np.all(diff <= atol + rtol * np.abs(n)))
    return GradcheckRow(name, size, float(diff.max(initial=0.0)), float(rel.max(initial=0.0)), ok)
