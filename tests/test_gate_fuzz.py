"""Fuzzing the gate baselines: any speed baseline JSON or quality baseline CSV either gives a
comparison that really compared something, or one ``aebench: error:`` line and exit 2.

Both run through ``aebench gate`` in-process against fixed current results, and check the
verdict against an oracle written from the rules, not from the code: which baselines are
valid, how many benchmarks or model × metric pairs can be compared, and (speed) which exit code
the ratios call for. A gate must never pass when nothing was compared, and never leave a
traceback (any exception other than the CLI's exit code fails the example).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from aebench.cli import main
from aebench.experiments.suite import load_suite
from aebench.perf import trend
from aebench.report import quality_gate as gates
from tests.test_gate_hardening import fill_store

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gate-fuzz")


def run_gate(args: list[str]) -> tuple[int, str, str]:
    """``aebench ARGS`` in-process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


def assert_refused(code: int, out: str, err: str) -> None:
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aebench: error:"), err


def compared_count(out: str, pattern: str) -> int:
    found = re.search(pattern, out)
    assert found, out
    return int(found.group(1))


# -- speed baseline JSON ----------------------------------------------------------------------
#: the fixed run: calibration 10 ms, test_a 20 ms, test_b 50 ms
TIMES = {trend.CALIBRATION: 0.01, "test_a": 0.02, "test_b": 0.05}
CURRENT = {k: v / TIMES[trend.CALIBRATION] for k, v in TIMES.items() if k != trend.CALIBRATION}

leaves = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, -0.0, 1e-320, 10**400, "5", "2.0", "NaN", ""]),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
)
json_values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
good_times = st.floats(min_value=0.1, max_value=20.0)
names = st.one_of(
    st.sampled_from(["test_a", "test_b", "test_c", trend.CALIBRATION]), st.text(max_size=5)
)
TRAPS = ["NaN", "Infinity", "-Infinity", "1e999", "[[[[", "}", ",", '"calibrated"', "true"]


@st.composite
def speed_baselines(draw: st.DrawFn) -> str:
    """Speed baseline JSON text: mostly a ``calibrated`` table of plausible and hostile values,
    sometimes anything at all, sometimes damaged text."""
    shape = draw(st.integers(0, 9))
    if shape == 0:
        doc: object = draw(json_values)
    elif shape == 1:
        doc = {"calibrated": draw(json_values)}
    else:
        hostile = draw(st.booleans())  # else every value plausible, so comparisons happen
        values = st.one_of(good_times, json_values) if hostile else good_times
        doc = {"what": "fuzz", "calibrated": draw(st.dictionaries(names, values, max_size=4))}
        if draw(st.booleans()):
            doc[draw(st.text(max_size=4))] = draw(json_values)
    text = json.dumps(doc, allow_nan=True)
    if draw(st.integers(0, 5)) == 0:
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.one_of(st.sampled_from(TRAPS), st.just(""))) + text[at:]
    return text


def positive(value: object) -> bool:
    """The rule for a baseline value: a JSON number (no bool, no string), finite, above 0."""
    if type(value) not in (int, float):
        return False
    try:
        return math.isfinite(float(value)) and float(value) > 0  # type: ignore[arg-type]
    except OverflowError:
        return False


