"""Metric options: one class, validated the same way from a suite, ``aebench eval -m`` and a
stored config; a family brings its own options (settings) with defaults and validation."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar

import pytest

from aebench.core.errors import UsageError
from aebench.experiments.reevaluate import families_to_evaluate
from aebench.metrics import features
from aebench.metrics.family import FAMILIES, MetricFamily, MetricKey, register_family
from aebench.metrics.options import MetricOptions, option_names
from aebench.models.config import OptionError
from aebench.store.run_folder import save_run
from tests.conftest import one_line_error


class InkShare(MetricFamily):
    """Share of reconstructed pixels brighter than a threshold: a family with its own option."""

    name = "ink"
    settings: ClassVar[dict[str, Any]] = {"ink_threshold": 0.5}
    keys = (MetricKey("ink_share", "Ink", "share of bright pixels", None),)

    def compute(self, ctx):
        threshold = ctx.options.setting("ink_threshold")
        return {"ink_share": float((ctx.reconstructions() > threshold).float().mean())}


@pytest.fixture
def ink():
    register_family(InkShare)
    yield FAMILIES.get("ink")
    FAMILIES.unregister("ink")


def test_a_family_setting_has_a_default_a_type_and_enters_the_options_key(ink):
    assert "ink_threshold" in option_names()
    default, given = MetricOptions(), MetricOptions(settings=(("ink_threshold", 1),))
    assert default.setting("ink_threshold") == 0.5
    assert given.setting("ink_threshold") == 1.0 and isinstance(
        given.setting("ink_threshold"), float
    )
    assert ink.options_key(default) != ink.options_key(given)
    # a stored result made with the default is re-evaluated when the setting changes
    recorded = {"ink": ink.options_key(default)}
    assert families_to_evaluate(recorded, object(), default, ("ink",)) == []
    assert families_to_evaluate(recorded, object(), given, ("ink",)) == ["ink"]
    with pytest.raises(OptionError, match="ink_threshold must be a finite number") as err:
        MetricOptions(settings=(("ink_threshold", "bright"),))
    assert err.value.key == "ink_threshold"
    back = MetricOptions.from_dict(given.to_dict())
    assert back == given and back.to_dict()["ink_threshold"] == 1.0


def test_a_setting_may_not_take_a_shared_option_or_another_familys_name(ink):
    class Clash(InkShare):
        name = "clash"
        settings: ClassVar[dict[str, Any]] = {"n_samples": 3}
        keys = (MetricKey("clash_x", "x", "x", None),)

    class Twice(InkShare):
        name = "twice"
        settings: ClassVar[dict[str, Any]] = {"ink_threshold": 0.1}
        keys = (MetricKey("twice_x", "x", "x", None),)

    with pytest.raises(ValueError, match="n_samples"):
        register_family(Clash)
    with pytest.raises(ValueError, match="ink"):
        register_family(Twice)
    assert "clash" not in FAMILIES and "twice" not in FAMILIES


def test_unknown_or_bad_options_name_the_key() -> None:
    for table, key in (
        ({"nope": 1}, "nope"),
        ({"iw_k": 0}, "iw_k"),
        ({"n_samples": 5}, "n_samples"),
        ({"backbone": "vgg"}, "backbone"),
        ({"sampler": "uniform"}, "sampler"),
        ({"kid_subsets": True}, "kid_subsets"),
    ):
        with pytest.raises(OptionError) as err:
            MetricOptions.from_dict(table)
        assert err.value.key == key, table
    assert MetricOptions.from_dict({"sampler": "default"}).sampler is None


SUITE = """
name = "s"
models = ["ae"]
datasets = ["mnist-5k"]
archs = ["mlp"]
seeds = [0]
[budget]
steps = 1
[metrics]
n_samples = 100
"""


def test_a_suite_sets_a_family_setting_and_a_bad_one_names_file_and_key(ink, tmp_path, capsys):
    from aebench.experiments.suite import load_suite

    good = tmp_path / "good.toml"
    good.write_text(SUITE + "ink_threshold = 0.25\n")
    (cfg,) = load_suite(good).expand()
    assert cfg.metrics.setting("ink_threshold") == 0.25
    bad = tmp_path / "bad.toml"
    bad.write_text(SUITE + 'ink_threshold = "dark"\n')
    line = one_line_error(capsys, ["run", str(bad), "--store", str(tmp_path / "x.sqlite")])
    assert "bad.toml" in line and "metrics.ink_threshold" in line
    unknown = tmp_path / "unknown.toml"
    unknown.write_text(SUITE + "ink_treshold = 0.2\n")
    line = one_line_error(capsys, ["run", str(unknown), "--store", str(tmp_path / "x.sqlite")])
    assert "ink_treshold" in line and "ink_threshold" in line  # the allowed keys are listed
    assert not (tmp_path / "x.sqlite").exists()


def test_eval_takes_metric_options_and_refuses_bad_ones_in_one_line(
    ink, trained_ae, tmp_path, capsys
):
    from aebench.cli import main

    run = tmp_path / "run"
    run.mkdir()
    save_run(run, trained_ae, {"model": "ae", "model_config": trained_ae.config,
                               "train": {"batch_size": 64, "seed": 5}})  # fmt: skip
    common = ["eval", str(run)]
    skip = [a for f in ("latent", "generation", "sharpness", "speed") for a in ("--skip", f)]
    shares = []
    for threshold in ("0.1", "0.9"):
        assert main([*common, *skip, "-m", f"ink_threshold={threshold}"]) == 0
        scores = json.loads((run / "metrics.json").read_text())
        shares.append(scores["ink_share"])
        assert scores["meta"]["options"]["seed"] == 5  # the run's own seed by default
    assert shares[0] > shares[1] > 0
    before = (run / "metrics.json").read_bytes()
    line = one_line_error(capsys, [*common, *skip, "-m", "ink_threshold=dark"])
    assert "ink_threshold" in line
    line = one_line_error(capsys, [*common, *skip, "-m", "nope=1"])
    assert "nope" in line
    line = one_line_error(capsys, [*common, *skip, "-m", "iw_k"])
    assert "KEY=VALUE" in line
    assert (run / "metrics.json").read_bytes() == before


def test_train_config_refuses_a_missing_budget() -> None:
    from aebench.training.settings import TrainConfig

    with pytest.raises(UsageError, match="budget"):
        TrainConfig(epochs=None).validate()
    TrainConfig(epochs=None, max_steps=3).validate()


def test_a_family_whose_computation_changed_is_re_evaluated_from_old_records():
    """Generation and sharpness gained per-sampler keys (version 2): results stored under
    version 1 (no version in their options key) are re-evaluated by ``eval --store``; the
    other families' old keys still match."""
    import json

    options = MetricOptions(seed=0, train_batch_size=64).resolved()
    generation, reconstruction = FAMILIES.get("generation"), FAMILIES.get("reconstruction")
    old = json.loads(generation.options_key(options))
    assert old.pop("version") == 2 and old.pop("domain_net") == 3
    recorded = {
        "generation": json.dumps(old, sort_keys=True, default=str),
        "reconstruction": reconstruction.options_key(options),
    }
    model = type("M", (), {"has_posterior": True})()
    todo = families_to_evaluate(recorded, model, options, ("generation", "reconstruction"))
    assert todo == ["generation"]


def test_results_of_an_older_domain_net_are_re_measured_and_inceptions_are_not():
    """The domain net's recipe changed (version 3: trained on one thread): generation results
    stored with the older net's key are stale, those of the Inception backbone are not."""
    generation = FAMILIES.get("generation")
    model = type("M", (), {"has_posterior": True})()
    domain = MetricOptions(seed=0).resolved()
    current = json.loads(generation.options_key(domain))
    assert current["domain_net"] == features.DOMAIN_VERSION
    current.pop("domain_net")  # a key stored before the field was
    older = json.dumps(current, sort_keys=True)
    for recorded, todo in ((older, ["generation"]), (generation.options_key(domain), [])):
        assert (
            families_to_evaluate({"generation": recorded}, model, domain, ("generation",)) == todo
        )
    inception = dataclasses.replace(domain, backbone="inception")
    assert "domain_net" not in json.loads(generation.options_key(inception))
