"""Fixtures for the reward tests: one verification pool shared by the session."""

from __future__ import annotations

import pytest

from torl.rewards import VerifyPool


@pytest.fixture(scope="session")
def pool():
    with VerifyPool(workers=2, timeout_s=10.0) as p:
        yield p.start()
