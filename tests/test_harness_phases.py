"""The harness's extension surface (issue 25): per-phase optimizers, schedules and
frequencies, the simultaneous and sequential update orders, training progress visible to the
loss, and loss terms that need autograd. Each is checked against a hand computation."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from torch import nn

from aebench import models
from aebench.core.errors import UsageError
from aebench.data import ImageData
from aebench.models.base import GenerativeAutoencoder, Phase, Schedule
from aebench.training.optim import build_schedule
from aebench.training.settings import TrainConfig
from aebench.training.trainer import Trainer
from tests.conftest import subset


def _images(n: int = 16) -> ImageData:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 1, 4, 4), dtype=torch.uint8, generator=g)
    y = torch.zeros(n, dtype=torch.long)
    return ImageData("toy", x, y, x[:8], y[:8])


class TwoTerms(GenerativeAutoencoder):
    """Scalars a, b and a shared c; with m the batch mean,
    L1 = a²·c·m (phase "first": a and c) and L2 = b·c²·m² (phase "second": b and c)."""

    latent_dim = 1

    def __init__(self, order: str = "simultaneous", every: tuple[int, int] = (1, 1)) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(0.7))
        self.b = nn.Parameter(torch.tensor(-0.4))
        self.c = nn.Parameter(torch.tensor(1.3))
        self.update_order = order  # type: ignore[misc]
        self.every = every

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        m = x.mean()
        first = self.a**2 * self.c * m
        second = self.b * self.c**2 * m**2
        return {"loss": first + second, "first": first, "second": second}

    def phases(self) -> list[Phase]:
        sgd = dict(lr=0.1, optimizer="sgd")
        return [
            Phase("first", [self.a, self.c], "first", every=self.every[0], **sgd),
            Phase("second", [self.b, self.c], "second", every=self.every[1], **sgd),
        ]


def _trainer(model: GenerativeAutoencoder, data: ImageData | None = None, **train) -> Trainer:
    settings = dict(epochs=1, batch_size=16, device="cpu", quiet=True, seed=0)
    return Trainer(model, data or _images(), TrainConfig(**{**settings, **train}))


def _batch() -> tuple[torch.Tensor, float]:
    x = _images().train_x.float() / 255
    return x, float(x.mean())


def test_simultaneous_phases_each_get_their_own_gradient_at_the_same_weights() -> None:
    model = TwoTerms("simultaneous")
    trainer = _trainer(model)
    x, m = _batch()
    a, b, c, lr = 0.7, -0.4, 1.3, 0.1
    trainer.train_step(x)
    # both gradients at the starting weights; c takes the sum of its two phases' steps
    assert model.a.item() == pytest.approx(a - lr * 2 * a * c * m, rel=1e-6)
    assert model.b.item() == pytest.approx(b - lr * c**2 * m**2, rel=1e-6)
    assert model.c.item() == pytest.approx(c - lr * a**2 * m - lr * 2 * b * c * m**2, rel=1e-6)


def test_sequential_phases_see_the_weights_the_previous_phase_left() -> None:
    model = TwoTerms("sequential")
    trainer = _trainer(model)
    x, m = _batch()
    a, b, c, lr = 0.7, -0.4, 1.3, 0.1
    trainer.train_step(x)
    a1, c1 = a - lr * 2 * a * c * m, c - lr * a**2 * m  # phase "first" at the start
    b1, c2 = b - lr * c1**2 * m**2, c1 - lr * 2 * b * c1 * m**2  # phase "second" after it
    assert model.a.item() == pytest.approx(a1, rel=1e-6)
    assert model.b.item() == pytest.approx(b1, rel=1e-6)
    assert model.c.item() == pytest.approx(c2, rel=1e-6)


def test_every_k_steps_a_phase_only_on_its_steps_and_counts_them() -> None:
    model = TwoTerms("simultaneous", every=(1, 3))
    trainer = _trainer(model)
    x, _ = _batch()
    for step in range(7):
        trainer.step = step
        b_before, a_before = model.b.item(), model.a.item()
        trainer.train_step(x)
        assert (model.b.item() != b_before) == (step % 3 == 0), step
        assert model.a.item() != a_before
    assert trainer.phase_updates == [7, 3]


def test_n_critic_ratio_over_a_whole_fit() -> None:
    model = TwoTerms("sequential", every=(5, 1))  # "first" is the generator: 1 per 5 critic steps
    trainer = _trainer(model, subset_like(_images(16), repeat=12), max_steps=12, epochs=None)
    trainer.fit()
    assert trainer.step == 12 and trainer.phase_updates == [3, 12]  # steps 0, 5, 10


class OwnTerms(TwoTerms):
    """TwoTerms whose "first" phase runs its own forward (only its own term)."""

    def first_only(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"first": self.a**2 * self.c * x.mean()}

    def phases(self) -> list[Phase]:
        first, second = super().phases()
        return [dataclasses.replace(first, terms=self.first_only), second]


def test_a_sparse_phase_with_its_own_terms_is_refused_in_the_sequential_order() -> None:
    """Its terms were missing on the steps it skipped: a KeyError at step 1, and epoch means
    of its terms over every step's images. Refused in one line; with every = 1, or without
    its own terms (above), the sequential order trains."""
    with pytest.raises(UsageError, match="phase 'first' has every > 1 and its own terms"):
        _trainer(OwnTerms("sequential", every=(2, 1)))
    trainer = _trainer(OwnTerms("sequential", every=(1, 1)), max_steps=3, epochs=None)
    trainer.fit()
    assert trainer.phase_updates == [3, 3]
    simultaneous = _trainer(OwnTerms("simultaneous", every=(2, 1)), max_steps=3, epochs=None)
    simultaneous.fit()  # one forward of the model's loss: every term on every step
    assert simultaneous.phase_updates == [2, 3]


def subset_like(data: ImageData, repeat: int) -> ImageData:
    """``data``'s training split repeated, so one epoch holds ``repeat`` batches of its size."""
    x = data.train_x.repeat(repeat, 1, 1, 1)
    y = data.train_y.repeat(repeat)
    return ImageData(data.name, x, y, data.test_x, data.test_y)


