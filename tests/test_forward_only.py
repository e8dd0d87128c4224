"""compile(G) without a loss: a forward-only network that keeps every node."""

from __future__ import annotations

import numpy as np
import pytest

import graphdiff


def test_forward_only_network_keeps_every_node_and_refuses_training() -> None:
    G = graphdiff.mlp([2, 3, 1], "tanh", notation="op")
    G.add_node("unused", op="tanh")  # a second sink: kept, computed
    G.add_edge("x", "unused")
    net = graphdiff.compile(G)
    assert net.loss is None and set(net.nodes) == set(G.nodes) and not net.pruned
    params = net.init_params(seed=0)
    x = np.array([[0.5, -1.0], [2.0, 0.25]])
    values = net.forward(params, {"x": x})
    np.testing.assert_array_equal(values["unused"], np.tanh(x))
    with_loss = graphdiff.compile(G, loss="E")
    want = with_loss.forward(params, {"x": x}, outputs=["y"])["y"]
    np.testing.assert_array_equal(values["y"], want)
    data = {"x": x, "t": np.ones(2)}
    for what, call in [
        ("backward", lambda: net.backward(params, data)),
        ("backward", lambda: net.backward(params, data, deltas=True)),
        ("error", lambda: net.error(params, data)),
        ("loss_terms", lambda: net.loss_terms(params, data)),
        ("fit", lambda: graphdiff.fit(net, params, data, epochs=1)),
    ]:
        with pytest.raises(graphdiff.GraphError, match=f"{what} needs a loss"):
            call()
    # the same graph with its loss node named trains
    assert with_loss.backward(params, data).grads.all_finite()
