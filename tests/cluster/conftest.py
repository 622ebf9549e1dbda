"""A single-node SLURM on this machine for the cluster tests (tests/cluster/slurm.sh up).

    sudo .venv/bin/pytest -q tests/cluster        # installs slurm-wlm + munge with apt if missing

Skipped only where it cannot be set up: not root, or SLURM missing and no apt-get to install it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("slurm.sh")


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root to install and start SLURM (run: sudo bash tests/cluster/slurm.sh up)"
    installed = shutil.which("slurmctld") and shutil.which("munged")
    if not installed and shutil.which("apt-get") is None:
        return "SLURM is not installed and apt-get is unavailable to install slurm-wlm and munge"
    return None


@pytest.fixture(scope="session")
def slurm(request) -> None:
    """SLURM is up and its node idle; left running afterwards (`slurm.sh down` stops it)."""
    reason = _why_not()
    if reason:
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():
            print(f"\ntests/cluster skipped: {reason}")
        pytest.skip(reason)
    proc = subprocess.run(["bash", str(SCRIPT), "up"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"slurm.sh up failed:\n{proc.stdout}\n{proc.stderr}"
