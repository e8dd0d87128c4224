"""Checkpoints and parameter files: exact round trips (RNG streams continue
identically), corruption detected by the checksum, and saves that are atomic:
a failure or a SIGKILL mid-write leaves the old or the new file, never a mix."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pytest
from test_lecture import lecture_graph

import graphdiff
from graphdiff import Checkpoint, GraphFormatError
from graphdiff import io as gio


def same_arrays(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        assert np.asarray(b[k]).dtype == np.asarray(a[k]).dtype, k
        assert np.shape(b[k]) == np.shape(a[k]), k
        assert np.asarray(b[k]).tobytes() == np.asarray(a[k]).tobytes(), k


def trained_state() -> tuple[dict[str, Any], graphdiff.Adam, np.random.Generator]:
    """Parameters and an Adam optimizer after a few steps, and a used generator."""
    rng = np.random.default_rng(2026)
    params = {"W": rng.normal(size=(3, 2)), "b": np.float64(0.0),
              "h": rng.normal(size=4).astype(np.float32)}
    opt = graphdiff.Adam(lr=0.01)
    for _ in range(3):
        grads = {k: rng.normal(size=np.shape(v)) for k, v in params.items()}
        params = opt.step(params, grads)
    params["h"] = params["h"].astype(np.float32)
    return params, opt, rng


def make_checkpoint() -> tuple[Checkpoint, graphdiff.Adam, np.random.Generator]:
    params, opt, rng = trained_state()
    ckpt = Checkpoint(
        params=params,
        optimizer=opt.state_dict(),
        rng_state=rng.bit_generator.state,
        epoch=7,
        step=12345,
        config={"lr": 0.01, "batch": 32, "data": {"name": "moons", "n": 200},
                "seed": 2**80 + 1, "tiny": 5e-324, "neg_zero": -0.0, "label": "\u00e9t\u00e9"},
        history=[{"loss": 0.75, "accuracy": 0.5}, {"loss": 0.5, "accuracy": 0.875}],
        graph_fingerprint=gio.graph_fingerprint(lecture_graph("tanh")),
    )
    return ckpt, opt, rng


def test_checkpoint_round_trip_is_exact(tmp_path: Path) -> None:
    ckpt, opt, rng = make_checkpoint()
    graphdiff.save_checkpoint(tmp_path / "ck.json", ckpt)
    back = graphdiff.load_checkpoint(tmp_path / "ck.json")
    same_arrays(ckpt.params, back.params)
    assert back.epoch == 7 and back.step == 12345
    assert back.config == ckpt.config and type(back.config["seed"]) is int
    assert np.signbit(back.config["neg_zero"])
    assert back.history == ckpt.history
    assert back.graph_fingerprint == ckpt.graph_fingerprint
    assert back.rng_state == ckpt.rng_state  # 128-bit PCG64 integers, exactly
    assert ckpt.optimizer is not None and back.optimizer is not None
    assert {k: back.optimizer[k] for k in ("name", "config", "step")} == \
        {k: ckpt.optimizer[k] for k in ("name", "config", "step")}
    for name, slots in ckpt.optimizer["state"].items():
        same_arrays(slots, back.optimizer["state"][name])

    # resuming continues the identical random stream and optimizer trajectory
    resumed = np.random.default_rng()
    resumed.bit_generator.state = back.rng_state
    assert resumed.normal(size=100).tobytes() == rng.normal(size=100).tobytes()
    opt2 = graphdiff.Adam(lr=0.01)
    opt2.load_state_dict(back.optimizer)
    grads = {k: np.full(np.shape(v), 0.3) for k, v in ckpt.params.items()}
    same_arrays(opt.step(ckpt.params, grads), opt2.step(back.params, grads))


@pytest.mark.parametrize("make", [np.random.MT19937, np.random.Philox, np.random.SFC64])
def test_rng_states_with_arrays_round_trip(tmp_path: Path, make: Any) -> None:
    gen = np.random.Generator(make(99))
    gen.normal(size=7)
    graphdiff.save_checkpoint(tmp_path / "ck.json",
                              Checkpoint(params={}, rng_state=gen.bit_generator.state))
    back = graphdiff.load_checkpoint(tmp_path / "ck.json")
    resumed = np.random.Generator(make())
    resumed.bit_generator.state = back.rng_state
    assert resumed.random(50).tobytes() == gen.random(50).tobytes()


def test_checkpoint_file_is_canonical(tmp_path: Path) -> None:
    ckpt, _, _ = make_checkpoint()
    graphdiff.save_checkpoint(tmp_path / "a.json", ckpt)
    graphdiff.save_checkpoint(tmp_path / "b.json", graphdiff.load_checkpoint(tmp_path / "a.json"))
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_edited_checkpoint_fails_its_checksum(tmp_path: Path) -> None:
    ckpt, _, _ = make_checkpoint()
    path = tmp_path / "ck.json"
    graphdiff.save_checkpoint(path, ckpt)
    good = path.read_text()
    doc = json.loads(good)
    for edit in (lambda d: d.__setitem__("epoch", 8),
                 lambda d: d["config"].__setitem__("lr", 0.02),
                 lambda d: d["history"].pop(),
                 lambda d: d.__setitem__("format_version", "1.1"),
                 lambda d: d["params"]["W"].__setitem__(
                     "data", ("C" if d["params"]["W"]["data"][0] == "B" else "B")
                     + d["params"]["W"]["data"][1:])):
        changed = json.loads(good)
        edit(changed)
        assert changed != doc
        path.write_text(json.dumps(changed))
        with pytest.raises(GraphFormatError) as e:
            graphdiff.load_checkpoint(path)
        assert e.value.code == "checksum" and e.value.location == "/checksum"
        assert "corrupted" in str(e.value)


def test_flipped_bits_never_load_silently(tmp_path: Path) -> None:
    ckpt, _, _ = make_checkpoint()
    path = tmp_path / "ck.json"
    graphdiff.save_checkpoint(path, ckpt)
    good = path.read_bytes()
    rng = random.Random(7)
    codes: dict[str, int] = {}
    # every flip inside the base64 payload of W, then a sample over the whole file
    start = good.index(b'"W":{')
    positions = list(range(start, start + 120)) + rng.sample(range(len(good)), 600)
    for pos in positions:
        bit = 1 << rng.randrange(8)
        path.write_bytes(good[:pos] + bytes([good[pos] ^ bit]) + good[pos + 1:])
        try:
            back = graphdiff.load_checkpoint(path)
        except GraphFormatError as e:
            codes[e.code] = codes.get(e.code, 0) + 1
            continue
        pytest.fail(f"flipping bit {bit} of byte {pos} loaded: {back.epoch}")
    print(f"\n{len(positions)} bit flips refused: {codes}")
    assert codes.get("checksum", 0) > 50


def test_truncated_checkpoint_refused(tmp_path: Path) -> None:
    ckpt, _, _ = make_checkpoint()
    graphdiff.save_checkpoint(tmp_path / "ck.json", ckpt)
    data = (tmp_path / "ck.json").read_bytes()
    for cut in (1, len(data) // 3, len(data) - 3):
        (tmp_path / "ck.json").write_bytes(data[:cut])
        with pytest.raises(GraphFormatError) as e:
            graphdiff.load_checkpoint(tmp_path / "ck.json")
        assert e.value.code == "truncated" and str(tmp_path / "ck.json") in str(e.value)


def test_each_loader_refuses_the_other_kinds(tmp_path: Path) -> None:
    graphdiff.save(tmp_path / "model.json", lecture_graph("tanh"))
    graphdiff.save_params(tmp_path / "params.json", {"w": np.zeros(2)})
    graphdiff.save_checkpoint(tmp_path / "ck.json", Checkpoint(params={}))
    for loader, wrong, hint in [
        (graphdiff.load_checkpoint, "model.json", "graphdiff.load"),
        (graphdiff.load_params, "ck.json", "graphdiff.load_checkpoint"),
        (graphdiff.load, "params.json", "graphdiff.load_params"),
    ]:
        with pytest.raises(GraphFormatError) as e:
            loader(tmp_path / wrong)
        assert e.value.code == "wrong_format" and hint in str(e.value)


@pytest.mark.parametrize(
    ("field", "value", "code", "culprit"),
    [
        ("config", {"lr": float("nan")}, "non_finite", "config"),
        ("history", [{"loss": float("inf")}], "non_finite", "history"),
        ("history", [{"loss": "low"}], "bad_type", "/history/0/loss"),
        ("epoch", -1, "bad_type", "/epoch"),
        ("config", {"fn": print}, "unsupported_value", "config"),
        ("rng_state", {"state": np.zeros(2)}, "unsupported_value", "rng_state"),
        ("graph_fingerprint", "md5:abc", "bad_type", "/graph_fingerprint"),
    ],
)
def test_save_checkpoint_refuses_bad_fields(
    tmp_path: Path, field: str, value: Any, code: str, culprit: str
) -> None:
    ckpt = Checkpoint(params={"w": np.zeros(2)})
    setattr(ckpt, field, value)
    with pytest.raises(GraphFormatError) as e:
        graphdiff.save_checkpoint(tmp_path / "ck.json", ckpt)
    assert e.value.code == code and culprit in str(e.value)
    assert not list(tmp_path.iterdir())


def test_nonfinite_arrays_need_opt_in(tmp_path: Path) -> None:
    ckpt = Checkpoint(params={"w": np.array([1.0, np.nan])},
                      optimizer={"name": "sgd", "config": {"lr": 0.1}, "step": 1,
                                 "state": {"w": {"velocity": np.array([np.inf, 0.0])}}})
    graphdiff.save_checkpoint(tmp_path / "ck.json", ckpt)
    with pytest.raises(GraphFormatError) as e:
        graphdiff.load_checkpoint(tmp_path / "ck.json")
    assert e.value.code == "non_finite" and e.value.location == "/params/w"
    back = graphdiff.load_checkpoint(tmp_path / "ck.json", allow_nonfinite=True)
    assert back.optimizer is not None
    same_arrays(ckpt.params, back.params)
    same_arrays(ckpt.optimizer["state"]["w"], back.optimizer["state"]["w"])  # type: ignore[index]


def test_graph_fingerprint() -> None:
    G = lecture_graph("tanh", shared=True)
    H = nx.DiGraph()
    H.add_nodes_from(reversed(list(G.nodes(data=True))))
    H.add_edges_from(reversed(list(G.edges(data=True))))
    fp = gio.graph_fingerprint(G)
    assert fp.startswith("sha256:") and len(fp) == 7 + 64
    assert gio.graph_fingerprint(H) == fp  # insertion order does not matter
    H.edges["x1", "a3"]["param"] = "v"
    assert gio.graph_fingerprint(H) != fp
    assert gio.graph_fingerprint(nx.MultiDiGraph(G)) != fp


# -- atomic saves -------------------------------------------------------------------------------


def save_both_ways(kind: str, path: Path, value: float) -> None:
    if kind == "model":
        graphdiff.save(path, lecture_graph("tanh", shared=True), {"u": value, "v": 0.5},
                       loss="E")
    else:
        graphdiff.save_checkpoint(path, Checkpoint(params={"u": np.float64(value)}, step=1))


def fail_replace(*args: Any) -> None:
    raise OSError(errno.EXDEV, "replace failed")


def fail_fsync(fd: int) -> None:
    raise OSError(errno.EIO, "fsync failed")


def fail_half_way(fd: int, data: bytes) -> None:
    os.write(fd, data[: len(data) // 2])
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("kind", ["model", "checkpoint"])
@pytest.mark.parametrize(
    ("target", "replacement"),
    [("os.replace", fail_replace), ("os.fsync", fail_fsync),
     ("graphdiff.jsonwrite._write_all", fail_half_way)],
)
def test_failed_save_keeps_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, target: str, replacement: Any
) -> None:
    path = tmp_path / "file.json"
    save_both_ways(kind, path, 0.25)
    before = path.read_bytes()
    monkeypatch.setattr(target, replacement)
    with pytest.raises(OSError, match=r"failed|No space") as e:
        save_both_ways(kind, path, 0.75)
    assert isinstance(e.value, graphdiff.FileError) and str(path) in str(e.value)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["file.json"]  # no temporary file left


def test_save_fsyncs_file_and_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def spy_fsync(fd: int) -> None:
        calls.append("fsync dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync file")
        real_fsync(fd)

    def spy_replace(src: str, dst: str) -> None:
        assert os.path.dirname(src) == str(tmp_path)  # same directory: rename is atomic
        assert os.path.basename(src).startswith(".ck.json.") and src.endswith(".tmp")
        calls.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "replace", spy_replace)
    graphdiff.save_checkpoint(tmp_path / "ck.json", Checkpoint(params={}))
    assert calls == ["fsync file", "replace", "fsync dir"]


def test_stale_temporary_files_ignored_then_removed(tmp_path: Path) -> None:
    """Only this library's own temporary files of this file, and only once nothing has
    written to them for STALE_SECONDS, are removed: a live save's file (recent) and
    another program's file (another naming) are not ours to remove."""
    from graphdiff.jsonwrite import STALE_SECONDS

    path = tmp_path / "ck.json"
    graphdiff.save_checkpoint(path, Checkpoint(params={}, epoch=1))
    stale = [tmp_path / ".ck.json.graphdiff-abc123.tmp", tmp_path / ".ck.json.graphdiff-zz.tmp"]
    old = time.time() - STALE_SECONDS - 60
    for s in stale:
        s.write_text("{ half a checkpoint")
        os.utime(s, (old, old))
    live = tmp_path / ".ck.json.graphdiff-live.tmp"  # a concurrent save, still writing
    live.write_text("{ half")
    foreign = [tmp_path / ".ck.json.abc123.tmp", tmp_path / ".other.json.graphdiff-x.tmp"]
    for f in foreign:
        f.write_text("{")
        os.utime(f, (old, old))
    assert graphdiff.load_checkpoint(path).epoch == 1
    graphdiff.save_checkpoint(path, Checkpoint(params={}, epoch=2))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [live.name, *(f.name for f in foreign), "ck.json"]
    )
    assert graphdiff.load_checkpoint(path).epoch == 2


