"""The harness: determinism, seeds, run I/O round-trip, third-party models through one loop."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aebench import models
from aebench.core.devices import seed_everything
from aebench.core.errors import UsageError
from aebench.models.base import GenerativeAutoencoder
from aebench.store.run_folder import load_run, save_run
from aebench.training.divergence import DivergenceError
from aebench.training.settings import TrainConfig
from aebench.training.trainer import Trainer
from tests.conftest import subset


def _small(data, n=512):
    return subset(data, n, 200)


TIMING_KEYS = {"seconds"}  # wall-clock entries differ between identical runs


def _untimed(history):
    """History entries without their wall-clock fields (everything else must match exactly)."""
    return [{k: v for k, v in h.items() if k not in TIMING_KEYS} for h in history]


def _train(name, data, seed, epochs=1, arch="mlp"):
    seed_everything(seed)
    model = models.create(name, arch=arch, latent_dim=4)
    history = Trainer(model, data, TrainConfig(epochs=epochs, seed=seed, quiet=True), name).fit()
    return model, history


@pytest.mark.parametrize("name", ["ae", "vae", "vae-gan"])
def test_same_seed_gives_identical_weights_and_losses(name, mnist5k):
    data = _small(mnist5k)
    a, ha = _train(name, data, seed=3)
    b, hb = _train(name, data, seed=3)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb), ka
    assert _untimed(ha) == _untimed(hb)


def test_different_seed_gives_different_weights(mnist5k):
    data = _small(mnist5k)
    a, _ = _train("vae", data, seed=0)
    b, _ = _train("vae", data, seed=1)
    assert any(
        not torch.equal(va, vb)
        for va, vb in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


@pytest.mark.parametrize("name", ["ae", "vae-gan"])
def test_safetensors_json_round_trip_restores_identical_outputs(name, mnist5k, tmp_path):
    model, history = _train(name, _small(mnist5k, 256), seed=0, arch="conv")
    save_run(tmp_path, model, {"model": name, "model_config": model.config}, history)
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob("*.pkl"))
    loaded, config = load_run(tmp_path)
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(loaded.reconstruct(x), model.reconstruct(x), rtol=0, atol=0)
        g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
        torch.testing.assert_close(loaded.sample(4, g1), model.sample(4, g2), rtol=0, atol=0)
    assert config["model"] == name


def test_loading_weights_of_another_architecture_is_refused(mnist5k, tmp_path):
    model, _ = _train("vae", _small(mnist5k, 128), seed=0, arch="mlp")
    save_run(tmp_path, model, {"model": "vae", "model_config": {**model.config, "arch": "conv"}})
    with pytest.raises(UsageError, match="does not match model 'vae'"):
        load_run(tmp_path)


class TinyPluginAE(GenerativeAutoencoder):
    """A model written outside the package, with networks of its own and two phases."""

    fits_prior = False

    def __init__(self, latent_dim: int = 3, **config):
        super().__init__(latent_dim=latent_dim, **config)
        self.latent_dim = latent_dim
        self.enc = nn.Sequential(nn.Flatten(), nn.Linear(784, latent_dim))
        self.dec = nn.Linear(latent_dim, 784)

    def encode(self, x):
        return self.enc(x)

    def decode_logits(self, z):
        return self.dec(z).view(-1, 1, 28, 28)

    def loss(self, x):
        logits = self.decode_logits(self.encode(x))
        recon = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        recon = recon / x.shape[0]
        return {"loss": recon, "code_norm": self.encode(x).pow(2).mean()}

    def sample(self, n, generator=None):
        return self.decode(torch.randn(n, self.latent_dim, generator=generator))

    def phases(self):
        return [
            models.Phase("encoder", list(self.enc.parameters()), "loss", lr=3e-3),
            models.Phase("decoder", list(self.dec.parameters()), "loss", lr=3e-3),
        ]


def test_a_model_defined_in_a_test_trains_through_the_same_harness(mnist5k):
    models.register("test-tiny-plugin")(TinyPluginAE)
    try:
        model = models.create("test-tiny-plugin", latent_dim=3)
        before = [p.detach().clone() for p in model.parameters()]
        history = Trainer(model, _small(mnist5k), TrainConfig(epochs=3, seed=0, quiet=True)).fit()
        assert history[-1]["test"]["loss"] < history[0]["test"]["loss"]
        assert set(history[0]["train"]) == {"loss", "code_norm"}
        assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    finally:
        models.unregister("test-tiny-plugin")


class NaNAfter(TinyPluginAE):
    def __init__(self, k: int = 3, **config):
        super().__init__(**config)
        self.calls = 0
        self.k = k

    def loss(self, x):
        terms = super().loss(x)
        self.calls += 1
        if self.calls > self.k:
            terms["loss"] = terms["loss"] * float("nan")
        return terms


def test_non_finite_loss_stops_with_a_message_naming_the_term(mnist5k):
    with pytest.raises(DivergenceError, match=r"nanmodel diverged: loss term 'loss' is nan"):
        Trainer(NaNAfter(), _small(mnist5k), TrainConfig(epochs=2, quiet=True), "nanmodel").fit()


def test_step_budget_stops_training(mnist5k):
    model = models.create("vae", latent_dim=2)
    trainer = Trainer(model, _small(mnist5k), TrainConfig(epochs=5, max_steps=3, quiet=True))
    history = trainer.fit()
    assert trainer.step == 3 and len(history) == 1


@pytest.mark.parametrize(
    "bad",
    [
        dict(epochs=0),
        dict(batch_size=0),
        dict(device="tpu"),
        dict(max_steps=0),
        dict(grad_clip=-1.0),
    ],
)
def test_bad_train_config_is_a_usage_error(bad):
    with pytest.raises(UsageError):
        TrainConfig(**bad).validate()
