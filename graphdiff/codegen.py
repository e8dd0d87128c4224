"""Write a plan as straight-line numpy code: the engine's fast path.

The plan, fused into levels by :mod:`graphdiff.fusion`, is turned once, at compile
time, into one Python function whose body is exactly the numpy calls the network
needs, every decision (order, which deltas are worth computing, where a gradient
goes, when a value can be released) taken in advance. :mod:`graphdiff.program`
runs it; ``deltas=True`` and ``check_finite=True`` are variants of the same code
(every delta kept, each value and delta checked), so they give the same bits. The
interpreter (``Network.interpret``) is the readable reference.

Security: the generated source contains only identifiers made from integers and
fixed names; node names, parameter names, ops and constants live in the
namespace the code runs in. Nothing from a graph or a file is ever pasted into
source text.
"""

from __future__ import annotations

import re
from functools import lru_cache, partial
from typing import Any

import numpy as np

from .fusion import Group, Level, fuse
from .plan import (
    ConstStep,
    InputStep,
    NeuronStep,
    OpStep,
    ParamStep,
    Step,
    activation_delta,
    all_finite,
    check_delta,
    check_grads,
    check_loss,
    check_loss_shapes,
    check_loss_value,
    check_operand,
    check_value,
    fit_gradient,
    numeric,
    zeros_like,
)
from .registry import Op, identity, identity_vjp

__all__ = ["MAX_UNFUSED_STEPS", "CodeGen"]

Array = np.ndarray

# Larger plans (outside levels) keep the interpreter; see generate().
MAX_UNFUSED_STEPS = 5000

_F64 = np.dtype(np.float64)

RELEASABLE = re.compile(r"\b((?:v|z|V|Z|A|W|WE|d|DV)\d+)\b")


@lru_cache(maxsize=64)
def _seed(n: int, value: float, dtype: np.dtype[Any] = _F64) -> Array:
    """dE/d(loss values), 1/N each for the mean: one number broadcast over the batch
    (read-only, stride 0, like the placeholders), so no array of N is filled per call."""
    return np.broadcast_to(dtype.type(value), (n,))


@lru_cache(maxsize=4)
def _float_names(dtype: np.dtype[Any]) -> dict[str, Any]:
    """The generated code's names that make or check floats, for a network of ``dtype``:
    float64's are the plain functions, another float type's have it bound (a float64
    number or array anywhere in a float32 network would promote what it touches)."""
    if dtype == np.float64:
        return {
            "_zeros": np.zeros, "_seed": _seed, "_FT": np.float64, "_FTd": dtype,
            "_num": numeric, "_fit": fit_gradient, "_dz": activation_delta, "_ph": zeros_like,
            "_ZERO": np.float64(0.0),
        }
    return {
        "_zeros": partial(np.zeros, dtype=dtype), "_seed": partial(_seed, dtype=dtype),
        "_FT": dtype.type, "_FTd": dtype, "_num": partial(numeric, dtype=dtype),
        "_fit": partial(fit_gradient, dtype=dtype), "_dz": partial(activation_delta, dtype=dtype),
        "_ph": partial(zeros_like, dtype=dtype), "_ZERO": dtype.type(0.0),
    }


def _passes(op: Op, attrs: dict[str, Any]) -> bool:
    """Is ``op`` the identity (its value is its operand, its delta passes through)?"""
    return op.forward is identity and op.vjp is identity_vjp and not attrs


def _reads(op: Op, position: str | int) -> bool:
    """Does ``op``'s vjp read its output (``"out"``) or operand ``position``?"""
    return op.saves is None or position in op.saves


