"""Check a network's backpropagated gradient against float64 numerical differentiation.

The lecture's numerical gradient, ``(E(θ + ε·δ_t) − E(θ)) / ε`` for each parameter
entry t, is available as ``mode="forward"``; the default ``mode="central"`` uses
``(E(θ + ε·δ_t) − E(θ − ε·δ_t)) / 2ε``, whose error is O(ε²) instead of O(ε).
For large networks ``directions=k`` compares k random directional derivatives
instead of every entry (2k evaluations of E instead of 2·#parameters).

The numerical side is always float64, the lecture's point: in float32 a step of
1e-6 is lost in rounding. A float32 network's own (float32) gradients are compared
with differences of E computed by its float64 twin (the same graph compiled as
float64), at the same parameters and inputs (the float32 ones, exactly), with
tolerances for float32 rounding; the report says so.

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

import math
import warnings
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .errors import GraphdiffError

__all__ = ["GradcheckError", "GradcheckReport", "GradcheckRow", "gradcheck"]

TOLERANCES = {"central": (1e-6, 1e-5), "forward": (1e-4, 1e-3)}
# a float32 network's gradients carry float32 rounding (~1e-7 relative per operation)
TOLERANCES_FLOAT32 = {"central": (1e-5, 1e-3), "forward": (1e-4, 1e-3)}


class GradcheckError(GraphdiffError, ValueError):
    """Arguments of :func:`gradcheck` that would check nothing or make no sense."""


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
    """Result of :func:`gradcheck`: one row per parameter (or direction).

    ``dtype`` is the checked network's (its backward's) float type; the numerical
    differences are float64 whatever it is (``numeric_dtype``).
    """

    mode: str
    eps: float
    atol: float
    rtol: float
    rows: list[GradcheckRow] = field(default_factory=list)
    evaluations: int = 0
    dtype: str = "float64"
    numeric_dtype: str = "float64"

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def max_abs_err(self) -> float:
        return max((r.max_abs_err for r in self.rows), default=0.0)

    def __str__(self) -> str:
        head = f"{'parameter':<24} {'size':>6} {'max abs err':>12} {'max rel err':>12}  ok"
        lines = [
            f"gradcheck ({self.mode} differences in {self.numeric_dtype}, eps={self.eps:g}, "
            f"of a {self.dtype} backward; pass if |Δ| <= {self.atol:g} + "
            f"{self.rtol:g}·|numeric|; {self.evaluations} evaluations of E)",
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
        (defaults 1e-6/1e-5 central, 1e-4/1e-3 forward; for a float32 network
        1e-5/1e-3 and 1e-4/1e-3).

    The numerical differences are always float64: a float32 network's E is
    evaluated by its float64 twin (compiled from the same graph) at the float32
    parameters and inputs, and compared with the network's own float32 gradients.
    directions : check this many random unit directions instead of every entry.
    names : check only these parameters (default all).
    """
    if not isinstance(mode, str) or mode not in TOLERANCES:
        raise GradcheckError(f"mode must be 'central' or 'forward', got {mode!r}")
    dtype = getattr(net, "dtype", np.dtype(np.float64))
    tolerances = TOLERANCES if dtype == np.float64 else TOLERANCES_FLOAT32
    eps = _positive("eps", eps, 1e-6 if mode == "central" else 1e-7)
    atol = _positive("atol", atol, tolerances[mode][0], zero=True)
    rtol = _positive("rtol", rtol, tolerances[mode][1], zero=True)
    if directions is not None and (
        isinstance(directions, bool) or not isinstance(directions, int) or directions < 1
    ):
        # 0 or fewer directions would check nothing and report ok
        raise GradcheckError(f"directions must be a whole number >= 1, got {directions!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise GradcheckError(f"seed must be a whole number >= 0, got {seed!r}")
    names = _names(net, names)
    if not isinstance(params, Mapping):
        raise GradcheckError(f"params must be a mapping of name -> value, got "
                             f"{type(params).__name__}")
    base = net._check_params(params)  # names a missing or malformed parameter
    analytic = net.backward(base, inputs).grads
    twin = net
    if dtype != np.float64:  # E in float64, at exactly the float32 point
        twin = _float64_twin(net)
        base = {k: np.asarray(v, np.float64) for k, v in base.items()}
        inputs = {k: np.asarray(v, np.float64)
                  for k, v in net._check_inputs(inputs, net.inputs).items()}
    counter = [0]

    def error(p: dict[str, np.ndarray]) -> float:
        counter[0] += 1
        return float(twin.error(p, inputs))

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
    return GradcheckReport(mode, eps, atol, rtol, rows, counter[0], dtype.name)


def _float64_twin(net: Any) -> Any:
    """The network's graph and loss compiled as float64 (its warnings were shown once)."""
    from .compile import compile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compile(net.graph, loss=net.loss, reduction=net.reduction)


def _positive(what: str, value: object, default: float, zero: bool = False) -> float:
    """``value`` (default ``default``) as a finite float > 0 (>= 0 with ``zero``)."""
    if value is None:
        return default
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    try:
        x = float(value) if ok else math.nan  # type: ignore[arg-type]
    except OverflowError:
        x = math.inf
    if not (math.isfinite(x) and (x >= 0 if zero else x > 0)):
        bound = ">= 0" if zero else "> 0"
        raise GradcheckError(f"{what} must be a finite number {bound}, got {value!r}")
    return x


def _names(net: Any, names: object) -> list[str]:
    """The parameters to check: all (``None``) or the given names; never none at all,
    which would report ok having checked nothing."""
    if names is None:
        chosen = list(net.params)
        if not chosen:
            raise GradcheckError("the network has no parameters: there is nothing to check")
        return chosen
    if isinstance(names, str) or not isinstance(names, (list, tuple)):
        raise GradcheckError(f"names must be a list of parameter names, got {names!r}")
    unknown = [n for n in names if not isinstance(n, str) or n not in net.params]
    if unknown:
        raise GradcheckError(f"names: {unknown!r} are not parameters of the network")
    if not names:
        raise GradcheckError("names is empty: there is nothing to check")
    return list(names)


def _row(
    name: str, size: int, a: np.ndarray, n: np.ndarray, atol: float, rtol: float
) -> GradcheckRow:
    diff = np.abs(a - n)
    rel = diff / np.maximum(np.abs(n), 1e-300)
    ok = bool(np.all(diff <= atol + rtol * np.abs(n)))
    return GradcheckRow(name, size, float(diff.max(initial=0.0)), float(rel.max(initial=0.0)), ok)
