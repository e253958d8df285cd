"""Option values under hostile input (issue 13, items 7, 9, 10 and 14).

``-o KEY=VALUE`` goes through the same validator as a suite's model options
(``models/config.py``), so the two paths accept and refuse exactly the same values: the
hypothesis test at the end holds them to that.
"""

from __future__ import annotations

import json
import struct
import zlib

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aebench import models
from aebench.commands.train import parse_option
from aebench.core.errors import UsageError
from aebench.experiments.suite import Suite, parse_suite
from tests.conftest import file_hashes, one_line_error

TRAIN = ["train", "vae", "--epochs", "1", "--quiet", "--no-eval"]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["-o", "lr=abc"], "lr"),
        (["-o", "lr=NaN"], "lr"),
        (["-o", "lr=Infinity"], "lr"),
        (["-o", "lr=true"], "lr"),
        (["-o", 'hidden="abc"'], "hidden"),
        (["-o", "hidden=[]"], "hidden"),
        (["-o", "hidden=[1.5]"], "hidden"),
        (["--arch", "conv", "-o", "width=1.5"], "width"),
        (["-o", "beta=[1]"], "beta"),
        (["-o", "beta=-1"], "beta"),
        (["-o", "image_shape=[3,7,7]"], "image_shape"),
        (["--arch", "mlp", "-o", "arch=conv"], "arch"),
        (["-o", "latent_dim=3"], "latent_dim"),
        (["-o", "recon=xyz"], "recon"),
        (["-o", "nope=1"], "nope"),
        (["-o", "novalue"], "novalue"),
        (["-o", "x" * 5 + "=" + "[" * 5000], "x"),
    ],
)
def test_bad_model_options_are_one_line_and_write_nothing(tmp_path, capsys, args, named):
    out = tmp_path / "run"
    line = one_line_error(capsys, [*TRAIN, *args, "--out", str(out)])
    assert named in line
    assert not out.exists()


def test_a_wrong_type_for_a_bool_option_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    line = one_line_error(
        capsys, ["train", "vae-gan", "--epochs", "1", "-o", "spectral_norm=5", "--out", str(out)]
    )
    assert "spectral_norm" in line and "true or false" in line


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--seed", "99999999999999999999999"], "seed"),
        (["--seed", "-1"], "seed"),
        # within int64 but not 2**32: the data order's seed (seed * 100003 + epoch) used to
        # overflow torch's generator in the first epoch, a ValueError traceback
        (["--seed", "1000000000000000"], "seed must be an integer from 0 to 2**32 - 1"),
        (["--latent-dim", "1000000000"], "latent_dim"),
        (["-o", "hidden=[4000000000]"], "hidden"),
        (["-o", "hidden=[60000,60000,60000]"], "GiB"),  # in range, but 14e9 parameters
    ],
)
def test_huge_values_are_one_line_naming_the_size(tmp_path, capsys, args, named):
    out = tmp_path / "run"
    line = one_line_error(capsys, [*TRAIN, *args, "--out", str(out)])
    assert named in line
    assert not out.exists()


