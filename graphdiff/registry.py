"""Ops: a name, a forward function, its local derivative, and an attribute model.

An op is looked up by name only. The standard library in ``graphdiff.ops``
registers through :func:`register_op`, exactly as a user or a third-party
package does; other packages can also ship ops through the entry-point group
``graphdiff.ops`` (entry-point name = op name, value = an :class:`Op`), loaded
the first time that name is looked up.

>>> import numpy as np
>>> import graphdiff
>>> @graphdiff.register_op("cube_doc", vjp=lambda g, out, x: (3 * g * x**2,), elementwise=True)
... def cube(x):
...     return x**3
>>> cube(np.array([2.0]))
array([8.])
>>> graphdiff.get_op("cube_doc").elementwise
True
>>> graphdiff.unregister_op("cube_doc")
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from .errors import GraphError, RegistryError, UnknownOpError

__all__ = [
    "ENGINE_OPS",
    "NoAttrs",
    "Op",
    "OpInfo",
    "elementwise_op",
    "get_op",
    "list_ops",
    "register_op",
    "unregister_op",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "graphdiff.ops"
DISABLE_AUTOLOAD_ENV = "GRAPHDIFF_DISABLE_PLUGIN_AUTOLOAD"

# Node kinds that the compiler handles itself rather than through an Op.
ENGINE_OPS: dict[str, str] = {
    "input": "data fed at call time, first axis = data points",
    "param": "a tensor parameter named after its node (attributes shape, value, init)",
    "const": "a constant array (attribute value)",
    "neuron": "z = sum_j w_j a_j + b, a = g(z): one weight per in-edge, activation g",
}

Array = np.ndarray
Grads = Sequence["np.ndarray | None"]
Sample = tuple[tuple[np.ndarray, ...], dict[str, Any]]


class NoAttrs(BaseModel):
    """Attribute model of an op that takes no attributes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


BUILTIN_SOURCE = "graphdiff (built-in)"


def _no_vjp(g: Array, out: Array, *xs: Array, **attrs: Any) -> Grads:  # pragma: no cover
    raise AssertionError("replaced in Op.__post_init__")


