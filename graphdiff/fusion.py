"""Level fusion, a pass over the plan (steps in, steps and levels out): neurons that
share a depth and an activation (and are numerous enough to pay for it) become one
*level* step,

    Z = W · A + b,   A_out = g(Z)           (forward)
    dZ = g'(Z) ⊙ Δ,  dW = dZ · Aᵀ,  ΔA = Wᵀ · dZ   (backward)

where A stacks the level's distinct inputs (one row per source node, one column
per data point) and W is built on every call from the scalar edge parameters.
A level is *dense* (a matrix product) when at least ``DENSE_FILL`` of W is
non-zero, else *sparse* (gathered edge by edge, summed with ``np.add.reduceat``).
Small levels (the lecture's 7-neuron net) stay neuron by neuron.

:func:`fuse` returns the fused plan (:class:`Fusion`): its ``order`` runs steps and
:class:`Level` records by depth. Both backends run it: the interpreter
(:mod:`graphdiff.interpret`, whose level rule the generated code calls) and the
code generator (:mod:`graphdiff.codegen`). Every decision about a level (the index
arrays, whether W is one gather, which rows have a bias) is made here, once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from itertools import chain
from typing import Any, NamedTuple

import numpy as np

from .plan import NeuronStep, Step
from .registry import Op, identity, identity_vjp

__all__ = [
    "DENSE_FILL", "MIN_LEVEL_EDGES", "MIN_LEVEL_NEURONS", "Fusion", "Group", "Level", "fuse",
    "passes",
]

Array = np.ndarray

# A level of fewer neurons and edges than this runs neuron by neuron.
MIN_LEVEL_NEURONS = 4
MIN_LEVEL_EDGES = 8
# Dense matrix product when at least this fraction of W is non-zero.
DENSE_FILL = 0.25


def passes(op: Op, attrs: dict[str, Any]) -> bool:
    """Is ``op`` the identity (its value is its operand, its delta passes through)?"""
    return op.forward is identity and op.vjp is identity_vjp and not attrs


def reads(op: Op, position: str | int) -> bool:
    """Does ``op``'s vjp read its output (``"out"``) or operand ``position``?"""
    return op.saves is None or position in op.saves


def bound(fn: Callable[..., Any], attrs: dict[str, Any]) -> Callable[..., Any]:
    """``fn`` with an op's attributes as keyword arguments."""
    return partial(fn, **attrs) if attrs else fn


class Group(NamedTuple):
    """Sources of a level that live together: rows ``j0:j1`` of A are the rows
    ``rows`` (a slice or an index array) of level ``level``'s value, or, with
    ``level`` None, the one value of slot ``rows`` outside levels. ``whole``: every
    row of that level, in order."""

    level: int | None
    rows: Any  # slice | Array | int
    j0: int
    j1: int
    whole: bool


@dataclass(frozen=True, eq=False)
class Level:
    """Neurons of one depth and activation, run as one matrix step; the arrays say
    where each edge sits (``ti``: member row, ``si``: source row, ``pi``: scalar
    parameter index, in member order)."""

    index: int
    members: tuple[NeuronStep, ...]
    sources: tuple[int, ...]  # distinct operand slots, in row order of A
    groups: tuple[Group, ...]
    ti: Array
    si: Array
    pi: Array
    dense: bool
    block: Array | None  # dense, every (member, source) pair once: W = P[block]
    pairs_unique: bool  # dense: no (member, source) pair twice (parallel edges)
    starts: Array | None  # sparse: where each member's edges begin
    back_order: Array | None  # sparse backward: edges by source ...
    back_starts: Array | None  # ... and where each source's edges begin
    grads_unique: bool  # no parameter twice among the edges
    bias: Array | None  # scalar parameter of each member's bias (None: no biases)
    bias_rows: Array | None  # the members with a bias (None: all of them)
    bias_unique: bool
    act: Op
    g: Callable[..., Any] | None  # the activation with its attributes; None: identity
    dg: Callable[..., Any] | None  # its derivative g'(z, a), when it declares one
    vjp: Callable[..., Any]
    reads_z: bool  # the activation's backward reads Z ...
    reads_v: bool  # ... and its value


