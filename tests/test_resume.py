"""Exact resume: a run killed with SIGKILL mid-epoch and resumed ends bit-identical."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

from aebench.core.errors import UsageError
from tests.conftest import REPO, run_cli

ARGS = [
    "train",
    "vae",
    "--arch",
    "mlp",
    "--epochs",
    "3",
    "--seed",
    "4",
    "--latent-dim",
    "4",
    "--batch-size",
    "32",
    "--quiet",
    "--no-eval",
]


def _history_without_time(run_dir):
    history = json.loads((run_dir / "history.json").read_text())
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def _metrics_json(run_dir, cache):
    """``aebench eval`` the run and read its metrics.json. The speed family is skipped: it is
    wall-clock measurement, which differs between any two runs (so do the per-family timings)."""
    from aebench.cli import main

    code = main([
        "eval", str(run_dir), "--n-samples", "300", "--iw-k", "20", "--iw-n", "50",
        "--skip", "speed", "--cache-dir", str(cache),
    ])  # fmt: skip
    assert code == 0
    scores = json.loads((run_dir / "metrics.json").read_text())
    scores["meta"].pop("seconds")
    return scores


@pytest.mark.slow  # three training processes and two evaluations (~15 s); SIGTERM stays fast
def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path, domain_net, metrics_cache):
    ref, victim = tmp_path / "ref", tmp_path / "victim"
    assert run_cli(*ARGS, "--out", str(ref)).returncode == 0
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "aebench", *ARGS, "--out", str(victim)],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoint = victim / "checkpoint.safetensors"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert checkpoint.exists(), "no checkpoint appeared after the first epoch"
    time.sleep(random.uniform(0.0, 0.5))  # somewhere inside a later epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (victim / "model.safetensors").exists(), "run finished before it was killed"
    from aebench.training.checkpoint import load_checkpoint

    carried = load_checkpoint(checkpoint)[1]["history"]  # the epochs done before the kill
    result = run_cli(*ARGS, "--out", str(victim), "--resume")
    assert result.returncode == 0, result.stderr
    a = load_file(str(ref / "model.safetensors"))
    b = load_file(str(victim / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and bool((a[key] == b[key]).all()), key
    assert _history_without_time(ref) == _history_without_time(victim)
    # those epochs were not trained again: their records, wall times included, are the ones
    # the checkpoint carried (a run retrained from scratch would have measured new times)
    history = json.loads((victim / "history.json").read_text())
    assert carried and history[: len(carried)] == carried
    assert not checkpoint.exists()
    ref_scores = _metrics_json(ref, metrics_cache)
    assert "fid" in ref_scores and "nll_iw" in ref_scores
    assert _metrics_json(victim, metrics_cache) == ref_scores  # the same numbers, exactly


def test_sigterm_writes_a_checkpoint_and_exits_130_then_resumes(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "aebench", *ARGS, "--out", str(out)],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    checkpoint = out / "checkpoint.safetensors"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert checkpoint.exists(), "no checkpoint appeared after the first epoch"
    proc.send_signal(signal.SIGTERM)  # within 50 ms of epoch 1's end: two epochs are left
    _, err = proc.communicate(timeout=120)
    assert not (out / "model.safetensors").exists(), "the run went on to the end"
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    assert checkpoint.exists()
    assert run_cli(*ARGS, "--out", str(out), "--resume").returncode == 0
    assert (out / "model.safetensors").exists()


def _checkpoint(tmp_path, arch="mlp"):
    from aebench import data, models
    from aebench.training.settings import TrainConfig
    from aebench.training.trainer import Trainer

    d = data.load("mnist-5k")
    small = data.ImageData(d.name, d.train_x[:256], d.train_y[:256], d.test_x[:64], d.test_y[:64])
    path = tmp_path / "ck.safetensors"
    model = models.create("vae", arch=arch, latent_dim=4)
    Trainer(model, small, TrainConfig(epochs=1, quiet=True), "vae", checkpoint=path).fit()
    return small, path


def test_truncated_checkpoint_is_refused_and_left_alone(tmp_path):
    from aebench import models
    from aebench.training.settings import TrainConfig
    from aebench.training.trainer import Trainer

    small, path = _checkpoint(tmp_path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    before = path.read_bytes()
    trainer = Trainer(
        models.create("vae", latent_dim=4),
        small,
        TrainConfig(epochs=2, quiet=True),
        "vae",
        checkpoint=path,
    )
    with pytest.raises(UsageError, match="unreadable"):
        trainer.fit(resume=True)
    assert path.read_bytes() == before


def test_a_damaged_cuda_rng_key_is_one_line_not_a_traceback(tmp_path):
    """A checkpoint whose CUDA RNG state is named ``rng.cuda.x`` (edited or damaged): reading
    the device number was outside the checks that turn damage into one line."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    from aebench import models
    from aebench.training.settings import TrainConfig
    from aebench.training.trainer import Trainer

    small, path = _checkpoint(tmp_path)
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    tensors = {**load_file(path), "rng.cuda.x": torch.zeros(16, dtype=torch.uint8)}
    save_file(tensors, str(path), metadata=meta)
    before = path.read_bytes()
    trainer = Trainer(models.create("vae", latent_dim=4), small, TrainConfig(epochs=2, quiet=True),
                      "vae", checkpoint=path)  # fmt: skip
    with pytest.raises(UsageError, match="damaged or does not fit the model: invalid literal"):
        trainer.fit(resume=True)
    assert path.read_bytes() == before


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    from aebench import models
    from aebench.training.settings import TrainConfig
    from aebench.training.trainer import Trainer

    small, path = _checkpoint(tmp_path, arch="mlp")
    before = path.read_bytes()
    trainer = Trainer(
        models.create("vae", arch="conv", latent_dim=4),
        small,
        TrainConfig(epochs=2, quiet=True),
        "vae",
        checkpoint=path,
    )
    with pytest.raises(UsageError, match="belongs to another run"):
        trainer.fit(resume=True)
    assert path.read_bytes() == before


