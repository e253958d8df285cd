"""Run folders and checkpoints under hostile input (issue 13, items 3, 4, 5, 8, 12 and 14).

Every refusal is one line with exit 2, and every file already written is byte-identical
afterwards (``file_hashes``).
"""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from aebench import data, models
from aebench.cli import main
from aebench.store.run_folder import load_run
from aebench.training.checkpoint import load_checkpoint, save_checkpoint
from aebench.training.settings import TrainConfig
from aebench.training.trainer import Trainer
from tests.conftest import file_hashes, one_line_error, subset

TRAIN = ["train", "vae", "--latent-dim", "4", "--quiet", "--no-eval"]


def _folder(root, n: int):
    gen = torch.Generator().manual_seed(n)
    root.mkdir()
    for i in range(n):
        pixels = torch.randint(0, 256, (28, 28), generator=gen, dtype=torch.uint8).numpy()
        Image.fromarray(pixels).save(root / f"{i:03d}.png")
    return root


# -- item 3: small image folders ---------------------------------------------------------------
@pytest.mark.parametrize(("model", "n"), [("vae", 20), ("ae", 20), ("ae", 2), ("vae-gan", 3)])
def test_small_image_folders_train_to_the_end(tmp_path, model, n):
    """Under ~160 images the test split has fewer than 16 images (the grid's row) and with two
    images the AE fits its sampling Gaussian to a single code; both used to crash after
    training, leaving the checkpoint behind and no PNGs."""
    images = _folder(tmp_path / "imgs", n)
    out = tmp_path / "run"
    args = ["train", model, "--dataset", "image-folder", "--data-dir", str(images), "--epochs",
            "1", "--quiet", "--no-eval", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    written = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "reconstructions.png", "samples.png"} <= written
    assert "checkpoint.safetensors" not in written
    model_, _ = load_run(out)
    assert torch.isfinite(model_.sample(4)).all()


def test_a_folder_too_small_to_split_is_refused_before_anything_is_written(tmp_path, capsys):
    images = _folder(tmp_path / "one", 1)
    out = tmp_path / "run"
    line = one_line_error(
        capsys, [*TRAIN, "--dataset", "image-folder", "--data-dir", str(images), "--out", str(out)]
    )
    assert "at least 2" in line
    assert not out.exists()


# -- item 5: a finished run is never replaced by accident --------------------------------------
@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main([*TRAIN, "--epochs", "1", "--seed", "3", "--out", str(out)]) == 0
    (out / "metrics.json").write_text('{"recon_mse": 0.5}\n')  # as `aebench eval` would leave
    return out


@pytest.mark.parametrize("extra", [[], ["--resume"]], ids=["again", "resume-without-checkpoint"])
def test_training_over_a_finished_run_is_refused(finished, capsys, extra):
    before = file_hashes(finished)
    line = one_line_error(capsys, [*TRAIN, "--epochs", "1", "--out", str(finished), *extra])
    assert "--overwrite" in line
    assert file_hashes(finished) == before


def test_overwrite_replaces_the_run_and_leaves_no_stale_metrics(finished, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(finished, out)
    old = (out / "model.safetensors").read_bytes()
    assert main([*TRAIN, "--epochs", "1", "--seed", "4", "--out", str(out), "--overwrite"]) == 0
    assert (out / "model.safetensors").read_bytes() != old
    assert not (out / "metrics.json").exists()  # --no-eval: no metrics of the old weights stay
    assert json.loads((out / "config.json").read_text())["train"]["seed"] == 4


# -- items 4 and 8: a checkpoint resumed under other settings, or with edited metadata ---------
def _checkpointed_run(tmp_path, epochs_asked: int = 3):
    """A run folder holding the checkpoint of a seed-3, batch-64 run after its first epoch of
    ``epochs_asked``, exactly as `aebench train ... --epochs 3` leaves it when killed then."""
    dataset = data.load("mnist-5k")
    out = tmp_path / "run"
    out.mkdir()
    model = models.create("vae", arch="mlp", latent_dim=4, image_shape=[1, 28, 28])
    config = TrainConfig(epochs=1, batch_size=64, seed=3, quiet=True)
    path = out / "checkpoint.safetensors"
    Trainer(model, dataset, config, "vae", checkpoint=path).fit()
    tensors, meta = load_checkpoint(path)
    meta["train"]["epochs"] = epochs_asked
    save_checkpoint(path, tensors, meta)
    return out


RESUME = [*TRAIN, "--seed", "3", "--batch-size", "64", "--resume"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (["--epochs", "3", "--seed", "99"], "seed"),
        (["--epochs", "3", "--batch-size", "256"], "batch_size"),
        (["--epochs", "2"], "epochs"),
        (["--epochs", "3", "--precision", "bf16"], "precision"),
    ],
)
def test_resume_with_other_training_settings_is_refused(tmp_path, capsys, change, named):
    out = _checkpointed_run(tmp_path)
    before = file_hashes(out)
    line = one_line_error(capsys, [*RESUME, *change, "--out", str(out)])
    assert f"{named}=" in line
    assert file_hashes(out) == before


