"""W3 distributed: W3's network on N = 200,000 points, one process vs 1 and 2 Dask workers.

One full-batch training step each (loss and gradient, then ``graphdiff.SGD``):
graphdiff in this process (numpy's BLAS with its default threads), and the same
step through ``graphdiff.distributed.DataParallel`` (what ``fit(client=...)``
runs) on a loopback ``LocalCluster`` of 1 and of 2 single-threaded worker
processes (one BLAS thread each). Every variant's loss and gradient are first
checked against hand-written numpy (max abs diff < 1e-8). Time per step is the
median of :func:`benchmarks.core.measure` (each cluster's rounds run while that
cluster is up: the configurations are timed one after the other, not
interleaved). Bytes per step is DataParallel's estimate from the arrays sent:
the parameters to each worker and one partial gradient back from each.

Run it alone with ``python -m benchmarks.distributed`` (``--smoke`` for tiny
sizes), or in the suite as workload ``DIST``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable
from typing import Any

import graphdiff

from .core import Context, Impl, Results, Row, compare, measure
from .mlp import W3_DIMS, _grads_named, data, hand_grad, init, op_graph

__all__ = ["main", "w3_distributed"]

N = 200_000
LR = 0.1
ONE_PROCESS = "graphdiff, one process"


def _step(gradient: Callable[[dict[str, Any]], Any], p: dict[str, Any]) -> Callable[[], Any]:
    """A training step that carries its parameters from call to call."""
    state, opt = {"p": p}, graphdiff.SGD(lr=LR)

    def run() -> tuple[Any, dict[str, Any]]:
        res = gradient(state["p"])
        state["p"] = opt.step(state["p"], res.grads)
        return res.loss, res.grads

    return run


def w3_distributed(ctx: Context) -> list[Row]:
    """Rows: seconds per step (ratio to one process) and bytes moved per step."""
    if importlib.util.find_spec("distributed") is None:
        ctx.notes.append('W3 distributed skipped: pip install -e ".[dask]"')
        return []
    from distributed import Client

    from graphdiff.distributed import DataParallel, local_cluster
    from graphdiff.train import batch_gradient

    n = ctx.size(N, 64)
    dims = W3_DIMS if not ctx.smoke else [2, 8, 8, 1]
    p0 = init(dims, seed=3)
    X, t = data(n, 2, seed=3)
    inputs = {"X": X, "t": t}
    net = graphdiff.compile(op_graph(dims), loss="E")
    ref: Results = _grads_named(*hand_grad(p0, X, t))
    budget = ctx.budget(20.0)

    def checked(name: str, gradient: Callable[[dict[str, Any]], Any]) -> Impl:
        impl = Impl(name, _step(gradient, dict(p0)), lambda r: _grads_named(*r))
        compare("W3 distributed", name, ref, impl.result(impl.run()))  # also the warm-up
        return impl

    here = checked(ONE_PROCESS, lambda p: batch_gradient(net, p, inputs))
    seconds = measure({here.name: here.run}, budget)
    moved: dict[str, float] = {}
    for workers in (1, 2):
        name = f"graphdiff, {workers} Dask worker{'s' * (workers > 1)}"
        with local_cluster(workers) as cluster, Client(cluster) as client:
            engine = DataParallel(client, net, inputs)
            try:
                impl = checked(name, lambda p, e=engine: e.gradient(p, None))
                engine.stats()  # forget the first step: it also sent the data
                seconds.update(measure({name: impl.run}, budget))
                moved[name] = engine.stats()["bytes_per_step"]
            finally:
                engine.close()
    base = seconds[ONE_PROCESS]
    rows = [Row("W3 distributed", k, v, "s", v / base, ONE_PROCESS,
                note=f"N = {n:,}, full batch, SGD step on the driver")
            for k, v in seconds.items()]
    rows += [Row("W3 distributed bytes", k, v, "B",
                 note="per step: parameters out + partial gradient back, per worker")
             for k, v in moved.items()]
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print the rows (and what they were measured on)."""
    from .run import machine, table

    parser = argparse.ArgumentParser(prog="python -m benchmarks.distributed",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one call each")
    args = parser.parse_args(argv)
    ctx = Context(smoke=args.smoke)
    print("\n".join(f"{k}: {v}" for k, v in machine(ctx).items() if k not in ("torch", "jax")))
    rows = w3_distributed(ctx)
    print(table(rows))
    for note in ctx.notes:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
