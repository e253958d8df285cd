"""VQ-VAE and its learned prior (issue 27), each property against an independent computation:
the straight-through gradient, the EMA codebook update, perplexity by hand, the PixelCNN's
causal receptive field, the learned prior against uniform codes, a kill in stage 2 resumed
bit-identically, and the model through the CLI on conv nets (refused on mlp in one line)."""

from __future__ import annotations

import math
import sqlite3

import pytest
import torch

from aebench import models
from aebench.cli import main
from aebench.metrics import samplers
from aebench.models.pixelcnn import GatedPixelCNN
from aebench.models.vq_vae.quantizer import VectorQuantizer, code_counts, codebook_usage
from aebench.training.settings import TrainConfig
from aebench.training.stages import fit_stages
from tests.conftest import killed_after_stage_epoch, one_line_error, subset, tiny_suite

SMALL = dict(latent_dim=4, codebook_size=32, prior_depth=4, prior_channels=16, prior_budget=1.0)


def test_straight_through_passes_the_decoders_gradient_to_the_encoder_unchanged() -> None:
    torch.manual_seed(0)
    quantizer = VectorQuantizer(16, 3)
    z_e = torch.randn(2, 3, 4, 4, requires_grad=True)
    z_q = quantizer(z_e)["z_q"]
    weights = torch.randn(2, 3, 4, 4)
    (z_q * weights).pow(2).sum().backward()  # any "decoder" loss of the quantised codes
    at_codes = z_q.detach().clone().requires_grad_(True)
    (at_codes * weights).pow(2).sum().backward()  # its gradient at the codes themselves
    assert torch.equal(z_e.grad, at_codes.grad)


def test_ema_moves_a_used_code_toward_its_vectors_and_leaves_the_others() -> None:
    torch.manual_seed(0)
    quantizer = VectorQuantizer(4, 2, ema=True, decay=0.9).train()
    quantizer.initialised.fill_(1.0)
    book = torch.tensor([[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0], [5.0, -5.0]])
    quantizer.codebook.copy_(book)
    quantizer.ema_sum.copy_(book)
    vectors = torch.tensor([[1.0, 0.5], [0.6, 1.0], [0.8, 0.9]])  # all nearest to entry 0
    quantizer(vectors.T.reshape(1, 2, 1, 3))
    mean = vectors.mean(0)
    assert (quantizer.codebook[0] - mean).norm() < (book[0] - mean).norm()
    # the moving averages by hand: N = 0.9·1 + 0.1·3, m = 0.9·e + 0.1·Σ v, then smoothing
    count = 0.9 + 0.1 * 3
    total = count + 3 * 0.9
    smoothed = (count + 1e-5) / (total + 4 * 1e-5) * total
    torch.testing.assert_close(
        quantizer.codebook[0], (0.9 * book[0] + 0.1 * vectors.sum(0)) / smoothed
    )
    assert torch.equal(quantizer.codebook[1:], book[1:])


def test_perplexity_and_dead_codes_by_hand() -> None:
    indices = torch.tensor([[[0, 0], [1, 2]], [[0, 0], [1, 2]]])  # shares 1/2, 1/4, 1/4, 0
    counts = code_counts(indices, 5)
    assert counts.tolist() == [4, 2, 2, 0, 0]
    perplexity, dead = codebook_usage(counts)
    entropy = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    assert float(perplexity) == pytest.approx(math.exp(entropy))  # 2·√2
    assert float(dead) == 2


def test_a_dead_code_restarts_at_a_batch_vector() -> None:
    torch.manual_seed(0)
    quantizer = VectorQuantizer(4, 2, restart_below=0.5).train()
    quantizer.initialised.fill_(1.0)
    quantizer.usage.copy_(torch.tensor([0.5, 0.3, 0.1, 0.001]))  # entry 3: dead
    z_e = torch.randn(1, 2, 4, 4)
    quantizer(z_e)
    vectors = z_e.permute(0, 2, 3, 1).reshape(-1, 2)
    assert (quantizer.codebook[3] - vectors).norm(dim=1).min() == 0  # one of the batch's


def test_the_pixelcnn_hears_every_earlier_position_and_nothing_else() -> None:
    torch.manual_seed(0)
    net = GatedPixelCNN(10, channels=8, depth=7)
    e = torch.randn(1, 8, 7, 7, requires_grad=True)
    for i, j in [(0, 0), (0, 6), (3, 0), (3, 4), (6, 6)]:
        (grad,) = torch.autograd.grad(net.from_embedded(e)[0, :, i, j].sum(), e)
        heard = grad.abs().sum(1)[0] > 0
        earlier = torch.tensor([[(r, c) < (i, j) for c in range(7)] for r in range(7)])
        assert torch.equal(heard, earlier), (i, j)


