"""The report's ranking (issue 26: "the zoo-fast report ranks all eleven models with seeds"):
per metric the models best first, neighbours the seeds cannot tell apart joined by ≈. Checked
against an order and Welch tests computed here with NumPy and SciPy from the raw values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from aebench.core.statistics import Stat
from aebench.report import build_report
from aebench.report.ranking import rank
from tests.test_report import HIGHER, LOWER, MODELS, make_store


def test_order_and_ties_match_numpy_and_scipy_on_random_seeds() -> None:
    rng = np.random.default_rng(7)
    labels = [f"m{i}" for i in range(11)]
    for metric in ("fid", "recall"):
        for _ in range(20):
            centres = rng.uniform(0.2, 1.0, len(labels))
            values = {lab: rng.normal(c, 0.05, 3) for lab, c in zip(labels, centres, strict=True)}
            summary = {
                lab: {metric: Stat(float(v.mean()), float(v.std(ddof=1)), 3)}
                for lab, v in values.items()
            }
            (row,) = rank(summary, [metric])
            means = np.array([values[lab].mean() for lab in labels])
            best_first = np.argsort(-means if metric in HIGHER else means)
            assert row.ordered == tuple(labels[i] for i in best_first)
            for a, b, tied in zip(row.ordered, row.ordered[1:], row.tied, strict=False):
                p = stats.ttest_ind(values[a], values[b], equal_var=False).pvalue
                assert tied == (p >= 0.05)
            assert row.text.count(" ≈ ") == sum(row.tied)
            assert row.text.count(", ") == len(labels) - 1 - sum(row.tied)


def test_a_model_with_one_seed_ties_its_neighbours() -> None:
    summary = {
        "a": {"fid": Stat(10.0, 0.1, 3)},
        "b": {"fid": Stat(50.0, float("nan"), 1)},
        "c": {"fid": Stat(90.0, 0.1, 3), "recall": Stat(0.5, 0.1, 3)},
    }
    (row,) = rank(summary, ["fid", "recall"])  # recall: one model only, nothing to rank
    assert row.text == "a ≈ b ≈ c" and row.distinct_steps == 0


def test_the_report_ranks_every_model_as_its_table_csv_says(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s.sqlite", {m: tmp_path / m for m in MODELS})
    result = build_report(store, tmp_path / "report", figures=False)
    table = pd.read_csv(result.out / "table.csv")
    md = (result.out / "report.md").read_text()
    block = md.split("\n## Ranking\n", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in block.splitlines()
            if line.startswith("| ") and not line.startswith("| Metric")}  # fmt: skip
    assert "Train samples/s ↑" not in rows
    for metric, header in (("fid", "FID ↓"), ("recall", "Recall ↑"), ("kl", "KL ↓")):
        have = table[table[f"{metric}_mean"].notna()]
        ascending = metric in LOWER
        order = have.sort_values(f"{metric}_mean", ascending=ascending)["label"].tolist()
        assert [part.strip() for part in rows[header].replace("≈", ",").split(",")] == order


def test_two_models_get_no_ranking_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.test_report as report_fixture

    monkeypatch.setattr(report_fixture, "MODELS", ["ae", "vae"])  # the fixture suite's models
    store = make_store(tmp_path / "s.sqlite", {m: tmp_path / m for m in ("ae", "vae")})
    md = (build_report(store, tmp_path / "r", figures=False).out / "report.md").read_text()
    assert "\n## Ranking\n" not in md and "## Results" in md and "| vae |" in md
