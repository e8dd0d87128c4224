"""Optimizers: from gradients to parameter updates, the lecture's θ ← θ − γ·∇E and its refinements.

An optimizer is a small class. The base class :class:`Optimizer` does the
bookkeeping every optimizer shares, in this order on each :meth:`~Optimizer.step`:

1. gradient-norm clipping (``clip_norm``): if the global norm
   ``sqrt(Σ_θ ‖∇_θ E‖²)`` over all parameters exceeds ``clip_norm``, every
   gradient is scaled by ``clip_norm / norm``;
2. weight decay (``weight_decay`` = λ): the L2 penalty's gradient λ·θ is added to
   each gradient, i.e. the optimizer minimises ``E + λ/2 Σ θ²`` (classic,
   "coupled" L2, also for Adam);
3. the learning rate of this step, ``lr · schedule.factor(t)`` with ``t`` the
   number of steps done before (see :class:`Schedule`);
4. the subclass's update rule, one parameter at a time, with that parameter's
   state slots (momentum, moment estimates) starting at zero.

Hyperparameters are a frozen pydantic model (``optimizer.config``), so a
training configuration can be saved as JSON and an optimizer rebuilt from its
name and config with :meth:`Optimizer.from_config`. :meth:`~Optimizer.step`
returns new parameters and never writes into the arrays it is given; the
optimizer's own state travels through :meth:`~Optimizer.state_dict` and
:meth:`~Optimizer.load_state_dict`.

Writing your own optimizer means writing one update rule:

>>> import numpy as np
>>> from graphdiff.optim import Optimizer, OptimizerConfig
>>> class SignSGD(Optimizer):
...     '''θ ← θ − lr·sign(g): the step ignores the gradient's size.'''
...     name = "sign_sgd"
...     Config = OptimizerConfig
...     def update(self, p, g, state, lr, t):
...         return p - lr * np.sign(g), state
>>> opt = SignSGD(lr=0.5)
>>> opt.step({"w": np.array([1.0, 2.0]), "b": np.float64(0.0)},
...          {"w": np.array([3.0, -0.1]), "b": np.float64(-2.0)})
{'w': array([0.5, 2.5]), 'b': np.float64(0.5)}
>>> Optimizer.from_config("sign_sgd", {"lr": 0.5}).config == opt.config
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from operator import itemgetter
from typing import Any, ClassVar, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import GraphdiffError, InputError, ShapeError
from .params import Grads, Layout, Params
from .plan import as_numbers

__all__ = [
    "SGD",
    "Adam",
    "AdamConfig",
    "Optimizer",
    "OptimizerConfig",
    "OptimizerError",
    "SGDConfig",
    "Schedule",
]

Array = NDArray[np.float64]

_OPTIMIZERS: dict[str, type[Optimizer]] = {}
_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)


class OptimizerError(GraphdiffError, ValueError):
    """Bad hyperparameters, an unknown optimizer name, or saved state that does not fit."""


def _explain(e: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(map(str, err['loc'])) or 'config'}: {err['msg']} (got {err['input']!r})"
        for err in e.errors()
    )


class Schedule(BaseModel):
    """A learning-rate schedule: step ``t`` (0-based count of earlier steps) uses ``lr·factor(t)``.

    ===============  ======================  ===========================================
    ``kind``         needs                   ``factor(t)``
    ===============  ======================  ===========================================
    ``constant``     nothing                 1
    ``step``         ``gamma``, ``every``    ``gamma ** (t // every)``
    ``exponential``  ``gamma``               ``gamma ** t``
    ``cosine``       ``total``, ``floor``    ``f + (1 − f)·(1 + cos(π·min(t, T)/T))/2``
    ===============  ======================  ===========================================

    (cosine: ``T = total``, ``f = floor``, default 0: the rate falls to ``lr·f`` at
    step T and stays there.)

    Steps are optimizer steps (minibatches), not epochs.

    >>> s = Schedule(kind="step", gamma=0.5, every=10)
    >>> s.factor(9), s.factor(10), s.factor(25)
    (1.0, 0.5, 0.25)
    >>> Schedule(kind="cosine", total=100).factor(50)
    0.5
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    kind: Literal["constant", "step", "exponential", "cosine"] = "constant"
    gamma: float | None = Field(None, gt=0)
    every: int | None = Field(None, ge=1)
    total: int | None = Field(None, ge=1)
    floor: float | None = Field(None, ge=0, le=1)

    @model_validator(mode="after")
    def _fields_of_kind(self) -> Schedule:
        needs = {
            "constant": set(),
            "step": {"gamma", "every"},
            "exponential": {"gamma"},
            "cosine": {"total"},
        }[self.kind]
        allowed = needs | ({"floor"} if self.kind == "cosine" else set())
        given = {f for f in ("gamma", "every", "total", "floor") if getattr(self, f) is not None}
        if needs - given:
            raise ValueError(f"schedule {self.kind!r} needs {sorted(needs - given)}")
        if given - allowed:
            raise ValueError(f"schedule {self.kind!r} takes no {sorted(given - allowed)}")
        return self

    def factor(self, t: int) -> float:
        """The multiplier of the base learning rate at step ``t`` (0-based)."""
        if self.kind == "step":
            assert self.gamma is not None and self.every is not None
            return float(self.gamma ** (t // self.every))
        if self.kind == "exponential":
            assert self.gamma is not None
            return float(self.gamma**t)
        if self.kind == "cosine":
            assert self.total is not None
            f = self.floor or 0.0
            return f + (1.0 - f) * (1.0 + math.cos(math.pi * min(t, self.total) / self.total)) / 2
        return 1.0


class OptimizerConfig(BaseModel):
    """Hyperparameters every optimizer has; subclass it to add your own.

    ``lr`` the learning rate γ; ``weight_decay`` λ of the L2 penalty added to the
    gradient; ``clip_norm`` the cap on the global gradient norm (``None``: no
    clipping); ``schedule`` a :class:`Schedule` (``None``: constant rate).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    lr: float = Field(gt=0)
    weight_decay: float = Field(0.0, ge=0)
    clip_norm: float | None = Field(None, gt=0)
    schedule: Schedule | None = None


class Optimizer:
    """Base class: the shared bookkeeping; a subclass writes only :meth:`update`.

    A subclass sets ``name`` (used in saved configurations; a later class with the
    same name replaces the earlier one in :meth:`from_config`), ``Config`` (its
    hyperparameter model, a subclass of :class:`OptimizerConfig`), ``slots``
    (names of its per-parameter state arrays, started at zeros) and, when its
    update works element by element, ``elementwise = True``: scalar parameters
    then go through :meth:`update` as one vector (the same numbers, far fewer calls
    for a graph with one weight per edge).

    Attributes
    ----------
    config : the validated hyperparameters.
    steps : number of steps taken so far.
    state : parameter name -> slot name -> array (0-d for scalar parameters).
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type[OptimizerConfig]] = OptimizerConfig
    slots: ClassVar[tuple[str, ...]] = ()
    elementwise: ClassVar[bool] = False  # update() has no norms, means, ... over elements

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            _OPTIMIZERS[cls.name] = cls

    def __init__(self, lr: float | None = None, **hyper: Any) -> None:
        if lr is not None:
            hyper["lr"] = lr
        try:
            self.config = self.Config(**hyper)
        except ValidationError as e:
            raise OptimizerError(f"{type(self).__name__}: {_explain(e)}") from None
        self.steps = 0
        self._state: dict[str, dict[str, Array]] = {}
        # after a step on Params: each slot as one vector in their layout (then _state is {})
        self._vectors: tuple[Layout, dict[str, Array]] | None = None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.model_dump().items())
        return f"{type(self).__name__}({args})"

    @classmethod
    def from_config(cls, name: str, config: Mapping[str, Any]) -> Optimizer:
        """Rebuild an optimizer from its ``name`` and a (JSON) ``config`` dict.

        >>> Optimizer.from_config("adam", {"lr": 0.01, "beta1": 0.5}).config.beta1
        0.5
        """
        if name not in _OPTIMIZERS:
            raise OptimizerError(f"unknown optimizer {name!r}; known: {sorted(_OPTIMIZERS)}")
        return _OPTIMIZERS[name](**dict(config))

    def update(
        self, p: Array, g: Array, state: dict[str, Array], lr: float, t: int
    ) -> tuple[Array, dict[str, Array]]:
        """One parameter's update rule: return the new value and the new state slots.

        ``p`` and ``g`` are arrays of the network's float type (0-d for scalar
        parameters), ``state`` holds this parameter's slots, ``lr`` is this step's
        learning rate and ``t`` the 1-based number of this step. Must not write into
        its arguments.
        """
        raise NotImplementedError(f"{type(self).__name__} must define update()")

    @property
    def state(self) -> dict[str, dict[str, Array]]:
        """Parameter name -> slot name -> array (0-d for scalar parameters)."""
        if self._vectors is not None:
            layout, vectors = self._vectors
            views = {k: layout.views(v) for k, v in vectors.items()}
            return {
                n: {k: np.asarray(layout.lookup(vectors[k], views[k], n)) for k in self.slots}
                for n in layout.names
            }
        return self._state

    @state.setter
    def state(self, value: dict[str, dict[str, Array]]) -> None:
        self._state, self._vectors = value, None

    def step(self, params: Mapping[str, Any], grads: Mapping[str, Any]) -> Any:
        """Apply one update to every parameter in ``params``; return new parameters.

        :class:`~graphdiff.params.Params` with :class:`~graphdiff.params.Grads` of the
        same layout (what ``init_params`` and ``backward`` give) are updated as one
        vector and come back as ``Params``; with an elementwise optimizer (SGD, Adam)
        that is one vectorised pass, its state slots vectors too. Other mappings
        come back as a dict: scalar parameters as numpy floats, arrays as new arrays,
        float32 ones (and their state) float32, all others float64. The arguments
        are never written to.
        """
        if (
            type(params) is Params and type(grads) is Grads
            and grads.layout.fingerprint == params.layout.fingerprint
        ):
            return self._step_vector(params, grads)
        if self._vectors is not None:
            self._state = self.state
            self._vectors = None
        missing = [n for n in params if n not in grads]
        if missing:
            raise InputError(f"no gradient given for parameter(s) {missing!r}")
        batch = self._scalar_batch(params, grads) if self.elementwise else None
        # names (a dict, for `in`), values, gradients and state slots of the scalars
        # updated as one vector; nothing when there is no such batch
        names, pb, gb, sb = batch or ({}, np.zeros(0), np.zeros(0), {})
        ps: dict[str, Array] = {}
        gs: dict[str, Array] = {}
        for n in params:
            if n in names:
                continue
            # a float32 parameter (of a float32 network) stays float32
            dtype = _F32 if getattr(params[n], "dtype", None) == _F32 else _F64
            ps[n] = as_numbers(params[n], f"parameter {n!r}", dtype)
            gs[n] = as_numbers(grads[n], f"the gradient of parameter {n!r}", dtype)
            if gs[n].shape != ps[n].shape:
                raise ShapeError(
                    f"the gradient of parameter {n!r} has shape {gs[n].shape}, "
                    f"the parameter {ps[n].shape}"
                )
        cfg = self.config
        if cfg.clip_norm is not None:
            # summed parameter by parameter, in the order of params, either way
            squares = dict(zip(names, (gb * gb).tolist(), strict=True))
            norm = math.sqrt(sum(
                squares[n] if n in squares else float(np.sum(gs[n] * gs[n])) for n in params
            ))
            if norm > cfg.clip_norm:
                gs = {n: g * (cfg.clip_norm / norm) for n, g in gs.items()}
                gb = gb * (cfg.clip_norm / norm)
        if cfg.weight_decay:
            gs = {n: g + cfg.weight_decay * ps[n] for n, g in gs.items()}
            gb = gb + cfg.weight_decay * pb
        lr = cfg.lr * (cfg.schedule.factor(self.steps) if cfg.schedule else 1.0)
        new: dict[str, Any] = {}
        new_state: dict[str, dict[str, Array]] = {}
        if names:
            value, vectors = self.update(pb, gb, sb, lr, self.steps + 1)
            new.update(zip(names, np.asarray(value, dtype=np.float64), strict=True))
            columns = [np.asarray(vectors[k], dtype=np.float64) for k in self.slots]
            rows = zip(*columns, strict=True) if columns else ((),) * len(names)
            new_state.update(
                zip(names, (dict(zip(self.slots, r, strict=True)) for r in rows), strict=True)
            )
        for n, p in ps.items():
            slots = self.state.get(n) or {s: np.zeros(p.shape, p.dtype) for s in self.slots}
            bad = [s for s, v in slots.items() if np.shape(v) != p.shape]
            if bad:
                raise ShapeError(
                    f"optimizer state {bad!r} of parameter {n!r} does not have its shape {p.shape}"
                )
            value, new_state[n] = self.update(p, gs[n], slots, lr, self.steps + 1)
            new[n] = p.dtype.type(value) if p.ndim == 0 else np.asarray(value, dtype=p.dtype)
        self.state.update(new_state)
        self.steps += 1
        return {n: new[n] for n in params} if names and ps else new  # in the order of params

    def _step_vector(self, params: Params, grads: Grads) -> Params:
        layout = params.layout
        p, g = params.vector, grads.vector
        cfg = self.config
        if cfg.clip_norm is not None:
            norm = math.sqrt(float(np.dot(g, g)))
            if norm > cfg.clip_norm:
                g = g * (cfg.clip_norm / norm)
        if cfg.weight_decay:
            g = g + cfg.weight_decay * p
        lr = cfg.lr * (cfg.schedule.factor(self.steps) if cfg.schedule else 1.0)
        t = self.steps + 1
        slots = self._slot_vectors(layout)
        if self.elementwise:
            value, new_slots = self.update(p, g, slots, lr, t)
            if type(self).update in _OWN_RESULTS and value.dtype == p.dtype:
                new, slots = value, {k: new_slots[k] for k in self.slots}  # new arrays: kept
            else:  # a user's rule may hand back its arguments or state: copied
                new = np.array(value, dtype=p.dtype)  # the network's float type, as given
                slots = {k: np.array(new_slots[k], dtype=p.dtype) for k in self.slots}
            if new.shape != p.shape or any(v.shape != p.shape for v in slots.values()):
                raise OptimizerError(
                    f"{type(self).__name__}.update is elementwise, but did not return "
                    f"vectors of the parameters' shape {p.shape}"
                )
        else:  # parameter by parameter, on views of the vectors
            new = np.empty_like(p)
            slots = {k: v.copy() for k, v in slots.items()}
            out = layout.views(new)
            slot_views = {k: layout.views(v) for k, v in slots.items()}
            pv, gv = layout.views(p), layout.views(g)
            for n in layout.names:
                i = layout.where[n]
                here = {k: np.asarray(layout.lookup(slots[k], slot_views[k], n))
                        for k in self.slots}
                value, upd = self.update(
                    np.asarray(layout.lookup(p, pv, n)), np.asarray(layout.lookup(g, gv, n)),
                    here, lr, t,
                )
                if i >= 0:
                    new[i] = value
                    for k in self.slots:
                        slots[k][i] = upd[k]
                else:
                    out[~i][...] = value
                    for k in self.slots:
                        slot_views[k][~i][...] = upd[k]
        self._vectors, self._state = (layout, slots), {}
        self.steps = t
        return Params(layout, new)

    def _slot_vectors(self, layout: Layout) -> dict[str, Array]:
        """This optimizer's state slots as vectors in ``layout`` (zeros where none yet)."""
        if self._vectors is not None and self._vectors[0].fingerprint == layout.fingerprint:
            return self._vectors[1]
        saved = self.state
        vectors = {}
        for k in self.slots:
            values = {n: slots[k] for n, slots in saved.items() if n in layout.where}
            for n, v in values.items():
                if np.shape(v) != layout.shapes[n]:
                    raise ShapeError(
                        f"optimizer state {k!r} of parameter {n!r} does not have its shape "
                        f"{layout.shapes[n]}"
                    )
            vectors[k] = layout.fill(np.zeros(layout.size, layout.dtype), values)
        return vectors

    def _scalar_batch(
        self, params: Mapping[str, Any], grads: Mapping[str, Any]
    ) -> tuple[dict[str, None], Array, Array, dict[str, Array]] | None:
        """Scalar parameters (numpy or Python floats), their gradients and state slots as
        vectors; ``None`` when anything is unusual (the parameter-by-parameter path then
        checks it and names the culprit) or there are too few to gain from it."""
        names = [n for n, v in params.items() if type(v) is np.float64 or type(v) is float]
        if len(names) < 2:
            return None
        get = itemgetter(*names)
        try:
            p, g = np.array(get(params)), np.array(get(grads))
            slots = {}
            if self.state:
                saved = list(map(self.state.get, names))
                for k in self.slots:
                    slots[k] = np.array([0.0 if d is None else d[k] for d in saved])
            else:
                slots = {k: np.zeros(len(names)) for k in self.slots}
        except (TypeError, ValueError, KeyError):
            return None
        if g.dtype != np.float64 or g.shape != p.shape or any(
            v.dtype != np.float64 or v.shape != p.shape for v in slots.values()
        ):
            return None
        return dict.fromkeys(names), p, g, slots

    def state_dict(self, layout: Layout | None = None) -> dict[str, Any]:
        """``{"name", "config", "step", "state": {param: {slot: array}}}``, copies throughout.

        With a ``layout`` (that of the :class:`~graphdiff.params.Params` it steps on),
        the state is ``"slots": {slot: vector}`` instead, each slot one vector in that
        layout (zeros for a parameter without state yet): what ``fit`` checkpoints.

        >>> opt = SGD(lr=0.1, momentum=0.9)
        >>> _ = opt.step({"w": np.float64(1.0)}, {"w": np.float64(2.0)})
        >>> sd = opt.state_dict()
        >>> sd["name"], sd["config"]["momentum"], sd["step"], sd["state"]
        ('sgd', 0.9, 1, {'w': {'velocity': array(2.)}})
        >>> opt.state_dict(Layout(["v", "w"], []))["slots"]
        {'velocity': array([0., 2.])}
        """
        out: dict[str, Any] = {
            "name": self.name,
            "config": self.config.model_dump(mode="json"),
            "step": self.steps,
        }
        if layout is not None:
            out["slots"] = {k: v.copy() for k, v in self._slot_vectors(layout).items()}
        else:
            out["state"] = {
                n: {s: np.array(v, dtype=np.float64) for s, v in slots.items()}
                for n, slots in self.state.items()
            }
        return out

    def load_state_dict(self, saved: Mapping[str, Any], layout: Layout | None = None) -> None:
        """Continue from a :meth:`state_dict`; refuses another optimizer or hyperparameters.

        A state of ``"slots"`` (vectors) needs their ``layout``; the vectors are copied
        as they are (their dtype kept).
        """
        if saved.get("name") != self.name:
            raise OptimizerError(
                f"the saved optimizer state is for {saved.get('name')!r}, not {self.name!r}"
            )
        mine = self.config.model_dump(mode="json")
        theirs = dict(saved.get("config") or {})
        differ = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
        if differ:
            details = ", ".join(
                f"{k}: saved {theirs.get(k)!r}, here {mine.get(k)!r}" for k in differ
            )
            raise OptimizerError(
                f"{self.name} hyperparameters differ from the saved ones ({details})"
            )
        step = saved.get("step")
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise OptimizerError(f"saved optimizer 'step' must be an int >= 0, got {step!r}")
        if saved.get("slots") is not None:
            self._load_slots(dict(saved["slots"]), layout)
            self.steps = step
            return
        state: dict[str, dict[str, Array]] = {}
        for n, slots in dict(saved.get("state") or {}).items():
            if set(slots) != set(self.slots):
                raise OptimizerError(
                    f"saved state of parameter {n!r} has slots {sorted(slots)}, "
                    f"{self.name} keeps {sorted(self.slots)}"
                )
            state[n] = {s: np.array(v, dtype=np.float64) for s, v in slots.items()}
        self.steps = step
        self.state = state

    def _load_slots(self, slots: dict[str, Any], layout: Layout | None) -> None:
        if layout is None:
            raise OptimizerError("the saved optimizer state holds vectors ('slots'): "
                                 "load_state_dict needs their layout")
        if set(slots) != set(self.slots):
            raise OptimizerError(
                f"the saved optimizer state has slots {sorted(slots)}, "
                f"{self.name} keeps {sorted(self.slots)}"
            )
        vectors = {}
        for k, v in slots.items():
            arr = np.array(v)
            if arr.dtype.kind != "f" or arr.shape != (layout.size,):
                raise OptimizerError(
                    f"saved optimizer slot {k!r} must be a float vector of the layout's "
                    f"{layout.size} numbers, got {arr.dtype} of shape {arr.shape}"
                )
            vectors[k] = arr
        self._vectors, self._state = (layout, vectors), {}


class SGDConfig(OptimizerConfig):
    """SGD's hyperparameters: ``momentum`` μ in [0, 1) and ``nesterov`` (needs μ > 0)."""

    momentum: float = Field(0.0, ge=0, lt=1)
    nesterov: bool = False

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> SGDConfig:
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        return self


class SGD(Optimizer):
    """Gradient descent, θ ← θ − γ·v, with velocity v ← μ·v + g (v = g when μ = 0).

    With ``nesterov=True`` the step uses g + μ·v instead of v. This is the
    "γ outside the velocity" form, so a schedule rescales the whole step.

    >>> opt = SGD(lr=0.1)
    >>> opt.step({"w": np.array([1.0, -1.0])}, {"w": np.array([0.5, 2.0])})
    {'w': array([ 0.95, -1.2 ])}
    """

    name = "sgd"
    Config = SGDConfig
    config: SGDConfig
    slots = ("velocity",)
    elementwise = True

    def update(
        self, p: Array, g: Array, state: dict[str, Array], lr: float, t: int
    ) -> tuple[Array, dict[str, Array]]:
        mu = self.config.momentum
        v = mu * state["velocity"] + g
        direction = g + mu * v if self.config.nesterov else v
        return p - lr * direction, {"velocity": v}


class AdamConfig(OptimizerConfig):
    """Adam's hyperparameters: ``lr`` (default 1e-3), ``beta1``, ``beta2`` in [0, 1), ``eps``."""

    lr: float = Field(1e-3, gt=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    eps: float = Field(1e-8, gt=0)


class Adam(Optimizer):
    """Adam (Kingma & Ba): moment estimates m, v with bias correction.

    m ← β1·m + (1 − β1)·g, v ← β2·v + (1 − β2)·g², then
    θ ← θ − γ·m̂ / (√v̂ + ε) with m̂ = m/(1 − β1^t), v̂ = v/(1 − β2^t).

    >>> opt = Adam(lr=0.1)
    >>> opt.step({"w": np.array([1.0, 1.0])}, {"w": np.array([4.0, -0.5])})  # first step: ±γ
    {'w': array([0.9, 1.1])}
    """

    name = "adam"
    Config = AdamConfig
    config: AdamConfig
    slots = ("m", "v")
    elementwise = True

    def update(
        self, p: Array, g: Array, state: dict[str, Array], lr: float, t: int
    ) -> tuple[Array, dict[str, Array]]:
        c = self.config
        # the formulas above, operation for operation, the sums and products in place
        # on this call's own temporaries (half as many arrays as written out)
        m = c.beta1 * state["m"]
        m += (1 - c.beta1) * g
        v = c.beta2 * state["v"]
        g2 = (1 - c.beta2) * g
        g2 *= g
        v += g2
        step = m / (1 - c.beta1**t)  # m_hat
        v_hat = v / (1 - c.beta2**t)
        denom = np.sqrt(v_hat)
        denom += c.eps
        step *= lr
        step /= denom
        return p - step, {"m": m, "v": v}


# the update rules that return new arrays of their own, never an argument or a state
# array: Optimizer.step keeps what they return without copying it
_OWN_RESULTS = frozenset({SGD.update, Adam.update})
