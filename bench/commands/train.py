"""``aebench train MODEL``: train one model and write its run folder."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from aebench.commands.eval import add_metric_option_argument, metric_options
from aebench.commands.speed_options import add_speed_option_arguments, speed_option_values
from aebench.core.errors import UsageError

NAME = "train"
HELP = "Train one model and write model.safetensors, config.json, history.json and PNGs."


def parse_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as JSON when it parses (numbers, lists), else a string.

    Types and ranges are checked later by the model's own config (``models/config.py``), the
    same validator a suite's options go through. Options that the run itself sets (``arch``,
    ``latent_dim``, ``image_shape``) are refused here: two sources for one value would leave
    ``config.json`` contradicting itself.
    """
    from aebench.models.config import GRID_OPTIONS, option_from_text

    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise UsageError(f"model option {text!r} is not KEY=VALUE")
    key = key.replace("-", "_")
    if key in GRID_OPTIONS:
        flag = {"arch": "--arch", "latent_dim": "--latent-dim"}.get(key, "the dataset")
        raise UsageError(f"model option {key!r} is set by {flag}, not by -o")
    return key, option_from_text(key, raw, "model option")


def check_metric_options(options: Any) -> Any:
    """``-m`` options held to the memory limit on ``n_samples`` (which a stored config is not:
    :func:`aebench.metrics.options.check_n_samples`); one line, as the other metric options."""
    from aebench.metrics.options import check_n_samples

    try:
        return check_n_samples(options)
    except UsageError as err:
        raise UsageError(f"metric option: {err}") from None


def refuse_unfit_evaluation(cfg: Any, dataset: Any) -> None:
    """What the evaluation after training would refuse for memory (``n_samples`` too many for
    ``dataset``'s images), refused before the training instead."""
    from aebench.metrics.evaluation import planned_memory_problem

    options = cfg.evaluation_options()
    shape, n_test = dataset.image_shape, int(dataset.test_x.shape[0])
    if problem := planned_memory_problem(options, shape, cfg.model, cfg.train.device, n_test):
        raise UsageError(problem)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="registered model name (see `aebench models`)")
    p.add_argument("--dataset", default="mnist-5k", help="dataset name (default: mnist-5k)")
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder with torchvision dataset files (default: $AEBENCH_DATA_DIR)",
    )
    p.add_argument(
        "--arch",
        default="mlp",
        help="backbone: mlp, conv, bench-conv, burda2015-mlp or ghosh2020-conv (default: mlp)",
    )
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--latent-dim", type=int, default=16)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model option, e.g. -o beta=2 -o recon=mse (repeatable)",
    )
    p.add_argument("--out", required=True, help="run folder to write")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the checkpoint in --out (after a crash or Ctrl-C)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a finished run (or an unfinished one's checkpoint) already in --out",
    )
    p.add_argument("--no-eval", action="store_true", help="skip `aebench eval` on the finished run")
    add_metric_option_argument(p)
    add_speed_option_arguments(p)


def run(args: argparse.Namespace) -> int:
    from aebench import data, models
    from aebench.config.run import RunConfig
    from aebench.experiments.single_run import train_run
    from aebench.training.divergence import DivergenceError
    from aebench.training.settings import TrainConfig
    from aebench.training.trainer import TrainingInterrupted

    models.get(args.model)  # unknown names fail before any data is loaded
    data.DATASETS.get(args.dataset)  # unknown names fail before any data is loaded
    if args.latent_dim < 1:
        raise UsageError(f"--latent-dim must be >= 1, got {args.latent_dim}")
    train = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
        quiet=args.quiet,
        **speed_option_values(args),
    )
    train.validate()
    options = dict(parse_option(o) for o in args.option)
    if args.resume and args.overwrite:
        raise UsageError("--resume and --overwrite contradict each other: continue, or start again")
    if not str(args.out).strip():
        raise UsageError("--out is empty; name the run's folder")
    cfg = RunConfig(
        metrics=check_metric_options(metric_options(args.metric_option)),
        model=args.model,
        dataset=args.dataset,
        arch=args.arch,
        latent_dim=args.latent_dim,
        model_options=options,
        train=train,
        data_dir=args.data_dir,
    )
    if args.no_eval and args.metric_option:  # each was checked above as an option
        raise UsageError(
            "-m sets how a run is evaluated, and --no-eval evaluates nothing; drop one"
        )
    dataset = data.load(args.dataset, args.data_dir)
    if not args.no_eval:
        refuse_unfit_evaluation(cfg, dataset)
    try:
        model, out_dir = train_run(
            cfg, args.out, resume=args.resume, overwrite=args.overwrite, dataset=dataset
        )
    except TrainingInterrupted as err:
        print(f"aebench: {err}; continue with the same command plus --resume", file=sys.stderr)
        return 130
    except DivergenceError as err:
        print(f"aebench: error: {err}", file=sys.stderr)
        return 1
    if not args.no_eval:
        from aebench.experiments.single_run import evaluate_run
        from aebench.metrics.evaluation import format_table

        # evaluated exactly as a one-run suite with default [metrics] would be: the run's own
        # seed and batch size, the default metric options
        scores = evaluate_run(model, dataset, out_dir, cfg.evaluation_options())
        print(format_table(scores))
    print(f"wrote {out_dir}")
    return 0
