"""Suites: shipped files load, the grid expands as stated, hashes are stable and unique, and every
bad input is one line naming the file and the key."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from aebench.core.errors import UsageError
from aebench.experiments.suite import (
    Budget,
    RunConfig,
    Suite,
    available_suites,
    load_suite,
    parse_suite,
)
from aebench.metrics.options import MetricOptions
from aebench.training.settings import TrainConfig
from tests.conftest import REPO, flat_layout, run_cli

GOOD = """
name = "t"
models = ["ae", "vae"]
datasets = ["mnist-5k"]
archs = ["mlp", "conv"]
seeds = [0, 1, 2]
batch_size = 64
latent_dim = 4
device = "cpu"

[budget]
epochs = 2

[metrics]
backbone = "domain"
n_samples = 100
sampler = "default"
iw_k = 5
iw_n = 20
"""


def write(tmp_path: Path, text: str, name: str = "suite.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_suites_load_and_expand_to_stated_grids() -> None:
    assert set(available_suites()) >= {"smoke", "quick", "mnist", "fashion", "cifar10"}
    quick = load_suite("quick")
    assert [m.model for m in quick.models] == ["ae", "vae", "beta-vae", "vae-gan"]
    assert quick.datasets == ("mnist-5k",) and quick.archs == ("conv",)
    assert quick.seeds == (0, 1, 2)
    assert len(quick.expand()) == len(quick) == 12
    smoke = load_suite("smoke")
    assert len(smoke.models) == 2 and smoke.archs == ("mlp",) and smoke.train.epochs == 1
    assert 1 <= len(smoke.seeds) <= 2
    for name in available_suites():
        suite = load_suite(name)
        runs = suite.expand()
        assert len(runs) == len(suite)
        assert len({r.config_hash for r in runs}) == len(runs)
        assert len({r.run_name for r in runs}) == len(runs)


def test_zoo_mnist_runs_every_zoo_model_at_the_zoos_step_count() -> None:
    """zoo-mnist's budget is the zoo's number of optimizer steps on full MNIST (its file says
    so): 60,000 training images against mnist-5k's 4,000, at the same batch size."""
    zoo, full = load_suite("zoo"), load_suite("zoo-mnist")
    assert [m.model for m in full.models] == [m.model for m in zoo.models]
    assert full.datasets == ("mnist",) and zoo.datasets == ("mnist-5k",)
    assert full.train.batch_size == zoo.train.batch_size == 128

    def steps(suite: object, n_train: int) -> int:
        return suite.train.epochs * -(-n_train // suite.train.batch_size)

    assert steps(full, 60_000) == 938 and steps(zoo, 4_000) == 960


def test_expansion_order_names_and_counts(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, GOOD))
    runs = suite.expand()
    assert len(runs) == 2 * 1 * 2 * 3
    assert runs[0].run_name == "ae-mnist-5k-mlp-s0"
    assert runs[-1].run_name == "vae-mnist-5k-conv-s2"
    assert all(r.suite == "t" and r.train.budget == Budget("epochs", 2) for r in runs)
    assert runs[0].metrics == MetricOptions(n_samples=100, backbone="domain", iw_k=5, iw_n=20)
    assert [r.train.seed for r in runs[:3]] == [0, 1, 2]
    assert len({r.config_hash for r in runs}) == 12


def test_name_defaults_to_file_stem(tmp_path: Path) -> None:
    text = GOOD.replace('name = "t"\n', "")
    assert load_suite(write(tmp_path, text, "my-grid.toml")).name == "my-grid"


