"""Comparison reports (issue 5): numbers equal pandas' own aggregation of the store, bold marks
the true best, the baseline check flags a planted regression and nothing on identical stores,
every figure is a real PNG, and the HTML report renders in a real headless Chromium.

The stores are made with the real Store API from a real suite config; the three models behind
them are really trained (1 epoch, tiny MLPs) so the figures load real weights. The metric values
are ours, chosen per model so that the best of each column is known.
"""

from __future__ import annotations

import html
import json
import math
import platform
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from aebench.cli import main
from aebench.core.statistics import welch_p
from aebench.experiments.suite import Suite
from aebench.report import build_report
from aebench.report.baseline import classify
from aebench.report.figures import FIGURES, pareto_front
from aebench.report.tables import format_mean_std
from aebench.store.database import Store
from tests.conftest import REPO

MODELS = ["ae", "vae", "beta-vae"]
SEEDS = [0, 1, 2]
#: latent sizes of the trained models: 2 (plotted directly) and 4 (PCA path of the latent map)
LATENT = {"ae": 2, "vae": 2, "beta-vae": 4}
#: per model: the centre of each metric; seeds scatter around it. None: not applicable.
CENTRES: dict[str, dict[str, float | None]] = {
    "ae": {"recon_mse": 0.020, "ssim": 0.80, "kl": None, "nll_iw": None, "fid": 40.0,
           "kid_mean": 0.030, "precision": 0.70, "recall": 0.40, "sharpness_samples": 0.9,
           "train_samples_per_s": 9000.0, "peak_mem_mb": 300.0, "active_units": 2.0,
           "fid@gaussian": 40.0, "fid@normal": 90.0, "fid@gmm": 25.0, "recall@gmm": 0.5},
    "vae": {"recon_mse": 0.030, "ssim": 0.70, "kl": 25.0, "nll_iw": 95.0, "fid": 30.0,
            "kid_mean": 0.020, "precision": 0.60, "recall": 0.55, "sharpness_samples": 0.6,
            "train_samples_per_s": 8000.0, "peak_mem_mb": 320.0, "active_units": 2.0,
            "fid@prior": 30.0, "fid@gmm": 28.0},
    "beta-vae": {"recon_mse": 0.045, "ssim": 0.60, "kl": 9.0, "nll_iw": 110.0, "fid": 55.0,
                 "kid_mean": 0.050, "precision": 0.50, "recall": 0.60, "sharpness_samples": 0.5,
                 "train_samples_per_s": 8500.0, "peak_mem_mb": 310.0, "active_units": 3.0,
                 "fid@prior": 55.0, "fid@gmm": 50.0},
}  # fmt: skip
#: Directions written down independently of bench/report/columns.py.
LOWER = {"recon_mse", "kl", "nll_iw", "fid", "kid_mean", "peak_mem_mb"}
HIGHER = {"ssim", "precision", "recall", "sharpness_samples", "train_samples_per_s"}
FIG_FILES = [name for name, _, _ in FIGURES.values()]


def _suite(
    name: str, models: list[str] | None = None, overrides: dict[str, dict] | None = None
) -> Suite:
    return Suite.from_dict(
        {
            "name": name,
            "models": models or MODELS,
            "overrides": overrides or {},
            "datasets": ["mnist-5k"],
            "archs": ["mlp"],
            "seeds": SEEDS,
            "budget": {"epochs": 1},
            "latent_dim": 2,
            "device": "cpu",
        }
    )


def _metrics(label: str, seed: int, shift: dict[tuple[str, str], float]) -> dict[str, float]:
    rng = np.random.default_rng([seed, MODELS.index(label)])
    out = {}
    for metric, centre in CENTRES[label].items():
        if centre is None:
            if metric == "kl":
                out[metric] = math.nan  # stored as NULL: "not applicable" must show as "–"
            continue
        noise = 1 + 0.02 * rng.standard_normal()
        out[metric] = centre * noise * shift.get((label, metric), 1.0)
    return out


def _history(label: str, seed: int) -> list[dict[str, float]]:
    base = {"ae": 120.0, "vae": 150.0, "beta-vae": 170.0}[label]
    return [
        {"epoch": e, "train_loss": base / e + seed, "test_loss": base / e + 2 + 0.5 * seed}
        for e in (1, 2, 3)
    ]