@dataclass(frozen=True)
class Op:
    """One differentiable operation.

    Parameters
    ----------
    name : the name graphs refer to (``G.add_node(n, op=name)``).
    forward : ``forward(*xs, **attrs) -> ndarray``. Pure: never writes into ``xs``.
    vjp : ``vjp(g, out, *xs, **attrs) -> tuple``: given ``g = dE/d(out)``, one
        entry per operand, ``dE/d(x_i)`` or ``None`` when the operand gets no
        gradient (integer targets, indices). An entry may have the broadcast
        shape of ``out``; the engine sums it back to the operand's shape. Pure:
        ``g`` may be read-only (the loss's seed is one number broadcast over the
        batch).
    attrs : a frozen pydantic model of the op's attributes; node attributes
        named like its fields are validated by it, other node attributes are
        left to the user.
    arity : number of operands, ``None`` for one or more.
    elementwise : one operand, output of the same shape; such an op can be a
        neuron's activation.
    unordered : the operands commute, so in-edges may omit ``port``.
    loss : operands are (prediction, target); the output has one value per
        data point. The engine checks the two shapes agree unless
        ``check_shapes`` is given.
    check_shapes : for losses, ``check_shapes(pred_shape, target_shape)``
        returns an error text or ``None``.
    targets : for losses, the target domain, checked once per call by
        :func:`~graphdiff.fit`, :func:`~graphdiff.evaluate` and the CLI (never by
        ``backward``/``forward``, which stay the plain mathematics): ``"signs"``
        (-1 or +1, as hinge and logistic), ``"classes"`` (class indices 0..K-1 of
        shape (N,), or rows of K probabilities, as softmax cross-entropy),
        ``"real"`` (any finite number, as squared error) or ``None`` (unchecked).
    predicts : for losses, how a prediction z (the port-0 operand) becomes a
        class label; setting it makes the loss a classifier, which gives it
        ``accuracy``, ``target_accuracy`` and :meth:`~graphdiff.Network.predict`
        labels: ``"sign"`` (+1 where z > 0, else -1; accuracy counts z t > 0) or
        ``"argmax"`` (the class of the largest z per row; accuracy compares it with
        the target's class index, or its argmax for probability rows). ``None``:
        a regression loss, whose prediction is z itself.
    proba : for classifier losses, ``proba(z) -> probabilities`` as the loss
        models them (logistic: P(t = +1) = sigmoid(z), shape (N,); softmax
        cross-entropy: softmax(z), shape (N, K)); used by
        :meth:`~graphdiff.Network.predict_proba`. ``None``: the loss models none.
    derivative : for elementwise ops, ``derivative(x, out, **attrs)``, the local
        derivative d out / d x elementwise (the lecture's g'(z)); then ``vjp`` must
        equal ``g * derivative(x, out)``, and the engine may use either.
    vjps : optional, one function per operand, ``vjps[i](g, out, *xs, **attrs)``
        returning entry ``i`` of ``vjp``'s result; the engine then computes only
        the gradients something needs (a loss's target is usually data and needs
        none). Needs a fixed ``arity``; reads what ``vjp`` reads (``saves``).
        Give the derivative once: with ``vjps`` and no ``vjp``, the vjp is made of
        them; with both, :func:`~graphdiff.testing.check_op` checks they agree.
        Likewise an elementwise op may give only ``derivative``.
    builtin : one of graphdiff's own ops (``graphdiff.ops`` set it; plugins do not).
    saves : what the vjp reads: ``"out"`` and/or operand positions (``0``, ``1``,
        ...); ``None`` (the default) means all of them. The engine passes other
        arguments as read-only zeros of the right shape, which lets it release
        those values right after the forward pass (``tanh`` saves ``("out",)``,
        ``add`` saves nothing).
    samples : ``samples(rng) -> list of (operands, attrs)`` at smooth points,
        used by :func:`graphdiff.testing.check_op`.
    onnx : optional, the op's ONNX lowering, ``onnx(b, *xs, **attrs) -> str``:
        given the names of its operands' values ``xs``, it adds ONNX nodes with
        the builder ``b`` (``b.node(op_type, inputs, **attributes)`` returns the
        new value's name, ``b.const(value)`` a constant of the model's float type,
        ``b.ints(values)`` an int64 constant, ``b.shapes`` the operands' shapes)
        and returns the name of the op's value. :func:`graphdiff.onnx.export`
        refuses an op without one. The builder comes from graphdiff; an op
        module never imports onnx.
    source : where the op came from, for ``graphdiff ops``.
    distribution, version : the installed package that provides it, if known.
    """

    name: str
    forward: Callable[..., Array]
    vjp: Callable[..., Grads] = _no_vjp
    attrs: type[BaseModel] = NoAttrs
    arity: int | None = 1
    elementwise: bool = False
    unordered: bool = False
    loss: bool = False
    check_shapes: Callable[[tuple[int, ...], tuple[int, ...]], str | None] | None = None
    targets: Literal["signs", "classes", "real"] | None = None
    predicts: Literal["sign", "argmax"] | None = None
    proba: Callable[[Array], Array] | None = None
    samples: Callable[[np.random.Generator], list[Sample]] | None = None
    saves: tuple[str | int, ...] | None = None
    derivative: Callable[..., Array] | None = None
    vjps: tuple[Callable[..., Array | None], ...] | None = None
    onnx: Callable[..., str] | None = None
    source: str = ""
    distribution: str | None = None
    version: str | None = None
    doc: str = field(default="", compare=False)
    builtin: bool = False

    def __post_init__(self) -> None:
        # One derivative form: the vjp is declared once, as vjp=, as one function per
        # operand (vjps=, from which it is made), or, for an elementwise op, as its
        # derivative (vjp = g * derivative(x, out)).
        if self.vjp is _no_vjp:
            if self.vjps is not None:
                object.__setattr__(self, "vjp", _joined(self.vjps))
            elif self.derivative is not None and self.elementwise:
                object.__setattr__(self, "vjp", _from_derivative(self.derivative))
            else:
                raise RegistryError(
                    f"op {self.name!r}: give its vjp (vjp=, vjps= one function per operand, "
                    "or derivative= for an elementwise op)"
                )
        if self.builtin and not self.source:
            object.__setattr__(self, "source", BUILTIN_SOURCE)

    def __call__(self, *xs: Array, **attrs: Any) -> Array:
        """Run ``forward`` on arrays after validating ``attrs``."""
        checked = self.attrs(**attrs).model_dump()
        return self.forward(*(np.asarray(x, dtype=float) for x in xs), **checked)


