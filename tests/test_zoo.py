"""Every registered model goes through everything (issue 26): one epoch on MLP nets through
the CLI's suite, store, re-evaluation and report, and one on conv nets in process, with every
metric family finite; and a resume after the first epoch that ends where an uninterrupted run
ends."""

from __future__ import annotations

import math
import sqlite3

import pytest
import torch

from aebench import models
from aebench.cli import main
from aebench.metrics import METRICS, MetricOptions, evaluate
from aebench.training.probe import step_on_copy
from aebench.training.settings import TrainConfig
from aebench.training.trainer import Trainer
from tests.conftest import subset, tiny_suite
from tests.test_models import first_arch

BUILTIN = models.available()
#: the models that train on MLP nets (VQ-VAE's grid code needs conv: tests/test_vq_vae.py
#: takes it through the CLI, store, re-evaluation and report on conv nets)
ON_MLP = [name for name in BUILTIN if models.supports_arch(name, "mlp")]


def _train(name: str, arch: str, data, epochs: int, init: int = 0, **kw):
    torch.manual_seed(init)
    model = models.create(name, arch=arch, latent_dim=4)
    Trainer(model, data, TrainConfig(epochs=epochs, batch_size=64, seed=0, quiet=True), name,
            **kw).fit(resume="checkpoint" in kw)  # fmt: skip
    return model


@pytest.mark.parametrize("name", BUILTIN)
def test_one_conv_epoch_then_every_metric_is_finite(name, mnist5k, domain_net, metrics_cache):
    model = _train(name, "conv", subset(mnist5k, 256, 128), epochs=1)
    options = MetricOptions(n_samples=100, iw_k=8, iw_n=32, kid_subsets=5,
                            cache_dir=str(metrics_cache))  # fmt: skip
    scores = evaluate(model, mnist5k, options, train_step_factory=step_on_copy)
    expected = {k for k in METRICS if "@" not in k or k.split("@")[1] in scores["meta"]["samplers"]}
    if not model.has_posterior:
        expected -= {"kl", "elbo", "nll_iw", "iw_gain", "active_units"}
    assert set(scores) - {"meta"} == expected
    assert all(math.isfinite(scores[k]) for k in expected), scores


@pytest.mark.parametrize("name", BUILTIN)
def test_resuming_after_an_epoch_ends_where_an_uninterrupted_run_ends(name, mnist5k, tmp_path):
    """Everything a model keeps between steps (its optimizers, fitted priors, pseudo-inputs,
    schedules) is in the checkpoint: epoch 1, then epoch 2 from the checkpoint into a model
    initialised differently, ends bit-identical to 2 epochs in one go."""
    data = subset(mnist5k, 128, 64)
    arch = first_arch(name)
    straight = _train(name, arch, data, epochs=2)
    path = tmp_path / "ck.safetensors"
    _train(name, arch, data, epochs=1, checkpoint=path)
    resumed = _train(name, arch, data, epochs=2, init=1, checkpoint=path)
    for key, value in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=0, msg=key)


def test_one_mlp_epoch_of_each_through_the_cli_store_reevaluation_and_report(tmp_path, domain_net):
    """A suite of every model that trains on MLP nets, one epoch of mnist-5k: each run's every
    metric is finite; dropped rows come back from the stored weights with the same values; the
    report ranks every model."""
    suite, db = tmp_path / "zoo.toml", tmp_path / "zoo.sqlite"
    one_epoch = tiny_suite("zoo", ON_MLP, [0]).replace("steps = 4", "epochs = 1")
    suite.write_text(one_epoch.replace("latent_dim = 4", "latent_dim = 4\nbatch_size = 64"))
    assert main(["run", str(suite), "--store", str(db), "--quiet"]) == 0
    where = "WHERE name LIKE 'sharpness%' OR name LIKE 'hf_energy%'"
    with sqlite3.connect(db) as conn:
        final = conn.execute("SELECT run_id, name, value FROM metrics WHERE phase = 'final'")
        assert all(math.isfinite(value) for _, _, value in final), "a non-finite metric"
        before = conn.execute(f"SELECT run_id, name, value FROM metrics {where}").fetchall()
        assert len({row[0] for row in before}) == len(ON_MLP)
        conn.execute(f"DELETE FROM metrics {where}")
        conn.execute("DELETE FROM evaluations WHERE family = 'sharpness'")
    assert main(["eval", "--store", str(db), "--only", "sharpness"]) == 0
    with sqlite3.connect(db) as conn:
        after = conn.execute(f"SELECT run_id, name, value FROM metrics {where}").fetchall()
    assert sorted(after) == sorted(before)  # the stored weights are the weights that ran
    out = tmp_path / "report"
    assert main(["report", "--store", str(db), "--out", str(out), "--no-figures"]) == 0
    table = (out / "report.md").read_text()
    assert all(f"| {name} " in table for name in ON_MLP)