def make_store(
    path: Path,
    run_dirs: dict[str, Path],
    suite: str = "report-test",
    shift: dict[tuple[str, str], float] | None = None,
    models: list[str] | None = None,
    overrides: dict[str, dict] | None = None,
) -> Path:
    """A store with every run of the test suite done, as the runner would leave it (its
    models in the order ``models``, default :data:`MODELS`, with the model ``overrides``)."""
    env = {
        "device": "cpu", "threads": 2, "git_commit": "0123456789abcdef", "host": "test-host",
        "torch_version": "2.x", "aebench_version": "0.1.0", "python_version": "3.11",
        "packages": "numpy 9.1, scikit-learn 9.2",
    }  # fmt: skip
    with Store.open(path) as store, store.lock():
        for cfg in _suite(suite, models, overrides).expand():
            run_id = store.mark_running(cfg, env, artifacts=run_dirs[cfg.label])
            metrics = _metrics(cfg.label, cfg.seed, shift or {})
            store.finish(run_id, "done", metrics, _history(cfg.label, cfg.seed))
    return path


@pytest.fixture(scope="session")
def run_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One really trained tiny model per label (1 epoch on mnist-5k, MLP), shared by seeds."""
    from aebench.config.run import RunConfig
    from aebench.experiments.single_run import train_run
    from aebench.training.settings import TrainConfig

    root = tmp_path_factory.mktemp("report-artifacts")
    dirs = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the cores are shared: one thread is faster under contention
    try:
        for label in MODELS:
            # one epoch, capped at a few optimizer steps: real weights, a cheap fixture
            train = TrainConfig(epochs=1, max_steps=6, batch_size=128, device="cpu", quiet=True)
            cfg = RunConfig(model=label, latent_dim=LATENT[label], arch="mlp", train=train)
            _, dirs[label] = train_run(cfg, root / label)
    finally:
        torch.set_num_threads(threads)
    return dirs


@pytest.fixture(scope="session")
def store_path(run_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_store(tmp_path_factory.mktemp("store") / "aebench.sqlite", run_dirs)


@pytest.fixture(scope="session")
def report(store_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """The full report (figures included), built once."""
    return build_report(store_path, tmp_path_factory.mktemp("report") / "out")


def _pandas_stats(store_path: Path) -> pd.DataFrame:
    with Store.open(store_path, create=False, readonly=True) as store:
        frame = store.metrics_frame(status="done", phase="final")
    return frame.groupby(["label", "metric"])["value"].agg(["mean", "std"])


def _md_main_table(text: str) -> tuple[list[str], list[list[str]]]:
    block = text.split("## Results", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in block.splitlines() if ln.startswith("|")]
    split = [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines]
    return split[0], split[2:]


# -- the table -------------------------------------------------------------------------------
def test_files_written(report) -> None:
    names = {p.name for p in report.out.iterdir()}
    assert {"report.md", "report.html", "table.csv", "table.tex", *FIG_FILES} <= names


def test_table_mean_std_equal_pandas(report, store_path: Path) -> None:
    expected = _pandas_stats(store_path)
    csv = pd.read_csv(report.out / "table.csv").set_index("label")
    checked = 0
    for (label, metric), row in expected.iterrows():
        if f"{metric}_mean" not in csv:
            continue
        got_mean = csv.loc[label, f"{metric}_mean"]
        got_std = csv.loc[label, f"{metric}_std"]
        assert np.isclose(got_mean, row["mean"], rtol=1e-12, equal_nan=True), (label, metric)
        assert np.isclose(got_std, row["std"], rtol=1e-12, equal_nan=True), (label, metric)
        checked += 1
    assert checked >= 3 * 11
    # and the rendered cells are those numbers, formatted
    header, rows = _md_main_table((report.out / "report.md").read_text())
    for cells in rows:
        label = cells[0]
        for metric in ("fid", "recon_mse", "train_samples_per_s"):
            col = next(i for i, h in enumerate(header) if h.startswith(
                {"fid": "FID", "recon_mse": "Recon MSE", "train_samples_per_s": "Train"}[metric]
            ))  # fmt: skip
            mean, std = expected.loc[(label, metric)]
            assert cells[col].strip("*") == format_mean_std(mean, std)


def _md_section(text: str, title: str) -> tuple[list[str], list[list[str]]]:
    block = text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in block.splitlines() if ln.startswith("|")]
    split = [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines]
    return split[0], split[2:]


def test_per_sampler_keys_reach_the_store_and_the_sampler_table(report, store_path) -> None:
    expected = _pandas_stats(store_path)
    assert ("ae", "fid@gmm") in expected.index and ("vae", "fid@prior") in expected.index
    header, rows = _md_section((report.out / "report.md").read_text(), "Generation by sampler")
    assert header[0] == "Model" and {"gaussian: FID ↓", "gmm: FID ↓", "normal: FID ↓",
                                     "prior: FID ↓", "gmm: Recall ↑"} <= set(header)  # fmt: skip
    by_model = {r[0]: dict(zip(header, r, strict=True)) for r in rows}
    for label, sampler in (("ae", "gmm"), ("ae", "normal"), ("vae", "prior"), ("beta-vae", "gmm")):
        mean, std = expected.loc[(label, f"fid@{sampler}")]
        assert by_model[label][f"{sampler}: FID ↓"].strip("*") == format_mean_std(mean, std)
    assert by_model["vae"]["normal: FID ↓"] == "–"  # the VAE does not declare N(0, I)
    assert by_model["ae"]["gmm: FID ↓"].startswith("**")  # best of its column
    html_text = (report.out / "report.html").read_text()
    assert 'id="sampler-table"' in html_text
    assert re.search(r'<th [^>]*colspan="3">gmm</th>', html_text)  # the sampler's column group
    assert "ae: gaussian, vae: prior, beta-vae: prior" in html_text  # the headline sampler


def test_claims_section_tests_the_builtin_claims_on_planted_data(report) -> None:
    claims = pd.read_csv(report.out / "claims.csv").set_index("name")
    for name in ("ae-reconstructs-better", "vae-prior-beats-ae-normal", "ae-gmm-beats-normal",
                 "beta-vae-lower-kl", "beta-vae-worse-recon"):  # fmt: skip
        assert claims.loc[name, "verdict"] == "holds", name
        assert claims.loc[name, "p_value"] < 0.05
    assert "vae-gan-fid" not in claims.index  # no VAE-GAN in this suite: not applicable
    header, rows = _md_section((report.out / "report.md").read_text(), "Claims")
    assert header[:2] == ["Claim", "Verdict"] and len(rows) == len(claims)
    assert 'id="claims-table"' in (report.out / "report.html").read_text()


def test_every_figure_says_what_to_look_for(report) -> None:
    text = (report.out / "report.md").read_text()
    for _, caption, hint in FIGURES.values():
        assert caption in text and f"*{hint}*" in text


def test_one_row_per_model_with_seed_count(report) -> None:
    header, rows = _md_main_table((report.out / "report.md").read_text())
    assert [r[0] for r in rows] == MODELS
    assert all(r[-1] == str(len(SEEDS)) for r in rows)
    assert header[1] == "Family" and [r[1] for r in rows] == ["deterministic AE", "VAE", "VAE"]


def test_rows_are_grouped_by_family_in_the_families_order(run_dirs, tmp_path: Path) -> None:
    """Models listed VAE, AE, VAE in the suite come out grouped: the deterministic AE first,
    then both VAEs in the suite's order."""
    order = ["vae", "ae", "beta-vae"]
    store = make_store(tmp_path / "s.sqlite", run_dirs, models=order)
    result = build_report(store, tmp_path / "report", figures=False)
    _, rows = _md_main_table((result.out / "report.md").read_text())
    assert [(r[0], r[1]) for r in rows] == [
        ("ae", "deterministic AE"),
        ("vae", "VAE"),
        ("beta-vae", "VAE"),
    ]
    csv = pd.read_csv(result.out / "table.csv")
    assert list(csv["label"]) == ["ae", "vae", "beta-vae"]  # the numbers follow the rows