def test_uniform_codes_apply_only_to_a_model_with_a_codebook() -> None:
    assert samplers.problem("uniform-codes", models.create("vq-vae", **SMALL)) is None
    why = samplers.problem("uniform-codes", models.create("vae"))
    assert why is not None and "codebook" in why and "\n" not in why


def _fit(data, checkpoint=None, resume=False, epochs=2):
    torch.manual_seed(1 if resume else 0)  # a resumed model equals only through its checkpoints
    model = models.create("vq-vae", **SMALL)
    config = TrainConfig(epochs=epochs, batch_size=64, device="cpu", quiet=True, seed=3)
    history, _ = fit_stages(model, data, config, "vq-vae", checkpoint, resume)
    return model, history


def test_the_learned_prior_beats_uniform_codes_on_held_out_codes(mnist5k) -> None:
    model, history = _fit(subset(mnist5k, 1000, 300), epochs=3)
    assert [h["epoch"] for h in history if h.get("stage") == "prior"] == [1, 2, 3]
    with torch.no_grad():
        held_out = model.code_indices(mnist5k.test_x[:300].float() / 255)
        nll = float(model.code_prior.loss(held_out)["code_nll"])
    uniform = model.code_prior.uniform_nll()  # 49 · log 32
    assert nll < 0.5 * uniform, (nll, uniform)


def test_killed_in_stage_two_then_resumed_is_bit_identical(mnist5k, tmp_path, monkeypatch):
    data = subset(mnist5k, 256, 64)
    straight, _ = _fit(data, epochs=3)
    checkpoint = tmp_path / "checkpoint.safetensors"
    with killed_after_stage_epoch(monkeypatch, "prior", 2):
        _fit(data, checkpoint, epochs=3)
    resumed, history = _fit(data, checkpoint, resume=True, epochs=3)
    assert [h["epoch"] for h in history if h.get("stage") == "prior"] == [1, 2, 3]
    for key, value in straight.state_dict().items():  # both stages' weights, the codebook's
        assert torch.equal(value, resumed.state_dict()[key]), key  # flags and usage included


def test_vq_vae_through_the_cli_store_reevaluation_and_report(tmp_path, domain_net, capsys):
    suite, db = tmp_path / "vq.toml", tmp_path / "vq.sqlite"
    text = tiny_suite("vq", ["vq-vae"], [0]).replace('archs = ["mlp"]', 'archs = ["conv"]')
    suite.write_text(text)
    assert main(["run", str(suite), "--store", str(db), "--quiet"]) == 0
    with sqlite3.connect(db) as conn:
        names = {
            n: v for n, v in conn.execute("SELECT name, value FROM metrics WHERE phase = 'final'")
        }
    assert {"fid@prior", "fid@uniform-codes", "recon_mse"} <= set(names)
    assert all(math.isfinite(v) for v in names.values())
    assert main(["eval", "--store", str(db), "--only", "reconstruction"]) == 0
    out = tmp_path / "report"
    assert main(["report", "--store", str(db), "--out", str(out)]) == 0  # figures included:
    assert "| vq-vae " in (out / "report.md").read_text()  # interpolation on a code grid
    assert (out / "fig3_interpolations.png").stat().st_size > 0
    capsys.readouterr()
    line = one_line_error(capsys, ["train", "vq-vae", "--arch", "mlp", "--epochs", "1",
                                   "--out", str(tmp_path / "x")])  # fmt: skip
    assert "vq-vae" in line and "conv" in line


def test_stage_one_trains_at_the_lr_option_and_leaves_the_prior_out(mnist5k) -> None:
    """``lr`` reached no optimizer (stage 1 took the Phase default); the stage-1 Adam now runs
    at it, over every parameter but the PixelCNN prior's (stage 2 trains those)."""
    from aebench.training.trainer import Trainer

    m = models.create("vq-vae", arch="conv", latent_dim=4, lr=2e-4)
    trainer = Trainer(m, subset(mnist5k, 64, 32), TrainConfig(batch_size=32, quiet=True), "vq-vae")
    (group,) = trainer.optimizers[0].param_groups
    assert group["lr"] == 2e-4
    prior = {id(p) for p in m.code_prior.parameters()}
    assert {id(p) for p in group["params"]} == {id(p) for p in m.parameters()} - prior
