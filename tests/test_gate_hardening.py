"""Hostile and broken gate inputs (``aebench gate speed|quality``, ``aebench report --baseline``):
a baseline that cannot be trusted, a comparison that compared nothing, out-of-range options,
endless or blocking files. Each is one ``aebench: error:`` line and exit 2 — never a pass, never
a traceback, never a hang — and leaves every file already written as it was."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from aebench.cli import main
from aebench.experiments.suite import Suite, load_suite
from aebench.perf import trend
from aebench.store.database import Store
from tests.conftest import file_hashes, one_line_error, run_cli

#: a CLI call that hangs (a FIFO) fails the test after this many seconds instead of hanging it
HANG = 120


def hashes(*folders: Path) -> dict[str, str]:
    """:func:`file_hashes` of ``folders`` together, without SQLite's ``-wal``/``-shm`` side
    files (a reader may create them; they hold no data of their own)."""
    out = {}
    for folder in folders:
        out.update({f"{folder}/{k}": v for k, v in file_hashes(folder).items()
                    if not k.endswith(("-wal", "-shm"))})  # fmt: skip
    return out


def _cli_error(result) -> str:
    """Assert a CLI subprocess exited 2 with exactly one ``aebench: error:`` line; return it."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("aebench: error:"), result.stderr
    return lines[0]


# -- speed ------------------------------------------------------------------------------------
def _results(folder: Path, workload: float = 0.02) -> Path:
    """pytest-benchmark JSON: the calibration kernel at 10 ms, ``test_workload`` at ``workload``
    seconds (calibrated: ``workload / 0.01``)."""
    path = folder / f"results-{workload}.json"
    rows = [{"name": trend.CALIBRATION, "stats": {"min": 0.01, "median": 0.01}},
            {"name": "test_workload", "stats": {"min": workload, "median": workload}}]  # fmt: skip
    path.write_text(json.dumps({"benchmarks": rows}))
    return path


def _speed_baseline(folder: Path, calibrated: object) -> Path:
    path = folder / "baseline.json"
    path.write_text(json.dumps({"what": "test", "calibrated": calibrated}, allow_nan=True))
    return path


def test_a_planted_10x_slowdown_fails_against_a_good_baseline(tmp_path):
    results = _results(tmp_path, 0.2)
    baseline = _speed_baseline(tmp_path, {"test_workload": 2.0})
    before = file_hashes(tmp_path)
    done = run_cli("gate", "trend", str(results), "--baseline", str(baseline))
    assert done.returncode == 1, done.stderr
    assert "REGRESSED" in done.stdout and "10.00x" in done.stdout
    assert "1 of 1 benchmark(s) regressed" in done.stdout
    assert file_hashes(tmp_path) == before


BAD_VALUES = {
    "nan": float("nan"),
    "negative": -2.0,
    "infinity": float("inf"),
    "zero": 0,
    "true": True,
    "string": "5",
    "null": None,
    "list": [2.0],
    "huge-int": 10**400,
}


@pytest.mark.parametrize("value", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_a_bad_speed_baseline_value_is_refused_not_passed(tmp_path, capsys, value):
    """Before: NaN, a negative number or Infinity made a 10x slowdown "OK" (exit 0), 0 a
    ZeroDivisionError, ``true`` and ``"5"`` were read as numbers."""
    results = _results(tmp_path, 0.2)  # a 10x slowdown against a baseline of 2.0
    baseline = _speed_baseline(tmp_path, {"test_workload": value})
    before = file_hashes(tmp_path)
    line = one_line_error(capsys, ["gate", "trend", str(results), "--baseline", str(baseline)])
    assert "test_workload" in line and "finite positive number" in line
    assert file_hashes(tmp_path) == before


@pytest.mark.parametrize(
    "payload",
    [{"calibrated": {}}, {"calibrated": []}, {"calibrated": 3}, {"other": {}}, [], "x", None],
    ids=["empty-table", "list-table", "number-table", "no-table", "list", "string", "null"],
)
def test_a_speed_baseline_without_a_usable_table_is_refused(tmp_path, capsys, payload):
    results = _results(tmp_path)
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(payload))
    before = file_hashes(tmp_path)
    line = one_line_error(capsys, ["gate", "trend", str(results), "--baseline", str(baseline)])
    assert "calibrated" in line
    assert file_hashes(tmp_path) == before


