"""``aebench report`` under a full disk, a kill, hostile text, a long reference table, runs
measured differently and hand-edited store values: the previous report survives whole or the
new one is complete, every output format escapes what it shows, and a user mistake is one line.

The stores are built with the real Store API (the runs' artifacts do not exist, so the image
figures are placeholders); hand edits go through sqlite3 as a user's would.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from aebench.experiments.claims import HOLDS, UNTESTABLE, Claim
from aebench.experiments.published import PublishedValue, match
from aebench.report import build_report
from aebench.report.agreement import load_reference
from aebench.report.outdir import recover
from aebench.store.database import Store
from tests.conftest import REPO, bench_on_tmpfs, file_hashes, one_line_error
from tests.test_report import MODELS, _metrics, _suite, make_store

TEXT_FILES = ("report.md", "report.html", "table.tex", "table.csv", "claims.csv")


def _store(root: Path, name: str = "s.sqlite", **kwargs) -> Path:
    """A finished report-test suite whose artifacts are missing (placeholder figures)."""
    root.mkdir(parents=True, exist_ok=True)
    return make_store(root / name, {m: root / "gone" / m for m in MODELS}, **kwargs)


def _edit_configs(store: Path, edit) -> None:
    """Apply ``edit(run_id, config)`` to every stored run config, as a hand edit would."""
    with sqlite3.connect(store) as conn:
        for run_id, text in conn.execute("SELECT id, config FROM runs").fetchall():
            cfg = json.loads(text)
            edit(run_id, cfg)
            conn.execute("UPDATE runs SET config = ? WHERE id = ?", (json.dumps(cfg), run_id))
    conn.close()


def _temp_entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# -- the report folder is replaced whole --------------------------------------------------------
def test_a_report_replaces_its_whole_folder_and_leaves_no_temp_entries(tmp_path: Path) -> None:
    store = _store(tmp_path / "store")
    out = tmp_path / "reports" / "out"
    first = build_report(store, out)
    assert {p.name for p in out.iterdir()} == {p.name for p in first.files}
    assert any(p.suffix == ".png" for p in first.files)
    (out / ".report.md.k1ll3d00.tmp").write_text("an older atomic write, cut short")
    link = tmp_path / "link"
    link.symlink_to(out)
    again = build_report(store, link, figures=False)  # the old figures must not linger
    assert link.is_symlink() and again.out == out
    assert {p.name for p in out.iterdir()} == {*TEXT_FILES}
    assert all(p.parent == out and p.is_file() for p in again.files)
    assert os.listdir(out.parent) == ["out"]  # no staging or set-aside folder left
    assert build_report(store, tmp_path / "new" / "deep", figures=False).out.is_dir()


def test_a_folder_with_files_a_report_did_not_write_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _store(tmp_path / "store")
    out = tmp_path / "out"
    build_report(store, out, figures=False)
    (out / "my notes.txt").write_text("a user's own file")
    (tmp_path / "a-file").write_text("not a folder")
    before = file_hashes(tmp_path)
    line = one_line_error(capsys, ["report", "--store", str(store), "--out", str(out)])
    assert "my notes.txt" in line and "a report did not write" in line
    args = ["report", "--store", str(store), "--out", str(tmp_path / "a-file"), "--no-figures"]
    assert "is not a directory" in one_line_error(capsys, args)
    assert file_hashes(tmp_path) == before
    assert _temp_entries(tmp_path) == []


def test_a_full_disk_keeps_the_previous_report_whole_and_names_the_file(tmp_path: Path) -> None:
    store = _store(tmp_path / "store")
    old = tmp_path / "old"
    build_report(store, old, figures=False)
    before = file_hashes(old)
    # room for the previous report and a few figures, not for the new report beside it
    mnt, after = tmp_path / "mnt", tmp_path / "after"
    args = ["report", "--store", str(store), "--out", f"{mnt}/rep"]
    code, stderr = bench_on_tmpfs(
        mnt, 128, args, before=f"cp -a {old} {mnt}/rep",
        after=f"ls -a {mnt} > {tmp_path}/listing\ncp -a {mnt}/rep {after}",
    )  # fmt: skip

    assert code == 2
    assert len(stderr.splitlines()) == 1 and "Traceback" not in stderr, stderr
    named = re.search(rf"cannot write {re.escape(str(mnt))}/rep/(\S+): No space left", stderr)
    assert named, stderr
    assert named.group(1).endswith((".png", ".md", ".html", ".csv", ".tex"))
    assert file_hashes(after) == before  # every file of the previous report, byte for byte
    assert (tmp_path / "listing").read_text().split() == [".", "..", "rep"]  # no temp left


def _complete(folder: Path, final: dict[str, bytes]) -> None:
    """``folder`` holds a whole report with the same files as ``final`` (the run that was not
    killed): every text file ends as that one does, every PNG decodes, every CSV parses."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(final)
    for name, content in final.items():
        data = (folder / name).read_bytes()
        if name.endswith(".png"):
            with Image.open(folder / name) as img:
                img.verify()
        elif name.endswith(".csv"):
            assert pd.read_csv(folder / name).shape == pd.read_csv(io.BytesIO(content)).shape
        else:
            assert data.endswith(content[-200:]), name