def test_hash_is_stable_across_processes_and_pinned() -> None:
    cfg = RunConfig(
        suite="x",
        model="vae",
        label="vae",
        dataset="mnist-5k",
        arch="conv",
        latent_dim=16,
        train=TrainConfig(epochs=5, batch_size=128, seed=0),
    )
    code = (
        "from aebench.experiments.suite import *; "
        "print(RunConfig(suite='x', model='vae', label='vae', "
        "dataset='mnist-5k', arch='conv', latent_dim=16, "
        "train=TrainConfig(epochs=5, batch_size=128, seed=0)).config_hash)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert out.stdout.strip() == cfg.config_hash
    # Pinned: if this changes, every store's "already done" check breaks. Bump HASH_VERSION
    # deliberately and update this value only when the hashed fields' meaning changes.
    assert cfg.config_hash == hashlib.sha256(PINNED_CANONICAL.encode()).hexdigest()


# The canonical JSON (sorted keys, no spaces) of the fields that define a run, written out by
# hand: suite, label, data_dir and the metric options are deliberately absent, and every model
# option is there with its value, defaults included (hash version 3): the VAE's config class
# (models/vae/config.py, models/ae/config.py, models/config.py) less the grid's arch, latent
# size and image shape.
PINNED_CANONICAL = (
    '{"arch":"conv","batch_size":128,"budget":{"epochs":5},"dataset":"mnist-5k",'
    '"device":"auto","latent_dim":16,"model":"vae","model_options":{"beta":1.0,'
    '"hidden":[512,256],"kl_warmup":0.0,"lr":0.001,"recon":"bce","sigma":0.1,"width":32},'
    '"seed":0,"v":3}'
)


def test_hash_ignores_bookkeeping_but_not_what_decides_results(tmp_path: Path) -> None:
    cfg = load_suite(write(tmp_path, GOOD)).expand()[0]
    same = dataclasses.replace(cfg, suite="other", label="renamed", data_dir="/elsewhere")
    assert same.config_hash == cfg.config_hash
    # metric options do not change the weights: they are the evaluation's identity, not the run's
    measured = dataclasses.replace(cfg, metrics=MetricOptions(n_samples=99, backbone="inception"))
    assert measured.config_hash == cfg.config_hash
    quiet = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, quiet=True))
    assert quiet.config_hash == cfg.config_hash and quiet == cfg  # display only
    for change in (
        {"seed": 7},
        {"epochs": 3},
        {"epochs": None, "max_steps": 2},
        {"batch_size": 65},
        {"device": "cuda"},
        {"precision": "bf16"},
        {"grad_clip": 1.0},
    ):
        train = dataclasses.replace(cfg.train, **change)
        assert dataclasses.replace(cfg, train=train).config_hash != cfg.config_hash, change
    for change in (
        {"latent_dim": 5},
        {"model_options": (("lr", 0.5),)},
        {"arch": "conv"},
        {"dataset": "mnist"},
    ):
        assert dataclasses.replace(cfg, **change).config_hash != cfg.config_hash, change


def test_the_folder_of_an_image_folder_run_is_in_its_hash(tmp_path: Path, monkeypatch) -> None:
    """There the folder is the data: other images are another run (a suite pointed at folder
    B found folder A's runs done). A relative path hashes as its absolute one, and the hash
    recorded before the folder entered still reads back as this run's."""
    cfg = dataclasses.replace(
        load_suite(write(tmp_path, GOOD)).expand()[0], dataset="image-folder", data_dir="/data/a"
    )
    assert dataclasses.replace(cfg, data_dir="/data/b").config_hash != cfg.config_hash
    monkeypatch.chdir(tmp_path)
    relative = dataclasses.replace(cfg, data_dir="a")
    absolute = str(tmp_path / "a")
    assert relative.config_hash == dataclasses.replace(cfg, data_dir=absolute).config_hash
    assert relative.pinned().data_dir == absolute  # what a worker elsewhere receives
    assert relative.pinned().config_hash == relative.config_hash
    before = cfg.hash_at(3, folder=False)
    assert cfg.hashes_to(before) and before != cfg.config_hash
    mnist = dataclasses.replace(cfg, dataset="mnist")  # a folder that only caches the data
    assert dataclasses.replace(mnist, data_dir="/data/b").config_hash == mnist.config_hash


def test_explicit_default_option_does_not_change_hash(tmp_path: Path) -> None:
    plain = load_suite(write(tmp_path, GOOD.replace('["ae", "vae"]', '["beta-vae"]'), "a.toml"))
    explicit = load_suite(
        write(
            tmp_path,
            GOOD.replace('["ae", "vae"]', '["beta-vae"]') + "\n[overrides.beta-vae]\nbeta = 2\n",
            "b.toml",
        )
    )
    assert [c.config_hash for c in plain.expand()] == [c.config_hash for c in explicit.expand()]


