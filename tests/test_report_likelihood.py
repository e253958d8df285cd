"""An ELBO or an NLL is in the units of the decoder likelihood it was measured under: a
Gaussian decoder's nats are of a density over continuous pixels (the two-stage VAE's NLL is
negative), a Bernoulli decoder's of a probability. Each model's declared likelihood family is
checked against what its ``log_likelihood`` computes, and a report compares such metrics only
between the rows of the family most rows have: another family's cell is marked, never bolded,
ranked or compared against a reference."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch.distributions import Bernoulli, Normal

from aebench import models
from aebench.report import build_report
from aebench.report.agreement import summary_stats
from aebench.report.columns import compared
from aebench.report.tables import best_rows, likelihoods
from tests.test_report import _md_main_table, make_store

POSTERIOR_MODELS = [n for n in models.available() if getattr(models.get(n)[0], "has_posterior", 0)]


def _independent_log_likelihood(model, family: str, x: torch.Tensor, z: torch.Tensor):
    """log p(x|z) per image from torch.distributions, for the family the model declares: a
    Bernoulli on the decoder's logits, or a Gaussian around its sigmoid output with the fixed
    σ of ``recon = "mse"`` or the two-stage VAE's learned γ_x."""
    logits = model.decode_logits(z).double()
    x = x.double()
    if family == "bernoulli":
        return Bernoulli(logits=logits, validate_args=False).log_prob(x).flatten(1).sum(1)
    assert family == "gaussian", family
    learned = model.config.get("recon") == "learned-gaussian"
    scale = model.log_gamma_x.double().exp() if learned else model.config["sigma"]
    return Normal(torch.sigmoid(logits), scale).log_prob(x).flatten(1).sum(1)


@pytest.mark.parametrize("options", [{}, {"recon": "mse", "sigma": 0.3}, {"recon": "bce"}])
@pytest.mark.parametrize("name", POSTERIOR_MODELS)
def test_the_declared_likelihood_is_the_one_log_likelihood_computes(name, options) -> None:
    torch.manual_seed(0)
    model = models.create(name, arch="mlp", latent_dim=4, hidden=[32], **options).eval()
    if hasattr(model, "log_gamma_x"):
        model.log_gamma_x.data.fill_(-1.3)  # a learned γ_x away from its initial 1
    family = models.likelihood_of(name, model.config)
    x, z = torch.rand(6, 1, 28, 28), torch.randn(6, 4)
    with torch.no_grad():
        got = model.log_likelihood(x, z).double()
        want = _independent_log_likelihood(model, family, x, z)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-2)


def test_unknown_models_and_bad_stored_options_declare_no_likelihood() -> None:
    assert models.likelihood_of("no-such-model", {}) == ""
    assert models.likelihood_of(None, {}) == ""
    assert models.likelihood_of("two-stage-vae", {"second_width": "wide"}) == ""
    assert models.likelihood_of("two-stage-vae", {"an_option_since_removed": 1}) == "gaussian"


@pytest.fixture(scope="module")
def gaussian_beta_vae_report(tmp_path_factory: pytest.TempPathFactory):
    """The report fixture's suite with beta-vae trained under a Gaussian decoder and its NLL
    planted far below the Bernoulli VAE's (as the two-stage VAE's density is)."""
    root = tmp_path_factory.mktemp("likelihood")
    dirs = {m: root / m for m in ("ae", "vae", "beta-vae")}
    store = make_store(
        root / "s.sqlite",
        dirs,
        shift={("beta-vae", "nll_iw"): -6.0},
        overrides={"beta-vae": {"recon": "mse"}},
    )
    return build_report(store, root / "report", figures=False)


