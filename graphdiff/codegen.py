"""Write a fused plan as straight-line numpy code: the engine's fast path.

The plan, fused into levels by :mod:`graphdiff.fusion`, is turned once, at compile
time, into one Python function whose body is exactly the numpy calls the network
needs, every decision (order, which deltas are worth computing, where a gradient
goes, when a value can be released) taken in advance. :mod:`graphdiff.program`
runs it; ``deltas=True`` and ``check_finite=True`` are variants of the same code
(every delta kept, each value and delta checked), so they give the same bits.

The interpreter (:mod:`graphdiff.interpret`) is the readable reference: each
emitter below writes the operations of the interpreter's rule for its step kind,
in the same order, so both give the same bits; for a fused level the code calls
the interpreter's rule itself. Each emitted :class:`Line` declares the variables it
reads and writes: the prologue (names read but never written) and the ``del``
statements (after a value's last use) are computed from those declarations.

Security: the generated source contains only identifiers made from integers and
fixed names; node names, parameter names, ops and constants live in the
namespace the code runs in. Nothing from a graph or a file is ever pasted into
source text.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

import numpy as np

from .fusion import Fusion, Level, bound, passes, reads
from .interpret import (
    check_level_deltas,
    check_level_values,
    level_backward,
    level_forward,
    seed,
)
from .plan import (
    ConstStep,
    InputStep,
    NeuronStep,
    OpStep,
    ParamStep,
    Step,
    activation_delta,
    check_delta,
    check_grads,
    check_loss,
    check_loss_shapes,
    check_loss_value,
    check_operand,
    check_value,
    fit_gradient,
    numeric,
    rows_of,
    zeros_like,
)
from .registry import Op

__all__ = ["MAX_UNFUSED_STEPS", "CodeGen", "Line"]

Array = np.ndarray

# Larger plans (outside levels) keep the interpreter; see program.generate().
MAX_UNFUSED_STEPS = 5000


@dataclass(frozen=True, slots=True)
class Line:
    """One line of generated code and the variables it reads and writes."""

    text: str
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()

    def indented(self) -> Line:
        return Line("    " + self.text, self.reads, self.writes)


Block = list[Line]  # the lines of one plan item: values die between blocks


@lru_cache(maxsize=4)
def _float_names(dtype: np.dtype[Any]) -> dict[str, Any]:
    """The generated code's names that make or check floats, for a network of ``dtype``:
    float64's are the plain functions, another float type's have it bound (a float64
    number or array anywhere in a float32 network would promote what it touches)."""
    if dtype == np.float64:
        return {
            "_zeros": np.zeros, "_seed": seed, "_FT": np.float64, "_FTd": dtype,
            "_num": numeric, "_fit": fit_gradient, "_dz": activation_delta, "_ph": zeros_like,
            "_ZERO": np.float64(0.0),
        }
    return {
        "_zeros": partial(np.zeros, dtype=dtype), "_seed": partial(seed, dtype=dtype),
        "_FT": dtype.type, "_FTd": dtype, "_num": partial(numeric, dtype=dtype),
        "_fit": partial(fit_gradient, dtype=dtype), "_dz": partial(activation_delta, dtype=dtype),
        "_ph": partial(zeros_like, dtype=dtype), "_ZERO": dtype.type(0.0),
    }


class CodeGen:
    """Writes the source of one variant of a fused plan's backward (or error) function."""

    def __init__(
        self,
        fusion: Fusion,
        tensor_names: list[str],
        loss_slot: int,
        reduction: str,
        needs: list[bool],
        deltas: bool = False,
        check: bool = False,
        dtype: Any = np.float64,
    ) -> None:
        self.fusion = fusion
        steps = self.steps = fusion.steps  # steps[slot] is that slot's step
        assert not steps or steps[-1].slot == len(steps) - 1
        self.sidx = fusion.sidx
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
            "_sum": np.add.reduce,
            "_cat": np.concatenate,
            "_arr": np.array,
            "_xrows": rows_of,
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
            "_lf": level_forward,
            "_lb": level_backward,
            "_cvl": check_level_values,
            "_cdl": check_level_deltas,
            "_steps": steps,
            **_float_names(np.dtype(dtype)),
        }
        for lv in fusion.levels:
            self.ns[f"_L{lv.index}"] = lv
        # what the prologue defines: the names read before (and never) written
        self.defs: dict[str, str] = {"ZN": "_ph((N,))"}
        # the first neuron each non-neuron value feeds (named by shape checks)
        _, flat, owner = fusion.neuron_args
        is_plain = np.ones(len(steps), dtype=bool)
        is_plain[[s.slot for s in fusion.neurons]] = False
        self.first_neuron: dict[int, NeuronStep] = {}
        hits = np.flatnonzero(is_plain[flat])
        for a, o in zip(flat[hits].tolist(), owner[hits].tolist(), strict=True):
            self.first_neuron.setdefault(a, fusion.neurons[o])
        self._per_point: dict[int, bool] = {}
        self._forward: list[Block] | None = None
        # input slot -> its position in X, the generated functions' list of inputs
        inputs = [s.slot for s in steps if isinstance(s, InputStep)]
        self.input_at = {slot: j for j, slot in enumerate(inputs)}
        self._plan_reads()

    # -- planning -----------------------------------------------------------------

    def _plan_reads(self) -> None:
        """Which forward values the backward code reads (ops declare what their vjp
        reads, ``Op.saves``). An op's value that no vjp reads is released after its
        last forward use, and read-only zeros of its shape stand in for it."""
        read = [False] * len(self.steps)
        for item in self.fusion.order:
            if isinstance(item, Level):
                continue  # its backward reads its own matrices
            if isinstance(item, NeuronStep):
                assert item.act is not None
                for a in item.args:
                    read[a] = True
                read[item.slot] = read[item.slot] or reads(item.act, "out")
            elif isinstance(item, OpStep):
                assert item.op is not None
                read[item.slot] = read[item.slot] or reads(item.op, "out")
                for j, a in enumerate(item.args):
                    read[a] = read[a] or reads(item.op, j)
            else:
                read[item.slot] = True  # inputs, params, consts: the caller's anyway
        read[self.loss_slot] = True
        self.read = read

    def released(self, slot: int) -> bool:
        """Is this an op's output that the forward code releases (no vjp reads it)?"""
        return isinstance(self.steps[slot], OpStep) and not self.read[slot]

    def arg(self, slot: int) -> tuple[str, str]:
        """A value as a backward argument (itself, or zeros of its shape once
        released), and the variable that reads."""
        if self.released(slot):
            return f"_ph(sh{slot})", f"sh{slot}"
        return self.val(slot), self.var(slot)

    def shape(self, slot: int) -> tuple[str, str]:
        if self.released(slot):
            return f"sh{slot}", f"sh{slot}"
        return f"{self.val(slot)}.shape", self.var(slot)

    def bind(self, value: Any, prefix: str, i: int | str) -> str:
        """``value`` in the namespace as ``_<prefix><i>`` (``i``: a slot, or ``L<b>`` for
        level b), the name the code uses."""
        name = f"_{prefix}{i}"
        self.ns[name] = value
        return name

    def val(self, slot: int) -> str:
        """Expression for a node's value."""
        lv = self.fusion.level_of(slot)
        return f"V{lv[0]}[{lv[1]}]" if lv else f"v{slot}"

    def var(self, slot: int) -> str:
        """The variable holding a node's value (its level's matrix, for a fused neuron)."""
        b = self.fusion.lvl[slot]
        return f"V{b}" if b >= 0 else f"v{slot}"

    def scalar(self, p: int) -> str:
        """Scalar parameter ``p`` as the code reads it."""
        self.defs[f"S{p}"] = f"P[{p}]"
        return f"S{p}"

    # -- forward ------------------------------------------------------------------

    def forward_blocks(self) -> list[Block]:
        if self._forward is not None:  # shared by the backward and error functions
            return self._forward
        out: list[Block] = []
        for item in self.fusion.order:
            if isinstance(item, Level):
                out.append(self._level_forward(item))
                continue
            lines = self._step_forward(item)
            if self.check and not isinstance(item, InputStep):
                lines.append(Line(f"_cv(v{item.slot}, _steps[{item.slot}])", (f"v{item.slot}",)))
            if isinstance(item, OpStep) and self.released(item.slot):
                i = item.slot
                lines.append(Line(f"sh{i} = v{i}.shape", (f"v{i}",), (f"sh{i}",)))
            out.append(lines)
        self._forward = out
        return out

    def _step_forward(self, s: Step) -> Block:
        i, v = s.slot, f"v{s.slot}"
        if isinstance(s, InputStep):
            return []  # placed by the prologue
        if isinstance(s, ConstStep):
            return [Line(f"{v} = {self.bind(s.value, 'C', i)}", (), (v,))]
        if isinstance(s, ParamStep):
            t = f"T{self.tidx[s.name]}"
            self.defs[t] = f"Q[{self.tidx[s.name]}]"
            return [Line(f"{v} = {t}", (t,), (v,))]
        if isinstance(s, OpStep):
            assert s.op is not None
            b = self._stacked_rows(s)
            if b is not None:  # np.stack's numbers and C order, without k views
                gather = Line(f"{v} = V{b}[_SK{i}].T.copy()", (f"V{b}",), (v,))
                return [gather, *self._vector_check(i)]
            if passes(s.op, s.attrs):  # the identity: its operand, checked where made
                a = s.args[0]
                return [Line(f"{v} = {self.val(a)}", (self.var(a),), (v,)), *self._vector_check(i)]
            fwd = self.bind(bound(s.op.forward, s.attrs), "F", i)
            args = ", ".join(self.val(a) for a in s.args)
            used = tuple(self.var(a) for a in s.args)
            lines = []
            if s.op.loss:
                chk = self.bind(partial(check_loss_shapes, s), "K", i)
                pred, target = (f"{self.val(a)}.shape" for a in s.args)
                call = Line(f"{chk}({pred}, {target})", used)
                if s.op.check_shapes is not None:
                    lines.append(call)
                else:
                    lines += [Line(f"if {pred} != {target}:", used), call.indented()]
            lines.append(Line(f"{v} = {fwd}({args})", used, (v,)))
            return [*lines, *self._numeric(v, s.op, s), *self._vector_check(i)]
        assert isinstance(s, NeuronStep) and s.act is not None
        terms, used_n = [], []
        for a, w in zip(s.args, s.weights, strict=True):
            sp = self.scalar(self.sidx[w])
            terms.append(f"{self.val(a)} * {sp}")
            used_n += [self.var(a), sp]
        if s.bias is not None:
            terms.append(self.scalar(self.sidx[s.bias]))
            used_n.append(terms[-1])
        z = f"z{i}"
        lines = [Line(f"{z} = {' + '.join(terms)}", tuple(used_n), (z,))]
        if passes(s.act, s.act_attrs):
            return [*lines, Line(f"{v} = {z}", (z,), (v,))]
        act = self.bind(bound(s.act.forward, s.act_attrs), "G", i)
        return [*lines, Line(f"{v} = {act}({z})", (z,), (v,)), *self._numeric(v, s.act, s)]

    def _stacked_rows(self, s: OpStep) -> int | None:
        """The level b when ``s`` is graphdiff's ``stack`` on axis 1 of distinct rows of
        level b, each certainly of shape (N,) (neuron notation's output layer feeding a
        loss): the code then gathers the rows (``_SK<slot>``) and scatters their deltas
        itself, instead of k views, the op's calls and a check per operand."""
        op = s.op
        if op is None or not op.builtin or op.name != "stack" or s.attrs.get("axis", 1) not in (
            1, -1
        ):
            return None
        where = [self.fusion.level_of(a) for a in s.args]
        blocks = {w[0] for w in where if w is not None}
        if None in where or len(blocks) != 1 or len(set(s.args)) != len(s.args) or not all(
            map(self.per_point, s.args)
        ):
            return None
        if f"_SK{s.slot}" not in self.ns:
            self.ns[f"_SK{s.slot}"] = np.array([w[1] for w in where if w is not None], np.intp)
        return blocks.pop()

    def _numeric(self, var: str, op: Op, s: Step) -> Block:
        """What an op's forward returned, by the rule both paths share (plan.numeric)."""
        name, node = self.bind(op.name, "O", s.slot), self.bind(s.node, "N", s.slot)
        return [
            Line(f"if type({var}) is not _nd or {var}.dtype is not _FTd:", (var,)),
            Line(f"    {var} = _num({var}, {name}, {node}, 'forward')", (var,), (var,)),
        ]

    def _vector_check(self, slot: int) -> Block:
        """Check once, where it is made, that a value feeding neurons is one per point."""
        user = self.first_neuron.get(slot)
        if user is None:
            return []
        node = self.bind(self.steps[slot].node, "N", slot)
        first = self.bind(user.node, "N", user.slot)
        v = f"v{slot}"
        return [Line(f"if {v}.ndim != 1:", (v,)), Line(f"    _vector({v}, {node}, {first})", (v,))]

    def _rows(self, lv: Level, rows: Any, j0: int) -> str:
        """Rows of a level as code: ``a:b``, or an index array bound in the namespace."""
        if isinstance(rows, slice):
            return f"{rows.start}:{rows.stop}"
        return self.bind(rows, f"R{lv.index}_", j0)

    def _level_forward(self, lv: Level) -> Block:
        """A: the sources, one row each; then the interpreter's level rule."""
        b = lv.index
        pieces, used = [], []
        for grp in lv.groups:
            if grp.level is None:
                pieces.append(f"{self.val(grp.rows)}[None]")
                used.append(self.var(grp.rows))
            elif grp.whole and len(lv.groups) == 1:
                pieces.append(f"V{grp.level}")  # the whole previous level, in order: no copy
                used.append(f"V{grp.level}")
            else:
                pieces.append(f"V{grp.level}[{self._rows(lv, grp.rows, grp.j0)}]")
                used.append(f"V{grp.level}")
        singles = [grp.rows for grp in lv.groups if grp.level is None]
        at = [self.input_at.get(a, -1) for a in singles]
        if len(singles) > 1 and len(singles) == len(lv.groups) and at[0] >= 0 and at == list(
            range(at[0], at[0] + len(at))
        ):
            # inputs X[j:j+m] in order: the matrix they are rows of, if the caller has one
            gather = f"_xrows(X, {at[0]}, {at[0] + len(at)})"
            used = []  # X is the function's argument
        elif len(pieces) > 1 and len(singles) == len(lv.groups):
            # only single values (of shape (N,), checked where they are made): one array
            # of them, as _cat of their rows makes it, in one call and without k views
            gather = f"_arr(({''.join(self.val(a) + ', ' for a in singles)}))"
        else:
            gather = pieces[0] if len(pieces) == 1 else f"_cat(({', '.join(pieces)},))"
        A, V, Z, W = f"A{b}", f"V{b}", f"Z{b}", f"W{b}"
        lines = [
            Line(f"{A} = {gather}", tuple(used), (A,)),
            Line(f"{V}, {Z}, {W} = _lf(_L{b}, P, {A})", (A,), (V, Z, W)),
        ]
        if self.check:
            lines.append(Line(f"_cvl(_L{b}, {V})", (V,)))
        return lines

    # -- backward -----------------------------------------------------------------

    def backward_blocks(self) -> list[Block]:
        self.reached: set[int] = set()  # slots whose delta d<slot> exists by now
        self.allocated: set[int] = set()  # levels whose delta DV<b> exists by now
        self.summed: set[int] = set()  # scalar parameters with a neuron-by-neuron g<p>
        self.scale: dict[int, str] = {}  # d<slot> stands for scale[slot] * d<slot>
        self.pre: Block = []
        blocks: list[Block] = []
        lv0 = self.fusion.level_of(self.loss_slot)
        first = "_seed(N, 1.0 / N)" if self.reduction == "mean" else "_seed(N, 1.0)"
        if lv0:
            b, row = lv0
            self.allocated.add(b)
            blocks.append([
                Line(f"DV{b} = _zeros_like(V{b})", (f"V{b}",), (f"DV{b}",)),
                Line(f"DV{b}[{row}] = {first}", (f"DV{b}",)),
            ])
        else:
            self.reached.add(self.loss_slot)
            d = f"d{self.loss_slot}"
            blocks.append([Line(f"{d} = {first}", (), (d,))])
        for item in reversed(self.fusion.order):
            self.pre = []
            if isinstance(item, Level):
                lines = self._level_backward(item)
            else:
                lines = self._step_backward(item)
            blocks.append(self.pre + lines)
        return blocks

    def add_to(self, slot: int, expr: str, used: tuple[str, ...]) -> Block:
        """Lines adding ``expr`` (which reads ``used``) to the delta of ``slot``."""
        if not self.want[slot]:
            return []
        lv = self.fusion.level_of(slot)
        if lv is not None:
            self._alloc(lv[0])
            return [Line(f"DV{lv[0]}[{lv[1]}] += {expr}", (f"DV{lv[0]}", *used))]
        return self._accumulate(self.reached, f"d{slot}", slot, expr, used)

    def _accumulate(
        self, have: set[int], var: str, key: int, expr: str, used: tuple[str, ...]
    ) -> Block:
        if key in have:
            # never in place: the old array may also be another slot's delta
            return [Line(f"{var} = {var} + {expr}", (var, *used), (var,))]
        have.add(key)
        return [Line(f"{var} = {expr}", used, (var,))]

    def _guarded(self, slot: int, body: Block) -> Block:
        """``body``, where a delta reaches this node (else nothing to do)."""
        return body if slot in self.reached else []

    def _checked(self, slot: int) -> Block:
        """With ``check``: the line checking this node's delta (which may stand for a
        number times ``d<slot>``, see ``Fusion.deferred``) before its backward rule runs."""
        if not self.check:
            return []
        c = self.scale.get(slot)
        d = f"d{slot}"
        return [Line(f"_cd({c + ' * ' if c else ''}{d}, _steps[{slot}])", (d, *([c] if c else [])))]

    def _alloc(self, b: int) -> None:
        """Make DV<b>, level b's delta, at its first contribution: at the top of the
        current block, so deltas exist only once needed."""
        if b not in self.allocated:
            self.allocated.add(b)
            self.pre.append(Line(f"DV{b} = _zeros_like(V{b})", (f"V{b}",), (f"DV{b}",)))

    def _step_backward(self, s: Step) -> Block:
        i, d = s.slot, f"d{s.slot}"
        if isinstance(s, (InputStep, ConstStep)):
            return self._guarded(i, self._checked(i))
        if isinstance(s, ParamStep):
            t = f"GT{self.tidx[s.name]}"
            return self._guarded(i, [*self._checked(i), Line(f"{t} = {d}", (d,), (t,))])
        if isinstance(s, OpStep):
            return self._guarded(i, self._op_backward(s))
        assert isinstance(s, NeuronStep)
        return self._guarded(i, self._neuron_backward(s))

    def _op_backward(self, s: OpStep) -> Block:
        """The interpreter's ``_op_back``: the vjp (or one function per wanted operand,
        where the op gives them) and each wanted gradient, fitted to its operand."""
        op, i, d = s.op, s.slot, f"d{s.slot}"
        assert op is not None
        wanted = [j for j, a in enumerate(s.args) if self.want[a]]
        if not wanted:
            return self._checked(i)
        if passes(op, s.attrs):  # the identity: the delta passes through
            return [*self._checked(i), *self.add_to(s.args[0], d, (d,))]
        b = self._stacked_rows(s)
        if b is not None and len(wanted) == len(s.args):
            # the stack's vjp, each column to its row's delta, in one fancy-index add
            # (the rows are distinct, so it is exact, as k adds of the columns are)
            self._alloc(b)
            return [*self._checked(i), Line(f"DV{b}[_SK{i}] += {d}.T", (f"DV{b}", d))]
        needed = sum(self.needs[a] for a in s.args)
        name, node = self.bind(op.name, "O", i), self.bind(s.node, "N", i)
        args = [self.arg(a) for a in s.args]
        out = (f"_ph({d}.shape)", d) if self.released(i) else (f"v{i}", f"v{i}")
        text = ", ".join(t for t, _ in [out, *args])
        used = (d, *(u for _, u in [out, *args]))
        parts = op.vjps is not None and needed < len(s.args)
        n = len(s.args)
        body = self._checked(i)
        if not parts:
            vjp = self.bind(bound(op.vjp, s.attrs), "B", i)
            body += [
                Line(f"gs = {vjp}({d}, {text})", used, ("gs",)),
                Line(f"if type(gs) is not tuple or len(gs) != {n}:", ("gs",)),
                Line(f"    gs = _grads_of(gs, {n}, {name}, {node})", ("gs",), ("gs",)),
            ]
        for j in wanted:
            a = s.args[j]
            shape, shape_var = self.shape(a)
            if parts:
                assert op.vjps is not None
                part = self.bind(bound(op.vjps[j], s.attrs), f"P{j}_", i)
                grad = Line(f"t = {part}({d}, {text})", used, ("t",))
            else:
                grad = Line(f"t = gs[{j}]", ("gs",), ("t",))
            # None from a vjp means a zero gradient; _fit makes it one, so the
            # delta downstream certainly exists and needs no run-time tests.
            body += [
                grad,
                Line(f"if type(t) is not _nd or t.dtype is not _FTd or t.shape != {shape}:",
                     ("t", shape_var)),
                Line(f"    t = _fit(t, {shape}, {name}, {node})", ("t", shape_var), ("t",)),
                *self.add_to(a, "t", ("t",)),
            ]
        return body

    def _neuron_backward(self, s: NeuronStep) -> Block:
        """The interpreter's ``_neuron_back``: dE/dz, each weight's gradient and each
        operand's share; a deferred operand's delta is ``dz`` with its number apart."""
        act, i, d = s.act, s.slot, f"d{s.slot}"
        assert act is not None
        c = self.scale.get(i)  # d<i> stands for c * d<i>: so then does dz
        # (code, variable) of z and the value; zeros where the activation reads them not
        a_i, z_i = (f"v{i}", f"v{i}"), (f"z{i}", f"z{i}")
        reads_z = reads(act, 0)
        if not (passes(act, s.act_attrs) or (self.read[i] and reads_z)):
            zeros = ("ZN", "ZN") if self.per_point(i) else (f"_ph({d}.shape)", d)
            a_i = a_i if self.read[i] else zeros
            z_i = z_i if reads_z else zeros
        body = [*self._checked(i), self._delta_z(d, s, z_i, a_i)]
        if self.deltas:
            body.append(Line(f"xz{i} = dz", ("dz",), (f"xz{i}",)))
        times, cs = (f"{c} * ", (c,)) if c else ("", ())
        for a, w in zip(s.args, s.weights, strict=True):
            p = self.sidx[w]
            sp = self.scalar(p)
            grad = f"{times}_dot(dz, {self.val(a)})"
            body += self._accumulate(self.summed, f"g{p}", p, grad, ("dz", self.var(a), *cs))
            if a in self.fusion.deferred:
                # a's only delta is dz times a number: keep the number apart, so
                # that no array is scaled here (a's backward folds it in later)
                if c:
                    body.append(Line(f"c{a} = {c} * {sp}", (c, sp), (f"c{a}",)))
                self.scale[a] = f"c{a}" if c else sp
                body += self.add_to(a, "dz", ("dz",))
            else:
                factor = f"({c} * {sp})" if c else sp
                body += self.add_to(a, f"dz * {factor}", ("dz", sp, *cs))
        if s.bias is not None:
            p = self.sidx[s.bias]
            body += self._accumulate(self.summed, f"g{p}", p, f"{times}dz.sum()", ("dz", *cs))
        return body

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
        self, d: str, s: NeuronStep, z: tuple[str, str], a: tuple[str, str]
    ) -> Line:
        """``dz = dE/dz`` as :func:`graphdiff.interpret.delta_z` computes it."""
        act, attrs, i = s.act, s.act_attrs, s.slot
        assert act is not None
        if passes(act, attrs):
            return Line(f"dz = {d}", (d,), ("dz",))
        used = (d, z[1], a[1])
        if act.derivative is not None:
            df = self.bind(bound(act.derivative, attrs), "D", i)
            return Line(f"dz = {d} * {df}({z[0]}, {a[0]})", used, ("dz",))
        vjp = self.bind(bound(act.vjp, attrs), "H", i)
        node, name = self.bind(s.node, "N", i), self.bind(act.name, "O", i)
        return Line(f"dz = _dz({vjp}({d}, {a[0]}, {z[0]})[0], {name}, {node})", used, ("dz",))

    def _level_backward(self, lv: Level) -> Block:
        """The interpreter's level rule, then its sources' shares of the delta."""
        b = lv.index
        if b not in self.allocated:
            return []  # nothing downstream sent a delta
        DV, A, W = f"DV{b}", f"A{b}", f"W{b}"
        z, v = (f"Z{b}" if lv.reads_z else "None"), (f"V{b}" if lv.reads_v else "None")
        used = (DV, A, W, *(x for x in (z, v) if x != "None"), "GS")
        sources = any(self.want[a] for a in lv.sources)
        lines = [Line(f"_cdl(_L{b}, {DV})", (DV,))] if self.check else []
        # deltas=True keeps DV<b>: the same product, not in place
        owned = not self.deltas
        lines.append(Line(f"DZ, DA = _lb(_L{b}, {DV}, {A}, {W}, {z}, {v}, GS, {owned}, {sources})",
                          used, ("DZ", "DA")))
        if self.deltas:
            lines.append(Line(f"XZ{b} = DZ", ("DZ",), (f"XZ{b}",)))
        if not sources:
            return lines
        for grp in lv.groups:
            j0, j1 = grp.j0, grp.j1
            if grp.level is None:
                lines += self.add_to(grp.rows, f"DA[{j0}]", ("DA",))
                continue
            if not any(map(self.want.__getitem__, lv.sources[j0:j1])):
                continue  # no parameter reaches these rows
            blk = f"DV{grp.level}"
            if grp.whole and grp.level not in self.allocated:
                self.allocated.add(grp.level)  # DA is this call's own array: adopt its rows
                lines.append(Line(f"{blk} = DA[{j0}:{j1}]", ("DA",), (blk,)))
            else:
                # rows are distinct within a level, so a fancy-index += is exact
                self._alloc(grp.level)
                rows = self._rows(lv, grp.rows, j0)
                lines.append(Line(f"{blk}[{rows}] += DA[{j0}:{j1}]", (blk, "DA")))
        return lines

    # -- assembly -----------------------------------------------------------------

    def source(self, with_backward: bool, loss_terms: bool = False) -> str:
        inputs = [s for s in self.steps if isinstance(s, InputStep)]
        pro = [Line(f"v{s.slot} = X[{j}]", (), (f"v{s.slot}",)) for j, s in enumerate(inputs)]
        pro += [ln for s in inputs for ln in self._vector_check(s.slot)]
        blocks = list(self.forward_blocks())
        loss, lvar = self.val(self.loss_slot), self.var(self.loss_slot)
        node = self.bind(self.steps[self.loss_slot].node, "N", self.loss_slot)
        ending = [
            Line(f"L = {loss}", (lvar,), ("L",)),
            Line("if L.shape != (N,):", ("L",)),
            Line(f"    _check_loss({node}, L.shape, N)", ("L",)),
            # np.add.reduce is what L.mean()/L.sum() run, without their Python wrappers
            Line(f"E = _sum(L){' / N' if self.reduction == 'mean' else ''}", ("L",), ("E",)),
        ]
        if self.check:
            ending.append(Line(f"_cl(E, {node})", ("E",)))
        if loss_terms:
            ops = [(self.val(a), self.var(a)) for a in self.steps[self.loss_slot].args]
            text = "".join(f"{t}, " for t, _ in ops)
            ending.append(Line(f"return E, L, ({text})", ("E", "L", *(u for _, u in ops))))
            return self._function("terms", pro, [*blocks, ending])
        if not with_backward:
            return self._function("error", pro, [*blocks, [*ending, Line("return E", ("E",))]])
        tensors = [f"GT{j}" for j in range(len(self.tidx))]
        if self.fusion.levels:
            ending.append(Line(f"GS = _zeros({len(self.sidx)})", (), ("GS",)))
        ending += [Line(f"{t} = None", (), (t,)) for t in tensors]
        blocks.append(ending)
        blocks += self.backward_blocks()
        # scalar gradients summed neuron by neuron live in g<p>; levels add into GS
        last: Block = []
        if self.fusion.levels:
            last += [Line(f"GS[{p}] += g{p}", ("GS", f"g{p}")) for p in sorted(self.summed)]
        else:
            terms = "".join(
                f"g{p}, " if p in self.summed else "_ZERO, " for p in range(len(self.sidx))
            )
            last.append(Line(f"GS = _fromiter(({terms}), _FT, {len(self.sidx)})",
                             tuple(f"g{p}" for p in sorted(self.summed)), ("GS",)))
        if self.deltas:  # every value and delta stays alive, for the caller to read
            last += [Line(f"xc{i} = {c}", (c,), (f"xc{i}",)) for i, c in sorted(self.scale.items())]
        grads_t = ", ".join(tensors) + ("," if len(tensors) == 1 else "")
        extra = ", locals()" if self.deltas else ""
        last.append(Line(f"return E, GS, ({grads_t}){extra}", ("E", "GS", *tensors)))
        return self._function("backward", pro, [*blocks, last])

    def _function(self, name: str, pro: Block, blocks: list[Block]) -> str:
        """The function: the prologue, the names it defines (those read but never
        written), then the blocks with each value released after its last use."""
        written = {w for blk in blocks for ln in blk for w in ln.writes}
        given = {w for ln in pro for w in ln.writes}
        free: dict[str, None] = {}
        for blk in blocks:
            for ln in blk:
                free.update((r, None) for r in ln.reads if r not in written and r not in given)
        body = pro + [Line(f"{n} = {self.defs[n]}") for n in free]
        if self.deltas:
            body += [ln for blk in blocks for ln in blk]
        else:
            body += _with_releases(blocks, written)
        return f"def {name}(P, Q, X, N):\n" + "".join(f"    {ln.text}\n" for ln in body)


def _with_releases(blocks: list[Block], written: set[str]) -> Block:
    """The blocks with ``del`` after the block that last uses each variable they
    write, so memory falls as the function runs (not after the last block)."""
    last: dict[str, int] = {}
    for bi, blk in enumerate(blocks):
        for ln in blk:
            for name in (*ln.reads, *ln.writes):
                last[name] = bi
    dies: dict[int, list[str]] = {}
    for name, bi in last.items():
        if name in written:
            dies.setdefault(bi, []).append(name)
    out: Block = []
    for bi, blk in enumerate(blocks):
        out += blk
        if bi in dies and bi < len(blocks) - 1:
            out.append(Line(f"del {', '.join(sorted(dies[bi]))}"))
    return out
