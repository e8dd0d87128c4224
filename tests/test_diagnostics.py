"""Training diagnostics, checked against numpy backprop by hand; progress through logging."""

from __future__ import annotations

import itertools
import logging
import sys
from pathlib import Path
from types import ModuleType

import networkx as nx
import numpy as np
import pytest
from matplotlib.figure import Figure
from test_viz import check_png

import graphdiff
from graphdiff.diagnostics import layer_rms, layers, node_diagnostics
from graphdiff.progress import in_notebook
from graphdiff.viz import VizError, draw_network, plot_diagnostics

DEPTH, WIDTH = 4, 3


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def by_hand(params: dict, x: np.ndarray, t: np.ndarray, act: str) -> dict[str, dict]:
    """The lecture's backprop in numpy: δ_j = Σ_k δ_k g'(z_k) w_jk, per data point.

    Returns per neuron the RMS of δ over the points and the fractions with g'(z) = 0
    and with |g'(z)| < 1e-3 · max g' (sigmoid: max 1/4; relu: max 1).
    """
    n = len(t)
    sizes = [2] + [WIDTH] * DEPTH + [1]
    names = [["x1", "x2"]] + [[f"h{i}_{k}" for k in range(1, WIDTH + 1)]
                              for i in range(1, DEPTH + 1)] + [["y"]]  # fmt: skip
    W = [np.array([[params[f"{u}->{v}"] for v in names[i + 1]] for u in names[i]])
         for i in range(len(sizes) - 1)]  # fmt: skip
    b = [np.array([params[f"{v}.bias"] for v in names[i + 1]]) for i in range(len(sizes) - 1)]
    a, zs = [x], []
    for i in range(len(W)):
        z = a[-1] @ W[i] + b[i]
        zs.append(z)
        last = i == len(W) - 1
        a.append(z if last else (sigmoid(z) if act == "sigmoid" else np.maximum(z, 0.0)))
    y = a[-1][:, 0]
    delta = (-t / (1.0 + np.exp(t * y)) / n)[:, None]  # ∂E/∂y of the mean logistic loss
    out: dict[str, dict] = {"y": {"delta_rms": np.sqrt(np.mean(delta**2)), "dead": 0.0,
                                  "saturated": 0.0}}  # fmt: skip
    g_prime = np.ones_like(delta)  # the output is the identity
    for i in range(len(W) - 1, 0, -1):
        delta = (delta * g_prime) @ W[i].T  # δ of layer i's neurons
        z = zs[i - 1]
        if act == "sigmoid":
            g_prime, peak = sigmoid(z) * (1 - sigmoid(z)), 0.25
        else:
            g_prime, peak = (z > 0).astype(float), 1.0
        for k, name in enumerate(names[i]):
            out[name] = {"delta_rms": np.sqrt(np.mean(delta[:, k] ** 2)),
                         "dead": np.mean(g_prime[:, k] == 0),
                         "saturated": np.mean(g_prime[:, k] < 1e-3 * peak)}  # fmt: skip
    return out


@pytest.mark.parametrize("act", ["sigmoid", "relu"])
def test_fit_diagnostics_equal_numpy_backprop_by_hand(act: str) -> None:
    G = graphdiff.mlp([2] + [WIDTH] * DEPTH + [1], act)
    net = graphdiff.compile(G, loss="E")
    d = graphdiff.moons(60, seed=2)
    params = net.init_params(seed=5)
    if act == "sigmoid":  # push some first-layer units into the sigmoid's tails
        params["x1->h1_1"], params["h1_1.bias"] = 12.0, 8.0
    result = graphdiff.fit(net, params, graphdiff.feed(net, d), epochs=2, diagnostics=True,
                           optimizer=graphdiff.SGD(lr=0.5), progress=False)
    rows = result.history
    assert all(sorted(row["nodes"]) == sorted(n for n in G if G.nodes[n]["op"] == "neuron")
               for row in rows)  # fmt: skip
    expected = by_hand(result.params, d["x"], d["t"], act)  # the last epoch's final params
    got = rows[-1]["nodes"]
    for node, stats in expected.items():
        assert got[node]["delta_rms"] == pytest.approx(stats["delta_rms"], rel=1e-10), node
        assert got[node]["dead"] == stats["dead"], node
        assert got[node]["saturated"] == stats["saturated"], node
    if act == "relu":
        assert any(s["dead"] > 0 for s in got.values())
        assert all(s["saturated"] == s["dead"] for s in got.values())  # relu' is 0 or 1
    else:
        assert got["h1_1"]["saturated"] > 0.3 and all(s["dead"] == 0 for s in got.values())