def expected_speed(text: str) -> int | None:
    """The exit code the rules call for; None: refused (no usable table, nothing compared)."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return None
    table = doc.get("calibrated") if isinstance(doc, dict) else None
    if not isinstance(table, dict) or not table or not all(map(positive, table.values())):
        return None
    shared = [k for k in table if k in CURRENT]
    if not shared:
        return None
    limit = 1 + trend.SPEED_THRESHOLD
    return 1 if any(CURRENT[k] / float(table[k]) > limit for k in shared) else 0


@pytest.fixture(scope="module")
def results(folder: Path) -> Path:
    path = folder / "results.json"
    rows = [{"name": k, "stats": {"min": v, "median": v}} for k, v in TIMES.items()]
    path.write_text(json.dumps({"benchmarks": rows}))
    return path


@FUZZ
@given(text=speed_baselines())
def test_any_speed_baseline_compares_or_is_one_line(folder: Path, results: Path, text: str):
    baseline = folder / "baseline.json"
    baseline.write_text(text)
    code, out, err = run_gate(["gate", "trend", str(results), "--baseline", str(baseline)])
    assert baseline.read_text() == text  # compared against, never rewritten
    expected = expected_speed(text)
    event(f"exit {2 if expected is None else expected}")
    if expected is None:
        assert_refused(code, out, err)
        return
    assert code == expected, (text, out, err)
    table = json.loads(text)["calibrated"]
    assert compared_count(out, r"(?:of|in) (\d+)") == len([k for k in table if k in CURRENT])


def test_the_speed_oracle_sees_passes_and_failures(folder: Path, results: Path):
    """Guards the fuzzer: the oracle's valid core passes and fails as the gate does."""
    for table, code in (({"test_a": 2.0}, 0), ({"test_a": 1.0, "test_b": 5.0}, 1)):
        text = json.dumps({"calibrated": table})
        assert expected_speed(text) == code
        baseline = folder / "core.json"
        baseline.write_text(text)
        assert run_gate(["gate", "trend", str(results), "--baseline", str(baseline)])[0] == code


# -- quality baseline CSV ---------------------------------------------------------------------
COLUMNS = list(gates.QUALITY_COLUMNS)
printable = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=4)
CELLS = {
    "label": st.one_of(st.sampled_from(["ae", "vae", "ae", "vae", "ae ", "x", ""]), printable),
    "dataset": st.sampled_from(["mnist-5k", "mnist-5k", "mnist-5k", "mnist", ""]),
    "arch": st.sampled_from(["mlp", "mlp", "mlp", "conv", " "]),
    "seed": st.one_of(st.sampled_from(["0", "1", "2", "0", "1", "2", "3", " 1", ""]), printable),
    "metric": st.sampled_from(["recon_mse", "recon_mse", "recon_mse", "fid", "label", "x", ""]),
    "value": st.one_of(
        st.floats(min_value=-1e6, max_value=1e6).map(repr),
        st.floats(min_value=0.01, max_value=0.05).map(repr),
        st.sampled_from(["nan", "inf", "-inf", "", "oops", "1e400", "True"]),
    ),
}


PLAIN = {
    "label": st.sampled_from(["ae", "vae"]),
    "dataset": st.just("mnist-5k"),
    "arch": st.just("mlp"),
    "seed": st.sampled_from(["0", "1", "2"]),
    "metric": st.sampled_from(["recon_mse", "recon_mse", "fid"]),
    "value": st.floats(min_value=0.01, max_value=0.05).map(repr),
}


@st.composite
def quality_tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]]]:
    """A header (the six columns in any order, maybe one lost, maybe a duplicate or an extra
    column) and rows of plausible cells, in half the tables with hostile ones among them."""
    header = draw(st.permutations(COLUMNS))
    if draw(st.integers(0, 5)) == 0:
        header.pop(draw(st.integers(0, len(header) - 1)))
    if draw(st.integers(0, 3)) == 0:
        extra = draw(st.one_of(st.sampled_from(["extra", "", *COLUMNS]), printable))
        header.insert(draw(st.integers(0, len(header))), extra)
    hostile = draw(st.booleans())

    def cell(name: str) -> st.SearchStrategy[str]:
        plain = PLAIN.get(name, printable)
        return st.one_of(plain, plain, plain, CELLS.get(name, printable)) if hostile else plain

    rows = draw(st.lists(st.tuples(*[cell(n) for n in header]).map(list), max_size=10))
    return header, rows


