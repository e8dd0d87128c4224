"""Checkpoint files: the vector format ``fit`` writes, and the per-name format written
before it (issue 12), which must still load and resume exactly.

The per-name files in tests/data/checkpoints were written by graphdiff at ebdb4a0 with
tests/data/checkpoints/write_v1.py from the setting of :func:`case`; resuming from them
must end bit for bit where an uninterrupted run ends.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import graphdiff
from graphdiff import SGD, Adam
from graphdiff.train import FitError

FIXTURES = Path(__file__).resolve().parent / "data" / "checkpoints"
# neuron notation: scalar parameters only; op notation: tensors only
CASES = ("neuron_adam", "op_sgd")
N_SCALARS = 2 * 3 + 3 + 3 + 1  # mlp([2, 3, 1]) in neuron notation: weights and biases


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


def reseal(path: Path, change: Callable[[dict], Any]) -> None:
    """Edit a checkpoint file and give it a valid checksum again (SHA-256 of the other
    fields as sorted, compact, ASCII JSON), so only the change itself is judged."""
    doc = json.loads(path.read_text())
    change(doc)
    body = {k: v for k, v in doc.items() if k != "checksum"}
    text = json.dumps(body, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    doc["checksum"] = "sha256:" + hashlib.sha256(text.encode("ascii")).hexdigest()
    path.write_text(json.dumps(doc))


def values(t: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(t["data"]), "<f8")


def f64(v: np.ndarray) -> dict:
    return {"dtype": "float64", "shape": list(v.shape),
            "data": base64.b64encode(v.astype("<f8").tobytes()).decode()}


def first_two_epochs(name: str, path: Path) -> tuple[Any, ...]:
    net, p0, data, make, kw = case(name)
    res = graphdiff.fit(net, p0, data, optimizer=make(), epochs=2, checkpoint=path, **kw)
    return net, data, make, kw, res


@pytest.mark.parametrize("name", CASES)
def test_fit_writes_the_vector_and_the_optimizer_slots_as_vectors(tmp_path, name) -> None:
    path = tmp_path / "run.ckpt"
    net, _, _, _, res = first_two_epochs(name, path)
    doc = json.loads(path.read_text())
    assert "params" not in doc and "state" not in doc["optimizer"]
    scalars = [n for n in net.params if net.layout.where[n] >= 0]
    tensors = [n for n in net.params if net.layout.where[n] < 0]
    assert sorted(doc["layout"]["scalars"]) == sorted(scalars)
    assert sorted(t["name"] for t in doc["layout"]["tensors"]) == sorted(tensors)
    assert doc["vector"]["shape"] == [net.layout.size] and doc["vector"]["dtype"] == "float64"
    back = graphdiff.load_checkpoint(path)
    assert isinstance(back.params, graphdiff.Params)
    assert back.params.vector.tobytes() == res.params.vector.tobytes()
    for n in net.params:  # each name reads back its own value
        assert np.asarray(back.params[n]).tobytes() == np.asarray(res.params[n]).tobytes(), n
    slots = back.optimizer["slots"]
    assert sorted(slots) == sorted(res.optimizer.slots)
    state = res.optimizer.state_dict()["state"]
    for k, v in slots.items():
        for n in net.params:
            assert np.asarray(back.params.layout.lookup(v, back.params.layout.views(v), n)
                              ).tobytes() == state[n][k].tobytes(), (k, n)


def test_a_layout_in_another_order_resumes_bit_identically(tmp_path) -> None:
    """The same names and shapes saved in another order (a later graphdiff may order
    them otherwise) are put in the network's order, slots too."""
    path = tmp_path / "run.ckpt"
    net, data, make, kw, _ = first_two_epochs("neuron_adam", path)

    def reverse(doc: dict) -> None:
        order = doc["layout"]["scalars"]
        for field in [doc["vector"], *doc["optimizer"]["slots"].values()]:
            field.update(f64(values(field)[::-1]))
        doc["layout"]["scalars"] = order[::-1]

    reseal(path, reverse)
    assert graphdiff.load_checkpoint(path).params.layout.fingerprint != net.layout.fingerprint
    full = graphdiff.fit(net, net.init_params(seed=2), data, optimizer=make(), epochs=4, **kw)
    same_run(graphdiff.fit(net, None, data, optimizer=make(), epochs=4, resume=path, **kw), full)