def test_deep_sigmoid_delta_rms_falls_layer_by_layer_to_the_input() -> None:
    """The issue's target, with per-layer values from the numpy computation."""
    G = graphdiff.mlp([2] + [WIDTH] * DEPTH + [1], "sigmoid")
    net = graphdiff.compile(G, loss="E")
    d = graphdiff.moons(60, seed=2)
    params = net.init_params(seed=5)
    stats = node_diagnostics(net, params, graphdiff.feed(net, d))
    groups = layers(G, stats)[::-1]  # output first
    assert [len(g) for g in groups] == [1] + [WIDTH] * DEPTH
    ours = [layer_rms(stats, g) for g in groups]
    hand = by_hand(params, d["x"], d["t"], "sigmoid")
    theirs = [np.sqrt(np.mean([hand[n]["delta_rms"] ** 2 for n in g])) for g in groups]
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)
    assert all(a > b for a, b in itertools.pairwise(theirs))  # strictly falling


def test_op_notation_activation_nodes_are_diagnosed() -> None:
    G = graphdiff.mlp([2, 4, 1], "relu", notation="op")
    net = graphdiff.compile(G, loss="E")
    d = graphdiff.feed(net, graphdiff.moons(40, seed=1))
    params = net.init_params(seed=2)
    stats = node_diagnostics(net, params, d)
    res = net.backward(params, d, deltas=True)
    relu = next(n for n in G if G.nodes[n]["op"] == "relu")
    assert set(stats) == {n for n in G if G.nodes[n]["op"] in ("relu", "identity")}
    z = res.values[next(iter(G.predecessors(relu)))]  # (40, 4): 160 values
    assert stats[relu]["dead"] == np.mean(z <= 0)
    assert stats[relu]["delta_rms"] == pytest.approx(np.sqrt(np.mean(res.deltas[relu] ** 2)))


def test_diagnostics_survive_a_checkpoint_and_resume_is_bit_identical(tmp_path: Path) -> None:
    G = graphdiff.mlp([2, 4, 4, 1], "tanh")
    G = nx.relabel_nodes(G, {"h1_1": 11})  # an int node id goes through the file too
    net = graphdiff.compile(G, loss="E")
    d = graphdiff.feed(net, graphdiff.moons(50, seed=3))
    p0 = net.init_params(seed=1)
    kw = {"epochs": 6, "batch_size": 10, "diagnostics": True, "progress": False}
    full = graphdiff.fit(net, p0, d, **kw)
    ck = tmp_path / "ck.json"
    graphdiff.fit(net, p0, d, **{**kw, "epochs": 3}, checkpoint=ck)
    back = graphdiff.load_checkpoint(ck).history
    assert [list(row["nodes"]) for row in back] == [list(full.history[0]["nodes"])] * 3
    assert 11 in back[0]["nodes"]
    resumed = graphdiff.fit(net, None, d, **kw, resume=ck)

    def strip(history: list) -> list:
        return [{k: v for k, v in row.items() if k != "time"} for row in history]

    assert strip(resumed.history) == strip(full.history)  # floats compared exactly
    assert all(np.array_equal(resumed.params[p], full.params[p]) for p in full.params)


def test_diagnostics_refused_with_a_client() -> None:
    net = graphdiff.compile(graphdiff.mlp([2, 1]), loss="E")
    d = graphdiff.feed(net, graphdiff.xor(8))
    with pytest.raises(graphdiff.train.FitError, match="diagnostics=True"):
        graphdiff.fit(net, net.init_params(), d, diagnostics=True, client=object())


# --- pictures -------------------------------------------------------------------------------


def trained(act: str = "sigmoid", epochs: int = 4) -> tuple[nx.DiGraph, list]:
    G = graphdiff.mlp([2, 3, 3, 3, 1], act)
    net = graphdiff.compile(G, loss="E")
    d = graphdiff.feed(net, graphdiff.moons(40, seed=0))
    result = graphdiff.fit(net, net.init_params(seed=0), d, epochs=epochs, diagnostics=True,
                           progress=False)  # fmt: skip
    return G, result.history


def test_plot_diagnostics_by_layer_and_by_node(tmp_path: Path) -> None:
    G, history = trained()
    fig = plot_diagnostics(history, G=G)
    assert isinstance(fig, Figure)
    left, right = fig.axes[:2]
    assert left.get_yscale() == "log"
    assert len(left.lines) == 4 and len(right.lines) == 8  # 4 layers; saturated and dead
    for line, group in zip(left.lines, layers(G, history[0]["nodes"]), strict=True):
        expected = [layer_rms(row["nodes"], group) for row in history]
        np.testing.assert_allclose(line.get_ydata(), expected)
    labels = [t.get_text() for t in left.get_legend().get_texts()]
    assert labels[0] == "layer 1: h1_1 … h1_3 (3)" and labels[-1] == "layer 4: y"
    fig = plot_diagnostics(history)  # no graph: one line per node
    assert len(fig.axes[0].lines) == 10
    check_png(plot_diagnostics(history, tmp_path / "d.png", G=G, title="t"))
    with pytest.raises(VizError, match=r"diagnostics=True"):
        plot_diagnostics([{"epoch": 1, "loss": 1.0}])
    with pytest.raises(VizError, match="needs the network's graph"):
        plot_diagnostics(history, by="layer")


