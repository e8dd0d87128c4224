"""A regular (non-editable) install works from another directory.

The wheel and the sdist carry the LICENSE file. mypy finds ``graphdiff.ops`` in the
checkout (through the ``graphdiff/ops`` symlink).

The project is built into a wheel offline (no build isolation, no index: the
virtualenv's setuptools does the build), the wheel is installed with
``pip --target`` into a temporary folder, and a fresh interpreter started
with ``-S`` (so the editable install's ``.pth`` finder is not loaded) and run
from an unrelated working directory imports graphdiff from that folder only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import importlib, importlib.util, pkgutil, sys
from pathlib import Path
import networkx as nx, numpy as np
import graphdiff, graphdiff.ops

target = Path(sys.argv[1]).resolve()
assert Path(graphdiff.__file__).resolve().parent == target / "graphdiff", graphdiff.__file__
assert Path(graphdiff.ops.__file__).resolve().parent == target / "graphdiff" / "ops"
assert importlib.util.find_spec("ops") is None, "a top-level `ops` module is importable"
assert (target / "graphdiff" / "py.typed").is_file()
for pkg in (graphdiff, graphdiff.ops):  # every module of the installed tree imports
    for mod in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        importlib.import_module(mod.name)

G = nx.DiGraph()
G.add_nodes_from(["x", "t"], op="input")
G.add_node("y", op="neuron", activation="tanh", bias=0.1)
G.add_edge("x", "y", param="w", weight=0.5)
G.add_node("E", op="squared_error")
G.add_edge("y", "E", port=0)
G.add_edge("t", "E", port=1)
net = graphdiff.compile(G, loss="E")
x, t = np.array([1.0, -2.0]), np.array([0.3, 0.1])
res = net.backward(net.init_params(seed=0), {"x": x, "t": t})
a = np.tanh(0.5 * x + 0.1)
assert np.isclose(res.loss, np.mean((a - t) ** 2))
assert np.isclose(res.grads["w"], np.mean(2 * (a - t) * (1 - a**2) * x))
sources = {r.name: r.source for r in graphdiff.list_ops()}
assert sources["matmul"] == "graphdiff (built-in)" and sources["neuron"] == "graphdiff (engine)"
print("installed ok")
"""


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{cmd}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    return proc.stdout


def test_regular_install_works_from_another_directory(tmp_path):
    # build from a clean copy: no build/ or egg-info written into the shared checkout
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for pkg in ("graphdiff", "ops"):
        shutil.copytree(ROOT / pkg, src / pkg, ignore=ignore, symlinks=True)  # graphdiff/ops
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    pip = [sys.executable, "-m", "pip", "--no-input", "--quiet"]
    wheels = tmp_path / "wheels"
    run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src)],
        tmp_path, env)
    (wheel,) = wheels.glob("graphdiff-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "graphdiff/ops/__init__.py" in names and "graphdiff/py.typed" in names
    assert not [n for n in names if n.startswith("ops/")], "a top-level ops package is shipped"
    # the license travels with the wheel (core metadata 2.4: License-File, dist-info/licenses)
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    dist_info = meta.rsplit("/", 1)[0]
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read(f"{dist_info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
        headers = zf.read(meta).decode().split("\n\n", 1)[0].splitlines()
    assert "License-Expression: MIT" in headers and "License-File: LICENSE" in headers
    # and with the sdist
    sdists = tmp_path / "sdists"
    run([sys.executable, "-c", "import sys; from setuptools import build_meta; "
         "build_meta.build_sdist(sys.argv[1])", str(sdists)], src, env)
    (sdist,) = sdists.glob("graphdiff-*.tar.gz")
    with tarfile.open(sdist) as tf:
        members = {m.name.split("/", 1)[1] for m in tf.getmembers() if "/" in m.name}
    assert {"LICENSE", "pyproject.toml", "ops/__init__.py", "graphdiff/py.typed"} <= members

    target = tmp_path / "site"
    run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], tmp_path, env)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "script.py").write_text(SCRIPT)
    # -S: no site-packages .pth files, so the editable install's finder stays out;
    # the virtualenv's libraries (numpy, networkx, pydantic) come after the target
    site = sysconfig.get_paths()["purelib"]
    env["PYTHONPATH"] = os.pathsep.join([str(target), site])
    out = run([sys.executable, "-S", "script.py", str(target)], elsewhere, env)
    assert out.strip() == "installed ok"
    out = run([sys.executable, "-S", "-m", "graphdiff.cli", "ops"], elsewhere, env)
    assert any(line.split()[:1] == ["hinge"] for line in out.splitlines())


def test_mypy_sees_graphdiff_ops_in_the_checkout():
    # graphdiff/ops is a symlink to ops/: static checkers cannot run the editable
    # install's import hook that maps graphdiff.ops to ops/, so without it mypy (and
    # pyright) find graphdiff but not graphdiff.ops. The last import is the control
    # that shows the check can fail. No config file: the project's silences missing imports.
    program = "import graphdiff.ops\nimport graphdiff.ops.elementwise\nimport graphdiff.no_such\n"
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file=", "--no-incremental",
         "--follow-imports=skip", "--cache-dir", os.devnull, "-c", program],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    errors = [line for line in proc.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1 and '"graphdiff.no_such"' in errors[0], proc.stdout + proc.stderr
    assert (ROOT / "graphdiff" / "ops").resolve() == (ROOT / "ops").resolve()
