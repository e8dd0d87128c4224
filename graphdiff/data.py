"""Data sets for the lecture's pictures, a user's CSV or ``.npz`` files, and feeding them.

A data set is a dict with ``"x"``, the features, shape (N, d), and ``"t"``, the
labels, shape (N,), both float64. The built-in generators make seeded 2-D
sets with balanced classes and labels in {-1, +1} (``spirals(classes=K)``
with K > 2 labels its arms 0..K-1, for ``softmax_cross_entropy``):

=============  ======================================================================
``blobs``      two Gaussian blobs, separable by the line x1 + x2 = 0 with a margin
``xor``        four clusters; the label is the XOR of the coordinates' signs
``moons``      two interleaving half circles
``spirals``    two (or K) interleaved spiral arms
``circles``    a small circle (t = +1) inside a big one (t = -1)
=============  ======================================================================

:func:`feed` maps a data set onto a compiled network's inputs, so networks in
neuron notation (inputs ``x1``, ``x2``, target ``t``) and in op notation
(input ``x`` of shape (N, d), target ``t``) eat the same data sets.

>>> import graphdiff
>>> data = graphdiff.moons(100, seed=1)
>>> data["x"].shape, data["t"].shape, float(data["t"].sum())
((100, 2), (100,), 0.0)
"""

from __future__ import annotations

import csv
import difflib
import re
import sys
import zipfile
from collections.abc import Callable, Hashable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .errors import GraphdiffError, InputError

__all__ = [
    "BUILTIN_DATA",
    "DataError",
    "blobs",
    "circles",
    "columns",
    "feed",
    "load_data",
    "load_table",
    "moons",
    "spirals",
    "xor",
]

Array = NDArray[np.float64]
Data = dict[str, Array]


class DataError(GraphdiffError, ValueError):
    """A data set that cannot be used: a bad file, a bad name, an unmatched input."""


# --- generators ----------------------------------------------------------------------


