"""A run's identity (issue 25): its hash covers every model option with its value, defaults
included, so changing a registered default never changes what a stored run means; stores and
run folders from before are migrated or still read."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from aebench import models
from aebench.config.run import RunConfig
from aebench.core.errors import UsageError
from aebench.models.ae.model import AE
from aebench.store.database import Store
from tests.test_store import fill


@pytest.fixture
def drift() -> Iterator[None]:
    """A model name whose registered default (``width``) the test changes."""
    models.register("drift", width=32)(AE)
    yield
    models.unregister("drift")


def _redefault(width: int) -> None:
    models.unregister("drift")
    models.register("drift", width=width)(AE)


def test_a_changed_default_changes_the_hash_but_not_a_stored_runs(drift, tmp_path: Path):
    before = RunConfig(model="drift", suite="s")
    stored, trained = before.to_dict(), before.config_hash
    assert stored["resolved_options"]["width"] == 32  # written out with the run
    db = tmp_path / "s.sqlite"
    fill(db, [before], 1)
    _redefault(16)
    after = RunConfig(model="drift", suite="s")
    assert after.config_hash != trained  # a new default is another run
    back = RunConfig.from_dict(stored)  # the stored run keeps what it trained with
    assert back.config_hash == trained and back.resolved_options["width"] == 32
    with Store.open(db) as store:
        done = store.done_hashes("s")
    assert trained in done and after.config_hash not in done  # so it trains again


def test_writing_a_default_out_does_not_change_the_hash() -> None:
    plain = RunConfig(model="vae")
    assert RunConfig(model="vae", model_options={"beta": 1.0}).config_hash == plain.config_hash
    assert RunConfig(model="vae", model_options={"beta": 2.0}).config_hash != plain.config_hash
    assert RunConfig(model="beta-vae").resolved_options["beta"] == 2.0  # registered default


def _version_2(cfg: RunConfig) -> dict:
    """``cfg`` as a run folder or store recorded it before identity version 3."""
    data = cfg.to_dict()
    data.pop("resolved_options")
    data["config_hash"] = cfg.hash_at(2)
    return data


def test_a_run_folders_old_config_still_reads_and_an_edited_one_does_not() -> None:
    cfg = RunConfig(model="vae", suite="s", model_options={"beta": 3.0})
    old = _version_2(cfg)
    assert RunConfig.from_dict(old).config_hash == cfg.config_hash
    edited = {**old, "latent_dim": 17}
    with pytest.raises(UsageError, match="does not match"):
        RunConfig.from_dict(edited)


def _schema_4_store(db: Path, cfgs: list[RunConfig]) -> None:
    fill(db, cfgs, len(cfgs))
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
        for run_id, text in conn.execute("SELECT id, config FROM runs").fetchall():
            data = _version_2(RunConfig.from_dict(json.loads(text)))
            conn.execute(
                "UPDATE runs SET config_hash = ?, config = ? WHERE id = ?",
                (data["config_hash"], json.dumps(data), run_id),
            )
    conn.close()


def test_a_schema_4_store_is_migrated_to_resolved_options(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    cfgs = [RunConfig(model="vae", suite="s"), RunConfig(model="ae", suite="s")]
    _schema_4_store(db, cfgs)
    with Store.open(db) as store:
        done = store.done_hashes("s")
        rows = store.runs(suite="s")
    assert {c.config_hash for c in cfgs} == done
    for row in rows:
        assert "resolved_options" in row["config"]
        assert RunConfig.from_dict(row["config"]).config_hash == row["config_hash"]


def test_a_store_with_a_model_not_registered_here_is_refused_in_one_line(
    drift, tmp_path: Path
) -> None:
    db = tmp_path / "s.sqlite"
    _schema_4_store(db, [RunConfig(model="drift", suite="s"), RunConfig(model="vae", suite="s")])
    models.unregister("drift")
    before = db.read_bytes()
    try:
        with pytest.raises(UsageError, match="model 'drift' is not registered here") as err:
            Store.open(db)
        assert "\n" not in str(err.value) and "--plugin" in str(err.value)
        assert db.read_bytes() == before  # still schema 4, byte for byte
    finally:
        models.register("drift", width=32)(AE)
