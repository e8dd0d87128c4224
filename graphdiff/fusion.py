"""Level fusion, a pass over the plan: neurons that share a depth and an activation
(and are numerous enough to pay for it) become one *level* step,

    Z = W · A + b,   A_out = g(Z)           (forward)
    dZ = g'(Z) ⊙ Δ,  dW = dZ · Aᵀ,  ΔA = Wᵀ · dZ   (backward)

where A stacks the level's distinct inputs (one row per source node, one column
per data point) and W is built on every call from the scalar edge parameters.
A level is *dense* (a matrix product) when at least ``DENSE_FILL`` of W is
non-zero, else *sparse* (gathered edge by edge, summed with ``np.add.reduceat``).
Small levels (the lecture's 7-neuron net) stay neuron by neuron.

:func:`fuse` returns the fused order (steps and levels, by depth) and where each
neuron sits; :mod:`graphdiff.codegen` writes code for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np

from .plan import NeuronStep, Step

__all__ = ["DENSE_FILL", "MIN_LEVEL_EDGES", "MIN_LEVEL_NEURONS", "Fusion", "Level", "fuse"]

Array = np.ndarray
# (level or None, rows: "a:b", an index array, or the slot outside levels; j0, j1)
Group = tuple[int | None, Any, int, int]

# A level of fewer neurons and edges than this runs neuron by neuron.
MIN_LEVEL_NEURONS = 4
MIN_LEVEL_EDGES = 8
# Dense matrix product when at least this fraction of W is non-zero.
DENSE_FILL = 0.25


@dataclass
class Level:
    """Neurons of one depth and activation, run as one matrix step."""

    index: int
    members: list[NeuronStep]
    sources: list[int] = field(default_factory=list)  # distinct operand slots, row order of A
    args: Array = field(default_factory=lambda: np.zeros(0, np.intp))  # members' operands
    edges: Array = field(default_factory=lambda: np.zeros(0, np.intp))  # their edge numbers
    lens: Array = field(default_factory=lambda: np.zeros(0, np.intp))  # operands per member
    dense: bool = True
    groups: list[Group] | None = None  # see Fusion.groups


class Fusion:
    """The plan with its levels: ``order`` runs steps and levels by depth; ``lvl[slot]``
    and ``row[slot]`` place a fused neuron (-1 outside levels)."""

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
        self._weight_uses: Array | None = None
        self._plan_levels()

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
        for members in groups.values():
            edges = sum(len(m.args) for m in members)
            if len(members) < MIN_LEVEL_NEURONS and edges < MIN_LEVEL_EDGES:
                continue
            level = Level(len(self.levels), members)
            self.levels.append(level)
            slots = [m.slot for m in members]
            level_arr[slots] = level.index
            row_arr[slots] = np.arange(len(members))
        # sources are sorted by (level, row), then the rest by slot: one int per slot
        big = n + 1
        self.level_arr, self.row_arr = level_arr, row_arr
        self.row_key = np.where(
            level_arr >= 0, level_arr * big + row_arr, len(self.levels) * big + np.arange(n)
        )
        # each level's operands: the neurons' operands grouped by level (a stable sort
        # keeps members, and each member's operands, in order)
        lens, flat, owner = self.neuron_args
        owner_level = level_arr[np.fromiter((s.slot for s in self.neurons), np.intp)]
        edge_level = owner_level[owner]
        edge_order = np.argsort(edge_level, kind="stable")
        ends = np.cumsum(np.bincount(edge_level + 1, minlength=len(self.levels) + 1))
        member_order = np.argsort(owner_level, kind="stable")
        mends = np.cumsum(np.bincount(owner_level + 1, minlength=len(self.levels) + 1))
        mark = np.zeros(n, dtype=bool)
        for level in self.levels:
            b = level.index
            level.edges = edge_order[ends[b] : ends[b + 1]]  # positions in flat
            level.args = flat[level.edges]
            level.lens = lens[member_order[mends[b] : mends[b + 1]]]
            mark[level.args] = True  # distinct sources, cheaper than np.unique
            srcs = np.flatnonzero(mark)
            mark[srcs] = False
            level.sources = srcs[np.argsort(self.row_key[srcs], kind="stable")].tolist()
            level.dense = len(level.args) >= DENSE_FILL * len(level.members) * len(level.sources)
        self.lvl, self.row = level_arr.tolist(), row_arr.tolist()  # fast lookups by slot
        items: list[tuple[tuple[int, int], Step | Level]] = []
        for s in self.steps:
            b = self.lvl[s.slot]
            if b < 0:
                items.append(((depth[s.slot], s.slot), s))
            elif self.levels[b].members[0] is s:
                items.append(((depth[s.slot], s.slot), self.levels[b]))
        self.order = [it for _, it in sorted(items, key=lambda p: p[0])]

    def groups(self, lv: Level) -> list[Group]:
        """The level's sources grouped by where they live: (level, rows, j0, j1).

        Sources are sorted by (level, row), so each earlier level's rows occupy
        positions j0..j1 of A; ``rows`` is a slice ``"a:b"`` when they are contiguous,
        else an index array. Sources outside levels come alone with ``level = None``
        and their slot number in ``rows``.
        """
        src = np.array(lv.sources, dtype=np.intp)
        blks, rows = self.level_arr[src], self.row_arr[src]
        starts = np.flatnonzero(np.r_[True, (blks[1:] != blks[:-1]) | (blks[1:] < 0)])
        if lv.groups is not None:
            return lv.groups
        out: list[Group] = []
        for j0, j1 in zip(starts.tolist(), [*starts[1:].tolist(), len(src)], strict=True):
            blk = int(blks[j0])
            if blk < 0:
                out.append((None, str(lv.sources[j0]), j0, j1))
                continue
            r = rows[j0:j1]  # ascending and distinct: contiguous when the span fits
            contiguous = r[-1] - r[0] == j1 - j0 - 1
            sel: Any = f"{r[0]}:{r[-1] + 1}" if contiguous else r.copy()
            out.append((blk, sel, j0, j1))
        lv.groups = out
        return out

    def weight_index(self) -> Array:
        """The scalar-parameter index of every neuron edge (numbered as in ``neuron_args``)."""
        if self._weight_index is None:
            lens, _, _ = self.neuron_args
            weights = chain.from_iterable(s.weights for s in self.neurons)
            index = map(self.sidx.__getitem__, weights)
            self._weight_index = np.fromiter(index, np.intp, lens.sum())
        return self._weight_index

    def weight_uses(self) -> Array:
        """How many neuron edges use each scalar parameter."""
        if self._weight_uses is None:
            self._weight_uses = np.bincount(self.weight_index(), minlength=len(self.sidx))
        return self._weight_uses

    def level_of(self, slot: int) -> tuple[int, int] | None:
        """(level, row) of a neuron run in a level, else None."""
        b = self.lvl[slot]
        return None if b < 0 else (b, self.row[slot])


def fuse(steps: list[Step], sidx: dict[str, int]) -> Fusion:
    """Group the plan's neurons into levels (``sidx``: scalar parameter -> index)."""
    return Fusion(steps, sidx)
