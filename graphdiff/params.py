"""Parameters and gradients as one vector with names (as JAX's ``ravel_pytree``).

A network's parameters, scalar weights and tensors alike, live in one contiguous
vector of the network's float type (float64, or float32 when compiled so);
:class:`Layout` says where each one is. :class:`Params` is the mapping users see
(``params["w1"]``, ``dict(params)``, iteration in the network's order), backed by
that vector: a tensor parameter is a view into it, so ``params.vector`` is every
parameter at once, and an optimizer steps on it in one vectorised pass.
:class:`Grads` has the same layout, read-only.

>>> import numpy as np
>>> layout = Layout(["b", "w"], [("W", (2, 2))])
>>> p = Params.from_mapping(layout, {"w": 0.5, "b": -1.0, "W": np.eye(2)})
>>> p.vector.tolist()
[-1.0, 0.5, 1.0, 0.0, 0.0, 1.0]
>>> list(p), p["w"], p["W"].base is p.vector
(['W', 'b', 'w'], np.float64(0.5), True)
>>> p["w"] = 2.0
>>> p.vector[1]
np.float64(2.0)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np

from .errors import InputError, ShapeError
from .plan import ParamSpec, as_numbers

__all__ = ["Grads", "Layout", "Params"]

Array = np.ndarray


class Layout:
    """Where each parameter lives in the vector: the scalars first (in the order
    given), then each tensor's entries in C order.

    ``names`` is the order of iteration (sorted); ``dtype`` the vector's float type;
    ``fingerprint`` is the same for two layouts of the same names, shapes and dtype
    (two compiles of one graph), so a vector made for one network is trusted by
    another with the same fingerprint.
    """

    __slots__ = (
        "dtype", "fingerprint", "n_scalars", "names", "shapes", "size", "slices", "where",
    )

    def __init__(
        self, scalars: Sequence[str], tensors: Sequence[tuple[str, tuple[int, ...]]],
        dtype: Any = np.float64,
    ):
        self.dtype: np.dtype[Any] = np.dtype(dtype)
        self.n_scalars = len(scalars)
        self.names: tuple[str, ...] = tuple(sorted([*scalars, *(n for n, _ in tensors)]))
        # where[name] = i: vector[i] for a scalar (i >= 0); the ~i-th tensor otherwise
        self.where: dict[str, int] = {n: i for i, n in enumerate(scalars)}
        self.where.update((n, ~j) for j, (n, _) in enumerate(tensors))
        self.shapes: dict[str, tuple[int, ...]] = dict.fromkeys(scalars, ())
        self.slices: list[tuple[int, int, tuple[int, ...]]] = []
        start = self.n_scalars
        for name, shape in tensors:
            size = int(np.prod(shape, dtype=np.int64))
            self.shapes[name] = tuple(shape)
            self.slices.append((start, start + size, tuple(shape)))
            start += size
        self.size = start
        text = repr((tuple(scalars), [(n, tuple(s)) for n, s in tensors]))
        if self.dtype != np.float64:  # float64 layouts keep the fingerprints they had
            text += f" {self.dtype.name}"
        self.fingerprint = hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

    def __repr__(self) -> str:
        return (
            f"<Layout {self.fingerprint}: {len(self.names)} parameters, {self.size} "
            f"{self.dtype.name} numbers>"
        )

    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("dtype", np.dtype(np.float64))  # pickled before layouts had one
        for k, v in state.items():
            object.__setattr__(self, k, v)

    def views(self, vector: Array) -> list[Array]:
        """The tensors' views into ``vector``, in layout order."""
        return [vector[a:b].reshape(shape) for a, b, shape in self.slices]

    def lookup(self, vector: Array, views: Sequence[Array], name: str) -> Any:
        i = self.where[name]
        return vector[i] if i >= 0 else views[~i]

    def fill(self, vector: Array, values: Mapping[str, Any]) -> Array:
        """Write ``values`` (every name of the layout, shapes already checked) into ``vector``."""
        where = self.where
        for name, value in values.items():
            i = where.get(name)
            if i is None:
                continue
            if i >= 0:
                vector[i] = value
            else:
                a, b, _ = self.slices[~i]
                vector[a:b] = np.ravel(value)
        return vector


class _OnVector:
    """Names over one vector in a :class:`Layout`: what :class:`Params` and
    :class:`Grads` share (lookup, membership, iteration in name order, pickling)."""

    __slots__ = ("_views", "layout", "vector")

    def __init__(self, layout: Layout, vector: Array) -> None:
        self.layout, self.vector = layout, vector
        self._views: list[Array] | None = None  # made on first use: a step needs none

    @property
    def _tensor_views(self) -> list[Array]:
        """The tensor parameters' views into the vector, in layout order."""
        if self._views is None:
            self._views = self.layout.views(self.vector)
        return self._views

    def __getitem__(self, name: str) -> Any:
        return self.layout.lookup(self.vector, self._tensor_views, name)

    def __contains__(self, name: object) -> bool:
        return name in self.layout.where

    def __iter__(self) -> Iterator[str]:
        return iter(self.layout.names)

    def __len__(self) -> int:
        return len(self.layout.names)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self.items())!r})"  # type: ignore[attr-defined]

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.layout, self.vector))


