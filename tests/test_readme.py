"""The README's promises: its example model trains, and its commands are the ones CI runs."""

from __future__ import annotations

import re

import models
from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


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


def test_ci_runs_the_readme_test_command():
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    test_cmd = next(b.strip() for b in blocks if "nox -s tests" in b)
    ci = (REPO / ".ci" / "run").read_text()
    assert test_cmd in ci
