"""The standard op library and graphdiff.testing.check_op.

Every registered op is checked against central differences; wrong plugins
must be caught; kinks and extreme logits follow the documented conventions.
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np
import pydantic
import pytest

import graphdiff
from graphdiff import Op, OpContractError
from graphdiff.errors import InputError
from graphdiff.registry import REGISTRY, Sample
from graphdiff.testing import OpCheckReport, check_op, unbroadcast

graphdiff.get_op("add")  # loads the standard library
ALL_OPS = REGISTRY.names()

BUILTINS = {
    "identity", "neg", "exp", "log", "sqrt", "abs", "sign", "square", "tanh", "sigmoid",
    "relu", "softplus", "sin", "step", "pow", "add", "mul", "sub", "div", "matmul",
    "sum", "mean", "stack", "concat", "index", "reshape",
    "hinge", "logistic", "squared_error", "softmax_cross_entropy",
}  # fmt: skip


def run(name: str, *xs: Any, g: Any = None, **attrs: Any) -> tuple[np.ndarray, tuple[Any, ...]]:
    """Forward and vjp of a registered op, with validated attributes (g defaults to ones)."""
    op = graphdiff.get_op(name)
    checked = op.attrs(**attrs).model_dump()
    arrays = [np.asarray(x, dtype=float) for x in xs]
    out = op.forward(*arrays, **checked)
    cot = np.ones(out.shape) if g is None else np.asarray(g, dtype=float)
    return out, tuple(op.vjp(cot, out, *arrays, **checked))


# --- every op, numerically ---------------------------------------------------------


def test_standard_library_is_registered() -> None:
    assert set(ALL_OPS) >= BUILTINS
    for name in BUILTINS:
        assert graphdiff.get_op(name).source == "graphdiff (built-in)"


@pytest.mark.parametrize("name", ALL_OPS)
def test_check_op(name: str) -> None:
    report = check_op(name)
    assert report.op == name
    assert report.samples >= 1
    assert report.worst_error <= 1.0


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_check_op_other_seeds(name: str, seed: int) -> None:
    assert check_op(name, seed=seed).worst_error <= 1.0


def test_op_flags() -> None:
    get = graphdiff.get_op
    assert get("add").unordered and get("mul").unordered
    assert not get("sub").unordered and not get("div").unordered
    losses = {n for n in BUILTINS if get(n).loss}
    assert losses == {"hinge", "logistic", "squared_error", "softmax_cross_entropy"}
    assert all(get(n).arity == 2 for n in losses)
    assert {n for n in BUILTINS if get(n).elementwise} == {
        "identity", "neg", "exp", "log", "sqrt", "abs", "sign", "square", "tanh",
        "sigmoid", "relu", "softplus", "sin", "step", "pow",
    }  # fmt: skip
    assert get("stack").arity is None and get("concat").arity is None
    assert get("softmax_cross_entropy").check_shapes is not None
    assert all(get(n).check_shapes is None for n in losses - {"softmax_cross_entropy"})


def test_attribute_models_are_strict_and_frozen() -> None:
    relu = graphdiff.get_op("relu")
    with pytest.raises(pydantic.ValidationError):
        relu.attrs(shft=100.0)
    attrs = relu.attrs(shift=100.0)
    with pytest.raises(pydantic.ValidationError):
        setattr(attrs, "shift", 1.0)  # noqa: B010 (a frozen model refuses it)
    with pytest.raises(pydantic.ValidationError):
        graphdiff.get_op("pow").attrs()  # exponent is required
    assert graphdiff.get_op("sum").attrs(axis=[1, 2]).model_dump() == {
        "axis": (1, 2),
        "keepdims": False,
    }


# --- check_op catches wrong plugins ------------------------------------------------

X = np.array([0.5, -1.0, 2.0, 1.5])
ONE_SAMPLE: list[Sample] = [((X,), {})]


def square_op(name: str, **parts: Any) -> Op:
    fields: dict[str, Any] = {
        "forward": lambda x: x * x,
        "vjp": lambda g, out, x: (2 * g * x,),
        "elementwise": True,
    }
    return Op(name=name, **{**fields, **parts})


def test_correct_plugin_passes() -> None:
    report = check_op(square_op("good_square"), samples=ONE_SAMPLE)
    assert report == OpCheckReport(op="good_square", samples=1, worst_error=report.worst_error)
    assert report.worst_error < 1e-3


def test_wrong_sign_is_caught() -> None:
    bad = square_op("bad_sign", vjp=lambda g, out, x: (-2 * g * x,))
    with pytest.raises(OpContractError, match=r"'bad_sign'.*sample 0, operand 0.*does not match"):
        check_op(bad, samples=ONE_SAMPLE)


def test_wrong_value_names_worst_element() -> None:
    # Wrong only at position 2 (x = 2.0): analytic 4 * 2 = 8 against numeric 2 * 2 = 4.
    bad = square_op("bad_one", vjp=lambda g, out, x: (np.where(x == 2.0, 4, 2) * g * x,))
    g = np.random.default_rng(0).standard_normal(4)  # the cotangent check_op draws
    with pytest.raises(OpContractError, match=r"worst at \(2,\)") as info:
        check_op(bad, samples=ONE_SAMPLE, seed=0)
    assert f"analytic {np.float64(8 * g[2])!r}" in str(info.value)


def test_wrong_gradient_shape_is_caught() -> None:
    bad = square_op("bad_shape", vjp=lambda g, out, x: (2 * g[:2] * x[:2],))
    with pytest.raises(OpContractError, match=r"'bad_shape'.*operand 0: wrong gradient shape"):
        check_op(bad, samples=ONE_SAMPLE)


def test_wrong_forward_shape_is_caught() -> None:
    bad = square_op("bad_out", forward=lambda x: np.sum(x * x, keepdims=True))
    with pytest.raises(OpContractError, match=r"'bad_out'.*sample 0: wrong shape"):
        check_op(bad, samples=ONE_SAMPLE)


def test_loss_output_shape_is_caught() -> None:
    bad = Op(
        name="bad_loss",
        forward=lambda z, t: (z - t) ** 2,  # not summed per data point
        vjp=lambda g, out, z, t: (2 * g * (z - t), -2 * g * (z - t)),
        arity=2,
        loss=True,
    )
    zt = (np.ones((3, 2)), np.zeros((3, 2)))
    with pytest.raises(OpContractError, match=r"'bad_loss'.*one value per data point"):
        check_op(bad, samples=[(zt, {})])


def test_wrong_number_of_gradients_is_caught() -> None:
    bad = square_op("bad_count", vjp=lambda g, out, x: (2 * g * x, g))
    with pytest.raises(OpContractError, match=r"'bad_count'.*returns 2 gradients for 1 operands"):
        check_op(bad, samples=ONE_SAMPLE)


def test_gradient_not_a_tuple_is_caught() -> None:
    bad = square_op("bad_tuple", vjp=lambda g, out, x: 2 * g * x)
    with pytest.raises(OpContractError, match=r"'bad_tuple'.*not a tuple"):
        check_op(bad, samples=ONE_SAMPLE)


def test_nan_gradient_is_caught() -> None:
    bad = square_op("bad_nan", vjp=lambda g, out, x: (np.full(x.shape, np.nan),))
    with pytest.raises(OpContractError, match=r"'bad_nan'.*operand 0: vjp returns non-finite.*NaN"):
        check_op(bad, samples=ONE_SAMPLE)


def test_nan_output_is_caught() -> None:
    bad = square_op("bad_nan_out", forward=lambda x: x * np.nan)
    with pytest.raises(OpContractError, match=r"'bad_nan_out'.*forward returns non-finite"):
        check_op(bad, samples=ONE_SAMPLE)


def test_non_array_output_is_caught() -> None:
    bad = square_op("bad_type", forward=lambda x: float(x.sum()))
    with pytest.raises(OpContractError, match=r"'bad_type'.*returns float, not an ndarray"):
        check_op(bad, samples=ONE_SAMPLE)


def test_mutating_forward_is_caught() -> None:
    def forward(x: np.ndarray) -> np.ndarray:
        x *= x
        return x

    bad = square_op("bad_mutate", forward=forward)
    with pytest.raises(OpContractError, match=r"'bad_mutate'.*forward mutates its input"):
        check_op(bad, samples=ONE_SAMPLE)
    np.testing.assert_array_equal(X, [0.5, -1.0, 2.0, 1.5])  # the caller's array is untouched


def test_mutating_vjp_is_caught() -> None:
    def vjp(g: np.ndarray, out: np.ndarray, x: np.ndarray) -> tuple[np.ndarray]:
        g *= 2 * x
        return (g,)

    bad = square_op("bad_mutate_g", vjp=vjp)
    with pytest.raises(OpContractError, match=r"'bad_mutate_g'.*vjp mutates"):
        check_op(bad, samples=ONE_SAMPLE)


def test_raising_forward_is_reported() -> None:
    def forward(x: np.ndarray) -> np.ndarray:
        raise ZeroDivisionError("boom")

    with pytest.raises(OpContractError, match=r"'bad_raise'.*forward raised ZeroDivisionError"):
        check_op(square_op("bad_raise", forward=forward), samples=ONE_SAMPLE)


def test_op_without_samples_is_refused() -> None:
    with pytest.raises(OpContractError, match=r"'no_samples' has no samples"):
        check_op(square_op("no_samples"))


def test_sample_with_wrong_arity_is_refused() -> None:
    with pytest.raises(OpContractError, match=r"2 operands, the op takes 1"):
        check_op(square_op("arity"), samples=[((X, X), {})])


def test_broadcast_gradients_are_summed_back() -> None:
    # A correct vjp returns the broadcast shape; one that already sums is fine too.
    summing = Op(
        name="mul_summing",
        forward=lambda a, b: a * b,
        vjp=lambda g, out, a, b: (g * b, (g * a).sum(axis=0)),
        arity=2,
    )
    sample: Sample = ((np.arange(6.0).reshape(3, 2), np.array([1.5, -2.0])), {})
    assert check_op(summing, samples=[sample]).samples == 1
    assert check_op("mul", samples=[sample]).samples == 1


def test_unbroadcast() -> None:
    g = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(unbroadcast(g, (2, 3, 4)), g)
    np.testing.assert_array_equal(unbroadcast(g, (4,)), g.sum(axis=(0, 1)))
    np.testing.assert_array_equal(unbroadcast(g, (3, 1)), g.sum(axis=(0, 2))[:, None])
    np.testing.assert_array_equal(unbroadcast(g, ()), g.sum())
    assert unbroadcast(g, (5,)).shape != (5,)  # not broadcastable: the caller sees the shape


# --- kinks: exact values from the documented conventions ---------------------------


def test_relu_kink() -> None:
    out, (grad,) = run("relu", [-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(out, [0.0, 0.0, 2.0])
    np.testing.assert_array_equal(grad, [0.0, 0.0, 1.0])  # relu'(0) = 0


def test_relu_shift_is_max_0_z_minus_100() -> None:
    out, (grad,) = run("relu", [99.0, 100.0, 101.5], shift=100.0)
    np.testing.assert_array_equal(out, [0.0, 0.0, 1.5])
    np.testing.assert_array_equal(grad, [0.0, 0.0, 1.0])


def test_sin_scale_is_sin_100_z() -> None:
    z = np.array([0.0, 0.01, -0.3])
    out, (grad,) = run("sin", z, g=[1.0, 2.0, 3.0], scale=100.0)
    np.testing.assert_allclose(out, np.sin(100 * z), rtol=1e-15)
    np.testing.assert_allclose(grad, np.array([1.0, 2.0, 3.0]) * 100 * np.cos(100 * z), rtol=1e-15)


def test_abs_kink() -> None:
    out, (grad,) = run("abs", [-2.0, 0.0, 3.0])
    np.testing.assert_array_equal(out, [2.0, 0.0, 3.0])
    np.testing.assert_array_equal(grad, [-1.0, 0.0, 1.0])


def test_step_and_sign_have_zero_gradient() -> None:
    x = [-1.0, 0.0, 1e-300, 2.0]
    out, (grad,) = run("step", x, g=[5.0, 5.0, 5.0, 5.0])
    np.testing.assert_array_equal(out, [0.0, 0.0, 1.0, 1.0])  # step(0) = 0
    np.testing.assert_array_equal(grad, np.zeros(4))
    out, (grad,) = run("sign", x, g=[5.0, 5.0, 5.0, 5.0])
    np.testing.assert_array_equal(out, [-1.0, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(grad, np.zeros(4))


def test_sqrt_gradient_at_zero() -> None:
    out, (grad,) = run("sqrt", [0.0, 0.0, 0.0, 4.0], g=[0.0, 1.0, -1.0, 2.0])
    np.testing.assert_array_equal(out, [0.0, 0.0, 0.0, 2.0])
    np.testing.assert_array_equal(grad, [0.0, np.inf, -np.inf, 0.5])  # 0 where g == 0, no NaN


def test_log_of_zero_is_minus_inf_without_warning() -> None:
    out, (grad,) = run("log", [0.0, 1.0, np.e], g=[0.0, 3.0, 1.0])
    np.testing.assert_array_equal(out[:2], [-np.inf, 0.0])
    assert out[2] == pytest.approx(1.0, rel=1e-15)
    np.testing.assert_array_equal(grad[:2], [0.0, 3.0])
    assert grad[2] == pytest.approx(1 / np.e, rel=1e-15)


def test_hinge_counts_the_boundary_as_a_mistake() -> None:
    out, (gz, gt) = run("hinge", [0.0, 0.0], [1.0, -1.0], g=[1.0, 1.0])
    np.testing.assert_array_equal(out, [0.0, 0.0])
    np.testing.assert_array_equal(gz, [-1.0, 1.0])  # -t
    np.testing.assert_array_equal(gt, [0.0, 0.0])  # -z


def test_hinge_values_and_inactive_region() -> None:
    z, t = [2.0, -3.0, -2.0, 0.5], [1.0, -1.0, 1.0, -1.0]
    out, (gz, gt) = run("hinge", z, t, g=[1.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(out, [0.0, 0.0, 2.0, 0.5])
    np.testing.assert_array_equal(gz, [0.0, 0.0, -2.0, 3.0])
    np.testing.assert_array_equal(gt, [0.0, 0.0, 4.0, -1.5])


def test_hinge_gradient_descent_is_the_perceptron_update_from_zero_weights() -> None:
    x = np.array([[1.0, 2.0], [-1.0, 0.5], [3.0, -1.0]])
    t = np.array([1.0, -1.0, -1.0])
    w = np.zeros(2)
    z, _ = run("matmul", x, w)
    _, (dz, _) = run("hinge", z, t)
    _, (_, dw) = run("matmul", x, w, g=dz)
    # Every point is on the boundary, so each is a mistake: w <- w + sum_n t_n x_n.
    np.testing.assert_array_equal(w - dw, (t[:, None] * x).sum(axis=0))


def test_losses_sum_over_non_batch_axes() -> None:
    z = np.array([[1.0, -2.0], [0.5, 3.0]])
    t = np.array([[0.0, 1.0], [0.5, -1.0]])
    out, _ = run("squared_error", z, t)
    np.testing.assert_array_equal(out, [1.0 + 9.0, 0.0 + 16.0])  # no factor 1/2
    out, _ = run("hinge", z, np.sign(t + 0.1))
    np.testing.assert_array_equal(out, [0.0 + 2.0, 0.0 + 3.0])


# --- extreme logits: finite, hand-derived values ------------------------------------


def test_sigmoid_and_softplus_at_extreme_logits() -> None:
    x = [-1e4, -1e3, 0.0, 1e3, 1e4]
    out, (grad,) = run("sigmoid", x)
    np.testing.assert_array_equal(out, [0.0, 0.0, 0.5, 1.0, 1.0])
    np.testing.assert_array_equal(grad, [0.0, 0.0, 0.25, 0.0, 0.0])
    out, (grad,) = run("softplus", x)
    np.testing.assert_array_equal(out, [0.0, 0.0, np.log(2.0), 1e3, 1e4])
    np.testing.assert_array_equal(grad, [0.0, 0.0, 0.5, 1.0, 1.0])


def test_logistic_at_extreme_logits() -> None:
    z = [1e4, 1e4, -1e3, 1e3]
    t = [-1.0, 1.0, 1.0, 1.0]
    out, (gz, gt) = run("logistic", z, t)
    # Wrong with margin 1e4: loss = -t z = 1e4, dz = -t sigmoid(-t z) = 1, dt = -z.
    # Right with a large margin: loss, dz and dt are 0.
    np.testing.assert_array_equal(out, [1e4, 0.0, 1e3, 0.0])
    np.testing.assert_array_equal(gz, [1.0, 0.0, -1.0, 0.0])
    np.testing.assert_array_equal(gt, [-1e4, 0.0, 1e3, 0.0])
    out, (gz, gt) = run("logistic", [0.0], [1.0])
    assert out[0] == pytest.approx(np.log(2.0), rel=1e-15)
    assert (gz[0], gt[0]) == (-0.5, 0.0)


def test_softmax_cross_entropy_at_extreme_logits() -> None:
    z = np.array([[1e4, 0.0, -1e4], [1e4, 0.0, -1e4], [-1e3, 1e3, 0.0]])
    classes = np.array([1.0, 0.0, 1.0])
    out, (gz, gt) = run("softmax_cross_entropy", z, classes)
    # logsumexp(z) = max(z) here; loss = max(z) - z[class]; softmax is one-hot at argmax.
    np.testing.assert_array_equal(out, [1e4, 0.0, 0.0])
    np.testing.assert_array_equal(gz, [[1.0, -1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert gt is None
    onehot = np.eye(3)[[1, 0, 1]]
    out_p, (gz_p, gt_p) = run("softmax_cross_entropy", z, onehot)
    np.testing.assert_array_equal(out_p, out)
    np.testing.assert_array_equal(gz_p, gz)
    # d/dt = -log softmax(z) = max(z) - z.
    np.testing.assert_array_equal(gt_p, [[0.0, 1e4, 2e4], [0.0, 1e4, 2e4], [2e3, 0.0, 1e3]])


def test_softmax_cross_entropy_integer_targets_equal_one_hot() -> None:
    rng = np.random.default_rng(7)
    z = rng.standard_normal((6, 4))
    classes = np.array([0, 3, 1, 1, 2, 3])
    g = rng.standard_normal(6)
    out_i, (gz_i, gt_i) = run("softmax_cross_entropy", z, classes, g=g)
    out_p, (gz_p, _) = run("softmax_cross_entropy", z, np.eye(4)[classes], g=g)
    np.testing.assert_allclose(out_i, out_p, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(gz_i, gz_p, rtol=1e-14, atol=1e-15)
    assert gt_i is None
    softmax = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out_i, -np.log(softmax[np.arange(6), classes]), rtol=1e-13)


def test_softmax_cross_entropy_probability_targets() -> None:
    z = np.array([[1.0, 2.0, 3.0]])
    t = np.array([[0.2, 0.3, 0.5]])
    out, (gz, gt) = run("softmax_cross_entropy", z, t)
    lse = np.log(np.exp(1.0) + np.exp(2.0) + np.exp(3.0))
    assert out[0] == pytest.approx(lse - (0.2 + 0.6 + 1.5), rel=1e-14)
    np.testing.assert_allclose(gz, np.exp(z - lse) - t, rtol=1e-14)
    np.testing.assert_allclose(gt, lse - z, rtol=1e-14)


def test_softmax_cross_entropy_refuses_bad_class_indices() -> None:
    op = graphdiff.get_op("softmax_cross_entropy")
    with pytest.raises(InputError, match=r"integers in \[0, 3\)"):
        op.forward(np.zeros((2, 3)), np.array([0.5, 1.0]))
    with pytest.raises(InputError, match=r"integers in \[0, 3\)"):
        op.forward(np.zeros((2, 3)), np.array([0.0, 3.0]))


def test_softmax_cross_entropy_check_shapes() -> None:
    check = graphdiff.get_op("softmax_cross_entropy").check_shapes
    assert check is not None
    assert check((4, 3), (4, 3)) is None
    assert check((4, 3), (4,)) is None
    for pred, target in [((4, 3), (3,)), ((4, 3), (4, 2)), ((4,), (4,)), ((4, 3), (4, 3, 1))]:
        text = check(pred, target)
        assert text is not None and str(target) in text and "softmax_cross_entropy" in text


# --- forwards against plain numpy --------------------------------------------------

RNG = np.random.default_rng(3)
A = RNG.standard_normal((5, 3))


def test_matmul_values() -> None:
    w = RNG.standard_normal((3, 2))
    out, (ga, gw) = run("matmul", A, w)
    np.testing.assert_allclose(out, A @ w, rtol=1e-14)
    np.testing.assert_allclose(ga, np.ones((5, 2)) @ w.T, rtol=1e-14)
    np.testing.assert_allclose(gw, A.T @ np.ones((5, 2)), rtol=1e-14)
    v = np.array([1.0, -2.0, 0.5])
    out, (ga, gv) = run("matmul", A, v)
    assert out.shape == (5,)
    np.testing.assert_allclose(out, A[:, 0] - 2 * A[:, 1] + 0.5 * A[:, 2], rtol=1e-14)
    np.testing.assert_allclose(ga, np.tile(v, (5, 1)), rtol=1e-14)
    np.testing.assert_allclose(gv, A.sum(axis=0), rtol=1e-14)


def test_stack_and_index_values() -> None:
    cols = [A[:, 0], A[:, 1], A[:, 2]]
    out, grads = run("stack", *cols, g=np.arange(15.0).reshape(5, 3))
    np.testing.assert_array_equal(out, A)
    np.testing.assert_array_equal(grads[1], np.arange(15.0).reshape(5, 3)[:, 1])
    out, (gx,) = run("index", A, g=[1.0, 2.0, 3.0, 4.0, 5.0], i=2)
    np.testing.assert_array_equal(out, A[:, 2])
    expected = np.zeros((5, 3))
    expected[:, 2] = [1.0, 2.0, 3.0, 4.0, 5.0]
    np.testing.assert_array_equal(gx, expected)
    out, _ = run("stack", A[:, 0], A[:, 1], axis=0)
    np.testing.assert_array_equal(out, A[:, :2].T)


def test_concat_values() -> None:
    b = RNG.standard_normal((5, 2))
    out, (ga, gb) = run("concat", A, b, g=np.arange(25.0).reshape(5, 5))
    np.testing.assert_array_equal(out, np.hstack([A, b]))
    np.testing.assert_array_equal(ga, np.arange(25.0).reshape(5, 5)[:, :3])
    np.testing.assert_array_equal(gb, np.arange(25.0).reshape(5, 5)[:, 3:])


def test_reshape_values() -> None:
    x = np.arange(24.0).reshape(4, 6)
    out, (gx,) = run("reshape", x, g=np.ones((4, 2, 3)), shape=(2, 3))
    np.testing.assert_array_equal(out, np.arange(24.0).reshape(4, 2, 3))
    assert gx.shape == (4, 6)
    out, _ = run("reshape", x, shape=(-1, 2))
    assert out.shape == (4, 3, 2)


def test_sum_and_mean_values() -> None:
    out, (gx,) = run("mean", A, g=np.arange(5.0), axis=1)
    np.testing.assert_allclose(out, A.mean(axis=1), rtol=1e-14)
    np.testing.assert_array_equal(gx, np.repeat(np.arange(5.0)[:, None], 3, axis=1) / 3)
    out, (gx,) = run("mean", A, axis=0, keepdims=True)
    assert out.shape == (1, 3)
    np.testing.assert_allclose(gx, np.full((5, 3), 1 / 5), rtol=1e-15)
    out, (gx,) = run("sum", A, g=2.0)
    assert isinstance(out, np.ndarray) and out.shape == ()
    assert out == pytest.approx(A.sum(), rel=1e-14)
    np.testing.assert_array_equal(gx, np.full((5, 3), 2.0))


def test_arithmetic_values_broadcast() -> None:
    b = np.array([2.0, -4.0, 0.5])
    for name, expected in [("add", A + b), ("sub", A - b), ("mul", A * b), ("div", A / b)]:
        out, grads = run(name, A, b)
        np.testing.assert_allclose(out, expected, rtol=1e-15)
        assert all(gr.shape in {(5, 3), (3,)} for gr in grads)
    _, (ga, gb) = run("div", A, b)
    np.testing.assert_allclose(unbroadcast(gb, (3,)), (-A / b**2).sum(axis=0), rtol=1e-13)
    np.testing.assert_allclose(ga, np.tile(1 / b, (5, 1)), rtol=1e-15)


def test_op_call_validates_attributes() -> None:
    relu = graphdiff.get_op("relu")
    np.testing.assert_array_equal(relu(np.array([99.0, 101.0]), shift=100), [0.0, 1.0])
    with pytest.raises(pydantic.ValidationError):
        relu(np.array([1.0]), scale=2.0)


def test_check_op_catches_a_false_saves_declaration():
    """An op that says its vjp reads nothing but reads its output gets zeros there."""
    liar = graphdiff.Op(
        name="tanh_liar",
        forward=np.tanh,
        vjp=lambda g, out, x: (g * (1.0 - out * out),),
        elementwise=True,
        saves=(),  # false: the vjp reads `out`
        samples=lambda rng: [((rng.uniform(0.2, 2.0, (3, 2)),), {})],
    )
    with pytest.raises(OpContractError, match=r"'tanh_liar'.*central differences"):
        check_op(liar)
    honest = graphdiff.Op(
        name="tanh_honest", forward=liar.forward, vjp=liar.vjp, elementwise=True,
        saves=("out",), samples=liar.samples,
    )
    assert check_op(honest).samples == 1



def test_check_op_catches_per_operand_vjps_that_disagree_with_the_vjp():
    def fwd(z, t):
        return np.square(z - t)

    def vjp(g, out, z, t):
        return 2 * g * (z - t), -2 * g * (z - t)

    def dz_wrong(g, out, z, t):
        return g * (z - t)  # half of the true dz

    def dt(g, out, z, t):
        return -2 * g * (z - t)

    samples = [((np.array([0.5, -1.0, 2.0]), np.array([1.0, 0.3, -0.2])), {})]
    bad = graphdiff.Op(name="sq_parts", forward=fwd, vjp=vjp, arity=2, vjps=(dz_wrong, dt))
    with pytest.raises(OpContractError, match=r"'sq_parts'.*operand 0: vjps\[0\] differs"):
        check_op(bad, samples=samples)

    def dz(g, out, z, t):
        return 2 * g * (z - t)

    good = graphdiff.Op(name="sq_parts", forward=fwd, vjp=vjp, arity=2, vjps=(dz, dt))
    assert check_op(good, samples=samples).samples == 1


@pytest.mark.parametrize("name", ["hinge", "logistic", "squared_error"])
def test_losses_with_per_operand_vjps_compute_only_the_prediction_gradient(name):
    # the target is an input, which needs no gradient: the generated code calls the
    # prediction's part alone, and the result matches the interpreter
    G = nx.DiGraph()
    G.add_nodes_from(["x", "t"], op="input")
    G.add_node("y", op="neuron", activation="tanh", bias=0.1)
    G.add_edge("x", "y")
    G.add_node("E", op=name)
    G.add_edge("y", "E", port=0)
    G.add_edge("t", "E", port=1)
    net = graphdiff.compile(G, loss="E")
    e = net.nodes.index("E")
    assert f"_P0_{e}(" in net._program.source and f"_P1_{e}" not in net._program.source
    assert f"_B{e}(" not in net._program.source
    rng = np.random.default_rng(0)
    params = net.init_params(seed=0)
    inputs = {"x": rng.normal(size=9), "t": rng.choice([-1.0, 1.0], 9)}
    fast = net.backward(params, inputs)
    ref = net.backward(params, inputs, deltas=True)
    for k in ref.grads:
        assert fast.grads[k] == pytest.approx(ref.grads[k], rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("small", [True, False], ids=["small", "in place"])
@pytest.mark.parametrize(
    ("name", "textbook"),
    [("tanh", lambda out: 1.0 - out * out), ("sigmoid", lambda out: out * (1.0 - out))],
)
def test_activation_derivatives_are_the_textbook_formulas_bit_for_bit(name, textbook, small) -> None:
    # tanh and sigmoid build g * g' in one new array; the numbers must not change
    op = graphdiff.get_op(name)
    rng = np.random.default_rng(5)
    x = rng.uniform(-4.0, 4.0, (64, 3) if small else (200, 100))
    out = op.forward(x)
    g = rng.standard_normal(x.shape)
    for arr in (x, out, g):
        arr.flags.writeable = False  # neither may be written to
    d = op.derivative(x, out)
    np.testing.assert_array_equal(d, textbook(out))
    (got,) = op.vjp(g, out, x)
    np.testing.assert_array_equal(got, g * textbook(out))
    assert not np.shares_memory(got, out) and not np.shares_memory(got, g)
    seed = np.broadcast_to(0.25, x.shape)  # the engine's loss seed is such a view
    np.testing.assert_array_equal(op.vjp(seed, out, x)[0], 0.25 * textbook(out))


# --- per-operand vjps at kinks and extremes ------------------------------------------------
# The generated code calls a loss's vjps[i] alone (the target needs no gradient), and
# check_op compares them with the vjp only at its samples, which avoid the kinks: so each
# part is pinned here where the conventions matter.


@pytest.mark.parametrize("margin", [0.0, 1.0])
def test_hinge_vjps_at_the_kink_follow_the_convention(margin: float) -> None:
    op = graphdiff.get_op("hinge")
    assert op.vjps is not None
    # z t exactly m (the boundary counts as inside), inside, outside; both signs of t
    t = np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])
    z = np.array([margin, -margin, margin - 0.5, 0.25 - margin, margin + 2.0, -margin - 3.0])
    g = np.array([1.0, 2.0, 0.5, 3.0, 1.0, 1.0])
    out = op.forward(z, t, margin=margin)
    inside = np.array([True, True, True, True, False, False])
    np.testing.assert_array_equal(op.vjps[0](g, out, z, t, margin=margin),
                                  np.where(inside, -g * t, 0.0))
    np.testing.assert_array_equal(op.vjps[1](g, out, z, t, margin=margin),
                                  np.where(inside, -g * z, 0.0))
    # and for (N, k) predictions (the loss sums over k per data point)
    Z, T = np.tile(z[:, None], (1, 2)), np.tile(t[:, None], (1, 2))
    out2 = op.forward(Z, T, margin=margin)
    np.testing.assert_array_equal(op.vjps[0](g, out2, Z, T, margin=margin),
                                  np.where(inside[:, None], -g[:, None] * T, 0.0))


def _extreme_cases() -> list[tuple[str, tuple[np.ndarray, np.ndarray], dict[str, Any]]]:
    big = np.array([-800.0, -40.0, 0.0, 40.0, 800.0])
    signs = np.array([1.0, -1.0, 1.0, -1.0, -1.0])
    logits = np.array([[800.0, -800.0, 0.0], [0.0, 0.0, 0.0], [-1e300, 1e300, 5.0]])
    return [
        ("hinge", (np.zeros(5), signs), {}),
        ("hinge", (signs.copy(), signs), {"margin": 1.0}),
        ("logistic", (big, signs), {}),
        ("logistic", (np.zeros(5), signs), {}),
        ("squared_error", (signs.copy(), signs), {}),  # z = t: the minimum
        ("softmax_cross_entropy", (logits, np.array([0.0, 2.0, 1.0])), {}),
        ("softmax_cross_entropy", (logits, np.eye(3)), {}),
    ]


@pytest.mark.parametrize(("name", "xs", "attrs"), _extreme_cases())
def test_loss_vjps_equal_the_vjp_at_kinks_and_extremes(
    name: str, xs: tuple[np.ndarray, np.ndarray], attrs: dict[str, Any]
) -> None:
    op = graphdiff.get_op(name)
    assert op.vjps is not None
    checked = op.attrs(**attrs).model_dump()
    out = op.forward(*xs, **checked)
    g = np.linspace(0.5, 2.0, out.shape[0])
    whole = op.vjp(g, out, *xs, **checked)
    for i, part in enumerate(op.vjps):
        got = part(g, out, *xs, **checked)
        if whole[i] is None:
            assert got is None, (name, i)
            continue
        assert np.all(np.isfinite(got)), (name, i, got)
        np.testing.assert_array_equal(got, whole[i], err_msg=f"{name} vjps[{i}]")
