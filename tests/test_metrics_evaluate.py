"""``evaluate``: flat keys from the vocabulary, absent latent keys without a posterior, options
validation, samplers, and directions known from the literature."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from aebench.core.errors import UsageError
from aebench.metrics import METRICS, MetricOptions, evaluate, format_table
from aebench.metrics.samplers import GaussianMixture, available, get
from aebench.models.gaussian import _hard_assignment_parameters
from aebench.training.probe import step_on_copy

LATENT = {"kl", "elbo", "nll_iw", "iw_gain", "active_units"}


def _small(cache, **kw) -> MetricOptions:
    defaults = dict(n_samples=300, iw_k=20, iw_n=100, kid_subsets=10, cache_dir=str(cache))
    return MetricOptions(**{**defaults, **kw})


@pytest.fixture(scope="module")
def vae_scores(trained_vae, mnist5k, domain_net, metrics_cache):
    return evaluate(trained_vae, mnist5k, _small(metrics_cache), train_step_factory=step_on_copy)


@pytest.fixture(scope="module")
def ae_scores(trained_ae, mnist5k, domain_net, metrics_cache):
    return evaluate(trained_ae, mnist5k, _small(metrics_cache, families=("reconstruction",)))


def _for_samplers(samplers: tuple[str, ...]) -> set[str]:
    """Every declared key, the per-sampler ones only for ``samplers``."""
    return {k for k in METRICS if "@" not in k or k.split("@")[1] in samplers}


def test_vae_gets_every_metric(vae_scores, trained_vae):
    assert trained_vae.samplers == ("prior", "gmm")
    expected = _for_samplers(trained_vae.samplers)
    assert set(vae_scores) - {"meta"} == expected
    for key in expected:
        assert isinstance(vae_scores[key], float) and math.isfinite(vae_scores[key]), key
    assert vae_scores["nll_iw"] <= -vae_scores["elbo"]
    assert vae_scores["iw_gain"] >= 0
    meta = vae_scores["meta"]
    assert meta["sampler"] == "prior" and meta["backbone"]["name"] == "domain"
    assert meta["backbone"]["test_accuracy"] >= 0.9
    assert meta["speed"]["threads"] == torch.get_num_threads()


def test_generation_is_measured_per_declared_sampler(
    vae_scores, trained_ae, mnist5k, metrics_cache
):
    """Each sampler the model declares gets its own keys (fid@prior, fid@gmm); the plain keys
    repeat the default sampler's numbers; a sampler chosen in the options is the only one."""
    assert vae_scores["meta"]["samplers"] == ["prior", "gmm"]
    for key in ("fid", "kid_mean", "precision", "recall", "density", "coverage"):
        assert vae_scores[key] == vae_scores[f"{key}@prior"], key
    assert vae_scores["sharpness_samples"] == vae_scores["sharpness_samples@prior"]
    assert vae_scores["fid@gmm"] != vae_scores["fid@prior"]
    ae = evaluate(trained_ae, mnist5k, _small(metrics_cache, families=("generation",)))
    assert ae["meta"]["samplers"] == ["gaussian", "normal", "gmm"]
    assert {"fid@gaussian", "fid@normal", "fid@gmm"} <= set(ae)
    assert ae["fid"] == ae["fid@gaussian"] and len({ae["fid@normal"], ae["fid@gmm"]}) == 2
    only = evaluate(
        trained_ae, mnist5k, _small(metrics_cache, families=("generation",), sampler="gmm")
    )
    assert only["meta"]["samplers"] == ["gmm"] and only["fid"] == only["fid@gmm"]
    assert not any(k.endswith(("@normal", "@gaussian")) for k in only)
    assert only["fid@gmm"] == pytest.approx(ae["fid@gmm"], rel=1e-9)  # same seed, same stream


def test_ae_has_no_latent_keys(ae_scores):
    assert not LATENT & set(ae_scores)
    assert {"recon_mse", "recon_bce", "psnr", "ssim"} <= set(ae_scores)
    assert ae_scores["meta"]["sampler"] == "gaussian"


def test_ae_reconstructs_better_than_vae(ae_scores, vae_scores):
    assert ae_scores["recon_mse"] < vae_scores["recon_mse"]


