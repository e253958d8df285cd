"""The GPU check session's logic, run on the CPU (CI never has a GPU): train + eval through the
real run path, the host-sync count of a profiled epoch, the speed variants, the files."""

from __future__ import annotations

import json

import torch

from aebench.perf.device_check import MAX_SYNCS_PER_STEP, count_host_syncs, main


def test_device_check_runs_on_cpu_and_writes_its_files(tmp_path, capsys):
    assert main(["--device", "cpu", "--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "device_check.json").read_text())
    assert result["ok"] and result["device"] == "cpu"
    assert result["train_eval"]["ok"] and "fid" in result["train_eval"]["metrics"]
    syncs = result["host_syncs"]
    assert syncs["steps"] >= 10 and syncs["per_step"] < MAX_SYNCS_PER_STEP
    variants = {r["variant"] for r in result["speed"]}
    assert variants == {"fp32", "fp32 channels_last", "bf16"}
    assert all(r["samples_per_s"] > 0 for r in result["speed"])
    table = (tmp_path / "device_check.md").read_text()
    assert "| bf16 | vae | 64 |" in table and "Host syncs" in table
    assert "device_check.json" in capsys.readouterr().out


def test_the_sync_counter_sees_a_per_step_item(mnist5k):
    """The counter is not blind: a step that calls .item() shows one sync per step, while the
    harness itself reads its loss terms once per epoch, however many steps the epoch has."""
    from aebench import models
    from aebench.training.settings import TrainConfig
    from aebench.training.trainer import Trainer
    from tests.conftest import subset

    small = subset(mnist5k, 640, 64)

    class Chatty(Trainer):
        def train_step(self, x):
            terms = super().train_step(x)
            terms["loss"].item()  # the host waits for the device here, every step
            return terms

    torch.manual_seed(0)
    trainer = Chatty(models.create("vae"), small, TrainConfig(batch_size=64, quiet=True), "vae")
    found = count_host_syncs(trainer)
    assert found["steps"] == 10 and found["per_step"] >= 1.0
    plain = Trainer(models.create("vae"), small, TrainConfig(batch_size=64, quiet=True), "vae")
    short = count_host_syncs(plain)
    assert short["per_step"] < MAX_SYNCS_PER_STEP
    longer = Trainer(models.create("vae"), subset(mnist5k, 2560, 64),
                     TrainConfig(batch_size=64, quiet=True), "vae")  # fmt: skip
    long = count_host_syncs(longer)
    assert long["steps"] == 40 and long["syncs"] == short["syncs"]  # per epoch, not per step
