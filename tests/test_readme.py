"""The README's promises: its example model trains, its commands are the ones CI runs, and
the metric example of docs/extending.md reaches the report."""

from __future__ import annotations

import re

import pytest

from aebench import models
from tests.conftest import REPO, tiny_suite

README = (REPO / "README.md").read_text()
EXTENDING = (REPO / "docs" / "extending.md").read_text()


def _python_blocks() -> list[str]:
    """The Python examples of the README and of docs/extending.md."""
    return re.findall(r"```python\n(.*?)```", README + "\n" + EXTENDING, flags=re.S)


def test_add_your_own_model_example_runs_and_learns(capsys):
    (block,) = [b for b in _python_blocks() if "@models.register" in b]
    namespace: dict = {}
    try:
        exec(compile(block, "README.md", "exec"), namespace)
        history = namespace["history"]
        assert len(history) == 2
        assert history[1]["test"]["loss"] < history[0]["test"]["loss"]
        assert "tiny-ae" in models.available()
        assert "recon" in capsys.readouterr().out
    finally:
        models.unregister("tiny-ae")


def test_the_example_trains_through_the_cli_on_its_own_update_schedule(tmp_path):
    """The README's model, saved as tiny_ae.py and trained by ``aebench --plugin``: two
    epochs (history.json has each phase's learning rate as an epoch starts): the encoder at a
    constant 1e-3, the decoder's rate halved after the first epoch."""
    import json

    from aebench.cli import main

    (block,) = [b for b in _python_blocks() if "@models.register" in b]
    model_part = block.split("# Train it exactly like the built-in models:")[0]
    assert len(model_part.strip().splitlines()) <= 40  # the README's promise
    (tmp_path / "tiny_ae.py").write_text(model_part)
    out = tmp_path / "run"
    try:
        argv = ["--plugin", str(tmp_path / "tiny_ae.py"), "train", "tiny-ae", "--epochs", "2",
                "--out", str(out), "--quiet"]  # fmt: skip
        assert main(argv) == 0
    finally:
        models.unregister("tiny-ae")
    history = json.loads((out / "history.json").read_text())
    assert [row["lr"] for row in history] == [
        {"encoder": 1e-3, "decoder": 3e-3},
        {"encoder": 1e-3, "decoder": 1.5e-3},
    ]
    assert history[1]["test"]["loss"] < history[0]["test"]["loss"]


def test_ci_runs_the_readme_test_command():
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    test_cmd = next(b.strip() for b in blocks if "nox -s tests" in b)
    ci = (REPO / ".ci" / "run").read_text()
    assert test_cmd in ci


METRIC_SUITE = tiny_suite("readme-metric", ["ae"], [0, 1], steps=4)


def test_add_a_metric_example_reaches_metrics_json_the_store_and_the_report(
    tmp_path, domain_net, capsys
):
    """The README's metric family, end to end: ``aebench run`` trains and evaluates with it,
    the store holds its rows, ``aebench eval`` writes it, the report shows its column."""
    import json

    import pandas as pd

    from aebench.cli import main
    from aebench.metrics.family import FAMILIES
    from aebench.store.database import Store

    (block,) = [b for b in _python_blocks() if "@register_family" in b]
    try:
        exec(compile(block, "docs/extending.md", "exec"), {})
        suite, db = tmp_path / "m.toml", tmp_path / "s.sqlite"
        suite.write_text(METRIC_SUITE)
        assert main(["run", str(suite), "--store", str(db), "--quiet"]) == 0
        with Store.open(db, readonly=True) as store:
            runs = store.runs(suite="readme-metric")
            values = [store.metrics(r["id"])["recon_l1"] for r in runs]
        assert len(values) == 2 and all(0 < v < 1 for v in values)
        run_dir = runs[0]["artifacts"]
        assert main(["eval", run_dir, "--n-samples", "100", "--skip", "speed"]) == 0
        scores = json.loads((tmp_path / run_dir / "metrics.json").read_text())
        assert scores["recon_l1"] == pytest.approx(values[0], rel=1e-6)
        out = tmp_path / "report"
        assert main(["report", "--store", str(db), "--out", str(out), "--no-figures"]) == 0
        table = pd.read_csv(out / "table.csv")
        assert any("recon_l1" in c for c in table.columns), list(table.columns)
        assert "Recon L1 ↓" in (out / "report.md").read_text()
    finally:
        FAMILIES.unregister("recon-l1")
        capsys.readouterr()
