"""A full disk while writing: one line, exit 2, and nothing written before is damaged.

The training test uses a real, tiny tmpfs mounted in a private mount namespace (``unshare -rm``,
so it needs no root on the host and leaves nothing mounted); the store test makes SQLite itself
run out of pages (``PRAGMA max_page_count``), which is exactly the SQLITE_FULL a full disk gives.
"""

from __future__ import annotations

import json
import sqlite3

import pytest
from safetensors.torch import load_file

from aebench.core.atomic import FILE_MODE
from aebench.core.errors import UsageError
from aebench.experiments.suite import load_suite
from aebench.store.database import Store
from aebench.training.checkpoint import load_checkpoint
from tests.conftest import bench_on_tmpfs, run_cli

ARGS = [
    "train", "vae", "--arch", "mlp", "--epochs", "4", "--seed", "3", "--latent-dim", "4",
    "--batch-size", "64", "--quiet", "--no-eval",
]  # fmt: skip


@pytest.mark.slow  # three training processes, one on a tmpfs filled to the brim (~15 s)
def test_checkpoint_write_on_a_full_disk_fails_in_one_line_and_keeps_the_last_one(tmp_path):
    ref = tmp_path / "ref"
    assert run_cli(*ARGS, "--out", str(ref)).returncode == 0, "reference run failed"
    weights = (ref / "model.safetensors").stat().st_size
    # atomic writes give finished files the usual umask mode, not mkstemp's private 0600
    assert (ref / "model.safetensors").stat().st_mode & 0o777 == FILE_MODE
    # A checkpoint holds the weights plus Adam's two moment buffers (~3x the weights). Room for
    # one checkpoint but not for a second beside it (atomic writes need both for a moment): the
    # epoch-2 checkpoint write runs out of space.
    size_kb = int(4.5 * weights / 1024)
    mnt, after = tmp_path / "mnt", tmp_path / "after"
    args = [*ARGS, "--out", f"{mnt}/run"]
    code, stderr = bench_on_tmpfs(mnt, size_kb, args, after=f"cp -a {mnt}/run {after}")

    assert code == 2
    assert len(stderr.splitlines()) == 1 and "Traceback" not in stderr, stderr
    assert "No space left on device" in stderr and "checkpoint" in stderr
    assert not [p.name for p in after.iterdir() if p.name.endswith(".tmp")]
    _, meta = load_checkpoint(after / "checkpoint.safetensors")  # intact and loadable
    assert meta["epochs_done"] == 1 and len(meta["history"]) == 1

    # With space again, the run resumes from that checkpoint and ends exactly where an
    # uninterrupted run ends: the failed write cost nothing.
    result = run_cli(*ARGS, "--out", str(after), "--resume")
    assert result.returncode == 0, result.stderr
    a, b = load_file(str(ref / "model.safetensors")), load_file(str(after / "model.safetensors"))
    assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)
    # epoch 1 came from the checkpoint, not a retraining: its record, wall time included
    assert json.loads((after / "history.json").read_text())[0] == meta["history"][0]


def test_store_write_on_a_full_disk_is_refused_in_one_line_and_keeps_earlier_rows(tmp_path):
    path = tmp_path / "aebench.sqlite"
    first, second = load_suite("smoke").expand()[:2]
    with Store.open(path) as store, store.lock():
        run1 = store.mark_running(first, {"device": "cpu", "threads": 2})
        store.finish(run1, "done", {"recon_mse": 0.25, "fid": 3.5})
        run2 = store.mark_running(second, {"device": "cpu", "threads": 2})
        before = store.metrics(run1)
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        store._conn.execute(f"PRAGMA max_page_count = {pages}")  # the disk is now full
        history = [{"epoch": e, **{f"term_{i}": float(i) for i in range(50)}} for e in range(500)]
        with pytest.raises(UsageError, match="full") as err:
            store.finish(run2, "done", {"recon_mse": 0.5}, history)
        assert "\n" not in str(err.value)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with Store.open(path, create=False, readonly=True) as store:
        assert store.metrics(run1) == before == {"recon_mse": 0.25, "fid": 3.5}
        assert store.metrics(run2) == {}  # the failed transaction left no partial rows
        statuses = {r["id"]: r["status"] for r in store.runs()}
    assert statuses == {run1: "done", run2: "running"}  # recovered as stale on the next run