class CodeGen:
    """Writes the source of one variant of a plan's backward (or error) function."""

    def __init__(
        self,
        steps: list[Step],
        scalar_names: list[str],
        tensor_names: list[str],
        loss_slot: int,
        reduction: str,
        needs: list[bool],
        deltas: bool = False,
        check: bool = False,
        dtype: Any = np.float64,
    ) -> None:
        self.steps = steps  # numbered 0, 1, ... in order: steps[slot] is that slot's step
        assert not steps or steps[-1].slot == len(steps) - 1
        self.sidx = dict(zip(scalar_names, range(len(scalar_names)), strict=True))
        self.tidx = {n: i for i, n in enumerate(tensor_names)}
        self.loss_slot = loss_slot
        self.reduction = reduction
        self.needs = needs
        # deltas: every node's delta (not only those a parameter needs), and every value,
        # z and dE/dz kept for the caller; check: each value and delta checked finite.
        # Neither changes an operation on the way to the loss and the gradients.
        self.deltas, self.check = deltas, check
        self.want = [True] * len(steps) if deltas else needs
        self.ns: dict[str, Any] = {
            "_np": np,
            "_sum": np.add.reduce,
            "_ones": np.ones,
            "_cat": np.concatenate,
            "_arr": np.array,
            "_reduceat": np.add.reduceat,
            "_addat": np.add.at,
            "_einsum": np.einsum,
            "_dot": np.dot,
            "_zeros_like": np.zeros_like,
            "_fromiter": np.fromiter,
            "_vector": check_operand,
            "_grads_of": check_grads,
            "_nd": np.ndarray,
            "_check_loss": check_loss,
            "_cv": check_value,
            "_cd": check_delta,
            "_cl": check_loss_value,
            "_fin": all_finite,
            "_steps": steps,
            **_float_names(np.dtype(dtype)),
        }
        f = self.fusion = fuse(steps, self.sidx)
        self.neurons, self.neuron_args, self.levels, self.order = (
            f.neurons, f.neuron_args, f.levels, f.order)
        self.lvl, self.row, self.row_key = f.lvl, f.row, f.row_key
        self.level_arr, self.row_arr = f.level_arr, f.row_arr
        self.weight_index, self.weight_uses, self.level_of = (
            f.weight_index, f.weight_uses, f.level_of)
        neurons = f.neurons
        _, flat, owner = f.neuron_args
        self._bound_groups: dict[int, list[Group]] = {}
        # the first neuron each non-neuron value feeds (named by shape checks)
        self.plain = [s for s in steps if not isinstance(s, NeuronStep)]
        is_plain = np.zeros(len(steps), dtype=bool)
        is_plain[[s.slot for s in self.plain]] = True
        self._per_point: dict[int, bool] = {}
        self.first_neuron: dict[int, NeuronStep] = {}
        hits = np.flatnonzero(is_plain[flat])
        for a, o in zip(flat[hits].tolist(), owner[hits].tolist(), strict=True):
            self.first_neuron.setdefault(a, neurons[o])
        self._forward: list[str] | None = None
        self._plan_reads()

    # -- planning -----------------------------------------------------------------

    def _plan_reads(self) -> None:
        """Which forward values the backward code reads; the rest die in the forward pass.

        Ops declare what their vjp reads (``Op.saves``); values read by no vjp are
        released right after their last use in the forward code, and the vjps get
        read-only zeros of the right shape in their place. ``self.kept`` holds the
        generated names backward reads; ``self.last_use`` the forward item after
        which each released op value dies.
        """
        kept: set[str] = set()
        for item in self.order:
            if isinstance(item, Level):
                act = item.members[0].act
                assert act is not None
                kept.update({f"A{item.index}", f"W{item.index}", f"WE{item.index}"})
                if _reads(act, "out"):
                    kept.add(f"V{item.index}")
                if _reads(act, 0):
                    kept.add(f"Z{item.index}")
            elif isinstance(item, NeuronStep):
                assert item.act is not None
                kept.update(self.val(a) for a in item.args)
                if _reads(item.act, "out"):
                    kept.add(self.val(item.slot))
                if _reads(item.act, 0):
                    kept.add(f"z{item.slot}")
            elif isinstance(item, OpStep):
                assert item.op is not None
                if _reads(item.op, "out"):
                    kept.add(f"v{item.slot}")
                kept.update(self.val(a) for j, a in enumerate(item.args) if _reads(item.op, j))
            else:
                kept.add(self.val(item.slot))  # inputs, params, consts: the caller's anyway
        kept.add(self.val(self.loss_slot))
        self.kept = kept
        # values released early: op outputs that no vjp reads, after their last forward use
        self.last_use: dict[int, list[int]] = {}
        position: dict[int, int] = {}
        is_op = np.zeros(len(self.steps), dtype=bool)
        is_op[[s.slot for s in self.steps if isinstance(s, OpStep)]] = True
        for n, item in enumerate(self.order):
            if isinstance(item, Level):
                position.update(dict.fromkeys(item.args[is_op[item.args]].tolist(), n))
            else:
                position.update(dict.fromkeys(item.args, n))
        for s in self.steps:
            if isinstance(s, OpStep) and f"v{s.slot}" not in kept and s.slot in position:
                self.last_use.setdefault(position[s.slot], []).append(s.slot)

    def released(self, slot: int) -> bool:
        """Is this an op's output that the forward code releases (no vjp reads it)?"""
        return isinstance(self.steps[slot], OpStep) and f"v{slot}" not in self.kept

    def arg(self, slot: int) -> str:
        """A value as a backward argument: itself, or zeros of its shape once released."""
        return f"_ph(sh{slot})" if self.released(slot) else self.val(slot)

    def shape(self, slot: int) -> str:
        return f"sh{slot}" if self.released(slot) else f"{self.val(slot)}.shape"

    def _groups(self, lv: Level) -> list[Group]:
        """:meth:`Fusion.groups`, index arrays bound in the namespace as ``_R<b>_<blk>``."""
        out = self._bound_groups.get(lv.index)
        if out is None:
            out = self._bound_groups[lv.index] = [
                (blk, sel if isinstance(sel, str)
                 else self.bind(sel, f"R{lv.index}_", -1 if blk is None else blk), j0, j1)
                for blk, sel, j0, j1 in self.fusion.groups(lv)
            ]
        return out

    def bind(self, value: Any, prefix: str, i: int | str) -> str:
        """``value`` in the namespace as ``_<prefix><i>`` (``i``: a slot, or ``L<b>`` for
        level b), the name the code uses."""
        name = f"_{prefix}{i}"
        self.ns[name] = value
        return name

    def val(self, slot: int) -> str:
        """Expression for a node's value."""
        lv = self.level_of(slot)
        return f"V{lv[0]}[{lv[1]}]" if lv else f"v{slot}"

    # -- forward ------------------------------------------------------------------

    def forward_lines(self) -> list[str]:
        if self._forward is not None:  # shared by the backward and error functions
            return self._forward
        out: list[str] = []
        for n, item in enumerate(self.order):
            if isinstance(item, Level):
                out += self._level_forward(item)
                if self.check:
                    out.append(f"if not _fin(V{item.index}):")
                    for m in item.members:  # the first member in slot order is named
                        out.append(f"    _cv(V{item.index}[{self.row[m.slot]}], _steps[{m.slot}])")
            else:
                out += self._step_forward(item)
                if self.check and not isinstance(item, InputStep):
                    out.append(f"_cv(v{item.slot}, _steps[{item.slot}])")
                if isinstance(item, OpStep) and self.released(item.slot):
                    out.append(f"sh{item.slot} = v{item.slot}.shape")
            dead = self.last_use.get(n)
            if dead:
                out.append(f"del {', '.join(f'v{a}' for a in dead)}")
        self._forward = out
        return out

    def _step_forward(self, s: Step) -> list[str]:
        i = s.slot
        if isinstance(s, InputStep):
            return []  # placed by the prologue
        if isinstance(s, ConstStep):
            return [f"v{i} = {self.bind(s.value, 'C', i)}"]
        if isinstance(s, ParamStep):
            return [f"v{i} = T{self.tidx[s.name]}"]
        if isinstance(s, OpStep):
            assert s.op is not None
            fwd = self.bind(partial(s.op.forward, **s.attrs) if s.attrs else s.op.forward, "F", i)
            args = ", ".join(self.val(a) for a in s.args)
            lines = []
            if s.op.loss:
                chk = self.bind(partial(check_loss_shapes, s), "K", i)
                pred, target = (f"{self.val(a)}.shape" for a in s.args)
                call = f"{chk}({pred}, {target})"
                custom = s.op.check_shapes is not None
                lines += [call] if custom else [f"if {pred} != {target}:", f"    {call}"]
            out = [f"v{i} = {fwd}({args})", *self._numeric(f"v{i}", s.op, s)]
            return [*lines, *out, *self._vector_check(i)]
        assert isinstance(s, NeuronStep) and s.act is not None
        terms = []
        for a, w in zip(s.args, s.weights, strict=True):
            terms.append(f"{self.val(a)} * S{self.sidx[w]}")
        if s.bias is not None:
            terms.append(f"S{self.sidx[s.bias]}")
        if _passes(s.act, s.act_attrs):
            return [f"z{i} = {' + '.join(terms)}", f"v{i} = z{i}"]
        act = partial(s.act.forward, **s.act_attrs) if s.act_attrs else s.act.forward
        lines = [f"z{i} = {' + '.join(terms)}", f"v{i} = {self.bind(act, 'G', i)}(z{i})"]
        lines += self._numeric(f"v{i}", s.act, s)
        return lines if f"z{i}" in self.kept else [*lines, f"del z{i}"]

    def _numeric(self, var: str, op: Op, s: Step) -> list[str]:
        """What an op's forward returned, by the rule both paths share (plan.numeric)."""
        name, node = self.bind(op.name, "O", s.slot), self.bind(s.node, "N", s.slot)
        return [
            f"if type({var}) is not _nd or {var}.dtype is not _FTd:",
            f"    {var} = _num({var}, {name}, {node}, 'forward')",
        ]

    def _vector_check(self, slot: int) -> list[str]:
        """Check once, where it is made, that a value feeding neurons is one per point."""
        user = self.first_neuron.get(slot)
        if user is None:
            return []
        node = self.bind(self.steps[slot].node, "N", slot)
        first = self.bind(user.node, "N", user.slot)
        return [f"if v{slot}.ndim != 1:", f"    _vector(v{slot}, {node}, {first})"]

    def _level_forward(self, lv: Level) -> list[str]:
        b = lv.index
        k, m = len(lv.members), len(lv.sources)
        groups = self._groups(lv)
        pieces = []
        for blk, sel, _, _ in groups:
            if blk is None:
                pieces.append(f"{self.val(int(sel))}[None]")
            elif len(groups) == 1 and sel == f"0:{len(self.levels[blk].members)}":
                pieces.append(f"V{blk}")  # the whole previous level, in order: no copy
            else:
                pieces.append(f"V{blk}[{sel}]")
        if len(pieces) > 1 and all(blk is None for blk, _, _, _ in groups):
            # only single values (of shape (N,), checked where they are made): one array
            # of them, as _cat of their rows makes it, in one call and without k views
            gather = f"_arr(({''.join(self.val(int(sel)) + ', ' for _, sel, _, _ in groups)}))"
        else:
            gather = pieces[0] if len(pieces) == 1 else f"_cat(({', '.join(pieces)},))"
        lines = [f"A{b} = {gather}"]
        keys = self.row_key[lv.sources]  # ascending: sources are sorted by it
        ti = np.repeat(np.arange(k, dtype=np.intp), lv.lens)
        si = np.searchsorted(keys, self.row_key[lv.args]).astype(np.intp)
        pi = self.weight_index()[lv.edges]
        self.ns[f"_TI{b}"], self.ns[f"_SI{b}"], self.ns[f"_PI{b}"] = ti, si, pi
        if lv.dense:
            cells = ti * m + si
            pairs_unique = np.unique(cells).size == ti.size
            if pairs_unique and ti.size == k * m:
                # every (target, source) pair once: W is one gather of the parameters
                pw = np.empty(k * m, dtype=np.intp)
                pw[cells] = pi
                self.ns[f"_PW{b}"] = pw.reshape(k, m)
                lines += [f"W{b} = PV[_PW{b}]", f"Z{b} = W{b} @ A{b}"]
            else:
                put = (
                    f"W{b}[_TI{b}, _SI{b}] = PV[_PI{b}]"
                    if pairs_unique
                    else f"_addat(W{b}, (_TI{b}, _SI{b}), PV[_PI{b}])"
                )
                lines += [f"W{b} = _zeros(({k}, {m}))", put, f"Z{b} = W{b} @ A{b}"]
        else:
            # edges are in target order, so each target's edges are one segment
            starts = np.flatnonzero(np.r_[True, ti[1:] != ti[:-1]])
            self.ns[f"_TS{b}"] = starts
            lines += [
                f"WE{b} = PV[_PI{b}]",
                f"Z{b} = _reduceat(A{b}[_SI{b}] * WE{b}[:, None], _TS{b}, axis=0)",
            ]
        with_bias = [(row, self.sidx[mem.bias]) for row, mem in enumerate(lv.members) if mem.bias]
        if with_bias:
            self.ns[f"_BI{b}"] = np.array([p for _, p in with_bias], dtype=np.intp)
            if len(with_bias) == k:
                lines.append(f"Z{b} += PV[_BI{b}][:, None]")
            else:
                self.ns[f"_BR{b}"] = np.array([r for r, _ in with_bias], dtype=np.intp)
                lines.append(f"Z{b}[_BR{b}] += PV[_BI{b}][:, None]")
        act = lv.members[0].act
        assert act is not None
        attrs = lv.members[0].act_attrs
        if _passes(act, attrs):
            lines.append(f"V{b} = Z{b}")
            return lines
        fwd = partial(act.forward, **attrs) if attrs else act.forward
        lines.append(f"V{b} = {self.bind(fwd, 'G', f'L{b}')}(Z{b})")
        lines += self._numeric(f"V{b}", act, lv.members[0])
        if f"Z{b}" not in self.kept:
            lines.append(f"del Z{b}")
        return lines

    # -- backward -----------------------------------------------------------------

    def backward_blocks(self) -> list[list[str]]:
        self.allocated: set[int] = set()
        self.pre: list[str] = []
        self.dstate: dict[int, str] = {self.loss_slot: "sure"}
        self.gstate: dict[int, str] = {}
        self.maybe_vars: set[str] = set()
        self.scale: dict[int, str] = {}
        # how many times each value is an operand (each use adds to its delta)
        self.uses = np.bincount(self.neuron_args[1], minlength=len(self.steps))
        for s in self.plain:
            np.add.at(self.uses, list(s.args), 1)
        blocks: list[list[str]] = []
        lv0 = self.level_of(self.loss_slot)
        seed = "_seed(N, 1.0 / N)" if self.reduction == "mean" else "_seed(N, 1.0)"
        if lv0:
            self.allocated.add(lv0[0])
            b, row = lv0
            blocks.append([f"DV{b} = _zeros_like(V{b})", f"DV{b}[{row}] = {seed}"])
        else:
            blocks.append([f"d{self.loss_slot} = {seed}"])
        for item in reversed(self.order):
            self.pre = []
            if isinstance(item, Level):
                lines = self._level_backward(item)
            else:
                lines = self._step_backward(item)
            blocks.append(self.pre + lines)
        return blocks

    def add_to(self, slot: int, expr: str, maybe: bool = False) -> list[str]:
        """Lines adding ``expr`` to the delta of ``slot``.

        Whether a delta certainly exists ("sure"), certainly not yet ("none") or
        depends on a run-time ``None`` from some vjp ("maybe") is tracked here, at
        generation time, so the common cases need no ``None`` tests at run time.
        ``maybe`` says this contribution itself sits under such a test.
        """
        if not self.want[slot]:
            return []
        lv = self.level_of(slot)
        if lv is not None:
            self._alloc(lv[0])
            return [f"DV{lv[0]}[{lv[1]}] += {expr}"]
        return self._accumulate(self.dstate, f"d{slot}", slot, expr, maybe)

    def _accumulate(
        self, states: dict[int, str], var: str, key: int, expr: str, maybe: bool
    ) -> list[str]:
        state = states.get(key, "none")
        if state != "sure" and maybe:
            self.maybe_vars.add(var)  # may stay unset at run time: starts as None
        if state == "sure":
            # never in place: the old array may also be another slot's delta
            line = f"{var} = {var} + {expr}"
        elif state == "none":
            line = f"{var} = {expr}"
        else:
            line = f"{var} = {expr} if {var} is None else {var} + {expr}"
        states[key] = "maybe" if maybe and state != "sure" else "sure"
        return [line]

    def _guarded(self, slot: int, body: list[str]) -> list[str]:
        state = self.dstate.get(slot, "none")
        if state == "none" or not body:
            return []  # no delta ever reaches this node, or nothing to do with it
        if state == "sure":
            return body
        return [f"if d{slot} is not None:", *("    " + ln for ln in body)]

    def _checked(self, slot: int) -> list[str]:
        """With ``check``: the line checking this node's delta (which may stand for a
        number times ``d<slot>``, see ``_deferred``) before its backward rule runs."""
        if not self.check:
            return []
        c = self.scale.get(slot)
        delta = f"{c} * d{slot}" if c else f"d{slot}"
        return [f"_cd({delta}, _steps[{slot}])"]

    def _alloc(self, b: int) -> None:
        """Make DV<b>, level b's delta, at its first contribution: at the top of the
        current block (never inside an `if`), so deltas exist only once needed."""
        if b not in self.allocated:
            self.allocated.add(b)
            self.pre.append(f"DV{b} = _zeros_like(V{b})")

    def _step_backward(self, s: Step) -> list[str]:
        i = s.slot
        if isinstance(s, (InputStep, ConstStep)):
            return self._guarded(i, self._checked(i))
        if isinstance(s, ParamStep):
            return self._guarded(i, [*self._checked(i), f"GT{self.tidx[s.name]} = d{i}"])
        if isinstance(s, OpStep):
            assert s.op is not None
            wanted = [j for j, a in enumerate(s.args) if self.want[a]]
            if not wanted:
                return self._guarded(i, self._checked(i))
            needed = sum(self.needs[a] for a in s.args)
            name, node = self.bind(s.op.name, "O", i), self.bind(s.node, "N", i)
            args = ", ".join(self.arg(a) for a in s.args)
            out = f"_ph(d{i}.shape)" if self.released(i) else f"v{i}"
            parts = s.op.vjps is not None and needed < len(s.args)
            if parts:  # only the gradients something needs
                body = self._checked(i)
            else:
                vjp = self.bind(partial(s.op.vjp, **s.attrs) if s.attrs else s.op.vjp, "B", i)
                body = [
                    *self._checked(i),
                    f"gs = {vjp}(d{i}, {out}, {args})",
                    f"if type(gs) is not tuple or len(gs) != {len(s.args)}:",
                    f"    gs = _grads_of(gs, {len(s.args)}, {name}, {node})",
                ]
            for j in wanted:
                a, shape = s.args[j], self.shape(s.args[j])
                if parts:
                    assert s.op.vjps is not None
                    fn = partial(s.op.vjps[j], **s.attrs) if s.attrs else s.op.vjps[j]
                    grad = f"{self.bind(fn, f'P{j}_', i)}(d{i}, {out}, {args})"
                else:
                    grad = f"gs[{j}]"
                # None from a vjp means a zero gradient; _fit makes it one, so the
                # delta downstream certainly exists and needs no run-time tests.
                body += [
                    f"t = {grad}",
                    f"if type(t) is not _nd or t.dtype is not _FTd or t.shape != {shape}:",
                    f"    t = _fit(t, {shape}, {name}, {node})",
                ]
                body += self.add_to(a, "t", maybe=self.dstate.get(i) == "maybe")
            return self._guarded(i, body)
        assert isinstance(s, NeuronStep) and s.act is not None
        attrs = s.act_attrs
        maybe = self.dstate.get(i) == "maybe"
        # d<i> may stand for c * d<i> with a number c (see _deferred): so then does dz
        c = self.scale.get(i)
        kept_a, kept_z = f"v{i}" in self.kept, f"z{i}" in self.kept
        if _passes(s.act, attrs) or (kept_a and kept_z):
            a_i, z_i = f"v{i}", f"z{i}"
        else:  # zeros in place of what the activation does not read
            zeros = "ZN" if self.per_point(i) else f"_ph(d{i}.shape)"
            a_i, z_i = f"v{i}" if kept_a else zeros, f"z{i}" if kept_z else zeros
        body = [*self._checked(i), self._delta_z("dz", f"d{i}", s.act, attrs, z_i, a_i, s)]
        if self.deltas:
            body.append(f"xz{i} = dz")
        times = f"{c} * " if c else ""
        for a, w in zip(s.args, s.weights, strict=True):
            p = self.sidx[w]
            grad = f"{times}_dot(dz, {self.val(a)})"
            body += self._accumulate(self.gstate, f"g{p}", p, grad, maybe)
            factor = f"{c} * S{p}" if c else f"S{p}"
            if not maybe and self._deferred(a):
                # a's only delta is dz times a number: keep the number apart, so
                # that no array is scaled here (a's backward folds it in later)
                if c:
                    body.append(f"c{a} = {factor}")
                self.scale[a] = f"c{a}" if c else factor
                body += self.add_to(a, "dz")
            else:
                body += self.add_to(a, f"dz * ({factor})" if c else f"dz * {factor}", maybe=maybe)
        if s.bias is not None:
            p = self.sidx[s.bias]
            body += self._accumulate(self.gstate, f"g{p}", p, f"{times}dz.sum()", maybe)
        return self._guarded(i, body)

    def _deferred(self, a: int) -> bool:
        """Can ``d<a>`` be kept as an unscaled array and a number? Yes when ``a`` is a
        neuron of its own (not in a level) whose delta comes from this one use alone,
        and whose activation's dE/dz is linear in its delta (g' or passing through)."""
        s = self.steps[a]
        return (
            isinstance(s, NeuronStep) and self.lvl[a] < 0 and self.uses[a] == 1
            and self.needs[a] and s.act is not None
            and (_passes(s.act, s.act_attrs) or s.act.derivative is not None)
        )

    def per_point(self, slot: int) -> bool:
        """Is this neuron's value certainly of shape (N,)? Yes when each operand is an
        input (checked one value per point where it feeds a neuron) or such a neuron."""
        memo, stack = self._per_point, [slot]
        while stack:
            x = stack[-1]
            if x in memo:
                stack.pop()
                continue
            s = self.steps[x]
            if not isinstance(s, NeuronStep):
                memo[x] = isinstance(s, InputStep)
                stack.pop()
                continue
            pending = [a for a in s.args if a not in memo]
            if pending:
                stack += pending
            else:
                memo[x] = all(memo[a] for a in s.args)
                stack.pop()
        return memo[slot]

    def _delta_z(
        self, out: str, delta: str, act: Op, attrs: dict[str, Any], z: str, a: str,
        at: NeuronStep | Level, owned: bool = False,
    ) -> str:
        """``out = dE/dz``: delta · g'(z) when the activation gives g', else its vjp, for
        ``at``, a neuron or a level (its functions bound as ``_D<slot>`` / ``_DL<b>``).
        An ``owned`` delta is this call's own array, dead after this: scaled in place."""
        i: int | str = f"L{at.index}" if isinstance(at, Level) else at.slot
        if _passes(act, attrs):
            return f"{out} = {delta}"
        if act.derivative is not None:
            df = self.bind(partial(act.derivative, **attrs) if attrs else act.derivative, "D", i)
            if owned:
                return f"{delta} *= {df}({z}, {a}); {out} = {delta}"
            return f"{out} = {delta} * {df}({z}, {a})"
        vjp = self.bind(partial(act.vjp, **attrs) if attrs else act.vjp, "H", i)
        node = self.bind(at.members[0].node if isinstance(at, Level) else at.node, "N", i)
        name = self.bind(act.name, "O", i)
        return f"{out} = _dz({vjp}({delta}, {a}, {z})[0], {name}, {node})"

    def _level_backward(self, lv: Level) -> list[str]:
        b = lv.index
        if b not in self.allocated:
            return []  # nothing downstream sent a delta
        act = lv.members[0].act
        assert act is not None
        attrs = lv.members[0].act_attrs
        v_b = f"V{b}" if f"V{b}" in self.kept else f"_ph(DV{b}.shape)"
        z_b = f"Z{b}" if f"Z{b}" in self.kept else f"_ph(DV{b}.shape)"
        # DV<b> is made here (zeros, or rows of a product): never an input's or a vjp's
        lines = []
        if self.check:
            lines.append(f"if not _fin(DV{b}):")
            for m in reversed(lv.members):  # the last member in slot order comes first
                lines.append(f"    _cd(DV{b}[{self.row[m.slot]}], _steps[{m.slot}])")
        # deltas=True keeps DV<b>: the same product, not in place
        owned = not self.deltas
        lines.append(self._delta_z("DZ", f"DV{b}", act, attrs, z_b, v_b, lv, owned=owned))
        if self.deltas:
            lines.append(f"XZ{b} = DZ")
        pi = self.ns[f"_PI{b}"]
        # no weight twice in the level: certain when none is used twice at all
        unique = self.weight_uses()[pi].max() <= 1 or np.unique(pi).size == pi.size
        if f"_PW{b}" in self.ns:  # a full block: its gradient scatters the same way
            index = f"_PW{b}"
            lines.append(f"GE = DZ @ A{b}.T")
        elif lv.dense:
            index = f"_PI{b}"
            lines.append(f"GE = (DZ @ A{b}.T)[_TI{b}, _SI{b}]")
        else:
            index = f"_PI{b}"
            lines.append(f"GE = _einsum('ij,ij->i', DZ[_TI{b}], A{b}[_SI{b}])")
        lines.append(f"GS[{index}] += GE" if unique else f"_addat(GS, {index}, GE)")
        if f"_BI{b}" in self.ns:
            bi = self.ns[f"_BI{b}"]
            rows = f"[_BR{b}]" if f"_BR{b}" in self.ns else ""
            gb = f"DZ.sum(axis=1){rows}"
            uniq = np.unique(bi).size == bi.size
            lines.append(f"GS[_BI{b}] += {gb}" if uniq else f"_addat(GS, _BI{b}, {gb})")
        if any(self.want[a] for a in lv.sources):
            if lv.dense:
                lines.append(f"DA = W{b}.T @ DZ")
            else:
                si = self.ns[f"_SI{b}"]
                perm = np.argsort(si, kind="stable")
                sorted_si = si[perm]
                self.ns[f"_SP{b}"] = perm
                self.ns[f"_SS{b}"] = np.flatnonzero(np.r_[True, sorted_si[1:] != sorted_si[:-1]])
                lines.append(
                    f"DA = _reduceat((DZ[_TI{b}] * WE{b}[:, None])[_SP{b}], _SS{b}, axis=0)"
                )
            for blk, sel, j0, j1 in self._groups(lv):
                if blk is None:
                    lines += self.add_to(int(sel), f"DA[{j0}]")
                    continue
                if not any(map(self.want.__getitem__, lv.sources[j0:j1])):
                    continue  # no parameter reaches these rows
                if sel == f"0:{len(self.levels[blk].members)}" and blk not in self.allocated:
                    self.allocated.add(blk)  # DA is this call's own array: adopt its rows
                    lines.append(f"DV{blk} = DA[{j0}:{j1}]")
                else:
                    # rows are distinct within a level, so a fancy-index += is exact
                    self._alloc(blk)
                    lines.append(f"DV{blk}[{sel}] += DA[{j0}:{j1}]")
        return lines

    # -- assembly -----------------------------------------------------------------

    def source(self, with_backward: bool, loss_terms: bool = False) -> str:
        inputs = [s for s in self.steps if isinstance(s, InputStep)]
        fwd = self.forward_lines()
        blocks = self.backward_blocks() if with_backward else []
        text = "\n".join(fwd + [ln for blk in blocks for ln in blk])
        pro = [f"v{s.slot} = X[{j}]" for j, s in enumerate(inputs)]
        pro += [ln for s in inputs for ln in self._vector_check(s.slot)]
        pro += [f"S{j} = P[{j}]" for j in _ids("S", text)]
        pro += [f"T{j} = Q[{j}]" for j in _ids("T", text)]
        if re.search(r"\bZN\b", text):
            pro.append("ZN = _ph((N,))")
        if self.levels:
            pro.append("PV = P")
        body = pro + fwd
        loss = self.val(self.loss_slot)
        node = self.bind(self.steps[self.loss_slot].node, "N", self.loss_slot)
        body += [
            f"L = {loss}",
            "if L.shape != (N,):",
            f"    _check_loss({node}, L.shape, N)",
            # np.add.reduce is what L.mean()/L.sum() run, without their Python wrappers
            f"E = _sum(L){' / N' if self.reduction == 'mean' else ''}",
        ]
        if self.check:
            body.append(f"_cl(E, {node})")
        if loss_terms:
            operands = "".join(f"{self.val(a)}, " for a in self.steps[self.loss_slot].args)
            return _function("terms", [*body, f"return E, L, ({operands})"])
        if not with_backward:
            return _function("error", [*body, "return E"])
        body += [f"{var} = None" for var in sorted(self.maybe_vars)]
        if self.levels:
            body.append(f"GS = _zeros({len(self.sidx)})")
        body += [f"GT{j} = None" for j in range(len(self.tidx))]
        body += _with_releases(blocks)
        # scalar gradients summed neuron by neuron live in g<p>; levels add into GS
        if self.levels:
            for p, state in sorted(self.gstate.items()):
                add = f"GS[{p}] += g{p}"
                body += [add] if state == "sure" else [f"if g{p} is not None:", f"    {add}"]
        else:
            terms = []
            for p in range(len(self.sidx)):
                state = self.gstate.get(p, "none")
                terms.append(
                    f"g{p}" if state == "sure" else "_ZERO" if state == "none"
                    else f"(_ZERO if g{p} is None else g{p})"
                )
            body.append(f"GS = _fromiter(({''.join(t + ', ' for t in terms)}), _FT, {len(terms)})")
        grads_t = ", ".join(f"GT{j}" for j in range(len(self.tidx)))
        if self.deltas:  # every value and delta stays alive, for the caller to read
            body = [ln for ln in body if not ln.startswith("del ")]
            body += [f"xc{i} = {c}" for i, c in sorted(self.scale.items())]
        extra = ", locals()" if self.deltas else ""
        body.append(f"return E, GS, ({grads_t}{',' if len(self.tidx) == 1 else ''}){extra}")
        return _function("backward", body)


def _ids(prefix: str, text: str) -> list[int]:
    """The numbers of the generated names ``<prefix><n>`` used in ``text``."""
    return sorted({int(x) for x in re.findall(rf"\b{prefix}(\d+)\b", text)})


def _function(name: str, body: list[str]) -> str:
    return f"def {name}(P, Q, X, N):\n" + "".join(f"    {ln}\n" for ln in body)


def _with_releases(blocks: list[list[str]]) -> list[str]:
    """Append ``del`` after the last use of each value, so memory falls during backward."""
    last: dict[str, int] = {}
    for bi, blk in enumerate(blocks):
        for ln in blk:
            for name in RELEASABLE.findall(ln):
                last[name] = bi
    dies: dict[int, list[str]] = {}
    for name, bi in last.items():
        dies.setdefault(bi, []).append(name)
    out: list[str] = []
    for bi, blk in enumerate(blocks):
        out += blk
        if bi in dies and bi < len(blocks) - 1:
            out.append(f"del {', '.join(sorted(dies[bi]))}")
    return out