def test_another_likelihoods_nll_is_marked_not_bolded(gaussian_beta_vae_report) -> None:
    out = gaussian_beta_vae_report.out
    csv = pd.read_csv(out / "table.csv")
    assert dict(zip(csv["label"], csv["likelihood"], strict=True)) == {
        "ae": "bernoulli", "vae": "bernoulli", "beta-vae": "gaussian"
    }  # fmt: skip
    assert csv.set_index("label").loc["beta-vae", "nll_iw_mean"] < 0  # the lowest number
    md = (out / "report.md").read_text()
    header, rows = _md_main_table(md)
    nll, kl = header.index("NLL (IW) ↓"), header.index("KL ↓")
    cells = {r[0]: r for r in rows}
    assert cells["beta-vae"][nll].endswith(" †") and not cells["beta-vae"][nll].startswith("**")
    assert not any(r[nll].startswith("**") for r in rows)  # vae's is the one Bernoulli NLL
    assert cells["beta-vae"][kl].startswith("**")  # a KL is in nats of the code: compared
    assert "†: under a gaussian decoder likelihood" in md
    tex = (out / "table.tex").read_text()  # the mark in the cell and its meaning in the caption
    assert tex.count(r"\dag{}") == 2 and r"\dag{}: under a gaussian" in tex


def test_ranking_and_agreement_leave_another_likelihoods_nll_out(gaussian_beta_vae_report) -> None:
    md = (gaussian_beta_vae_report.out / "report.md").read_text()
    ranking = md.split("\n## Ranking\n", 1)[1].split("\n## ", 1)[0]
    lines = {r.split("|")[1].strip(): r.split("|")[2] for r in ranking.splitlines() if "|" in r}
    assert "NLL (IW) ↓" not in lines  # one Bernoulli NLL left: nothing to rank
    assert "beta-vae" in lines["KL ↓"]
    csv = pd.read_csv(gaussian_beta_vae_report.out / "table.csv")
    stats = summary_stats(csv, ["nll_iw", "kl"], "test")
    assert "nll_iw" in stats["vae"] and "nll_iw" not in stats["beta-vae"]
    assert "kl" in stats["beta-vae"]
    old = summary_stats(csv.drop(columns="likelihood"), ["nll_iw"], "test")  # an older table.csv
    assert "nll_iw" in old["beta-vae"]


def test_the_best_nll_is_the_lowest_of_the_main_likelihoods_rows() -> None:
    summary = pd.DataFrame({
        "label": ["two-stage", "vae", "iwae", "ae"],
        "likelihood": ["gaussian", "bernoulli", "bernoulli", "bernoulli"],
        "nll_iw_mean": [-640.0, 99.6, 95.1, float("nan")],
        "kl_mean": [55.0, 25.0, 27.0, float("nan")],
    })  # fmt: skip
    assert best_rows(summary, "nll_iw") == {2}
    assert best_rows(summary, "kl") == {1}
    assert best_rows(summary.drop(columns="likelihood"), "nll_iw") == {0}  # an older table


def test_the_main_likelihood_is_counted_among_the_rows_that_have_the_metric() -> None:
    """Two AEs (Bernoulli decoders, no NLL) and one Gaussian VAE: its NLL is the only one,
    so nothing is in other units than the others' and nothing is marked."""
    summary = pd.DataFrame({
        "label": ["ae", "rae", "vae"],
        "likelihood": ["bernoulli", "bernoulli", "gaussian"],
        "nll_iw_mean": [float("nan"), float("nan"), 120.0],
    })  # fmt: skip
    assert likelihoods(summary, "nll_iw") == ["", "", "gaussian"]
    assert compared(likelihoods(summary, "nll_iw"), "nll_iw") == [True, True, True]


def test_rows_that_declare_no_likelihood_are_compared_with_the_main_ones() -> None:
    """A run of a plugin model this process does not have, or one without a config class,
    declares nothing: it is compared as before."""
    assert compared(["", "bernoulli", "bernoulli"], "nll_iw") == [True, True, True]
    assert compared(["gaussian", "bernoulli", "bernoulli"], "nll_iw") == [False, True, True]
    assert compared(["gaussian", "bernoulli", "bernoulli"], "kl") == [True, True, True]
    assert compared(["gaussian", "gaussian", "bernoulli"], "elbo") == [True, True, False]