class Fusion:
    """The fused plan: ``order`` runs steps and levels by depth; ``lvl[slot]`` and
    ``row[slot]`` place a fused neuron (-1 outside levels). ``deferred``: neurons
    outside levels whose delta comes from one use alone and whose dE/dz is linear
    in their delta; both backends keep such a delta as an unscaled array and a
    number (no array is scaled by the weight of that use)."""

    def __init__(self, steps: list[Step], sidx: dict[str, int]) -> None:
        self.steps = steps
        self.sidx = sidx
        neurons = [s for s in steps if isinstance(s, NeuronStep)]
        self.neurons = neurons
        lens = np.fromiter(map(len, (s.args for s in neurons)), np.intp, len(neurons))
        flat = np.fromiter(chain.from_iterable(s.args for s in neurons), np.intp, lens.sum())
        owner = np.repeat(np.arange(len(neurons)), lens)
        self.neuron_args = (lens, flat, owner)  # every neuron's operands, in one array
        self.levels: list[Level] = []
        self.order: list[Step | Level] = []
        self._weight_index: Array | None = None
        self._weight_uses = np.zeros(0, np.intp)
        self._plan_levels()
        # how many times each value is an operand (each use adds to its delta)
        uses = np.bincount(
            np.fromiter(chain.from_iterable(s.args for s in steps), np.intp),
            minlength=len(steps),
        )
        self.deferred = frozenset(
            s.slot for s in neurons
            if self.lvl[s.slot] < 0 and uses[s.slot] == 1 and s.act is not None
            and (passes(s.act, s.act_attrs) or s.act.derivative is not None)
        )

    def _plan_levels(self) -> None:
        depth = [0] * len(self.steps)
        at = depth.__getitem__
        groups: dict[tuple[Any, ...], list[NeuronStep]] = {}
        for s in self.steps:
            d = depth[s.slot] = 1 + max(map(at, s.args), default=-1)
            if type(s) is NeuronStep and s.act is not None:
                attrs = repr(sorted(s.act_attrs.items())) if s.act_attrs else ""
                key = (d, s.act.name, attrs)
                members = groups.get(key)
                if members is None:
                    groups[key] = [s]
                else:
                    members.append(s)
        n = len(self.steps)
        level_arr = np.full(n, -1, dtype=np.intp)  # slot -> its level, -1 outside levels
        row_arr = np.zeros(n, dtype=np.intp)
        chosen: list[list[NeuronStep]] = []
        for members in groups.values():
            n_edges = sum(len(m.args) for m in members)
            if len(members) < MIN_LEVEL_NEURONS and n_edges < MIN_LEVEL_EDGES:
                continue
            slots = [m.slot for m in members]
            level_arr[slots] = len(chosen)
            row_arr[slots] = np.arange(len(members))
            chosen.append(members)
        # sources are sorted by (level, row), then the rest by slot: one int per slot
        big = n + 1
        self.level_arr, self.row_arr = level_arr, row_arr
        self.row_key = np.where(
            level_arr >= 0, level_arr * big + row_arr, len(chosen) * big + np.arange(n)
        )
        self.lvl, self.row = level_arr.tolist(), row_arr.tolist()  # fast lookups by slot
        # each level's operands: the neurons' operands grouped by level (a stable sort
        # keeps members, and each member's operands, in order)
        lens, flat, owner = self.neuron_args
        owner_level = level_arr[np.fromiter((s.slot for s in self.neurons), np.intp)]
        edge_level = owner_level[owner]
        edge_order = np.argsort(edge_level, kind="stable")
        ends = np.cumsum(np.bincount(edge_level + 1, minlength=len(chosen) + 1))
        member_order = np.argsort(owner_level, kind="stable")
        mends = np.cumsum(np.bincount(owner_level + 1, minlength=len(chosen) + 1))
        mark = np.zeros(n, dtype=bool)
        self._sizes = [len(members) for members in chosen]
        for b, members in enumerate(chosen):
            edges = edge_order[ends[b] : ends[b + 1]]  # positions in flat
            args = flat[edges]
            mark[args] = True  # distinct sources, cheaper than np.unique
            srcs = np.flatnonzero(mark)
            mark[srcs] = False
            sources = srcs[np.argsort(self.row_key[srcs], kind="stable")]
            member_lens = lens[member_order[mends[b] : mends[b + 1]]]
            self.levels.append(self._level(b, members, sources, args, edges, member_lens))
        items: list[tuple[tuple[int, int], Step | Level]] = []
        for s in self.steps:
            b = self.lvl[s.slot]
            if b < 0:
                items.append(((depth[s.slot], s.slot), s))
            elif self.levels[b].members[0] is s:
                items.append(((depth[s.slot], s.slot), self.levels[b]))
        self.order = [it for _, it in sorted(items, key=lambda p: p[0])]

    def _level(
        self, b: int, members: list[NeuronStep], sources: Array, args: Array, edges: Array,
        lens: Array,
    ) -> Level:
        k, m = len(members), len(sources)
        keys = self.row_key[sources]  # ascending: sources are sorted by it
        ti = np.repeat(np.arange(k, dtype=np.intp), lens)
        si = np.searchsorted(keys, self.row_key[args]).astype(np.intp)
        pi = self.weight_index()[edges]
        dense = len(args) >= DENSE_FILL * k * m
        block, pairs_unique = None, True
        starts = back_order = back_starts = None
        if dense:
            cells = ti * m + si
            pairs_unique = np.unique(cells).size == ti.size
            if pairs_unique and ti.size == k * m:
                pw = np.empty(k * m, dtype=np.intp)
                pw[cells] = pi
                block = pw.reshape(k, m)
        else:
            # edges are in member order, so each member's edges are one segment
            starts = np.flatnonzero(np.r_[True, ti[1:] != ti[:-1]])
            back_order = np.argsort(si, kind="stable")
            sorted_si = si[back_order]
            back_starts = np.flatnonzero(np.r_[True, sorted_si[1:] != sorted_si[:-1]])
        uses = self.weight_uses()
        grads_unique = bool(uses[pi].max() <= 1 or np.unique(pi).size == pi.size)
        with_bias = [(r, self.sidx[mem.bias]) for r, mem in enumerate(members) if mem.bias]
        bias = bias_rows = None
        if with_bias:
            bias = np.array([p for _, p in with_bias], dtype=np.intp)
            if len(with_bias) < k:
                bias_rows = np.array([r for r, _ in with_bias], dtype=np.intp)
        act, attrs = members[0].act, members[0].act_attrs
        assert act is not None
        identity_act = passes(act, attrs)
        return Level(
            b, tuple(members), tuple(sources.tolist()), self._groups(sources), ti, si, pi,
            dense, block, pairs_unique, starts, back_order, back_starts, grads_unique, bias,
            bias_rows, bias is None or np.unique(bias).size == bias.size, act,
            None if identity_act else bound(act.forward, attrs),
            None if act.derivative is None else bound(act.derivative, attrs),
            bound(act.vjp, attrs), reads(act, 0), reads(act, "out"),
        )

    def _groups(self, sources: Array) -> tuple[Group, ...]:
        """The sources grouped by where they live (see :class:`Group`): sorted by
        (level, row), each earlier level's rows are one run of A's rows."""
        blks, rows = self.level_arr[sources], self.row_arr[sources]
        starts = np.flatnonzero(np.r_[True, (blks[1:] != blks[:-1]) | (blks[1:] < 0)])
        out: list[Group] = []
        bounds = zip(starts.tolist(), [*starts[1:].tolist(), len(sources)], strict=True)
        for j0, j1 in bounds:
            blk = int(blks[j0])
            if blk < 0:
                out.append(Group(None, int(sources[j0]), j0, j1, False))
                continue
            r = rows[j0:j1]  # ascending and distinct: contiguous when the span fits
            if r[-1] - r[0] == j1 - j0 - 1:
                whole = r[0] == 0 and j1 - j0 == self._sizes[blk]
                out.append(Group(blk, slice(int(r[0]), int(r[-1]) + 1), j0, j1, whole))
            else:
                out.append(Group(blk, r.copy(), j0, j1, False))
        return tuple(out)

    def weight_index(self) -> Array:
        """The scalar-parameter index of every neuron edge (numbered as in ``neuron_args``)."""
        if self._weight_index is None:
            lens, _, _ = self.neuron_args
            weights = chain.from_iterable(s.weights for s in self.neurons)
            index = map(self.sidx.__getitem__, weights)
            self._weight_index = np.fromiter(index, np.intp, lens.sum())
            self._weight_uses = np.bincount(self._weight_index, minlength=len(self.sidx))
        return self._weight_index

    def weight_uses(self) -> Array:
        """How many neuron edges use each scalar parameter."""
        self.weight_index()
        return self._weight_uses

    def level_of(self, slot: int) -> tuple[int, int] | None:
        """(level, row) of a neuron run in a level, else None."""
        b = self.lvl[slot]
        return None if b < 0 else (b, self.row[slot])

    def unfused(self) -> int:
        """How many steps run outside levels."""
        return sum(not isinstance(it, Level) for it in self.order)


def fuse(steps: list[Step], sidx: dict[str, int]) -> Fusion:
    """Group the plan's neurons into levels (``sidx``: scalar parameter -> index)."""
    return Fusion(steps, sidx)
