"""The adversarial families (issue 27): AAE, FactorVAE and WAE-GAN, each checked against an
independent computation of its defining property: the AAE's three phases in order, by hand;
FactorVAE's discriminator loss reaching no encoder weight, its permutation and its TC estimate
against a Gaussian's closed form; healthy adversaries; and a run killed mid-epoch resuming
bit-identically."""

from __future__ import annotations

import copy
import math
import signal

import pytest
import torch
from torch.nn.functional import binary_cross_entropy_with_logits as bce_logits
from torch.nn.functional import cross_entropy

from aebench import models
from aebench.models.critics import CodeCritic, permute_dims
from aebench.training.settings import TrainConfig
from aebench.training.trainer import Trainer, TrainingInterrupted
from tests.conftest import subset

ADVERSARIAL = ("aae", "factor-vae", "wae-gan")
SMALL = dict(arch="mlp", latent_dim=4, hidden=[32])


def _trainer(model, data, **train) -> Trainer:
    settings = dict(epochs=1, batch_size=16, seed=0, quiet=True) | train
    return Trainer(model, data, TrainConfig(**settings), "test")


def _aae_by_hand(model, x: torch.Tensor, lrs: dict[str, float], post_update_codes: bool):
    """One AAE step written out with plain SGD (momentum 0.9: its first step is lr·g): the
    reconstruction, then the discriminator on prior draws vs codes, then the encoder as the
    generator. ``post_update_codes=False`` feeds the discriminator the codes from before the
    reconstruction step instead: the order the test must tell apart."""
    enc, dec, disc = model.encoder, model.decoder, model.discriminator

    def sgd(params, lr: float) -> torch.optim.SGD:
        return torch.optim.SGD(params, lr=lr, momentum=0.9)

    stale = enc(x).detach()
    recon = bce_logits(dec(enc(x)), x, reduction="none").flatten(1).sum(1).mean()
    step = sgd([*enc.parameters(), *dec.parameters()], lrs["lr"])
    recon.backward()
    step.step()
    codes = enc(x).detach() if post_update_codes else stale
    prior = torch.randn_like(codes)
    real, fake = disc(prior), disc(codes)
    d_loss = bce_logits(real, torch.ones_like(real)) + bce_logits(fake, torch.zeros_like(fake))
    step = sgd(disc.parameters(), lrs["lr_disc"])
    d_loss.backward()
    step.step()
    for p in enc.parameters():
        p.grad = None
    fooled = disc(enc(x))
    step = sgd(enc.parameters(), lrs["lr_gen"])
    bce_logits(fooled, torch.ones_like(fooled)).backward()
    step.step()


def test_aae_discriminator_sees_the_codes_after_the_reconstruction_step(mnist5k) -> None:
    lrs = dict(lr=0.05, lr_disc=0.05, lr_gen=0.05)
    torch.manual_seed(0)
    model = models.create("aae", optimizer="sgd", disc_hidden=[16], **SMALL, **lrs)
    by_hand, stale_order = copy.deepcopy(model), copy.deepcopy(model)
    data = subset(mnist5k, 16, 16)
    x = data.train_x[:16].float() / 255
    torch.manual_seed(1)
    _trainer(model, data).train_step(x)
    torch.manual_seed(1)
    _aae_by_hand(by_hand, x, lrs, post_update_codes=True)
    torch.manual_seed(1)
    _aae_by_hand(stale_order, x, lrs, post_update_codes=False)
    got, want, stale = model.state_dict(), by_hand.state_dict(), stale_order.state_dict()
    for name, value in got.items():
        torch.testing.assert_close(value, want[name], rtol=1e-5, atol=1e-6, msg=name)
    moved = [(got[n] - stale[n]).abs().max().item() for n in got if n.startswith("discriminator")]
    assert max(moved) > 1e-4  # the test can tell the two orders apart


def test_factor_vae_discriminator_loss_gives_the_encoder_exactly_zero_gradient() -> None:
    torch.manual_seed(0)
    model = models.create("factor-vae", disc_hidden=[32, 32], **SMALL)
    x = torch.rand(32, 1, 28, 28)
    model.discriminator_terms(x)["disc_loss"].backward()  # a full backward, nothing excluded
    leaked = [n for n, p in model.named_parameters()
              if p.grad is not None and not n.startswith("discriminator.")]  # fmt: skip
    assert leaked == []
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.discriminator.parameters())  # fmt: skip
    model.zero_grad(set_to_none=True)
    model.vae_terms(x)["vae_loss"].backward()  # the TC term does reach the encoder
    assert all(p.grad is not None for p in model.encoder.parameters())


def test_factor_vae_step_consumes_two_batches_and_its_epoch_counts_both(mnist5k) -> None:
    model = models.create("factor-vae", disc_hidden=[16], **SMALL)
    trainer = _trainer(model, subset(mnist5k, 128, 16), batch_size=16)
    seen = []
    step = trainer.train_step
    trainer.train_step = lambda x: seen.append(x.shape[0]) or step(x)  # type: ignore[method-assign]
    trainer.fit()
    assert seen == [32] * 4  # 128 images, 2 batches of 16 a step
    assert trainer.phase_updates == [4, 4]


