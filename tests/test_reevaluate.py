"""``aebench eval --store``: families a finished suite lacks, from saved weights (issue 14,
item 3): never retrains, never loses a row, resumes after a kill."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from aebench.cli import main
from aebench.metrics.family import FAMILIES
from aebench.store.database import Store
from aebench.store.schema import SCHEMA_VERSION
from tests.conftest import REPO, file_hashes, flat_layout, one_line_error, tiny_suite
from tests.test_readme import _python_blocks

SUITE = tiny_suite("two", ["ae", "vae"], [0], steps=4)


@pytest.fixture
def finished(tmp_path, domain_net):
    """A finished two-run suite: its store and artifacts folder."""
    suite, db = tmp_path / "two.toml", tmp_path / "s.sqlite"
    suite.write_text(SUITE)
    assert main(["run", str(suite), "--store", str(db), "--quiet"]) == 0
    return db


def _rows(db: Path, where: str = "") -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT run_id, phase, name, value FROM metrics {where} "
                            "ORDER BY run_id, phase, name").fetchall()  # fmt: skip


def test_a_new_family_reaches_finished_runs_without_retraining(finished, capsys):
    (block,) = [b for b in _python_blocks() if "@register_family" in b]
    weights = file_hashes(finished.parent / "artifacts")
    before = _rows(finished)
    try:
        exec(compile(block, "docs/extending.md", "exec"), {})
        assert main(["eval", "--store", str(finished)]) == 0
        assert "2 run(s) gained metrics" in capsys.readouterr().out
        after = _rows(finished)
        assert set(before) <= set(after)  # every earlier row, history included, unchanged
        added = [r for r in after if r not in before]
        assert [(r[1], r[2]) for r in added] == [("final", "recon_l1")] * 2
        assert all(0 < r[3] < 1 for r in added)
        assert file_hashes(finished.parent / "artifacts") == weights  # nothing retrained
        assert main(["eval", "--store", str(finished)]) == 0  # nothing left to do
        assert "0 run(s) gained metrics" in capsys.readouterr().out
        with sqlite3.connect(finished) as conn:  # where it was measured again is recorded
            where = conn.execute("SELECT family, environment FROM evaluations "
                                 "WHERE environment IS NOT NULL").fetchall()  # fmt: skip
        assert [family for family, _ in where] == ["recon-l1", "recon-l1"]
        env = json.loads(where[0][1])
        assert env["host"] == socket.gethostname() and env["device"] == "cpu"
        assert env["threads"] == torch.get_num_threads() and env["evaluated_at"][:2] == "20"
        out = finished.parent / "report"
        assert main(["report", "--store", str(finished), "--out", str(out), "--no-figures"]) == 0
        report = (out / "report.md").read_text()
        assert "Recon L1 ↓" in report
        (line,) = [ln for ln in report.splitlines() if "Re-evaluated" in ln]
        assert f"recon-l1 of 2 run(s) on {socket.gethostname()}, cpu" in line
    finally:
        FAMILIES.unregister("recon-l1")


@pytest.mark.slow  # eval processes killed and rerun (~11 s)
def test_a_kill_during_eval_store_then_a_rerun_completes(finished):
    """Drop one family's rows, re-evaluate them in a process killed once the first run's rows
    are committed, run again: every run ends with them exactly once, the same values."""
    keys = ("sharpness_samples", "sharpness_recon", "hf_energy_samples", "hf_energy_recon")
    where = f"WHERE name IN ({', '.join(repr(k) for k in keys)})"
    reference = _rows(finished, where)
    with sqlite3.connect(finished) as conn:
        conn.execute(f"DELETE FROM metrics {where}")
        conn.execute("DELETE FROM evaluations WHERE family = 'sharpness'")
    cmd = [sys.executable, "-m", "aebench", "eval", "--store", str(finished), "--only", "sharpness"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not _rows(finished, where):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    partial = _rows(finished, where)
    assert len(partial) in (0, 4, 8)  # whole runs only: one transaction per run
    again = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    final = _rows(finished, where)
    assert [r[:3] for r in final] == [r[:3] for r in reference]
    for ours, theirs in zip(final, reference, strict=True):
        assert ours[3] == pytest.approx(theirs[3], rel=1e-6)


def test_changed_metric_options_re_evaluate_only_the_families_that_read_them(
    finished, tmp_path, capsys
):
    """The same suite with another ``[metrics] n_samples`` names the same runs (metric options
    are not in the training hash): ``eval --store --suite FILE`` recomputes the families that
    read n_samples and leaves the others' rows exactly as they were."""
    with Store.open(finished, readonly=True) as store:
        (run, _), hashes = store.runs()[:2], {r["config_hash"] for r in store.runs()}
        before = store.evaluations(run["id"])
    edited = tmp_path / "edited.toml"
    edited.write_text(SUITE.replace("n_samples = 100", "n_samples = 120"))
    from aebench.experiments.suite import load_suite

    assert {c.config_hash for c in load_suite(edited).expand()} == hashes
    assert main(["run", str(edited), "--store", str(finished), "--quiet"]) == 0  # no retraining
    assert "aebench eval --store" in capsys.readouterr().err  # but a hint to re-evaluate
    recon = _rows(finished, "WHERE name = 'recon_mse' OR name = 'kl'")
    assert main(["eval", "--store", str(finished), "--suite", str(edited)]) == 0
    out = capsys.readouterr().out
    assert "evaluated generation, sharpness" in out and "2 run(s) gained" in out
    with Store.open(finished, readonly=True) as store:
        after = store.evaluations(run["id"])
    changed = {f for f in after if after[f] != before[f]}
    assert changed == {"generation", "sharpness"}
    assert '"n_samples": 120' in after["generation"]
    assert _rows(finished, "WHERE name = 'recon_mse' OR name = 'kl'") == recon
    assert main(["run", str(edited), "--store", str(finished), "--quiet"]) == 0
    assert "aebench eval --store" not in capsys.readouterr().err  # the store is up to date