def test_bad_speed_baselines_through_the_cli(tmp_path):
    results = _results(tmp_path, 0.2)
    for value, shown in ((float("nan"), "nan"), (0, "0")):  # a pass, a ZeroDivisionError
        baseline = _speed_baseline(tmp_path, {"test_workload": value})
        before = file_hashes(tmp_path)
        line = _cli_error(run_cli("gate", "trend", str(results), "--baseline", str(baseline)))
        assert f"'test_workload' is {shown}, not a finite positive number" in line
        assert file_hashes(tmp_path) == before


def test_the_speed_gate_refuses_when_nothing_was_compared(tmp_path, capsys):
    """A baseline of other benchmarks only: every row "new" or "missing" used to pass."""
    results = _results(tmp_path, 0.2)
    baseline = _speed_baseline(tmp_path, {"test_other": 2.0})
    before = file_hashes(tmp_path)
    assert main(["gate", "trend", str(results), "--baseline", str(baseline)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no OK/NEW lines before the refusal
    assert captured.err.startswith("aebench: error:") and captured.err.count("\n") == 1
    assert "nothing compared" in captured.err
    assert file_hashes(tmp_path) == before


def test_speed_results_with_only_the_calibration_save_no_empty_baseline(tmp_path, capsys):
    results = tmp_path / "r.json"
    rows = [{"name": trend.CALIBRATION, "stats": {"min": 0.01}}]
    results.write_text(json.dumps({"benchmarks": rows}))
    baseline = tmp_path / "baseline.json"
    line = one_line_error(capsys, ["gate", "trend", str(results), "--baseline", str(baseline)])
    assert "no benchmark besides" in line and not baseline.exists()


@pytest.mark.parametrize("value", [True, "0.02", float("nan"), -1.0, 0], ids=str)
def test_bad_results_times_are_refused(tmp_path, capsys, value):
    results = tmp_path / "r.json"
    rows = [{"name": trend.CALIBRATION, "stats": {"min": 0.01}},
            {"name": "test_workload", "stats": {"min": value}}]  # fmt: skip
    results.write_text(json.dumps({"benchmarks": rows}, allow_nan=True))
    baseline = _speed_baseline(tmp_path, {"test_workload": 2.0})
    before = file_hashes(tmp_path)
    line = one_line_error(capsys, ["gate", "trend", str(results), "--baseline", str(baseline)])
    assert "test_workload" in line and "no positive min time" in line
    assert file_hashes(tmp_path) == before


# -- quality ----------------------------------------------------------------------------------
def fill_store(path: Path, suite: Suite, shift: float = 1.0) -> Path:
    """Every run of ``suite`` done with a recon_mse near 0.02 (ae) / 0.03 (vae) and seed noise;
    ``shift`` scales the vae's (1.4: a real regression)."""
    with Store.open(path) as store, store.lock():
        for cfg in suite.expand():
            run_id = store.mark_running(cfg, {})
            noise = 1 + 0.01 * np.sin(cfg.seed + len(cfg.label))
            value = {"ae": 0.02, "vae": 0.03}[cfg.label] * noise
            scale = shift if cfg.label == "vae" else 1.0
            store.finish(run_id, "done", {"recon_mse": value * scale})
    return path


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, Path]:
    """The gate suite done twice (same numbers, and the vae 40 % worse), and its saved
    baseline CSV."""
    root = tmp_path_factory.mktemp("quality-stores")
    out = {name: fill_store(root / f"{name}.sqlite", load_suite("gate"), shift)
           for name, shift in (("base", 1.0), ("worse", 1.4))}  # fmt: skip
    csv = root / "good.csv"
    assert main(["gate", "quality", "--store", str(out["base"]), "--baseline", str(csv)]) == 0
    return {**out, "csv": csv}


GOOD_ROWS = "label,dataset,arch,seed,metric,value\n"


def _quality(store: Path, csv: Path, *extra: str) -> list[str]:
    return ["gate", "quality", "--store", str(store), "--baseline", str(csv), *extra]


def test_a_real_quality_regression_fails_and_the_count_is_real_comparisons(
    stores, tmp_path, capsys
):
    """The printed count holds only pairs that were tested: a baseline-only model ("missing")
    is not a test."""
    csv = tmp_path / "q.csv"
    ghost = "".join(f"ghost,mnist-5k,mlp,{s},recon_mse,0.5\n" for s in (0, 1, 2))
    csv.write_text(stores["csv"].read_text() + ghost)
    before = hashes(tmp_path, stores["base"].parent)
    assert main(_quality(stores["base"], csv)) == 0
    assert "0 regression(s) in 2 model × metric comparisons" in capsys.readouterr().out
    assert main(_quality(stores["worse"], csv)) == 1
    assert "1 regression(s) in 2 model × metric comparisons" in capsys.readouterr().out
    assert hashes(tmp_path, stores["base"].parent) == before


@pytest.mark.parametrize(
    "vae_scale",
    [(np.nan, np.nan, np.nan), (1.0, 1.0, np.inf), (1.0, np.nan, 1.0)],
    ids=["all-nan", "one-inf", "one-nan"],
)
def test_a_metric_that_turns_non_finite_fails_the_gate(stores, tmp_path, capsys, vae_scale):
    """The vae's recon_mse NaN or infinite in some done runs. Non-finite values are dropped
    before the t-test, so all NaN used to read as "missing" and one bad seed left the other
    two to be tested alone: the gate passed both. Either is now a regression, named so."""
    path = tmp_path / "bad.sqlite"
    with Store.open(path) as store, store.lock():
        for cfg in load_suite("gate").expand():
            run_id = store.mark_running(cfg, {})
            value = {"ae": 0.02, "vae": 0.03}[cfg.label] * (1 + 0.01 * np.sin(cfg.seed + 2))
            scale = vae_scale[cfg.seed] if cfg.label == "vae" else 1.0
            store.finish(run_id, "done", {"recon_mse": value * scale})
    assert main(_quality(path, stores["csv"])) == 1
    out = capsys.readouterr().out
    (line,) = [ln for ln in out.splitlines() if ln.startswith("REGRESSION")]
    assert line.startswith("REGRESSION vae recon_mse: baseline 0.0298")
    finite = sum(np.isfinite(vae_scale))
    assert f"now not finite (NaN, inf or not measured) in some runs, {finite} finite" in line
    assert "1 regression(s) in 2 model × metric comparisons" in out


@pytest.mark.parametrize(("scale", "seed"), [((1.0, np.inf, 1.0), 1), ((1.0, 1.0, np.nan), 2)])
def test_a_run_with_a_non_finite_value_is_not_saved_as_a_baseline(tmp_path, capsys, scale, seed):
    """Saving dropped NaN rows and kept inf: a baseline every later gate run refused, or one
    whose model had a seed fewer. Such a suite is refused in one line and nothing is written."""
    path = tmp_path / "bad.sqlite"
    with Store.open(path) as store, store.lock():
        for cfg in load_suite("gate").expand():
            run_id = store.mark_running(cfg, {})
            value = {"ae": 0.02, "vae": 0.03}[cfg.label] * (scale[cfg.seed] if cfg.label ==
                                                            "vae" else 1.0)  # fmt: skip
            store.finish(run_id, "done", {"recon_mse": value})
    csv = tmp_path / "q.csv"
    line = one_line_error(capsys, _quality(path, csv, "--update-baseline"))
    assert f"vae · mnist-5k · mlp recon_mse, seed {seed} is not a finite number" in line
    assert not csv.exists()


def _rows(
    labels=("ae", "vae"), dataset="mnist-5k", metric="recon_mse", value="0.02", seeds=(0, 1, 2)
) -> str:
    """A quality baseline CSV: the header, then one row per label and seed."""
    rows = [f"{m},{dataset},mlp,{s},{metric},{value}\n" for m in labels for s in seeds]
    return GOOD_ROWS + "".join(rows)


NOTHING_COMPARED = {
    "header-only": (GOOD_ROWS, "holds no values"),
    "all-nan": (_rows(value="nan"), "is not a finite number"),
    "empty-values": (_rows(value=""), "is not a finite number"),
    "labels-mismatch": (_rows(labels=("xae", "xvae")), "nothing compared"),
    "other-dataset": (_rows(dataset="cifar10"), "nothing compared"),
    "one-seed": (_rows(seeds=(0,)), "nothing compared"),
    "other-metric": (_rows(metric="fid", value="30"), "nothing compared"),
    "text-value": (_rows(value="oops"), "line 2: value 'oops' is not a finite number"),
    "unknown-metric": (_rows(metric="label"), "line 2: metric 'label' is not a gate metric"),
    "blank-label": (_rows(labels=("",)), "line 2: label '' is blank"),
    "ragged": (GOOD_ROWS + "ae,mnist-5k\n", "line 2: arch"),
    "no-columns": ("", "cannot read quality baseline"),
    "lacks-value": ("label,dataset,arch,seed,metric\n", "lacks column 'value'"),
    # were averaged or matched nothing, silently
    "seed-not-a-number": (_rows(seeds=("x", 1, 2)), "line 2: seed 'x' is not a whole number"),
    "repeated-row": (
        _rows() + "ae,mnist-5k,mlp,0,recon_mse,0.9\n",
        "line 8: metric 'recon_mse' repeats an earlier row",
    ),
}


@pytest.mark.parametrize("case", NOTHING_COMPARED, ids=NOTHING_COMPARED.keys())
def test_a_quality_baseline_that_compares_nothing_is_refused(stores, tmp_path, capsys, case):
    """Before: a header-only, all-NaN or label-mismatched CSV printed "0 regression(s) in 12
    model × metric tests" and passed; a text value was a TypeError traceback."""
    text, expected = NOTHING_COMPARED[case]
    csv = tmp_path / "q.csv"
    csv.write_text(text)
    before = hashes(tmp_path, stores["worse"].parent)
    line = one_line_error(capsys, _quality(stores["worse"], csv))  # the vae regressed
    assert expected in line
    assert hashes(tmp_path, stores["worse"].parent) == before


def test_quality_baselines_that_compare_nothing_through_the_cli(stores, tmp_path):
    for case in ("header-only", "text-value"):  # a pass, a TypeError traceback
        text, expected = NOTHING_COMPARED[case]
        csv = tmp_path / f"{case}.csv"
        csv.write_text(text)
        before = hashes(tmp_path, stores["worse"].parent)
        assert expected in _cli_error(run_cli(*_quality(stores["worse"], csv)))
        assert hashes(tmp_path, stores["worse"].parent) == before


@pytest.mark.parametrize(
    "option", [["--alpha", "-1"], ["--alpha", "5"], ["--alpha", "nan"], ["--tolerance", "inf"],
               ["--tolerance", "-0.1"], ["--alpha", "x"]], ids=" ".join,
)  # fmt: skip
def test_quality_gate_options_are_validated_as_the_report_does(stores, capsys, option):
    """Before: these were accepted, and the real regression of ``worse`` then passed."""
    assert main(_quality(stores["worse"], stores["csv"])) == 1  # the regression is real
    capsys.readouterr()
    line = one_line_error(capsys, _quality(stores["worse"], stores["csv"], *option))
    assert option[0] in line
    report_line = one_line_error(capsys, ["report", "--out", "x", *option])
    assert line.split(option[0], 1)[1] == report_line.split(option[0], 1)[1]  # same validation


def test_quality_option_refused_through_the_cli(stores):
    before = hashes(stores["csv"].parent)
    line = _cli_error(run_cli(*_quality(stores["worse"], stores["csv"], "--tolerance", "inf")))
    assert "--tolerance" in line and "'inf'" in line
    assert hashes(stores["csv"].parent) == before


def test_a_quality_suite_without_gate_metrics_saves_no_empty_baseline(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    with Store.open(store) as handle, handle.lock():
        for cfg in load_suite("gate").expand():
            handle.finish(handle.mark_running(cfg, {}), "done", {"train_time_s": 1.0})
    csv = tmp_path / "q.csv"
    line = one_line_error(capsys, _quality(store, csv))
    assert "no baseline to save" in line and not csv.exists()


# -- report --baseline OTHER.sqlite without this suite ----------------------------------------
def test_a_baseline_store_without_the_suite_is_refused(stores, tmp_path):
    """Before: the report compared with OTHER's newest suite (another dataset), printed
    REGRESSION lines and exited 1."""
    other_suite = Suite.from_dict({"name": "other", "models": ["ae", "vae"], "datasets": ["mnist"],
                                   "archs": ["mlp"], "seeds": [0, 1, 2],
                                   "budget": {"steps": 600}})  # fmt: skip
    other = fill_store(tmp_path / "stores" / "other.sqlite", other_suite, shift=3.0)
    before = hashes(other.parent, stores["base"].parent)
    done = run_cli("report", "--store", str(stores["base"]), "--baseline", str(other),
                   "--out", str(tmp_path / "out"), "--no-figures")  # fmt: skip
    line = _cli_error(done)
    assert "has no finished runs of suite 'gate'" in line and "other" in line
    assert "REGRESSION" not in done.stdout and not (tmp_path / "out").exists()
    assert hashes(other.parent, stores["base"].parent) == before
    # with the suite in it too (older than "other"), the same suite is compared
    both = fill_store(tmp_path / "both.sqlite", load_suite("gate"))
    fill_store(both, other_suite, shift=3.0)
    code = main(["report", "--store", str(stores["base"]), "--baseline", str(both),
                 "--out", str(tmp_path / "out2"), "--no-figures"])  # fmt: skip
    assert code == 0


# -- endless, blocking and deeply nested gate files -------------------------------------------
def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_special_files_as_gate_inputs_are_one_line_and_quick(stores, tmp_path, special):
    """/dev/zero was a MemoryError and a FIFO hung: only regular files are read."""
    path = "/dev/zero" if special == "/dev/zero" else str(_fifo(tmp_path))
    results = _results(tmp_path)
    baseline = _speed_baseline(tmp_path, {"test_workload": 2.0})
    before = hashes(tmp_path, stores["base"].parent)
    for args, what in (
        (("gate", "trend", path, "--baseline", str(baseline)), "benchmark results"),
        (("gate", "trend", str(results), "--baseline", path), "speed baseline"),
        (_quality(stores["base"], Path(path)), "quality baseline"),
    ):
        line = _cli_error(run_cli(*args, timeout=HANG))
        assert re.search(f"{what} is not a regular file", line), line
    assert hashes(tmp_path, stores["base"].parent) == before


def test_deeply_nested_gate_json_is_one_line(tmp_path, capsys):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    nested = tmp_path / "nested.json"
    nested.write_text('{"calibrated": ' + "[" * 100_000 + "]" * 100_000 + "}")
    results, baseline = _results(tmp_path), _speed_baseline(tmp_path, {"test_workload": 2.0})
    before = file_hashes(tmp_path)
    line = _cli_error(run_cli("gate", "trend", str(results), "--baseline", str(deep)))
    assert "nested too deeply" in line
    for args in (["gate", "trend", str(deep), "--baseline", str(baseline)],
                 ["gate", "trend", str(results), "--baseline", str(nested)]):  # fmt: skip
        assert "nested too deeply" in one_line_error(capsys, args)
    assert file_hashes(tmp_path) == before


def test_update_baseline_never_writes_over_a_file_that_is_no_baseline(stores, tmp_path, capsys):
    """--update-baseline wrote its CSV or JSON over whatever --baseline named: the results
    store itself (then "not an SQLite database"), a run's weights, the results file. Such a
    file is refused in one line and left as it was; a baseline, even a damaged one, is still
    rewritten."""
    store = tmp_path / "s.sqlite"
    store.write_bytes(stores["base"].read_bytes())
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    results = _results(tmp_path)
    for target in (store, weights, results):
        before = target.read_bytes()
        line = one_line_error(capsys, _quality(stores["base"], target, "--update-baseline"))
        assert f"{target} is not a quality baseline" in line
        assert target.read_bytes() == before
    for target in (store, weights, results):
        before = target.read_bytes()
        trend_gate = ["gate", "trend", str(results), "--baseline", str(target), "--update-baseline"]
        assert "is not a speed baseline" in one_line_error(capsys, trend_gate)
        assert target.read_bytes() == before
    for damaged_text in (
        GOOD_ROWS + "ae,mnist-5k,mlp,0,recon_mse,oops\n",
        "",
        "\ufeff" + GOOD_ROWS,
    ):  # a bad value, an empty file, a BOM
        damaged = tmp_path / "old.csv"
        damaged.write_text(damaged_text, encoding="utf-8")
        assert main(_quality(stores["base"], damaged, "--update-baseline")) == 0
        assert damaged.read_text() == stores["csv"].read_text()
    old_speed = _speed_baseline(tmp_path, {"test_workload": "oops"})
    gate = ["gate", "trend", str(results), "--baseline", str(old_speed), "--update-baseline"]
    assert main(gate) == 0 and '"calibrated"' in old_speed.read_text()