@pytest.mark.slow  # four report processes killed at different moments (~16 s)
def test_a_killed_report_leaves_the_old_or_the_new_report_and_the_next_run_cleans_up(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path / "store")
    out = tmp_path / "out"
    build_report(store, out, figures=False)
    old = file_hashes(out)
    cmd = [sys.executable, "-m", "aebench", "report", "--store", str(store), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    states, mid_write = [], 0
    for delay in (0.0, 0.2, 0.6, 2.0):
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        staging, deadline = f".out.{proc.pid}-", time.monotonic() + 300  # its own, not a stale one
        while proc.poll() is None and not any(p.name.startswith(staging) for p in
                                               tmp_path.iterdir()):  # fmt: skip
            assert time.monotonic() < deadline, "the report never started writing"
            time.sleep(0.01)
        time.sleep(delay)
        mid_write += proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert out.is_dir()  # the folder is swapped in one step: never missing
        states.append({p.name: p.read_bytes() for p in out.iterdir()})
    assert mid_write >= 2  # most kills hit the process while it was writing
    result = build_report(store, out)  # the next run succeeds and removes what the kills left
    assert _temp_entries(tmp_path) == [] and sorted(os.listdir(tmp_path)) == ["out", "store"]
    final = {p.name: p.read_bytes() for p in out.iterdir()}
    assert {p.name for p in result.files} == set(final)
    for i, state in enumerate(states):  # the old report has no figures, the new one has
        if set(state) == set(old):
            assert {n: hashlib.sha256(b).hexdigest() for n, b in state.items()} == old
        else:
            scratch = tmp_path / f"state-{i}"
            scratch.mkdir()
            for name, data in state.items():
                (scratch / name).write_bytes(data)
            _complete(scratch, final)


def test_a_kill_between_the_two_renames_is_recovered(tmp_path: Path) -> None:
    """Where a file system cannot exchange two folders, the old report is renamed aside before
    the new one is renamed in; a kill in between leaves no report folder. The next run puts
    the old one back and removes the half-written staging folder and atomic-write leftovers;
    entries of a process that still runs are left alone."""
    store = _store(tmp_path / "store")
    out = tmp_path / "out"
    build_report(store, out, figures=False)
    old = file_hashes(out)
    dead = subprocess.Popen(["true"])  # a process id that no longer runs
    dead.wait()
    aside = tmp_path / f".out.{dead.pid}-k1ll3d00.old.tmp"
    out.rename(aside)
    half = tmp_path / f".out.{dead.pid}-k1ll3d01.new.tmp"
    half.mkdir()
    (half / "report.md").write_text("# half a rep")
    (tmp_path / ".out.abcd1234.tmp").write_text("an atomic write cut short")
    alive = subprocess.Popen(["sleep", "60"])  # a report run that is still writing
    running = tmp_path / f".out.{alive.pid}-inflight.new.tmp"
    running.mkdir()
    (tmp_path / ".out.notes.txt").write_text("not ours: another pattern")
    try:
        recover(out)
    finally:
        alive.kill()
        alive.wait()
    assert file_hashes(out) == old
    assert _temp_entries(tmp_path) == [running.name]
    assert (tmp_path / ".out.notes.txt").is_file()
    build_report(store, out, figures=False)  # and once that process is gone, its entry too
    assert _temp_entries(tmp_path) == []


# -- a long reference table ----------------------------------------------------------------------
def test_a_long_reference_table_is_read_in_linear_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    n = 200_000
    rng = np.random.default_rng(0)
    labels = [f"model-{i}" for i in range(n)]
    frame = pd.DataFrame({"label": labels, "fid_mean": rng.random(n), "fid_std": 0.1, "fid_n": 3})
    unique = tmp_path / "unique" / "table.csv"
    unique.parent.mkdir()
    frame.to_csv(unique, index=False)
    ref = load_reference(unique, ["fid"])
    assert len(ref.stats) == n and ref.stats["model-7"]["fid"].n == 3
    frame.loc[n - 1, "label"] = "model-3"  # one duplicate, at the far end
    twice = tmp_path / "twice" / "table.csv"
    twice.parent.mkdir()
    frame.to_csv(twice, index=False)
    store = _store(tmp_path / "store")
    out = tmp_path / "out"
    build_report(store, out, figures=False)
    before = file_hashes(out)
    args = ["report", "--store", str(store), "--out", str(out), "--reference", str(twice)]
    assert "model 'model-3' has several rows" in one_line_error(capsys, args)
    assert file_hashes(out) == before


# -- runs measured with different [metrics] options ---------------------------------------------
def test_runs_measured_with_different_metric_options_are_kept_apart(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    env = {"device": "cpu", "threads": 2, "host": "test-host"}
    with Store.open(path) as store, store.lock():
        for cfg in _suite("options").expand():
            n = 1000 if (cfg.label, cfg.seed) == ("vae", 0) else 2000  # one seed measured apart
            generation = {"family": "generation", "n_samples": n, "seed": cfg.seed}
            evaluations = {
                "generation": json.dumps(generation, sort_keys=True),
                "reconstruction": json.dumps({"family": "reconstruction", "batch_size": 128}),
            }
            run_id = store.mark_running(cfg, env, artifacts=tmp_path / "gone")
            metrics = _metrics(cfg.label, cfg.seed, {})
            store.finish(run_id, "done", metrics, evaluations=evaluations)
    before = path.read_bytes()
    result = build_report(path, tmp_path / "out", figures=False)
    table = pd.read_csv(tmp_path / "out" / "table.csv").set_index("label")
    assert list(table.index) == [
        "ae", "vae [n_samples=1000]", "vae [n_samples=2000]", "beta-vae"
    ]  # fmt: skip
    assert table.loc["vae [n_samples=2000]", "n_runs"] == 2
    seeds = {s: _metrics("vae", s, {})["fid"] for s in (1, 2)}
    assert table.loc["vae [n_samples=2000]", "fid_mean"] == pytest.approx(
        np.mean([*seeds.values()])
    )
    assert table.loc["vae [n_samples=1000]", "fid_mean"] == pytest.approx(
        _metrics("vae", 0, {})["fid"]
    )
    note = result.data.header["Metric options"]
    assert "vae (generation: n_samples)" in note and "not averaged" in note
    assert "seed" not in note  # every run has its own seed: not a difference
    assert "**Metric options:**" in (tmp_path / "out" / "report.md").read_text()
    assert path.read_bytes() == before
    _claims_on_split_runs_are_not_testable(result, tmp_path / "out")


def _claims_on_split_runs_are_not_testable(result, out: Path) -> None:
    """A claim on ``vae`` must not go untested in silence once its runs are split by metric
    options: it is shown as not testable, and why; a claim on unsplit runs is still tested.
    Published values are not averaged over the split runs either."""
    runs = result.data.runs
    assert set(runs.loc[runs["model"] == "vae", "base_label"]) == {"vae"}
    verdicts = {v.claim.name: v for v in result.verdicts}
    for name in ("ae-reconstructs-better", "beta-vae-lower-kl", "vae-prior-beats-ae-normal"):
        assert verdicts[name].verdict == UNTESTABLE, name
        assert verdicts[name].why == "vae split by metric options into 2 groups", name
        assert verdicts[name].a_values == verdicts[name].b_values == ()
    assert verdicts["ae-gmm-beats-normal"].verdict == HOLDS  # ae measured alike: tested
    md = (out / "report.md").read_text()
    assert "| not testable (vae split by metric options into 2 groups) |" in md
    claims = pd.read_csv(out / "claims.csv").set_index("name")
    assert claims.loc["ae-reconstructs-better", "verdict"] == UNTESTABLE
    assert "vae split by metric options" in verdicts["beta-vae-lower-kl"].line()
    fields = dict(protocol="p", source="s", dataset="mnist-5k", binarization="none",
                  architecture="mlp", latent_dim=2, budget="1 epoch", sampler="prior",
                  n_samples=1000, features="domain", paper_model="M", metric="fid",
                  value=30.0, confirmed=True)  # fmt: skip
    vae, ae = PublishedValue(model="vae", **fields), PublishedValue(model="ae", **fields)
    split, whole = match([vae, ae], "p", runs)
    assert split.n == 0 and whole.n == 3  # the split vae runs are not averaged into one


# -- hostile text in every output format ---------------------------------------------------------
EVIL = "=cmd()|<script>alert(1)</script>\nrow two\x00 a_b$c%d&e#f{g}^h~i\\j k\\|l"


def _pipes(line: str) -> int:
    """The cell borders of a Markdown table row as GFM finds them: a ``|`` not escaped (a
    backslash escapes the one character after it, a backslash too)."""
    return sum(token == "|" for token in re.findall(r"\\.|\|", line))


def _csv_cells(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text())))