def test_bold_marks_true_best_respecting_direction(report, store_path: Path) -> None:
    means = _pandas_stats(store_path)["mean"].unstack("metric")
    header, rows = _md_main_table((report.out / "report.md").read_text())
    html_text = (report.out / "report.html").read_text()
    for metric in LOWER | HIGHER:
        col = means[metric].dropna()
        best = col.idxmin() if metric in LOWER else col.idxmax()
        first = 2 if report.table.families else 1  # the model, and its family when known
        index = next(i for i, m in enumerate(report.table.columns) if m == metric) + first
        bold = [r[0] for r in rows if r[index].startswith("**")]
        assert bold == [best], (metric, bold, best)
        arrow = "↓" if metric in LOWER else "↑"
        assert header[index].endswith(arrow), header[index]
    main_html = html_text.split('id="main-table"', 1)[1].split("</table>", 1)[0]
    assert len(re.findall(r'<td [^>]*class="[^"]*\bbest\b', main_html)) >= len(LOWER | HIGHER)


def test_not_applicable_is_a_dash_and_no_nan_anywhere(report) -> None:
    header, rows = _md_main_table((report.out / "report.md").read_text())
    ae = rows[0]
    for name in ("KL", "NLL"):
        col = next(i for i, h in enumerate(header) if h.startswith(name))
        assert ae[col] == "–"
    for name in ("report.md", "report.html", "table.tex"):
        assert not re.search(r"\bnan\b", (report.out / name).read_text(), re.I), name