def test_a_schema_1_store_is_migrated_to_training_hashes_and_recorded_evaluations(finished):
    """A store as aebench wrote it before schema 2 (hash version 1 folded the metric options
    into the run's hash; no evaluations table) is upgraded on first write-open: new hashes that
    the current suite recognises as done, and the options the runner used recorded per family."""
    import hashlib
    import json

    from aebench.experiments.suite import RunConfig, load_suite

    def v1_hash(cfg: RunConfig, metrics: dict) -> str:
        """What hash version 1 gave, written out as it was (git 2d53ddb^ bench/suite.py
        identity()): the overrides only, the metric options, no speed switches."""
        identity = {"v": 1, "model": cfg.model, "model_options": cfg.options,
                    "dataset": cfg.dataset, "arch": cfg.arch, "seed": cfg.train.seed,
                    "budget": cfg.train.budget.to_dict(), "batch_size": cfg.train.batch_size,
                    "latent_dim": cfg.latent_dim, "metrics": metrics,
                    "device": cfg.train.device}  # fmt: skip
        text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    with Store.open(finished, readonly=True) as store:
        expected = {r["id"]: store.evaluations(r["id"]) for r in store.runs()}
    with sqlite3.connect(finished) as conn:  # turn it into what schema 1 left on disk
        conn.execute("DROP TABLE evaluations")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
        for run_id, text in conn.execute("SELECT id, config FROM runs").fetchall():
            cfg = RunConfig.from_json(text)
            data = flat_layout(cfg)
            old = v1_hash(cfg, data["metrics"])
            data["config_hash"] = old
            conn.execute("UPDATE runs SET config_hash = ?, config = ? WHERE id = ?",
                         (old, json.dumps(data), run_id))  # fmt: skip
    with Store.open(finished) as store:
        assert store.schema_version == SCHEMA_VERSION  # through schemas 2, 3, 4 to the current
        assert {r["id"]: store.evaluations(r["id"]) for r in store.runs()} == expected
        suite = load_suite(Path(finished.parent / "two.toml"))
        assert store.done_hashes("two") == {c.config_hash for c in suite.expand()}
    assert (
        main(["run", str(finished.parent / "two.toml"), "--store", str(finished), "--quiet"]) == 0
    )  # fmt: skip  (all done: nothing retrains)


def test_a_family_whose_version_rose_is_measured_again_and_gains_its_new_key(finished, capsys):
    """The latent family gained iw_gain (version 2): a run stored under version 1 — no
    iw_gain row, its options key without the version — gets it from `eval --store`, with
    its other numbers as they were (the same seeds draw the same samples)."""
    with sqlite3.connect(finished) as conn:
        (run_id,) = conn.execute(
            "SELECT run_id FROM evaluations WHERE family = 'latent'"
        ).fetchone()
        (key,) = conn.execute("SELECT options FROM evaluations WHERE family = 'latent'").fetchone()
        old = json.loads(key)
        assert old.pop("version") == 2
        conn.execute("UPDATE evaluations SET options = ? WHERE family = 'latent'",
                     (json.dumps(old, sort_keys=True),))  # fmt: skip
        conn.execute("DELETE FROM metrics WHERE name = 'iw_gain'")
    conn.close()
    before = dict(_rows_of(finished, run_id))
    assert main(["eval", "--store", str(finished)]) == 0
    assert "1 run(s) gained metrics" in capsys.readouterr().out
    after = dict(_rows_of(finished, run_id))
    assert after["iw_gain"] > 0 and {k: after[k] for k in before} == before


def _rows_of(db: Path, run_id: int) -> list[tuple[str, float]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT name, value FROM metrics WHERE run_id = ? AND phase = "
                            "'final' AND name IN ('kl', 'elbo', 'nll_iw', 'iw_gain', "
                            "'active_units')", (run_id,)).fetchall()  # fmt: skip


def test_an_edited_schema_1_store_is_refused_and_left_as_it_was(finished, capsys):
    conn = sqlite3.connect(finished)
    with conn:
        conn.execute("DROP TABLE evaluations")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
        conn.execute("UPDATE runs SET config_hash = 'f00' WHERE id = 1")
    conn.close()  # the last connection folds the -wal into the file
    before = finished.read_bytes()
    line = one_line_error(capsys, ["eval", "--store", str(finished)])
    assert "cannot upgrade" in line and "edited" in line
    assert finished.read_bytes() == before


