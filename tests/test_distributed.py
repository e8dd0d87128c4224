"""Data-parallel training on Dask: one 2-worker LocalCluster (processes, 1 thread each).

The reference is in-process training (``fit`` without ``client``, itself checked
against the lecture's equations in test_train.py): the distributed run must
reach the same parameters up to float summation order (< 1e-10 after 20 steps).
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import graphdiff
from graphdiff.cli import main as cli_main
from graphdiff.distributed import (
    ClusterError,
    DataParallel,
    connect,
    local_cluster,
)
from graphdiff.train import FitError, batch_gradient

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")

SIZES = [2, 6, 5, 1]


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with local_cluster(2) as cluster, distributed.Client(cluster) as c:
        yield c


def problem(notation: str) -> tuple[graphdiff.Network, dict[str, np.ndarray], dict[str, Any]]:
    net = graphdiff.compile(graphdiff.mlp(SIZES, notation=notation), loss="E")
    data = graphdiff.feed(net, graphdiff.moons(200, noise=0.2, seed=5))
    return net, data, net.init_params(seed=1)


def max_diff(a: dict[str, Any], b: dict[str, Any]) -> float:
    assert sorted(a) == sorted(b)
    return max(float(np.max(np.abs(np.asarray(a[k]) - np.asarray(b[k])))) for k in a)


# 20 steps either way: 20 full batches, or 5 epochs of 4 minibatches (64, 64, 64, 8)
STEPS = {None: 20, 64: 5}


@pytest.mark.parametrize("notation", ["neuron", "op"])
@pytest.mark.parametrize("batch_size", [None, 64])
def test_distributed_training_equals_in_process(
    client: Any, notation: str, batch_size: int | None
) -> None:
    net, data, p0 = problem(notation)
    kw: dict[str, Any] = dict(optimizer=graphdiff.Adam(lr=0.05), epochs=STEPS[batch_size],
                              batch_size=batch_size, seed=7)
    here = graphdiff.fit(net, p0, data, **kw)
    there = graphdiff.fit(net, p0, data, client=client, **kw)
    assert here.steps == there.steps == 20
    assert max_diff(here.params, p0) > 0.05  # it trained
    assert max_diff(here.params, there.params) < 1e-10
    for a, b in zip(here.history, there.history, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-12, abs=0)
        assert b["accuracy"] == a["accuracy"]
        assert set(b) == set(a) | {"step_time", "bytes_per_step"}
        assert 0 < b["step_time"] <= b["time"]


def test_bytes_per_step_are_parameters_out_and_gradients_back_per_worker(client: Any) -> None:
    net, data, p0 = problem("op")
    values = sum(np.size(v) for v in p0.values())  # float64 numbers in the parameters
    r = graphdiff.fit(net, p0, data, client=client, epochs=2)
    # full batch over 2 shards on 2 workers: 2 copies out, 2 partial gradients back
    assert [h["bytes_per_step"] for h in r.history] == [4 * 8 * values] * 2


def test_a_float32_network_trains_in_float32_on_the_workers(client: Any) -> None:
    net = graphdiff.compile(graphdiff.mlp(SIZES, notation="op"), loss="E", dtype=np.float32)
    data = graphdiff.feed(net, graphdiff.moons(200, noise=0.2, seed=5))
    p0 = net.init_params(seed=1)
    grads = DataParallel(client, net, data).gradient(p0, None).grads
    assert grads.vector.dtype == np.float32  # computed and shipped back as float32
    np.testing.assert_allclose(grads.vector, net.backward(p0, data).grads.vector,
                               rtol=1e-4, atol=1e-6)
    kw: dict[str, Any] = dict(optimizer=graphdiff.Adam(lr=0.05), epochs=3, batch_size=64, seed=7)
    here = graphdiff.fit(net, p0, data, **kw)
    there = graphdiff.fit(net, p0, data, client=client, **kw)
    assert there.params.vector.dtype == np.float32
    assert max_diff(here.params, there.params) < 1e-4  # float32 sums in another order
    # 4-byte numbers out and back: half of float64's bytes per step
    full = graphdiff.fit(net, p0, data, client=client, epochs=1)  # no batch indices sent
    assert full.history[0]["bytes_per_step"] == 4 * 4 * net.layout.size


def test_each_worker_compiles_the_spec_once_and_the_driver_never(client: Any) -> None:
    net, data, p0 = problem("op")
    key = hashlib.sha256(net.spec().model_dump_json().encode()).hexdigest()

    def compiled() -> dict[str, int | None]:
        ids = client.run(lambda: id(graphdiff.distributed._NETWORKS.get(key)))
        return {w: ids[w] for w in sorted(ids)}

    graphdiff.fit(net, p0, data, client=client, epochs=1)
    first = compiled()
    graphdiff.fit(net, p0, data, client=client, epochs=3, batch_size=50)
    assert compiled() == first and id(None) not in first.values()
    assert key not in graphdiff.distributed._NETWORKS  # this process trained nothing itself


def _computed_on_a_worker(block: np.ndarray) -> np.ndarray:
    distributed.get_worker()  # ValueError in the driver: the data never comes here
    return block


def test_dask_arrays_chunked_into_eight_shards(client: Any) -> None:
    net, data, p0 = problem("op")
    x = da.from_array(data["x"], chunks=(25, 1)).map_blocks(_computed_on_a_worker, dtype=float)
    t = da.from_array(data["t"], chunks=40)  # other chunks: t follows x's
    lazy = {"x": x, "t": t}
    kw: dict[str, Any] = dict(optimizer=graphdiff.SGD(lr=0.3), epochs=4, batch_size=40, seed=2)
    here = graphdiff.fit(net, p0, data, **kw)
    there = graphdiff.fit(net, p0, lazy, client=client, **kw)
    assert here.steps == there.steps == 20
    assert max_diff(here.params, there.params) < 1e-10

    engine = DataParallel(client, net, lazy)
    try:
        res = engine.gradient(p0, None)
        assert engine.bounds.tolist() == list(range(0, 201, 25))
        ref = batch_gradient(net, p0, data)
        assert res.loss == pytest.approx(ref.loss, rel=1e-14)
        assert max_diff(res.grads, ref.grads) < 1e-14
    finally:
        engine.close()


def test_worker_killed_mid_fit_training_finishes_with_the_same_parameters(client: Any) -> None:
    net, data, p0 = problem("op")
    kw: dict[str, Any] = dict(optimizer=graphdiff.Adam(lr=0.05), epochs=5, batch_size=50, seed=3)
    here = graphdiff.fit(net, p0, data, **kw)
    calm = graphdiff.fit(net, p0, data, client=client, **kw)
    before = client.run(os.getpid)
    killed: list[int] = []

    def kill_a_worker(record: graphdiff.train.EpochRecord) -> None:
        if record.epoch == 2:
            pid = before[min(before)]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    hit = graphdiff.fit(net, p0, data, client=client, callbacks=[kill_a_worker], **kw)
    assert killed and hit.steps == 20
    # the tree sums shards in a fixed order, wherever they were rebuilt: bit-identical
    assert all(np.array_equal(hit.params[k], calm.params[k]) for k in calm.params)
    assert max_diff(here.params, hit.params) < 1e-10
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it; later tests get 2 again
    assert killed[0] not in client.run(os.getpid).values()


def test_a_step_that_lost_its_connection_is_resubmitted(
    client: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    net, data, p0 = problem("op")
    kw: dict[str, Any] = dict(optimizer=graphdiff.Adam(lr=0.05), epochs=5, batch_size=50, seed=3)
    calm = graphdiff.fit(net, p0, data, client=client, **kw)
    scatter, calls = client.scatter, []

    def drops_every_third(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) % 3 == 0:
            raise distributed.comm.CommClosedError("in <TCP (closed)>: Stream is closed")
        return scatter(*args, **kwargs)

    monkeypatch.setattr(client, "scatter", drops_every_third)
    with caplog.at_level(logging.WARNING, logger="graphdiff"):
        hit = graphdiff.fit(net, p0, data, client=client, **kw)
    assert len(calls) > 20  # each step sends its parameters; every third try was resent
    retries = [r.getMessage() for r in caplog.records if r.name == "graphdiff.distributed"]
    assert len(retries) == len(calls) // 3  # each resubmission is logged, saying why
    assert all("CommClosedError" in m and "retry 1 of" in m for m in retries)
    assert all(np.array_equal(hit.params[k], calm.params[k]) for k in calm.params)

    def always_drops(*args: Any, **kwargs: Any) -> Any:
        raise distributed.comm.CommClosedError("in <TCP (closed)>: Stream is closed")

    monkeypatch.setattr(client, "scatter", always_drops)
    with pytest.raises(ClusterError) as err:
        graphdiff.fit(net, p0, data, client=client, **kw)
    message = str(err.value)
    assert client.scheduler.address in message and "CommClosedError" in message
    assert all(np.array_equal(err.value.params[k], p0[k]) for k in p0)  # before the first step


def test_a_worker_without_a_plugin_op_fails_with_the_load_error(client: Any) -> None:
    graphdiff.register_op(
        "gd_dist_cube", lambda x: x**3, vjp=lambda g, out, x: (3 * g * x**2,),
        elementwise=True, distribution="graphdiff-cube-ops", version="1.2",
    )  # registered in this process only: the workers never saw it
    try:
        G = graphdiff.mlp([2, 3, 1], activation="gd_dist_cube", notation="op")
        net = graphdiff.compile(G, loss="E")
        data = graphdiff.feed(net, graphdiff.moons(20, seed=0))
        with pytest.raises(graphdiff.GraphFormatError) as err:
            graphdiff.fit(net, net.init_params(seed=0), data, client=client, epochs=1)
    finally:
        graphdiff.unregister_op("gd_dist_cube")
    e = err.value
    assert e.code == "missing_plugin"
    for part in ("'gd_dist_cube'", "'graphdiff-cube-ops' 1.2", "not installed", "Dask worker",
                 "node 'a1'"):
        assert part in str(e)


def test_a_non_finite_loss_on_a_worker_names_the_node_as_in_process(client: Any) -> None:
    net, data, p0 = problem("op")
    bad = {**data, "x": data["x"].copy()}
    bad["x"][150, 1] = np.nan
    errors = []
    for c in (None, client):
        with pytest.raises(graphdiff.TrainingDivergedError) as err:
            graphdiff.fit(net, p0, bad, client=c, epochs=1)
        errors.append(err.value)
    assert errors[1].node == errors[0].node == "x"
    assert (errors[1].phase, errors[1].step) == (errors[0].phase, errors[0].step)


def test_cluster_gone_is_a_clear_error_and_the_checkpoint_stays(
    client: Any, tmp_path: Path
) -> None:
    net, data, p0 = problem("op")
    path = tmp_path / "run.ckpt"
    kw: dict[str, Any] = dict(optimizer=graphdiff.Adam(lr=0.05), epochs=5, batch_size=50, seed=3)
    with local_cluster(1) as cluster, distributed.Client(cluster.scheduler_address,
                                                         timeout=5) as c:

        def close_the_cluster(record: graphdiff.train.EpochRecord) -> None:
            if record.epoch == 2:
                cluster.close()

        with pytest.raises(ClusterError) as err:
            graphdiff.fit(net, p0, data, client=c, callbacks=[close_the_cluster],
                          checkpoint=path, **kw)
        address = cluster.scheduler_address
    assert address in str(err.value) and "training step" in str(err.value)
    saved = graphdiff.load_checkpoint(path)
    assert saved.epoch == 2
    assert all(np.array_equal(saved.params[k], err.value.params[k]) for k in saved.params)
    # a sound checkpoint: resumed on another cluster, training ends where it does unbroken
    here = graphdiff.fit(net, p0, data, **kw)
    resumed = graphdiff.fit(net, None, data, resume=path, client=client, **kw)
    assert resumed.steps == 20 and max_diff(here.params, resumed.params) < 1e-10


def test_client_must_be_a_dask_client() -> None:
    net, data, p0 = problem("op")
    with pytest.raises(FitError, match=r"client must be a dask\.distributed\.Client, got str"):
        graphdiff.fit(net, p0, data, client="tcp://127.0.0.1:8786", epochs=1)


def test_unreachable_scheduler_names_the_address() -> None:
    with pytest.raises(ClusterError, match=r"Dask scheduler at 'tcp://127\.0\.0\.1:9'"), connect(
        scheduler="tcp://127.0.0.1:9", timeout=1
    ):
        pass


# -- command line ------------------------------------------------------------------------


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "model.json"
    graphdiff.save(path, graphdiff.mlp([2, 4, 1], notation="op"), loss="E")
    return path


def _train(model: Path, out: Path, *extra: str) -> dict[str, Any]:
    argv = ["train", str(model), "--data", "moons", "--out", str(out), "--epochs", "4",
            "--batch-size", "50", *extra]
    assert cli_main(argv) == 0
    return graphdiff.load(out)[1]


def test_cli_train_on_workers_or_a_scheduler_equals_in_process(
    client: Any, model: Path, tmp_path: Path
) -> None:
    here = _train(model, tmp_path / "here.json")
    assert max_diff(here, _train(model, tmp_path / "w.json", "--workers", "1")) < 1e-10
    address = client.scheduler.address
    assert max_diff(here, _train(model, tmp_path / "s.json", "--scheduler", address)) < 1e-10