def test_overrides_and_labelled_variants(tmp_path: Path) -> None:
    text = (
        GOOD.replace(
            'models = ["ae", "vae"]',
            'models = ["vae", { model = "vae", label = "vae-b8", beta = 8 }]',
        )
        + '\n[overrides.vae]\nrecon = "mse"\nhidden = [64, 32]\n'
    )
    suite = load_suite(write(tmp_path, text))
    by_label = {m.label: m for m in suite.models}
    assert by_label["vae"].options_dict == {"recon": "mse", "hidden": [64, 32]}
    assert by_label["vae-b8"].options_dict == {"beta": 8.0}
    cfg = next(c for c in suite.expand() if c.label == "vae-b8")
    assert cfg.run_name.startswith("vae-b8-") and cfg.model == "vae"
    kwargs = cfg.model_kwargs((1, 28, 28))
    assert kwargs == {"beta": 8.0, "arch": cfg.arch, "latent_dim": 4, "image_shape": [1, 28, 28]}
    from aebench import models

    models.create(cfg.model, **kwargs)  # the options really build the model


def test_json_round_trip_every_shipped_config(tmp_path: Path) -> None:
    text = GOOD + "\n[overrides.vae]\nhidden = [64, 32]\nbeta = 2.5\n"
    configs = load_suite(write(tmp_path, text)).expand()
    for name in available_suites():
        configs += load_suite(name).expand()
    for cfg in configs:
        back = RunConfig.from_json(cfg.to_json())
        assert back == cfg and back.config_hash == cfg.config_hash
        assert hash(back) == hash(cfg)


def test_from_json_refuses_edited_or_malformed_configs() -> None:
    cfg = load_suite("smoke").expand()[0]
    data = json.loads(cfg.to_json())
    data["train"]["seed"] = 99
    with pytest.raises(UsageError, match="does not match"):
        RunConfig.from_json(json.dumps(data))
    bad_train = json.dumps({**data, "train": {"x": 1}})
    bad_metric = json.dumps({**data, "metrics": {"iw_k": 0}})
    for bad in ("{", "[]", '{"model": "ae"}', bad_train, bad_metric):
        with pytest.raises(UsageError):
            RunConfig.from_json(bad)


def test_the_flat_layout_of_older_stores_reads_back_with_the_same_hash() -> None:
    """Stores written before the config tree hold budget, batch size, seed and device at the
    top and five metric options; they read back as the same run (same hash, same options)."""
    cfg = load_suite("quick").expand()[4]
    flat = {**flat_layout(cfg), "config_hash": cfg.config_hash}
    back = RunConfig.from_dict(flat)
    assert back == cfg and back.config_hash == cfg.config_hash


def test_unknown_suite_name_lists_shipped_ones() -> None:
    with pytest.raises(UsageError, match="smoke"):
        load_suite("no-such-suite")
    with pytest.raises(UsageError, match="not found"):
        load_suite("missing/dir/x.toml")


def sub(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new)


