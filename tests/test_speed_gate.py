"""The speed gate (bench/perf): its statistics, its counters, and planted regressions.

The planted regressions run the real gate, through the CLI, in a throwaway git repo whose
working tree carries the regression and whose HEAD does not (bench/perf/planted.py), on one
case and a few pairs; ``nox -s regress_check`` repeats the full-size version.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from scipy import stats as sps

from aebench import models
from aebench.perf import counters, planted
from aebench.perf.stats import judge, median_interval
from tests.conftest import REPO


@pytest.mark.parametrize("n", [8, 9, 15, 20, 45])
def test_median_interval_is_the_sign_test_interval(n):
    """The order statistics picked are the widest whose binomial tail stays within 0.5 %."""
    rng = random.Random(n)
    xs = [rng.lognormvariate(0, 0.2) for _ in range(n)]
    low, med, high = median_interval(xs, 0.99)
    ordered = sorted(xs)
    assert len(set(xs)) == n  # distinct ratios: a wrong k picks other values
    # independent computation: the largest k with P(Binomial(n, 1/2) <= k - 1) <= 0.005
    k = max(k for k in range(1, n // 2 + 1) if sps.binom.cdf(k - 1, n, 0.5) <= 0.005)
    assert (low, high) == (ordered[k - 1], ordered[n - k])
    assert med == pytest.approx(float(torch.tensor(xs).median()) if n % 2 else
                                (ordered[n // 2 - 1] + ordered[n // 2]) / 2)  # fmt: skip


def test_too_few_pairs_give_no_interval_and_a_noisy_verdict():
    low, med, high = median_interval([1.0] * 7, 0.99)
    assert med == 1.0 and low != low and high != high  # nan: 7 pairs cannot reach 99 %
    assert judge(low, high).status == "noisy"


@pytest.mark.parametrize(
    ("low", "high", "status"),
    [(1.25, 1.6, "slower"), (0.9, 1.1, "ok"), (1.05, 1.4, "noisy"), (0.5, 0.8, "faster")],
)
def test_verdict_from_the_interval(low, high, status):
    assert judge(low, high, threshold=0.2).status == status


def test_counts_decide_before_time():
    base = {"flops": 1000, "ops": 10, "host_reads": 0}
    assert judge(0.9, 1.0, base, {**base, "host_reads": 1}).status == "slower"
    assert judge(0.9, 1.0, base, {**base, "flops": 1500}).status == "slower"
    assert judge(0.9, 1.0, base, {**base, "flops": 1010}).status == "ok"


def test_counter_sees_item_and_flops_of_a_matmul():
    a, b = torch.randn(8, 16), torch.randn(16, 4)

    def call():
        out = a @ b
        return float(out.sum())

    counted = counters.count(call)
    assert counted["host_reads"] == 1
    assert counted["flops"] == 2 * 8 * 16 * 4  # FlopCounterMode's convention: 2 per MAC
    assert counted["ops"] >= 3  # mm, sum, _local_scalar_dense


def _planted_repo(tmp_path: Path, name: str | None) -> Path:
    repo = planted.scratch_repo(REPO, tmp_path / "repo")
    if name is not None:
        planted.plant(repo, next(p for p in planted.PLANTED if p.name == name))
    return repo


FAST = ["--pairs", "9", "--max-pairs", "27", "--round-seconds", "0.05"]


def test_gate_passes_unchanged_code(tmp_path):
    repo = _planted_repo(tmp_path, None)
    result = planted.gate(repo, ["train-step[vae-mlp]"], FAST)
    assert result["rc"] == 0, result
    assert result["slower"] == []
    typo = planted.gate(repo, ["train-step[vae-mpl]"], FAST)  # passed as "0 failed of 1"
    assert (
        typo["rc"] == 2 and "--case train-step[vae-mpl]: the working tree has no" in typo["stderr"]
    ), typo


@pytest.mark.parametrize("name", ["extra-forward", "host-sync"])
def test_gate_fails_a_planted_regression_and_names_its_case(tmp_path, name):
    repo = _planted_repo(tmp_path, name)
    result = planted.gate(repo, ["train-step[vae-mlp]", "encode-decode[mlp]"], FAST)
    assert result["rc"] == 1, result
    assert result["slower"] == ["train-step[vae-mlp]"]


@pytest.mark.slow  # builds Inception-v3 and times it in rounds (~1 min)
def test_gate_fails_inception_without_channels_last(tmp_path):
    repo = _planted_repo(tmp_path, "no-channels-last")
    args = ["--pairs", "9", "--max-pairs", "27", "--round-seconds", "0.2"]
    result = planted.gate(repo, ["inception-features", "encode-decode[conv]"], args)
    assert result["rc"] == 1, result
    assert result["slower"] == ["inception-features"]


def test_a_tree_is_laid_out_as_committed_and_as_imported(tmp_path):
    """A base commit runs from both layouts: its own folders (what a commit from before the
    ``aebench`` import name imports) and the import layout (bench/ → aebench/, models/ →
    aebench/models/), which is how ``python -m aebench.perf.worker`` finds a new one."""
    from aebench.perf.abtest import _add_import_layout

    for name, text in (("bench/perf/worker.py", "W"), ("models/vae/model.py", "M"),
                       ("README.md", "R")):  # fmt: skip
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    _add_import_layout(tmp_path)
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert files == sorted(["README.md", "bench/perf/worker.py", "models/vae/model.py",
                            "aebench/perf/worker.py", "aebench/models/vae/model.py"])  # fmt: skip
    assert (tmp_path / "aebench/models/vae/model.py").read_text() == "M"


def test_the_default_gate_compares_the_measured_cases_and_leaves_the_zoo_to_case():
    """The worker's listing marks the zoo's train steps ungated: a gate without ``--case``
    compares the 16 cases whose false-alarm rate docs/ci-gates.md measured; a listing from a
    base older than the flag gates every case."""
    from aebench.perf.abtest import default_cases
    from aebench.perf.cases import MODELS, ZOO_MODELS
    from aebench.perf.worker import Worker

    listing = Worker().handle({"op": "list"})["cases"]
    chosen = default_cases(listing)
    assert len(chosen) == 16
    assert all(f"train-step[{m}-{a}]" in chosen for m in MODELS for a in ("mlp", "conv"))
    left_out = {c["name"] for c in listing} - set(chosen)
    assert left_out == {f"train-step[{m}-{a}]" for m in ZOO_MODELS for a in ("mlp", "conv")
                        if models.supports_arch(m, a)}  # fmt: skip
    old = [{k: v for k, v in c.items() if k != "gated"} for c in listing]
    assert default_cases(old) == [c["name"] for c in listing]


@pytest.mark.parametrize("threads", ["0", "-1", "2000"])
def test_a_thread_count_out_of_range_is_one_line(threads, capsys):
    """--threads 0 was read as "all cores" (a 0 is falsy) while -1 was refused."""
    from tests.conftest import one_line_error

    line = one_line_error(capsys, ["gate", "speed", "--threads", threads])
    assert f"--threads must be between 1 and 1024, got {threads}" in line
