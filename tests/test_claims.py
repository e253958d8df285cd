"""Claims: Welch verdicts on planted data, [[claims]] parsing, and the verdicts reaching the
report and ``aebench run``'s output."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aebench.core.errors import UsageError
from aebench.experiments.claims import (
    BUILTIN,
    CONTRADICTED,
    HOLDS,
    INCONCLUSIVE,
    Claim,
    check,
    verdict,
)
from aebench.experiments.suite import parse_suite
from tests.conftest import one_line_error, tiny_suite

CLAIM = Claim("c", "a is lower than b", "test", "a", "b", "m", "m", "lower")


def _runs(a: list[float], b: list[float], dataset: str = "mnist-5k") -> pd.DataFrame:
    rows = [{"label": "a", "dataset": dataset, "m": v} for v in a]
    rows += [{"label": "b", "dataset": dataset, "m": v} for v in b]
    return pd.DataFrame(rows)


def test_welch_verdicts_on_planted_data() -> None:
    rng = np.random.default_rng(0)
    low, high = list(1.0 + 0.01 * rng.standard_normal(3)), list(2.0 + 0.01 * rng.standard_normal(3))
    assert verdict(low, high, "lower")[0] == HOLDS
    assert verdict(high, low, "lower")[0] == CONTRADICTED  # reversed data
    assert verdict(low, high, "higher")[0] == CONTRADICTED
    noise_a, noise_b = list(rng.standard_normal(3)), list(rng.standard_normal(3))
    result, p = verdict(noise_a, noise_b, "lower")
    assert result == INCONCLUSIVE and p >= 0.05
    result, p = verdict(low[:1], high, "lower")  # one seed: no variance to test with
    assert result == INCONCLUSIVE and np.isnan(p)
    (v,) = check(_runs(low[:1], high), [CLAIM])
    assert v.verdict == INCONCLUSIVE and v.why == "fewer than 2 seeds"
    (v,) = check(_runs(noise_a, noise_b), [CLAIM])
    assert v.why.startswith("p ≥")
    (v,) = check(_runs([np.inf, np.inf, low[0]], high), [CLAIM])  # inf tests nothing either
    assert v.verdict == INCONCLUSIVE and v.why == "fewer than 2 seeds"
    assert v.a_values == (low[0],)


def test_check_tests_each_group_and_skips_what_is_absent() -> None:
    runs = pd.concat([_runs([1, 1.1, 0.9], [2, 2.1, 1.9], "mnist"),
                      _runs([3, 3.1, 2.9], [2, 2.1, 1.9], "fashion")])  # fmt: skip
    got = {v.group: v.verdict for v in check(runs, [CLAIM], ["dataset"])}
    assert got == {"mnist": HOLDS, "fashion": CONTRADICTED}
    only_mnist = Claim(**{**CLAIM.__dict__, "datasets": ("mnist",)})
    assert [v.group for v in check(runs, [only_mnist], ["dataset"])] == ["mnist"]
    other_metric = Claim(**{**CLAIM.__dict__, "a_metric": "fid@gmm"})
    assert check(runs, [other_metric], ["dataset"]) == []  # a side lacks the metric
    absent = Claim(**{**CLAIM.__dict__, "b": "vae-gan"})
    assert check(runs, [absent], ["dataset"]) == []


def test_the_builtin_claims_cover_the_literature() -> None:
    formulas = {c.sides() for c in BUILTIN}
    assert formulas >= {
        "ae recon_mse < vae recon_mse",
        "vae-gan sharpness_samples > vae sharpness_samples",
        "vae-gan fid < vae fid",
        "vae fid@prior < ae fid@normal",
        "ae fid@gmm < ae fid@normal",
        "beta-vae kl < vae kl",
        "beta-vae recon_mse > vae recon_mse",
    }
    assert all(c.source for c in BUILTIN)


SUITE = tiny_suite("claimed", ["ae", "vae"], [0, 1], steps=3)
GOOD_CLAIM = """
[[claims]]
name = "ae-gmm-vs-gaussian"
claim = "an AE's GMM samples beat its fitted-Gaussian samples"
source = "Ghosh et al. 2020"
a = "ae"
b = "ae"
a_metric = "fid@gmm"
b_metric = "fid@gaussian"
expect = "lower"
"""


def test_a_suite_parses_its_claims() -> None:
    suite = parse_suite(SUITE + GOOD_CLAIM, "s.toml")
    (claim,) = suite.claims
    assert claim.sides() == "ae fid@gmm < ae fid@gaussian" and claim.source == "Ghosh et al. 2020"
    bare = parse_suite(SUITE + '[[claims]]\na = "ae"\nb = "vae"\nmetric = "ssim"\n'
                       'expect = "higher"\nsource = "me"\n', "s.toml")  # fmt: skip
    assert bare.claims[0].claim == "ae ssim is higher than vae ssim"


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (('expect = "lower"', 'expect = "smaller"'), "claims[0].expect"),
        (('a = "ae"\n', ""), "claims[0].a"),
        (('source = "Ghosh et al. 2020"\n', ""), "claims[0].source"),
        (('a_metric = "fid@gmm"\nb_metric = "fid@gaussian"\n', ""), "claims[0].metric"),
        (('expect = "lower"', 'expect = "lower"\nsign = 1'), "claims[0].sign"),
        (('a_metric = "fid@gmm"', 'a_metric = "fid gmm"'), "claims[0].a_metric"),
        (('name = "ae-gmm-vs-gaussian"', "name = 3"), "claims[0].name"),
        (("[[claims]]", "[claims]"), "claims"),
    ],
)
def test_bad_claims_are_one_line_naming_file_and_key(edit, key, tmp_path, capsys) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(SUITE + GOOD_CLAIM.replace(*edit))
    with pytest.raises(UsageError) as err:
        parse_suite(path.read_text(), str(path))
    assert str(path) in str(err.value) and key in str(err.value), str(err.value)
    line = one_line_error(capsys, ["run", str(path), "--store", str(tmp_path / "s.sqlite")])
    assert key in line and "bad.toml" in line
    assert not (tmp_path / "s.sqlite").exists()


def test_run_prints_verdicts_and_the_report_shows_suite_claims(tmp_path, domain_net, capsys):
    from aebench.cli import main

    suite, db = tmp_path / "claimed.toml", tmp_path / "s.sqlite"
    suite.write_text(SUITE + GOOD_CLAIM)
    assert main(["run", str(suite), "--store", str(db), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "claims (2 finished runs" not in out and "claims (4 finished runs" in out
    assert "AE reconstructs better than VAE" in out  # a built-in claim
    assert "an AE's GMM samples beat its fitted-Gaussian samples" in out  # the suite's own
    report = tmp_path / "report"
    args = ["report", "--store", str(db), "--suite", str(suite), "--out", str(report)]
    assert main([*args, "--no-figures"]) == 0
    text = (report / "report.md").read_text()
    assert "## Claims" in text and "an AE's GMM samples beat" in text
    assert "## Generation by sampler" in text and "gmm: FID ↓" in text
    claims = pd.read_csv(report / "claims.csv")
    assert set(claims["name"]) >= {"ae-reconstructs-better", "ae-gmm-vs-gaussian"}
    assert claims["verdict"].isin([HOLDS, CONTRADICTED, INCONCLUSIVE]).all()
    assert "Headline sampler" in text and "ae: gaussian" in text and "vae: prior" in text
