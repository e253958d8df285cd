"""Ranking against a reference report (issue 17): does a small suite order the models as a
large one does? Swapped pairs are told apart into seed-noise ties and real differences, the
reference is read from its table.csv, and a bad reference is one line before anything is
written."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from aebench.core.errors import UsageError
from aebench.core.statistics import welch_p
from aebench.report import build_report
from aebench.report.agreement import (
    DIFFERS,
    SAME,
    TIES,
    Reference,
    Stat,
    agreement,
    compared_metrics,
    load_reference,
    welch_p_from_stats,
)
from tests.conftest import file_hashes, one_line_error
from tests.test_report import MODELS, make_store


def _stat(values: list[float]) -> Stat:
    return Stat(float(np.mean(values)), float(np.std(values, ddof=1)), len(values))


def test_welch_from_summaries_equals_welch_on_the_values() -> None:
    rng = np.random.default_rng(0)
    for n_a, n_b in [(3, 3), (2, 5), (10, 4)]:
        a = list(rng.normal(1.0, 0.3, n_a))
        b = list(rng.normal(1.4, 0.9, n_b))
        scipy_p = stats.ttest_ind(a, b, equal_var=False).pvalue
        assert welch_p_from_stats(_stat(a), _stat(b)) == pytest.approx(scipy_p, rel=1e-9)
        assert welch_p(a, b) == pytest.approx(scipy_p, rel=1e-9)
    assert math.isnan(welch_p_from_stats(Stat(1.0, math.nan, 1), Stat(2.0, 0.1, 3)))
    assert welch_p_from_stats(Stat(1.0, 0.0, 3), Stat(1.0, 0.0, 3)) == 1.0
    assert welch_p_from_stats(Stat(1.0, 0.0, 3), Stat(2.0, 0.0, 3)) == 0.0


def _pair(fid_b: Stat, fid_c: Stat) -> Reference:
    return Reference(
        "big", {"a": {"fid": Stat(10.0, 0.5, 3)}, "b": {"fid": fid_b}, "c": {"fid": fid_c}}
    )


HERE = {
    "a": {"fid": Stat(10.0, 0.5, 3), "recall": Stat(0.9, 0.01, 3)},
    "b": {"fid": Stat(20.0, 0.5, 3), "recall": Stat(0.5, 0.01, 3)},
    "c": {"fid": Stat(30.0, 0.5, 3), "recall": Stat(0.2, 0.01, 3)},
}


def test_the_same_order_is_same_order() -> None:
    (row,) = agreement(HERE, _pair(Stat(25.0, 1.0, 3), Stat(40.0, 1.0, 3)), ["fid"])
    assert row.verdict == SAME and row.swaps == ()
    assert row.order_here == row.order_there == ("a", "b", "c")


def test_a_pair_clearly_swapped_in_both_reports_differs() -> None:
    (row,) = agreement(HERE, _pair(Stat(40.0, 1.0, 3), Stat(25.0, 1.0, 3)), ["fid"])
    assert row.verdict == DIFFERS
    assert row.order_there == ("a", "c", "b")
    (swap,) = row.swaps
    assert (swap.better_here, swap.worse_here) == ("b", "c")
    assert swap.p_here < 0.05 and swap.p_there < 0.05
    text = swap.text("big", 0.05)
    assert text.startswith("b / c: here 20 vs 30") and "big 40 vs 25" in text
    assert "tie" not in text


def test_a_swap_that_is_noise_in_one_report_is_a_tie() -> None:
    # the reference cannot tell b from c (std 10 on a 1-point difference)
    (row,) = agreement(HERE, _pair(Stat(26.0, 10.0, 3), Stat(25.0, 10.0, 3)), ["fid"])
    assert row.verdict == TIES
    (swap,) = row.swaps
    assert swap.p_there >= 0.05 and "big 26 vs 25" in swap.text("big", 0.05)
    assert swap.text("big", 0.05).endswith("a tie)")
    # one seed in the reference: untested, so no real difference either
    (row,) = agreement(HERE, _pair(Stat(40.0, math.nan, 1), Stat(25.0, math.nan, 1)), ["fid"])
    assert row.verdict == TIES and "untested" in row.swaps[0].text("big", 0.05)


def test_neighbours_the_seeds_cannot_tell_apart_are_joined_by_approx() -> None:
    ref = _pair(Stat(20.5, 5.0, 3), Stat(40.0, 1.0, 3))  # b ties a there (std 5 on 10.5)
    (row,) = agreement(HERE, ref, ["fid"])
    assert row.verdict == SAME
    assert row.shown(here=True) == "a, b, c"
    assert row.shown(here=False) == "a ≈ b, c"


def test_higher_is_better_orders_from_the_top() -> None:
    ref = Reference("big", {k: {"recall": v["recall"]} for k, v in HERE.items()})
    ref.stats["c"]["recall"] = Stat(0.95, 0.01, 3)  # c best there, worst here
    (row,) = agreement(HERE, ref, ["recall"])
    assert row.order_here == ("a", "b", "c") and row.order_there == ("c", "a", "b")
    assert row.verdict == DIFFERS and len(row.swaps) == 2


def test_models_or_metrics_missing_on_one_side_are_left_out() -> None:
    ref = Reference("big", {"a": {"fid": Stat(1.0, 0.1, 3)}, "z": {"fid": Stat(2.0, 0.1, 3)}})
    assert agreement(HERE, ref, ["fid", "recall"]) == []  # one shared model: nothing to order
    # an exact tie orders nothing, so it is never a swap
    ref = _pair(Stat(20.0, 1.0, 3), Stat(20.0, 1.0, 3))
    assert agreement(HERE, ref, ["fid"])[0].verdict == SAME


def test_speed_metrics_are_not_ranked() -> None:
    ranked = compared_metrics(["recon_mse", "fid", "kl", "train_samples_per_s", "peak_mem_mb"])
    assert ranked == ["recon_mse", "kl", "fid"]


def _table(tmp_path: Path, rows: dict[str, object]) -> Path:
    path = tmp_path / "ref" / "table.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_reference_is_a_report_folder_or_its_table(tmp_path: Path) -> None:
    path = _table(tmp_path, {"label": ["a", "b"], "fid_mean": [1.0, 2.0], "fid_std": [0.1, 0.2],
                             "fid_n": [3, 3]})  # fmt: skip
    for spec in (path, path.parent):
        ref = load_reference(spec, ["fid", "kl"])
        assert ref.name == "ref" and ref.stats["b"] == {"fid": Stat(2.0, 0.2, 3)}


def test_a_reference_without_spreads_orders_but_tests_nothing(tmp_path: Path) -> None:
    ref = load_reference(_table(tmp_path, {"label": ["b", "c"], "fid_mean": [40.0, 25.0]}), ["fid"])
    assert ref.stats["b"]["fid"].n == 0
    (row,) = agreement(HERE, ref, ["fid"])
    assert row.order_there == ("c", "b") and row.verdict == TIES  # untested there: no real swap


@pytest.mark.parametrize(
    "rows, message",
    [
        (None, "no table.csv there"),
        ({"model": ["a"], "fid_mean": [1.0], "fid_std": [0.1], "fid_n": [3]}, "no 'label'"),
        ({"label": ["a"], "fid_mean": ["x"], "fid_std": [0.1], "fid_n": [3]}, "not numeric"),
        ({"label": ["a"], "fid": [1.0]}, "no <metric>_mean"),
        ({"label": ["a"], "fid_mean": [1.0], "fid_std": [0.1], "fid_n": [math.inf]}, "non-count"),
        ({"label": ["a"], "fid_mean": [1.0], "fid_std": [0.1], "fid_n": [2.5]}, "non-count"),
        ({"label": ["a"], "fid_mean": [1.0], "fid_std": [-0.1], "fid_n": [3]}, "negative or inf"),
        ({"label": ["a", "a"], "fid_mean": [1.0, 2.0], "fid_std": [0.1, 0.1], "fid_n": [3, 3]},
         "several rows"),
    ],
)  # fmt: skip
def test_a_bad_reference_is_one_line(tmp_path: Path, rows, message: str) -> None:
    path = tmp_path / "nothing" if rows is None else _table(tmp_path, rows)
    with pytest.raises(UsageError, match=message) as info:
        load_reference(path, ["fid"])
    assert "\n" not in str(info.value)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A suite, and a reference whose AE has three times the FID (now worse than β-VAE's)."""
    root = tmp_path_factory.mktemp("agreement")
    dirs = {label: root / "artifacts" / label for label in MODELS}  # no figures: never read
    here = make_store(root / "here.sqlite", dirs)
    there = make_store(root / "there.sqlite", dirs, shift={("ae", "fid"): 3.0})
    return here, there


