"""``aebench eval --store`` on stores whose run folders were swapped, damaged or copied, with
changed metric options and with suite files that fail validation: each run is checked before it
is read, a skipped run never stops the others, and nothing is written where nothing may be."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from aebench.cli import main
from tests.conftest import file_hashes, one_line_error, run_cli, tiny_suite

SUITE = tiny_suite("hard", ["ae"], [0, 1], steps=4)
AE0, AE1, VAE0 = "ae-mnist-5k-mlp-s0", "ae-mnist-5k-mlp-s1", "vae-mnist-5k-mlp-s0"


@pytest.fixture(scope="module")
def base(tmp_path_factory, domain_net) -> Path:
    """A finished three-run suite (an AE of seeds 0 and 1, a VAE of seed 0: two suite files of
    one name) in ``runs/``, as a project has it: ``runs/aebench.sqlite`` and ``runs/artifacts/``.
    Tests work on copies of it."""
    root = tmp_path_factory.mktemp("base")
    (root / "ae.toml").write_text(SUITE)
    (root / "vae.toml").write_text(tiny_suite("hard", ["vae"], [0], steps=4))
    db = root / "runs" / "aebench.sqlite"
    for suite in ("ae.toml", "vae.toml"):
        assert main(["run", str(root / suite), "--store", str(db), "--quiet"]) == 0
    return root / "runs"


@pytest.fixture
def store(base, tmp_path) -> Path:
    """A copy of the base store folder; returns its store file."""
    shutil.copytree(base, tmp_path / "runs")
    return tmp_path / "runs" / "aebench.sqlite"


def _rows(db: Path) -> dict[str, dict]:
    """The runs as stored, by name (raw columns: the artifacts path as recorded)."""
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return {r["run_name"]: dict(r) for r in conn.execute("SELECT * FROM runs")}
    finally:
        conn.close()


def _query(db: Path, sql: str, run: str) -> list[tuple]:
    """The rows of ``sql`` (joined to the runs table as ``r``) for the run named ``run``."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql + " JOIN runs r ON r.id = run_id WHERE r.run_name = ?",
                            (run,)).fetchall()  # fmt: skip
    finally:
        conn.close()


def _evaluations(db: Path, run: str) -> dict[str, dict]:
    rows = _query(db, "SELECT family, options FROM evaluations", run)
    return {family: json.loads(options) for family, options in rows}


def _metrics(db: Path, run: str) -> dict[tuple[str, str], float]:
    rows = _query(db, "SELECT phase, name, value FROM metrics", run)
    return {(phase, name): value for phase, name, value in rows}