def test_an_unknown_family_or_a_bad_combination_is_one_line(finished, tmp_path, capsys):
    before = finished.read_bytes()
    line = one_line_error(capsys, ["eval", "--store", str(finished), "--only", "nope"])
    assert "nope" in line and "sharpness" in line
    one_line_error(capsys, ["eval"])
    one_line_error(capsys, ["eval", str(tmp_path), "--store", str(finished)])
    one_line_error(capsys, ["eval", str(tmp_path), "--only", "sharpness"])
    line = one_line_error(capsys, ["eval", "--store", str(finished), "--suite", "other"])
    assert "other" in line
    assert finished.read_bytes() == before


def _as_before_mmd_weight(data: dict) -> dict:
    """An info-vae run's config as aebench recorded it before 2026-12-06: the paper's λ as
    ``lam`` (the MMD weighed α + lam − 1) in its resolved options, hashed as it was then."""
    from aebench.config.run import RunConfig, freeze_options

    old = {k: v for k, v in data.items() if k != "config_hash"}
    resolved = dict(old["resolved_options"])
    resolved["lam"] = resolved.pop("mmd_weight") + 1.0 - resolved["alpha"]
    old["resolved_options"] = resolved
    then = dataclasses.replace(RunConfig.from_dict(data), resolved=freeze_options(resolved))
    old["config_hash"] = then.config_hash
    return old


def _old_info_vae_store(tmp_path: Path, status: str = "done") -> tuple[Path, Path, int, Path]:
    """A one-run info-vae store and run folder as aebench wrote them before ``lam`` (the
    paper's λ) became ``mmd_weight``: schema 9, the row's and config.json's options and hashes
    of then, the run's status ``status``. Returns the suite, store, run id and run folder."""
    suite, db = tmp_path / "info.toml", tmp_path / "s.sqlite"
    suite.write_text(tiny_suite("info", ["info-vae"], [0], steps=2))
    assert main(["run", str(suite), "--store", str(db), "--quiet"]) == 0
    with sqlite3.connect(db) as conn:
        (run_id, text, folder) = conn.execute("SELECT id, config, artifacts FROM runs").fetchone()
        old = _as_before_mmd_weight(json.loads(text))
        then = Path(folder).parent / f"{Path(folder).name[:-12]}{old['config_hash'][:12]}"
        (db.parent / folder).rename(db.parent / then)  # named by the hash of then
        folder = str(then)
        conn.execute("UPDATE runs SET config_hash = ?, config = ?, status = ?, artifacts = ? "
                     "WHERE id = ?", (old["config_hash"], json.dumps(old), status, folder,
                                      run_id))  # fmt: skip
        conn.execute("UPDATE meta SET value = '9' WHERE key = 'schema_version'")
        conn.execute("PRAGMA user_version = 9")
        conn.execute("DELETE FROM evaluations WHERE family = 'latent'")
    conn.close()
    config_json = (db.parent / folder) / "config.json"
    saved = json.loads(config_json.read_text())
    model_config = dict(saved["model_config"])
    model_config["lam"] = model_config.pop("mmd_weight") + 1.0
    config_json.write_text(json.dumps({**saved, **old, "model_config": model_config}))
    return suite, db, run_id, db.parent / folder


def test_an_info_vae_run_stored_with_the_papers_lambda_is_re_evaluated_not_retrained(
    tmp_path, domain_net, capsys
):
    """The store upgrades to schema 10, the suite finds the old run done, and ``eval --store``
    accepts its folder (config.json still says ``lam``) and rebuilds the model from it."""
    suite, db, _, folder = _old_info_vae_store(tmp_path)
    weights = file_hashes(folder)["model.safetensors"]
    capsys.readouterr()
    assert main(["run", str(suite), "--store", str(db)]) == 0  # upgrades the store first
    assert "already done" in capsys.readouterr().out
    with Store.open(db, readonly=True) as store:
        (row,) = store.runs()
    assert row["config"]["resolved_options"]["mmd_weight"] == 999.0
    assert main(["eval", "--store", str(db)]) == 0
    assert "1 run(s) gained metrics" in capsys.readouterr().out
    assert file_hashes(folder)["model.safetensors"] == weights  # not retrained


def test_an_old_info_vae_run_killed_while_evaluated_finishes_in_its_own_folder(
    tmp_path, domain_net
):
    """Killed while it was evaluated, before the upgrade: the upgrade gives the run a new
    hash, and the run folder is named by the old one. ``aebench run`` evaluates the run in the
    folder the store recorded instead of training it again in a new one."""
    suite, db, _, folder = _old_info_vae_store(tmp_path, status="interrupted")
    weights = file_hashes(folder)["model.safetensors"]
    assert main(["run", str(suite), "--store", str(db), "--quiet"]) == 0
    with Store.open(db, readonly=True) as store:
        (row,) = store.runs()
    assert row["status"] == "done" and Path(row["artifacts"]) == folder
    assert file_hashes(folder)["model.safetensors"] == weights  # evaluated, not retrained
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no second folder