def _counts(n: int, k: int) -> list[int]:
    """n points split over k classes as evenly as possible (first classes get the rest)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < k:
        raise DataError(f"n must be an int >= {k} (one point per class), got {n!r}")
    return [n // k + (i < n % k) for i in range(k)]


def _check_noise(noise: float) -> None:
    if not (isinstance(noise, (int, float)) and np.isfinite(noise) and noise >= 0):
        raise DataError(f"noise must be a finite number >= 0, got {noise!r}")


def _shuffled(xs: list[Array], labels: list[float], rng: np.random.Generator) -> Data:
    # Shuffled so that visiting the points in order (the perceptron's way) mixes the classes.
    x = np.concatenate(xs)
    t = np.concatenate([np.full(len(a), lab) for a, lab in zip(xs, labels, strict=True)])
    order = rng.permutation(len(x))
    return {"x": x[order], "t": t[order]}


def _gaussian_where(
    rng: np.random.Generator, m: int, center: Array, std: float, keep: Callable[[Array], Any]
) -> Array:
    """m points from N(center, std²·I), redrawing those for which ``keep`` is False."""
    out = np.empty((0, 2))
    while len(out) < m:
        draw = center + std * rng.standard_normal((m, 2))
        out = np.concatenate([out, draw[keep(draw)]])
    return out[:m]


def _beyond_margin(p: Array, side: float) -> Any:
    return side * p.sum(axis=1) / np.sqrt(2) >= 0.25


def _in_quadrant(p: Array, signs: Array) -> Any:
    return np.all(np.sign(p) == signs, axis=1)


def blobs(n: int = 200, *, noise: float = 0.5, seed: int = 0) -> Data:
    """Two Gaussian blobs, linearly separable with a margin.

    Class +1 is centred at (1, 1), class -1 at (-1, -1), each with standard
    deviation ``noise`` per axis; points closer than 0.25 to the line
    x1 + x2 = 0, or on its wrong side, are redrawn, so any ``noise`` gives a
    separable set (the perceptron's convergence condition).

    >>> d = blobs(50, seed=3)
    >>> bool(np.all(d["t"] * d["x"].sum(axis=1) / np.sqrt(2) >= 0.25))
    True
    """
    _check_noise(noise)
    rng = np.random.default_rng(seed)
    xs = []
    for m, lab in zip(_counts(n, 2), (1.0, -1.0), strict=True):
        keep = partial(_beyond_margin, side=lab)
        xs.append(_gaussian_where(rng, m, np.array([lab, lab]), noise, keep))
    return _shuffled(xs, [1.0, -1.0], rng)


def xor(n: int = 200, *, noise: float = 0.3, seed: int = 0) -> Data:
    """Four clusters at (±1, ±1): t = +1 where exactly one coordinate is positive.

    Each cluster is Gaussian with standard deviation ``noise`` and stays in
    its quadrant (points that would cross an axis are redrawn), so
    t = -sign(x1)·sign(x2) holds for every point. Not linearly separable.

    >>> d = xor(40)
    >>> bool(np.all(d["t"] == -np.sign(d["x"][:, 0]) * np.sign(d["x"][:, 1])))
    True
    """
    _check_noise(noise)
    rng = np.random.default_rng(seed)
    # Labels alternate, so the rest of n % 4 (given to the first clusters) stays balanced.
    centers = [(1.0, -1.0), (1.0, 1.0), (-1.0, 1.0), (-1.0, -1.0)]
    xs = []
    for m, c in zip(_counts(n, 4), centers, strict=True):
        center = np.array(c)
        keep = partial(_in_quadrant, signs=center)
        xs.append(_gaussian_where(rng, m, center, noise, keep))
    return _shuffled(xs, [-a * b for a, b in centers], rng)


def moons(n: int = 200, *, noise: float = 0.1, seed: int = 0) -> Data:
    """Two interleaving half circles ("two moons").

    Class +1: (cos s, sin s) for s evenly spaced in [0, π]; class -1:
    (1 - cos s, 0.5 - sin s); plus Gaussian noise of standard deviation
    ``noise``. Not linearly separable.

    >>> d = moons(10, noise=0.0)
    >>> r = np.hypot(*d["x"][d["t"] == 1].T)
    >>> bool(np.allclose(r, 1.0))
    True
    """
    _check_noise(noise)
    rng = np.random.default_rng(seed)
    m1, m2 = _counts(n, 2)
    s1, s2 = np.linspace(0, np.pi, m1), np.linspace(0, np.pi, m2)
    upper = np.column_stack([np.cos(s1), np.sin(s1)])
    lower = np.column_stack([1 - np.cos(s2), 0.5 - np.sin(s2)])
    xs = [a + noise * rng.standard_normal(a.shape) for a in (upper, lower)]
    return _shuffled(xs, [1.0, -1.0], rng)


def spirals(n: int = 200, *, noise: float = 0.05, seed: int = 0, classes: int = 2) -> Data:
    """Interleaved spiral arms, one per class.

    Arm k (k = 0..K-1) is r·(cos θ, sin θ) with r from 0.1 to 1 and
    θ = 2πk/K + 3πr (one and a half turns), plus Gaussian noise of standard
    deviation ``noise``. With ``classes=2`` the arms are labelled +1 and -1;
    with more, 0..K-1 (class indices for ``softmax_cross_entropy``).

    >>> d = spirals(90, classes=3)
    >>> sorted(set(d["t"].tolist())), int((d["t"] == 2).sum())
    ([0.0, 1.0, 2.0], 30)
    """
    _check_noise(noise)
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
        raise DataError(f"classes must be an int >= 2, got {classes!r}")
    rng = np.random.default_rng(seed)
    xs = []
    for k, m in enumerate(_counts(n, classes)):
        r = np.linspace(0.1, 1.0, m)
        theta = 2 * np.pi * k / classes + 3 * np.pi * r
        arm = r[:, np.newaxis] * np.column_stack([np.cos(theta), np.sin(theta)])
        xs.append(arm + noise * rng.standard_normal(arm.shape))
    labels = [1.0, -1.0] if classes == 2 else [float(k) for k in range(classes)]
    return _shuffled(xs, labels, rng)


def circles(n: int = 200, *, noise: float = 0.05, seed: int = 0) -> Data:
    """Two concentric circles: radius 0.5 (t = +1) inside radius 1 (t = -1).

    Angles are uniform; Gaussian noise of standard deviation ``noise`` is
    added to both coordinates. Not linearly separable.

    >>> d = circles(20, noise=0.0)
    >>> bool(np.allclose(np.hypot(*d["x"].T), np.where(d["t"] > 0, 0.5, 1.0)))
    True
    """
    _check_noise(noise)
    rng = np.random.default_rng(seed)
    xs = []
    for m, radius in zip(_counts(n, 2), (0.5, 1.0), strict=True):
        angle = rng.uniform(0, 2 * np.pi, m)
        ring = radius * np.column_stack([np.cos(angle), np.sin(angle)])
        xs.append(ring + noise * rng.standard_normal(ring.shape))
    return _shuffled(xs, [1.0, -1.0], rng)


BUILTIN_DATA: dict[str, Callable[..., Data]] = {
    "blobs": blobs,
    "xor": xor,
    "moons": moons,
    "spirals": spirals,
    "circles": circles,
}


# --- loading -------------------------------------------------------------------------


def load_data(
    spec: str | Path, *, n: int = 200, seed: int = 0, label: str | int | None = None
) -> Data:
    """A built-in data set by name, or a user's ``.csv`` or ``.npz`` file.

    Parameters
    ----------
    spec : a name from :data:`BUILTIN_DATA` (made with ``n`` and ``seed``) or a path.
    n, seed : size and seed of a built-in data set.
    label : which column holds the labels: for CSV a header name or a column
        index (an int or its text, such as ``"0"``; negative counts from the
        end; default the last column), the other columns being the features;
        for ``.npz`` the key of the labels.

    A CSV file is numbers separated by commas, with an optional header row
    (recognised by a cell that is not a number). An ``.npz`` file holds the
    features under ``"x"`` (or ``"X"``), shape (N, d), and the labels under
    ``"t"`` (or ``"y"``), shape (N,); it is read without unpickling anything.
    Labels are used as given: {-1, +1} for hinge and logistic losses, 0..K-1
    for ``softmax_cross_entropy``.

    Raises
    ------
    DataError
        naming the file and the line and column, or the key, at fault; or the
        unknown name with the closest built-in names.

    >>> load_data("moons", n=10)["x"].shape
    (10, 2)
    >>> try:
    ...     load_data("moon")
    ... except DataError as e:
    ...     print(str(e)[:45])
    unknown data set 'moon'; did you mean 'moons'
    """
    text = str(spec)
    if text in BUILTIN_DATA:
        if label is not None:
            raise DataError(f"label={label!r} only applies to files; {text!r} is built in")
        return BUILTIN_DATA[text](n, seed=seed)
    path = Path(text)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".npz"):
        if path.exists():
            raise DataError(f"{text}: unknown file type {path.suffix!r}; use .csv or .npz")
        close = difflib.get_close_matches(text, BUILTIN_DATA, n=3)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise DataError(
            f"unknown data set {text!r}{hint} Built-in: {', '.join(BUILTIN_DATA)}; "
            "or give a path to a .csv or .npz file"
        )
    if not path.is_file():
        raise DataError(f"{text}: no such file")
    return _load_csv(path, label) if suffix == ".csv" else _load_npz(path, label)


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _csv_table(path: Path, text: bool) -> tuple[list[str], bool, list[Any]]:
    """A CSV file's column names, whether it has a header row, and its columns: float64
    arrays, or (with ``text``) arrays of str for columns holding a cell that is not a
    number. Empty and non-finite cells are errors naming the line and column."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = [(i, row) for i, row in enumerate(csv.reader(f), start=1) if row]
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: not a readable CSV text file ({e})") from None
    if not rows:
        raise DataError(f"{path}: the file is empty")
    first = [c.strip() for c in rows[0][1]]
    header = any(_number(c) is None for c in first)
    names = first if header else [str(i) for i in range(len(first))]
    body = rows[1:] if header else rows
    if not body:
        raise DataError(f"{path}: no data rows after the header")
    width = len(names)
    if width < 2:
        raise DataError(f"{path}: needs at least two columns (features and a label), has {width}")
    values = np.empty((len(body), width))
    cells: list[list[str]] = []
    words: set[int] = set()  # columns holding text
    for r, (line, row) in enumerate(body):
        if len(row) != width:
            raise DataError(
                f"{path}: line {line} has {len(row)} cells, expected {width} like line {rows[0][0]}"
            )
        stripped = [cell.strip() for cell in row]
        if text:
            cells.append(stripped)
        for c, cell in enumerate(stripped):
            v = _number(cell)
            if v is None and text and cell:
                words.add(c)
                continue
            if v is None or not np.isfinite(v):
                what = (
                    "is empty"
                    if not cell
                    else ("is not a number" if v is None else "is not finite")
                )
                raise DataError(f"{path}: line {line}, column {names[c]!r}: {row[c]!r} {what}")
            values[r, c] = v
    columns: list[Any] = [
        np.array([row[c] for row in cells]) if c in words else values[:, c] for c in range(width)
    ]
    return names, header, columns


def _load_csv(path: Path, label: str | int | None) -> Data:
    names, header, columns = _csv_table(path, text=False)
    col = _label_column(path, names, header, label)
    features = [c for c in range(len(names)) if c != col]
    return {"x": np.column_stack([columns[c] for c in features]), "t": columns[col]}


def load_table(
    spec: str | Path, *, n: int = 200, seed: int = 0, label: str | None = None
) -> dict[str, Any]:
    """A data set as named columns, for ``graphdiff train``: a CSV file's columns by
    header name (numbers as float64, columns holding text as str arrays, e.g. class
    names); for built-in data sets and ``.npz`` files, ``x1``, ``x2``, ... (the
    columns of ``x``) and ``t`` (for ``.npz``, the labels' key ``label`` if given).

    >>> sorted(load_table("blobs", n=4))
    ['t', 'x1', 'x2']
    """
    text = str(spec)
    if text not in BUILTIN_DATA and Path(text).suffix.lower() == ".csv":
        path = Path(text)
        if not path.is_file():
            raise DataError(f"{text}: no such file")
        names, _, columns = _csv_table(path, text=True)
        if len(set(names)) != len(names):
            twice = sorted({c for c in names if names.count(c) > 1})
            raise DataError(f"{text}: the header names column(s) {twice!r} more than once")
        return dict(zip(names, columns, strict=True))
    npz = text not in BUILTIN_DATA and Path(text).suffix.lower() == ".npz"
    data = load_data(spec, n=n, seed=seed, label=label if npz else None)
    x = data["x"]
    table: dict[str, Any] = {f"x{k + 1}": x[:, k] for k in range(x.shape[1])}
    table[label if npz and label else "t"] = data["t"]
    return table


def _label_column(path: Path, names: list[str], header: bool, label: str | int | None) -> int:
    width = len(names)
    if label is None:
        return width - 1
    if isinstance(label, int) and not isinstance(label, bool):
        if not -width <= label < width:
            raise DataError(f"{path}: label column index {label} is out of range ({width} columns)")
        return label % width
    if header and label in names:
        return names.index(label)
    if isinstance(label, str) and re.fullmatch(r"-?[0-9]+", label):  # from a command line
        return _label_column(path, names, header, int(label))
    where = f"the header has {names!r}" if header else "the file has no header row"
    raise DataError(f"{path}: no label column {label!r}; {where}")


def _npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype[Any], int]]:
    """Each member's (shape, dtype, stored data bytes), read without loading any array."""
    out = {}
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with z.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    read = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read(f)
                    out[info.filename[:-4]] = (shape, dtype, info.file_size - f.tell())
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from None
    return out


