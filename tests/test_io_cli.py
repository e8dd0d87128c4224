"""``graphdiff info``, ``graphdiff schema`` and ``graphdiff gradcheck`` on model files."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pytest
from test_lecture import lecture_graph

import graphdiff
from graphdiff import GraphFormatError
from graphdiff.cli import main

CORPUS = Path(__file__).resolve().parent / "data" / "hostile"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def lecture_file(tmp_path: Path) -> Path:
    path = tmp_path / "lecture.json"
    params = {"u": np.float64(0.8), "v": np.float64(-0.5)}
    graphdiff.save(path, lecture_graph("tanh", shared=True), params, loss="E")
    return path


def rows(out: str, first: str) -> list[list[str]]:
    """The rows of the table whose header starts with ``first``, split on blanks."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first))
    table = []
    for line in lines[start + 2:]:
        if not line.strip() or line.startswith(("total:", "plugins:")) or "checks pass" in line:
            break
        table.append(line.split())
    return table


def test_info_lists_nodes_parameters_and_sharing(
    capsys: pytest.CaptureFixture[str], lecture_file: Path
) -> None:
    code, out, err = run(capsys, "info", str(lecture_file))
    assert code == 0 and err == ""
    assert out.splitlines()[0] == f"{lecture_file}: DiGraph, 9 nodes, 10 edges, loss 'E'"
    nodes = {r[0]: r[1:] for r in rows(out, "node")}
    assert nodes["'x2'"] == ["input", "0", "2"]
    assert nodes["'a3'"] == ["neuron", "tanh", "2", "2"]
    assert nodes["'a7'"] == ["neuron", "identity", "2", "1"]
    assert nodes["'E'"] == ["hinge", "2", "0"]
    assert len(nodes) == 9
    params = {r[0]: r[1:] for r in rows(out, "parameter")}
    # each of u and v is the weight of four edges of the slides' network
    assert params == {"u": ["()", "1", "float64", "4", "yes"],
                      "v": ["()", "1", "float64", "4", "yes"]}
    assert "total: 2 parameters (2 shared), 2 numbers" in out
    assert out.rstrip().endswith("plugins: none")


def test_info_tensor_parameters_and_plugins(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fresh_registry: Any
) -> None:
    op = graphdiff.elementwise_op("cube_cli", lambda x: x**3, lambda x, out: 3 * x**2)
    graphdiff.register_op(replace(op, source="plugin cube-pkg 2.1", distribution="cube-pkg",
                                  version="2.1"))
    G = nx.DiGraph()
    G.add_node("x", op="input")
    G.add_node("W", op="param", shape=(2, 3))
    G.add_node(0, op="matmul")
    G.add_edge("x", 0, port=0)
    G.add_edge("W", 0, port=1)
    G.add_node("c", op="cube_cli")
    G.add_edge(0, "c")
    G.add_node("s", op="sum")
    G.add_edge("c", "s")
    graphdiff.save(tmp_path / "m.json", G, {"W": np.ones((2, 3), np.float32)})
    code, out, _ = run(capsys, "info", str(tmp_path / "m.json"))
    assert code == 0
    assert "loss (not saved)" in out.splitlines()[0]
    assert {r[0]: r[1:] for r in rows(out, "node")}["0"] == ["matmul", "2", "1"]  # int id 0
    params = rows(out, "parameter")  # compiled with the only sink as the loss
    assert params == [["W", "(2,", "3)", "6", "float32", "1"]]
    assert "total: 1 parameters (0 shared), 6 numbers" in out
    assert "plugins: cube_cli (plugin cube-pkg 2.1)" in out


def test_info_when_nothing_compiles(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    graphdiff.save(tmp_path / "m.json", nx.DiGraph([("a", "b"), ("a", "c")]), {"w": np.zeros(3)})
    code, out, _ = run(capsys, "info", str(tmp_path / "m.json"))
    assert code == 0
    assert rows(out, "parameter") == [["w", "(3,)", "3", "float64", "(unused)"]]
    assert "no loss node saved and no single sink" in out


def test_schema_is_the_model_file_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schema")
    assert code == 0
    schema = json.loads(out)
    assert schema["title"] == "ModelFile" and schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"format", "format_version", "graph", "loss", "params",
                                         "ops", "dtype"}
    tensor = schema["$defs"]["TensorSpec"]
    assert tensor["properties"]["dtype"]["enum"] == ["float64", "float32"]
    assert tensor["additionalProperties"] is False
    assert schema["$defs"]["NodeSpec"]["additionalProperties"] is False


