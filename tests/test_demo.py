"""``graphdiff demo``, ``graphdiff train`` and ``graphdiff draw``, end to end.

Printed numbers are checked against the model files the commands write,
re-evaluated here with the loaded parameters; pictures are checked to be real
PNG images.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from test_viz import check_png

import graphdiff
from graphdiff.cli import main
from graphdiff.train import evaluate

PICTURES = ("decision_boundary.png", "loss.png", "network.png")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in output:\n{text}"
    return float(match.group(1))


def compiled(path: Path) -> tuple[graphdiff.Network, dict[str, np.ndarray]]:
    G, params, loss = graphdiff.load_model(path)
    return graphdiff.compile(G, loss=loss), params


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model file of one short demo run (20 epochs), for the train and draw tests."""
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--epochs", "20", "--out", str(out), "--quiet"]) == 0
    return out / "model.json"


def test_demo_writes_real_pictures_and_a_loadable_model(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "nested" / "demo"
    code, text, err = run(capsys, "demo", "--epochs", "20", "--out", str(out))
    assert code == 0 and err == ""  # no terminal: no progress bar
    for name in PICTURES:
        height, width = check_png(out / name)
        assert min(height, width) >= 200 and max(height, width) <= 2500, name
    net, params = compiled(out / "model.json")
    assert net.loss == "E" and sorted(params) == sorted(net.params)
    assert len(params) == 2 * 16 + 16 * 16 + 16 + 16 + 16 + 1  # the 2-16-16-1 weights, biases
    # the printed loss and accuracy are those of the saved parameters on moons(200, seed=0)
    metrics = evaluate(net, params, graphdiff.feed(net, graphdiff.moons(200, seed=0)))
    assert number(r"final loss ([0-9.e+-]+)", text) == pytest.approx(metrics["loss"], rel=1e-3)
    assert number(r"accuracy ([0-9.]+)% \(\d+/200\) on the training", text) == pytest.approx(
        100 * metrics["accuracy"], abs=0.05
    )
    new = evaluate(net, params, graphdiff.feed(net, graphdiff.moons(200, seed=1)))
    assert number(r"([0-9.]+)% \(\d+/200\) on the new points", text) == pytest.approx(
        100 * new["accuracy"], abs=0.05
    )
    assert text.splitlines()[-1] == f"output folder: {out.resolve()}"
    assert "2-16-16-1" in text and "337 parameters" in text


def test_demo_defaults_reach_97_percent_on_moons(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, text, _ = run(capsys, "demo")  # its speed is benchmarked, not asserted here
    assert code == 0
    net, params = compiled(tmp_path / "graphdiff-demo" / "model.json")  # under the cwd
    metrics = evaluate(net, params, graphdiff.feed(net, graphdiff.moons(200, seed=0)))
    assert metrics["accuracy"] >= 0.97
    assert number(r"accuracy ([0-9.]+)%", text) >= 97.0


@pytest.mark.parametrize(
    ("dataset", "activation", "hidden"),
    [("xor", "relu", "8"), ("circles", "sigmoid", "4,4,4"), ("blobs", "tanh", "")],
)
def test_demo_options_shape_the_network(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, dataset: str, activation: str, hidden: str
) -> None:
    code, text, _ = run(capsys, "demo", "--dataset", dataset, "--activation", activation,
                        "--hidden", hidden, "--epochs", "3", "--seed", "5", "--lr", "0.1",
                        "--out", str(tmp_path))
    assert code == 0
    G, _ = graphdiff.load(tmp_path / "model.json")
    sizes = [int(s) for s in hidden.split(",") if s]
    hidden_neurons = [n for n, d in G.nodes(data=True) if d.get("op") == "neuron" and n != "y"]
    assert len(hidden_neurons) == sum(sizes)
    assert {G.nodes[n]["activation"] for n in hidden_neurons} <= {activation}
    assert f"data: {dataset}, " in text and "2-" + "".join(f"{s}-" for s in sizes) + "1" in text
    for name in PICTURES:
        check_png(tmp_path / name)


# -- train and draw -----------------------------------------------------------------------


def test_train_continues_from_the_files_parameters(
    capsys: pytest.CaptureFixture[str], demo_model: Path, tmp_path: Path
) -> None:
    model = demo_model
    out = tmp_path / "trained.json"
    code, text, err = run(capsys, "train", str(model), "--data", "moons", "--out", str(out),
                          "--epochs", "15", "--lr", "0.01", "--batch-size", "50", "--seed", "3")
    assert code == 0 and err == ""
    net, start = compiled(model)
    data = graphdiff.feed(net, graphdiff.moons(200, seed=3))
    expected = graphdiff.fit(net, start, data, optimizer=graphdiff.Adam(lr=0.01), epochs=15,
                             batch_size=50, seed=3, progress=False)
    trained_net, trained = compiled(out)
    assert trained_net.loss == "E"
    for name, value in expected.params.items():
        assert np.array_equal(trained[name], value), name  # the same run, bit for bit
    assert "337 parameters (337 from the file, 0 drawn with seed 3)" in text
    before, after = evaluate(net, start, data), evaluate(net, trained, data)
    assert number(r"before: loss ([0-9.e+-]+)", text) == pytest.approx(before["loss"], rel=1e-3)
    assert number(r"after 15 epochs: loss ([0-9.e+-]+)", text) == pytest.approx(
        after["loss"], rel=1e-3
    )
    assert after["loss"] < before["loss"]
    assert text.splitlines()[-1] == f"wrote {out}"


def test_train_on_a_csv_file_and_in_place(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # a model saved without parameters: they are drawn with --seed
    G = graphdiff.mlp([2, 3, 1], "tanh")
    model = tmp_path / "m.json"
    graphdiff.save(model, G, loss="E")
    d = graphdiff.xor(40, seed=2)
    csv = tmp_path / "xor.csv"
    rows = ["a,b,label"] + [f"{a!r},{b!r},{t:+.0f}" for (a, b), t in zip(
        d["x"].tolist(), d["t"].tolist(), strict=True)]  # repr: the exact floats
    csv.write_text("\n".join(rows) + "\n")
    code, text, _ = run(capsys, "train", str(model), "--data", str(csv), "--out", str(model),
                        "--epochs", "5", "--seed", "4")
    assert code == 0
    net = graphdiff.compile(G, loss="E")
    # the CSV's columns, as the command reads them: the same numbers as d's, but
    # contiguous, and BLAS sums a strided column in another order (last-bit changes)
    loaded = graphdiff.load_data(csv, seed=4)
    np.testing.assert_array_equal(loaded["x"], d["x"])
    expected = graphdiff.fit(net, net.init_params(seed=4), graphdiff.feed(net, loaded),
                             optimizer=graphdiff.Adam(lr=0.02), epochs=5, progress=False)
    _, trained = compiled(model)
    assert all(np.array_equal(trained[k], v) for k, v in expected.params.items())
    assert "13 parameters (0 from the file, 13 drawn with seed 4)" in text
    assert f"data: {csv}, 40 points" in text


def test_train_a_squared_error_model_prints_no_accuracy(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    model = tmp_path / "m.json"
    graphdiff.save(model, graphdiff.mlp([2, 1], loss="squared_error"), loss="E")
    code, text, _ = run(capsys, "train", str(model), "--data", "blobs", "--out", str(model),
                        "--epochs", "2")
    assert code == 0
    assert re.search(r"^after 2 epochs: loss [0-9.e+-]+$", text, re.MULTILINE)
    assert "accuracy" not in text


def test_draw_a_saved_model(
    capsys: pytest.CaptureFixture[str], demo_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "graph.png"
    code, text, _ = run(capsys, "draw", str(demo_model), "-o", str(out))
    assert code == 0 and text == f"wrote {out}\n"
    check_png(out)


# -- bad input: exit code 1, one line naming the culprit, nothing written -------------------


@pytest.mark.parametrize(
    ("argv", "culprit"),
    [
        (["demo", "--dataset", "spiral"], "'spirals'"),  # the suggestion
        (["demo", "--dataset", "data.csv"], "'data.csv'"),
        (["demo", "--hidden", "16,x"], "--hidden"),
        (["demo", "--hidden", "16,0"], "--hidden"),
        (["demo", "--activation", "tanhh"], "'tanhh'"),
        (["demo", "--activation", "hinge"], "'hinge'"),
        (["demo", "--epochs", "0"], "--epochs"),
        (["demo", "--lr", "-1"], "lr"),
    ],
)
def test_demo_bad_options(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], culprit: str
) -> None:
    out = tmp_path / "out"
    code, text, err = run(capsys, *argv, "--out", str(out))
    assert code == 1 and text == ""
    assert err.startswith("graphdiff: error: ") and err.count("\n") == 1
    assert culprit in err
    assert not out.exists()  # refused before anything was written


def test_demo_out_is_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "taken"
    path.write_text("keep me")
    code, _, err = run(capsys, "demo", "--out", str(path))
    assert code == 1 and "--out" in err and str(path) in err and err.count("\n") == 1
    assert path.read_text() == "keep me"


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "model.json"
    graphdiff.save(path, graphdiff.mlp([2, 2, 1]), loss="E")
    return path


@pytest.mark.parametrize(
    ("argv", "culprit"),
    [
        (["train", "{missing}", "--data", "moons"], "missing.json"),
        (["train", "{model}", "--data", "moon"], "'moon'"),
        (["train", "{model}", "--data", "{missing}"], "missing.json"),
        (["train", "{model}", "--data", "moons", "--loss", "Q"], "'Q'"),
        (["train", "{model}", "--data", "moons", "--epochs", "-1"], "epochs"),
        (["train", "{model}", "--data", "moons", "--batch-size", "0"], "batch_size"),
        (["train", "{noloss}", "--data", "moons"], "--loss"),
        (["train", "{garbage}", "--data", "moons"], "garbage.json"),
        (["train", "{model}", "--data", "{wide}"], "'x2'"),
        (["draw", "{missing}"], "missing.json"),
    ],
)
def test_train_and_draw_bad_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, saved: Path, argv: list[str],
    culprit: str,
) -> None:
    noloss = tmp_path / "noloss.json"
    graphdiff.save(noloss, graphdiff.mlp([2, 1]))
    (tmp_path / "garbage.json").write_text("{not json")
    # one feature column for a network with inputs x1 and x2
    np.savez(tmp_path / "wide.npz", x=np.ones((4, 1)), t=np.ones(4))
    names = {"model": saved, "missing": tmp_path / "missing.json", "noloss": noloss,
             "garbage": tmp_path / "garbage.json", "wide": tmp_path / "wide.npz"}
    before = saved.read_bytes()
    out = tmp_path / "out.json"
    code, _, err = run(capsys, *[a.format(**names) for a in argv], "--out", str(out))
    assert code == 1
    assert err.startswith("graphdiff: error: ") and err.count("\n") == 1, err
    assert culprit in err
    assert not out.exists() and saved.read_bytes() == before


def test_draw_into_a_missing_folder(
    capsys: pytest.CaptureFixture[str], saved: Path, tmp_path: Path
) -> None:
    out = tmp_path / "no" / "graph.png"
    code, _, err = run(capsys, "draw", str(saved), "-o", str(out))
    assert code == 1 and str(out) in err and err.count("\n") == 1