@dataclass(frozen=True)
class OpInfo:
    """One row of :func:`list_ops`."""

    name: str
    source: str
    kind: str  # "engine", "op", "loss", "activation" or "plugin (not loaded)"


class Registry:
    """Name -> Op, with the standard library and entry points loaded lazily."""

    def __init__(self) -> None:
        self._ops: dict[str, Op] = {}
        self._builtins_loaded = False
        self._loading_builtins = False
        self._failed_plugins: dict[str, str] = {}

    def _load_builtins(self) -> None:
        if self._builtins_loaded or self._loading_builtins:
            return
        self._loading_builtins = True
        try:
            importlib.import_module("graphdiff.ops")
        except ModuleNotFoundError as e:  # pragma: no cover - broken install
            raise RegistryError(
                "graphdiff's standard ops (graphdiff.ops) are not importable; "
                "install the project (pip install -e .)"
            ) from e
        finally:
            self._loading_builtins = False
        self._builtins_loaded = True

    def register(self, op: Op, *, replace_existing: bool = False) -> Op:
        if not isinstance(op, Op):
            raise RegistryError(f"register_op expects an Op, got {type(op).__name__}")
        if not op.name or not isinstance(op.name, str):
            raise RegistryError(f"an op name must be a non-empty string, got {op.name!r}")
        if op.name in ENGINE_OPS:
            raise RegistryError(f"op name {op.name!r} is reserved by the engine")
        if op.elementwise and op.arity != 1:
            raise RegistryError(f"op {op.name!r}: an elementwise op takes exactly one operand")
        if op.loss and op.arity != 2:
            raise RegistryError(f"op {op.name!r}: a loss takes (prediction, target)")
        if not op.loss and (op.targets or op.predicts or op.proba):
            raise RegistryError(
                f"op {op.name!r}: targets, predicts and proba are for losses (loss=True)"
            )
        if op.targets not in (None, "signs", "classes", "real"):
            raise RegistryError(
                f"op {op.name!r}: targets must be 'signs', 'classes', 'real' or None, "
                f"got {op.targets!r}"
            )
        if op.predicts not in (None, "sign", "argmax"):
            raise RegistryError(
                f"op {op.name!r}: predicts must be 'sign', 'argmax' or None, got {op.predicts!r}"
            )
        if op.proba is not None and (op.predicts is None or not callable(op.proba)):
            raise RegistryError(f"op {op.name!r}: proba must be a callable, for a classifier")
        if not callable(op.forward) or not callable(op.vjp):
            raise RegistryError(f"op {op.name!r}: forward and vjp must be callables")
        if op.vjps is not None and (
            not isinstance(op.vjps, tuple)
            or len(op.vjps) != op.arity
            or not all(map(callable, op.vjps))
        ):
            raise RegistryError(
                f"op {op.name!r}: vjps must be a tuple of one callable per operand "
                f"(arity {op.arity})"
            )
        if op.onnx is not None and not callable(op.onnx):
            raise RegistryError(f"op {op.name!r}: onnx must be a callable (the ONNX lowering)")
        if not self._loading_builtins:
            self._load_builtins()
        old = self._ops.get(op.name)
        if old is not None and not replace_existing:
            raise RegistryError(
                f"op {op.name!r} is already registered (from {old.source}); "
                "pass replace=True to replace it"
            )
        self._ops[op.name] = op
        return op

    def unregister(self, name: str) -> None:
        self._ops.pop(name, None)

    def get(self, name: str) -> Op:
        op = self._ops.get(name)
        if op is not None:
            return op
        self._load_builtins()
        op = self._ops.get(name) or self._load_entry_point(name)
        if op is not None:
            return op
        known = sorted({*self._ops, *ENGINE_OPS, *_entry_point_names()} - {name})
        close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        failed = self._failed_plugins.get(name)
        why = f" (its plugin failed to load: {failed})" if failed else ""
        raise UnknownOpError(f"unknown op {_short(name)}{why}{hint}")

    def _load_entry_point(self, name: str) -> Op | None:
        if os.environ.get(DISABLE_AUTOLOAD_ENV):
            return None
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=name):
            dist = ep.dist.name if ep.dist is not None else None
            version = ep.dist.version if ep.dist is not None else None
            try:
                obj = ep.load()
                op = obj() if callable(obj) and not isinstance(obj, Op) else obj
                if not isinstance(op, Op) or op.name != name:
                    raise TypeError(f"entry point {ep.value!r} does not give an Op named {name!r}")
            except Exception as e:  # a broken plugin must not break graphdiff
                self._failed_plugins[name] = f"{type(e).__name__}: {e}"
                log.info("skipping op plugin %r from %s: %s", name, dist, e)
                warnings.warn(
                    f"graphdiff: skipping op plugin {name!r} from {dist}: {e}",
                    RuntimeWarning,
                    stacklevel=3,
                )
                continue
            op = replace(
                op,
                source=f"plugin {dist} {version}" if dist else f"plugin {ep.value}",
                distribution=dist,
                version=version,
            )
            self._ops[name] = op
            log.info("loaded op plugin %r from %s", name, op.source.removeprefix("plugin "))
            return op
        return None

    def infos(self) -> list[OpInfo]:
        self._load_builtins()
        rows = [OpInfo(n, "graphdiff (engine)", "engine") for n in ENGINE_OPS]
        for op in self._ops.values():
            kind = "loss" if op.loss else "activation" if op.elementwise else "op"
            rows.append(OpInfo(op.name, op.source, kind))
        if not os.environ.get(DISABLE_AUTOLOAD_ENV):
            for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                if ep.name not in self._ops:
                    dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else ep.value
                    rows.append(OpInfo(ep.name, f"plugin {dist}", "plugin (not loaded)"))
        return sorted(rows, key=lambda r: r.name)

    def names(self) -> list[str]:
        self._load_builtins()
        return sorted(self._ops)


