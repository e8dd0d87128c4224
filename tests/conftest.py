"""Shared test settings: hypothesis profiles and a non-interactive matplotlib."""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("MPLBACKEND", "Agg")  # never open a window in tests

# The seed of the property tests that vary from run to run (``@seed(RUN_SEED)``):
# GRAPHDIFF_TEST_SEED if set, else the clock. Printed in pytest's header, so a
# failure is repeated with GRAPHDIFF_TEST_SEED=<that seed>.
RUN_SEED = int(os.environ.get("GRAPHDIFF_TEST_SEED") or time.time_ns() % 2**32)


def pytest_report_header() -> str:
    return f"graphdiff test seed: GRAPHDIFF_TEST_SEED={RUN_SEED}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    # also under -q, which leaves out the header
    terminalreporter.write_line(f"graphdiff test seed: GRAPHDIFF_TEST_SEED={RUN_SEED}")

# "ci" (the default): derandomized and without deadlines, so a slow shared machine
# never turns into a flaky failure. "dev": random seeds, for finding new cases.
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", deadline=None, max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def fresh_registry():
    """Registrations made inside the test are undone afterwards."""
    from graphdiff.registry import scoped_registry

    with scoped_registry() as reg:
        yield reg