def test_latex_is_booktabs(report) -> None:
    tex = (report.out / "table.tex").read_text()
    for rule in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}"):
        assert tex.count(rule) == 1
    body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()
    assert len(body) == len(MODELS)
    assert r"\textbf{" in tex and r"$\pm$" in tex and r"$\downarrow$" in tex
    assert "beta-vae" in tex and "--" in tex


def test_header_says_where_the_numbers_come_from(report) -> None:
    md = (report.out / "report.md").read_text()
    for needle in ("report-test", "mnist-5k", "1 epochs", "3 (0, 1, 2)", "cpu", "0123456789ab"):
        assert needle in md, needle
    assert "Packages: numpy 9.1, scikit-learn 9.2" in md.replace("*", "")
    # the CPU as the run folders recorded it (the runs' host is not this one): its model, and
    # the instruction set PyTorch's kernels chose there, on which the last digits depend
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
             if line.startswith("model name")] if cpuinfo.exists() else []  # fmt: skip
    cpu = f"{names[0] if names else platform.machine()} "
    assert f"CPU: {cpu}({torch.backends.cpu.get_cpu_capability()} kernels)" in md.replace("*", "")


# -- figures ---------------------------------------------------------------------------------
def test_every_figure_is_a_valid_png_under_300_kb(report) -> None:
    assert [f.path.name for f in report.figures] == FIG_FILES
    for fig in report.figures:
        assert fig.problem is None, (fig.path.name, fig.problem)
        data = fig.path.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000, fig.path.name
        assert len(data) <= 300 * 1024, (fig.path.name, len(data))
        with Image.open(fig.path) as img:
            img.verify()
        with Image.open(fig.path) as img:
            assert img.width > 100 and img.height > 50
            lo, hi = img.convert("L").getextrema()
            assert hi - lo > 50, f"{fig.path.name} is blank"


def test_missing_artifacts_give_a_placeholder_not_a_crash(run_dirs, tmp_path: Path) -> None:
    gone = {label: tmp_path / "deleted" / label for label in MODELS}
    path = make_store(tmp_path / "s.sqlite", gone)
    result = build_report(path, tmp_path / "out")
    problems = {f.key: f.problem for f in result.figures}
    assert problems["samples"] and "does not exist" in problems["samples"]
    assert problems["metric_bars"] is None and problems["learning_curves"] is None
    assert "Not drawn" in (tmp_path / "out" / "report.md").read_text()


def test_pareto_front() -> None:
    speed = np.array([1.0, 2.0, 3.0, 2.5])
    fid = np.array([10.0, 20.0, 30.0, 35.0])
    assert pareto_front(speed, fid) == [0, 1, 2]  # the last is beaten by the third on both


# -- baseline --------------------------------------------------------------------------------
def test_identical_stores_flag_nothing(store_path: Path, tmp_path: Path) -> None:
    copy = tmp_path / "baseline.sqlite"
    shutil.copy(store_path, copy)
    code = main(["report", "--store", str(store_path), "--baseline", str(copy),
                 "--out", str(tmp_path / "out"), "--no-figures"])  # fmt: skip
    assert code == 0
    comp = pd.read_csv(tmp_path / "out" / "comparison.csv")
    assert set(comp["status"]) == {"same"}
    assert len(comp) > 20


