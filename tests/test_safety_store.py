"""The results store under hostile input (issue 13, items 2, 6 and 13): never overwritten by an
export, readable on read-only media, and text where a metric value belongs read as missing."""

from __future__ import annotations

import os
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from aebench.experiments.suite import load_suite
from aebench.store.database import Store
from tests.conftest import REPO, file_hashes, one_line_error


def _fill(path: Path) -> None:
    configs = load_suite("smoke").expand()[:2]
    with Store.open(path) as store, store.lock():
        for i, cfg in enumerate(configs):
            run_id = store.mark_running(cfg, {"device": "cpu", "threads": 2})
            history = [{"epoch": 1, "step": 10, "train_loss": 2.0 + i}]
            store.finish(run_id, "done", {"recon_mse": 0.1 * (i + 1), "fid": 3.0}, history)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "runs" / "aebench.sqlite"
    _fill(path)
    return path


@pytest.mark.parametrize("target", ["itself", "wal", "shm", "symlink", "hardlink", "relative"])
def test_export_onto_the_store_is_refused_and_the_store_is_untouched(
    store: Path, tmp_path: Path, capsys, monkeypatch, target: str
) -> None:
    out = {
        "itself": store,
        "wal": Path(f"{store}-wal"),
        "shm": Path(f"{store}-shm"),
        "symlink": tmp_path / "link.csv",
        "hardlink": tmp_path / "hard.csv",
        "relative": Path("runs") / ".." / "runs" / store.name,
    }[target]
    if target == "symlink":
        out.symlink_to(store)
    if target == "hardlink":
        os.link(store, out)
    monkeypatch.chdir(tmp_path)
    before = file_hashes(store.parent)
    line = one_line_error(capsys, ["export", "--store", str(store), "--out", str(out),
                                   "--format", "csv"])  # fmt: skip
    assert "refusing to overwrite" in line
    assert file_hashes(store.parent) == before  # refused before the store was even opened
    with Store.open(store, create=False, readonly=True) as again:
        assert again.count() == 2


def test_export_into_the_stores_run_folders_is_refused(store: Path, capsys) -> None:
    """--out over a run's weights wrote CSV there; the next eval --store then skipped the run
    ("is not the weights this run wrote"). Any path under artifacts/ is refused."""
    weights = store.parent / "artifacts" / "s" / "run-abc" / "model.safetensors"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"weights")
    for out in (weights, weights.parent / "new.csv"):
        line = one_line_error(capsys, ["export", "--store", str(store), "--out", str(out),
                                       "--format", "csv"])  # fmt: skip
        assert "inside the results store's run folders" in line
    assert weights.read_bytes() == b"weights" and not (weights.parent / "new.csv").exists()