def test_good_options_reach_config_json(tmp_path):
    from aebench.cli import main

    out = tmp_path / "run"
    args = [*TRAIN, "--latent-dim", "4", "-o", "lr=0.002", "-o", "hidden=[64]", "-o", "beta=2"]
    assert main([*args, "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())["model_config"]
    assert (config["lr"], config["hidden"], config["beta"], config["arch"]) == (
        0.002,
        [64],
        2.0,
        "mlp",
    )


# -- item 10: a decompression bomb -------------------------------------------------------------
def _png_header_only(path, width: int, height: int) -> None:
    """A PNG whose header claims ``width`` × ``height`` grey pixels (the data is a stub):
    Pillow judges a decompression bomb from the header, before inflating anything."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
                     + chunk(b"IEND", b""))  # fmt: skip


@pytest.fixture
def bomb_folder(tmp_path):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(8):
        Image.new("L", (28, 28), color=i * 20).save(folder / f"{i}.png")
    _png_header_only(folder / "9-bomb.png", 30000, 30000)
    return folder


def test_a_decompression_bomb_in_an_image_folder_is_one_line(bomb_folder, tmp_path, capsys):
    out = tmp_path / "run"
    line = one_line_error(
        capsys, [*TRAIN, "--dataset", "image-folder", "--data-dir", str(bomb_folder),
                 "--out", str(out)],
    )  # fmt: skip
    assert "9-bomb.png" in line and "too large" in line
    assert not out.exists()


def test_a_decompression_bomb_given_to_fid_is_one_line(bomb_folder, tmp_path, capsys):
    before = file_hashes(bomb_folder)
    line = one_line_error(capsys, ["fid", "mnist-5k", str(bomb_folder), "--n", "9"])
    assert "9-bomb.png" in line and "decompression bomb" in line
    assert file_hashes(bomb_folder) == before


# -- item 14: suite metric options checked up front ----------------------------------------------
SUITE = """
models = ["ae"]
datasets = ["mnist-5k"]
archs = ["mlp"]
seeds = [0]
[budget]
steps = 2
[metrics]
n_samples = {n}
"""


@pytest.mark.parametrize("n", [0, 3, 11])
def test_too_few_samples_for_the_generation_metrics_is_refused_by_the_parser(n):
    with pytest.raises(UsageError, match="n_samples") as err:
        parse_suite(SUITE.format(n=n), source="s.toml")
    assert "\n" not in str(err.value)


def test_the_smallest_accepted_sample_count_is_what_evaluation_accepts():
    from aebench.metrics.evaluation import MetricOptions

    suite = parse_suite(SUITE.format(n=12), source="s.toml")
    assert suite.metrics.n_samples == 12
    MetricOptions(n_samples=12)  # the evaluation agrees: no error
    with pytest.raises(UsageError):
        MetricOptions(n_samples=11)


# -- one validator for the command line and the suite ---------------------------------------------
KEYS = ["lr", "beta", "hidden", "width", "recon", "sigma", "spectral_norm", "gamma", "nope"]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3),
    max_leaves=4,
)


def _cli_verdict(model: str, text: str) -> object:
    """What ``-o TEXT`` makes of an option: the model's config, or the UsageError type."""
    try:
        key, value = parse_option(text)
        with torch.device("meta"):  # validation only: nothing is allocated
            return models.create(model, **{key: value}).config
    except UsageError:
        return UsageError


def _suite_verdict(model: str, key: str, value: object) -> object:
    table = {"model": model, key: value}
    data = {"models": [table], "datasets": ["mnist-5k"], "archs": ["mlp"], "seeds": [0],
            "budget": {"steps": 1}}  # fmt: skip
    try:
        options = Suite.from_dict(data, source="fuzz").models[0].options_dict
    except UsageError:
        return UsageError
    with torch.device("meta"):
        return models.create(model, **options).config


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=st.sampled_from(["ae", "vae", "vae-gan"]),
    key=st.sampled_from(KEYS),
    value=json_values,
)
def test_the_command_line_and_the_suite_accept_and_refuse_the_same_values(model, key, value):
    """Fuzz ``-o KEY=VALUE``: any value is either refused in one line or becomes the model's
    option, and the suite parser decides the same for the same value. (TOML has no null, so
    values holding None are only checked on the command line.)"""
    try:
        text = f"{key}={json.dumps(value, allow_nan=True)}"
    except ValueError:
        return
    verdict = _cli_verdict(model, text)
    if verdict is UsageError:
        try:
            parse_option(text)
            with torch.device("meta"):
                models.create(model, **dict([parse_option(text)]))
        except UsageError as err:
            assert "\n" not in str(err)
    if "null" not in text:
        assert _suite_verdict(model, key, value) == verdict, text
