"""The lecture's classic linear classifiers: the perceptron and the nearest-mean classifier.

Both learn a linear decision function ``z = w·x + b`` and predict
``y = sign(z)`` (with sign(0) = 0, a point on the boundary belongs to no
class). They are written exactly as the lecture states them, so they serve
as references for what gradient descent on a graph computes: the
perceptron's updates are gradient descent on the hinge loss
max(0, -z t), one data point at a time.

>>> import graphdiff
>>> from graphdiff.baselines import Perceptron, NearestMean
>>> d = graphdiff.blobs(40, seed=0)
>>> p = Perceptron().fit(d["x"], d["t"])
>>> p.converged, bool(np.all(p.predict(d["x"]) == d["t"]))
(True, True)
>>> m = NearestMean().fit(d["x"], d["t"])
>>> bool(np.allclose(m.w, 2 * (m.mu1 - m.mu2)))
True
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from .data import DataError

__all__ = ["NearestMean", "Perceptron", "Update"]

Array = NDArray[np.float64]


def _check_xy(x: Any, t: Any) -> tuple[Array, Array]:
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    if x.ndim != 2:
        raise DataError(f"x must have shape (N, d), got shape {x.shape}")
    if t.shape != (x.shape[0],):
        raise DataError(f"t must have shape ({x.shape[0]},) to match x, got shape {t.shape}")
    if not np.all(np.isfinite(x)):
        raise DataError("x has NaN or infinite entries")
    bad = t[(t != 1) & (t != -1)]
    if len(bad):
        raise DataError(f"t must hold labels -1 and +1, found {float(bad[0])!r}")
    return x, t


def _sign_scores(w: Array, b: float, x: Any) -> Array:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(w):
        raise DataError(f"x must have shape (N, {len(w)}), got shape {x.shape}")
    scores: Array = np.sign(x @ w + b)
    return scores


class Update(NamedTuple):
    """One perceptron update: the state ``(w, b)`` right after it.

    ``epoch`` counts passes over the data from 1; ``k`` is the data point's
    number, 1..N, as in the lecture.
    """

    epoch: int
    k: int
    w: Array
    b: float


class Perceptron:
    """Rosenblatt's perceptron algorithm, exactly as the lecture states it.

    Visit the data points in order, k = 1..N, again and again. With
    ``z = w·x + b`` and ``y = sign(z)`` (sign(0) = 0): when y ≠ t, update
    ``w ← w + η·x·t`` and ``b ← b + η·t``. Stop after an epoch without a
    mistake (``converged``) or after ``max_epochs`` epochs.

    Parameters
    ----------
    eta : the learning rate η.
    max_epochs : the most passes over the data.

    Attributes (after :meth:`fit`)
    -------------------------------
    w, b : the decision function's weights (N-vector) and bias (float).
    converged : whether the last epoch made no mistake.
    epochs : the number of epochs run (the last, mistake-free one included).
    updates : every update, in order, as :class:`Update` (epoch, k, w, b).

    >>> x = np.array([[1.0, 1.0], [-1.0, -2.0]]); t = np.array([1.0, -1.0])
    >>> p = Perceptron(eta=0.5).fit(x, t)
    >>> p.w.tolist(), p.b, p.epochs, [(u.epoch, u.k) for u in p.updates]
    ([0.5, 0.5], 0.5, 2, [(1, 1)])
    """

    def __init__(self, eta: float = 1.0, max_epochs: int = 100) -> None:
        if not (np.isfinite(eta) and eta > 0):
            raise DataError(f"eta must be a positive number, got {eta!r}")
        if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1:
            raise DataError(f"max_epochs must be an int >= 1, got {max_epochs!r}")
        self.eta = float(eta)
        self.max_epochs = max_epochs
        self.w: Array = np.zeros(0)
        self.b = 0.0
        self.converged = False
        self.epochs = 0
        self.updates: list[Update] = []

    def fit(self, x: Any, t: Any, *, w0: Any = None, b0: float = 0.0) -> Perceptron:
        """Run the algorithm on ``x`` (N, d) and labels ``t`` in {-1, +1}.

        Starts from ``w0`` (default zeros) and ``b0``. Returns ``self``.
        """
        x, t = _check_xy(x, t)
        w = np.zeros(x.shape[1]) if w0 is None else np.array(w0, dtype=np.float64)
        if w.shape != (x.shape[1],):
            raise DataError(f"w0 must have shape ({x.shape[1]},), got shape {w.shape}")
        b = float(b0)
        self.updates = []
        self.converged = False
        for epoch in range(1, self.max_epochs + 1):
            mistakes = 0
            for k in range(len(x)):
                y = np.sign(w @ x[k] + b)
                if y != t[k]:
                    w = w + self.eta * x[k] * t[k]
                    b = b + self.eta * float(t[k])
                    mistakes += 1
                    self.updates.append(Update(epoch, k + 1, w, b))
            if mistakes == 0:
                self.converged = True
                break
        self.w, self.b, self.epochs = w, b, epoch
        return self

    def predict(self, x: Any) -> Array:
        """``sign(w·x + b)`` for each row of ``x`` (0 on the boundary)."""
        return _sign_scores(self.w, self.b, x)


class NearestMean:
    """The nearest-mean classifier as a linear classifier.

    With μ1 the mean of class t = +1 and μ2 that of class t = -1, a point
    belongs to the class whose mean is nearer. Expanding the squared
    distances gives ``y = sign(w·x + b)`` with ``w = 2(μ1 - μ2)`` and
    ``b = ‖μ2‖² - ‖μ1‖²``. It describes the data (its means) rather than
    minimizing the classification error as the perceptron does.

    Attributes (after :meth:`fit`): ``mu1``, ``mu2``, ``w``, ``b``.

    >>> x = np.array([[0.0, 2.0], [0.0, 4.0], [0.0, -2.0]]); t = np.array([1.0, 1.0, -1.0])
    >>> m = NearestMean().fit(x, t)
    >>> m.w.tolist(), m.b, m.predict(np.array([[0.0, 1.0], [0.0, 0.0]])).tolist()
    ([0.0, 10.0], -5.0, [1.0, -1.0])
    """

    def __init__(self) -> None:
        self.mu1: Array = np.zeros(0)
        self.mu2: Array = np.zeros(0)
        self.w: Array = np.zeros(0)
        self.b = 0.0

    def fit(self, x: Any, t: Any) -> NearestMean:
        """Compute both class means, then ``w`` and ``b``. Returns ``self``."""
        x, t = _check_xy(x, t)
        for label in (1.0, -1.0):
            if not np.any(t == label):
                raise DataError(f"t has no data point of class {label:+.0f}; need both classes")
        self.mu1 = x[t == 1].mean(axis=0)
        self.mu2 = x[t == -1].mean(axis=0)
        self.w = 2 * (self.mu1 - self.mu2)
        self.b = float(self.mu2 @ self.mu2 - self.mu1 @ self.mu1)
        return self

    def predict(self, x: Any) -> Array:
        """``sign(w·x + b)``: +1 where μ1 is nearer, -1 where μ2 is (0 if equally near)."""
        return _sign_scores(self.w, self.b, x)