def _entry_point_names() -> list[str]:
    if os.environ.get(DISABLE_AUTOLOAD_ENV):
        return []
    return [ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)]


def _short(name: object, limit: int = 60) -> str:
    text = repr(name)
    return text if len(text) <= limit else text[: limit - 3] + "..."


REGISTRY = Registry()


def register_op(
    op: Op | str,
    forward: Callable[..., Array] | None = None,
    *,
    vjp: Callable[..., Grads] | None = None,
    replace: bool = False,
    **meta: Any,
) -> Any:
    """Register an op, as a call or as a decorator of its forward function.

    ``register_op(op)`` registers an :class:`Op`. ``register_op(name, forward,
    vjp=..., **meta)`` builds one from its parts (``meta`` takes the other
    fields of :class:`Op`), and ``@register_op(name, vjp=..., **meta)``
    decorates the forward function. Both return the registered :class:`Op`.
    A taken name is an error unless ``replace=True``.

    >>> import numpy as np, graphdiff
    >>> op = graphdiff.register_op("twice_doc", lambda x: 2 * x,
    ...                            vjp=lambda g, out, x: (2 * g,), elementwise=True)
    >>> op(np.array([1.5]))
    array([3.])
    >>> graphdiff.unregister_op("twice_doc")
    """
    if isinstance(op, Op):
        if forward is not None or vjp is not None or meta:
            raise RegistryError("register_op(op) takes no other arguments than replace=")
        return REGISTRY.register(op, replace_existing=replace)
    name = op
    if vjp is None and meta.get("vjps") is None and not (
        meta.get("derivative") is not None and meta.get("elementwise")
    ):
        raise RegistryError(
            f"op {name!r}: vjp= (the local derivative) is required, or vjps= (one function "
            "per operand), or derivative= for an elementwise op"
        )
    if vjp is not None:
        meta["vjp"] = vjp

    def build(fn: Callable[..., Array]) -> Op:
        source = meta.pop("source", None) or getattr(fn, "__module__", "") or "user"
        new = Op(name=name, forward=fn, source=source, doc=fn.__doc__ or "", **meta)
        return REGISTRY.register(new, replace_existing=replace)

    return build if forward is None else build(forward)


