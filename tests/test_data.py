"""Data sets: the generators' geometry, loading CSV/.npz files, and feeding networks."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

import graphdiff
from graphdiff.data import BUILTIN_DATA, DataError, feed, load_data

GENERATORS = sorted(BUILTIN_DATA)


@pytest.mark.parametrize("name", GENERATORS)
@pytest.mark.parametrize("n", [200, 7, 50])
def test_generators_shape_labels_balance(name: str, n: int) -> None:
    d = BUILTIN_DATA[name](n, seed=4)
    assert set(d) == {"x", "t"}
    assert d["x"].shape == (n, 2) and d["x"].dtype == np.float64
    assert d["t"].shape == (n,) and d["t"].dtype == np.float64
    plus, minus = int((d["t"] == 1).sum()), int((d["t"] == -1).sum())
    assert plus + minus == n and abs(plus - minus) <= 1
    assert np.all(np.isfinite(d["x"]))


@pytest.mark.parametrize("name", GENERATORS)
def test_generators_are_seeded(name: str) -> None:
    make = BUILTIN_DATA[name]
    a, b, c = make(30, seed=1), make(30, seed=1), make(30, seed=2)
    assert np.array_equal(a["x"], b["x"]) and np.array_equal(a["t"], b["t"])
    assert not np.array_equal(a["x"], c["x"])
    # the classes are mixed, not one block after the other (the perceptron visits in order)
    assert 0 < np.count_nonzero(np.diff(a["t"])) < 29


def test_blobs_are_separable_with_a_margin() -> None:
    for noise in (0.2, 0.5, 2.0):
        d = graphdiff.blobs(300, noise=noise, seed=0)
        distance = d["x"] @ np.array([1.0, 1.0]) / np.sqrt(2)  # signed distance to x1 + x2 = 0
        assert np.all(d["t"] * distance >= 0.25)


def test_xor_labels_are_the_xor_of_the_signs() -> None:
    d = graphdiff.xor(400, noise=0.6, seed=3)
    positive = d["x"] > 0
    assert np.array_equal(d["t"] == 1, positive[:, 0] ^ positive[:, 1])


def test_moons_lie_on_their_half_circles_without_noise() -> None:
    d = graphdiff.moons(41, noise=0.0)
    upper, lower = d["x"][d["t"] == 1], d["x"][d["t"] == -1]
    np.testing.assert_allclose(np.hypot(upper[:, 0], upper[:, 1]), 1.0, atol=1e-12)
    assert np.all(upper[:, 1] >= -1e-12)
    np.testing.assert_allclose(np.hypot(lower[:, 0] - 1, lower[:, 1] - 0.5), 1.0, atol=1e-12)
    assert np.all(lower[:, 1] <= 0.5 + 1e-12)


def test_circles_radii_without_noise() -> None:
    d = graphdiff.circles(60, noise=0.0, seed=2)
    r = np.hypot(d["x"][:, 0], d["x"][:, 1])
    np.testing.assert_allclose(r[d["t"] == 1], 0.5, atol=1e-12)
    np.testing.assert_allclose(r[d["t"] == -1], 1.0, atol=1e-12)


@pytest.mark.parametrize("classes", [2, 3, 5])
def test_spirals_follow_their_arms_without_noise(classes: int) -> None:
    n = 20 * classes + 1
    d = graphdiff.spirals(n, noise=0.0, classes=classes)
    if classes == 2:
        assert set(d["t"].tolist()) == {-1.0, 1.0}
        arm = np.where(d["t"] == 1, 0, 1)
    else:
        counts = np.bincount(d["t"].astype(int))
        assert counts.tolist() == [21] + [20] * (classes - 1)
        arm = d["t"].astype(int)
    r = np.hypot(d["x"][:, 0], d["x"][:, 1])
    assert np.all((r >= 0.1 - 1e-12) & (r <= 1 + 1e-12))
    expected = 2 * np.pi * arm / classes + 3 * np.pi * r
    angle = np.arctan2(d["x"][:, 1], d["x"][:, 0])
    np.testing.assert_allclose(np.angle(np.exp(1j * (angle - expected))), 0.0, atol=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "culprit"),
    [
        ({"noise": -1.0}, "noise"),
        ({"noise": float("nan")}, "noise"),
        ({"n": 1}, "n must"),
        ({"n": 2.5}, "n must"),
    ],
)
def test_generator_arguments_are_checked(kwargs: dict, culprit: str) -> None:
    n = kwargs.pop("n", 10)
    with pytest.raises(DataError, match=culprit):
        graphdiff.moons(n, **kwargs)


def test_spirals_classes_checked() -> None:
    with pytest.raises(DataError, match="classes"):
        graphdiff.spirals(10, classes=1)


# --- load_data --------------------------------------------------------------------------


def test_load_builtin_equals_generator() -> None:
    a, b = load_data("spirals", n=31, seed=5), graphdiff.spirals(31, seed=5)
    assert np.array_equal(a["x"], b["x"]) and np.array_equal(a["t"], b["t"])


def test_unknown_builtin_suggests_close_names() -> None:
    with pytest.raises(DataError, match=r"'moon'.*did you mean 'moons'"):
        load_data("moon")
    with pytest.raises(DataError, match=r"'zzz'.*Built-in: blobs"):
        load_data("zzz")
    with pytest.raises(DataError, match="label"):
        load_data("xor", label="t")


def write(tmp_path: Path, text: str, name: str = "d.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_with_header_label_by_name_index_and_default(tmp_path: Path) -> None:
    path = write(tmp_path, "x1,label,x2\n1.5,1,-2\n\n0.25,-1,3e2\n")
    for label in ("label", 1, -2, "1", "-2"):
        d = load_data(path, label=label)
        np.testing.assert_array_equal(d["x"], [[1.5, -2.0], [0.25, 300.0]])
        np.testing.assert_array_equal(d["t"], [1.0, -1.0])
    d = load_data(str(path))  # the last column by default
    np.testing.assert_array_equal(d["t"], [-2.0, 300.0])
    np.testing.assert_array_equal(d["x"], [[1.5, 1.0], [0.25, -1.0]])


def test_csv_without_header_and_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(b"\xef\xbb\xbf1,2,1\r\n3,4,-1\r\n")
    d = load_data(path)
    np.testing.assert_array_equal(d["x"], [[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(d["t"], [1.0, -1.0])


@pytest.mark.parametrize(
    ("text", "label", "message"),
    [
        ("a,b,t\n1,2,1\n3,4\n", None, r"line 3 has 2 cells, expected 3"),
        ("a,x2,t\n1,2,1\n1,abc,-1\n", None, r"line 3, column 'x2': 'abc' is not a number"),
        ("1,2,1\n1,,-1\n", None, r"line 2, column '1': '' is empty"),
        ("a,b,t\n1,nan,1\n", None, r"line 2, column 'b': 'nan' is not finite"),
        ("a,b,t\n1,2,inf\n", None, r"line 2, column 't': 'inf' is not finite"),
        ("", None, "the file is empty"),
        ("\n\n", None, "the file is empty"),
        ("a,b,t\n", None, "no data rows after the header"),
        ("t\n1\n", None, "at least two columns"),
        ("a,b,t\n1,2,1\n", "label", r"no label column 'label'; the header has \['a', 'b', 't'\]"),
        ("1,2,1\n", "t", "no label column 't'; the file has no header row"),
        ("a,b,t\n1,2,1\n", 3, "label column index 3 is out of range"),
        ("1,2,1\n", "-4", "label column index -4 is out of range"),
    ],
)
def test_csv_errors_name_file_line_and_column(
    tmp_path: Path, text: str, label: str | int | None, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DataError, match=message) as err:
        load_data(path, label=label)
    assert str(path) in str(err.value)


def test_missing_and_unknown_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.csv: no such file"):
        load_data(str(tmp_path / "nope.csv"))
    other = write(tmp_path, "1,2\n", "d.txt")
    with pytest.raises(DataError, match=r"d\.txt: unknown file type '\.txt'"):
        load_data(other)
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(DataError, match=r"bin\.csv: not a readable CSV"):
        load_data(binary)


def test_npz_round_trip_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((9, 3)), rng.choice([-1.0, 1.0], 9)
    np.savez(tmp_path / "a.npz", x=x, t=t, other=np.arange(3))
    np.savez_compressed(tmp_path / "b.npz", X=x.astype(np.float32), y=t.astype(np.int64))
    np.savez(tmp_path / "c.npz", x=x, cls=t)
    a = load_data(tmp_path / "a.npz")
    assert np.array_equal(a["x"], x) and np.array_equal(a["t"], t)
    b = load_data(tmp_path / "b.npz")
    assert b["x"].dtype == np.float64 and np.array_equal(b["x"], x.astype(np.float32))
    assert np.array_equal(b["t"], t)
    c = load_data(tmp_path / "c.npz", label="cls")
    assert np.array_equal(c["t"], t)


def test_npz_errors_name_the_key(tmp_path: Path) -> None:
    x, t = np.zeros((4, 2)), np.ones(4)
    cases = {
        "nox.npz": ({"t": t}, r"no feature array; expected key 'x' or 'X', found \['t'\]"),
        "not.npz": ({"x": x}, r"no label array; expected key 't' or 'y'"),
        "ndim.npz": ({"x": np.zeros(4), "t": t}, r"key 'x' must have 2 axes, has shape \(4,\)"),
        "rows.npz": ({"x": x, "t": np.ones(3)}, r"'x' has 4 rows but 't' has 3 labels"),
        "nan.npz": ({"x": x, "t": np.array([1, 1, np.nan, 1])}, r"key 't'.*index \(2,\)"),
        "str.npz": ({"x": x, "t": np.array(["a"] * 4)}, r"key 't' has dtype <U1"),
    }
    for name, (arrays, message) in cases.items():
        np.savez(tmp_path / name, **arrays)
        with pytest.raises(DataError, match=message) as err:
            load_data(tmp_path / name)
        assert name in str(err.value)
    np.savez(tmp_path / "a.npz", x=x, t=t)
    with pytest.raises(DataError, match="label must name a key"):
        load_data(tmp_path / "a.npz", label=0)


def test_npz_object_arrays_are_refused_without_unpickling(tmp_path: Path) -> None:
    obj = np.empty(4, dtype=object)
    obj[:] = [1, 2, 3, 4]
    np.savez(tmp_path / "o.npz", x=np.zeros((4, 2)), t=obj)
    with pytest.raises(DataError, match="key 't' has dtype object"):
        load_data(tmp_path / "o.npz")


def test_npz_header_claiming_more_than_stored_is_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": (10**9, 2)}
    )
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", buf.getvalue() + b"\0" * 16)
        z.writestr("t.npy", buf.getvalue())
    with pytest.raises(DataError, match=r"key 'x' declares shape \(1000000000, 2\)"):
        load_data(path)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"junk\.npz: not a readable \.npz"):
        load_data(tmp_path / "junk.npz")


# --- feed ------------------------------------------------------------------------------


def neuron_net() -> graphdiff.Network:
    G = nx.DiGraph()
    G.add_nodes_from(["x1", "x2", "t"], op="input")
    G.add_node("y", op="neuron")
    G.add_edges_from([("x1", "y"), ("x2", "y")])
    G.add_node("E", op="hinge")
    G.add_edge("y", "E", port=0)
    G.add_edge("t", "E", port=1)
    return graphdiff.compile(G, loss="E")


def op_net() -> graphdiff.Network:
    G = nx.DiGraph()
    G.add_nodes_from(["x", "t"], op="input")
    G.add_node("w", op="param", shape=(2,))
    G.add_node("y", op="matmul")
    G.add_edge("x", "y", port=0)
    G.add_edge("w", "y", port=1)
    G.add_node("E", op="hinge")
    G.add_edge("y", "E", port=0)
    G.add_edge("t", "E", port=1)
    return graphdiff.compile(G, loss="E")


def test_feed_both_notations_same_loss() -> None:
    d = graphdiff.blobs(20, seed=1)
    a, b = neuron_net(), op_net()
    fa, fb = feed(a, d), feed(b, d)
    assert sorted(fa) == ["t", "x1", "x2"] and sorted(fb) == ["t", "x"]
    np.testing.assert_array_equal(fa["x2"], d["x"][:, 1])
    assert fb["x"] is d["x"] and fa["t"] is d["t"]
    w = np.array([0.3, -0.7])
    la = a.backward({"x1->y": w[0], "x2->y": w[1]}, fa).loss
    lb = b.backward({"w": w}, fb).loss
    expected = np.maximum(0, -(d["x"] @ w) * d["t"]).mean()
    assert la == pytest.approx(expected, rel=1e-14) and lb == pytest.approx(expected, rel=1e-14)


def test_feed_exact_key_wins_and_errors_name_the_input() -> None:
    d = {"x": np.ones((3, 2)), "x1": np.arange(3.0), "t": np.ones(3)}
    assert np.array_equal(feed(["x1"], d)["x1"], np.arange(3.0))
    with pytest.raises(DataError, match=r"input 'x3' takes column 3 of data\['x'\].*\(3, 2\)"):
        feed(["x3"], d)
    with pytest.raises(DataError, match=r"input 'target' matches nothing.*\['t', 'x', 'x1'\]"):
        feed(["x1", "target"], d)
    with pytest.raises(DataError, match="input 'x1' takes column 1"):
        feed(["x1"], {"x": np.ones(3)})
