"""Where headless Chromium and Playwright come from (for the `browser` marker and the browser tests).

CI installs them with: apt-get install -y chromium && pip install playwright (no browser download).
"""

from __future__ import annotations

import importlib.util
import os
import shutil


def chromium_path() -> str | None:
    """The Chromium executable: $TORL_CHROMIUM, else chromium / chromium-browser on PATH."""
    return os.environ.get("TORL_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def browser_problem() -> str | None:
    """None when the browser tests can run, else why not."""
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed (pip install playwright)"
    if chromium_path() is None:
        return "Chromium is not installed (apt-get install -y chromium)"
    return None
