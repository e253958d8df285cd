"""Shared fixtures: the embedded dataset, the real-data folder, a clean CLI runner."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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
    from aebench import data

    return data.load("mnist-5k")


@pytest.fixture(autouse=True)
def _threads():
    """Tests share 2 cores; keep torch's thread count fixed so results are reproducible."""
    torch.set_num_threads(2)


def subset(data, n_train: int, n_test: int, name: str | None = None):
    """The first ``n_train`` training and ``n_test`` test images (and labels) of ``data``."""
    from aebench.data import ImageData

    intensity = data.train_intensity
    return ImageData(
        name or data.name,
        data.train_x[:n_train],
        data.train_y[:n_train],
        data.test_x[:n_test],
        data.test_y[:n_test],
        None if intensity is None else intensity[:n_train],
    )


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``aebench ARGS`` in a fresh interpreter, as a user would."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "aebench", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env=full_env,
        timeout=timeout,
    )


# -- metrics fixtures (issue 3) ---------------------------------------------------------------
@pytest.fixture(scope="session")
def metrics_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private aebench cache folder for the session (never the user's ~/.cache)."""
    return tmp_path_factory.mktemp("aebench-cache")


@pytest.fixture(scope="session")
def domain_net(mnist5k, metrics_cache: Path):
    """The mnist-5k domain feature net, trained briefly (20k images seen, ~97 % accuracy) into
    ``metrics_cache``; ``features.build("domain", mnist5k, cache=metrics_cache)`` reuses it."""
    from aebench.metrics import features

    return features.build("domain", mnist5k, cache=metrics_cache, min_samples=20_000)


@pytest.fixture(scope="session")
def cache_env(domain_net, metrics_cache: Path) -> dict[str, str]:
    """The session's private feature-net cache, holding the briefly trained mnist-5k domain
    net, so suite runs reuse it instead of training the full one."""
    return {"AEBENCH_CACHE_DIR": str(metrics_cache)}


def _train_briefly(name: str, data, epochs: int = 3):
    from aebench import models
    from aebench.training.settings import TrainConfig
    from aebench.training.trainer import Trainer

    model = models.create(name, image_shape=list(data.image_shape))
    Trainer(model, data, TrainConfig(epochs=epochs, seed=0, device="cpu", quiet=True)).fit()
    return model.eval()


@pytest.fixture(scope="session")
def trained_vae(mnist5k):
    """An MLP VAE after 3 epochs on mnist-5k (a few seconds)."""
    return _train_briefly("vae", mnist5k)


@pytest.fixture(scope="session")
def trained_ae(mnist5k):
    """An MLP AE after 3 epochs on mnist-5k, its sampling Gaussian fitted."""
    return _train_briefly("ae", mnist5k)


@pytest.fixture(scope="session", autouse=True)
def _private_cache(metrics_cache: Path):
    """Every test, and every CLI subprocess it starts, caches feature nets in the session's
    temporary folder, never in the user's ~/.cache."""
    old = os.environ.get("AEBENCH_CACHE_DIR")
    os.environ["AEBENCH_CACHE_DIR"] = str(metrics_cache)
    yield
    if old is None:
        os.environ.pop("AEBENCH_CACHE_DIR", None)
    else:
        os.environ["AEBENCH_CACHE_DIR"] = old


# -- hostile input (issue 13) ------------------------------------------------------------------
def one_line_error(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    """Run ``aebench ARGS`` in-process; assert exit 2 and exactly one ``aebench: error:`` line
    on stderr (an escaping exception fails the test just as a traceback would). Returns it."""
    from aebench.cli import main

    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2, (args, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("aebench: error:"), err
    return lines[0]


def bench_on_tmpfs(
    mnt: Path, size_kb: int, args: list[str], before: str = "", after: str = ""
) -> tuple[int, str]:
    """Run ``aebench ARGS`` (in a fresh interpreter, from the repository) with a tmpfs of
    ``size_kb`` KiB mounted at ``mnt``: a real full disk without root, because the mount lives
    in a private mount namespace (``unshare -rm``) and is gone when it ends. ``before`` and
    ``after`` are shell lines run in that namespace around the command (fill the disk, copy out
    what the test inspects: the tmpfs cannot be read afterwards). Returns the command's exit
    code and its stderr; fails the test when no private tmpfs can be mounted here."""
    import shlex
    import tempfile

    mnt.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        rc, stderr = Path(scratch) / "rc", Path(scratch) / "stderr"
        cmd = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "aebench", *args])
        script = (
            f"mount -t tmpfs -o size={size_kb}k tmpfs {shlex.quote(str(mnt))} || exit 99\n"
            f"{before}\n"
            f"cd {shlex.quote(str(REPO))}\n"
            f"PYTHONPATH={shlex.quote(str(REPO))} {cmd} > /dev/null 2> {shlex.quote(str(stderr))}\n"
            f"echo $? > {shlex.quote(str(rc))}\n"
            f"{after}\n"
        )
        shell = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True,
                               text=True)  # fmt: skip
        assert shell.returncode == 0, f"could not run on a private tmpfs: {shell.stderr.strip()}"
        return int(rc.read_text()), stderr.read_text().strip()