def test_the_report_gets_a_ranking_section(stores: tuple[Path, Path], tmp_path: Path) -> None:
    here, there = stores
    ref = build_report(there, tmp_path / "big", figures=False)
    result = build_report(here, tmp_path / "small", figures=False, reference=ref.out)
    verdicts = {r.metric: r.verdict for r in result.agreements}
    assert verdicts["fid"] == DIFFERS and verdicts["recon_mse"] == SAME
    assert "train_samples_per_s" not in verdicts and result.reference == "big"
    md = (result.out / "report.md").read_text()
    block = md.split("## Ranking against big", 1)[1].split("\n## ", 1)[0]
    fid_row = next(ln for ln in block.splitlines() if ln.startswith("| FID"))
    assert "| differs |" in fid_row and "ae / beta-vae: here" in fid_row
    assert 'id="agreement-table"' in (result.out / "report.html").read_text()


def test_a_missing_reference_is_one_line_before_anything_is_written(
    stores: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    here, _ = stores
    out = tmp_path / "out"
    args = ["report", "--store", str(here), "--out", str(out), "--reference", str(tmp_path)]
    assert "no table.csv there" in one_line_error(capsys, args)
    assert not out.exists()
    # a damaged reference beside an out folder that already holds a report: left as it was
    out.mkdir()
    (out / "report.md").write_text("an earlier report")
    bad = _table(tmp_path, {"label": ["ae"], "fid_mean": [1.0], "fid_std": [0.1], "fid_n": [1e400]})
    before = file_hashes(out)
    args[-1] = str(bad)
    assert "non-count" in one_line_error(capsys, args)
    assert file_hashes(out) == before
