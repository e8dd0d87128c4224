"""The parts of ``graphdiff.distributed`` that need no Dask: they run, and pass, with
Dask missing (simulated here by making ``import distributed`` fail), so they are not
skipped with the Dask tests in test_distributed.py when Dask is not installed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

import graphdiff
from graphdiff.cli import main as cli_main
from graphdiff.distributed import DaskMissingError, connect


@pytest.fixture
def no_dask(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("distributed", "dask", "dask.array"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails


def test_client_without_dask_installed_names_the_extra(no_dask: None) -> None:
    net = graphdiff.compile(graphdiff.mlp([2, 6, 5, 1], notation="op"), loss="E")
    data = graphdiff.feed(net, graphdiff.moons(200, noise=0.2, seed=5))
    with pytest.raises(DaskMissingError) as err:
        graphdiff.fit(net, net.init_params(seed=1), data, client=object(), epochs=1)
    assert 'client= needs Dask: pip install -e ".[dask]"' in str(err.value)
    with connect() as none:  # without a client, nothing of Dask is needed
        assert none is None


def _bad_worker_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    model = tmp_path / "model.json"
    graphdiff.save(model, graphdiff.mlp([2, 4, 1], notation="op"), loss="E")
    assert cli_main(["train", str(model), "--data", "moons", "--out", str(tmp_path / "o.json"),
                     "--workers", "0"]) == 1
    assert not (tmp_path / "o.json").exists()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("graphdiff: error: --workers")
    return err


def test_cli_bad_worker_count_is_one_line(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    err = _bad_worker_count(tmp_path, capsys)
    if importlib.util.find_spec("distributed") is not None:
        assert "--workers must be an int >= 1, got 0" in err
    else:
        assert "--workers trains on Dask, which is not installed" in err


def test_cli_workers_without_dask_is_one_line_naming_the_extra(
    no_dask: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _bad_worker_count(tmp_path, capsys)
    assert "--workers trains on Dask, which is not installed" in err and "[dask]" in err