def test_export_elsewhere_still_works(store: Path, tmp_path: Path) -> None:
    from aebench.cli import main

    out = tmp_path / "metrics.csv"
    assert main(["export", "--store", str(store), "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) == 8  # 2 runs x (2 final metrics + epoch-1 step, train_loss)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_text_in_metric_values_is_read_as_missing_with_a_warning(
    store: Path, tmp_path: Path, capsys
) -> None:
    from aebench.cli import main

    conn = sqlite3.connect(store)
    conn.execute("UPDATE metrics SET value = 'lots' WHERE name = 'fid' AND run_id = 1")
    conn.commit()
    conn.close()
    before = store.read_bytes()
    out = tmp_path / "m.csv"
    assert main(["export", "--store", str(store), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "1 metric value(s) in the store are not numbers" in err
    frame = pd.read_csv(out)
    fid = frame[(frame.metric == "fid")].sort_values("run_id").value.tolist()
    assert pd.isna(fid[0]) and fid[1] == 3.0
    report = tmp_path / "report"
    code = main(["report", "--store", str(store), "--out", str(report), "--no-figures"])
    assert code == 0
    assert "not numbers" in capsys.readouterr().err
    assert (report / "report.md").is_file()
    with Store.open(store, create=False, readonly=True) as handle:
        assert handle.metrics(1)["recon_mse"] == pytest.approx(0.1)
    assert store.read_bytes() == before  # readers never write (SQLite may add -wal/-shm)


def _on_read_only_media(
    tmp_path: Path, files: list[Path], commands: list[list[str]]
) -> list[tuple[int, str]]:
    """Copy ``files`` (a store and any side files) to a tmpfs remounted read-only in a private
    mount namespace (``unshare -rm``: no root needed, nothing stays mounted); run each
    ``aebench`` command there, STORE standing for the copied store; return (exit code, stderr)
    of each."""
    mnt = tmp_path / "ro"
    mnt.mkdir()
    copied = " ".join(shlex.quote(str(p)) for p in files)
    lines = [f"mount -t tmpfs tmpfs {mnt} && cp {copied} {mnt}/ && mount -o remount,ro {mnt} "
             "|| exit 99"]  # fmt: skip
    for i, args in enumerate(commands):
        args = [a.replace("STORE", str(mnt / files[0].name)) for a in args]
        cmd = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "aebench", *args])
        lines.append(f"PYTHONPATH={shlex.quote(str(REPO))} {cmd} >/dev/null 2>{tmp_path}/err{i}")
        lines.append(f"echo $? > {tmp_path}/rc{i}")
    shell = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "\n".join(lines)], capture_output=True, text=True
    )
    assert shell.returncode == 0, f"could not mount a read-only tmpfs: {shell.stderr.strip()}"
    return [
        (int((tmp_path / f"rc{i}").read_text()), (tmp_path / f"err{i}").read_text())
        for i in range(len(commands))
    ]


def test_a_store_on_read_only_media_can_be_listed_exported_and_reported(
    store: Path, tmp_path: Path
) -> None:
    """A cleanly closed WAL store: no -wal, and ``mode=ro`` could not create the -shm there."""
    assert not Path(f"{store}-wal").exists()
    results = _on_read_only_media(
        tmp_path,
        [store],
        [
            ["runs", "--store", "STORE"],
            ["export", "--store", "STORE", "--out", str(tmp_path / "m.csv")],
            ["report", "--store", "STORE", "--out", str(tmp_path / "rep"), "--no-figures"],
        ],
    )
    assert [code for code, _ in results] == [0, 0, 0], results
    assert len(pd.read_csv(tmp_path / "m.csv")) == 8
    assert (tmp_path / "rep" / "report.md").is_file()


def _pending_wal(store: Path) -> sqlite3.Connection:
    """Commit a change that stays in the -wal (the returned connection keeps it there)."""
    keeper = sqlite3.connect(store)
    keeper.execute("PRAGMA wal_autocheckpoint = 0")
    keeper.execute("UPDATE metrics SET value = 9 WHERE name = 'fid'")
    keeper.commit()
    assert Path(f"{store}-wal").stat().st_size > 0
    return keeper


def test_a_read_only_store_with_its_wal_reads_the_committed_rows(store: Path, tmp_path: Path):
    keeper = _pending_wal(store)
    files = [store, Path(f"{store}-wal"), Path(f"{store}-shm")]
    out = tmp_path / "m.csv"
    results = _on_read_only_media(tmp_path, files, [["export", "--store", "STORE", "--out",
                                                     str(out)]])  # fmt: skip
    keeper.close()
    assert results[0][0] == 0, results
    frame = pd.read_csv(out)
    assert set(frame[frame.metric == "fid"].value) == {9.0}  # the rows still in the -wal


def test_a_read_only_store_whose_wal_cannot_be_used_is_refused_in_one_line(
    store: Path, tmp_path: Path
) -> None:
    """A -wal without its -shm on read-only media: reading the main file alone would miss
    committed rows, so one line and exit 2, never a silently short answer or a traceback."""
    keeper = _pending_wal(store)
    results = _on_read_only_media(
        tmp_path, [store, Path(f"{store}-wal")], [["runs", "--store", "STORE"]]
    )
    keeper.close()
    code, err = results[0]
    assert code == 2, results
    assert len(err.strip().splitlines()) == 1 and "-wal" in err and "Traceback" not in err
