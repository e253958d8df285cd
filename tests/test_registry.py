"""The model registry: decorator registration, creation, unknown names, entry-point plugins."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from aebench import models
from aebench.core.errors import UsageError
from tests.conftest import run_cli


def test_builtin_models_are_registered():
    assert {"ae", "vae", "beta-vae", "vae-gan"} <= set(models.available())


def test_create_applies_registered_defaults_then_overrides():
    assert models.create("beta-vae").cfg.beta == 2.0
    assert models.create("vae").cfg.beta == 1.0
    assert models.create("beta-vae", beta=2.5).cfg.beta == 2.5
    assert models.create("vae", latent_dim=3, arch="conv").latent_dim == 3


def test_register_decorator_and_unregister():
    @models.register("test-tiny")
    class Tiny(models.GenerativeAutoencoder):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.scale = kw.get("scale", 1)

    try:
        assert "test-tiny" in models.available()
        assert models.create("test-tiny", scale=3).scale == 3
    finally:
        models.unregister("test-tiny")
    assert "test-tiny" not in models.available()


def test_unknown_name_is_a_value_error_listing_the_registered_ones():
    with pytest.raises(ValueError, match="unknown model 'nope'") as info:
        models.create("nope")
    assert isinstance(info.value, UsageError)
    for name in ("ae", "vae", "beta-vae", "vae-gan"):
        assert name in str(info.value)


def test_unknown_model_option_is_rejected():
    with pytest.raises(UsageError, match="no option 'betta'"):
        models.create("vae", betta=3)


PLUGIN_MODULE = '''
import torch
from torch import nn
from aebench.models.vae import VAE


class PluginVAE(VAE):
    """A third-party model shipped in another distribution."""
'''


def _install_fake_distribution(
    root,
    name="aebench_plugin_demo",
    module=PLUGIN_MODULE,
    entry="[aebench.models]\nplugin-vae = {name}:PluginVAE\n",
):
    """A real installed distribution: a module plus a .dist-info with entry_points.txt."""
    (root / f"{name}.py").write_text(textwrap.dedent(module))
    info = root / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry.format(name=name))
    return root


def test_entry_point_plugin_is_discovered_in_process(tmp_path, monkeypatch):
    _install_fake_distribution(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        models.reload_plugins()
        assert "plugin-vae" in models.available()
        m = models.create("plugin-vae", latent_dim=4)
        assert type(m).__name__ == "PluginVAE"
        assert m.loss(torch.rand(2, 1, 28, 28))["loss"].isfinite()
        # the run's record of its code names the distribution the model came from
        from aebench.store.schema import package_versions

        assert "aebench_plugin_demo 1.0" in package_versions().split(", ")
    finally:
        models.unregister("plugin-vae")
        sys.modules.pop("aebench_plugin_demo", None)


def test_entry_point_plugin_appears_in_cli_listing(tmp_path):
    _install_fake_distribution(tmp_path)
    from tests.conftest import REPO

    result = run_cli("models", env={"PYTHONPATH": f"{tmp_path}:{REPO}"})
    assert result.returncode == 0, result.stderr
    names = result.stdout.split()
    assert "plugin-vae" in names and "vae-gan" in names


#: a metric family as docs/extending.md writes one, importing from ``aebench.metrics``
FAMILY_MODULE = """
from aebench.metrics import EvalContext, MetricFamily, MetricKey


class ReconL1(MetricFamily):
    name = "recon-l1"
    keys = (MetricKey("recon_l1", "Recon L1", "mean absolute error", higher_is_better=False),)

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        return {"recon_l1": float((ctx.reconstructions() - ctx.real_images()).abs().mean())}


class TakesMSE(ReconL1):
    name = "takes-mse"
    keys = (MetricKey("recon_mse", "MSE again", "a built-in key", higher_is_better=False),)
"""


def _family_distribution(tmp_path, entry: str):
    from tests.conftest import REPO

    _install_fake_distribution(tmp_path, "aebench_family_demo", FAMILY_MODULE, entry)
    return {"PYTHONPATH": f"{tmp_path}:{REPO}"}


def test_an_entry_point_metric_family_loads_after_the_builtins(tmp_path):
    """It imports aebench.metrics, so it can load only once the built-ins have registered;
    a registration check that loaded plugins early made every command an ImportError."""
    env = _family_distribution(tmp_path, "[aebench.metrics]\nrecon-l1 = {name}:ReconL1\n")
    assert run_cli("eval", "--help", env=env).returncode == 0  # --only lists the families
    order = subprocess.run(
        [sys.executable, "-c", "from aebench.metrics.family import family_names as f; print(*f())"],
        capture_output=True, text=True, env={**os.environ, **env}, check=True,
    ).stdout.split()  # fmt: skip
    assert order[-1] == "recon-l1" and order[0] == "reconstruction", order


def test_an_entry_point_metric_family_taking_a_builtin_key_is_one_line(tmp_path):
    env = _family_distribution(tmp_path, "[aebench.metrics]\ntakes-mse = {name}:TakesMSE\n")
    done = run_cli("eval", "--help", env=env)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    line = done.stderr.strip()
    assert len(line.splitlines()) == 1, line
    assert "takes-mse" in line and "'recon_mse' is declared twice" in line
