"""Generation metrics: FID/KID against a float64 scipy reference and known orderings; P&R and
density/coverage on constructed feature sets with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from torchvision.transforms.functional import gaussian_blur

from aebench.metrics import features
from aebench.metrics.generation import density_coverage, fid, kid, knn_radii, precision_recall


def _blur(images_u8: torch.Tensor, sigma: float) -> torch.Tensor:
    x = images_u8.float() / 255
    k = 2 * int(np.ceil(3 * sigma)) + 1
    return gaussian_blur(x, [k, k], [sigma, sigma])


@pytest.fixture(scope="module")
def halves(mnist5k, domain_net):
    """Features of the two halves of the real test split, and of blurred / noise variants of
    the second half (same size, so only the content differs)."""
    test = mnist5k.test_x
    a, b = test[:500], test[500:]
    gen = torch.Generator().manual_seed(0)
    noise = torch.rand(b.shape, generator=gen)
    feats = {
        "a": features.extract(domain_net, a),
        "b": features.extract(domain_net, b),
        "noise": features.extract(domain_net, noise),
    }
    for sigma in (0.5, 1.0, 2.0):
        feats[f"blur{sigma}"] = features.extract(domain_net, _blur(b, sigma))
    return feats


def _scipy_fid(x: torch.Tensor, y: torch.Tensor) -> float:
    x, y = x.numpy().astype(np.float64), y.numpy().astype(np.float64)
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = np.real(scipy.linalg.sqrtm(s1 @ s2))
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_fid_orders_halves_blur_noise(halves):
    same = fid(halves["a"], halves["b"])
    blurred = [fid(halves["a"], halves[f"blur{s}"]) for s in (0.5, 1.0, 2.0)]
    noise = fid(halves["a"], halves["noise"])
    assert same < blurred[0] < blurred[1] < blurred[2]
    # uniform noise is far from digits, but a σ = 2 blur is about as far in this feature
    # space (measured: 707 vs 714), so noise is only required to beat moderate blur
    assert noise > blurred[1]
    assert noise > 20 * same


@pytest.mark.parametrize("other", ["b", "blur1.0", "noise"])
def test_fid_equals_float64_scipy_reference(halves, other):
    ours = fid(halves["a"], halves[other])
    reference = _scipy_fid(halves["a"], halves[other])
    assert ours == pytest.approx(reference, rel=1e-5)


def test_fid_of_a_set_with_itself_is_zero(halves):
    assert abs(fid(halves["a"], halves["a"])) < 1e-6 * fid(halves["a"], halves["noise"])


def test_kid_same_distribution_is_zero_within_two_std(halves):
    mean, std = kid(halves["a"], halves["b"], subsets=50, subset_size=200)
    assert std > 0
    assert abs(mean) <= 2 * std
    noise_mean, noise_std = kid(halves["a"], halves["noise"], subsets=50, subset_size=200)
    assert noise_mean > 2 * noise_std


def test_kid_is_reproducible_and_leaves_global_rng_alone(halves, monkeypatch):
    reseeded: list[int] = []  # a GPU's stream: torch.manual_seed reseeds it (lazily, without
    monkeypatch.setattr(torch.cuda, "manual_seed_all", reseeded.append)  # a GPU: queued)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    reseeded.clear()  # the test's own seeding above
    first = kid(halves["a"], halves["b"], subsets=5, subset_size=100, seed=3)
    after = torch.rand(1)
    assert first == kid(halves["a"], halves["b"], subsets=5, subset_size=100, seed=3)
    assert torch.equal(before, after)
    assert reseeded == []  # fork_rng(devices=[]) would not have restored it


def test_precision_recall_identical_and_disjoint():
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(300, 8, generator=gen, dtype=torch.float64)
    assert precision_recall(real, real.clone()) == (1.0, 1.0)
    far = real + 1000.0
    assert precision_recall(real, far) == (0.0, 0.0)
    # half of the fakes on the real data, half far away: precision ½, recall still 1
    mixed = torch.cat([real[:150], far[150:]])
    precision, recall = precision_recall(real, mixed)
    assert precision == pytest.approx(0.5)
    assert recall > 0.9


@pytest.mark.parametrize("k", [3, 5])
def test_precision_recall_equal_torch_fidelitys(k: int):
    """The same sets give torch-fidelity's precision and recall (its ``metric_prc``, Kynkäänniemi
    et al.'s definition: the k-th neighbour other than the point itself, ``<=`` the radius)."""
    from torch_fidelity.metric_prc import prc_features_to_metric

    gen = torch.Generator().manual_seed(k)
    real = torch.randn(400, 16, generator=gen, dtype=torch.float64)
    fake = 0.5 + 1.3 * torch.randn(300, 16, generator=gen, dtype=torch.float64)
    theirs = prc_features_to_metric(
        fake, real, prc_neighborhood=k, prc_batch_size=128, save_cpu_ram=True, verbose=False
    )
    precision, recall = precision_recall(real, fake, k)
    assert 0.05 < precision < 0.99 and 0.05 < recall < 0.99  # neither trivially 0 nor 1
    # the same count of points: one point is 1/300 or 1/400; torch-fidelity averages in float32
    assert precision == pytest.approx(theirs["precision"], abs=1e-6)
    assert recall == pytest.approx(theirs["recall"], abs=1e-6)


