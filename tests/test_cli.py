"""Command-line conventions common to every ``graphdiff`` subcommand.

``--version``, ``python -m graphdiff``, a closed pipe, ``--debug`` before or after
the subcommand, one help line per subcommand, and exit statuses: 1 and one line
on stderr for bad input (never a traceback), 2 for usage errors.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

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
