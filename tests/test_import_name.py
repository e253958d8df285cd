"""One import name: everything installs as ``aebench`` (bench/ → ``aebench``, models/ →
``aebench.models``), so a project with its own top-level ``models`` or ``bench`` package can
use aebench beside it."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: every module of aebench, imported in a process where `models` and `bench` are foreign
IMPORT_ALL = """
import importlib, pkgutil, sys
import aebench, aebench.models
names = [m.name for m in pkgutil.walk_packages(aebench.__path__, "aebench.")]
# aebench.models lives in another folder (models/), which aebench.__path__ does not hold
names += ["aebench.models"]
names += [m.name for m in pkgutil.walk_packages(aebench.models.__path__, "aebench.models.")]
for name in names:
    if name.endswith("__main__"):
        continue
    importlib.import_module(name)
foreign = {n: getattr(sys.modules.get(n), "FOREIGN", None) for n in ("models", "bench")}
print(len(names), "modules", "aebench.models" in names, foreign)
"""


def _foreign_packages(root: Path) -> None:
    """A user's own top-level `models` and `bench`: importing them works and marks them."""
    for name in ("models", "bench"):
        (root / name).mkdir()
        (root / name / "__init__.py").write_text(f'FOREIGN = "{name} of the user"\n')


def _run(args: list[str], cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd), "PYTHONSAFEPATH": "1", **extra}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_every_module_imports_beside_foreign_models_and_bench(tmp_path: Path) -> None:
    _foreign_packages(tmp_path)
    done = _run([sys.executable, "-c", IMPORT_ALL], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    count, _, listed, *_ = done.stdout.split(" ", 3)
    assert int(count) > 90 and listed == "True"
    # nothing of aebench imported the user's packages (a stray `import models` would have)
    assert "{'models': None, 'bench': None}" in done.stdout


def test_cli_trains_and_evaluates_beside_a_foreign_models_package(
    tmp_path: Path, domain_net: object, metrics_cache: Path
) -> None:
    _foreign_packages(tmp_path)
    cli = [sys.executable, "-m", "aebench"]
    listed = _run([*cli, "models"], tmp_path)
    assert listed.returncode == 0 and "vae-gan" in listed.stdout.split()
    out = tmp_path / "run"
    train = [*cli, "train", "vae", "--epochs", "1", "--out", str(out), "--quiet"]
    small = ["-m", "n_samples=100", "-m", "iw_k=4", "-m", "iw_n=16"]  # quick metrics, all of them
    done = _run([*train, *small], tmp_path, AEBENCH_CACHE_DIR=str(metrics_cache))
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "model.safetensors").is_file() and (out / "metrics.json").is_file()


def test_every_package_folder_is_installed() -> None:
    """pyproject lists the packages by hand (package-dir maps two folders into one name): a
    folder with an ``__init__.py`` that is not listed would be missing from a wheel."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == {"aebench": "bench", "aebench.models": "models"}
    found = set()
    for folder, name in (("bench", "aebench"), ("models", "aebench.models")):
        for init in (REPO / folder).rglob("__init__.py"):
            if "__pycache__" not in init.parts:
                rel = init.parent.relative_to(REPO / folder).parts
                found.add(".".join((name, *rel)))
    assert found == set(config["packages"])