def test_new_file_gets_ordinary_permissions(tmp_path: Path) -> None:
    graphdiff.save_params(tmp_path / "p.json", {})
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "p.json").stat().st_mode & 0o777 == 0o666 & ~umask
    os.chmod(tmp_path / "p.json", 0o600)
    graphdiff.save_params(tmp_path / "p.json", {})
    assert (tmp_path / "p.json").stat().st_mode & 0o777 == 0o600  # kept on overwrite


KILL_SCRIPT = r"""
import sys
import numpy as np
import graphdiff
path, ready = sys.argv[1], sys.argv[2]
big = {i: np.full(600_000, float(i)) for i in (1, 2)}
i = 0
while True:
    i = 1 + i % 2
    graphdiff.save_checkpoint(path, graphdiff.Checkpoint(params={"w": big[i]}, step=i))
    open(ready, "w").close()
"""


def test_killed_save_leaves_old_or_new_file(tmp_path: Path) -> None:
    path, ready = tmp_path / "ck.json", tmp_path / "ready"
    rng = random.Random(3)
    seen, stale_seen = set(), 0
    for attempt in range(4):
        ready.unlink(missing_ok=True)
        proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(path), str(ready)])
        try:
            deadline = time.monotonic() + 60
            while not ready.exists():
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.01)
            if attempt % 2:  # at a random moment
                time.sleep(rng.uniform(0.0, 0.5))
            else:  # while the temporary file is being written
                while not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()):
                    assert time.monotonic() < deadline
                time.sleep(rng.uniform(0.0, 0.003))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        stale_seen += any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
        back = graphdiff.load_checkpoint(path)  # complete and verified by its checksum
        assert back.step in (1, 2)
        assert back.params["w"].shape == (600_000,) and np.all(back.params["w"] == back.step)
        seen.add(back.step)
    print(f"\nkills: 4, killed mid-write (temporary file left): {stale_seen}, "
          f"versions found: {sorted(seen)}")
    # What the kills left is removed by a later save once it is stale (a killed save's
    # file is never written to again; a live one is, so it is never removed).
    from graphdiff.jsonwrite import STALE_SECONDS

    old = time.time() - STALE_SECONDS - 60
    for p in tmp_path.iterdir():
        if p.name.endswith(".tmp"):
            os.utime(p, (old, old))
    graphdiff.save_checkpoint(path, Checkpoint(params={}, step=3))
    assert [p.name for p in tmp_path.iterdir() if p.name != "ready"] == ["ck.json"]
    assert graphdiff.load_checkpoint(path).step == 3
