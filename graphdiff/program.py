"""The generated functions of a plan, and how the network calls and reads them.

:func:`generate` writes them with :class:`graphdiff.codegen.CodeGen`; each is
``f(P, Q, X, N)`` of the scalar parameters' vector, the tensor parameters, the
inputs and the number of data points.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .codegen import MAX_UNFUSED_STEPS, CodeGen
from .fusion import Fusion
from .plan import NeuronStep, Step

__all__ = ["Program", "generate"]


@dataclass
class Program:
    """The generated functions of a plan, each ``f(P, Q, X, N)`` of the scalar
    parameters' vector, the tensor parameters, the inputs and the number of points.

    ``backward`` returns ``(E, scalar gradients, tensor gradients)``; ``error``
    returns E. :meth:`variant` gives the same computation with every delta kept
    (``deltas``) or every value and delta checked finite (``check``).
    """

    backward: Callable[..., Any]
    error: Callable[..., Any]
    source: str
    make: Callable[[bool, bool], tuple[Callable[..., Any], str]]
    where: list[tuple[int, int] | None]  # slot -> (level, row) of a fused neuron
    _gen: CodeGen | None = None
    variants: dict[tuple[bool, bool], Callable[..., Any]] = field(default_factory=dict)
    _terms: Callable[..., Any] | None = None

    def variant(self, deltas: bool, check: bool) -> Callable[..., Any]:
        """``backward`` with options, generated on first use; with ``deltas`` it also
        returns the function's variables, read by :meth:`collect`."""
        fn = self.variants.get((deltas, check))
        if fn is None:
            fn = self.variants[deltas, check] = self.make(deltas, check)[0]
        return fn

    def collect(self, env: dict[str, Any], steps: list[Step]) -> list[tuple[Any, ...]]:
        """Per slot: (value, delta, z, dE/dz) from a ``deltas`` variant's variables,
        each the caller's own array; a delta is None where none reached the node, z
        and dE/dz None off neurons.

        A fused level's matrices were made by this call: its nodes get their rows,
        without copies, unless two matrices share memory (an identity level's value
        is its z). Everything else is copied: it may be an input, a parameter, or
        one array that two deltas share.
        """
        levels: dict[int, tuple[Any, ...]] = {}

        def level(b: int) -> tuple[Any, ...]:
            mats = levels.get(b)
            if mats is None:
                mine: list[Any] = []
                for name in ("V", "DV", "Z", "XZ"):  # value, delta, z, dE/dz
                    m = env.get(f"{name}{b}")
                    if m is not None and any(np.may_share_memory(m, o) for o in mine):
                        m = np.array(m)
                    mine.append(m)
                mats = levels[b] = tuple(mine)
            return mats

        def own(x: Any) -> Any:
            return None if x is None else np.array(x)

        out: list[tuple[Any, ...]] = []
        for s in steps:
            i, lv = s.slot, self.where[s.slot]
            if lv is not None:
                b, r = lv
                out.append(tuple(None if m is None else m[r] for m in level(b)))
                continue
            neuron = isinstance(s, NeuronStep)
            c = env.get(f"xc{i}")
            d, dz = env.get(f"d{i}"), env.get(f"xz{i}") if neuron else None
            if c is not None:  # d<i> stands for c * d<i> (see Fusion.deferred)
                d = None if d is None else c * d
                dz = None if dz is None else c * dz
            z = own(env[f"z{i}"]) if neuron else None
            out.append((own(env[f"v{i}"]), own(d), z, own(dz)))
        return out

    @property
    def terms(self) -> Callable[..., Any]:
        """``(P, Q, X, N) -> (E, L, operands)``: the error, the loss node's value per
        data point and its operands' values (prediction, target), generated on first use
        (only classifiers' evaluation needs it)."""
        if self._terms is None:
            assert self._gen is not None
            src = self._gen.source(with_backward=False, loss_terms=True)
            exec(compile(src, "<graphdiff plan>", "exec"), self._gen.ns)  # noqa: S102
            self._terms, self._gen = self._gen.ns["terms"], None
        return self._terms


def generate(
    fusion: Fusion,
    tensor_names: list[str],
    loss_slot: int,
    reduction: str,
    needs: list[bool],
    dtype: Any = np.float64,
) -> Program | None:
    """Generate the fast backward and error functions of a fused plan.

    Returns ``None`` for plans with more than ``MAX_UNFUSED_STEPS`` steps outside
    levels (a 100,000-node chain): CPython compiles such huge functions slowly,
    and there the interpreter's per-step cost is small next to the work anyway.
    """
    if fusion.unfused() > MAX_UNFUSED_STEPS:
        return None

    def make(deltas: bool, check: bool) -> tuple[Callable[..., Any], str]:
        g = CodeGen(fusion, tensor_names, loss_slot, reduction, needs, deltas, check, dtype)
        src = g.source(with_backward=True)
        # The source is built only from integers and fixed identifiers (see module doc).
        exec(compile(src, "<graphdiff plan>", "exec"), g.ns)  # noqa: S102
        return g.ns["backward"], src

    gen = CodeGen(fusion, tensor_names, loss_slot, reduction, needs, dtype=dtype)
    src_b = gen.source(with_backward=True)
    src_e = gen.source(with_backward=False)
    ns = gen.ns
    exec(compile(src_b + "\n" + src_e, "<graphdiff plan>", "exec"), ns)  # noqa: S102
    where = [fusion.level_of(s.slot) for s in fusion.steps]
    return Program(ns["backward"], ns["error"], src_b, make, where, gen)
