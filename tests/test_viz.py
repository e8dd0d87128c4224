"""Pictures: real PNG files, the right regions and colours, and never a window."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import pytest
from matplotlib import colormaps
from matplotlib.figure import Figure

import graphdiff
from graphdiff.baselines import Perceptron
from graphdiff.viz import (
    VizError,
    draw_network,
    plot_decision_boundary,
    plot_history,
    predictor,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_png(path: Path, min_size: int = 150) -> tuple[int, int]:
    """A real, non-blank PNG; returns (height, width) in pixels."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and min(image.shape[:2]) >= min_size and max(image.shape) < 4000
    assert image[..., :3].std() > 0.01  # something was drawn
    return image.shape[0], image.shape[1]


def lecture_shared() -> nx.DiGraph:
    """The lecture's network with the shared parameters u and v."""
    return graphdiff.lecture_network(shared=True)


# --- decision boundary ------------------------------------------------------------------


def test_decision_boundary_png_from_perceptron(tmp_path: Path) -> None:
    d = graphdiff.blobs(60, seed=2)
    p = Perceptron().fit(d["x"], d["t"])
    out = plot_decision_boundary(p.predict, d["x"], d["t"], tmp_path / "b.png", title="blobs")
    assert out == tmp_path / "b.png"
    assert check_png(out) == (500, 600)


def test_decision_boundary_regions_and_mistakes() -> None:
    """The shaded regions are the predictor's classes; mistakes are counted."""
    x = np.array([[-1.0, 0.0], [1.0, 0.5], [2.0, -1.0], [-2.0, 1.0]])
    t = np.array([-1.0, 1.0, -1.0, -1.0])  # the third point is on the wrong side of x1 = 0
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_decision_boundary(lambda p: p[:, 0], x, t, ax=ax, resolution=21) is fig
    mesh = ax.collections[0]
    grid_x1 = np.linspace(-2.4, 2.4, 21)
    expected = np.broadcast_to(np.where(grid_x1 > 0, 1, 0), (21, 21))  # class index per cell
    np.testing.assert_array_equal(np.asarray(mesh.get_array()).reshape(21, 21), expected)
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["t = -1", "t = +1", "misclassified (1)"]


def test_decision_boundary_multiclass(tmp_path: Path) -> None:
    d = graphdiff.spirals(60, classes=3, seed=1)
    centers = np.array([[1.0, 0.0], [-0.5, 0.9], [-0.5, -0.9]])

    def predict(p: np.ndarray) -> np.ndarray:
        return p @ centers.T  # three scores per point, the largest wins

    fig = Figure()
    ax = fig.add_subplot()
    plot_decision_boundary(predict, d["x"], d["t"], ax=ax, resolution=30)
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    wrong = int(np.sum(np.argmax(predict(d["x"]), axis=1) != d["t"]))
    assert legend == ["class 0", "class 1", "class 2", f"misclassified ({wrong})"]
    assert set(np.unique(ax.collections[0].get_array())) == {0, 1, 2}
    check_png(plot_decision_boundary(predict, d["x"], d["t"], tmp_path / "m.png"))


@pytest.mark.parametrize("notation", ["neuron", "op"])
def test_predictor_from_network(notation: str, tmp_path: Path) -> None:
    net = graphdiff.compile(graphdiff.mlp([2, 3, 1], notation=notation), loss="E")
    params = net.init_params(seed=4)
    points = np.random.default_rng(0).normal(size=(7, 2))
    if notation == "op":
        h = np.tanh(points @ params["W1"] + params["b1"])
        expected = (h @ params["W2"] + params["b2"])[:, 0]
    else:
        w = params
        h = np.tanh(np.column_stack([
            points @ [w[f"x1->h1_{k}"], w[f"x2->h1_{k}"]] + w[f"h1_{k}.bias"] for k in (1, 2, 3)
        ]))  # fmt: skip
        expected = h @ [w[f"h1_{k}->y"] for k in (1, 2, 3)] + w["y.bias"]
    predict = predictor(net, params)  # no target needed
    np.testing.assert_allclose(predict(points), expected, rtol=1e-13)
    d = graphdiff.moons(40)
    check_png(plot_decision_boundary(predict, d["x"], d["t"], tmp_path / "n.png"))
    with pytest.raises(graphdiff.InputError, match="'nope' is not a node"):
        predictor(net, params, "nope")


