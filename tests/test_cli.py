"""The command line as a user meets it: files written, names listed, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

from tests.conftest import REPO, one_line_error, run_cli


def test_models_and_datasets_are_listed_one_per_line():
    out = run_cli("models")
    assert out.returncode == 0
    assert {"ae", "vae", "beta-vae", "vae-gan"} <= set(out.stdout.splitlines())
    out = run_cli("datasets")
    assert {"mnist-5k", "mnist", "fashion-mnist", "cifar10", "image-folder"} <= set(
        out.stdout.splitlines()
    )


def test_listing_and_bad_input_do_not_load_the_metric_stack(tmp_path):
    # torchmetrics, torchvision and scipy cost seconds to import: `aebench models` and a one-line
    # error must not wait for them
    probe = (
        "import sys\n"
        "from aebench.cli import main\n"
        "codes = [main(['models']), main(['run', sys.argv[1]])]\n"
        "heavy = sorted(m for m in ('torchmetrics', 'torchvision', 'scipy') if m in sys.modules)\n"
        "print(codes, heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / "missing.toml")],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.splitlines()[-1] == "[0, 2] []"
    assert out.stderr.strip().endswith("suite file not found")


def test_help_and_a_bad_gate_input_do_not_import_torch(tmp_path):
    """The parser holds only the invoked command's options, and the store's and the speed
    trend's modules do not load the model registry: help and a refused trend input answer
    without torch's ~1.3 s. ``eval --help`` is the exception (it lists the metric families)."""
    probe = (
        "import sys\n"
        "from aebench.cli import main\n"
        "from aebench.commands import COMMANDS\n"
        "def code(args):\n"
        "    try:\n"
        "        return main(args)\n"
        "    except SystemExit as done:\n"
        "        return done.code\n"
        "helps = [[c.NAME, '--help'] for c in COMMANDS if c.NAME != 'eval']\n"
        "codes = [code(a) for a in [['--help'], *helps]]\n"
        "codes.append(code(['gate', 'trend', sys.argv[1], '--baseline', sys.argv[1]]))\n"
        "print(len(codes), sorted(set(codes)), 'torch' in sys.modules, file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "missing.json")],
                         cwd=REPO, capture_output=True, text=True, check=True)  # fmt: skip
    assert out.stderr.splitlines()[-1] == "13 [0, 2] False", out.stderr[-2000:]