def test_resume_refuses_another_dtype_or_layout(tmp_path) -> None:
    path = tmp_path / "run.ckpt"
    net, data, make, kw, res = first_two_epochs("op_sgd", path)
    ck = graphdiff.load_checkpoint(path)
    f32 = graphdiff.Params(ck.params.layout, ck.params.vector.astype(np.float32))
    graphdiff.save_checkpoint(path, replace(ck, params=f32, optimizer={
        **ck.optimizer, "slots": {k: v.astype(np.float32) for k, v in
                                  ck.optimizer["slots"].items()}}))
    assert graphdiff.load_checkpoint(path).params.vector.dtype == np.float32  # as written
    with pytest.raises(FitError, match=r"float32 parameter vector \('vector'\), "
                       "the network's parameters are float64") as e:
        graphdiff.fit(net, None, data, optimizer=make(), epochs=4, resume=path, **kw)
    assert str(path) in str(e.value)
    # the same names, W1 of another shape (the graph's fingerprint kept: only the layout
    # is wrong)
    lay = graphdiff.params.Layout([], [("W1", (3, 2)), ("W2", (3, 1)), ("b1", (3,)),
                                       ("b2", (1,))])
    other = graphdiff.Params(lay, ck.params.vector.copy())
    slots = {k: v for k, v in ck.optimizer["slots"].items()}
    graphdiff.save_checkpoint(path, replace(ck, params=other, optimizer={
        **ck.optimizer, "slots": slots}))
    with pytest.raises(FitError, match=r"layout \('layout'\) of other names or "
                       r"shapes than the network's \('W1': saved \(3, 2\), here \(2, 3\)\)"):
        graphdiff.fit(net, None, data, optimizer=make(), epochs=4, resume=path, **kw)


@pytest.mark.parametrize(
    ("change", "code", "location"),
    [
        (lambda d: d.__setitem__("vector", f64(values(d["vector"])[:-1])),
         "bad_shape", "/vector/shape"),
        (lambda d: d["optimizer"]["slots"]["m"].update(dtype="float32", shape=[
            d["vector"]["shape"][0] * 2]), "bad_dtype", "/optimizer/slots/m/dtype"),
        (lambda d: d["layout"]["scalars"].append(d["layout"]["scalars"][0]),
         "duplicate_id", f"/layout/scalars/{N_SCALARS}"),
        (lambda d: d.pop("layout"), "missing_field", "/layout"),
        (lambda d: d.pop("vector"), "missing_field", "/vector"),
        (lambda d: d.__setitem__("params", {}), "bad_type", "/layout"),
        (lambda d: d["optimizer"].__setitem__("state", {"w": {}}), "bad_type",
         "/optimizer/slots"),
        (lambda d: d["layout"]["tensors"].append({"name": "big", "shape": [10**9, 10**9]}),
         "too_large", "/layout/tensors/0/shape"),
    ],
)
def test_a_vector_checkpoint_that_does_not_hold_together_is_refused(
    tmp_path, change, code, location
) -> None:
    path = tmp_path / "run.ckpt"
    first_two_epochs("neuron_adam", path)
    reseal(path, change)
    with pytest.raises(graphdiff.GraphFormatError) as e:
        graphdiff.load_checkpoint(path)
    assert (e.value.code, e.value.location) == (code, location), str(e.value)
    assert e.value.path == str(path)


def test_a_float32_run_is_stored_in_float32_and_resumes_bit_identically(tmp_path) -> None:
    path = tmp_path / "run.ckpt"
    net = graphdiff.compile(graphdiff.mlp([2, 3, 1], notation="op"), loss="E", dtype=np.float32)
    data = graphdiff.feed(net, graphdiff.moons(40, seed=3))
    p0, kw = net.init_params(seed=2), {"batch_size": 8, "seed": 11}
    graphdiff.fit(net, p0, data, optimizer=Adam(lr=0.05), epochs=2, checkpoint=path, **kw)
    doc = json.loads(path.read_text())
    assert doc["vector"]["dtype"] == "float32"
    assert {t["dtype"] for t in doc["optimizer"]["slots"].values()} == {"float32"}
    back = graphdiff.load_checkpoint(path)
    assert back.params.vector.dtype == np.float32 == back.optimizer["slots"]["m"].dtype
    full = graphdiff.fit(net, p0, data, optimizer=Adam(lr=0.05), epochs=4, **kw)
    same_run(graphdiff.fit(net, None, data, epochs=4, resume=path, **kw), full)
    net64 = graphdiff.compile(graphdiff.mlp([2, 3, 1], notation="op"), loss="E")
    with pytest.raises(FitError, match=r"float32 parameter vector \('vector'\)"):
        graphdiff.fit(net64, None, data, epochs=4, resume=path, **kw)