def to_csv(header: list[str], rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def finite(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


def expected_quality(header: list[str], rows: list[list[str]]) -> int | None:
    """How many model × metric pairs the gate can compare (None: refused as invalid).

    Valid: every column present (its first occurrence counts), at least one row, no blank key
    cell, a gate metric, a finite value. The current suite has ae and vae (mnist-5k, mlp) with
    recon_mse over three seeds, so a pair is compared when the baseline holds recon_mse of two
    or more seeds for ae or vae on mnist-5k and mlp (another dataset or arch never matches).
    """
    if any(c not in header for c in COLUMNS) or not rows:
        return None
    cells = [{c: row[header.index(c)] for c in COLUMNS} for row in rows]
    for r in cells:
        if any(not r[c].strip() for c in COLUMNS[:5]):
            return None
        if r["metric"] not in gates.QUALITY_METRICS or not finite(r["value"]):
            return None
        if not re.fullmatch(r"\d+", r["seed"].strip()):  # a seed is a whole number
            return None
    keys = [tuple(r[c] for c in COLUMNS[:5]) for r in cells]
    if len(set(keys)) < len(keys):  # one value per run and metric
        return None
    seeds = {label: set() for label in ("ae", "vae")}
    for r in cells:
        match = (r["dataset"], r["arch"], r["metric"]) == ("mnist-5k", "mlp", "recon_mse")
        if match and r["label"] in seeds:
            seeds[r["label"]].add(r["seed"])
    return sum(len(s) >= 2 for s in seeds.values())


@pytest.fixture(scope="module")
def store(folder: Path) -> Path:
    return fill_store(folder / "gate.sqlite", load_suite("gate"))


def quality_gate(store: Path, csv_path: Path) -> tuple[int, str, str]:
    return run_gate(["gate", "quality", "--store", str(store), "--baseline", str(csv_path)])


COUNT = r"regression\(s\) in (\d+) model × metric comparisons"


@settings(FUZZ, max_examples=80)
@given(table=quality_tables())
def test_any_quality_baseline_compares_or_is_one_line(folder: Path, store: Path, table):
    header, rows = table
    text = to_csv(header, rows)
    path = folder / "quality.csv"
    path.write_text(text)
    code, out, err = quality_gate(store, path)
    assert path.read_text() == text
    expected = expected_quality(header, rows)
    event(f"compared {expected}")
    if not expected:  # invalid, or valid but nothing to compare: never a pass
        assert_refused(code, out, err)
        return
    assert code in (0, 1), (text, out, err)
    assert compared_count(out, COUNT) == expected


PREFIXES = ["", ",".join(COLUMNS) + "\n", ",".join(COLUMNS) + "\nae,mnist-5k,mlp,0,recon_mse,"]
raw_bytes = st.one_of(
    st.binary(max_size=80), st.text(st.characters(codec="utf-8"), max_size=80).map(str.encode)
)


@settings(FUZZ, max_examples=60)
@given(prefix=st.sampled_from(PREFIXES), raw=raw_bytes)
def test_any_quality_baseline_bytes_compare_or_are_one_line(
    folder: Path, store: Path, prefix: str, raw: bytes
):
    """Raw bytes after a real header or not (ragged rows, stray quotes, bad UTF-8): one line,
    or a comparison that compared something."""
    path = folder / "raw.csv"
    path.write_bytes(prefix.encode() + raw)
    code, out, err = quality_gate(store, path)
    event(f"exit {code}")
    if code == 2:
        assert_refused(code, out, err)
    else:
        assert code in (0, 1) and compared_count(out, COUNT) >= 1, (raw, out, err)


def test_the_quality_oracle_sees_comparisons(folder: Path, store: Path):
    """Guards the fuzzer: a valid baseline of both models compares two pairs."""
    rows = [[m, "mnist-5k", "mlp", str(s), "recon_mse", repr(v)]
            for m, v in (("ae", 0.02), ("vae", 0.03)) for s in (0, 1, 2)]  # fmt: skip
    assert expected_quality(COLUMNS, rows) == 2
    path = folder / "core.csv"
    path.write_text(to_csv(COLUMNS, rows))
    code, out, _ = quality_gate(store, path)
    assert code == 0 and compared_count(out, COUNT) == 2