CLOSED_FORM = {  # lr after t schedule steps, from a base lr of 1, written out by hand
    Schedule("step", step_size=3, gamma=0.5): lambda t: 0.5 ** (t // 3),
    Schedule("multistep", milestones=(2, 5), gamma=0.1): lambda t: 0.1 ** ((t >= 2) + (t >= 5)),
    Schedule("exponential", gamma=0.9): lambda t: 0.9**t,
    Schedule("cosine", t_max=8, eta_min=0.1):
        lambda t: 0.1 + 0.9 * (1 + math.cos(math.pi * t / 8)) / 2,
    Schedule("warmup", steps=4, start_factor=0.25): lambda t: 0.25 + 0.75 * min(t, 4) / 4,
}  # fmt: skip


@pytest.mark.parametrize("schedule", list(CLOSED_FORM), ids=lambda s: s.kind)
def test_each_schedule_gives_its_closed_form_rates(schedule: Schedule) -> None:
    w = nn.Parameter(torch.zeros(()))
    phase = Phase("p", [w], lr=1.0, optimizer="sgd", schedule=schedule)
    opt = torch.optim.SGD([w], lr=1.0)
    sched = build_schedule(phase, opt)
    assert sched is not None
    for t in range(10):
        assert opt.param_groups[0]["lr"] == pytest.approx(CLOSED_FORM[schedule](t), rel=1e-9), t
        opt.step()
        sched.step()


class ScheduledVAE(models.get("vae")[0]):  # type: ignore[misc]
    """A VAE whose one phase decays its learning rate every 7 steps (per step) — and a second
    schedule per epoch would be declared the same way."""

    def phases(self) -> list[Phase]:
        return [
            Phase("model", list(self.parameters()), lr=1e-3,
                  schedule=Schedule("step", step_size=7, gamma=0.7))
        ]  # fmt: skip


def test_the_trainer_steps_a_schedule_per_step_and_per_epoch(mnist5k) -> None:
    data = subset(mnist5k, 256, 64)
    model = ScheduledVAE(arch="mlp", latent_dim=4, image_shape=(1, 28, 28))
    trainer = _trainer(model, data, epochs=2, batch_size=64)
    trainer.fit()
    assert trainer.step == 8
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-3 * 0.7 ** (8 // 7))


def test_resume_mid_schedule_is_bit_identical(mnist5k, tmp_path) -> None:
    data = subset(mnist5k, 256, 64)
    shape = dict(arch="mlp", latent_dim=4, image_shape=(1, 28, 28))

    def fit(epochs: int, checkpoint, resume: bool = False) -> Trainer:
        torch.manual_seed(1 if resume else 0)  # resumed: equal only through the checkpoint
        trainer = _trainer(ScheduledVAE(**shape), data, epochs=epochs, batch_size=64)
        trainer.checkpoint_path = checkpoint
        trainer.fit(resume=resume)
        return trainer

    straight = fit(4, None)
    fit(2, tmp_path / "ck.safetensors")  # 8 steps: stopped between two decays of the schedule
    resumed = fit(4, tmp_path / "ck.safetensors", resume=True)
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    a, b = straight.optimizers[0].state_dict(), resumed.optimizers[0].state_dict()
    assert json.dumps(a["param_groups"]) == json.dumps(b["param_groups"])  # tuples read as lists
    for pid, state in a["state"].items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(b["state"][pid][name]))
    assert straight.schedules[0].state_dict() == resumed.schedules[0].state_dict()
    assert resumed.phase_updates == straight.phase_updates == [16]


class PenalisedDecoder(GenerativeAutoencoder):
    """A linear decoder D(z) = W z trained with a gradient penalty ‖∇_z Σ D(z)‖², which needs
    autograd inside the loss; for a linear D it equals ‖Wᵀ1‖² for every code."""

    latent_dim = 3
    loss_needs_grad = True

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Linear(3, 16, bias=False)

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = torch.randn(x.shape[0], 3, device=x.device, requires_grad=True)
        out = self.w(z)
        (grad,) = torch.autograd.grad(out.sum(), z, create_graph=True)
        gp = grad.pow(2).sum(1).mean()
        recon = (out - x.flatten(1)).pow(2).sum(1).mean()
        return {"loss": recon + 0.1 * gp, "gp": gp}


def test_a_gradient_penalty_trains_and_evaluates() -> None:
    model = PenalisedDecoder()
    trainer = _trainer(model, epochs=2, batch_size=8)
    before = model.w.weight.detach().clone()
    history = trainer.fit()
    assert not torch.equal(before, model.w.weight)
    expected = float(model.w.weight.detach().sum(0).pow(2).sum())  # ‖Wᵀ1‖², by hand
    assert history[-1]["test"]["gp"] == pytest.approx(expected, rel=1e-5)


def test_kl_warmup_is_in_the_history_as_the_budget_fraction_says(mnist5k) -> None:
    data = subset(mnist5k, 256, 64)
    model = models.create("vae", arch="mlp", latent_dim=4, image_shape=(1, 28, 28),
                          beta=2.0, kl_warmup=0.5)  # fmt: skip
    history = _trainer(model, data, epochs=4, batch_size=64).fit()
    total = 16  # 4 epochs of 4 steps
    for entry in history:
        steps = range((entry["epoch"] - 1) * 4, entry["epoch"] * 4)
        ramp = sum(min(1.0, (s / total) / 0.5) for s in steps) / 4  # the epoch's mean weight
        assert entry["train"]["kl_weight"] == pytest.approx(2.0 * ramp, rel=1e-6)
    assert history[-1]["train"]["kl_weight"] == 2.0
    assert history[-1]["test"]["kl_weight"] == 2.0  # evaluated at the step the epoch ended
    assert model.progress.fraction == 1.0


def test_bad_phase_declarations_are_one_line() -> None:
    class Bad(TwoTerms):
        def phases(self) -> list[Phase]:
            return [Phase("p", [self.a], optimizer="lbfgs")]

    with pytest.raises(UsageError, match="unknown optimizer 'lbfgs'"):
        _trainer(Bad())
    model = TwoTerms("alternating")
    with pytest.raises(UsageError, match="update_order must be one of"):
        _trainer(model)


@pytest.mark.parametrize("model_name", ["aae", "wae-gan", "factor-vae"])
def test_compile_reaches_every_phase_that_computes_its_own_terms(model_name):
    """Only model.loss was compiled, while a sequential model's phases each run their own
    forward (Phase.terms): --compile was recorded and changed nothing. Each phase's terms
    now go through torch.compile (once); without compile they run as declared."""
    from aebench.training.settings import TrainConfig
    from aebench.training.speed_switches import SpeedSwitches

    model = models.create(model_name, arch="mlp", latent_dim=4, image_shape=[1, 28, 28])
    own = [p.terms for p in model.phases() if p.terms is not None]
    assert own, model_name
    cpu = torch.device("cpu")
    plain = SpeedSwitches(model, TrainConfig(compile=False), cpu)
    assert all(plain._terms(terms) is terms for terms in own)
    compiled = SpeedSwitches(model, TrainConfig(compile=True), cpu)
    wrapped = [compiled._terms(terms) for terms in own]
    assert all(w is not t and getattr(w, "_torchdynamo_orig_callable", None) == t
               for w, t in zip(wrapped, own, strict=True))  # fmt: skip
    assert [compiled._terms(terms) for terms in own] == wrapped  # compiled once