@pytest.mark.parametrize("epochs", [3, 5])
def test_resume_with_the_same_or_more_epochs_finishes(tmp_path, epochs):
    out = _checkpointed_run(tmp_path)
    assert main([*RESUME, "--epochs", str(epochs), "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["epochs"] == epochs and config["train"]["seed"] == 3
    assert config["train"]["batch_size"] == 64
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, epochs + 1))


def _edit(meta, tensors, edit):
    if edit == "py_random is a string":
        meta["py_random"] = "abc"
    elif edit == "optim_groups missing":
        del meta["optim_groups"]
    elif edit == "step is text":
        meta["step"] = "abc"
    elif edit == "np_random is short":
        meta["np_random"] = [1, 2]
    elif edit == "rng.torch removed":
        del tensors["rng.torch"]
    elif edit == "history is a number":
        meta["history"] = 7
    elif edit == "in_epoch names a missing term":
        meta["in_epoch"] = {"epoch": 2, "start": 64, "seen": 64, "terms": ["nope"]}
    elif edit == "train is null":
        meta["train"] = None
    elif edit == "step is huge":
        meta["step"] = 2**70
    elif edit == "epochs_done beyond the run":
        meta["epochs_done"] = 60
    elif edit == "history epoch is text":
        meta["history"][0]["epoch"] = "a"
    elif edit == "seed is a float":
        meta["train"]["seed"] = 3.0


@pytest.mark.parametrize(
    "edit",
    [
        "py_random is a string",
        "optim_groups missing",
        "step is text",
        "np_random is short",
        "rng.torch removed",
        "history is a number",
        "in_epoch names a missing term",
        "train is null",
        "step is huge",
        "epochs_done beyond the run",
        "history epoch is text",
        "seed is a float",
    ],
)
def test_checkpoint_with_edited_metadata_is_one_line(tmp_path, capsys, edit):
    out = _checkpointed_run(tmp_path)
    path = out / "checkpoint.safetensors"
    tensors, meta = load_checkpoint(path)
    _edit(meta, tensors, edit)
    save_checkpoint(path, tensors, meta)
    before = file_hashes(out)
    line = one_line_error(capsys, [*RESUME, "--epochs", "3", "--out", str(out)])
    assert "checkpoint" in line
    assert file_hashes(out) == before


@pytest.mark.parametrize(
    "text", ["[" * 100_000 + "]" * 100_000, '{"format": 1' + "0" * 5000 + "}", "not json"]
)
def test_checkpoint_with_unparseable_metadata_is_one_line(tmp_path, capsys, text):
    from safetensors.torch import load_file, save_file

    out = _checkpointed_run(tmp_path)
    path = out / "checkpoint.safetensors"
    save_file(load_file(str(path)), str(path), metadata={"aebench": text})
    before = file_hashes(out)
    line = one_line_error(capsys, [*RESUME, "--epochs", "3", "--out", str(out)])
    assert "corrupt metadata" in line
    assert file_hashes(out) == before


def test_resume_and_overwrite_together_are_refused(tmp_path, capsys):
    out = _checkpointed_run(tmp_path)
    before = file_hashes(out)
    one_line_error(capsys, [*RESUME, "--epochs", "3", "--overwrite", "--out", str(out)])
    assert file_hashes(out) == before


# -- item 12: evaluating a damaged run ---------------------------------------------------------
def test_eval_of_nan_weights_is_a_one_line_diagnosis(finished, tmp_path, capsys):
    import shutil

    from safetensors.torch import load_file, save_file

    out = tmp_path / "nan"
    shutil.copytree(finished, out)
    state = load_file(str(out / "model.safetensors"))
    save_file({k: torch.full_like(v, float("nan")) for k, v in state.items()},
              str(out / "model.safetensors"))  # fmt: skip
    before = file_hashes(out)
    line = one_line_error(capsys, ["eval", str(out)])
    assert "NaN" in line and "diverged" in line
    assert file_hashes(out) == before


@pytest.mark.parametrize("bad", [[1, 2], {"latent_dim": "x"}, {"nope": 1}, "vae"])
def test_eval_of_a_damaged_config_is_one_line(finished, tmp_path, capsys, bad):
    import shutil

    out = tmp_path / "cfg"
    shutil.copytree(finished, out)
    config = json.loads((out / "config.json").read_text())
    config["model_config"] = bad
    (out / "config.json").write_text(json.dumps(config))
    before = file_hashes(out)
    one_line_error(capsys, ["eval", str(out)])
    assert file_hashes(out) == before


