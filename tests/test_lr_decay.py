"""A protocol's learning-rate decay (``TrainConfig.lr_milestones``): Burda et al.'s 8 stages
reach every step at the paper's rates, survive a resume, leave earlier run hashes alone, and
refuse what cannot be honoured in one line."""

from __future__ import annotations

import dataclasses
import signal

import pytest
import torch
from torch import nn

from aebench import models
from aebench.config.run import RunConfig
from aebench.core.errors import UsageError
from aebench.experiments.protocols import BURDA2015_MNIST
from aebench.experiments.suite import load_suite
from aebench.models.base import GenerativeAutoencoder, Phase
from aebench.training.settings import TrainConfig
from aebench.training.trainer import Trainer, TrainingInterrupted
from tests.conftest import subset
from tests.test_harness_phases import ScheduledVAE, _images, subset_like

BURDA = {"lr_milestones": BURDA2015_MNIST.lr_milestones, "lr_gamma": BURDA2015_MNIST.lr_gamma}


class TwoMeans(GenerativeAutoencoder):
    """Two scalars pulled towards the batch mean, each by its own SGD phase: stable at any
    number of steps, so only the schedule changes the rates."""

    latent_dim = 1

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(0.0))
        self.b = nn.Parameter(torch.tensor(1.0))

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        m = x.mean()
        first, second = (self.a - m) ** 2, (self.b - m) ** 2
        return {"loss": first + second, "first": first, "second": second}

    def phases(self) -> list[Phase]:
        return [Phase("first", [self.a], "first", lr=0.1, optimizer="sgd"),
                Phase("second", [self.b], "second", lr=0.1, optimizer="sgd")]  # fmt: skip


def _rates_of_a_fit(steps: int, **decay) -> list[list[float]]:
    """The learning rate each phase's optimizer used at each step of a whole fit of a
    two-phase toy model, one image per step."""
    model = TwoMeans()
    data = subset_like(_images(16), repeat=steps // 16 + 1)
    config = TrainConfig(epochs=None, max_steps=steps, batch_size=1, quiet=True, **decay)
    trainer = Trainer(model, data, config)
    used: list[list[float]] = [[], []]
    for rates, opt in zip(used, trainer.optimizers, strict=True):
        opt.register_step_pre_hook(
            lambda o, args, kwargs, rates=rates: rates.append(o.param_groups[0]["lr"])
        )
    trainer.fit()
    return used


def test_burdas_stages_over_a_3280_step_budget() -> None:
    """With as many steps as the paper has passes, pass s uses lr·10^(−i/7) where stage i is
    the one whose 3^i passes hold s (i = 0…7), written out from the paper; every phase."""
    expected, s = [], 0
    for i in range(8):
        expected += [0.1 * 10 ** (-i / 7)] * 3**i
        s += 3**i
    assert s == 3280
    for used in _rates_of_a_fit(3280, **BURDA):
        assert used == pytest.approx(expected, rel=1e-12)
        assert used[:2] == pytest.approx([0.1, 0.1 * 10 ** (-1 / 7)])  # stage 0 is 1 pass


def test_a_scaled_budget_keeps_the_shape_and_no_milestones_keep_the_rate() -> None:
    used = _rates_of_a_fit(328, **BURDA)[0]
    assert used[-1] == pytest.approx(0.1 * 10 ** (-7 / 7))  # the last stage, two thirds of it
    assert sum(rate == used[-1] for rate in used) == 328 - round(1093 / 3280 * 328)
    assert set(_rates_of_a_fit(64)[0]) == {0.1}


def test_resume_in_the_middle_of_the_decay_is_bit_identical(mnist5k, tmp_path) -> None:
    """A fit stopped by SIGTERM after 11 steps (between two milestones of its 32-step budget:
    10, 40 and 70 %), then resumed into a model initialised differently, ends where an
    uninterrupted fit ends."""
    data = subset(mnist5k, 256, 64)
    config = TrainConfig(epochs=4, batch_size=32, quiet=True, lr_milestones=(0.1, 0.4, 0.7),
                         lr_gamma=0.5)  # fmt: skip

    def trainer(init: int, checkpoint=None) -> Trainer:
        torch.manual_seed(init)
        model = models.create("vae", arch="mlp", latent_dim=4)
        return Trainer(model, data, config, checkpoint=checkpoint)

    straight = trainer(0)
    straight.fit()
    path = tmp_path / "ck.safetensors"
    first = trainer(0, path)

    def stop_after_eleven(opt, args, kwargs) -> None:
        if first.step == 10:  # this is the 11th step: the loop sees the signal before the 12th
            first.stop.signum = signal.SIGTERM

    first.optimizers[0].register_step_post_hook(stop_after_eleven)
    with pytest.raises(TrainingInterrupted):
        first.fit()
    resumed = trainer(1, path)
    resumed.fit(resume=True)
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0, msg=key)
    assert resumed.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5**3)


def test_runs_without_a_decay_keep_their_hashes_and_a_decay_changes_it() -> None:
    run = load_suite("quick").expand()[0]
    assert "lr_milestones" not in run.identity()
    decayed = dataclasses.replace(run, train=dataclasses.replace(run.train, **BURDA))
    assert decayed.identity()["lr_milestones"] == list(BURDA["lr_milestones"])
    assert decayed.config_hash != run.config_hash
    again = RunConfig.from_dict(decayed.to_dict())
    assert again.config_hash == decayed.config_hash  # through the store's JSON and back


@pytest.mark.parametrize(
    ("decay", "words"),
    [
        ({"lr_milestones": (0.5, 0.2)}, "increasing fractions in (0, 1)"),
        ({"lr_milestones": (1.0,)}, "increasing fractions in (0, 1)"),
        ({"lr_milestones": (0.5,), "lr_gamma": 0.0}, "lr_gamma must be in (0, 1]"),
        ({"lr_milestones": (0.5,), "epochs": None, "max_seconds": 5.0}, "not seconds"),
    ],
)
def test_a_decay_that_cannot_be_honoured_is_one_line(decay, words) -> None:
    with pytest.raises(UsageError, match=words.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig(**decay).validate()


def test_a_phase_with_its_own_schedule_refuses_a_protocols_decay(mnist5k) -> None:
    model = ScheduledVAE(arch="mlp", latent_dim=4, image_shape=(1, 28, 28))
    config = TrainConfig(epochs=1, quiet=True, **BURDA)
    with pytest.raises(UsageError, match="has its own learning-rate schedule"):
        Trainer(model, subset(mnist5k, 64, 16), config)
