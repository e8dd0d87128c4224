"""What every workload shares: implementations, verification, timing and result rows.

A workload builds one :class:`Impl` per implementation (hand-written numpy is the
reference), :func:`compare_all` checks that each one computes the same loss and
gradient as the reference, and :func:`measure` times them all, interleaved round
by round so that a slow spell of the machine hits every implementation alike.

>>> import numpy as np
>>> impls = [Impl("hand numpy", lambda: 2.0, lambda out: {"loss": np.float64(out)}),
...          Impl("other", lambda: 2.0 + 1e-12, lambda out: {"loss": np.float64(out)})]
>>> outs = compare_all("demo", impls)
>>> sorted(measure({i.name: i.run for i in impls}, budget_s=0.01))
['hand numpy', 'other']
"""

from __future__ import annotations

import importlib
import statistics
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = [
    "TOLERANCE",
    "TOLERANCE_FLOAT32",
    "Context",
    "Impl",
    "Row",
    "VerificationError",
    "compare",
    "compare_all",
    "measure",
    "timed_rows",
]

TOLERANCE = 1e-8
"""Largest absolute difference allowed between any implementation and the reference."""
TOLERANCE_FLOAT32 = 1e-5
"""The same for a float32 implementation checked against the float64 reference (W8):
float32 rounds at ~6e-8 relative, and a W3 step sums 4,096 points and 256 units."""

REFERENCE = "hand numpy"
# Thread pools spin for a while after their last task before they sleep (OpenBLAS
# for ~2^28 cycles, about 0.1 s here; PyTorch's OpenMP likewise). On two cores,
# switching from one library to another while the first one's threads still spin
# was measured to slow PyTorch's W4 call from 1 ms to 20-80 ms. So every block of
# samples starts after a pause and an untimed call.
SETTLE_S = 0.15
Results = dict[str, Any]


class VerificationError(AssertionError):
    """An implementation disagrees with the hand-written numpy reference."""


@dataclass
class Impl:
    """One implementation of a workload.

    ``run`` is the call that is timed; ``result`` turns what one call returned into
    named float64 arrays (``"loss"``, ``"grad/<param>"``, ...) to compare with the
    reference. The first call is the one verified, and it doubles as warm-up (jit
    compilation, first-touch allocations).
    """

    name: str
    run: Callable[[], Any]
    result: Callable[[Any], Results]


@dataclass
class Row:
    """One printed line: a measured value and, where it has one, its ratio to a baseline.

    ``unit`` is ``"s"`` (a median time per call) or ``"B"`` (bytes). ``of`` names what
    ``ratio`` is relative to; ``target`` is the issue's upper bound for that ratio.
    """

    workload: str
    impl: str
    value: float | None = None
    unit: Literal["s", "B"] = "s"
    ratio: float | None = None
    of: str = ""
    target: float | None = None
    note: str = ""

    @property
    def on_target(self) -> bool | None:
        if self.target is None or self.ratio is None:
            return None
        return self.ratio <= self.target

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "on_target": self.on_target}


@dataclass
class Context:
    """Settings of one run of the suite, handed to every workload."""

    smoke: bool = False
    torch: Any = None
    jax: Any = None
    notes: list[str] = field(default_factory=list)

    def size(self, full: int, smoke: int) -> int:
        return smoke if self.smoke else full

    def budget(self, seconds: float) -> float:
        """Seconds of timing to spend on one workload (none in smoke mode)."""
        return 0.0 if self.smoke else seconds

    @classmethod
    def load(cls, smoke: bool) -> Context:
        """Import PyTorch and JAX if they are installed; note why a column is missing."""
        ctx = cls(smoke=smoke)
        # Third-party import-time warnings must not fail the smoke test (warnings are
        # errors under pytest); they say nothing about graphdiff.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ctx.torch = importlib.import_module("torch")
            except ImportError:
                ctx.notes.append("PyTorch column skipped: torch is not installed")
            try:
                jax = importlib.import_module("jax")
                jax.config.update("jax_enable_x64", True)
                ctx.jax = jax
            except ImportError:
                ctx.notes.append("JAX column skipped: jax is not installed")
        return ctx


