"""Command-line conventions common to every ``graphdiff`` subcommand.

``--version``, ``python -m graphdiff``, a closed pipe, ``--debug`` before or after
the subcommand, one help line per subcommand, exit statuses (1 and one line on
stderr for bad input, never a traceback; 2 for usage errors; 3 for a failed
gradcheck), and ``--json`` on ``ops``, ``info`` and ``gradcheck``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pytest
from test_lecture import lecture_graph

import graphdiff
from graphdiff.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = ROOT / "tests" / "data" / "hostile" / "01_op_os_system.json"


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    """``python -m graphdiff ARGV`` in a fresh process."""
    return subprocess.run([sys.executable, "-m", "graphdiff", *argv], capture_output=True,
                          text=True, timeout=120, check=False)


def subcommands() -> dict[str, str]:
    """Every subcommand with its help line, as ``graphdiff --help`` lists them."""
    parser = build_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a.help or "" for a in sub._choices_actions}


def test_version_is_the_projects(capsys: pytest.CaptureFixture[str]) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert graphdiff.__version__ == version
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    out, err = capsys.readouterr()
    assert exit_.value.code == 0 and out == f"graphdiff {version}\n" and err == ""


def test_python_dash_m_graphdiff() -> None:
    done = cli("--version")
    version = f"graphdiff {graphdiff.__version__}\n"
    assert (done.returncode, done.stdout, done.stderr) == (0, version, "")
    done = cli("ops")
    assert done.returncode == 0 and done.stderr == ""
    assert any(line.split()[:1] == ["matmul"] for line in done.stdout.splitlines())


@pytest.mark.parametrize("argv", [["ops"], ["--help"]])
def test_a_closed_pipe_ends_quietly(argv: list[str]) -> None:
    # the reader is gone before graphdiff writes a byte: every write is EPIPE
    proc = subprocess.Popen([sys.executable, "-m", "graphdiff", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 0 and err == b""


def test_every_subcommand_has_a_one_line_help_and_takes_debug(
    capsys: pytest.CaptureFixture[str],
) -> None:
    commands = subcommands()
    assert {"ops", "info", "gradcheck", "schema", "demo", "train", "draw"} <= set(commands)
    for name, help_line in commands.items():
        assert help_line.strip() and "\n" not in help_line, name
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        out, _ = capsys.readouterr()
        assert exit_.value.code == 0
        description = out.split("\n\n")[1]  # after the usage, before the arguments
        assert description.strip() and not description.endswith(":"), (name, description)
        assert not description.startswith(("options:", "positional arguments:")), name
        assert "--debug" in out, name


def test_debug_before_or_after_the_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(HOSTILE)]) == 1
    for argv in (["--debug", "info", str(HOSTILE)], ["info", str(HOSTILE), "--debug"],
                 ["info", "--debug", str(HOSTILE)]):
        with pytest.raises(graphdiff.GraphFormatError):
            main(argv)
    capsys.readouterr()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    model = tmp_path / "model.json"
    graphdiff.save(model, graphdiff.mlp([2, 2, 1]), loss="E")
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    return {"model": str(model), "garbage": str(garbage), "hostile": str(HOSTILE),
            "missing": str(tmp_path / "missing.json"), "tmp": str(tmp_path)}


# One bad input per subcommand at least (the test below checks that none is left out);
# the commands' own tests try many more.
BAD_INPUT = [
    ["ops", "--debug", "--debug"],  # no input to get wrong: a repeated flag is harmless
    ["info", "{garbage}"],
    ["info", "{hostile}"],
    ["gradcheck", "{model}", "--data", "moon"],
    ["gradcheck", "{missing}", "--data", "moons"],
    ["gradcheck", "{model}", "--data", "moons", "--directions", "-3"],  # 0 checks, all "ok"
    ["schema"],
    ["demo", "--hidden", "x", "--out", "{tmp}/demo"],
    ["train", "{hostile}", "--data", "moons", "--out", "{tmp}/out.json"],
    ["draw", "{garbage}", "-o", "{tmp}/out.png"],
]


def test_every_subcommand_is_tried_with_bad_input() -> None:
    assert {argv[0] for argv in BAD_INPUT} == set(subcommands())


@pytest.mark.parametrize("argv", BAD_INPUT, ids=lambda argv: " ".join(argv[:2]))
def test_bad_input_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], files: dict[str, str], argv: list[str]
) -> None:
    argv = [a.format(**files) for a in argv]
    code = main(argv)
    out, err = capsys.readouterr()
    if argv[0] in ("ops", "schema"):  # nothing a user can get wrong but the usage
        assert code == 0 and err == ""
    else:
        assert code == 1 and out == "", out
        assert err.startswith("graphdiff: error: ") and err.count("\n") == 1, err
    with pytest.raises(SystemExit) as exit_:  # an unknown option is a usage error
        main([*argv, "--no-such-option"])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err


def test_bad_input_in_a_fresh_process_shows_no_traceback(files: dict[str, str]) -> None:
    done = cli("train", files["garbage"], "--data", "moons", "--out", files["tmp"] + "/o.json")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "garbage.json" in done.stderr
    done = cli("info", files["missing"], "--debug")
    assert done.returncode == 1 and done.stderr.startswith("Traceback")


def test_a_bug_in_a_plugin_is_one_line_too(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fresh_registry: Any
) -> None:
    def forward(x: np.ndarray) -> np.ndarray:
        raise KeyError("oops")  # a bug, not a user's input error

    graphdiff.register_op(graphdiff.elementwise_op("buggy", forward, lambda x, out: x))
    G = graphdiff.mlp([2, 1])
    for n in G:
        if G.nodes[n].get("op") == "neuron":
            G.nodes[n]["activation"] = "buggy"
    graphdiff.save(tmp_path / "m.json", G, loss="E")
    argv = ["gradcheck", str(tmp_path / "m.json"), "--data", "moons", "--n", "8"]
    assert main(argv) == 1
    assert re.fullmatch(r"graphdiff: internal error: KeyError: 'oops' \(--debug .*\)\n",
                        capsys.readouterr().err)
    with pytest.raises(KeyError):
        main([*argv, "--debug"])


# -- --json: only JSON on stdout, every row -------------------------------------------


def json_out(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert err == "", err
    return code, json.loads(out)  # the whole of stdout parses: nothing else was printed


def test_ops_json_lists_every_op(capsys: pytest.CaptureFixture[str]) -> None:
    code, ops = json_out(capsys, "ops", "--json")
    assert code == 0
    assert main(["ops"]) == 0
    table = [line.split(maxsplit=2) for line in capsys.readouterr().out.splitlines()]
    assert [[op["name"], op["kind"], op["source"]] for op in ops] == table
    assert {"matmul", "tanh", "hinge", "neuron"} <= {op["name"] for op in ops}


def test_info_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # the slides' network: u and v are each the weight of four edges
    lecture = tmp_path / "lecture.json"
    graphdiff.save(lecture, lecture_graph("tanh", shared=True),
                   {"u": np.float64(0.8), "v": np.float64(-0.5)}, loss="E")
    code, info = json_out(capsys, "info", str(lecture), "--json")
    assert code == 0
    assert (info["graph"], info["loss"], info["edges"]) == ("DiGraph", "E", 10)
    nodes = {n["node"]: n for n in info["nodes"]}
    assert sorted(nodes) == ["E", "a3", "a4", "a5", "a6", "a7", "t", "x1", "x2"]
    assert nodes["a3"] == {"node": "a3", "op": "neuron", "activation": "tanh", "in": 2, "out": 2}
    assert nodes["E"] == {"node": "E", "op": "hinge", "activation": None, "in": 2, "out": 0}
    assert info["parameters"] == [
        {"name": p, "shape": [], "size": 1, "stored": "float64", "uses": 4, "shared": True}
        for p in ("u", "v")
    ]
    assert info["compiled"] is True and info["note"] is None and info["plugins"] == []


def test_info_json_keeps_int_ids_unsaved_params_and_plugins(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fresh_registry: Any
) -> None:
    graphdiff.register_op(replace(
        graphdiff.elementwise_op("cube_json", lambda x: x**3, lambda x, out: 3 * x**2),
        source="plugin cube-pkg 2.1"))
    G = nx.DiGraph()
    G.add_node("x", op="input")
    G.add_node("W", op="param", shape=(2, 3))
    G.add_node(0, op="matmul")
    G.add_edge("x", 0, port=0)
    G.add_edge("W", 0, port=1)
    G.add_node("c", op="cube_json")
    G.add_edge(0, "c")
    G.add_node("s", op="sum")
    G.add_edge("c", "s")
    graphdiff.save(tmp_path / "m.json", G, {"unused": np.zeros(3, np.float32)})
    code, info = json_out(capsys, "info", str(tmp_path / "m.json"), "--json")
    assert code == 0 and info["loss"] is None and len(info["nodes"]) == 5
    assert {"node": 0, "op": "matmul", "activation": None, "in": 2, "out": 1} in info["nodes"]
    assert info["parameters"] == [
        {"name": "W", "shape": [2, 3], "size": 6, "stored": None, "uses": 1, "shared": False},
        {"name": "unused", "shape": [3], "size": 3, "stored": "float32", "uses": None,
         "shared": False},
    ]
    assert info["plugins"] == [{"op": "cube_json", "source": "plugin cube-pkg 2.1"}]


def test_gradcheck_json_and_exit_status(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fresh_registry: Any
) -> None:
    model = tmp_path / "m.json"
    graphdiff.save(model, lecture_graph("tanh"), loss="E")
    code, report = json_out(capsys, "gradcheck", str(model), "--data", "moons", "--json")
    assert code == 0 and report["ok"] is True and report["mismatch"] == []
    names = ["w13", "w23", "w24", "w35", "w36", "w46", "w57", "w67"]
    assert sorted(r["name"] for r in report["rows"]) == names  # every row
    assert all(r["ok"] and r["max_abs_err"] <= 1e-6 for r in report["rows"])
    assert (report["loss"], report["data"], report["mode"]) == ("E", "moons", "central")

    # a plugin whose derivative is off by a factor 2 for a5: exit 3, the three
    # gradients that use a5's derivative are named (as in test_io_cli)
    graphdiff.register_op(graphdiff.elementwise_op(
        "bad_cube_json", lambda x: x**3, lambda x, out: 6 * x**2))
    G = lecture_graph("tanh")
    G.nodes["a5"]["activation"] = "bad_cube_json"
    graphdiff.save(model, G, loss="E")
    code, report = json_out(capsys, "gradcheck", str(model), "--data", "moons", "--json")
    assert code == 3 and report["ok"] is False
    assert sorted(report["mismatch"]) == ["w13", "w23", "w35"]
    assert {r["name"] for r in report["rows"] if not r["ok"]} == {"w13", "w23", "w35"}
    assert len(report["rows"]) == 8

    # bad input stays exit 1, with nothing on stdout
    assert main(["gradcheck", str(model), "--data", "moon", "--json"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1


def test_json_keeps_every_row_where_the_text_summarises(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    G = graphdiff.mlp([2, 8, 1])  # 33 parameters: more rows than the text shows
    model = tmp_path / "m.json"
    graphdiff.save(model, G, loss="E")
    names = set(graphdiff.compile(G, loss="E").params)
    assert len(names) == 33
    code, info = json_out(capsys, "info", str(model), "--json")
    assert code == 0 and {p["name"] for p in info["parameters"]} == names
    nodes = [n["node"] for n in info["nodes"]]
    assert len(nodes) == G.number_of_nodes() == 13 and set(nodes) == set(G.nodes)
    code, report = json_out(capsys, "gradcheck", str(model), "--data", "moons", "--n", "10",
                            "--json")
    assert code == 0 and {r["name"] for r in report["rows"]} == names
    assert main(["gradcheck", str(model), "--data", "moons", "--n", "10"]) == 0
    assert "more rows pass" in capsys.readouterr().out  # the text is a summary