#: a label that Markdown would render as a remote image, emphasis and code
IMAGE = "![x](https://host/t.png) *b* `c` _d_ [l](u)"


def _hostile_labels(_: int, cfg: dict) -> None:
    labels = {"ae": EVIL, "beta-vae": IMAGE}
    if cfg["model"] in labels:
        cfg["label"] = labels[cfg["model"]]


def test_hostile_text_is_escaped_in_every_output_file(tmp_path: Path) -> None:
    store = _store(tmp_path / "store")
    _edit_configs(store, _hostile_labels)
    with sqlite3.connect(store) as conn:  # negative numbers stay numbers in every CSV
        conn.execute("UPDATE metrics SET value = -value WHERE name = 'recon_mse'")
    conn.close()
    reference = tmp_path / "ref\n<b>|=x"
    build_report(store, reference, figures=False)
    claim = Claim("evil", f"claim {EVIL}", f"source {EVIL}", EVIL, "vae", "recon_mse",
                  "recon_mse", "lower")  # fmt: skip
    out = tmp_path / "out"
    result = build_report(store, out, baseline=store, claims=(claim,), reference=reference)
    assert EVIL in result.data.labels and result.agreements
    for path in out.iterdir():
        if path.suffix != ".png":
            assert b"\x00" not in path.read_bytes(), path.name

    md = (out / "report.md").read_text()
    assert "<script" not in md and "<b>" not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    shown = (
        "=cmd()\\|&lt;script&gt;alert(1)&lt;/script&gt; row two a_b$c%d&amp;e#f{g}^h~i\\\\j "
        "k\\\\\\|l"
    )
    assert shown in md
    assert "## Ranking against ref &lt;b&gt;\\|=x" in md
    for block in re.findall(r"(?:^\|.*\n)+", md, re.M):  # every table row keeps its columns
        counts = {_pipes(line) for line in block.splitlines()}
        assert len(counts) == 1, block
    assert sum(shown in line for line in md.splitlines() if line.startswith("|")) >= 4
    image = "\\!\\[x\\](https://host/t.png) \\*b\\* \\`c\\` \\_d\\_ \\[l\\](u)"
    assert image in md and "![x]" not in md and "[l](u)" not in md and "`c`" not in md
    assert "*b*" not in md and "_d_" not in md
    assert md.count("**") >= 2 * len(MODELS)  # the main table's bold best cells still bold

    page = (out / "report.html").read_text()
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "ref\n<b>" not in page and "ref &lt;b&gt;|=x" in page

    tex = (out / "table.tex").read_text()
    body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()
    assert len(body) == len(MODELS)
    assert body[0].startswith(
        r"=cmd()|<script>alert(1)</script> row two a\_b\$c\%d\&e\#f\{g\}"
        r"\textasciicircum h\textasciitilde i\textbackslash j k\textbackslash |l &"
    )

    for name in ("table.csv", "claims.csv", "comparison.csv"):
        cells = [c for row in _csv_cells(out / name) for c in row]
        assert not [c for c in cells if c.startswith(("=", "+", "@", "\t", "\r"))], name
        texts = [c for c in cells if c.startswith("-")]
        assert all(re.fullmatch(r"[-0-9.e ]+", c) for c in texts), (name, texts)
        assert "'" + EVIL.replace("\x00", "") in cells, name
    claims = pd.read_csv(out / "claims.csv").set_index("name")
    assert claims.loc["evil", "claim"] == "claim " + EVIL.replace("\x00", "")
    assert claims.loc["evil", "a_values"].startswith("-0.0")  # seed values, no quote
    table = pd.read_csv(out / "table.csv")
    assert (table["recon_mse_mean"] < 0).all()  # still numbers