BAD_CASES = [
    ("syntax", GOOD + "\nthis is = = not toml\n", f"line {GOOD.count(chr(10)) + 2},"),
    ("unknown-top", "foo = 1\n" + GOOD, "'foo'"),
    ("unknown-budget", sub("epochs = 2", "epoch = 2"), "budget.epoch"),
    ("unknown-metrics", sub("iw_k = 5", "iwk = 5"), "metrics.iwk"),
    ("models-type", sub('["ae", "vae"]', '"vae"'), "'models'"),
    ("models-empty", sub('["ae", "vae"]', "[]"), "'models'"),
    ("epochs-zero", sub("epochs = 2", "epochs = 0"), "budget.epochs"),
    ("epochs-negative", sub("epochs = 2", "epochs = -3"), "budget.epochs"),
    ("epochs-float", sub("epochs = 2", "epochs = 2.5"), "budget.epochs"),
    ("seconds-nan", sub("epochs = 2", "seconds = nan"), "budget.seconds"),
    ("two-budgets", sub("epochs = 2", "epochs = 2\nsteps = 5"), "'budget'"),
    ("no-budget", sub("epochs = 2", ""), "'budget'"),
    ("batch-zero", sub("batch_size = 64", "batch_size = 0"), "batch_size"),
    ("batch-bool", sub("batch_size = 64", "batch_size = true"), "batch_size"),
    ("latent-zero", sub("latent_dim = 4", "latent_dim = 0"), "latent_dim"),
    ("beta-negative", GOOD + "\n[overrides.vae]\nbeta = -1.0\n", "beta"),
    ("beta-string", GOOD + '\n[overrides.vae]\nbeta = "big"\n', "overrides.vae.beta"),
    ("inline-beta", sub('["ae", "vae"]', '[{ model = "vae", beta = -2 }]'), "beta"),
    ("hidden-zero", GOOD + "\n[overrides.ae]\nhidden = [0]\n", "hidden"),
    ("unknown-option", GOOD + "\n[overrides.vae]\nwarp = 9\n", "warp"),
    ("reserved-option", GOOD + "\n[overrides.vae]\nlatent_dim = 9\n", "overrides.vae.latent_dim"),
    ("override-missing-model", GOOD + "\n[overrides.vae-gan]\ngamma = 1.0\n", "overrides.vae-gan"),
    ("seed-string", sub("[0, 1, 2]", '[0, "1"]'), "seeds[1]"),
    ("seed-float", sub("[0, 1, 2]", "[0.5]"), "seeds[0]"),
    ("seed-negative", sub("[0, 1, 2]", "[-1]"), "seeds[0]"),
    ("seed-duplicate", sub("[0, 1, 2]", "[0, 1, 1]"), "'seeds'"),
    ("unknown-model", sub('["ae", "vae"]', '["vea"]'), "models[0]"),
    ("duplicate-model", sub('["ae", "vae"]', '["ae", "ae"]'), "'models'"),
    # two labels that would make the same runs (the store keeps one: the other label vanished)
    (
        "same-runs",
        sub('["ae", "vae"]', '["ae", { model = "ae", label = "ae-again" }]'),
        "'ae' and 'ae-again' are the same model with the same options",
    ),
    (
        "same-runs-default-written-out",
        sub('["ae", "vae"]', '["beta-vae", { model = "beta-vae", label = "b2", beta = 2 }]'),
        "'beta-vae' and 'b2'",
    ),
    ("unknown-dataset", sub('["mnist-5k"]', '["mnist-6k"]'), "datasets[0]"),
    ("unknown-arch", sub('["mlp", "conv"]', '["mlp", "resnet"]'), "archs[1]"),
    ("unknown-backbone", sub('backbone = "domain"', 'backbone = "vgg"'), "metrics.backbone"),
    ("unknown-sampler", sub('sampler = "default"', 'sampler = "uniform"'), "metrics.sampler"),
    ("n-samples-zero", sub("n_samples = 100", "n_samples = 0"), "metrics.n_samples"),
    ("device", sub('device = "cpu"', 'device = "gpu"'), "device"),
    ("name", sub('name = "t"', 'name = "a b/c"'), "name"),
    ("metrics-type", "metrics = 3\n" + GOOD.split("[metrics]")[0], "'metrics'"),
]


@pytest.mark.parametrize(("text", "key"), [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES])
def test_every_bad_input_is_one_line_naming_file_and_key(
    tmp_path: Path, text: str, key: str
) -> None:
    path = write(tmp_path, text, "bad-suite.toml")
    with pytest.raises(UsageError) as info:
        load_suite(path)
    message = str(info.value)
    assert "\n" not in message
    assert "bad-suite.toml" in message
    assert key in message, message


def test_not_utf8_and_directory_are_usage_errors(tmp_path: Path) -> None:
    path = tmp_path / "bin.toml"
    path.write_bytes(b"name = '\xff\xfe'\n")
    with pytest.raises(UsageError, match="UTF-8"):
        load_suite(path)
    (tmp_path / "dir.toml").mkdir()
    with pytest.raises(UsageError, match="directory"):
        load_suite(tmp_path / "dir.toml")


def test_good_text_parses_the_same_as_the_file(tmp_path: Path) -> None:
    a = parse_suite(GOOD, source="x.toml")
    b = load_suite(write(tmp_path, GOOD))
    assert [c.config_hash for c in a.expand()] == [c.config_hash for c in b.expand()]
    assert isinstance(Suite.from_dict({**__import__("tomllib").loads(GOOD)}), Suite)


def test_cli_run_with_a_bad_suite_exits_2_with_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, sub("epochs = 2", "epochs = -1"), "neg.toml")
    out = run_cli("run", str(path), "--store", str(tmp_path / "s.sqlite"), timeout=120)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "neg.toml" in lines[0] and "budget.epochs" in lines[0]
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "s.sqlite").exists()  # nothing written for a refused suite