# -- item 14: a wall-clock budget shorter than one epoch ---------------------------------------
def test_a_tiny_seconds_budget_still_trains_one_epoch(mnist5k):
    small = subset(mnist5k, 256, 64)
    model = models.create("ae", latent_dim=4)
    trainer = Trainer(model, small, TrainConfig(epochs=10**9, max_seconds=1e-9, quiet=True))
    history = trainer.fit()
    assert len(history) == 1 and trainer.step == 4  # 256 images / batch 64: one whole epoch


@pytest.mark.parametrize(
    ("model_name", "options", "milestones", "named"),
    [
        ("vae", {}, (0.75,), "learning-rate milestones"),
        ("vae", {"kl_warmup": 0.5}, (), "a KL warm-up"),
    ],
)
def test_a_run_that_plans_on_its_budget_is_not_extended(
    tmp_path, model_name, options, milestones, named
):
    """Extending moved the plan under a part-trained run: a milestone at 0.75 of 2 epochs
    already applied was applied again at 0.75 of 4 (two decays where there is one). The
    same settings still resume, and a run that plans nothing still extends."""
    from aebench.core.errors import UsageError

    dataset = subset(data.load("mnist-5k"), 512, 128)
    path = tmp_path / "checkpoint.safetensors"

    def trainer(epochs: int, plain: bool = False) -> Trainer:
        name, opts, marks = ("vae", {}, ()) if plain else (model_name, options, milestones)
        torch.manual_seed(0)
        model = models.create(name, arch="mlp", latent_dim=4, image_shape=[1, 28, 28], **opts)
        config = TrainConfig(epochs=epochs, batch_size=128, seed=3, quiet=True,
                             lr_milestones=marks)  # fmt: skip
        return Trainer(model, dataset, config, name, checkpoint=path)

    trainer(1).fit()  # one epoch done, as a run of 2 killed after its first epoch leaves it
    tensors, meta = load_checkpoint(path)
    meta["train"]["epochs"] = 2
    save_checkpoint(path, tensors, meta)
    with pytest.raises(UsageError) as refused:
        trainer(4).fit(resume=True)
    line = str(refused.value)
    assert named in line and "epochs=2" in line and "--overwrite" in line and "\n" not in line
    assert [h["epoch"] for h in trainer(2).fit(resume=True)] == [1, 2]  # same length resumes

    path.unlink()
    trainer(1, plain=True).fit()  # nothing planned on the budget: extending is allowed
    assert [h["epoch"] for h in trainer(3, plain=True).fit(resume=True)] == [1, 2, 3]


def test_a_staged_run_whose_later_stage_has_begun_is_not_extended(tmp_path):
    """Stage 1 trained on after stage 2 had trained on its codes. Refused once stage 2 has a
    checkpoint; while stage 1 is unfinished the run still extends (no stage 2 yet)."""
    from aebench.core.errors import UsageError
    from aebench.training.stages import fit_stages

    dataset = subset(data.load("mnist-5k"), 512, 128)
    path = tmp_path / "checkpoint.safetensors"

    def fit(epochs: int, resume: bool = False) -> list[dict]:
        torch.manual_seed(0)
        model = models.create("two-stage-vae", arch="mlp", latent_dim=4, image_shape=[1, 28, 28])
        config = TrainConfig(epochs=epochs, batch_size=128, seed=3, quiet=True)
        return fit_stages(model, dataset, config, "two-stage-vae", path, resume)[0]

    fit(1)  # both stages trained: what a run killed just after stage 2's last epoch leaves
    assert (tmp_path / "checkpoint.second.safetensors").is_file()
    with pytest.raises(UsageError, match="stage 'second' of this run has begun"):
        fit(2, resume=True)
    assert len(fit(1, resume=True)) == len(fit(1))  # the same length resumes


def test_a_later_stage_whose_own_epochs_round_the_same_still_refuses(tmp_path):
    """vq-vae's prior trains for half the run's epochs, rounded up: 1 epoch of a 1- or a
    2-epoch run. Stage 1's planned epochs decide, not the later stage's."""
    from aebench.core.errors import UsageError
    from aebench.training.stages import fit_stages

    dataset = subset(data.load("mnist-5k"), 256, 64)
    path = tmp_path / "checkpoint.safetensors"

    def fit(epochs: int, resume: bool = False) -> None:
        torch.manual_seed(0)
        model = models.create("vq-vae", arch="conv", latent_dim=4, image_shape=[1, 28, 28])
        config = TrainConfig(epochs=epochs, batch_size=128, seed=3, quiet=True)
        fit_stages(model, dataset, config, "vq-vae", path, resume)

    fit(1)
    (stage,) = [p for p in tmp_path.iterdir() if p.name != path.name]
    assert stage.name.startswith("checkpoint.") and stage.name != path.name
    with pytest.raises(UsageError, match="has begun, on a run of 1 epochs"):
        fit(2, resume=True)