# -- hand-edited store values ----------------------------------------------------------------------
def test_hand_edited_store_values_are_shown_as_stored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _store(tmp_path / "store")

    def edit(run_id: int, cfg: dict) -> None:
        if run_id == 1:
            cfg["train"].update(epochs="ten", seed=[1, 2])
        if run_id == 2:
            cfg.update(dataset=["a", "b"], arch={"conv": True})
        if run_id == 4:
            cfg["train"].update(seed="seven", epochs=None, max_steps=[3])

    _edit_configs(store, edit)
    with sqlite3.connect(store) as conn:
        options = json.dumps({"family": "latent", "iw_k": "many", "iw_n": [1], "backbone": [2]})
        conn.execute("INSERT INTO evaluations VALUES (5, 'latent', ?, NULL)", (options,))
        where = ("INSERT INTO evaluations (run_id, family, options, environment) "
                 "VALUES (?, ?, 'k', ?)")  # fmt: skip
        conn.execute(where, (3, "sharpness", "not json"))
        conn.execute(where, (4, "sharpness", json.dumps({"host": ["h"], "threads": "two"})))
    conn.close()
    before = store.read_bytes()
    out = tmp_path / "out"
    result = build_report(store, out, baseline=store)
    header = result.data.header
    assert header["Budget"] == "ten epochs, 1 epochs, [3] steps"
    assert header["Seeds"] == "5 (0, 1, 2, [1, 2], seven)"
    assert header["Datasets"] == 'mnist-5k, ["a", "b"]'
    assert "NLL" not in header  # a text K is not a setting to describe
    assert header["Re-evaluated"] == (
        "sharpness of 1 run(s) on 'not json'; sharpness of 1 run(s) on ['h'], None × two "
        "thread(s), commit None, None"
    )
    problems = {f.key: f.problem for f in result.figures}
    assert problems["learning_curves"] is None and problems["metric_bars"] is None
    assert "ten epochs" in (out / "report.md").read_text()
    assert main_exit(["report", "--store", str(store), "--out", str(out), "--no-figures"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert store.read_bytes() == before


@pytest.mark.parametrize(
    "damage", ["DROP TABLE evaluations", "ALTER TABLE evaluations DROP COLUMN environment"]
)
def test_a_store_without_the_evaluations_table_or_column_still_reports(tmp_path, damage):
    """The header's Re-evaluated line reads the evaluations table; a store that lacks it (or
    its environment column) was an OperationalError traceback, and now just says less."""
    store = _store(tmp_path / "store")
    with sqlite3.connect(store) as conn:
        conn.execute(damage)
    conn.close()
    result = build_report(store, tmp_path / "out", figures=False)
    assert "Re-evaluated" not in result.data.header and result.data.header["Runs"]


def main_exit(args: list[str]) -> int:
    from aebench.cli import main

    return main(args)