def compare(
    workload: str, name: str, ref: Results, got: Results, tolerance: float = TOLERANCE
) -> None:
    """Raise :class:`VerificationError` unless ``got`` matches ``ref`` within ``tolerance``.

    >>> compare("W0", "x", {"loss": np.float64(1.0)}, {"loss": np.float64(1.0 + 1e-12)})
    >>> compare("W0", "x", {"loss": np.float64(1.0)}, {"loss": np.float64(1.1)})
    Traceback (most recent call last):
    ...
    benchmarks.core.VerificationError: W0: x differs from hand numpy in 'loss': max abs diff 0.1
    """
    missing = sorted(set(ref) - set(got))
    if missing:
        raise VerificationError(f"{workload}: {name} does not return {missing!r}")
    for key, want in ref.items():
        a = np.asarray(got[key], dtype=np.float64)
        b = np.asarray(want, dtype=np.float64)
        if a.shape != b.shape:
            raise VerificationError(
                f"{workload}: {name} gives {key!r} shape {a.shape}, hand numpy {b.shape}"
            )
        diff = float(np.max(np.abs(a - b), initial=0.0))
        if not diff < tolerance:  # also catches NaN
            raise VerificationError(
                f"{workload}: {name} differs from hand numpy in {key!r}: max abs diff {diff:.3g}"
            )


def compare_all(
    workload: str, impls: list[Impl], tolerance: float = TOLERANCE
) -> dict[str, Results]:
    """Call each implementation once and check it against the first (the reference)."""
    outs = {impl.name: impl.result(impl.run()) for impl in impls}
    ref = outs[impls[0].name]
    for impl in impls[1:]:
        compare(workload, impl.name, ref, outs[impl.name], tolerance)
    return outs


def _estimate(fn: Callable[[], Any], min_s: float = 1e-3) -> float:
    """Seconds per call, from as many calls as fit in ``min_s`` (at least one)."""
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_s or n >= 1000:
            return elapsed / n


def measure(
    fns: Mapping[str, Callable[[], Any]],
    budget_s: float,
    sample_s: float = 5e-3,
    rounds: int = 4,
) -> dict[str, float]:
    """Median seconds per call of each function.

    A sample is ``number`` back-to-back calls, enough to last ``sample_s``, so the
    timer's resolution never matters. The functions take turns in ``rounds``
    rounds (so a slow spell of the machine hits them alike); in each round every
    function gets one block of samples lasting its share of ``budget_s`` (at least
    one sample), after a pause of SETTLE_S and an untimed warm-up call. Slow
    cases thus get fewer samples, never under ``rounds``. A budget of 0 means one
    single call each (smoke mode).
    """
    if budget_s <= 0:
        out = {}
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            out[name] = time.perf_counter() - t0
        return out
    est = {name: _estimate(fn) for name, fn in fns.items()}
    number = {name: max(1, round(sample_s / t)) for name, t in est.items()}
    block_s = budget_s / (rounds * len(fns))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            time.sleep(SETTLE_S)
            if est[name] < SETTLE_S:  # a long call absorbs the switch by itself
                fn()
            k, start = number[name], time.perf_counter()
            while True:
                t0 = time.perf_counter()
                for _ in range(k):
                    fn()
                t1 = time.perf_counter()
                samples[name].append((t1 - t0) / k)
                if t1 - start >= block_s:
                    break
    return {name: statistics.median(s) for name, s in samples.items()}


def timed_rows(
    workload: str,
    impls: list[Impl],
    budget_s: float,
    target: float | None = None,
    target_impl: str = "graphdiff",
    notes: Mapping[str, str] | None = None,
    tolerance: float = TOLERANCE,
) -> list[Row]:
    """Verify every implementation against the first, time them, and give one row each.

    Ratios are to the first implementation (hand-written numpy); ``target`` is the
    bound for the row named ``target_impl``; ``tolerance`` the verification's.
    """
    compare_all(workload, impls, tolerance)
    medians = measure({i.name: i.run for i in impls}, budget_s)
    ref = medians[impls[0].name]
    notes = notes or {}
    return [
        Row(
            workload,
            i.name,
            medians[i.name],
            ratio=medians[i.name] / ref,
            of=impls[0].name,
            target=target if i.name == target_impl else None,
            note=notes.get(i.name, ""),
        )
        for i in impls
    ]
