"""Where files are written: concurrent saves, symbolic links, folders, unusable paths.

Every save is atomic (see test_io_checkpoint.py); these tests are about the path:
saves racing for one file all succeed and the file is always complete, a link is
written through to the file it points to, and what cannot be a file is refused
with a FileError naming it, leaving nothing behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pytest

import graphdiff
from graphdiff import Checkpoint, FileError

SAVER = r"""
import os, sys, time
import networkx as nx, numpy as np
import graphdiff
path, go, who = sys.argv[1], sys.argv[2], int(sys.argv[3])
G = nx.DiGraph([("x", "y")])
while not os.path.exists(go):
    time.sleep(0.001)
for i in range(10):
    graphdiff.save(path, G, {"w": np.full(100_000, 100.0 * who + i)})
print("done", who)
"""


def test_concurrent_saves_to_one_path_all_succeed(tmp_path: Path) -> None:
    path, go = tmp_path / "m.json", tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", SAVER, str(path), str(go), str(who)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for who in range(4)
    ]
    time.sleep(0.5)  # the interpreters start; then all four save at once
    go.touch()
    loads, seen = 0, set()
    while any(p.poll() is None for p in procs):
        if path.exists():  # whenever it is there, the file is complete
            _, params = graphdiff.load(path)
            w = params["w"]
            assert w.shape == (100_000,) and np.all(w == w[0])
            seen.add(float(w[0]))
            loads += 1
    outs = [p.communicate() for p in procs]
    failed = [(p.returncode, err[-2000:]) for p, (_, err) in zip(procs, outs, strict=True)
              if p.returncode]
    print(f"\n4 processes x 10 saves: {len(failed)} failed; {loads} loads while saving, "
          f"{len(seen)} versions seen")
    assert failed == []
    assert all(out.strip() == f"done {who}" for who, (out, _) in enumerate(outs))
    _, params = graphdiff.load(path)  # the last rename won: some process's 10th save
    assert float(params["w"][0]) in {100.0 * who + 9 for who in range(4)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["go", "m.json"]  # no temporary left


@pytest.mark.parametrize("kind", ["model", "params", "checkpoint"])
def test_symlink_written_through_to_its_file(tmp_path: Path, kind: str) -> None:
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    real, link = real_dir / "file.json", tmp_path / "link.json"
    link.symlink_to(real)  # dangling first: the save creates the file it points to
    for value in (1.0, 2.0):
        save(kind, link, value)
        assert link.is_symlink() and os.readlink(link) == str(real)
        assert load(kind, real) == value == load(kind, link)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "real"]
    assert [p.name for p in real_dir.iterdir()] == ["file.json"]  # written in its own folder


def save(kind: str, path: Any, value: float) -> None:
    if kind == "model":
        graphdiff.save(path, nx.DiGraph([("x", "y")]), {"w": np.float64(value)})
    elif kind == "params":
        graphdiff.save_params(path, {"w": np.float64(value)})
    else:
        graphdiff.save_checkpoint(path, Checkpoint(params={"w": np.float64(value)}))


def load(kind: str, path: Any) -> float:
    if kind == "model":
        return float(graphdiff.load(path)[1]["w"])
    if kind == "params":
        return float(graphdiff.load_params(path)["w"])
    return float(graphdiff.load_checkpoint(path).params["w"])


@pytest.mark.parametrize("kind", ["model", "params", "checkpoint"])
def test_unusable_save_paths_refused_naming_them(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "dir"
    folder.mkdir()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    cases: list[tuple[Any, str]] = [
        (str(folder) + os.sep, "names a folder"),  # not a file named "dir"
        (str(tmp_path / "new") + os.sep, "names a folder"),
        (folder, "is a directory"),
        (fifo, "not a regular file"),
        (tmp_path / "missing" / "m.json", "No such file or directory"),
        (None, "got None"),
        (b"bytes.json", "got b'bytes.json'"),
    ]
    for path, why in cases:
        with pytest.raises(FileError, match=why) as e:
            save(kind, path, 1.0)
        assert isinstance(e.value, OSError)
        if path is not None and not isinstance(path, bytes):
            assert str(path) in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "pipe"]
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("kind", ["directory", "slash", "missing_folder", "fifo"])
def test_train_checks_out_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    kind: str,
) -> None:
    """``graphdiff train --out`` that cannot be written is refused before training
    (issue 13: an existing folder as --out trained 100 epochs, then failed)."""
    import graphdiff.train
    from graphdiff.cli import main

    model = tmp_path / "model.json"
    graphdiff.save(model, graphdiff.mlp([2, 2, 1]), loss="E")
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "pipe")
    out = {"directory": str(tmp_path / "folder"), "slash": str(tmp_path / "new") + os.sep,
           "missing_folder": str(tmp_path / "no" / "m.json"),
           "fifo": str(tmp_path / "pipe")}[kind]

    def no_training(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("trained before checking --out")

    monkeypatch.setattr(graphdiff.train, "fit", no_training)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert main(["train", str(model), "--data", "moons", "--out", out]) == 1
    err = capsys.readouterr().err
    assert err.startswith("graphdiff: error: cannot write") and out in err, err
    assert err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing left behind
