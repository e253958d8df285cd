"""Plugins from the user's own file (issue 25): the README's example model, saved as a file,
trains, evaluates and appears in a suite's report through the CLI; its bad options and a broken
file are one line with exit code 2; the contract tests pick it up; built-ins come first."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from aebench.core.errors import UsageError
from aebench.core.plugins import ENV, load_plugin_file
from tests.conftest import REPO, run_cli, tiny_suite

README_PATH = REPO / "README.md"


@pytest.fixture(scope="module")
def tiny_ae(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's example model, as a user would save it: the class, not the training."""
    text = README_PATH.read_text()
    (block,) = [
        b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "@models.register" in b
    ]
    path = tmp_path_factory.mktemp("plugin") / "tiny_ae.py"
    path.write_text(block.split("# Train it exactly")[0])
    return path


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_the_readme_model_trains_and_evaluates_through_the_cli(
    tiny_ae: Path, tmp_path: Path, domain_net, metrics_cache: Path
):
    out = tmp_path / "run"
    env = {"AEBENCH_CACHE_DIR": str(metrics_cache)}
    done = run_cli("--plugin", str(tiny_ae), "train", "tiny-ae", "--epochs", "1", "--quiet",
                   "-m", "n_samples=100", "-m", "iw_k=4", "-m", "iw_n=16",
                   "--out", str(out), cwd=tmp_path, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "model.safetensors").is_file() and (out / "metrics.json").is_file()
    assert "fid" in (out / "metrics.json").read_text()
    again = run_cli("--plugin", str(tiny_ae), "eval", str(out), "--n-samples", "100",
                    "--skip", "generation", "--skip", "speed", cwd=tmp_path, env=env)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert "recon_mse" in again.stdout