def test_permute_dims_shuffles_each_dimension_on_its_own() -> None:
    torch.manual_seed(0)
    z = torch.arange(200.0).repeat(3, 1).T  # three identical columns: perfectly correlated
    shuffled = permute_dims(z)
    for j in range(3):
        assert torch.equal(shuffled[:, j].sort().values, z[:, j])  # a permutation of its column
    assert not torch.equal(shuffled[:, 0], shuffled[:, 1])  # each column its own
    assert abs(torch.corrcoef(shuffled.T)[0, 1].item()) < 0.25


def test_the_density_ratio_estimates_a_gaussians_total_correlation() -> None:
    """Trained on correlated Gaussian codes against their permutation, FactorVAE's
    discriminator's logit difference estimates TC = −½ log det R (R the correlation matrix)."""
    torch.manual_seed(0)
    rho, dims = 0.8, 3
    corr = torch.full((dims, dims), rho).fill_diagonal_(1.0)
    chol = torch.linalg.cholesky(corr)
    true_tc = -0.5 * torch.logdet(corr).item()  # 0.91 nats
    model = models.create("factor-vae", **SMALL | dict(latent_dim=dims), disc_hidden=[64, 64])
    opt = torch.optim.Adam(model.discriminator.parameters(), lr=1e-3)
    for _ in range(1500):
        joint = torch.randn(256, dims) @ chol.T
        marginals = permute_dims(torch.randn(256, dims) @ chol.T)
        logits = model.discriminator(torch.cat([joint, marginals]))
        labels = torch.cat([torch.zeros(256), torch.ones(256)]).long()
        opt.zero_grad()
        cross_entropy(logits, labels).backward()
        opt.step()
    with torch.no_grad():
        estimate = model.total_correlation(torch.randn(20_000, dims) @ chol.T).item()
    assert estimate == pytest.approx(true_tc, abs=0.12)


def test_code_critic_has_the_declared_layers() -> None:
    critic = CodeCritic(5, [1000] * 6, outputs=2, negative_slope=0.2)
    linear = [m for m in critic.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == (
        [(5, 1000)] + [(1000, 1000)] * 5 + [(1000, 2)]
    )
    acts = [m for m in critic.modules() if isinstance(m, torch.nn.LeakyReLU)]
    assert len(acts) == 6 and all(a.negative_slope == 0.2 for a in acts)


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_the_adversary_stays_off_zero_and_one_on_a_short_healthy_run(name, mnist5k) -> None:
    """Four epochs of conv nets on 2,000 images with the shipped defaults: the discriminator's
    accuracy (logged per epoch) never collapses to 0 or saturates at 1, and the model learns."""
    torch.manual_seed(0)
    model = models.create(name, arch="conv", latent_dim=16)
    history = _trainer(model, subset(mnist5k, 2000, 200), epochs=4, batch_size=64).fit()
    accuracy = [row["train"]["disc_acc"] for row in history]
    assert all(0.1 < a < 0.95 for a in accuracy), accuracy
    assert history[-1]["test"]["recon"] < history[0]["test"]["recon"]


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_killed_mid_epoch_then_resumed_is_bit_identical(name, mnist5k, tmp_path) -> None:
    """Stopped after step 5 of an epoch (the signal handler's path: an in-epoch checkpoint),
    then resumed: every weight, every phase's optimizer state and step count equal a straight
    run's."""
    data = subset(mnist5k, 256, 32)

    def fit(checkpoint=None, stop_at=None, resume=False) -> Trainer:
        torch.manual_seed(1 if resume else 0)  # resumed: equal only through the checkpoint
        model = models.create(name, disc_hidden=[32], **SMALL) if name != "wae-gan" else (
            models.create(name, adv_hidden=[32], **SMALL))  # fmt: skip
        trainer = _trainer(model, data, epochs=2)
        trainer.checkpoint_path = checkpoint
        if stop_at is not None:
            step = trainer.train_step

            def step_then_signal(x):  # type: ignore[no-untyped-def]
                out = step(x)
                if trainer.step + 1 == stop_at:
                    trainer.stop.signum = signal.SIGTERM
                return out

            trainer.train_step = step_then_signal  # type: ignore[method-assign]
        trainer.fit(resume=resume)
        return trainer

    straight = fit()
    with pytest.raises(TrainingInterrupted):
        fit(tmp_path / "ck.safetensors", stop_at=5)
    resumed = fit(tmp_path / "ck.safetensors", resume=True)
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    for a, b in zip(straight.optimizers, resumed.optimizers, strict=True):
        for pid, state in a.state_dict()["state"].items():
            for k, v in state.items():
                assert torch.equal(
                    torch.as_tensor(v), torch.as_tensor(b.state_dict()["state"][pid][k])
                )
    assert resumed.phase_updates == straight.phase_updates
    assert all(math.isfinite(v) for v in resumed.history[-1]["train"].values())