def test_decision_boundary_errors_name_the_argument(tmp_path: Path) -> None:
    x, t = np.zeros((3, 2)), np.ones(3)
    with pytest.raises(VizError, match=r"x must have shape \(N, 2\)"):
        plot_decision_boundary(np.sign, np.zeros((3, 3)), t, tmp_path / "a.png")
    with pytest.raises(VizError, match=r"t must have shape \(3,\)"):
        plot_decision_boundary(np.sign, x, np.ones(4), tmp_path / "a.png")
    with pytest.raises(VizError, match="resolution"):
        plot_decision_boundary(np.sign, x, t, tmp_path / "a.png", resolution=1)
    with pytest.raises(VizError, match=r"predict must return .* got \(3,\)"):
        plot_decision_boundary(lambda p: np.ones(3), x, t, tmp_path / "a.png")
    assert not (tmp_path / "a.png").exists()


# --- history ------------------------------------------------------------------------------


def test_history_png_one_or_two_panels(tmp_path: Path) -> None:
    rows = [{"epoch": e, "loss": 1 / e, "time": 0.01} for e in range(1, 6)]
    assert check_png(plot_history(rows, tmp_path / "l.png")) == (380, 500)
    rows = [
        {"epoch": e, "loss": 1 / e, "accuracy": 1 - 1 / (e + 1), "val_loss": 1.2 / e,
         "val_accuracy": 0.5, "time": 0.01}
        for e in range(1, 41)
    ]  # fmt: skip
    assert check_png(plot_history(rows, tmp_path / "la.png", title="run")) == (380, 1000)
    rows = [{"loss": 0.5, "accuracy": None}, {"loss": 0.25, "accuracy": None}]  # regression loss
    assert check_png(plot_history(rows, tmp_path / "r.png")) == (380, 500)


def test_history_from_fit(tmp_path: Path) -> None:
    net = graphdiff.compile(graphdiff.mlp([2, 4, 1]), loss="E")
    data = graphdiff.feed(net, graphdiff.xor(40))
    result = graphdiff.fit(net, net.init_params(seed=0), data, epochs=5, progress=False)
    assert check_png(plot_history(result.history, tmp_path / "h.png")) == (380, 1000)


def test_history_errors(tmp_path: Path) -> None:
    with pytest.raises(VizError, match="history is empty"):
        plot_history([], tmp_path / "h.png")
    with pytest.raises(VizError, match=r"no 'loss' in the history; keys are \['epoch'\]"):
        plot_history([{"epoch": 1}], tmp_path / "h.png")


# --- the network ------------------------------------------------------------------------


def test_lecture_shared_network_with_deltas(tmp_path: Path) -> None:
    G = lecture_shared()
    net = graphdiff.compile(G, loss="E")
    params = {"u": np.float64(0.8), "v": np.float64(-0.5)}
    data = graphdiff.feed(net, graphdiff.moons(30, seed=1))
    res = net.backward(params, data, deltas=True)
    out = draw_network(G, tmp_path / "net.png", deltas=res.deltas, params=params)
    check_png(out)

    fig = Figure()
    ax = fig.add_subplot()
    draw_network(G, deltas=res.deltas, params=params, ax=ax)
    texts = {t.get_text().split("\n")[0]: t for t in ax.texts}  # a node's first line is its name
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["shared u (4 uses)", "shared v (4 uses)"]
    assert "u=0.8" in texts and "v=-0.5" in texts  # edges labelled with name and value
    assert len(fig.axes) == 2  # the colour bar
    # nodes are coloured by mean |δ|: the largest gets the top of the colour map
    size = {n: np.mean(np.abs(d)) for n, d in res.deltas.items()}
    top, bottom = max(size, key=size.__getitem__), min(size, key=size.__getitem__)
    viridis = colormaps["viridis"]
    face = texts[top].get_bbox_patch().get_facecolor()
    np.testing.assert_allclose(face, viridis(1.0), atol=1e-6)
    np.testing.assert_allclose(texts[bottom].get_bbox_patch().get_facecolor(), viridis(0.0))
    # shared edges share a colour: the u edges all have one, the v edges another
    arrows = [p for p in ax.patches if hasattr(p, "get_edgecolor")]
    colours = {tuple(np.round(a.get_edgecolor(), 4)) for a in arrows}
    assert len(colours) == 3  # u, v and the plain grey of a7 -> E and t -> E


