"""Debian packages some tests need (redis-server, headless Chromium), installed once.

`apt-get` runs in the background from the start of the session (tests/conftest.py), so
the download overlaps the tests that need nothing; a test that needs a program waits
for it with :func:`require`. Without root or apt-get, those tests are skipped with the
reason; an installation that fails makes them fail, with apt-get's output.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

# program on PATH -> Debian package that provides it
PACKAGES = {
    "redis-server": "redis-server",
    "chromium": "chromium",
    "chromedriver": "chromium-driver",
    "prometheus": "prometheus",
}
_state: dict[str, object] = {"process": None, "log": None}


def start_installing() -> None:
    """Start one `apt-get install` of every missing package (no-op when none is missing)."""
    missing = sorted({p for b, p in PACKAGES.items() if not shutil.which(b)})
    if not missing or _state["process"] is not None:
        return
    if not shutil.which("apt-get") or os.geteuid() != 0:
        return
    log = Path(tempfile.mkstemp(prefix="apt-", suffix=".log")[1])
    command = (
        f"apt-get update -qq && apt-get install -y -qq --no-install-recommends {' '.join(missing)}"
    )
    with log.open("w") as out:
        _state["process"] = subprocess.Popen(
            ["bash", "-c", command],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=os.environ | {"DEBIAN_FRONTEND": "noninteractive"},
        )
    _state["log"] = log


def require(program: str, timeout_s: float = 600) -> str:
    """The path of ``program``, once the background installation has provided it."""
    found = shutil.which(program)
    if found:
        return found
    process = _state["process"]
    if process is None:
        start_installing()
        process = _state["process"]
    if process is None:
        pytest.skip(f"{program} is not installed and apt-get cannot install it here (needs root)")
    process.wait(timeout=timeout_s)
    found = shutil.which(program)
    if not found:
        log = Path(str(_state["log"])).read_text()[-3000:]
        pytest.fail(f"apt-get did not provide {program} ({PACKAGES[program]}):\n{log}")
    return found