def _npz_key(path: Path, keys: Iterable[str], choices: tuple[str, ...], what: str) -> str:
    for k in choices:
        if k in keys:
            return k
    raise DataError(
        f"{path}: no {what} array; expected key {' or '.join(map(repr, choices))}, "
        f"found {sorted(keys)!r}"
    )


def _load_npz(path: Path, label: str | int | None) -> Data:
    headers = _npz_headers(path)
    xkey = _npz_key(path, headers, ("x", "X"), "feature")
    if label is not None and not isinstance(label, str):
        raise DataError(f"{path}: label must name a key of the .npz file, got {label!r}")
    tkey = _npz_key(path, headers, (label,) if label else ("t", "y"), "label")
    for key, ndim in ((xkey, 2), (tkey, 1)):
        shape, dtype, stored = headers[key]
        if dtype.kind not in "biuf":
            raise DataError(f"{path}: key {key!r} has dtype {dtype}; only numbers are read")
        if len(shape) != ndim:
            raise DataError(f"{path}: key {key!r} must have {ndim} axes, has shape {shape}")
        if int(np.prod(shape)) * dtype.itemsize > stored:
            raise DataError(f"{path}: key {key!r} declares shape {shape} but holds fewer bytes")
    if headers[xkey][0][0] != headers[tkey][0][0]:
        raise DataError(
            f"{path}: {xkey!r} has {headers[xkey][0][0]} rows but {tkey!r} has "
            f"{headers[tkey][0][0]} labels"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {"x": np.asarray(z[xkey], np.float64), "t": np.asarray(z[tkey], np.float64)}
    except (ValueError, OSError) as e:
        raise DataError(f"{path}: cannot read the arrays ({e})") from None
    for name, key in (("x", xkey), ("t", tkey)):
        bad = np.argwhere(~np.isfinite(data[name]))
        if len(bad):
            where = tuple(int(i) for i in bad[0])
            raise DataError(f"{path}: key {key!r} has a non-finite value at index {where}")
    return data


# --- feeding a network ---------------------------------------------------------------

_COLUMN = re.compile(r"x([1-9][0-9]*)")


def columns(data: Any, what: str = "data") -> Mapping[Hashable, Any]:
    """``data`` as a mapping from column (or input) name to values.

    A mapping is returned as it is; a pandas ``DataFrame`` becomes a dict of its
    columns as numpy arrays, in column order. pandas is never imported here: a
    DataFrame is recognised only if pandas is already loaded (the caller made one).

    >>> columns({"x": [1.0]})
    {'x': [1.0]}
    >>> columns([1.0, 2.0])
    Traceback (most recent call last):
    ...
    graphdiff.data.DataError: data must map input names to arrays (a dict or a pandas ...
    """
    if isinstance(data, Mapping):
        return data
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(data, pandas.DataFrame):
        return {c: data[c].to_numpy() for c in data.columns}
    raise DataError(
        f"{what} must map input names to arrays (a dict or a pandas DataFrame), "
        f"got {type(data).__name__}"
    )


def feed(net: Any, data: Any) -> dict[Hashable, Any]:
    """Map a data set onto a network's inputs.

    ``net`` is a compiled :class:`~graphdiff.network.Network` (its ``inputs``
    are mapped) or an iterable of input names; ``data`` a mapping or a pandas
    ``DataFrame`` (see :func:`columns`). An input whose name is a key (a
    column) of ``data`` gets that array (so ``"x"`` gets the feature matrix and
    ``"t"`` the labels); an input named ``"x1"``, ``"x2"``, ... gets column k-1
    of ``data["x"]``; an input ``"x"`` that is not a key gets every other
    column, in order, as the columns of a matrix (N, d). The result is the
    ``inputs`` argument of ``backward``, ``forward`` or ``fit``.

    Raises
    ------
    DataError
        naming the input that matches nothing and the keys available.

    >>> d = {"x": np.array([[1.0, 2.0], [3.0, 4.0]]), "t": np.array([1.0, -1.0])}
    >>> feed(["x2", "t"], d)
    {'x2': array([2., 4.]), 't': array([ 1., -1.])}
    >>> feed(["x", "t"], {"a": [1.0, 3.0], "b": [2.0, 4.0], "t": [1.0, -1.0]})["x"]
    array([[1., 2.],
           [3., 4.]])
    """
    names = list(net.inputs if hasattr(net, "inputs") else net)
    data = columns(data)
    out: dict[Hashable, Any] = {}
    for name in names:
        if name in data:
            out[name] = data[name]
            continue
        m = _COLUMN.fullmatch(name) if isinstance(name, str) else None
        x = data.get("x")
        if m is not None and x is not None:
            k = int(m.group(1))
            if np.ndim(x) != 2 or k > np.shape(x)[1]:
                raise DataError(
                    f"input {name!r} takes column {k} of data['x'], which has shape {np.shape(x)}"
                )
            out[name] = np.asarray(x)[:, k - 1]
            continue
        rest = [c for c in data if c not in names]
        if name == "x" and rest:
            parts = [np.asarray(data[c]) for c in rest]
            bad = next((c for c, a in zip(rest, parts, strict=True) if a.ndim != 1), None)
            if bad is not None:
                raise DataError(
                    f"input 'x' is made of the columns {rest!r}, but {bad!r} has shape "
                    f"{np.shape(data[bad])}, not one value per data point"
                )
            out[name] = np.column_stack(parts)
            continue
        raise DataError(
            f"input {name!r} matches nothing in the data; keys are {sorted(map(str, data))!r} "
            "(inputs 'x1', 'x2', ... take the columns of 'x'; an input 'x' takes the columns "
            "that no other input takes)"
        )
    return out


def fed_inputs(data: Any, names: list[Hashable], what: str) -> dict[Hashable, Any]:
    """The arrays of the inputs ``names``: ``data``'s own columns of those names, else
    what :func:`feed` maps onto them; an InputError naming ``what`` when neither fits.

    >>> fed_inputs({"x": [[1.0, 2.0]], "t": [0.0]}, ["x1", "x2"], "data")
    {'x1': array([1.]), 'x2': array([2.])}
    """
    data = columns(data, what)
    if all(n in data for n in names):
        return {n: data[n] for n in names}
    try:
        return feed(names, data)
    except DataError as e:
        raise InputError(
            f"{what}: {e}; graphdiff.feed(net, data) maps a data set onto a network's inputs"
        ) from None