def test_network_drawings_of_mlps_and_plain_graphs(tmp_path: Path) -> None:
    _, w1 = check_png(draw_network(graphdiff.mlp([2, 4, 3, 1]), tmp_path / "n.png"))
    _, w2 = check_png(draw_network(graphdiff.mlp([2, 3, 1], notation="op"), tmp_path / "o.png"))
    assert w2 > w1  # the op chain is long and flat
    G = nx.MultiDiGraph()
    G.add_nodes_from(["x", "t"], op="input")
    G.add_node("h", op="neuron")
    G.add_edge("x", "h")
    G.add_edge("x", "h", param="s")
    G.add_node("E", op="squared_error")
    G.add_edge("h", "E", port=0)
    G.add_edge("t", "E", port=1)
    fig = Figure()
    ax = fig.add_subplot()
    draw_network(G, params={"x->h": 1.5, "s": 2.0}, ax=ax)
    assert "x->h=1.5, s=2" in {t.get_text() for t in ax.texts}  # parallel edges, one label
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["input", "neuron", "op (other)"]


def test_default_layout_puts_sources_next_to_their_consumer() -> None:
    G = lecture_shared()
    fig = Figure()
    ax = fig.add_subplot()
    draw_network(G, ax=ax)
    where = {t.get_text().split("\n")[0]: t.get_position() for t in ax.texts}
    assert where["x1"][0] == where["x2"][0] == 0
    assert where["a3"][0] == 1 and where["a5"][0] == where["a6"][0] == 2
    assert where["t"][0] == where["a7"][0] == 3 and where["E"][0] == 4


def test_draw_network_errors() -> None:
    with pytest.raises(graphdiff.GraphError, match="cycle"):
        draw_network(nx.DiGraph([("a", "b"), ("b", "a")]), ax=Figure().add_subplot())
    with pytest.raises(graphdiff.GraphError, match="expects a networkx DiGraph, got Graph"):
        draw_network(nx.Graph(), ax=Figure().add_subplot())


def test_never_opens_a_window(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Everything goes through Figure objects: pyplot's window machinery is never touched."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pyplot was asked for a figure or a window")

    for name in (
        "figure",
        "gcf",
        "gca",
        "subplots",
        "show",
        "switch_backend",
        "draw_if_interactive",
    ):
        monkeypatch.setattr(plt, name, refuse)
    before = plt.get_fignums()
    G = lecture_shared()
    net = graphdiff.compile(G, loss="E")
    params = {"u": np.float64(0.3), "v": np.float64(0.2)}
    data = graphdiff.feed(net, graphdiff.xor(20))
    draw_network(G, tmp_path / "a.png", deltas=net.backward(params, data, deltas=True).deltas)
    d = graphdiff.xor(20)
    plot_decision_boundary(lambda p: -p[:, 0] * p[:, 1], d["x"], d["t"], tmp_path / "b.png")
    plot_history([{"epoch": 1, "loss": 1.0, "accuracy": 0.5}], tmp_path / "c.png")
    assert plt.get_fignums() == before
    for name in "abc":
        check_png(tmp_path / f"{name}.png")


# --- notebooks: the thing drawn first, a Figure back, the old order deprecated ----------


def test_without_a_path_each_picture_is_a_figure() -> None:
    d = graphdiff.xor(20)
    fig = plot_decision_boundary(lambda p: p[:, 0], d["x"], d["t"], resolution=10)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    rows = [{"epoch": 1, "loss": 1.0, "accuracy": 0.5}, {"epoch": 2, "loss": 0.5, "accuracy": 1.0}]
    fig = plot_history(rows)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    fig = draw_network(lecture_shared())
    assert isinstance(fig, Figure)


def test_history_into_a_given_ax_shares_it_with_accuracy() -> None:
    fig = Figure()
    ax = fig.add_subplot()
    rows = [{"epoch": e, "loss": 1 / e, "accuracy": e / 4} for e in (1, 2, 3, 4)]
    assert plot_history(rows, ax=ax, title="run") is fig
    assert len(fig.axes) == 2  # the accuracy's twin axis on the right
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [1, 1 / 2, 1 / 3, 1 / 4])
    np.testing.assert_allclose(fig.axes[1].lines[0].get_ydata(), [0.25, 0.5, 0.75, 1.0])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["training loss", "training accuracy"] and ax.get_title() == "run"


def test_the_old_path_first_order_still_works_with_a_warning(tmp_path: Path) -> None:
    d = graphdiff.xor(20)
    rows = [{"epoch": 1, "loss": 1.0}]
    with pytest.warns(DeprecationWarning, match=r"plot_decision_boundary\(predict, x, t, path\)"):
        out = plot_decision_boundary(tmp_path / "b.png", np.sign, d["x"][:, 0:2], d["t"])
    assert out == tmp_path / "b.png"
    check_png(out)
    with pytest.warns(DeprecationWarning, match=r"plot_history\(history, path\)"):
        assert plot_history(tmp_path / "h.png", rows) == tmp_path / "h.png"
    with pytest.warns(DeprecationWarning, match=r"draw_network\(G, path\)"):
        assert draw_network(str(tmp_path / "n.png"), lecture_shared()) == tmp_path / "n.png"
    fig = Figure()
    with pytest.warns(DeprecationWarning):
        assert draw_network(None, lecture_shared(), ax=fig.add_subplot()) is fig
    for name in ("b", "h", "n"):
        check_png(tmp_path / f"{name}.png")


