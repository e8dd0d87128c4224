"""Shared test settings: hypothesis profiles and a non-interactive matplotlib."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("MPLBACKEND", "Agg")  # never open a window in tests

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
