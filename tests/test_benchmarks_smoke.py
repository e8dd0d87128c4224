"""The benchmark suite's smoke mode: every implementation of every workload agrees
with hand-written numpy (float64, max abs diff < 1e-8). Timings are not checked."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def _import_benchmarks() -> None:
    """benchmarks/ is not installed; load it by location without putting the repository
    root on sys.path (which would also make the top-level ``ops`` folder importable)."""
    if "benchmarks" in sys.modules:
        return
    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    spec = importlib.util.spec_from_file_location(
        "benchmarks", folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["benchmarks"] = module
    spec.loader.exec_module(module)


_import_benchmarks()
from benchmarks import lecture, run  # noqa: E402


def test_smoke_suite_verifies_every_workload(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    assert run.main(["--smoke", "--quiet", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["failures"] == {} and doc["smoke"] is True
    workloads = {r["workload"].split()[0] for r in doc["rows"]}
    assert workloads == {"W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "Compile"}
    impls = {(r["workload"], r["impl"]) for r in doc["rows"]}
    for w in ("W1", "W2", "W3", "W4"):
        assert {(w, "hand numpy"), (w, "graphdiff")} <= impls
    assert ("W3", "hand numpy, out= buffers") in impls
    assert ("W4", "graphdiff, op notation") in impls
    assert {("W3 memory", "graphdiff"), ("W3 memory", "hand numpy")} <= impls
    assert {("W7", "graphdiff, op notation"), ("W7", "graphdiff, neuron notation"),
            ("W7 fit", "graphdiff"), ("W7 fit", "hand numpy")} <= impls
    assert {("W8", "hand numpy"), ("W8", "hand numpy, float32"),
            ("W8", "graphdiff, float32")} <= impls


def test_a_wrong_gradient_fails_its_workload_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    true_hand = lecture.hand

    def off_by_a_little(*args: Any) -> tuple[Any, dict[str, Any]]:
        E, grads = true_hand(*args)
        return E, {**grads, "w35": grads["w35"] + 1e-6}

    monkeypatch.setattr(lecture, "hand", off_by_a_little)
    out = tmp_path / "results.json"
    assert run.main(["--smoke", "--quiet", "--only", "W1,W3", "--json", str(out)]) == 1
    doc = json.loads(out.read_text())
    assert set(doc["failures"]) == {"W1"}
    assert "grad/w35" in doc["failures"]["W1"] and "graphdiff" in doc["failures"]["W1"]
    assert {r["workload"] for r in doc["rows"]} == {"W3"}  # the other workload still ran


def test_unknown_workload_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run.main(["--smoke", "--only", "W9"])
    assert "W9" in capsys.readouterr().err


def test_hand_lecture_matches_the_slides_at_one_point() -> None:
    """The reference itself, on the slides' equations evaluated with plain floats."""
    w = lecture.WEIGHTS
    x1, x2, t = 0.5, -1.3, -1.0
    g = np.tanh
    a3 = g(x1 * w["w13"] + x2 * w["w23"]); a4 = g(x2 * w["w24"])  # noqa: E702
    a5 = g(a3 * w["w35"]); a6 = g(a3 * w["w36"] + a4 * w["w46"])  # noqa: E702
    z7 = a5 * w["w57"] + a6 * w["w67"]
    assert -z7 * t > 0  # the hinge is active: δ7 = -t
    loss, grads = lecture.hand(w, np.array([x1]), np.array([x2]), np.array([t]))
    assert loss == pytest.approx(-z7 * t, rel=1e-15)
    assert grads["w67"] == pytest.approx(-t * a6, rel=1e-15)
    d5 = -t * w["w57"]
    assert grads["w35"] == pytest.approx(d5 * (1 - a5**2) * a3, rel=1e-14)


@pytest.mark.parametrize("name", ["core", "lecture", "mlp", "scaling", "files", "run", "training"])
def test_doctests(name: str) -> None:
    module = importlib.import_module(f"benchmarks.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