def test_overwrite_removes_every_stages_checkpoint_too(tmp_path):
    """``--overwrite`` removed the run's checkpoint but left ``checkpoint.STAGE.safetensors``:
    a new run interrupted in stage 1 and resumed would have picked up the old run's stage 2."""
    from aebench.experiments.single_run import claim_out_dir

    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")  # a finished run's
    old = [f"checkpoint{stage}.safetensors" for stage in ("", ".prior", ".second")]
    for name in old:
        (out / name).write_bytes(b"old")
    with pytest.raises(UsageError, match="resume"):  # without --overwrite nothing is touched
        claim_out_dir(out, resume=False, overwrite=False)
    assert all((out / name).exists() for name in old)
    claim_out_dir(out, resume=False, overwrite=True)
    assert not any((out / name).exists() for name in old)


def test_cuda_rng_states_come_back_in_device_order():
    """Restored with ``sorted`` on the key text, ``rng.cuda.10`` came before ``rng.cuda.2``:
    on a machine of 11+ GPUs each device from the third on got another device's stream."""
    import torch

    from aebench.training.checkpoint import cuda_rng_states

    saved = {f"rng.cuda.{j}": torch.tensor([j]) for j in range(12)}
    saved["rng.cpu"] = torch.tensor([-1])
    assert [int(t) for t in cuda_rng_states(saved)] == list(range(12))


def test_a_result_shipped_back_leaves_no_stage_checkpoint(tmp_path):
    """A run killed in stage 2 here and finished on a Ray worker: writing the shipped files
    removed only checkpoint.safetensors, so the old stage's checkpoint stayed to be resumed."""
    from aebench.experiments.single_run import write_run_files

    out = tmp_path / "run"
    out.mkdir()
    for name in ("checkpoint.safetensors", "checkpoint.prior.safetensors"):
        (out / name).write_bytes(b"old")
    write_run_files(out, {"config.json": b"{}"})
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]


@pytest.mark.parametrize("model_name", ["vae", "two-stage-vae"])
def test_a_signal_in_the_last_step_still_stops_the_run(tmp_path, model_name):
    """SIGTERM was read only before a batch, so one that came in the last step of training
    was dropped: the run went on (a two-stage model trained its whole second stage) instead
    of stopping. It now stops, and the resume trains nothing more in that stage."""
    import torch

    from aebench import data, models
    from aebench.training.settings import TrainConfig
    from aebench.training.stages import fit_stages
    from aebench.training.trainer import Trainer, TrainingInterrupted
    from tests.conftest import subset

    dataset = subset(data.load("mnist-5k"), 256, 64)
    path = tmp_path / "checkpoint.safetensors"
    config = TrainConfig(epochs=2, batch_size=128, seed=0, quiet=True)

    def fresh() -> models.GenerativeAutoencoder:
        torch.manual_seed(0)
        return models.create(model_name, arch="mlp", latent_dim=4, image_shape=[1, 28, 28])

    trainer = Trainer(fresh(), dataset, config, model_name, checkpoint=path)
    step = trainer.train_step

    def signalled_in_the_last_step(x):
        out = step(x)
        if trainer.step == 3:  # the fourth and last step: 2 epochs of 2 batches
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    trainer.train_step = signalled_in_the_last_step
    with pytest.raises(TrainingInterrupted):
        trainer.fit()
    history, _ = fit_stages(fresh(), dataset, config, model_name, checkpoint=path, resume=True)
    assert [(h.get("stage"), h["epoch"]) for h in history][:2] == [(None, 1), (None, 2)]
    assert len([h for h in history if h.get("stage") is None]) == 2  # stage 1 not trained on


def test_an_info_vae_checkpoint_recorded_with_the_papers_lambda_resumes(tmp_path):
    """A checkpoint written before info-vae's ``lam`` (the paper's λ, the MMD weighed
    α + λ − 1) became ``mmd_weight``: at α = 0.5 the same weights (lam = 1000 is
    mmd_weight = 999.5) resume; other weights (lam = 999.5, i.e. 999) are another run's and
    are refused, the file left alone."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from aebench import data, models
    from aebench.training.checkpoint import META_KEY
    from aebench.training.settings import TrainConfig
    from aebench.training.trainer import Trainer

    d = data.load("mnist-5k")
    small = data.ImageData(d.name, d.train_x[:256], d.train_y[:256], d.test_x[:64], d.test_y[:64])
    path = tmp_path / "ck.safetensors"

    def trainer(epochs: int) -> Trainer:
        model = models.create("info-vae", latent_dim=4, alpha=0.5, mmd_weight=999.5)
        return Trainer(model, small, TrainConfig(epochs=epochs, quiet=True), "info-vae",
                       checkpoint=path)  # fmt: skip

    trainer(1).fit()

    def write_old(lam: float) -> None:
        with safe_open(str(path), "pt") as f:
            header = f.metadata()
        meta = json.loads(header[META_KEY])
        meta["model_config"].pop("mmd_weight", None)
        meta["model_config"]["lam"] = lam
        save_file(load_file(path), str(path), metadata={META_KEY: json.dumps(meta)})

    write_old(999.5)
    before = path.read_bytes()
    with pytest.raises(UsageError, match=r"belongs to another run \(model_config differs"):
        trainer(2).fit(resume=True)
    assert path.read_bytes() == before
    write_old(1000.0)
    assert [h["epoch"] for h in trainer(2).fit(resume=True)] == [1, 2]
