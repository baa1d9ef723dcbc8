"""The `browser` marker: tests that open the report in headless Chromium through Playwright.

Locally they skip when Chromium or Playwright is missing; under CI=true a missing one is a failure.
CI installs them with: apt-get install -y chromium && pip install playwright (no browser download).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))  # the trajectory builders in fakes.py

from chromium import browser_problem

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: needs headless Chromium and Playwright; required under CI=true"
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("browser"):
        problem = browser_problem()
        if problem:
            if IN_CI:
                pytest.fail(f"CI=true but {problem}", pytrace=False)
            pytest.skip(problem)