def test_gradcheck_passes_on_the_lecture_network(
    capsys: pytest.CaptureFixture[str], lecture_file: Path
) -> None:
    code, out, err = run(capsys, "gradcheck", str(lecture_file), "--data", "xor", "--n", "40")
    assert code == 0, out + err
    table = {r[0]: r for r in rows(out, "parameter")}
    assert sorted(table) == ["u", "v"] and all(r[-1] == "yes" for r in table.values())
    assert out.rstrip().endswith("2 of 2 checks pass")


def test_gradcheck_directions_csv_and_loss_option(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    G = lecture_graph("sigmoid")  # no params and no loss saved: init_params(seed), --loss
    graphdiff.save(tmp_path / "m.json", G)
    rng = np.random.default_rng(0)
    data = np.column_stack([rng.normal(size=(30, 2)), rng.choice([-1.0, 1.0], 30)])
    np.savetxt(tmp_path / "d.csv", data, delimiter=",", header="x1,x2,t", comments="")
    code, out, err = run(capsys, "gradcheck", str(tmp_path / "m.json"), "--data",
                         str(tmp_path / "d.csv"), "--loss", "E", "--directions", "3",
                         "--seed", "5")
    assert code == 0, out + err
    assert [r[0:2] for r in rows(out, "parameter")] == [["direction", "0"], ["direction", "1"],
                                                         ["direction", "2"]]
    code, out, err = run(capsys, "gradcheck", str(tmp_path / "m.json"), "--data", "xor")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "--loss" in err


def test_gradcheck_reports_a_wrong_derivative(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fresh_registry: Any
) -> None:
    # a plugin whose derivative is off by a factor 2: the check must fail
    graphdiff.register_op(graphdiff.elementwise_op(
        "bad_cube", lambda x: x**3, lambda x, out: 6 * x**2))
    G = lecture_graph("tanh")
    G.nodes["a5"]["activation"] = "bad_cube"
    graphdiff.save(tmp_path / "m.json", G, loss="E")
    code, out, err = run(capsys, "gradcheck", str(tmp_path / "m.json"), "--data", "moons")
    assert code == 3, out + err  # a check that ran and failed; bad input is 1
    table = {r[0]: r[-1] for r in rows(out, "parameter")}
    # the gradients of w35 and (through a3's delta) w13 and w23 use a5's derivative;
    # those of w24, w36, w46, w57 and w67 do not
    assert [k for k, ok in sorted(table.items()) if ok == "NO"] == ["w13", "w23", "w35"]
    assert "mismatch: " in out.splitlines()[-1] and "w35" in out.splitlines()[-1]


def test_bad_input_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    hostile = str(CORPUS / "01_op_os_system.json")
    for argv in (["info", hostile], ["gradcheck", hostile, "--data", "xor"],
                 ["info", str(tmp_path / "missing.json")]):
        code, out, err = run(capsys, *argv)
        assert code == 1 and out == ""
        assert err.startswith("graphdiff: error: ") and err.count("\n") == 1, err
    assert "'os.system'" in err or "missing.json" in err
    with pytest.raises(GraphFormatError):
        main(["--debug", "info", hostile])


def test_command_line_in_a_fresh_process(lecture_file: Path) -> None:
    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "graphdiff.cli", *argv],
                              capture_output=True, text=True, timeout=60, check=False)

    ok = cli("info", str(lecture_file))
    assert ok.returncode == 0 and "u " in ok.stdout and ok.stderr == ""
    bad = cli("info", str(CORPUS / "83_future_major_version.json"))
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and "[unsupported_version]" in bad.stderr
    assert "Traceback" not in bad.stderr
