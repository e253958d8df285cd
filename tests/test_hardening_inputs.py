"""Hostile input, round 2: huge images small on disk, huge sample counts, claims and published
values that could never be tested, and input files that are not files.

Every refusal goes through the real CLI (``aebench.cli.main`` in process; a fresh interpreter
where a hang must be cut off by a timeout or a real install is needed) and must be one line on
stderr, exit 2, no traceback, with nothing already on disk changed (sha256 before and after).
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path

import pytest
import torch

from aebench.core.errors import UsageError
from aebench.metrics.options import MetricOptions, check_n_samples
from tests.conftest import file_hashes, one_line_error, run_cli, tiny_suite

TRAIN = ["train", "vae", "--epochs", "1", "--quiet", "--no-eval"]


def assert_one_line(result, code: int = 2) -> str:
    """The refusal of a CLI subprocess: exit ``code``, exactly one stderr line, no traceback."""
    assert result.returncode == code, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aebench: error:"), result.stderr[-2000:]
    return lines[0]


# -- huge images that are small on disk --------------------------------------------------------
def flat_png(width: int, height: int, colour: tuple[int, ...]) -> bytes:
    """A complete, decodable PNG of one flat colour (grey for one value, else RGB), written
    without holding its pixels: every 64-row block deflates, after a full flush, to the same
    bytes, so a 12000x12000 RGB image is built in well under a second and takes ~450 KB."""
    row = b"\0" + bytes(colour) * width  # filter byte 0, then the pixels

    def raw_deflate(data: bytes, mode: int) -> bytes:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        return c.compress(data) + c.flush(mode)

    blocks, rest = divmod(height, 64)
    block, tail = row * 64, row * rest
    adler = 1
    for _ in range(blocks):
        adler = zlib.adler32(block, adler)
    adler = zlib.adler32(tail, adler)
    body = raw_deflate(block, zlib.Z_FULL_FLUSH) * blocks + raw_deflate(tail, zlib.Z_FINISH)
    idat = b"\x78\xda" + body + struct.pack(">I", adler)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0 if len(colour) == 1 else 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_flat_png_is_a_real_png() -> None:
    """Guards the generator: Pillow decodes it to the promised pixels."""
    import io

    import numpy as np
    from PIL import Image

    for colour in ((9,), (10, 200, 30)):
        with Image.open(io.BytesIO(flat_png(131, 70, colour))) as im:
            arr = np.asarray(im.convert("L" if len(colour) == 1 else "RGB"))
        assert arr.shape[:2] == (70, 131) and (arr.reshape(70, 131, -1) == colour).all()


@pytest.fixture(scope="module")
def big_rgb() -> bytes:
    return flat_png(12000, 12000, (10, 200, 30))  # 144 M pixels: under Pillow's bomb error


@pytest.fixture
def big_folder(tmp_path: Path, big_rgb: bytes) -> Path:
    """30 PNGs of 12000x12000 RGB: ~13 MB on disk, ~13 GB decoded at their size."""
    folder = tmp_path / "big"
    folder.mkdir()
    for i in range(30):
        (folder / f"{i:02d}.png").write_bytes(big_rgb)
    return folder


def test_training_on_huge_images_is_refused_from_the_headers(big_folder, tmp_path) -> None:
    """Refused before any decoding, in one line (no DecompressionBombWarning above it)."""
    before, out = file_hashes(big_folder), tmp_path / "run"
    result = run_cli(*TRAIN, "--dataset", "image-folder", "--data-dir", str(big_folder),
                     "--out", str(out), timeout=300)  # fmt: skip
    line = assert_one_line(result)
    assert "12000x12000" in line and "GiB" in line and "limit" in line, line
    assert "DecompressionBomb" not in result.stderr
    assert file_hashes(big_folder) == before and not out.exists()


def test_fid_between_folders_of_huge_images_is_refused(big_folder, tmp_path) -> None:
    before, scores = file_hashes(big_folder), tmp_path / "scores.json"
    result = run_cli("fid", str(big_folder), str(big_folder), "--json", str(scores), timeout=300)
    line = assert_one_line(result)
    assert "GiB" in line and "limit" in line, line
    assert file_hashes(big_folder) == before and not scores.exists()


def test_the_decoded_size_budget_counts_the_final_array_and_one_decode() -> None:
    from aebench.data.files import MAX_DECODED_BYTES, ImageHeader, check_decoded_size

    big = ImageHeader(Path("big.png"), "RGB", (12000, 12000))
    with pytest.raises(UsageError, match=r"30 image\(s\) of 12000x12000"):
        check_decoded_size([big] * 30, "RGB", big.size, "folder")
    check_decoded_size([big] * 30, "L", (64, 64), "folder")  # resized: one decode at a time
    # a grey image costs its pixels in the final array plus twice them while decoding: one
    # fits in 3 × side² <= the limit, two (4 × side²) do not
    side = int((MAX_DECODED_BYTES / 3.5) ** 0.5)
    fits = ImageHeader(Path("a.png"), "L", (side, side))
    check_decoded_size([fits], "L", fits.size, "folder")
    with pytest.raises(UsageError, match="limit"):
        check_decoded_size([fits] * 2, "L", fits.size, "folder")


def test_huge_images_resized_on_load_are_decoded_one_at_a_time(tmp_path) -> None:
    """Large images are legitimate when the set fits: each is decoded, resized and dropped
    before the next, and Pillow's bomb warning (over 89 M pixels) is not raised at the user."""
    from aebench import data

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "big.png").write_bytes(flat_png(12000, 12000, (7,)))
    (tmp_path / "b" / "big.png").write_bytes(flat_png(12000, 12000, (200,)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a DecompressionBombWarning would fail the load
        ds = data.load("image-folder", tmp_path, image_size=16)
    values = torch.cat([ds.train_x, ds.test_x]).unique().tolist()
    assert ds.image_shape == (1, 16, 16) and sorted(values) == [7, 200]


def test_an_image_folder_of_mixed_sizes_is_refused_from_the_headers(tmp_path, capsys) -> None:
    (tmp_path / "a.png").write_bytes(flat_png(16, 16, (1,)))
    (tmp_path / "b.png").write_bytes(flat_png(12000, 12000, (1,)))
    out = tmp_path / "run"
    line = one_line_error(capsys, [*TRAIN, "--dataset", "image-folder", "--data-dir",
                                   str(tmp_path), "--out", str(out)])  # fmt: skip
    assert "mixes image sizes" in line and "b.png is 12000x12000" in line
    assert not out.exists()


# -- n_samples beyond memory ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from aebench.cli import main

    out = tmp_path_factory.mktemp("eval") / "run"
    args = ["train", "ae", "--epochs", "1", "--latent-dim", "4", "--device", "cpu"]
    assert main([*args, "--quiet", "--no-eval", "--out", str(out)]) == 0
    return out


def test_eval_with_ten_million_samples_is_refused_up_front(trained_run, capsys) -> None:
    before = file_hashes(trained_run)
    line = one_line_error(capsys, ["eval", str(trained_run), "-m", "n_samples=10000000"])
    assert "n_samples" in line
    assert file_hashes(trained_run) == before and not (trained_run / "metrics.json").exists()


def test_eval_refuses_samples_that_fit_as_features_but_not_as_images(trained_run, capsys) -> None:
    """240,000 passes the option check (features and k-NN alone fit), but not with the
    generated 1x28x28 images: refused when the data is known, before anything is generated."""
    before = file_hashes(trained_run)
    line = one_line_error(capsys, ["eval", str(trained_run), "--n-samples", "240000"])
    assert "1x28x28" in line and "GiB" in line and "limit" in line, line
    assert file_hashes(trained_run) == before


def test_the_sample_memory_limit_names_the_largest_count_that_fits() -> None:
    from aebench.metrics.generation import MAX_GENERATION_BYTES, generation_memory, memory_problem

    assert generation_memory(10_000, 2048, (3, 32, 32), 4) < MAX_GENERATION_BYTES / 4
    problem = memory_problem(10_000_000, 128, (1, 28, 28), 4)
    assert problem is not None and "10,000,000" in problem
    fits = int(problem.rsplit("n_samples = ", 1)[1].replace(",", ""))
    assert memory_problem(fits, 128, (1, 28, 28), 4) is None
    assert memory_problem(fits + 1, 128, (1, 28, 28), 4) is not None
    with pytest.raises(UsageError, match="GiB"):
        check_n_samples(MetricOptions(n_samples=10_000_000))
    assert check_n_samples(MetricOptions(n_samples=10_000)).n_samples == 10_000


def test_a_stored_config_beyond_the_sample_limit_still_reads() -> None:
    """The limit is checked where options come in, not by the option type: a run stored with
    more samples than this version allows still reads back (listing, migrations)."""
    from aebench.config.run import RunConfig
    from aebench.experiments.suite import load_suite

    stored = load_suite("smoke").expand()[0].to_dict()
    stored["metrics"] = {**stored["metrics"], "n_samples": 10_000_000}
    cfg = RunConfig.from_dict(stored)
    assert cfg.metrics.n_samples == 10_000_000
    with pytest.raises(UsageError, match="n_samples = 10,000,000 needs"):
        check_n_samples(cfg.metrics)


def test_a_suite_with_ten_million_samples_is_refused_before_training(tmp_path, capsys) -> None:
    suite, store = tmp_path / "big.toml", tmp_path / "s.sqlite"
    suite.write_text(tiny_suite("big", ["ae"], [0]).replace("n_samples = 100", "n_samples = "
                                                             "10000000"))  # fmt: skip
    before = file_hashes(tmp_path)
    line = one_line_error(capsys, ["run", str(suite), "--store", str(store)])
    assert "metrics.n_samples" in line
    assert file_hashes(tmp_path) == before and not store.exists()


def test_a_suite_whose_samples_fit_as_features_but_not_as_images_is_refused_before_the_store(
    tmp_path,
    capsys,
) -> None:
    """240,000 passes the check of the options alone, but the evaluation after training would
    refuse it with mnist-5k's 1x28x28 images: refused before the store exists, not after."""
    suite, store = tmp_path / "big.toml", tmp_path / "s.sqlite"
    suite.write_text(tiny_suite("big", ["ae"], [0]).replace("n_samples = 100", "n_samples = "
                                                             "240000"))  # fmt: skip
    before = file_hashes(tmp_path)
    line = one_line_error(capsys, ["run", str(suite), "--store", str(store)])
    assert "metrics.n_samples" in line and "1x28x28" in line and "GiB" in line, line
    assert file_hashes(tmp_path) == before and not store.exists()


def test_train_refuses_samples_its_evaluation_cannot_hold_before_training(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    args = ["train", "ae", "--epochs", "1", "--latent-dim", "4", "--device", "cpu", "--quiet"]
    line = one_line_error(capsys, [*args, "-m", "n_samples=240000", "--out", str(out)])
    assert "1x28x28" in line and "GiB" in line, line
    assert not out.exists()  # nothing trained, nothing written
    line = one_line_error(capsys, [*args, "-m", "n_samples=10000000", "--out", str(out)])
    assert "metric option: n_samples = 10,000,000" in line, line


# -- claims that could never be tested -----------------------------------------------------------
SUITE = tiny_suite("claimed", ["ae", "vae"], [0, 1], steps=3)
CLAIM = '[[claims]]\na = "ae"\nb = "vae"\nmetric = "recon_mse"\nexpect = "lower"\nsource = "s"\n'


def test_a_claim_with_a_misspelt_label_is_refused_before_training(tmp_path, capsys) -> None:
    suite, store = tmp_path / "bad.toml", tmp_path / "s.sqlite"
    suite.write_text(SUITE + CLAIM.replace('a = "ae"', 'a = "aee"'))
    before = file_hashes(tmp_path)
    line = one_line_error(capsys, ["run", str(suite), "--store", str(store)])
    assert "claims[0].a" in line and "'aee'" in line and "bad.toml" in line, line
    assert file_hashes(tmp_path) == before and not store.exists()


@pytest.mark.parametrize(
    ("edit", "key", "words"),
    [
        (('metric = "recon_mse"', 'metric = "recon_mes"'), "claims[0].metric", "recon_mse"),
        (('metric = "recon_mse"', 'a_metric = "fid@gmmm"\nb_metric = "fid"'),
         "claims[0].a_metric", "fid@gmm"),
        (('b = "vae"', 'b = "beta-vae"'), "claims[0].b", "no model labelled"),
        (('source = "s"', 'source = "s"\ndatasets = ["mnist"]'), "claims[0].datasets[0]",
         "not one of this suite's datasets"),
        *[(('metric = "recon_mse"', f'metric = "{column}"'), "claims[0].metric", "not a metric")
          for column in ("label", "run_name", "artifacts", "seed", "run_id")],
    ],
)  # fmt: skip
def test_an_untestable_claim_is_refused_at_load(edit, key, words, tmp_path, capsys) -> None:
    suite, store = tmp_path / "bad.toml", tmp_path / "s.sqlite"
    suite.write_text(SUITE + CLAIM.replace(*edit))
    before = file_hashes(tmp_path)
    line = one_line_error(capsys, ["run", str(suite), "--store", str(store)])
    assert key in line and words in line, line
    report = ["report", "--store", str(store), "--suite", str(suite), "--out", str(tmp_path / "r")]
    assert key in one_line_error(capsys, report)
    assert file_hashes(tmp_path) == before and not store.exists()


def test_a_valid_claim_on_a_suite_label_and_dataset_loads() -> None:
    from aebench.experiments.suite import parse_suite

    text = SUITE + CLAIM.replace('source = "s"', 'source = "s"\ndatasets = ["mnist-5k"]')
    (claim,) = parse_suite(text, "ok.toml").claims
    assert claim.sides() == "ae recon_mse < vae recon_mse" and claim.datasets == ("mnist-5k",)


# -- published values ------------------------------------------------------------------------------
GROUP = (
    '[[group]]\nprotocol = "p"\nsource = "s"\ndataset = "d"\nbinarization = "b"\n'
    'architecture = "a"\nlatent_dim = 16\nbudget = "1 epoch"\nsampler = "prior"\n'
    'n_samples = 100\nfeatures = "f"\nconfirmed = true\n'
)
VALUE = 'values = [{ paper_model = "VAE", model = "vae", metric = "fid", value = 1.5 }]\n'


def _report(tmp_path: Path, published: Path | str) -> list[str]:
    out = tmp_path / "r"
    store = tmp_path / "s.sqlite"
    return ["report", "--store", str(store), "--published", str(published), "--out", str(out)]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (VALUE.replace('"fid"', '"label"'), "'label' is a column"),
        (VALUE.replace('"fid"', '"seed"'), "'seed' is a column"),
        (VALUE.replace('"fid"', '"artifacts"'), "'artifacts' is a column"),
        (VALUE.replace('"fid"', '"fdi"'), "unknown metric 'fdi'"),
        (VALUE.replace("1.5", "1" + "0" * 400), "'value' must be a finite number"),
    ],
)
def test_a_published_value_on_a_non_metric_is_refused(value, words, tmp_path, capsys) -> None:
    path = tmp_path / "values.toml"
    path.write_text(GROUP + value)
    before = file_hashes(tmp_path)
    line = one_line_error(capsys, _report(tmp_path, path))
    assert "values.toml" in line and words in line, line
    assert file_hashes(tmp_path) == before


def test_a_published_value_of_a_sampler_aebench_lacks_is_kept() -> None:
    from aebench.experiments.published import parse_published

    data = {"group": [{"protocol": "p", "source": "s", "dataset": "d", "binarization": "b",
                       "architecture": "a", "latent_dim": 16, "budget": "1", "sampler": "s2",
                       "n_samples": 1, "features": "f", "confirmed": True, "values": [
                           {"paper_model": "2sVAE", "model": "", "metric": "fid@two-stage",
                            "value": 9.0}]}]}  # fmt: skip
    assert parse_published(data, "f.toml")[0].metric == "fid@two-stage"


# -- input files that are not regular files ------------------------------------------------------
def test_dev_zero_as_published_values_is_one_line(tmp_path) -> None:
    line = assert_one_line(run_cli(*_report(tmp_path, "/dev/zero"), timeout=120))
    assert "/dev/zero" in line and "not a regular file" in line
    assert list(tmp_path.iterdir()) == []


def test_a_fifo_as_published_values_does_not_hang(tmp_path) -> None:
    fifo = tmp_path / "values.toml"
    os.mkfifo(fifo)
    line = assert_one_line(run_cli(*_report(tmp_path, fifo), timeout=120))
    assert "values.toml" in line and "not a regular file" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["values.toml"]


def test_a_fifo_or_dev_zero_as_a_suite_is_one_line(tmp_path) -> None:
    fifo, store = tmp_path / "suite.toml", tmp_path / "s.sqlite"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        line = assert_one_line(run_cli("run", str(path), "--store", str(store), timeout=120))
        assert str(path) in line and "not a regular file" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["suite.toml"]


def test_an_oversized_suite_file_is_refused_without_reading_it(tmp_path, capsys) -> None:
    from aebench.core.atomic import MAX_INPUT_BYTES

    suite = tmp_path / "huge.toml"
    with open(suite, "wb") as f:
        f.truncate(MAX_INPUT_BYTES + 1)  # sparse: no disk used
    line = one_line_error(capsys, ["run", str(suite), "--store", str(tmp_path / "s.sqlite")])
    assert "huge.toml" in line and "limit" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.toml"]


@pytest.mark.parametrize("nest", ["[" * 50_000, "{a = " * 50_000])
def test_deeply_nested_toml_is_one_line(nest, tmp_path, capsys) -> None:
    published, suite = tmp_path / "values.toml", tmp_path / "deep.toml"
    published.write_text(GROUP + "x = " + nest + "\n")
    suite.write_text(SUITE + "x = " + nest + "\n")
    before = file_hashes(tmp_path)
    line = one_line_error(capsys, _report(tmp_path, published))
    assert "values.toml" in line and "nested too deeply" in line
    line = one_line_error(capsys, ["run", str(suite), "--store", str(tmp_path / "s.sqlite")])
    assert "deep.toml" in line and "nested too deeply" in line
    assert file_hashes(tmp_path) == before
