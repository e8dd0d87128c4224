"""W6: saving and loading a model of 1,001,000 float64 parameters.

The model is one dense tanh layer in op notation, a 1000×1000 weight matrix and
1000 biases, with a squared-error loss. graphdiff's model file (graph and
parameters) is timed against ``np.savez`` / ``np.load`` of the same parameters
(and ``torch.save`` / ``torch.load`` where PyTorch is installed); its size is
compared with the parameters' raw bytes.

>>> G = model_graph(3)
>>> sorted(n for n, d in G.nodes(data=True) if d["op"] == "param")
['W', 'b']
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import networkx as nx
import numpy as np

import graphdiff

from .core import Context, Impl, Row, VerificationError, compare_all, measure

__all__ = ["model_graph", "w6"]

ATOMIC = "atomic: temporary file, fsync, rename, fsync of the folder (np.savez: none)"


def model_graph(d: int) -> nx.DiGraph[Any]:
    """x (N, d) → tanh(x W + b) → squared error against t (N, d); W is d×d, b has d entries."""
    G: nx.DiGraph[Any] = nx.DiGraph()
    G.add_nodes_from(["x", "t"], op="input")
    G.add_node("W", op="param", shape=(d, d))
    G.add_node("b", op="param", shape=(d,))
    G.add_node("xW", op="matmul")
    G.add_edge("x", "xW", port=0)
    G.add_edge("W", "xW", port=1)
    G.add_node("z", op="add")
    G.add_edge("xW", "z", port=0)
    G.add_edge("b", "z", port=1)
    G.add_node("y", op="tanh")
    G.add_edge("z", "y")
    G.add_node("E", op="squared_error")
    G.add_edge("y", "E", port=0)
    G.add_edge("t", "E", port=1)
    return G


def _as_results(params: Any, nodes: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {f"param/{k}": np.asarray(v, dtype=np.float64) for k, v in params.items()}
    if nodes is not None:  # the graph's structure survives too (compared as node count)
        out["nodes"] = np.float64(len(nodes))
    return out


def w6(ctx: Context) -> list[Row]:
    """W6: save, load and file size of graphdiff's model file against np.savez / np.load."""
    if not hasattr(graphdiff, "save") or not hasattr(graphdiff, "load"):
        return [Row("W6", "graphdiff", note="skipped: graphdiff.save not available yet")]
    d = ctx.size(1000, 10)
    G = model_graph(d)
    rng = np.random.default_rng(7)
    params = {"W": rng.standard_normal((d, d)), "b": rng.standard_normal(d)}
    raw = sum(v.nbytes for v in params.values())
    label = f"W6 ({d * d + d:,} params)"
    with tempfile.TemporaryDirectory() as tmp:
        gd, npz, pt = (os.path.join(tmp, f) for f in ("model.json", "params.npz", "params.pt"))

        def npz_load() -> dict[str, Any]:
            with np.load(npz) as f:  # np.load of an .npz is lazy: read every array
                return {k: f[k] for k in f.files}

        save = [Impl("np.savez", lambda: np.savez(npz, W=params["W"], b=params["b"]), lambda r: {}),
                Impl("graphdiff.save", lambda: graphdiff.save(gd, G, params, loss="E"),
                     lambda r: {})]
        load = [Impl("np.load", npz_load, _as_results),
                Impl("graphdiff.load", lambda: graphdiff.load(gd),
                     lambda r: {**_as_results(r[1], r[0].nodes)})]
        if ctx.torch is not None:
            torch = ctx.torch
            tensors = {k: torch.from_numpy(v) for k, v in params.items()}
            save.append(Impl("torch.save", lambda: torch.save(tensors, pt), lambda r: {}))
            load.append(Impl("torch.load", lambda: torch.load(pt),
                             lambda r: _as_results({k: v.numpy() for k, v in r.items()})))
        rows: list[Row] = []
        for what, impls, target in (("save", save, 8.0), ("load", load, 20.0)):
            if what == "save":
                compare_all(f"{label} save", impls)  # writes every file the loads read
            else:
                ref = {**_as_results(params), "nodes": np.float64(G.number_of_nodes())}
                outs = compare_all(f"{label} load", impls)
                # Round trips are exact: everything loaded equals what was saved.
                for name, got in outs.items():
                    for k, v in got.items():
                        if not np.array_equal(v, ref[k]):
                            raise VerificationError(f"W6: {name} does not round-trip {k!r}")
            med = measure({i.name: i.run for i in impls}, ctx.budget(8.0))
            base = med[impls[0].name]
            rows += [Row(f"{label} {what}", i.name, med[i.name], ratio=med[i.name] / base,
                         of=impls[0].name,
                         target=target if i.name.startswith("graphdiff") else None,
                         note=ATOMIC if i.name == "graphdiff.save" else "")
                     for i in impls]
        sizes = {"raw float64 bytes": raw, "np.savez": os.path.getsize(npz),
                 "graphdiff.save": os.path.getsize(gd)}
        if ctx.torch is not None:
            sizes["torch.save"] = os.path.getsize(pt)
    rows += [Row(f"{label} file", k, float(v), "B", v / raw, "raw float64 bytes",
                 1.4 if k == "graphdiff.save" else None) for k, v in sizes.items()]
    return rows
