"""``aebench train`` and a one-run suite are the same run (issue 14, item 2): identical weights
and an identical ``metrics.json``, wall-clock fields aside."""

from __future__ import annotations

import json

from aebench.cli import main
from aebench.store.database import Store

SUITE = """
name = "one-run"
models = ["vae"]
datasets = ["mnist-5k"]
archs = ["mlp"]
seeds = [3]
batch_size = 64
latent_dim = 4
device = "cpu"
[budget]
epochs = 1
[metrics]  # small, and the same on both paths: the sizes do not matter to the equality
n_samples = 200
iw_k = 16
iw_n = 64
"""

#: what is timed on this machine rather than computed from the weights
WALL_CLOCK = {"train_samples_per_s", "encode_samples_per_s", "decode_samples_per_s",
              "latency_ms_p50", "latency_ms_p95", "peak_mem_mb"}  # fmt: skip


def _comparable(scores: dict) -> dict:
    meta = {k: v for k, v in scores["meta"].items() if k not in ("seconds", "speed")}
    return {**{k: v for k, v in scores.items() if k not in WALL_CLOCK | {"meta"}}, "meta": meta}


def test_train_and_a_one_run_suite_write_the_same_weights_and_metrics(tmp_path, domain_net):
    direct = tmp_path / "direct"
    args = ["train", "vae", "--arch", "mlp", "--latent-dim", "4", "--epochs", "1", "--seed", "3",
            "--batch-size", "64", "--device", "cpu", "--quiet", "--out", str(direct),
            "-m", "n_samples=200", "-m", "iw_k=16", "-m", "iw_n=64"]  # fmt: skip
    assert main(args) == 0
    suite, db = tmp_path / "one.toml", tmp_path / "s.sqlite"
    suite.write_text(SUITE)
    assert main(["run", str(suite), "--store", str(db), "--quiet"]) == 0
    with Store.open(db, readonly=True) as store:
        (row,) = store.runs(suite="one-run")
    from pathlib import Path

    via_suite = Path(row["artifacts"])
    a = (direct / "model.safetensors").read_bytes()
    assert a == (via_suite / "model.safetensors").read_bytes()
    ours = json.loads((direct / "metrics.json").read_text())
    theirs = json.loads((via_suite / "metrics.json").read_text())
    assert ours["meta"]["options"]["seed"] == 3  # the run's seed, not a default
    assert _comparable(ours) == _comparable(theirs)