def op_named(name: object, what: str, context: str = "") -> Op:
    """The registered op ``name`` standing for ``what`` ("op", "activation", "loss"),
    or a GraphError / UnknownOpError beginning with ``context`` (e.g. "node 'h': ")."""
    if not isinstance(name, str):
        raise GraphError(f"{context}{what} must be an op name (str), got {name!r}")
    try:
        return get_op(name)
    except UnknownOpError as e:
        raise UnknownOpError(f"{context or what + ': '}{e}") from None


def unregister_op(name: str) -> None:
    """Remove an op registered in this process (no error if it is absent)."""
    REGISTRY.unregister(name)


def get_op(name: str) -> Op:
    """Look up an op by name: registered ops first, then plugin entry points.

    Raises :class:`~graphdiff.errors.UnknownOpError` with close names suggested.
    """
    return REGISTRY.get(name)


def list_ops() -> list[OpInfo]:
    """Every op graphdiff knows, with where it came from (sorted by name).

    >>> import graphdiff
    >>> {"tanh", "matmul", "neuron"} <= {row.name for row in graphdiff.list_ops()}
    True
    """
    return REGISTRY.infos()


def identity(x: Array) -> Array:
    """The identity op's forward: ``x`` itself (ops never write into their operands)."""
    return x


def identity_vjp(g: Array, out: Array, x: Array) -> tuple[Array]:
    """The identity op's vjp: ``g`` passes through. The generated code recognises an
    op made of these two functions and writes neither call (``z`` is the value)."""
    return (g,)


def elementwise_op(
    name: str,
    f: Callable[..., Array],
    df: Callable[..., Array],
    **meta: Any,
) -> Op:
    """Build (not register) a one-operand elementwise op from ``f`` and its derivative.

    ``df(x, out, **attrs)`` returns ``d out / d x`` elementwise, so the vjp is
    ``g * df(x, out)``. Using ``out`` keeps tanh, sigmoid and exp one-liners.

    >>> import numpy as np
    >>> op = elementwise_op("sq_doc", lambda x: x * x, lambda x, out: 2 * x)
    >>> op.vjp(np.ones(2), None, np.array([1.0, 3.0]))
    (array([2., 6.]),)
    """

    if not meta.get("builtin"):
        meta.setdefault("source", getattr(f, "__module__", "") or "user")
    return Op(name=name, forward=f, elementwise=True, arity=1, derivative=df, **meta)


def _joined(vjps: tuple[Callable[..., Array | None], ...]) -> Callable[..., Grads]:
    """The vjp of an op declared by one function per operand: each of them, in turn."""

    def vjp(g: Array, out: Array, *xs: Array, **attrs: Any) -> Grads:
        return tuple(part(g, out, *xs, **attrs) for part in vjps)

    return vjp


def _from_derivative(df: Callable[..., Array]) -> Callable[..., Grads]:
    """The vjp of an elementwise op declared by its derivative: ``g * df(x, out)``."""

    def vjp(g: Array, out: Array, x: Array, **attrs: Any) -> tuple[Array]:
        return (g * df(x, out, **attrs),)

    return vjp


@contextmanager
def scoped_registry() -> Iterator[Registry]:
    """Undo every registration made inside the block (for tests)."""
    REGISTRY._load_builtins()
    saved = dict(REGISTRY._ops)
    try:
        yield REGISTRY
    finally:
        REGISTRY._ops.clear()
        REGISTRY._ops.update(saved)
