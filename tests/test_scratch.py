"""Scratch folders of Ray tasks killed with their worker are swept by the next task on the node."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from aebench.experiments.scratch import PREFIX, make_run_scratch, sweep_dead_scratch


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_only_folders_of_dead_processes_are_swept(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    own = make_run_scratch()
    assert own.parent == tmp_path and own.name.startswith(f"{PREFIX}{os.getpid()}-")
    dead = tmp_path / f"{PREFIX}{_dead_pid()}-abc"
    (dead / "run").mkdir(parents=True)
    (dead / "run" / "checkpoint.safetensors").write_bytes(b"x" * 10)
    old_style = tmp_path / f"{PREFIX}xyz"  # no PID in its name: not ours to judge
    old_style.mkdir()
    stray_file = tmp_path / f"{PREFIX}1-file"
    stray_file.write_text("not a folder")

    assert sweep_dead_scratch() == [dead]
    assert not dead.exists()
    assert own.is_dir() and old_style.is_dir() and stray_file.is_file()
    assert sweep_dead_scratch(tmp_path) == []  # nothing more to sweep