@pytest.mark.parametrize("color", ["delta_rms", "dead", "saturated"])
def test_draw_network_coloured_by_diagnostics(color: str) -> None:
    from matplotlib import colormaps

    G, history = trained("relu", epochs=2)
    stats = history[-1]["nodes"]
    fig = Figure()
    ax = fig.add_subplot()
    draw_network(G, diagnostics=stats, color=color, ax=ax)
    assert len(fig.axes) == 2  # the colour bar
    faces = {t.get_text().split("\n")[0]: t.get_bbox_patch().get_facecolor() for t in ax.texts}
    if color == "delta_rms":  # log scale over the nodes' values
        top = max(stats, key=lambda n: stats[n][color])
        np.testing.assert_allclose(faces[top], colormaps["viridis"](1.0))
    else:  # fractions on a fixed 0..1 scale
        for node, s in stats.items():
            np.testing.assert_allclose(faces[node], colormaps["magma_r"](s[color]), atol=1e-3)
    np.testing.assert_allclose(faces["x1"][:3], [0xD9 / 255] * 3)  # not diagnosed: grey


# --- progress: logs and notebooks -------------------------------------------------------------


def test_progress_goes_to_the_log_every_k_epochs(caplog: pytest.LogCaptureFixture,
                                                 tmp_path: Path) -> None:
    net = graphdiff.compile(graphdiff.mlp([2, 2, 1]), loss="E")
    d = graphdiff.feed(net, graphdiff.xor(20))
    with caplog.at_level(logging.INFO, logger="graphdiff"):
        graphdiff.fit(net, net.init_params(0), d, epochs=7, log_every=3, progress=False,
                      checkpoint=tmp_path / "c.json", every=5)  # fmt: skip
    lines = [(r.name, r.getMessage()) for r in caplog.records]
    epochs = [m.split()[1] for n, m in lines if n == "graphdiff.train" and m.startswith("epoch")]
    assert epochs == ["3/7", "6/7", "7/7"]  # every third and the last
    assert all("loss" in m and "acc" in m for _, m in lines if m.startswith("epoch"))
    written = [m for _, m in lines if m.startswith("wrote checkpoint")]
    assert written == [f"wrote checkpoint {tmp_path / 'c.json'} after epoch {e}" for e in (5, 7)]
    assert logging.getLogger("graphdiff").handlers  # a NullHandler: silent unless configured


def test_progress_bar_in_a_notebook(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    assert not in_notebook()
    fake = ModuleType("IPython")

    class ZMQInteractiveShell:  # the class Jupyter's kernel runs
        pass

    fake.get_ipython = ZMQInteractiveShell  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", fake)
    assert in_notebook()
    err = io.StringIO()  # a notebook's stderr is no terminal
    monkeypatch.setattr(sys, "stderr", err)
    net = graphdiff.compile(graphdiff.mlp([2, 1]), loss="E")
    graphdiff.fit(net, net.init_params(0), graphdiff.feed(net, graphdiff.xor(8)), epochs=2)
    assert "\repoch 2/2" in err.getvalue()


def test_cli_verbose_logs_epochs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from graphdiff.cli import _Stderr, main

    logger = logging.getLogger("graphdiff")
    try:
        code = main(["-v", "demo", "--epochs", "3", "--hidden", "2", "--out", str(tmp_path)])
    finally:
        for h in [h for h in logger.handlers if isinstance(h, _Stderr)]:
            logger.removeHandler(h)
        logger.setLevel(logging.NOTSET)
    err = capsys.readouterr().err
    assert code == 0
    assert [line for line in err.splitlines() if "epoch" in line] == [
        line for line in err.splitlines() if line.startswith("graphdiff: info: epoch ")
    ] and "graphdiff: info: epoch 3/3" in err


def test_cli_draw_colours_by_diagnostics_and_demo_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from graphdiff.cli import main

    G = graphdiff.mlp([2, 3, 1], "relu")
    net = graphdiff.compile(G, loss="E")
    graphdiff.save(tmp_path / "m.json", G, net.init_params(seed=1), loss="E")
    out = tmp_path / "d.png"
    assert main(["draw", str(tmp_path / "m.json"), "-o", str(out), "--data", "xor",
                 "--color", "dead", "--edges", "gradient"]) == 0  # fmt: skip
    check_png(out)
    assert main(["draw", str(tmp_path / "m.json"), "-o", str(out), "--edges", "gradient"]) == 1
    assert "--edges gradient needs --data" in capsys.readouterr().err
    code = main(["demo", "--epochs", "2", "--hidden", "3", "--color", "saturated", "--quiet",
                 "--out", str(tmp_path / "demo")])  # fmt: skip
    assert code == 0
    check_png(tmp_path / "demo" / "network.png")