def test_evaluation_leaves_the_model_unchanged(trained_ae, mnist5k, metrics_cache, domain_net):
    before = {k: v.clone() for k, v in trained_ae.state_dict().items()}
    evaluate(trained_ae, mnist5k, _small(metrics_cache, families=("speed",)))
    after = trained_ae.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize(
    "bad",
    [
        dict(n_samples=0),
        dict(iw_k=0),
        dict(iw_n=-1),
        dict(backbone="vgg"),
        dict(sampler="flow"),
        dict(families=("reconstruction", "bogus")),
        dict(seed=-1),
        dict(n_samples=2.5),
    ],
)
def test_bad_options_are_usage_errors(bad):
    with pytest.raises(UsageError):
        MetricOptions(**bad)


def test_options_are_frozen():
    with pytest.raises(AttributeError):
        MetricOptions().iw_k = 3  # type: ignore[misc]


@pytest.mark.parametrize("name", ["prior", "normal", "gaussian", "gmm"])
def test_every_sampler_works_for_every_model(name, trained_ae, trained_vae, mnist5k):
    assert set(available()) >= {"prior", "normal", "gaussian", "gmm"}
    codes = trained_vae.encode(mnist5k.train_x[:1000].float() / 255).detach()
    for model in (trained_ae, trained_vae):
        gen = torch.Generator().manual_seed(0)
        images = get(name)(
            model, lambda m=model: m.encode(mnist5k.train_x[:1000].float() / 255), 20, gen
        )
        assert images.shape == (20, 1, 28, 28)
        assert float(images.min()) >= 0 and float(images.max()) <= 1
    assert codes.shape[1] == trained_vae.latent_dim


def test_gmm_recovers_separated_components():
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-10.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=torch.float64)
    x = torch.cat(
        [c + 0.5 * torch.randn(300, 2, generator=gen, dtype=torch.float64) for c in centres]
    )
    gmm = GaussianMixture(components=3).fit(x, gen)
    found = sorted(gmm.means.round().tolist())
    assert found == sorted(centres.tolist())
    assert torch.allclose(gmm.weights, torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.01)
    samples = gmm.sample(3000, gen)
    assert torch.allclose(samples.mean(0), x.mean(0), atol=0.5)


def test_format_table_lists_metrics_in_vocabulary_order(vae_scores):
    table = format_table(vae_scores)
    keys = [line.split()[0] for line in table.splitlines()]
    assert keys == [k for k in METRICS if k in vae_scores]