def file_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by relative path: "nothing already written
    changed" is ``file_hashes(before) == file_hashes(after)``."""
    import hashlib

    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def evil_pickle(marker: Path, torch_format: bool = False) -> bytes:
    """A pickle whose loading runs ``touch MARKER`` (through ``os.system``): if MARKER exists
    afterwards, something unpickled a user's file. ``torch_format`` wraps it the way
    ``torch.save`` would (a zip archive holding ``data.pkl``)."""
    import io
    import pickle
    import shlex

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {shlex.quote(str(marker))}",))

    if not torch_format:
        return pickle.dumps(Payload(), protocol=2)
    buffer = io.BytesIO()
    torch.save({"state_dict": Payload()}, buffer)
    return buffer.getvalue()


def flat_layout(cfg: Any) -> dict[str, Any]:
    """A run config as stores wrote it before the config tree (2026-12-01): budget, batch
    size, seed and device at the top, and the five metric options of that time."""
    return {
        "suite": cfg.suite, "model": cfg.model, "label": cfg.label, "dataset": cfg.dataset,
        "arch": cfg.arch, "seed": cfg.seed, "budget": cfg.train.budget.to_dict(),
        "batch_size": cfg.train.batch_size, "latent_dim": cfg.latent_dim,
        "device": cfg.train.device, "model_options": cfg.options, "data_dir": cfg.data_dir,
        "metrics": {k: cfg.metrics.to_dict()[k]
                    for k in ("backbone", "n_samples", "sampler", "iw_k", "iw_n")},
    }  # fmt: skip


def tiny_suite(name: str, models: list[str], seeds: list[int], steps: int = 4) -> str:
    """The TOML of a suite that trains for seconds: MLP nets, 4-d codes, a few optimizer
    steps, small metric sample counts — for tests that run real suites end to end."""
    return f"""
name = "{name}"
models = {json.dumps(models)}
datasets = ["mnist-5k"]
archs = ["mlp"]
seeds = {json.dumps(seeds)}
latent_dim = 4
device = "cpu"
[budget]
steps = {steps}
[metrics]
n_samples = 100
iw_k = 4
iw_n = 16
"""


class Killed(Exception):
    """Stands for a SIGKILL right after a checkpoint was written."""


@contextlib.contextmanager
def killed_after_stage_epoch(monkeypatch: pytest.MonkeyPatch, stage: str, epoch: int):
    """Within the block, training dies (:class:`Killed`) right after the checkpoint of epoch
    ``epoch`` of stage ``stage`` is written: a kill in the middle of a later stage."""
    from aebench.training.trainer import Trainer

    original = Trainer.save_checkpoint

    def save_then_die(self, in_epoch=None):  # type: ignore[no-untyped-def]
        original(self, in_epoch)
        if self.model_name.endswith(f":{stage}") and self.epochs_done == epoch:
            raise Killed

    with monkeypatch.context() as patched:
        patched.setattr(Trainer, "save_checkpoint", save_then_die)
        with pytest.raises(Killed):
            yield