class Params(_OnVector, MutableMapping[str, Any]):
    """A network's parameters by name, backed by one vector (``.vector``) of the
    network's float type (``layout.dtype``: float64 unless compiled as float32).

    Made by :meth:`Network.init_params <graphdiff.network.Network.init_params>`,
    :meth:`Network.params_from_vector <graphdiff.network.Network.params_from_vector>`
    and :meth:`Network.as_params <graphdiff.network.Network.as_params>`. Scalars read
    as numpy floats, tensors as views into the vector; ``params[name] = value`` and
    ``update`` check the value's shape and write into the vector. Passing a
    ``Params`` of a network back to it costs no work per parameter.
    """

    __slots__ = ()

    @classmethod
    def from_mapping(cls, layout: Layout, values: Mapping[str, Any]) -> Params:
        """A new vector filled from ``values`` (checked values of every parameter)."""
        return cls(layout, layout.fill(np.empty(layout.size, layout.dtype), values))

    def __setitem__(self, name: str, value: Any) -> None:
        shape = self.layout.shapes.get(name)
        if shape is None:
            raise InputError(f"no parameter {name!r} in this network's parameters")
        arr = as_numbers(value, f"parameter {name!r}", self.layout.dtype)
        if arr.shape != shape:
            raise ShapeError(f"parameter {name!r} must have shape {shape}, got {arr.shape}")
        self.layout.fill(self.vector, {name: arr})

    def __delitem__(self, name: str) -> None:
        raise InputError(f"parameters cannot be deleted (tried {name!r}); use dict(params)")

    def copy(self) -> Params:
        """A new ``Params`` with its own vector."""
        return type(self)(self.layout, self.vector.copy())

    def first_non_finite(self) -> str | None:
        """The first parameter (in name order) holding NaN or an infinity, if any."""
        if np.isfinite(self.vector).all():
            return None
        return next(n for n in self.layout.names if not np.all(np.isfinite(self[n])))


class Grads(_OnVector, Mapping[str, Any]):
    """``dE/dθ`` by parameter name: a read-only mapping over one vector, iterated in
    name order, in the layout of the network's :class:`Params` (``.vector``).

    Looking up a scalar parameter's gradient gives a numpy float, a tensor's an
    array of its shape (a view into the vector). ``dict(grads)`` is a plain copy.

    >>> import networkx as nx, numpy as np, graphdiff
    >>> G = nx.DiGraph([("x", "y")]); G.nodes["x"]["op"] = "input"
    >>> G.nodes["y"].update(op="neuron", activation="identity")
    >>> g = graphdiff.compile(G, loss="y").backward({"x->y": 3.0}, {"x": np.ones(2)}).grads
    >>> g, g["x->y"], g.all_finite(), g.vector
    (Grads({'x->y': np.float64(1.0)}), np.float64(1.0), True, array([1.]))
    """

    __slots__ = ()

    @classmethod
    def of(cls, layout: Layout, scalars: Array, tensors: Sequence[Array | None]) -> Grads:
        """Gradients from the scalars' vector and the tensors' arrays (None: zeros)."""
        if not layout.slices:
            return cls(layout, scalars)
        if all(type(g) is np.ndarray and g.size == b - a
               for g, (a, b, _) in zip(tensors, layout.slices, strict=True)):
            # every gradient there (the generated code's): one call joins them
            flat = [g.reshape(-1) for g in tensors]  # type: ignore[union-attr]
            return cls(layout, np.concatenate([scalars, *flat], dtype=layout.dtype))
        vector = np.zeros(layout.size, layout.dtype)
        vector[: layout.n_scalars] = scalars
        for (a, b, _), g in zip(layout.slices, tensors, strict=True):
            if g is not None:
                vector[a:b] = np.ravel(g)
        return cls(layout, vector)

    def all_finite(self) -> bool:
        """Is every gradient finite (no NaN, no infinity)?"""
        return bool(np.isfinite(self.vector).all())


def draw(spec: ParamSpec, rng: np.random.Generator) -> Array:
    """A parameter's initial value by its ``init`` rule (glorot by default)."""
    if spec.init == "zeros" or 0 in spec.shape or (
        spec.kind == "scalar" and len(spec.uses[0]) == 1
    ):  # an empty glorot parameter would divide by fan_in + fan_out = 0
        return np.zeros(spec.shape)
    if spec.init == "ones":
        return np.ones(spec.shape)
    if spec.init == "normal":
        return rng.normal(0.0, 1.0 / np.sqrt(spec.fan_in), size=spec.shape)
    a = np.sqrt(6.0 / (spec.fan_in + spec.fan_out))
    return rng.uniform(-a, a, size=spec.shape)