def test_network_shows_its_drawing_in_a_notebook(tmp_path: Path) -> None:
    net = graphdiff.compile(graphdiff.mlp([2, 3, 1]), loss="E")
    png = net._repr_png_()
    assert png is not None and png.startswith(PNG_SIGNATURE)
    (tmp_path / "net.png").write_bytes(png)
    check_png(tmp_path / "net.png")
    big = graphdiff.compile(graphdiff.mlp([2, 200, 1]), loss="E")  # 205 nodes, 600 edges
    assert big._repr_png_() is None  # too big to be worth drawing: the text repr shows


# --- graphdiff draw: what the boxes say, where the arrows end, dense layers ------------------


def test_nodes_say_their_activation_or_op() -> None:
    fig = Figure()
    ax = fig.add_subplot()
    draw_network(graphdiff.lecture_network(shared=False), ax=ax)
    texts = {t.get_text() for t in ax.texts}
    assert {"a3\ntanh", "a7\nidentity", "E\nhinge", "x1", "t"} <= texts
    ax = Figure().add_subplot()
    draw_network(graphdiff.mlp([2, 3, 1], notation="op"), ax=ax)
    texts = {t.get_text() for t in ax.texts}
    # the labels mlp gives op nodes name their op already ("z1 = add"), so no second line
    assert {"matmul1", "z1 = add", "a1 = tanh", "E = logistic", "W1 2×3", "x"} <= texts


def _arrow_ends(ax: object) -> list[tuple[np.ndarray, np.ndarray]]:
    from matplotlib.patches import FancyArrowPatch

    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]  # type: ignore[attr-defined]
    return [(np.array(a._posA_posB[0]), np.array(a._posA_posB[1])) for a in arrows]


def test_arrowheads_end_at_the_node_boxes() -> None:
    G = graphdiff.lecture_network(shared=True)
    fig = Figure(figsize=(9, 4))
    ax = fig.add_subplot()
    draw_network(G, ax=ax)
    fig.draw_without_rendering()
    inverse = ax.transData.inverted()
    box = {}
    for t in ax.texts:
        name = t.get_text().split("\n")[0]
        if name in G:  # not an edge label
            corners = inverse.transform(t.get_bbox_patch().get_window_extent().get_points())
            box[name] = corners  # [[x0, y0], [x1, y1]] in data coordinates
    ends = _arrow_ends(ax)
    assert len(ends) == G.number_of_edges() and len(box) == len(G)
    for u, v in G.edges:
        # one arrow starts on u's right side and ends on v's left side, within their heights
        hits = [
            (s, e) for s, e in ends
            if np.isclose(s[0], box[u][1][0]) and box[u][0][1] < s[1] < box[u][1][1]
            and np.isclose(e[0], box[v][0][0]) and box[v][0][1] < e[1] < box[v][1][1]
        ]
        assert len(hits) == 1, (u, v)


def test_dense_layers_draw_edges_by_weight() -> None:
    G = graphdiff.mlp([2, 16, 16, 1])
    params = graphdiff.compile(G, loss="E").init_params(seed=3)
    fig = Figure()
    ax = fig.add_subplot()
    draw_network(G, params=params, ax=ax)
    from matplotlib.patches import FancyArrowPatch

    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == G.number_of_edges() == 2 * 16 + 16 * 16 + 16 + 2
    weights = {e: abs(params[f"{e[0]}->{e[1]}"]) for e in G.edges if G.nodes[e[1]]["op"] == "neuron"}
    widths = sorted(a.get_linewidth() for a in arrows)
    biggest = max(weights.values())
    # width grows with |weight|; the two edges into the loss have none: thin grey
    expected = sorted([0.25 + 2.75 * w / biggest for w in weights.values()] + [0.5, 0.5])
    np.testing.assert_allclose(widths, expected)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[-3:] == ["positive", "negative", "width ∝ |weight|"]
    # with gradients instead, the widths follow |gradient|
    grads = {k: (2.0 if k == "x1->h1_1" else 1.0) for k in params}
    ax = Figure().add_subplot()
    draw_network(G, grads=grads, ax=ax)
    assert max(p.get_linewidth() for p in ax.patches) == pytest.approx(3.0)
    assert [t.get_text() for t in ax.get_legend().get_texts()][-1] == "width ∝ |gradient|"