def test_gmm_start_is_each_groups_weight_mean_and_numpy_covariance():
    """The EM starts from the k-means++ groups: their shares, means and NumPy's (biased)
    covariances plus the jitter; a group no code joined gets almost no weight."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(400, 5, generator=gen, dtype=torch.float64)
    labels = torch.randint(3, (400,), generator=gen)  # group 3 of 4 stays empty
    weights, means, cov = _hard_assignment_parameters(x, labels, 4)
    for k in range(3):
        members = x[labels == k].numpy()
        assert float(weights[k]) == pytest.approx(len(members) / 400, rel=1e-9)
        np.testing.assert_allclose(means[k].numpy(), members.mean(0), rtol=1e-12)
        expected = np.cov(members.T, bias=True) + 1e-6 * np.eye(5)
        np.testing.assert_allclose(cov[k].numpy(), expected, rtol=1e-9, atol=1e-12)
    assert float(weights[3]) < 1e-12 and float(weights.sum()) == pytest.approx(1.0, abs=1e-12)


def _em_step_in_scipy(x: np.ndarray, gmm: GaussianMixture) -> tuple[np.ndarray, ...]:
    """One EM iteration written independently: SciPy log densities, NumPy weighted covariances."""
    cov = (gmm.chol @ gmm.chol.transpose(1, 2)).numpy()
    log_joint = np.stack([
        math.log(w) + multivariate_normal(m, c).logpdf(x)
        for w, m, c in zip(gmm.weights.tolist(), gmm.means.numpy(), cov, strict=True)
    ], 1)  # fmt: skip
    resp = np.exp(log_joint - logsumexp(log_joint, 1, keepdims=True))
    nk = resp.sum(0)
    means = resp.T @ x / nk[:, None]
    covs = [np.cov(x.T, aweights=r, bias=True) + 1e-6 * np.eye(x.shape[1]) for r in resp.T]
    return nk / len(x), means, np.stack(covs)


def test_gmm_each_iteration_is_an_em_step_computed_in_scipy():
    """Fitting one iteration more is one EM step (E: posterior responsibilities; M: weighted
    means and covariances) applied to the shorter fit, as SciPy and NumPy compute it."""
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(600, 3, generator=gen, dtype=torch.float64) + 2.0 * torch.randint(
        0, 3, (600, 1), generator=gen
    )
    for iterations in (0, 7):
        shorter = GaussianMixture(4, iterations).fit(x, torch.Generator().manual_seed(1))
        longer = GaussianMixture(4, iterations + 1).fit(x, torch.Generator().manual_seed(1))
        weights, means, covs = _em_step_in_scipy(x.numpy(), shorter)
        np.testing.assert_allclose(longer.weights.numpy(), weights, rtol=1e-8)
        np.testing.assert_allclose(longer.means.numpy(), means, rtol=1e-8, atol=1e-10)
        longer_cov = (longer.chol @ longer.chol.transpose(1, 2)).numpy()
        np.testing.assert_allclose(longer_cov, covs, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize(
    "case", ["one code", "fewer codes than components", "identical codes", "30 wide codes in 16-d"]
)
def test_gmm_fits_tiny_and_degenerate_codes(case: str):
    """Codes a tiny image folder or a collapsed encoder gives still fit: one code is its own
    component, identical codes give components at that code with only the jitter as covariance,
    and components with fewer codes than dimensions (nearly singular) start and fit."""
    gen = torch.Generator().manual_seed(2)
    x = {
        "one code": torch.randn(1, 4, generator=gen, dtype=torch.float64),
        "fewer codes than components": torch.randn(3, 4, generator=gen, dtype=torch.float64),
        "identical codes": torch.full((40, 4), 0.5, dtype=torch.float64),
        # an AE's codes can spread this wide: the start's precisions are then far from
        # symmetric unless computed as such (scikit-learn refused an LU inverse of them)
        "30 wide codes in 16-d": 100 * torch.randn(30, 16, generator=gen, dtype=torch.float64),
    }[case]
    gmm = GaussianMixture().fit(x, gen)
    k, d = min(10, len(x)), x.shape[1]
    assert gmm.weights.shape == (k,) and float(gmm.weights.sum()) == pytest.approx(1.0)
    assert bool(torch.isfinite(gmm.means).all()) and bool((gmm.chol.diagonal(0, 1, 2) > 0).all())
    if case in ("one code", "identical codes"):  # the weighted components sit on the code
        used = gmm.weights > 1e-6
        assert float(gmm.weights[used].sum()) == pytest.approx(1.0)
        torch.testing.assert_close(gmm.means[used], x[:1].expand(int(used.sum()), d))
        cov = (gmm.chol @ gmm.chol.mT)[used]
        torch.testing.assert_close(cov, 1e-6 * torch.eye(d, dtype=torch.float64).expand_as(cov))
    assert bool(torch.isfinite(gmm.sample(100, gen)).all())


def test_the_default_sample_count_is_at_most_the_test_split(trained_vae, mnist5k):
    """10,000 samples against mnist-5k's 1,000 real digits made the k-NN metrics compare
    sets of unequal size; by default the generated set is now the real set's size, and an
    explicit larger n_samples is kept but noted."""
    from tests.conftest import subset

    small = subset(mnist5k, 512, 300)
    only = {"families": ("reconstruction",)}
    meta = evaluate(trained_vae, small, MetricOptions(**only))["meta"]
    assert (meta["n_samples"], meta["n_real"]) == (300, 300) and meta["notes"] == []
    meta = evaluate(trained_vae, small, MetricOptions(n_samples=400, **only))["meta"]
    assert (meta["n_samples"], meta["n_real"]) == (400, 300)
    assert any("400 generated images against the test split's 300" in n for n in meta["notes"])
    meta = evaluate(trained_vae, mnist5k, MetricOptions(**only))["meta"]
    assert meta["n_samples"] == meta["n_real"] == mnist5k.test_x.shape[0]


def test_the_memory_check_counts_the_samples_the_capped_default_draws():
    """The default sample count is at most the test split's size, so the check made before
    training must count that many: 200 large RGB test images need 200 samples, not the
    10,000 that were refused up front."""
    from aebench.metrics.evaluation import planned_memory_problem

    shape = (3, 256, 256)
    refused = planned_memory_problem(MetricOptions(), shape, "vae", "cpu")
    assert refused is not None and "n_samples = 10,000" in refused
    assert planned_memory_problem(MetricOptions(), shape, "vae", "cpu", n_test=200) is None
