"""Training stages (issue 25): a toy two-stage model — an AE, then a learned Gaussian prior over
its codes — trains its second stage on the frozen first stage's codes, and a run stopped in the
middle of stage 2 resumes to bit-identical weights."""

from __future__ import annotations

import torch
from torch import nn

from aebench.models.ae.model import AE
from aebench.models.base import GenerativeAutoencoder, Phase, Stage
from aebench.training.settings import TrainConfig
from aebench.training.stages import STAGE_SEED_STRIDE, fit_stages, stage_settings
from aebench.training.trainer import Trainer
from tests.conftest import killed_after_stage_epoch, subset


class CodePrior(GenerativeAutoencoder):
    """A diagonal Gaussian over codes, learned by maximum likelihood: its optimum is the codes'
    own mean and standard deviation."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__(latent_dim=latent_dim)
        self.latent_dim = latent_dim
        self.mean = nn.Parameter(torch.zeros(latent_dim))
        self.log_std = nn.Parameter(torch.zeros(latent_dim))

    def loss(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        nll = ((z - self.mean) / self.log_std.exp()).pow(2) / 2 + self.log_std
        return {"loss": nll.sum(1).mean()}

    def phases(self) -> list[Phase]:
        return [Phase("prior", list(self.parameters()), lr=0.05)]


class TwoStageAE(AE):
    """An AE whose codes get a learned Gaussian prior in a second stage."""

    def __init__(self, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**kwargs)
        self.code_prior = CodePrior(self.latent_dim)

    def stages(self) -> list[Stage]:
        return [Stage("prior", self.code_prior, inputs=self.encode, budget=1.5)]


def _model(seed: int = 0) -> TwoStageAE:
    torch.manual_seed(seed)
    return TwoStageAE(arch="mlp", latent_dim=3, image_shape=(1, 28, 28))


SETTINGS = TrainConfig(epochs=2, batch_size=64, device="cpu", quiet=True, seed=5)


def test_stage_two_learns_the_frozen_first_stages_codes(mnist5k) -> None:
    data = subset(mnist5k, 512, 128)
    model = _model()
    history, _ = fit_stages(model, data, SETTINGS, "two-stage")
    first = [h for h in history if "stage" not in h]
    second = [h for h in history if h.get("stage") == "prior"]
    assert [h["epoch"] for h in first] == [1, 2]
    assert [h["epoch"] for h in second] == [1, 2, 3]  # 1.5 × the run's 2 epochs, rounded up
    assert second[-1]["test"]["loss"] < second[0]["test"]["loss"]
    # stage 1 is frozen during stage 2: retraining stage 1 alone gives the same AE
    alone = _model()
    Trainer(alone, data, SETTINGS, "two-stage").fit()
    for key, value in alone.encoder.state_dict().items():
        assert torch.equal(value, model.encoder.state_dict()[key]), key
    codes = torch.cat([model.encode(data.train_x[i : i + 256].float() / 255)
                       for i in range(0, 512, 256)]).detach()  # fmt: skip
    # the prior moved from N(0, I) towards the codes' own mean (its maximum-likelihood optimum)
    assert (model.code_prior.mean - codes.mean(0)).abs().max() < codes.mean(0).abs().max()


def test_stage_settings_have_their_own_budget_and_seed() -> None:
    stage = Stage("prior", nn.Linear(1, 1), inputs=lambda x: x, budget=0.25)
    s = stage_settings(SETTINGS, 2, stage)
    assert s.epochs == 1 and s.seed != SETTINGS.seed and s.batch_size == SETTINGS.batch_size
    steps = TrainConfig(epochs=None, max_steps=10, device="cpu", seed=1)
    assert stage_settings(steps, 3, stage).max_steps == 3
    # the largest run seed still gives stage 2 a seed TrainConfig accepts (it was refused)
    top = TrainConfig(epochs=4, device="cpu", seed=2**32 - 1)
    later = stage_settings(top, 2, stage)
    later.validate()
    assert later.seed == (2**32 - 1 + STAGE_SEED_STRIDE) % 2**32 != top.seed
    assert stage_settings(SETTINGS, 2, stage).seed == SETTINGS.seed + STAGE_SEED_STRIDE


def test_a_run_stopped_in_stage_two_resumes_bit_identically(mnist5k, tmp_path, monkeypatch):
    data = subset(mnist5k, 256, 64)
    straight = _model()
    fit_stages(straight, data, SETTINGS, "two-stage")
    checkpoint = tmp_path / "checkpoint.safetensors"
    with killed_after_stage_epoch(monkeypatch, "prior", 2):
        fit_stages(_model(), data, SETTINGS, "two-stage", checkpoint)
    assert (tmp_path / "checkpoint.prior.safetensors").is_file()
    resumed = _model(seed=1)  # other initial weights: only the checkpoints make it equal
    history, _ = fit_stages(resumed, data, SETTINGS, "two-stage", checkpoint, resume=True)
    assert [h["epoch"] for h in history if h.get("stage") == "prior"] == [1, 2, 3]
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_a_staged_run_writes_every_stage_into_its_folder(mnist5k, tmp_path) -> None:
    """Through the run path a suite and ``aebench train`` use: one weights file with every
    stage, history rows per stage (flattened apart for the store), no checkpoint left."""
    import json

    from aebench import models
    from aebench.config.run import RunConfig
    from aebench.experiments.run_task import flatten_history
    from aebench.experiments.single_run import train_run
    from aebench.store.run_folder import load_run

    models.register("two-stage-ae")(TwoStageAE)
    try:
        cfg = RunConfig(model="two-stage-ae", latent_dim=3, train=SETTINGS)
        model, out = train_run(cfg, tmp_path / "run", dataset=subset(mnist5k, 256, 64))
        history = json.loads((out / "history.json").read_text())
        assert [h.get("stage") for h in history] == [None, None, "prior", "prior", "prior"]
        assert not list(out.glob("checkpoint*"))
        loaded, _ = load_run(out)
        assert torch.equal(loaded.code_prior.mean, model.code_prior.mean)
        flat = flatten_history(history)
        assert "prior.train_loss" in flat[2] and "train_loss" not in flat[2]
        # the store keys a row by (epoch, name): stage 1's step and seconds must survive the
        # later stage's epochs 1 and 2, which were written over them before
        from aebench.store.schema import metric_rows

        rows = list(metric_rows(1, {}, flat))
        keys = [(phase, name) for _, name, _, phase in rows]
        assert len(keys) == len(set(keys))
        stored = {(phase, name): value for _, name, value, phase in rows}
        assert stored[("epoch-1", "step")] == history[0]["step"]
        assert stored[("epoch-1", "prior.step")] == history[2]["step"]
        assert stored[("epoch-2", "seconds")] == history[1]["seconds"]
    finally:
        models.unregister("two-stage-ae")