def test_precision_recall_mode_dropping_lowers_recall_not_precision():
    gen = torch.Generator().manual_seed(1)
    centres = torch.tensor([[0.0, 0.0], [50.0, 0.0]], dtype=torch.float64)
    real = torch.cat([c + torch.randn(200, 2, generator=gen, dtype=torch.float64) for c in centres])
    fake = centres[0] + torch.randn(400, 2, generator=gen, dtype=torch.float64)
    precision, recall = precision_recall(real, fake)
    assert precision > 0.9
    assert 0.3 < recall < 0.6


def test_knn_radii_on_an_integer_line():
    line = torch.arange(20, dtype=torch.float64)[:, None]
    radii = knn_radii(line, k=5)
    # 5th neighbour of an interior point: ±1, ±2, then 3; the ends reach further
    assert radii[3:-3].tolist() == [3.0] * 14
    assert radii[:3].tolist() == [5.0, 4.0, 3.0]


def test_density_coverage_known_answer():
    """Reals at 0..99 on a line (interior 5-NN radius 3). A fake at 50 lies in the balls of the
    7 reals 47..53, so density = 7 / k = 1.4 and coverage = 7 / 100."""
    real = torch.arange(100, dtype=torch.float64)[:, None]
    fake = torch.tensor([[50.0], [50.0]], dtype=torch.float64)
    density, coverage = density_coverage(real, fake, k=5)
    assert density == pytest.approx(1.4)
    assert coverage == pytest.approx(0.07)
    density, coverage = density_coverage(real, real.clone(), k=5)
    assert coverage == 1.0
    # interior fakes each sit in 7 balls; the 6 points near the ends in fewer or more
    expected = sum(int(((real[:, 0] - p).abs() <= knn_radii(real, 5)).sum()) for p in range(100))
    assert density == pytest.approx(expected / 500)
    assert density_coverage(real, real + 1000.0, k=5) == (0.0, 0.0)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        fid(torch.zeros(5, 3), torch.zeros(5, 4))


def test_features_and_scores_do_not_depend_on_the_extraction_batch_size(mnist5k, domain_net):
    """Like clean-fid's batch-size tests: the same images give the same features (to float32
    rounding) and the same FID/KID/P&R whatever batch size extracts them."""
    from aebench.metrics.generation import generation_metrics

    real, fake = mnist5k.test_x[:600], mnist5k.train_x[:600]
    scores = []
    for bs in (37, 128, 600):
        r, f = features.extract(domain_net, real, bs), features.extract(domain_net, fake, bs)
        scores.append((r, generation_metrics(r, f, kid_subsets=20, kid_subset_size=200)))
    (r0, s0), *rest = scores
    for r, s in rest:
        assert torch.allclose(r, r0, rtol=1e-5, atol=1e-6)
        for key in ("fid", "kid_mean", "precision", "recall", "density", "coverage"):
            assert s[key] == pytest.approx(s0[key], rel=1e-4, abs=1e-6), key


def test_a_mode_collapsed_generator_has_high_precision_and_low_recall(mnist5k, domain_net):
    """The P&R convention (Kynkäänniemi et al. 2019) on images: a "generator" that emits only a
    handful of real training digits, jittered by one grey level, is precise (every image is
    on the real manifold) but recalls little of it."""
    gen = torch.Generator().manual_seed(0)
    modes = mnist5k.train_x[:20]
    copies = modes.repeat_interleave(25, 0).to(torch.int16)
    jitter = torch.randint(-1, 2, copies.shape, generator=gen, dtype=torch.int16)
    collapsed = (copies + jitter).clamp(0, 255).to(torch.uint8)
    real = features.extract(domain_net, mnist5k.test_x[:500])
    precision, recall = precision_recall(real, features.extract(domain_net, collapsed))
    varied = features.extract(domain_net, mnist5k.train_x[:500])
    varied_precision, varied_recall = precision_recall(real, varied)
    # as precise as 500 varied real digits (each mode is a real digit), a fraction of the recall
    assert precision > 0.7 and precision > varied_precision - 0.15
    assert recall < 0.15 and varied_recall > 0.5