def test_a_suite_names_its_plugin_and_the_report_shows_it(
    tiny_ae: Path, tmp_path: Path, domain_net, metrics_cache: Path
):
    suite = tmp_path / "with-plugin.toml"
    (tmp_path / "tiny_ae.py").write_text(tiny_ae.read_text())  # relative to the suite file
    suite.write_text(
        'plugins = ["tiny_ae.py"]\n' + tiny_suite("with-plugin", ["tiny-ae", "ae"], [0])
    )
    env = {"AEBENCH_CACHE_DIR": str(metrics_cache)}
    store = tmp_path / "s.sqlite"
    done = run_cli(
        "run", str(suite), "--store", str(store), "--quiet", "--jobs", "2", cwd=tmp_path, env=env
    )  # fmt: skip  (worker processes load the plugin too)
    assert done.returncode == 0, done.stderr[-3000:]
    report = tmp_path / "report"
    done = run_cli("report", "--store", str(store), "--suite", str(suite), "--out", str(report),
                   "--no-figures", cwd=tmp_path, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    table = (report / "report.md").read_text()
    assert "tiny-ae" in table and "| ae" in table
    # every run (trained in a worker process) records the plugin file's hash, and the header
    # shows it: no aebench commit holds the plugin's code
    digest = hashlib.sha256((tmp_path / "tiny_ae.py").read_bytes()).hexdigest()[:12]
    recorded = f"plugin tiny_ae.py sha256:{digest}"
    with sqlite3.connect(store) as db:
        packages = [row[0] for row in db.execute("SELECT packages FROM runs")]
    assert len(packages) == 2 and all(recorded in p.split(", ") for p in packages), packages
    assert recorded in table


def test_a_plugin_models_bad_option_is_one_line(tiny_ae: Path, tmp_path: Path):
    done = run_cli("--plugin", str(tiny_ae), "train", "tiny-ae", "-o", "lr=abc",
                   "--out", str(tmp_path / "x"), cwd=tmp_path)  # fmt: skip
    line = _one_line_error(done)
    assert "model 'tiny-ae' has no option 'lr'" in line
    done = run_cli("--plugin", str(tiny_ae), "train", "tiny-ae", "--latent-dim", "abc",
                   "--out", str(tmp_path / "y"), cwd=tmp_path)  # fmt: skip
    _one_line_error(done)
    assert not (tmp_path / "x").exists()


def test_a_broken_plugin_file_is_one_line_naming_it(tmp_path: Path):
    broken = tmp_path / "broken.py"
    broken.write_text("from aebench import models\n\nraise RuntimeError('no GPU here')\n")
    line = _one_line_error(run_cli("--plugin", str(broken), "models", cwd=tmp_path))
    assert "broken.py (line 3): RuntimeError: no GPU here" in line
    missing = _one_line_error(run_cli("--plugin", str(tmp_path / "nope.py"), "models"))
    assert "nope.py" in missing
    with pytest.raises(UsageError, match="not a Python file"):
        load_plugin_file(tmp_path)


def test_built_in_families_come_before_a_plugin_family(tmp_path: Path):
    plugin = tmp_path / "late_family.py"
    plugin.write_text(
        "from aebench.metrics import MetricFamily, MetricKey, register_family\n\n"
        "@register_family\nclass Late(MetricFamily):\n    name = 'late'\n"
        "    keys = (MetricKey('late_value', 'Late', 'a plugin key', None),)\n"
        "    def compute(self, ctx):\n        return {'late_value': 0.0}\n"
    )
    code = (
        "from aebench.core.plugins import load_env_plugins\n"
        "load_env_plugins()\n"
        "from aebench.metrics.family import family_names\n"
        "names = family_names()\n"
        "assert names[-1] == 'late' and names.index('reconstruction') < names.index('late')\n"
        "print(names)\n"
    )
    env = {**os.environ, ENV: str(plugin)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "'late'" in done.stdout


def test_the_contract_tests_iterate_the_registry_plugins_included(tiny_ae: Path):
    env = {**os.environ, ENV: str(tiny_ae)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "tests/test_models.py"],
        cwd=README_PATH.parent, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "test_shapes_and_finite_terms[shape0-tiny-ae-mlp]" in done.stdout
    assert "test_shapes_and_finite_terms[shape0-vae-mlp]" in done.stdout


def test_each_imported_plugin_file_is_recorded_with_the_hash_of_what_ran(tmp_path: Path):
    """Two files, then one of them edited: a new process records the new file's hash."""
    first, second = tmp_path / "first_plugin.py", tmp_path / "second_plugin.py"
    first.write_text("X = 1\n")
    second.write_text("Y = 2\n")
    script = (
        "import json, sys\nfrom aebench.core.plugins import load_plugin_file, plugin_code\n"
        "for f in sys.argv[1:]: load_plugin_file(f)\nprint(json.dumps(plugin_code()))\n"
    )

    def recorded() -> list[str]:
        done = subprocess.run([sys.executable, "-c", script, str(first), str(second)],
                              capture_output=True, text=True, check=True)  # fmt: skip
        return json.loads(done.stdout)

    def expected(path: Path) -> str:
        return f"plugin {path.name} sha256:{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"

    before = recorded()
    assert before == [expected(first), expected(second)]
    first.write_text("X = 3\n")
    after = recorded()
    assert after == [expected(first), expected(second)] and after[0] != before[0]


def test_a_plugin_dataset_that_fails_on_its_file_is_one_line(tmp_path: Path):
    """A plugin loader reading a foreign or damaged file raised NumPy's ValueError through
    aebench as a traceback (a missing file was already one line)."""
    plugin = tmp_path / "junk_data.py"
    plugin.write_text(
        "import numpy as np\nfrom aebench.data import register_dataset\n\n\n"
        '@register_dataset("junk-digits", "a plugin dataset from an .npz file")\n'
        "def junk_digits(data_dir=None):\n"
        '    return np.load(data_dir / "digits.npz")["x"]\n'
    )
    (tmp_path / "digits.npz").write_bytes(b"\x93NUMPY\x01\x00junk that is no array")
    done = run_cli("--plugin", str(plugin), "train", "vae", "--dataset", "junk-digits",
                   "--data-dir", str(tmp_path), "--epochs", "1", "--out", str(tmp_path / "r"),
                   cwd=tmp_path)  # fmt: skip
    line = _one_line_error(done)
    assert "dataset 'junk-digits' could not be loaded: ValueError" in line
    assert not (tmp_path / "r").exists()


def test_two_labels_of_a_plugin_model_at_its_default_are_one_run_and_refused(
    tiny_ae: Path, tmp_path: Path
):
    """A model without a config class keeps an option written out at its default (only a
    config class drops those), yet the run's hash resolves it: labels 'a' and 'b' below were
    one run, the second lost. The suite is refused naming both."""
    from aebench.experiments.suite import load_suite

    plugin = tmp_path / "wide_ae.py"
    text = tiny_ae.read_text().replace('"tiny-ae"', '"wide-ae"')
    plugin.write_text(text.replace('arch: str = "mlp"', 'arch: str = "mlp", width: int = 32'))
    suite = tmp_path / "s.toml"
    models = '[{ model = "wide-ae", label = "a" }, { model = "wide-ae", label = "b", width = 32 }]'
    text = tiny_suite("s", ["ae"], [0]).replace('["ae"]', models)
    suite.write_text('plugins = ["wide_ae.py"]\n' + text)
    with pytest.raises(UsageError, match="'a' and 'b' are the same model with the same options"):
        load_suite(suite)
    suite.write_text(suite.read_text().replace("width = 32", "width = 64"))
    assert len(load_suite(suite).expand()) == 2  # another width: another run
