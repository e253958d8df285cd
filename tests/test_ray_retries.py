"""Ray runs are not retried forever (issue 28, item 4): a run that fails for its own reasons
is recorded as failed at once, and a run whose worker process dies every time is restarted
:data:`NODE_FAULT_RETRIES` times, then recorded as failed in one line. Real Ray, started by
aebench in a subprocess as a user's command would, with a plugin model that misbehaves."""

from __future__ import annotations

from pathlib import Path

import pytest

from aebench.experiments.ray_executor import NODE_FAULT_RETRIES
from aebench.store.database import Store
from tests.conftest import run_cli, tiny_suite

pytest.importorskip("ray", reason="Ray is the optional extra aebench[ray]")
pytestmark = pytest.mark.slow  # each test starts a Ray of its own (~10 s) and runs on it

PLUGIN = """
import os

from aebench import models
from aebench.models.ae.model import AE


@models.register("{name}")
class Misbehaving(AE):
    def loss(self, x):
        {body}
"""
BODIES = {
    "raising-ae": 'raise ValueError("this model cannot train")',  # the run's own failure
    "dying-ae": "os._exit(3)",  # its worker process dies, as under the OOM killer
}


@pytest.mark.parametrize(
    ("model", "restarts"), [("raising-ae", 0), ("dying-ae", NODE_FAULT_RETRIES)]
)
def test_a_failing_run_is_retried_only_for_cluster_faults_and_only_so_often(
    tmp_path: Path, cache_env: dict[str, str], model: str, restarts: int
) -> None:
    plugin = tmp_path / "plugin.py"
    plugin.write_text(PLUGIN.format(name=model, body=BODIES[model]))
    suite = tmp_path / "one.toml"
    suite.write_text(tiny_suite("one", [model], [0]))
    db = tmp_path / "s.sqlite"
    env = {**cache_env, "RAY_DISABLE_USAGE_STATS": "1", "RAY_ADDRESS": "127.0.0.1:1"}
    result = run_cli("--plugin", str(plugin), "run", str(suite), "--store", str(db),
                     "--executor", "ray", "--quiet", env=env)  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    lines = result.stderr.splitlines()
    assert sum("restarting it on the cluster" in line for line in lines) == restarts
    with Store.open(db, readonly=True) as store:
        (run,) = store.runs(suite="one")
    assert run["status"] == "failed"
    if restarts:
        assert run["error"].startswith(f"lost to cluster faults {restarts + 1} times")
    else:
        assert "this model cannot train" in run["error"]