def test_train_writes_the_run_folder(tmp_path):
    out = tmp_path / "run"
    result = run_cli(
        "train",
        "vae",
        "--dataset",
        "mnist-5k",
        "--arch",
        "conv",
        "--epochs",
        "1",
        "--seed",
        "1",
        "--latent-dim",
        "8",
        "--out",
        str(out),
        "--quiet",
        "--no-eval",
    )
    assert result.returncode == 0, result.stderr
    for name in (
        "model.safetensors",
        "config.json",
        "history.json",
        "reconstructions.png",
        "samples.png",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "vae" and config["model_config"]["latent_dim"] == 8
    assert config["environment"]["threads"] >= 1 and config["train"]["seed"] == 1
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 1 and {"loss", "recon", "kl"} <= set(history[0]["test"])
    with Image.open(out / "samples.png") as im:
        assert im.size == (8 * 30 + 2, 8 * 30 + 2)  # 8×8 grid of 28 px with 2 px padding
    with Image.open(out / "reconstructions.png") as im:
        assert im.size == (16 * 30 + 2, 4 * 30 + 2)


def _bad_inputs(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    base = ["--epochs", "1", "--quiet", "--out"]
    return {
        "unknown model": ["train", "nope", *base, str(tmp_path / "o1")],
        "unknown dataset": ["train", "vae", "--dataset", "svhn", *base, str(tmp_path / "o2")],
        "epochs < 1": ["train", "vae", "--epochs", "0", "--out", str(tmp_path / "o3")],
        "latent-dim < 1": ["train", "vae", "--latent-dim", "0", *base, str(tmp_path / "o4")],
        "data dir is a file": [
            "train",
            "vae",
            "--dataset",
            "mnist",
            "--data-dir",
            str(a_file),
            *base,
            str(tmp_path / "o5"),
        ],
        "out is a file": ["train", "vae", *base, str(a_file)],
        "epochs not a number": ["train", "vae", "--epochs", "many", "--out", str(tmp_path / "o6")],
        "unknown arch": ["train", "vae", "--arch", "resnet", *base, str(tmp_path / "o7")],
        "unknown command": ["frobnicate"],
    }


@pytest.mark.parametrize(
    "case",
    [
        "unknown model",
        "unknown dataset",
        "epochs < 1",
        "latent-dim < 1",
        "data dir is a file",
        "out is a file",
        "epochs not a number",
        "unknown arch",
        "unknown command",
    ],
)
def test_bad_input_exits_2_with_one_line(case, tmp_path, capsys):
    """In-process through the CLI's own ``main`` (an escaping exception fails the test just as
    a traceback would); one case below runs as a real process."""
    from aebench.cli import main

    args = _bad_inputs(tmp_path)[case]
    code = main(args)
    stderr = capsys.readouterr().err
    assert code == 2, (case, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aebench: error:"), stderr
    assert (tmp_path / "a_file").read_text() == "x"  # nothing already there was damaged


def test_bad_input_in_a_real_process_exits_2_without_a_traceback(tmp_path):
    result = run_cli(*_bad_inputs(tmp_path)["out is a file"])
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aebench: error:"), result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "a_file").read_text() == "x"


def test_a_trailing_plugin_without_a_file_blames_only_itself(tmp_path, capsys):
    """The command is still found when the early read of ``--plugin`` fails, so the command's
    own options are known and only the dangling ``--plugin`` is named."""
    from aebench.cli import main

    line = one_line_error(capsys, ["train", "vae", "--out", str(tmp_path / "o"), "--plugin"])
    assert line == "aebench: error: aebench: unrecognized arguments: --plugin"
    with pytest.raises(SystemExit) as done:
        main(["train", "-h", "--plugin"])
    assert done.value.code == 0 and "--latent-dim" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "says"),
    [
        # wrote config.json, the weights and the images into the current folder
        (["train", "ae", "--epochs", "1", "--out", ""], "--out is empty"),
        # the metric option was silently dropped
        (
            ["train", "ae", "--epochs", "1", "--no-eval", "-m", "n_samples=50", "--out", "o"],
            "--no-eval evaluates nothing",
        ),
    ],
)
def test_contradictory_or_empty_train_arguments_are_one_line(tmp_path, capsys, monkeypatch,
                                                             args, says):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    line = one_line_error(capsys, args)
    assert says in line
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_export_of_a_suite_the_store_lacks_is_one_line_and_keeps_the_old_file(tmp_path, capsys):
    """It printed "wrote 0 metric rows" and replaced an earlier export with an empty one."""
    from aebench.cli import main
    from aebench.store.database import Store

    store = tmp_path / "s.sqlite"
    with Store.open(store):
        pass
    out = tmp_path / "earlier.csv"
    out.write_text("run_id,name\n1,fid\n")
    line = one_line_error(capsys, ["export", "--store", str(store), "--suite", "quik",
                                   "--out", str(out)])  # fmt: skip
    assert "has no suite 'quik'" in line and out.read_text() == "run_id,name\n1,fid\n"
    assert main(["export", "--store", str(store), "--out", str(out)]) == 0  # no filter: fine


@pytest.mark.parametrize(
    ("args", "says"),
    [
        # -m silently won: the Inception backbone ran where --backbone said domain
        (["-m", "backbone=inception", "--backbone", "domain"], "contradicts --backbone domain"),
        (["--only", "latent", "--skip", "latent"], "--only latent and --skip latent contradict"),
    ],
)
def test_contradictory_eval_arguments_are_one_line(tmp_path, capsys, args, says):
    store = tmp_path / "s.sqlite"
    line = one_line_error(capsys, ["eval", "--store", str(store), *args])
    assert says in line and not store.exists()
