"""A real Chromium for the console's browser tests (Debian's `chromium`, driven by Playwright).

`playwright install` cannot download browsers here, so the tests launch the system's Chromium
(`/usr/bin/chromium`, or RAYON_CHROMIUM).  Without it a developer's run skips the browser tests
with the reason; under CI=true a missing browser fails them instead, so that CI never passes
because the browser tests did not run (`./dev test` installs chromium when it runs as root).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def chromium_path() -> Path | None:
    """The Chromium binary to drive, or None when this machine has none."""
    named = os.environ.get("RAYON_CHROMIUM")
    for candidate in (named, "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def no_browser(reason: str) -> None:
    """Skip a browser test for `reason` on a developer's machine; fail it under CI=true."""
    if os.environ.get("CI"):
        pytest.fail(f"browser test not run under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)
