"""Fuzzing ``[[claims]]``: any table is either a claim the suite can really test or one
UsageError line.

Tables are built around a valid claim: its keys given plausible values (the suite's labels and
their misspellings, metric keys and run-table columns such as ``label`` or ``seed``, datasets
inside and outside the suite) or arbitrary ones, plus unknown keys. An accepted claim must name
the suite's labels, declared metric keys and the suite's datasets, and must get a verdict on a
runs table that has both sides: a claim that loads is never silently left out of a report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aebench.core.errors import UsageError
from aebench.experiments.claims import EXPECT, RUN_COLUMNS, Claim, check, parse_claims
from aebench.experiments.suite import parse_suite
from aebench.metrics.family import all_keys
from tests.conftest import tiny_suite
from tests.test_suite_fuzz import one_line, toml_key, toml_value, values

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

LABELS = ("ae", "vae", "vae-b8")
DATASETS = ("mnist-5k", "mnist")
SUITE = (
    tiny_suite("fz", ["ae", "vae"], [0, 1])
    .replace(
        'models = ["ae", "vae"]',
        'models = ["ae", "vae", { model = "vae", label = "vae-b8", beta = 8.0 }]',
    )
    .replace('datasets = ["mnist-5k"]', 'datasets = ["mnist-5k", "mnist"]')
)
CLAIM_KEYS = ["name", "claim", "source", "a", "b", "metric", "a_metric", "b_metric", "expect",
              "datasets"]  # fmt: skip
VALID = {"a": "ae", "b": "vae", "metric": "recon_mse", "expect": "lower", "source": "s"}

WORDS = ["", " ", "x", "ae ", "AE", "vae-gan", "beta-vae", "aee", "lower", "higher", "smaller",
         "recon_mse", "fid@gmmm", "fid gmm", "a\nb", "mnist"]  # fmt: skip
words = st.sampled_from(WORDS)
metrics = st.one_of(
    st.sampled_from(["recon_mse", "fid", "fid@prior", "fid@gmm", "nll_iw", "ssim", "kl"]),
    st.sampled_from(["fid_recon", "precision@normal", "peak_mem_mb", "active_units"]),
    st.sampled_from(RUN_COLUMNS),
    st.sampled_from(["recon_mes", "fid@two-stage", "test_loss", "fid@", "@prior", "FID"]),
    words,
)
PLAUSIBLE: dict[str, st.SearchStrategy[object]] = {
    "name": st.one_of(st.sampled_from(["c1", "ae-vs-vae"]), words),
    "claim": st.one_of(st.just("a claim"), words),
    "source": st.one_of(st.just("Someone 2020"), words),
    "a": st.one_of(st.sampled_from(LABELS), st.sampled_from(LABELS), words),
    "b": st.one_of(st.sampled_from(LABELS), st.sampled_from(LABELS), words),
    "metric": metrics,
    "a_metric": metrics,
    "b_metric": metrics,
    "expect": st.one_of(st.sampled_from(EXPECT), st.sampled_from(EXPECT), words),
    "datasets": st.lists(
        st.one_of(st.sampled_from([*DATASETS, "cifar10", "fashion"]), words), max_size=3
    ),
}


@st.composite
def claim_tables(draw: st.DrawFn) -> object:
    """A valid claim with a few keys changed, removed or added; sometimes pure noise."""
    if draw(st.integers(0, 14)) == 0:
        return draw(values)
    table: dict[object, object] = dict(VALID)
    for key in draw(st.lists(st.sampled_from(CLAIM_KEYS), max_size=2)):
        strategy = PLAUSIBLE[key]
        table[key] = draw(st.one_of(strategy, strategy, strategy, values))
    if draw(st.integers(0, 5)) == 0:
        table.pop(draw(st.sampled_from(list(VALID))), None)
    if draw(st.integers(0, 7)) == 0:
        table[draw(st.one_of(st.sampled_from(["sign", "metrics", "A"]), st.text(max_size=4)))] = (
            draw(values)
        )
    return table


@st.composite
def claim_lists(draw: st.DrawFn) -> object:
    """Mostly an array of one or two tables (``[[claims]]``); sometimes a bare value."""
    if draw(st.integers(0, 5)) == 0:
        return draw(claim_tables())
    return draw(st.lists(claim_tables(), min_size=1, max_size=2))


def runs_with_every_metric() -> pd.DataFrame:
    """A report's runs table: every label × dataset × 2 seeds, every declared metric numeric."""
    keys = list(all_keys())
    rng = np.random.default_rng(0)
    rows = []
    for label in LABELS:
        for dataset in DATASETS:
            for seed in (0, 1):
                described = {"run_id": len(rows), "run_name": f"r{len(rows)}", "label": label,
                             "model": label, "dataset": dataset, "arch": "mlp", "seed": seed,
                             "artifacts": None}  # fmt: skip
                rows.append({**described, **dict(zip(keys, rng.random(len(keys)), strict=True))})
    return pd.DataFrame(rows)


RUNS = runs_with_every_metric()


def assert_testable(claims: tuple[Claim, ...]) -> None:
    """Every accepted claim names this suite's labels, declared metrics and datasets, and is
    tested (gets a verdict) on runs that have both of its sides."""
    keys = all_keys()
    for c in claims:
        assert c.a in LABELS and c.b in LABELS
        assert c.a_metric in keys and c.b_metric in keys
        assert c.expect in EXPECT and set(c.datasets) <= set(DATASETS)
        assert (c.a, c.a_metric) != (c.b, c.b_metric)
        assert check(RUNS, [c], ["dataset"]), c


@FUZZ
@given(claim_lists())
def test_any_claims_value_gives_testable_claims_or_one_usage_error(value: object) -> None:
    try:
        claims = parse_claims(value, "fuzz.toml", LABELS, DATASETS)
    except UsageError as err:  # nothing else may escape: no catch-all stands behind this call
        one_line(err)
        assert str(err).startswith("fuzz.toml: claims")
        return
    assert_testable(claims)


def claims_toml(tables: list[object]) -> str:
    """``[[claims]]`` tables in TOML (a key whose value TOML cannot hold is left out)."""
    lines = []
    for table in tables:
        lines.append("[[claims]]")
        items = table.items() if isinstance(table, dict) else [("value", table)]
        for key, value in items:
            if (text := toml_value(value)) is not None:
                lines.append(f"{toml_key(key)} = {text}")
    return "\n".join(lines) + "\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(claim_tables(), min_size=1, max_size=2))
def test_any_claims_in_a_suite_file_give_a_suite_or_one_usage_error(tables: list[object]) -> None:
    try:
        suite = parse_suite(SUITE + claims_toml(tables), source="fuzz.toml")
    except UsageError as err:
        one_line(err)
        assert str(err).startswith("fuzz.toml: ")
        assert "invalid suite (" not in str(err)  # the catch-all for bugs in validation
        return
    assert {s.label for s in suite.models} == set(LABELS)
    assert_testable(suite.claims)


def test_the_valid_claim_is_really_valid() -> None:
    """Guards the fuzzers: their base claim passes, so they do not only test refusals."""
    (claim,) = parse_claims([dict(VALID)], "fuzz.toml", LABELS, DATASETS)
    assert_testable((claim,))
    suite = parse_suite(SUITE + claims_toml([dict(VALID)]), source="fuzz.toml")
    assert suite.claims == (claim,)
