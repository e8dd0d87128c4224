"""Check any op, built-in or third-party, against float64 central differences.

>>> import numpy as np
>>> from graphdiff.testing import check_op
>>> check_op("tanh").op
'tanh'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import OpContractError
from .numgrad import GradcheckReport, gradcheck
from .plan import unbroadcast, vjp_args
from .registry import Op, Sample, get_op

__all__ = ["GradcheckReport", "OpCheckReport", "check_op", "gradcheck", "unbroadcast"]

Array = np.ndarray


@dataclass(frozen=True)
class OpCheckReport:
    """What :func:`check_op` checked.

    Attributes
    ----------
    op : the op's name.
    samples : how many samples were checked.
    worst_error : the largest ``|analytic - numeric| / (atol + rtol |numeric|)``
        over every gradient element checked; at most 1 when the check passes.
    """

    op: str
    samples: int
    worst_error: float


def check_op(
    op: Op | str,
    *,
    samples: Sequence[Sample] | None = None,
    seed: int = 0,
    eps: float = 1e-6,
    atol: float = 1e-6,
    rtol: float = 1e-5,
) -> OpCheckReport:
    """Check an op's forward and vjp on samples, against central differences.

    For each sample ``(operands, attrs)``:

    1. ``forward`` runs on read-only operands, so writing into them fails; its
       output must be a finite ndarray, of the operand's shape for an
       elementwise op and of shape (N,) for a loss.
    2. ``vjp`` runs with a random cotangent ``g`` (read-only, as are ``out``
       and the operands); it must return one entry per operand, each ``None``
       or finite and, summed back over broadcast axes, of its operand's shape.
       ``derivative`` and each of ``vjps``, where given, must agree with it.
    3. Every non-``None`` gradient is compared, element by element, with the
       float64 central difference of ``sum(g * forward(...))``; it passes
       where ``|analytic - numeric| <= atol + rtol |numeric|``.

    Parameters
    ----------
    op : an :class:`~graphdiff.Op` or the name of a registered one.
    samples : ``[(operands, attrs), ...]``; default ``op.samples(rng)``.
        Keep them small (every element is perturbed) and away from kinks.
    seed : seeds the samples' generator and the cotangents.
    eps : the central-difference step.
    atol, rtol : the tolerance, as above.

    Returns
    -------
    OpCheckReport

    Raises
    ------
    OpContractError
        At the first failure, naming the op, the sample, the operand and the
        property; for a wrong value, the worst element (position, analytic,
        numeric).

    Examples
    --------
    >>> import numpy as np
    >>> from graphdiff import Op
    >>> cube = Op("cube", forward=lambda x: x**3,
    ...           vjp=lambda g, out, x: (3 * g * x**2,), elementwise=True)
    >>> report = check_op(cube, samples=[((np.array([0.5, -1.0, 2.0]),), {})])
    >>> report.samples, report.worst_error < 1
    (1, True)
    >>> wrong = Op("cube_wrong", forward=lambda x: x**3,
    ...            vjp=lambda g, out, x: (-3 * g * x**2,), elementwise=True)
    >>> check_op(wrong, samples=[((np.array([0.5, -1.0, 2.0]),), {})])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    graphdiff.errors.OpContractError: op 'cube_wrong', sample 0, operand 0: gradient does not ...
    """
    the_op = get_op(op) if isinstance(op, str) else op
    rng = np.random.default_rng(seed)
    if samples is None:
        if the_op.samples is None:
            raise OpContractError(f"op {the_op.name!r} has no samples; pass samples=")
        samples = the_op.samples(rng)
    worst = 0.0
    for k, sample in enumerate(samples):
        worst = max(worst, _check_sample(the_op, k, sample, rng, eps, atol, rtol))
    return OpCheckReport(op=the_op.name, samples=len(samples), worst_error=worst)


def _read_only(x: Any) -> Array:
    a = np.array(x, dtype=np.float64, copy=True)
    a.flags.writeable = False
    return a


def _check_sample(
    op: Op,
    k: int,
    sample: Sample,
    rng: np.random.Generator,
    eps: float,
    atol: float,
    rtol: float,
) -> float:
    def fail(what: str, operand: int | None = None) -> OpContractError:
        where = f"sample {k}" if operand is None else f"sample {k}, operand {operand}"
        return OpContractError(f"op {op.name!r}, {where}: {what}")

    operands, raw_attrs = sample
    xs = tuple(_read_only(x) for x in operands)
    if op.arity is not None and len(xs) != op.arity:
        raise fail(f"the sample has {len(xs)} operands, the op takes {op.arity}")
    try:
        attrs = op.attrs(**raw_attrs).model_dump()
    except Exception as e:
        raise fail(f"the sample's attributes are rejected: {e}") from e

    # (a) forward
    out = _call(op.forward, xs, attrs, "forward", fail)
    if not isinstance(out, np.ndarray):
        raise fail(f"forward returns {type(out).__name__}, not an ndarray")
    if not _finite(out):
        raise fail("forward returns non-finite values (NaN or inf)")
    if op.elementwise and out.shape != xs[0].shape:
        raise fail(f"wrong shape: elementwise forward gives {out.shape} for input {xs[0].shape}")
    if op.loss and out.shape != xs[0].shape[:1]:
        raise fail(
            f"wrong shape: a loss gives one value per data point, {xs[0].shape[:1]}, "
            f"got {out.shape}"
        )

    # (b) vjp
    g = _read_only(rng.standard_normal(out.shape))
    # as the engine calls it: what the op does not save (Op.saves) arrives as zeros,
    # so a wrong declaration shows up below as a wrong gradient
    grads = _call(op.vjp, (g, *vjp_args(op, _read_only(out), xs)), attrs, "vjp", fail)
    if not isinstance(grads, tuple | list):
        raise fail(f"vjp returns {type(grads).__name__}, not a tuple of gradients")
    if len(grads) != len(xs):
        raise fail(f"vjp returns {len(grads)} gradients for {len(xs)} operands")
    analytic: list[Array | None] = []
    for i, (gi, x) in enumerate(zip(grads, xs, strict=True)):
        if gi is None:
            analytic.append(None)
            continue
        arr = np.asarray(gi)
        if not _finite(arr):
            raise fail("vjp returns non-finite values (NaN or inf)", i)
        summed = unbroadcast(arr, x.shape)
        if summed.shape != x.shape:
            raise fail(
                f"wrong gradient shape: {arr.shape} does not sum back to the operand's "
                f"shape {x.shape}",
                i,
            )
        analytic.append(np.asarray(summed, dtype=np.float64))

    if op.vjps is not None:
        # the engine may call vjps[i] alone in place of the vjp: they must agree
        args = (g, *vjp_args(op, _read_only(out), xs))
        for i, (part, whole) in enumerate(zip(op.vjps, grads, strict=True)):
            gi = _call(part, args, attrs, f"vjps[{i}]", fail)
            same = (gi is None and whole is None) or (
                gi is not None and whole is not None
                and np.shape(gi) == np.shape(whole)
                and np.allclose(gi, whole, rtol=1e-12, atol=1e-15)
            )
            if not same:
                raise fail(f"vjps[{i}] differs from entry {i} of what vjp returns", i)

    if op.derivative is not None and analytic[0] is not None:
        # the engine may use g * derivative(x, out) in place of the vjp: they must agree
        out_arg, x_arg = vjp_args(op, _read_only(out), xs)
        local = _call(op.derivative, (x_arg, out_arg), attrs, "derivative", fail)
        if not np.allclose(g * local, analytic[0], rtol=1e-12, atol=1e-15):
            raise fail("derivative(x, out) times g differs from what vjp returns", 0)

    # (c) central differences
    worst = 0.0
    for i, a in enumerate(analytic):
        if a is None:
            continue
        numeric = _numeric_grad(op, xs, attrs, i, g, eps)
        scaled = np.abs(a - numeric) / (atol + rtol * np.abs(numeric))
        j = int(np.argmax(scaled)) if scaled.size else 0
        w = float(scaled.flat[j]) if scaled.size else 0.0
        if not w <= 1.0:
            pos = np.unravel_index(j, a.shape)
            raise fail(
                f"gradient does not match central differences: worst at {tuple(map(int, pos))}, "
                f"analytic {a.flat[j]!r}, numeric {numeric.flat[j]!r} "
                f"(|difference| is {w:.3g} times the tolerance)",
                i,
            )
        worst = max(worst, w)
    return worst


def _call(
    fn: Callable[..., Any],
    args: tuple[Array, ...],
    attrs: dict[str, Any],
    name: str,
    fail: Callable[[str], OpContractError],
) -> Any:
    try:
        return fn(*args, **attrs)
    except ValueError as e:
        if "read-only" in str(e):
            what = "its input" if name == "forward" else "its input, g or out"
            raise fail(f"{name} mutates {what} ({e})") from e
        raise fail(f"{name} raised {type(e).__name__}: {e}") from e
    except Exception as e:
        raise fail(f"{name} raised {type(e).__name__}: {e}") from e


def _finite(a: Array) -> bool:
    try:
        return bool(np.all(np.isfinite(a)))
    except TypeError:
        return False


def _numeric_grad(
    op: Op, xs: tuple[Array, ...], attrs: dict[str, Any], i: int, g: Array, eps: float
) -> Array:
    """d sum(g * forward) / d xs[i], one element at a time, by central differences."""
    x = xs[i]
    grad = np.zeros(x.shape)
    for j in range(x.size):
        plus, minus = x.copy(), x.copy()
        plus.flat[j] += eps
        minus.flat[j] -= eps
        f_plus = np.asarray(op.forward(*xs[:i], plus, *xs[i + 1 :], **attrs), dtype=np.float64)
        f_minus = np.asarray(op.forward(*xs[:i], minus, *xs[i + 1 :], **attrs), dtype=np.float64)
        step = plus.flat[j] - minus.flat[j]  # 2 eps, up to rounding of x +- eps
        grad.flat[j] = np.sum(g * (f_plus - f_minus)) / step
    return grad
