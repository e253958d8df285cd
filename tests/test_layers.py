"""The layers hold (docs/architecture.md): imports only go down, training and metrics never
import each other, and no module imports itself through others.

import-linter and grimp find a package by its folder, but aebench's folders are bench/ and
models/ (pyproject's package-dir), so each test first lays them out as one ``aebench`` package
of symlinks. ``nox -s lint`` runs this file too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding ``aebench/``: bench/'s entries and ``models`` → models/, as symlinks."""
    top = tmp_path_factory.mktemp("layout")
    package = top / "aebench"
    package.mkdir()
    for entry in (ROOT / "bench").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    (package / "models").symlink_to(ROOT / "models")
    return top


#: prints the import graph of the `aebench` found first on the path as JSON: module → imports
GRAPH = """
import json, grimp
g = grimp.build_graph("aebench", exclude_type_checking_imports=True, cache_dir=None)
print(json.dumps({m: sorted(g.find_modules_directly_imported_by(m)) for m in g.modules}))
"""


def _graph(layout: Path) -> dict[str, list[str]]:
    """The layout's import graph, built in a fresh interpreter: in this one ``aebench`` is
    already imported from the installed package, whose folder holds bench/ alone."""
    done = subprocess.run(
        [sys.executable, "-c", GRAPH],
        cwd=layout,
        env={**os.environ, "PYTHONPATH": str(layout)},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(done.stdout)


def _lint_imports(top: Path) -> subprocess.CompletedProcess[str]:
    """import-linter's ``lint-imports`` with pyproject.toml's contracts, on the layout in
    ``top``."""
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint), str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=top,
        env={**os.environ, "PYTHONPATH": str(top)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_layout_holds_every_module(layout: Path) -> None:
    graph = _graph(layout)
    sources = [p for d in ("bench", "models") for p in (ROOT / d).rglob("*.py")]
    assert len(graph) == len(sources)
    assert {"aebench.models.vae.model", "aebench.training.trainer"} <= set(graph)


def test_no_module_cycle(layout: Path) -> None:
    graph = _graph(layout)
    edges = nx.DiGraph((m, d) for m, imported in graph.items() for d in imported)
    cycles = [sorted(c) for c in nx.strongly_connected_components(edges) if len(c) > 1]
    assert cycles == [], f"modules that import each other in a circle: {cycles}"


def test_import_linter_contracts_hold(layout: Path) -> None:
    """The contracts in pyproject.toml (layers; training ⟂ metrics), run by import-linter."""
    done = _lint_imports(layout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 kept, 0 broken" in done.stdout


def test_a_planted_upward_import_breaks_the_layers(layout: Path, tmp_path: Path) -> None:
    """The contract can fail: a copy of the layout whose core imports the CLI is refused."""
    top = tmp_path / "planted"
    package = top / "aebench"
    package.mkdir(parents=True)
    for entry in (layout / "aebench").iterdir():
        if entry.name != "core":
            (package / entry.name).symlink_to(entry.resolve())
    (package / "core").mkdir()
    for entry in (ROOT / "bench" / "core").glob("*.py"):
        (package / "core" / entry.name).symlink_to(entry)
    (package / "core" / "errors.py").unlink()
    text = (ROOT / "bench" / "core" / "errors.py").read_text()
    (package / "core" / "errors.py").write_text(text + "\nfrom aebench import cli  # noqa\n")
    done = _lint_imports(top)
    assert done.returncode == 1
    assert "aebench.core is not allowed to import aebench.cli" in done.stdout


def test_ruff_finds_nothing_to_fix() -> None:
    """The house style (pyproject's ``[tool.ruff]``): lint- and format-clean. Checked in every
    test run, since CI runs the tests rather than ``nox -s lint``; a Markdown code block that
    drifted from the formatter once went unnoticed that way."""
    for args in (["check", "."], ["format", "--check", "."]):
        done = subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT,
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert done.returncode == 0, (args, done.stdout[-2000:])
