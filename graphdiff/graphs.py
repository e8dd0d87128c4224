"""Graph utilities every module agrees on: the canonical node order, ancestors,
in-edges in canonical order, and a fast independent copy of a graph.

Nothing here knows about ops or plans; :mod:`graphdiff.compile` and the file
format both order nodes by :func:`node_key`.
"""

from __future__ import annotations

import gc
import heapq
from collections.abc import Callable, Hashable, Mapping
from itertools import compress
from operator import not_
from typing import Any, TypeVar

import networkx as nx

from .errors import CycleError

T = TypeVar("T")

__all__ = [
    "ancestors_and_self", "canonical_order", "default_param_name", "edge_param", "in_edges",
    "node_key", "snapshot",
]


def node_key(n: Hashable) -> tuple[int, str]:
    """Canonical sort key of a node name: ints before strings, then by text."""
    return (0 if isinstance(n, int) else 1, str(n))


def canonical_order(G: Any) -> list[Hashable]:
    """All nodes in lexicographic topological order (by :func:`node_key`).

    The same graph gives the same order whatever order its nodes and edges were
    inserted in. Kahn's algorithm with a heap, iterative (no recursion limit).
    Raises :class:`CycleError` with the cycle's path.
    """
    return canonical_ranked(G)[0]


def canonical_ranked(G: Any) -> tuple[list[Hashable], dict[Hashable, int]]:
    """:func:`canonical_order`, and each node's rank by :func:`node_key` (ints
    compare faster than keys: the heap holds ranks, and the loop reads lists by rank).

    Parallel edges count once: a node is ready when each of its predecessors is
    placed, however many edges join them, so multigraphs need no other loop.
    """
    nodes = G._node
    # a str's node_key is (1, the str itself): sorting strs needs no key function
    node_of = sorted(nodes) if set(map(type, nodes)) <= {str} else sorted(nodes, key=node_key)
    rank = dict(zip(node_of, range(len(node_of)), strict=True))
    ranked = rank.__getitem__
    # the plain adjacency dicts (see in_edges); successors and in-degrees by rank
    succ = [list(map(ranked, s)) for s in map(G._succ.__getitem__, node_of)]
    indeg = list(map(len, map(G._pred.__getitem__, node_of)))
    heap = list(compress(range(len(indeg)), map(not_, indeg)))  # sorted: a valid heap
    done: list[int] = []
    push, pop, place = heapq.heappush, heapq.heappop, done.append
    while heap:
        r = pop(heap)
        place(r)
        for v in succ[r]:
            d = indeg[v] - 1
            indeg[v] = d
            if not d:
                push(heap, v)
    if len(done) != len(node_of):
        cycle = nx.find_cycle(G)
        path = [e[0] for e in cycle] + [cycle[0][0]]
        raise CycleError("the graph has a cycle: " + " -> ".join(map(repr, path)))
    return list(map(node_of.__getitem__, done)), rank


def ancestors_and_self(G: Any, node: Hashable) -> set[Hashable]:
    """``node`` and every node with a path to it (iterative)."""
    pred = G._pred  # the plain adjacency dict (see in_edges)
    seen = {node}
    stack = [node]
    while stack:
        for u in pred[stack.pop()]:
            if u not in seen:
                seen.add(u)
                stack.append(u)
    return seen


def in_edges(
    G: Any, v: Hashable, key: Callable[[Hashable], Any] = node_key
) -> list[tuple[Hashable, dict[str, Any], Any]]:
    """In-edges as (source, data, key), in a canonical order independent of insertion:
    by ``key`` of the source (:func:`node_key`, or a rank in that order), then edge key.
    """
    # G._pred is networkx's plain adjacency dict; its views cost ~10x more per edge,
    # which shows when compiling graphs of 100,000 neurons.
    pred = G._pred[v]
    if G.is_multigraph():
        edges = [(u, d, k) for u, ks in pred.items() for k, d in ks.items()]
        if len(edges) > 1:
            edges.sort(key=lambda e: (key(e[0]), str(e[2])))
        return edges
    return [(u, pred[u], None) for u in (sorted(pred, key=key) if len(pred) > 1 else pred)]


def snapshot(G: Any) -> Any:
    """An independent copy of ``G`` (same class, attribute dicts copied), like ``G.copy()``.

    Built straight from networkx's adjacency dicts (``_node``, ``_adj`` = successors,
    ``_pred``; successor and predecessor entries share one edge-data dict, as
    networkx keeps them): ``G.copy()`` re-adds edge by edge and took longer than
    the rest of compiling a 100,000-neuron graph.

    >>> import networkx as nx
    >>> G = nx.MultiDiGraph([("a", "b", {"port": 0}), ("a", "b", {"port": 1})])
    >>> H = snapshot(G)
    >>> nx.utils.graphs_equal(G, H), H.edges["a", "b", 1] is G.edges["a", "b", 1]
    (True, False)
    """
    H = G.__class__()
    H.graph.update(G.graph)
    copy = dict.copy  # mapped in C: no Python frame per node or edge
    H._node.update(zip(G._node, map(copy, G._node.values()), strict=True))
    pred: dict[Any, dict[Any, Any]] = {n: {} for n in G._node}
    adj: dict[Any, dict[Any, Any]] = {}
    if G.is_multigraph():
        for u, nbrs in G._adj.items():
            adj[u] = {v: {k: copy(d) for k, d in kd.items()} for v, kd in nbrs.items()}
            for v, kd in adj[u].items():
                pred[v][u] = kd
    else:
        for u, nbrs in G._adj.items():
            adj[u] = new = nbrs.copy()  # the keys copied in C; each edge's data below
            for v in new:
                new[v] = pred[v][u] = copy(new[v])
    H._adj.update(adj)
    H._pred.update(pred)
    return H


def default_param_name(u: Hashable, v: Hashable, key: Any = None) -> str:
    """The parameter name of an edge into a neuron that has no ``param``: ``"u->v"``
    (``"u->v#k"`` for the k-th parallel edge of a MultiDiGraph, k > 0).

    >>> default_param_name("x1", "h"), default_param_name("x", "y", 1)
    ('x1->h', 'x->y#1')
    """
    return f"{u}->{v}" if key in (None, 0) else f"{u}->{v}#{key}"


def edge_param(u: Hashable, v: Hashable, key: Any, data: Mapping[str, Any]) -> str:
    """The parameter name compile gives the edge u -> v (``key``: its key, or None)."""
    return str(data["param"]) if "param" in data else default_param_name(u, v, key)


def without_gc(make: Callable[[], T]) -> T:
    """``make()`` with the cyclic garbage collector off: compiling makes a few objects
    per edge and keeps them all, which it would rescan again and again (a third of
    the time at 10^5 nodes)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return make()
    finally:
        if enabled:
            gc.enable()
