"""``graphdiff train`` on a user's own model and CSV: columns by name, the label column
and its mapping, ``--features``, ``--labels``, and the training flags (``--quiet``,
``--checkpoint``/``--every``/``--resume``, ``--optimizer``).

Accuracies are measured here with numpy from the saved parameters; expected
parameters come from :func:`graphdiff.fit` run on data mapped by hand.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

import graphdiff
from graphdiff.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def drawn_model(target: str = "sick", loss: str = "logistic") -> nx.DiGraph:
    """One neuron over inputs dose, age, weight (the user's names), loss E(z, target)."""
    G = nx.DiGraph()
    G.add_nodes_from(["dose", "age", "weight", target], op="input")
    G.add_node("z", op="neuron", activation="identity", bias="b")
    for u in ("dose", "age", "weight"):
        G.add_edge(u, "z", param=f"w_{u}")
    G.add_node("E", op=loss)
    G.add_edge("z", "E", port=0)
    G.add_edge(target, "E", port=1)
    return G


def patients(n: int = 120, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    cols = {c: rng.standard_normal(n) for c in ("weight", "id", "dose", "age")}
    cols["id"] = np.arange(n, dtype=float)
    z = 2.0 * cols["dose"] - cols["age"] + 0.5 * cols["weight"]
    cols["sick"] = (z > 0).astype(float)  # 0/1, as a spreadsheet has it
    return cols


def write_csv(path: Path, cols: dict[str, object], order: list[str]) -> None:
    rows = [",".join(order)]
    n = len(next(iter(cols.values())))  # type: ignore[arg-type]
    for i in range(n):
        rows.append(",".join(
            repr(float(cols[c][i])) if not isinstance(cols[c][i], str) else cols[c][i]  # type: ignore[index]
            for c in order
        ))
    path.write_text("\n".join(rows) + "\n")


def test_user_model_own_columns_and_01_labels(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    model = tmp_path / "m.json"
    graphdiff.save(model, drawn_model(), loss="E")
    cols = patients()
    csv = tmp_path / "patients.csv"
    write_csv(csv, cols, ["weight", "id", "sick", "dose", "age"])  # its own order
    out = tmp_path / "trained.json"
    code, text, err = run(capsys, "train", str(model), "--data", str(csv), "--out", str(out),
                          "--epochs", "150", "--lr", "0.1")
    assert code == 0, err
    assert "label column: 'sick'" in text
    assert "labels: 0 -> -1, 1 -> +1" in text
    assert "ignored column(s): 'id'" in text
    _, params, _ = graphdiff.load_model(out)
    z = (params["w_dose"] * cols["dose"] + params["w_age"] * cols["age"]
         + params["w_weight"] * cols["weight"] + params["b"])
    t = 2 * cols["sick"] - 1
    assert np.mean(z * t > 0) >= 0.95  # numpy, from the saved parameters
    # the same labels given to the Python API are refused, naming the fix
    net = graphdiff.compile(drawn_model(), loss="E")
    with pytest.raises(graphdiff.TargetError, match=r"found \{0, 1\}"):
        graphdiff.fit(net, net.init_params(), {k: cols[k] for k in net.inputs}, epochs=1)


def test_labels_explicit_and_by_default_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    model = tmp_path / "m.json"
    graphdiff.save(model, drawn_model(target="t"), loss="E")
    cols: dict[str, object] = dict(patients(40))
    cols["label"] = np.where(patients(40)["sick"] > 0, "yes", "no")
    csv = tmp_path / "p.csv"
    write_csv(csv, cols, ["dose", "age", "weight", "label"])
    out = tmp_path / "o.json"
    code, text, _ = run(capsys, "train", str(model), "--data", str(csv), "--out", str(out),
                        "--epochs", "1")
    assert code == 0 and "label column: 'label'" in text
    assert "labels: 'no' -> -1, 'yes' -> +1" in text
    code, text, _ = run(capsys, "train", str(model), "--data", str(csv), "--out", str(out),
                        "--epochs", "1", "--labels", "yes,no")
    assert code == 0 and "labels: 'yes' -> -1, 'no' -> +1" in text
    code, _, err = run(capsys, "train", str(model), "--data", str(csv), "--out", str(out),
                       "--labels", "yes,maybe")
    assert code == 1 and "'no'" in err and "--labels yes,maybe" in err


def test_class_names_for_softmax_and_features_by_position(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    model = tmp_path / "m.json"
    graphdiff.save(model, graphdiff.mlp([2, 3], notation="op", loss="softmax_cross_entropy"),
                   loss="E")
    d = graphdiff.spirals(60, classes=3, seed=1)
    names = np.array(["red", "green", "blue"])[d["t"].astype(int)]
    csv = tmp_path / "s.csv"
    write_csv(csv, {"p": d["x"][:, 0], "q": d["x"][:, 1], "colour": names, "junk": d["t"]},
              ["colour", "junk", "q", "p"])
    out = tmp_path / "o.json"
    code, text, _ = run(capsys, "train", str(model), "--data", str(csv), "--out", str(out),
                        "--label", "colour", "--features", "p,q", "--epochs", "3",
                        "--optimizer", "sgd", "--lr", "0.5")
    assert code == 0
    assert "labels: 'blue' -> 0, 'green' -> 1, 'red' -> 2" in text
    assert "features: columns 'p', 'q' -> input 'x' (in this order)" in text
    assert "ignored column(s): 'junk' (not a feature)" in text
    # numbered from 1, as many data sets do: encoded 0..K-1 too
    write_csv(csv, {"p": d["x"][:, 0], "q": d["x"][:, 1], "y": d["t"] + 1}, ["p", "q", "y"])
    code, text, _ = run(capsys, "train", str(model), "--data", str(csv), "--out",
                        str(tmp_path / "o2.json"), "--features", "p,q", "--epochs", "1")
    assert code == 0 and "labels: 1 -> 0, 2 -> 1, 3 -> 2" in text
    # the same run by hand: classes encoded in sort order, SGD(lr=0.5)
    net = graphdiff.compile(graphdiff.mlp([2, 3], notation="op",
                                          loss="softmax_cross_entropy"), loss="E")
    t = np.searchsorted(["blue", "green", "red"], names).astype(float)
    expected = graphdiff.fit(net, net.init_params(seed=0), {"x": d["x"], "t": t},
                             optimizer=graphdiff.SGD(lr=0.5), epochs=3, progress=False)
    _, params, _ = graphdiff.load_model(out)
    for k, v in expected.params.items():
        np.testing.assert_array_equal(params[k], v)


def test_npz_labels_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    model = tmp_path / "m.json"
    graphdiff.save(model, graphdiff.mlp([2, 1]), loss="E")
    d = graphdiff.blobs(20)
    np.savez(tmp_path / "d.npz", x=d["x"], t=np.zeros(20), outcome=(d["t"] + 1) / 2)
    code, text, _ = run(capsys, "train", str(model), "--data", str(tmp_path / "d.npz"),
                        "--out", str(model), "--label", "outcome", "--epochs", "1")
    assert code == 0 and "label column: 'outcome'" in text and "0 -> -1, 1 -> +1" in text


def test_checkpoint_resume_quiet(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    model = tmp_path / "m.json"
    graphdiff.save(model, graphdiff.mlp([2, 4, 1]), loss="E")
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    ck = tmp_path / "ck.json"
    common = ["--data", "moons", "--batch-size", "50", "--seed", "2"]
    assert run(capsys, "train", str(model), *common, "--out", str(a), "--epochs", "6")[0] == 0
    code, text, err = run(capsys, "train", str(model), *common, "--out", str(b), "--epochs",
                          "3", "--checkpoint", str(ck), "--every", "2", "--quiet")
    assert code == 0 and text == "" and err == ""
    assert graphdiff.load_checkpoint(ck).epoch == 3
    code, text, _ = run(capsys, "train", str(model), *common, "--out", str(b), "--epochs",
                        "6", "--resume", str(ck))
    assert code == 0 and "after 6 epochs" in text
    _, pa, _ = graphdiff.load_model(a)
    _, pb, _ = graphdiff.load_model(b)
    assert sorted(pa) == sorted(pb)
    assert all(np.array_equal(pa[k], pb[k]) for k in pa)  # bit-identical to one run


@pytest.mark.parametrize(
    ("argv", "culprit"),
    [
        (["--label", "nope"], "--label 'nope' is not a column"),
        (["--loss", "z"], "--loss 'z' is a node of op 'neuron', not a loss"),
        (["--every", "2"], "--every"),
        (["--optimizer", "rmsprop"], "--optimizer 'rmsprop'"),
        (["--features", "dose,age"], "match no column"),
        (["--label", "stage"], "holds 3 distinct value(s) {1, 2, 3}"),
    ],
)
def test_bad_train_options(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], culprit: str
) -> None:
    model = tmp_path / "m.json"
    graphdiff.save(model, drawn_model(), loss="E")
    csv = tmp_path / "p.csv"
    cols = {**patients(10), "stage": np.arange(10) % 3 + 1.0}
    write_csv(csv, cols, ["dose", "age", "weight", "sick", "stage"])
    before = model.read_bytes()
    code, _, err = run(capsys, "train", str(model), "--data", str(csv), "--out", str(model),
                       *argv)
    assert code == 1 and culprit in err and err.count("\n") == 1, err
    assert model.read_bytes() == before


def test_workers_without_dask_is_refused_first(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "distributed" else real(name, *a))
    missing = tmp_path / "missing.json"  # not even loaded: Dask is checked first
    code, _, err = run(capsys, "train", str(missing), "--data", "moons", "--out",
                       str(tmp_path / "o.json"), "--workers", "2")
    assert code == 1 and 'pip install -e ".[dask]"' in err and "missing.json" not in err


# -- what a newcomer tripped on (issue 14, item 6) --------------------------------------


def test_info_and_gradcheck_sort_naturally_and_summarise(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    model = tmp_path / "m.json"
    G = graphdiff.mlp([2, 24, 1])
    net = graphdiff.compile(G, loss="E")
    graphdiff.save(model, G, net.init_params(seed=0), loss="E")
    code, text, _ = run(capsys, "info", str(model))
    assert code == 0 and "(29 nodes; --all lists every node)" in text
    assert "... 87 more parameters (--all lists every parameter)" in text
    assert len(text.splitlines()) < 30
    code, every, _ = run(capsys, "info", str(model), "--all")
    names = [line.split()[0] for line in every.splitlines() if "->" in line or ".bias" in line]
    assert len(names) == 97 and names.index("h1_2.bias") < names.index("h1_10.bias")
    code, text, _ = run(capsys, "gradcheck", str(model), "--data", "moons", "--n", "10")
    assert code == 0 and "77 more rows pass with smaller errors" in text
    assert text.splitlines()[-1] == "97 of 97 checks pass"
    code, every, _ = run(capsys, "gradcheck", str(model), "--data", "moons", "--n", "10",
                         "--all")
    rows = [line.split()[0] for line in every.splitlines() if line.endswith("yes")]
    assert len(rows) == 97 and rows.index("h1_2->y") < rows.index("h1_10->y")


def test_cli_warnings_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    G = graphdiff.mlp([2, 1])
    G.add_node("unused", op="input")
    model = tmp_path / "m.json"
    graphdiff.save(model, G, loss="E")
    code, _, err = run(capsys, "train", str(model), "--data", "blobs", "--out",
                       str(tmp_path / "o.json"), "--epochs", "1")
    assert code == 0
    assert err == ("graphdiff: warning: the loss 'E' does not depend on input(s) ['unused']; "
                   "they are ignored\n")


def test_demo_without_hidden_layers_says_it_is_linear(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, text, _ = run(capsys, "demo", "--hidden", "", "--epochs", "2", "--out",
                        str(tmp_path / "d"))
    assert code == 0 and "network: 2-1 in neuron notation, no hidden layer (a linear model)" in text
    assert "tanh" not in text
