"""The model registry: decorator registration, creation, unknown names, entry-point plugins."""

from __future__ import annotations

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


def _install_fake_distribution(root, name="aebench_plugin_demo"):
    """A real installed distribution: a module plus a .dist-info with entry_points.txt."""
    (root / f"{name}.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    info = root / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[aebench.models]\nplugin-vae = {name}:PluginVAE\n")
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
