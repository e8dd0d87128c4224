"""Run the benchmark suite: ``python -m benchmarks`` or ``python benchmarks/run.py``.

Every workload first checks that each implementation computes the same loss and
gradient as hand-written numpy (float64, max abs diff < 1e-8), then times them
interleaved and prints medians and ratios to hand numpy measured in the same run.
``--smoke`` runs every check on tiny sizes with single calls (its times mean
nothing); ``--only W1,W3`` picks workloads; results also go to JSON.

>>> main(["--smoke", "--only", "W1", "--json", "", "--quiet"])
0
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

import graphdiff
from benchmarks.core import Context, Row, VerificationError
from benchmarks.distributed import w3_distributed
from benchmarks.files import w6
from benchmarks.lecture import w1, w2
from benchmarks.mlp import w3, w3_memory, w4, w8
from benchmarks.scaling import compile_rows, w5
from benchmarks.training import w7, w7_fit

__all__ = ["WORKLOADS", "machine", "main", "table"]

WORKLOADS: dict[str, Callable[[Context], list[Row]]] = {
    "W1": w1,
    "W2": w2,
    "W3": w3,
    "MEM": w3_memory,
    "W4": w4,
    "W5": w5,
    "W6": w6,
    "COMPILE": compile_rows,
    "DIST": w3_distributed,
    "W7": w7,
    "W7FIT": w7_fit,
    "W8": w8,
}
DEFAULT_JSON = Path(__file__).resolve().parent / "results.json"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _blas() -> str:
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        name = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # the layout of show_config is numpy's, not ours
        return "unknown"
    threads = [f"{k}={os.environ[k]}" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                 "MKL_NUM_THREADS") if k in os.environ]
    return f"{name} ({', '.join(threads) or 'default threads'})"


def _commit() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "graphdiff", "ops"],
                               cwd=root, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (graphdiff/ops modified)" if dirty.strip() else "")


def machine(ctx: Context) -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "load average (1 min) at start": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": _blas(),
        "graphdiff": f"{graphdiff.__version__} at {_commit()}",
    }
    info["torch"] = ctx.torch.__version__ if ctx.torch is not None else None
    if ctx.torch is not None:
        info["torch"] += f" ({ctx.torch.get_num_threads()} threads)"
    info["jax"] = ctx.jax.__version__ if ctx.jax is not None else None
    return info


def _time(s: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def _bytes(b: float) -> str:
    return f"{b / 2**20:.2f} MiB" if b >= 2**20 else f"{b:,.0f} B"


def table(rows: list[Row]) -> str:
    """The rows as an aligned plain-text table."""
    head = ["workload", "implementation", "median", "ratio", "of", "target", "note"]
    lines = []
    for r in rows:
        value = "" if r.value is None else _time(r.value) if r.unit == "s" else _bytes(r.value)
        target = ""
        if r.target is not None:
            target = f"≤ {r.target:g} " + ("ok" if r.on_target else "MISSED")
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}"
        lines.append([r.workload, r.impl, value, ratio, r.of, target, r.note])
    widths = [max(len(x) for x in col) for col in zip(head, *lines, strict=True)]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([fmt(head), fmt(["-" * w for w in widths]), *map(fmt, lines)])


def main(argv: list[str] | None = None) -> int:
    """Run the suite; 0 when every implementation agreed with hand numpy, else 1."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, one call each: checks correctness, times mean nothing")
    parser.add_argument("--only", default="",
                        help=f"comma-separated workloads out of {','.join(WORKLOADS)}")
    parser.add_argument("--json", default=str(DEFAULT_JSON), metavar="PATH",
                        help="where to write the results ('' for nowhere; default %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="print nothing")
    args = parser.parse_args(argv)
    chosen = [w.strip().upper() for w in args.only.split(",") if w.strip()] or list(WORKLOADS)
    unknown = [w for w in chosen if w not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {unknown}; choose from {', '.join(WORKLOADS)}")

    def say(text: str, err: bool = False) -> None:
        if not args.quiet:
            print(text, file=sys.stderr if err else sys.stdout, flush=True)

    ctx = Context.load(args.smoke)
    info = machine(ctx)
    say("\n".join(f"{k}: {v}" for k, v in info.items()))
    busy = info["load average (1 min) at start"]
    if busy > 1.0 and not args.smoke:
        say(f"warning: the machine is busy (load average {busy} on {info['cores']} cores); "
            "other processes inflate and scatter the timings, numpy's threaded BLAS most")
    if args.smoke:
        say("smoke mode: tiny sizes and single calls; the times below mean nothing")
    rows: list[Row] = []
    failures: dict[str, str] = {}
    started = time.perf_counter()
    for name in chosen:
        say(f"running {name} ...", err=True)
        t0 = time.perf_counter()
        try:
            rows += WORKLOADS[name](ctx)
        except VerificationError as e:
            failures[name] = str(e)
            say(f"FAILED {name}: {e}", err=True)
        except Exception as e:  # one broken workload must not hide the others' results
            failures[name] = f"{type(e).__name__}: {e}"
            say(f"FAILED {name}:\n{traceback.format_exc()}", err=True)
        say(f"  {name} took {time.perf_counter() - t0:.1f} s", err=True)
    total = time.perf_counter() - started
    if args.smoke:  # single calls on tiny sizes say nothing about the targets
        for r in rows:
            r.target = None
    say("")
    say(table(rows))
    for note in ctx.notes:
        say(f"note: {note}")
    for name, why in failures.items():
        say(f"FAILED {name}: {why}")
    info["load average (1 min) at end"] = round(os.getloadavg()[0], 2)
    say(f"suite ran in {total:.0f} s; load average at end {info['load average (1 min) at end']}")
    if args.json:
        doc = {"machine": info, "smoke": args.smoke, "seconds": total,
               "rows": [r.as_json() for r in rows], "notes": ctx.notes, "failures": failures}
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
        say(f"results written to {args.json}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
