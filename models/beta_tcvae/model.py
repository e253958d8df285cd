"""β-TCVAE (Chen, Li, Grosse & Duvenaud 2018, "Isolating Sources of Disentanglement in
Variational Autoencoders", NeurIPS; the authors' code: github.com/rtqichen/beta-tcvae).

The VAE's networks and posterior, with the ELBO's KL term split into three parts, each with
its own weight (the paper's eq. 2 and 4):

    E[log q(z|x) − log p(z)] =  I(x; z)                    index-code mutual information, α
                              + KL(q(z) ‖ Π_d q(z_d))       total correlation (TC), β
                              + Σ_d KL(q(z_d) ‖ p(z_d))     dimension-wise KL, γ

Each part needs the aggregate posterior q(z) = (1/N) Σ_n q(z|x_n) and its marginals at the
sampled codes, estimated from the minibatch. Minibatch-weighted sampling (MWS, the paper's
eq. 5 and the authors' default) weights every q(z_i | x_j) by 1/(N·B), B the batch size;
minibatch-stratified sampling (MSS, ``-o sampling=mss``) weights the code's own image by 1/N,
one other by (N − M)/(N·M) and the rest by 1/M (M = B − 1), weights that sum to one. N is the
training set's size, which the harness passes in ``progress.train_size``.

The loss reports the three parts as ``mi``, ``tc`` and ``dim_kl`` (nats per image, from the
training estimator, so loss = recon + α·mi + β·tc + γ·dim_kl), and ``tc_stratified``: the TC
by MSS whichever estimator trains. Read that one as the model's total correlation: MWS's
weights sum to 1/N, so its TC reads high by about (d − 1)·log N nats, a shift that leaves the
gradient alone but the value unreadable (docs/models.md).

Samplers: ``prior`` (decoded N(0, I) draws, the default, as the VAE) and ``gmm``.

Defaults and where they come from: α = γ = 1 and β = 6, the authors' example command; MWS.
Adam at lr 1e-3, as in the authors' code.

Where aebench departs, and why:
- the nets are aebench's shared encoder/decoder and ``latent_dim`` is the suite's (the authors
  use 10 latents and their own MLP/conv nets for dSprites and 3D faces);
- no β warm-up by default: the authors anneal β over their first 7,000 iterations on dSprites;
  ``-o kl_warmup=F`` ramps β (the TC weight) over a share F of the budget;
- the MSS weights sit on each code's own image and its neighbour in the batch, as the paper's
  equation has it; the authors' code puts them in the batch's first two columns instead.
"""

from __future__ import annotations

import math

import torch

from aebench.models.base import recon_nll
from aebench.models.beta_tcvae.config import BetaTCVAEConfig
from aebench.models.registry import register
from aebench.models.vae.model import VAE

LOG_2PI = math.log(2 * math.pi)


def pairwise_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z_i,d; μ_j,d, σ²_j,d) for every code i, posterior j and dimension d: (B, B, d)."""
    diff = z[:, None, :] - mu[None]
    return -0.5 * (LOG_2PI + logvar[None] + diff.pow(2) * (-logvar).exp()[None])


def minibatch_log_weights(
    batch: int, dataset_size: int, sampling: str, like: torch.Tensor
) -> torch.Tensor:
    """log of the weight each q(z_i | x_j) gets in the minibatch estimate of q(z_i): (B, B).

    ``mws``: 1/(N·B) everywhere (Chen et al., eq. 5). ``mss``: 1/N on the diagonal (the code's
    own image), (N − M)/(N·M) on the next image (i + 1, cyclically) and 1/M elsewhere, with
    M = B − 1 (their appendix C.2). N is at least B, so every weight is positive.
    """
    n = max(dataset_size, batch)
    if sampling == "mws":
        return like.new_full((batch, batch), -math.log(n * batch))
    if batch == 1:
        return like.new_zeros((1, 1))
    m = batch - 1
    weights = like.new_full((batch, batch), 1.0 / m)
    rows = torch.arange(batch, device=like.device)
    weights[rows, (rows + 1) % batch] = (n - m) / (n * m)
    weights[rows, rows] = 1.0 / n
    return weights.log()


def kl_decomposition(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, dataset_size: int, sampling: str
) -> dict[str, torch.Tensor]:
    """The three parts of log q(z|x) − log p(z) per code (each (B,)), with p(z) = N(0, I):
    ``mi`` = log q(z|x) − log q(z), ``tc`` = log q(z) − Σ_d log q(z_d) and ``dim_kl`` =
    Σ_d log q(z_d) − log p(z); q(z) and q(z_d) estimated from the batch by ``sampling``."""
    pairs = pairwise_log_density(z, mu, logvar)
    return decompose(pairs, z, minibatch_log_weights(z.shape[0], dataset_size, sampling, z))


def decompose(pairs: torch.Tensor, z: torch.Tensor, log_w: torch.Tensor) -> dict[str, torch.Tensor]:
    """:func:`kl_decomposition` from the (B, B, d) log densities and the (B, B) log weights."""
    log_qz = torch.logsumexp(log_w + pairs.sum(2), dim=1)
    log_qz_dims = torch.logsumexp(log_w[:, :, None] + pairs, dim=1).sum(1)
    log_qz_x = torch.diagonal(pairs).sum(0)
    log_pz = -0.5 * (LOG_2PI + z.pow(2)).sum(1)
    return {"mi": log_qz_x - log_qz, "tc": log_qz - log_qz_dims, "dim_kl": log_qz_dims - log_pz}


@register("beta-tcvae")
class BetaTCVAE(VAE):
    config_class = BetaTCVAEConfig
    _name = "beta-tcvae"
    default_sampler = "prior"  #: N(0, I), as the VAE
    samplers = ("prior", "gmm")

    def dataset_size(self, batch: int) -> int:
        """N: the training set's size as the harness reports it; the batch's own size outside
        the harness (a loss computed by hand, as in tests)."""
        return self.progress.train_size or batch

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mu, logvar = self.moments(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        recon = recon_nll(self.decode_logits(z), x, self.cfg.recon, self.cfg.sigma).mean()
        n, b = self.dataset_size(x.shape[0]), x.shape[0]
        pairs = pairwise_log_density(z, mu, logvar)
        log_w = minibatch_log_weights(b, n, self.cfg.sampling, z)
        parts = {k: v.mean() for k, v in decompose(pairs, z, log_w).items()}
        with torch.no_grad():
            stratified = decompose(pairs, z, minibatch_log_weights(b, n, "mss", z))
        cfg = self.cfg
        loss = recon + cfg.alpha * parts["mi"] + self.kl_weight() * parts["tc"]
        loss = loss + cfg.gamma * parts["dim_kl"]
        return {"loss": loss, "recon": recon, **parts, "tc_stratified": stratified["tc"].mean()}