def _folder(db: Path, run: str) -> Path:
    return db.parent / _rows(db)[run]["artifacts"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot(db: Path) -> tuple[str, dict[str, str]]:
    """sha256 of the store file and of every file under its ``artifacts/``."""
    return _sha(db), file_hashes(db.parent / "artifacts")


def _skipped(stderr: str) -> dict[str, str]:
    """The per-run lines on stderr, by run name; every line of stderr must be one of them."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    out = {}
    for line in lines:
        assert line.startswith("aebench: ") and ": skipped: " in line, stderr
        run, reason = line.removeprefix("aebench: ").split(": skipped: ", 1)
        out[run] = reason
    return out


def _swap(a: Path, b: Path) -> None:
    tmp = a.with_name(a.name + ".swap")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)


# -- a folder that is not its run's own ----------------------------------------------------------
def test_the_runner_records_the_weights_checksum_and_a_store_relative_folder(store):
    for name, row in _rows(store).items():
        assert not Path(row["artifacts"]).is_absolute(), row["artifacts"]
        assert Path(row["artifacts"]).parts[:2] == ("artifacts", "hard"), row["artifacts"]
        assert row["weights_sha256"] == _sha(_folder(store, name) / "model.safetensors")


def test_swapped_ae_and_vae_folders_are_both_refused_and_nothing_is_written(store):
    """The AE row must not gain KL/ELBO/NLL measured on the VAE's weights (nor the reverse)."""
    _swap(_folder(store, AE0), _folder(store, VAE0))
    before = _snapshot(store)
    out = run_cli("eval", "--store", str(store), "--only", "latent")
    assert out.returncode == 1, out.stderr
    skipped = _skipped(out.stderr)
    assert set(skipped) == {AE0, VAE0}
    assert "holds a 'vae' run, not this 'ae' run" in skipped[AE0]
    assert "holds a 'ae' run, not this 'vae' run" in skipped[VAE0]
    assert "0 run(s) gained metrics" in out.stdout and "2 run(s) skipped" in out.stdout
    assert _snapshot(store) == before
    assert "kl" not in {name for _, name in _metrics(store, AE0)}


def test_weights_swapped_between_two_runs_of_one_model_are_refused_by_their_checksum(store):
    """Same model, same architecture: the weights load fine, only the checksum tells."""
    a, b = _folder(store, AE0) / "model.safetensors", _folder(store, AE1) / "model.safetensors"
    _swap(a, b)
    before = _snapshot(store)
    out = run_cli("eval", "--store", str(store), "--only", "reconstruction")
    assert out.returncode == 1, out.stderr
    skipped = _skipped(out.stderr)
    assert set(skipped) == {AE0, AE1}
    assert all("is not the weights this run wrote" in why for why in skipped.values())
    assert _snapshot(store) == before  # nothing to evaluate for the others: nothing written


# -- damaged or missing artifacts ----------------------------------------------------------------
def test_a_damaged_run_is_skipped_the_good_ones_re_evaluated_then_exit_1(store):
    weights = _folder(store, AE1) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated
    damaged = (_metrics(store, AE1), _evaluations(store, AE1), _rows(store)[AE1])
    files = file_hashes(store.parent / "artifacts")
    out = run_cli("eval", "--store", str(store), "--only", "reconstruction", "-m", "batch_size=250")
    assert out.returncode == 1, out.stderr
    skipped = _skipped(out.stderr)
    assert list(skipped) == [AE1] and "is not the weights this run wrote" in skipped[AE1]
    assert f"{AE0}: evaluated reconstruction\n" in out.stdout
    assert f"{VAE0}: evaluated reconstruction\n" in out.stdout
    assert "2 run(s) gained metrics" in out.stdout and "1 run(s) skipped" in out.stdout
    for run in (AE0, VAE0):
        assert _evaluations(store, run)["reconstruction"]["batch_size"] == 250
        config = json.loads(_rows(store)[run]["config"])
        # batch_size also changes latent, generation and sharpness, not measured with it: the
        # stored config keeps the options the run's other numbers were measured with
        assert config["metrics"]["batch_size"] == 500
    assert (_metrics(store, AE1), _evaluations(store, AE1), _rows(store)[AE1]) == damaged
    assert file_hashes(store.parent / "artifacts") == files


def test_a_store_without_checksums_is_checked_by_config_and_says_so(store):
    """Runs stored before checksums were recorded: config checked, the line says the weights
    were not; a missing folder or an unreadable config.json is skipped like any damage."""
    with sqlite3.connect(store) as conn:
        conn.execute("UPDATE runs SET weights_sha256 = NULL")
    conn.close()
    shutil.rmtree(_folder(store, AE1))
    (_folder(store, VAE0) / "config.json").write_text("{not json")
    before = {run: (_metrics(store, run), _evaluations(store, run)) for run in (AE1, VAE0)}
    out = run_cli("eval", "--store", str(store), "--only", "reconstruction", "-m", "batch_size=250")
    assert out.returncode == 1, out.stderr
    skipped = _skipped(out.stderr)
    assert list(skipped) == [AE1, VAE0]
    assert "artifacts folder" in skipped[AE1] and "is missing" in skipped[AE1]
    assert "config.json: not valid JSON" in skipped[VAE0]
    assert f"{AE0}: evaluated reconstruction (weights unverified:" in out.stdout
    assert "1 run(s) gained metrics" in out.stdout and "2 run(s) skipped" in out.stdout
    assert {run: (_metrics(store, run), _evaluations(store, run)) for run in before} == before


# -- artifacts are the store's own, whatever the current directory ---------------------------
def _halve_weights(path: Path) -> None:
    state = load_file(str(path))
    save_file({k: v * 0.5 if v.is_floating_point() else v for k, v in state.items()}, str(path))


def test_a_store_copy_is_evaluated_with_its_own_weights_from_another_projects_folder(
    base, tmp_path, monkeypatch
):
    """Two copies of a store made with the default ``runs/`` path; in project P, ``eval
    --store ../Q/runs/aebench.sqlite`` must measure Q's weights, not P's ``runs/artifacts``,
    also when Q's rows hold the cwd-relative paths older aebench wrote."""
    from aebench.report import collect

    p, q = tmp_path / "P", tmp_path / "Q"
    shutil.copytree(base, p / "runs")
    shutil.copytree(base, q / "runs")
    q_db = q / "runs" / "aebench.sqlite"
    folders = {run: row["artifacts"] for run, row in _rows(q_db).items()}
    # P's VAE weights are other weights under the same name (P's own store does not matter)
    _halve_weights(p / "runs" / folders[VAE0] / "model.safetensors")
    with sqlite3.connect(q_db) as conn:  # what the runner wrote before: runs/artifacts/...
        conn.execute("UPDATE runs SET artifacts = 'runs/' || artifacts")
    conn.close()
    kl = _metrics(q_db, VAE0)[("final", "kl")]
    p_before = _snapshot(p / "runs" / "aebench.sqlite")
    out = run_cli(
        "eval", "--store", "../Q/runs/aebench.sqlite", "--only", "latent", "--iw-k", "5", cwd=p
    )
    assert out.returncode == 0, out.stderr
    assert "1 run(s) gained metrics" in out.stdout
    assert _evaluations(q_db, VAE0)["latent"]["iw_k"] == 5
    assert _metrics(q_db, VAE0)[("final", "kl")] == pytest.approx(kl, rel=1e-5)  # Q's weights
    assert _snapshot(p / "runs" / "aebench.sqlite") == p_before
    monkeypatch.chdir(p)  # a report's figures look their models up the same way
    data = collect.load(Path("../Q/runs/aebench.sqlite"))
    assert len(data.runs) == 3
    for folder in data.runs["artifacts"]:
        assert Path(folder).resolve().parent.parent.parent == (q / "runs").resolve(), folder


# -- the options eval --store honours, and the one it refuses ---------------------------------
def _stored_metrics(db: Path, run: str) -> tuple[int, int, int]:
    metrics = json.loads(_rows(db)[run]["config"])["metrics"]
    return metrics["iw_k"], metrics["n_samples"], metrics["batch_size"]


def test_metric_options_and_skip_are_honoured_and_seed_is_refused(store, capsys):
    recon = {run: _evaluations(store, run)["reconstruction"] for run in (AE0, VAE0)}
    generation = {run: _evaluations(store, run)["generation"] for run in (AE0, VAE0)}
    args = ["--iw-k", "5", "--n-samples", "120", "-m", "batch_size=250"]
    skips = ["--skip", "reconstruction", "--skip", "generation", "--skip", "speed"]
    out = run_cli("eval", "--store", str(store), *args, *skips)
    assert out.returncode == 0, out.stderr
    for run in (AE0, AE1):
        assert f"{run}: evaluated sharpness\n" in out.stdout
    assert f"{VAE0}: evaluated latent, sharpness\n" in out.stdout
    latent, sharpness = _evaluations(store, VAE0)["latent"], _evaluations(store, VAE0)["sharpness"]
    assert (latent["iw_k"], latent["batch_size"]) == (5, 250)
    assert (sharpness["n_samples"], sharpness["batch_size"]) == (120, 250)
    for run in (AE0, VAE0):  # skipped families keep what they had, though their options changed
        assert _evaluations(store, run)["reconstruction"] == recon[run]
        assert _evaluations(store, run)["generation"] == generation[run]
        # ... so the stored config does not claim the new options yet
        assert _stored_metrics(store, run) == (4, 100, 500)
    # the families left out, with the same options: now every changed family was measured
    # with them, the config records them, and a plain eval --store has nothing left to do
    rest = ["--only", "reconstruction", "--only", "generation"]
    out = run_cli("eval", "--store", str(store), *args, *rest)
    assert out.returncode == 0, out.stderr
    assert f"{VAE0}: evaluated reconstruction, generation\n" in out.stdout
    for run in (AE0, AE1, VAE0):
        assert _stored_metrics(store, run) == (5, 120, 250), run
    again = run_cli("eval", "--store", str(store))
    assert again.returncode == 0 and "0 run(s) gained metrics" in again.stdout, again.stdout
    before = _snapshot(store)
    for bad, says in ((["--seed", "3"], "--seed goes with RUN_DIR"),
                      (["-m", "nope=1"], "unknown metric option 'nope'"),
                      (["-m", "iw_k=many"], "iw_k must be an integer"),
                      (["--n-samples", "0"], "n_samples must be a positive integer")):  # fmt: skip
        assert says in one_line_error(capsys, ["eval", "--store", str(store), *bad])
    assert _snapshot(store) == before


def test_options_are_checked_against_each_runs_own(store):
    """``--n-samples 8`` is too few for the default k_nearest = 5 but enough for runs measured
    with k_nearest = 2: it is refused for the former, naming the run, before anything is
    written, and accepted for the latter."""
    before = _snapshot(store)
    out = run_cli("eval", "--store", str(store), "--n-samples", "8", "--only", "reconstruction")
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "n_samples" in out.stderr and f"(run {AE0})" in out.stderr
    assert _snapshot(store) == before
    with sqlite3.connect(store) as conn:
        for run_id, text in conn.execute("SELECT id, config FROM runs").fetchall():
            config = json.loads(text)
            config["metrics"]["k_nearest"] = 2
            conn.execute("UPDATE runs SET config = ? WHERE id = ?", (json.dumps(config), run_id))
    conn.close()
    out = run_cli("eval", "--store", str(store), "--n-samples", "8", "--only", "reconstruction")
    assert out.returncode == 0, out.stderr  # n_samples does not change reconstruction's key
    assert "0 run(s) gained metrics" in out.stdout


def test_inception_weights_do_not_re_measure_runs_of_another_backbone(store, tmp_path):
    """The domain backbone never reads the Inception weights file: naming one changes no
    number, so it neither re-measures those runs nor changes their options key."""
    from aebench.metrics.family import FAMILIES, family_names
    from aebench.metrics.options import MetricOptions

    family_names()  # registers the built-in families
    generation = FAMILIES.get("generation")
    weights = str(tmp_path / "pt_inception.pth")
    plain = MetricOptions(seed=0)
    assert generation.options_key(plain) == generation.options_key(
        MetricOptions(seed=0, inception_weights=weights)
    )
    inception = MetricOptions(seed=0, backbone="inception")
    named = MetricOptions(seed=0, backbone="inception", inception_weights=weights)
    assert generation.options_key(inception) != generation.options_key(named)
    before = _snapshot(store)
    out = run_cli("eval", "--store", str(store), "--inception-weights", weights)
    assert out.returncode == 0, out.stderr
    assert "0 run(s) gained metrics" in out.stdout
    assert _snapshot(store) == before


# -- a suite file that fails validation --------------------------------------------------------
def test_a_suite_file_that_fails_validation_shows_its_own_error(store, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(SUITE.replace('models = ["ae"]', 'models = ["ae", "nosuchmodel"]'))
    before = _snapshot(store)
    line = one_line_error(capsys, ["eval", "--store", str(store), "--suite", str(bad)])
    assert str(bad) in line and "nosuchmodel" in line and "no finished runs" not in line
    line = one_line_error(capsys, ["eval", "--store", str(store), "--suite", "absent.toml"])
    assert "absent.toml: suite file not found" in line
    line = one_line_error(capsys, ["eval", "--store", str(store), "--suite", "nosuch"])
    assert "no finished runs in suite 'nosuch'" in line  # a name: the store's
    assert _snapshot(store) == before


def test_a_second_family_after_one_only_is_named_in_the_error(tmp_path, capsys):
    """`--only latent sharpness` reads `sharpness` as RUN_DIR: the line says so and how to
    give two families, and nothing is written."""
    store = tmp_path / "s.sqlite"
    line = one_line_error(capsys, ["eval", "--store", str(store), "--only", "latent", "sharpness"])
    assert "'sharpness'" in line and "--only latent --only sharpness" in line
    assert not store.exists()
    assert "either RUN_DIR or --store" in one_line_error(capsys, ["eval"])
    both = one_line_error(capsys, ["eval", str(tmp_path / "run"), "--store", str(store)])
    assert "not both" in both and "--only" not in both and not store.exists()
