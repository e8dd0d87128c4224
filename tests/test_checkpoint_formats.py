"""Checkpoint files: the vector format ``fit`` writes, and the per-name format written
before it (issue 12), which must still load and resume exactly.

The per-name files in tests/data/checkpoints were written by graphdiff at ebdb4a0 with
tests/data/checkpoints/write_v1.py from the setting of :func:`case`; resuming from them
must end bit for bit where an uninterrupted run ends.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import graphdiff
from graphdiff import SGD, Adam

FIXTURES = Path(__file__).resolve().parent / "data" / "checkpoints"
# neuron notation: scalar parameters only; op notation: tensors only
CASES = ("neuron_adam", "op_sgd")


def case(name: str) -> tuple[Any, Any, dict, Callable[[], Any], dict[str, Any]]:
    """A network, its first parameters, data, an optimizer factory and fit's settings.

    Minibatches, shuffling, momentum: a resume needs the parameters, the optimizer's
    state and step, and the random state. Uses only API that ebdb4a0 has."""
    notation = "neuron" if name.startswith("neuron") else "op"
    net = graphdiff.compile(graphdiff.mlp([2, 3, 1], notation=notation), loss="E")
    data = graphdiff.feed(net, graphdiff.moons(40, seed=3))
    if name.endswith("adam"):
        def make() -> Any:
            return Adam(lr=0.05)
    else:
        def make() -> Any:
            return SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
    return net, net.init_params(seed=2), data, make, {"batch_size": 8, "seed": 11}


def same_run(a: graphdiff.FitResult, b: graphdiff.FitResult) -> None:
    assert list(a.params) == list(b.params)
    for k in a.params:
        assert np.asarray(a.params[k]).tobytes() == np.asarray(b.params[k]).tobytes(), k
    strip = [[{k: v for k, v in h.items() if k != "time"} for h in r.history] for r in (a, b)]
    assert strip[0] == strip[1]  # floats compared exactly
    assert (a.epochs, a.steps) == (b.epochs, b.steps)
    sa, sb = a.optimizer.state_dict(), b.optimizer.state_dict()
    assert sa["step"] == sb["step"] and list(sa["state"]) == list(sb["state"])
    for p, slots in sa["state"].items():
        for slot, v in slots.items():
            assert v.tobytes() == sb["state"][p][slot].tobytes(), (p, slot)


@pytest.mark.parametrize("name", CASES)
def test_a_per_name_checkpoint_of_before_resumes_bit_identically(name: str) -> None:
    path = FIXTURES / f"v1_{name}.ckpt"
    doc = json.loads(path.read_text())
    net, p0, data, make, kw = case(name)
    assert sorted(doc["params"]) == sorted(net.params)  # the old format: one entry each
    assert sorted(doc["optimizer"]["state"]) == sorted(net.params)
    full = graphdiff.fit(net, p0, data, optimizer=make(), epochs=4, **kw)
    resumed = graphdiff.fit(net, None, data, optimizer=make(), epochs=4, resume=path, **kw)
    same_run(resumed, full)
    # without an optimizer, the saved one is rebuilt from its name and configuration
    same_run(graphdiff.fit(net, None, data, epochs=4, resume=path, **kw), full)
