"""Shared fixtures: the embedded dataset, the real-data folder, a clean CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``$AEBENCH_DATA_DIR``, else ``../shared/data`` beside the checkout."""
    env = os.environ.get("AEBENCH_DATA_DIR")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = shared_data_dir()
    if not (path / "MNIST" / "raw").is_dir():
        pytest.fail(f"real MNIST files not found under {path}; set AEBENCH_DATA_DIR")
    return path


@pytest.fixture(scope="session")
def mnist5k():
    from bench import data

    return data.load("mnist-5k")


@pytest.fixture(autouse=True)
def _threads():
    """Tests share 2 cores; keep torch's thread count fixed so results are reproducible."""
    torch.set_num_threads(2)


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``aebench ARGS`` in a fresh interpreter, as a user would."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env=full_env,
        timeout=timeout,
    )