def test_planted_regression_is_flagged_and_exits_1(
    store_path: Path, run_dirs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # current: vae's FID 30 % worse, ae's SSIM 10 % better, beta-vae's KL 1 % worse (< 5 %)
    shift = {("vae", "fid"): 1.3, ("ae", "ssim"): 1.1, ("beta-vae", "kl"): 1.01}
    current = make_store(tmp_path / "current.sqlite", run_dirs, shift=shift)
    out = tmp_path / "out"
    code = main(["report", "--store", str(current), "--baseline", str(store_path),
                 "--out", str(out), "--no-figures"])  # fmt: skip
    assert code == 1
    assert "REGRESSION vae fid" in capsys.readouterr().out
    comp = pd.read_csv(out / "comparison.csv").set_index(["label", "metric"])
    flagged = comp[comp["status"] != "same"]["status"].to_dict()
    assert flagged == {("vae", "fid"): "regressed", ("ae", "ssim"): "improved"}
    assert comp.loc[("vae", "fid"), "p_value"] < 0.05
    md = (out / "report.md").read_text()
    assert "REGRESSION" in md and "1 regressed, 1 improved" in md


def test_baseline_may_be_a_suite_in_the_same_store(run_dirs, tmp_path: Path) -> None:
    path = make_store(tmp_path / "s.sqlite", run_dirs, suite="old")
    make_store(path, run_dirs, suite="new", shift={("beta-vae", "recall"): 0.7})
    result = build_report(path, tmp_path / "out", suite="new", baseline="old", figures=False)
    assert result.exit_code == 1
    assert list(result.comparison.regressions["metric"]) == ["recall"]


def test_welch_edge_cases() -> None:
    assert welch_p([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == pytest.approx(1.0)
    assert welch_p([1.0, 1.0], [2.0, 2.0]) == 0.0
    assert welch_p([1.0, 1.0], [1.0, 1.0]) == 1.0
    assert math.isnan(welch_p([1.0], [2.0, 3.0]))
    assert classify("fid", 10.0, 10.2, 0.001, 0.05, 0.05) == "same"  # significant, too small
    assert classify("fid", 10.0, 12.0, 0.2, 0.05, 0.05) == "same"  # big, not significant
    assert classify("fid", 10.0, 12.0, 0.01, 0.05, 0.05) == "regressed"
    assert classify("ssim", 0.5, 0.6, 0.01, 0.05, 0.05) == "improved"


def test_usage_errors_are_one_line(
    tmp_path: Path, store_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["report", "--store", str(tmp_path / "none.sqlite"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("aebench: error: no results store") and err.count("\n") == 1
    assert main(["report", "--store", str(store_path), "--suite", "nope",
                 "--out", str(tmp_path / "o"), "--no-figures"]) == 2  # fmt: skip


# -- checked as a person would: headless Chromium -------------------------------------------
_PROBE = """
<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const cells = Array.from(document.querySelectorAll("td, th"));
  const result = {
    images: images.length,
    broken: images.filter((i) => !(i.complete && i.naturalWidth > 0)).map((i) => i.alt),
    rows: document.querySelectorAll("#main-table tbody tr").length,
    nan: cells.filter((c) => /\\bnan\\b/i.test(c.textContent)).map((c) => c.textContent),
    tableRight: document.querySelector("#main-table table").getBoundingClientRect().right,
    samplerRight: document.querySelector("#sampler-table table").getBoundingClientRect().right,
    bold: Array.from(document.querySelectorAll("#main-table td.best"))
      .map((c) => getComputedStyle(c).fontWeight),
    width: document.documentElement.clientWidth,
  };
  const out = document.createElement("pre");
  out.id = "aebench-probe";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>
"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "headless Chromium is required for the report test but is not installed: "
        "apt-get install chromium (Debian; .ci/run does this)"
    )


def test_html_report_in_headless_chromium(report, tmp_path: Path) -> None:
    browser = _chromium()
    flags = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
    ]  # fmt: skip
    page = tmp_path / "probe.html"
    page.write_text((report.out / "report.html").read_text().replace("</body>", _PROBE + "</body>"))
    dom = subprocess.run(
        [*flags, "--window-size=1280,2400", "--virtual-time-budget=5000", "--dump-dom",
         page.as_uri()],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    found = re.search(r'<pre id="aebench-probe">(.*?)</pre>', dom.stdout, re.S)
    assert found, f"probe did not run; chromium stderr: {dom.stderr[-2000:]}"
    result = json.loads(html.unescape(found.group(1)))
    assert result["images"] == len(FIG_FILES)
    assert result["broken"] == []
    assert result["rows"] == len(MODELS)
    assert result["nan"] == []
    assert result["bold"] and all(int(w) >= 700 for w in result["bold"])  # best cells show bold
    assert result["width"] <= 1280 and result["tableRight"] <= result["width"]  # fits the page
    assert result["samplerRight"] <= result["width"]

    shot = tmp_path / "report.png"
    subprocess.run(
        [*flags, "--window-size=1280,2400", f"--screenshot={shot}",
         (report.out / "report.html").as_uri()],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000
    keep = REPO / "runs" / "test-artifacts"
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, keep / "report-screenshot.png")
