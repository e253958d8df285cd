"""``aebench eval RUN_DIR`` (writes ``RUN_DIR/metrics.json``) and ``aebench eval --store``
(bench/experiments/reevaluate.py: which options it honours, and why ``--seed`` is refused there).

``eval --store`` exits 0 when every finished run was checked (and evaluated where something
was missing), 1 when some runs were skipped — a missing or damaged folder, or one that is not
the run's own, each named in one line on stderr — after evaluating the others, and 2 for a
usage error (a bad option or suite file is refused before anything is written)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

NAME = "eval"
HELP = (
    "Evaluate a trained run (reconstruction, latent, FID/KID/P&R, sharpness, speed), or with "
    "--store the metric families a store's finished runs lack."
)


def add_metric_option_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-m",
        "--metric-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a metric option, as in a suite's [metrics] (e.g. -m n_samples=2000, or a metric "
        "family's own setting); repeatable",
    )


def option_table(items: list[str], given: dict[str, Any] | None = None) -> dict[str, Any]:
    """``-m KEY=VALUE`` items (VALUE read as JSON when it parses) over ``given``, as a
    ``[metrics]``-shaped table; an item that is not KEY=VALUE is one line."""
    from aebench.core.errors import UsageError
    from aebench.models.config import option_from_text

    table = dict(given or {})
    for text in items:
        key, sep, raw = text.partition("=")
        if not sep or not key:
            raise UsageError(f"metric option {text!r} is not KEY=VALUE")
        name = key.replace("-", "_")
        value = option_from_text(name, raw, "metric option")
        if name in (given or {}) and given[name] != value:  # type: ignore[index]
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"-m {text} contradicts {flag} {given[name]}; give one")  # type: ignore[index]
        table[name] = value
    return table


def metric_options(items: list[str], given: dict[str, Any] | None = None, **runtime: Any) -> Any:
    """:func:`option_table` as one validated :class:`~aebench.metrics.options.MetricOptions`; a
    bad key or value is one line."""
    from aebench.core.errors import UsageError
    from aebench.metrics.options import MetricOptions

    table = option_table(items, given)
    try:
        return MetricOptions.from_dict(table, **runtime)
    except UsageError as err:
        raise UsageError(f"metric option: {err}") from None


def check_overrides(overrides: dict[str, Any]) -> None:
    """Refuse, in one line, an ``eval --store`` option that is wrong whatever a run's own
    options are: an unknown key, a value of the wrong type or out of its range. Each is checked
    alone over the defaults, so a combination valid for a run's own options (``n_samples = 10``
    with the run's ``k_nearest = 2``) is not refused here: every run's combined options are
    checked before anything is written (:func:`aebench.experiments.reevaluate.run_options`).
    ``n_samples``, whose lower bound depends on ``k_nearest`` and memory bound on the backbone, is
    only checked to be a positive integer."""
    from aebench.core.errors import UsageError
    from aebench.core.values import describe, is_int
    from aebench.metrics.options import MetricOptions

    for key, value in overrides.items():
        if key == "n_samples":
            if not is_int(value) or value < 1:
                raise UsageError(f"metric option: n_samples must be a positive integer, got "
                                 f"{describe(value)}")  # fmt: skip
            continue
        try:
            MetricOptions.from_dict({key: value})
        except UsageError as err:
            raise UsageError(f"metric option: {err}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    from aebench.metrics.family import family_names

    p.add_argument(
        "run_dir", metavar="RUN_DIR", nargs="?", help="run folder written by `aebench train`"
    )
    p.add_argument(
        "--store",
        default=None,
        help="instead of RUN_DIR: evaluate the metric families that the store's finished runs "
        "lack, or measured with other options (the metric options below, or --suite FILE's), "
        "from their saved weights (never retrains; resumable). A run whose folder is missing, "
        "damaged or not its own (config or weights checksum) is named on stderr and skipped; "
        "the others are evaluated and the exit code is then 1",
    )
    p.add_argument(
        "--suite",
        default=None,
        help="with --store: only this suite's runs (a suite file's or shipped suite's [metrics] "
        "are the options they are measured with)",
    )
    p.add_argument(
        "--only",
        action="append",
        default=None,
        metavar="FAMILY",
        help="with --store: only these metric families (repeatable)",
    )
    p.add_argument(
        "--n-samples",
        type=int,
        default=None,
        help="generated images and real test images compared (default: 10000, 500 for the "
        "inception backbone on a CPU, at most the test split's size)",
    )
    p.add_argument("--backbone", default=None, help="feature space: domain or inception")
    p.add_argument(
        "--sampler",
        default=None,
        help="prior, normal, gaussian or gmm (default: each sampler the model declares)",
    )
    p.add_argument("--iw-k", type=int, default=None, help="importance samples (default 500)")
    p.add_argument("--iw-n", type=int, default=None, help="test images for nll_iw (default 1000)")
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="default: the run's training seed (not with --store: each run keeps its own)",
    )
    add_metric_option_argument(p)
    p.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=family_names(),
        help="leave out a metric family (repeatable)",
    )
    p.add_argument("--data-dir", default=None, help="dataset files (default: the run's, or env)")
    p.add_argument("--cache-dir", default=None, help="feature-net cache (default: env or ~/.cache)")
    p.add_argument("--inception-weights", default=None, help="torch-fidelity-layout weights file")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")


def run(args: argparse.Namespace) -> int:
    from aebench.core.errors import UsageError

    if args.run_dir is not None and args.store is not None:
        hint = ""
        if args.only:  # `--only a b` reads b as RUN_DIR
            hint = f"; one family per --only: --only {args.only[-1]} --only {args.run_dir}"
        raise UsageError(
            f"give either RUN_DIR or --store STORE, not both (RUN_DIR was {args.run_dir!r}{hint})"
        )
    if args.run_dir is None and args.store is None:
        raise UsageError("give either RUN_DIR or --store STORE")
    if args.store is None and (args.suite or args.only):
        raise UsageError("--suite and --only go with --store")
    both = sorted(set(args.only or ()) & set(args.skip))
    if both:
        raise UsageError(f"--only {both[0]} and --skip {both[0]} contradict each other; give one")
    flags = {"n_samples": args.n_samples, "backbone": args.backbone, "sampler": args.sampler,
             "iw_k": args.iw_k, "iw_n": args.iw_n}  # fmt: skip
    given = {k: v for k, v in flags.items() if v is not None}
    if args.store is not None:
        return run_store(args, given)
    from aebench import data
    from aebench.core.devices import resolve_device
    from aebench.metrics import evaluate, format_table
    from aebench.metrics.family import family_names
    from aebench.store.run_folder import load_run, write_json_atomic
    from aebench.training.probe import step_on_copy

    device = resolve_device(args.device)
    model, config = load_run(args.run_dir, map_location=device)
    dataset = data.load(config.get("dataset", "mnist-5k"), args.data_dir or config.get("data_dir"))
    train = config.get("train") if isinstance(config.get("train"), dict) else {}
    seeds = [s for s in (args.seed, train.get("seed"), config.get("seed")) if s is not None]
    batch = train.get("batch_size")
    options = metric_options(
        args.metric_option,
        given,
        seed=seeds[0] if seeds else None,
        train_batch_size=batch if isinstance(batch, int) and batch > 0 else None,
        families=tuple(f for f in family_names() if f not in args.skip),
        cache_dir=args.cache_dir,
        inception_weights=args.inception_weights,
    )
    scores = evaluate(model, dataset, options, train_step_factory=step_on_copy)
    out = Path(args.run_dir) / "metrics.json"
    write_json_atomic(out, kept_with(out, scores, skipped=args.skip))
    meta = scores["meta"]
    print(f"{config.get('model')} on {meta['dataset']}: sampler {meta['sampler']}, ", end="")
    backbone = meta.get("backbone", {})
    acc = backbone.get("test_accuracy")
    acc_text = f" (test accuracy {acc:.3f})" if isinstance(acc, float) else ""
    print(f"backbone {options.backbone}{acc_text}, n = {meta['n_samples']}")
    for note in meta["notes"]:
        print(f"note: {note}")
    print(format_table(scores))
    print(f"wrote {out}")
    return 0


def kept_with(path: Path, scores: dict[str, Any], skipped: list[str]) -> dict[str, Any]:
    """``scores`` plus what ``path`` (a run's ``metrics.json``) holds of the ``skipped``
    families: ``--skip`` leaves a family's numbers as they were, as ``eval --store`` does,
    instead of dropping them from the file. An unreadable file keeps nothing."""
    import json

    from aebench.metrics.family import FAMILIES

    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return scores
    if not isinstance(old, dict):
        return scores
    names = {k for f in skipped if f in FAMILIES for k in FAMILIES.get(f).key_names}
    kept = {k: v for k, v in old.items() if k in names and k not in scores}
    meta = dict(scores["meta"])
    before = old.get("meta", {}).get("evaluations", {}) if isinstance(old.get("meta"), dict) else {}
    if isinstance(before, dict):
        carried = {f: before[f] for f in skipped if f in before}
        meta["evaluations"] = {**carried, **meta.get("evaluations", {})}
        if carried:  # the top-level meta (n_samples, backbone, ...) is this evaluation's
            meta["notes"] = [*meta.get("notes", []),
                             f"kept from the earlier metrics.json: {', '.join(carried)} "
                             "(measured with the options in meta.evaluations)"]  # fmt: skip
    return {**kept, **{k: v for k, v in scores.items() if k != "meta"}, "meta": meta}


def run_store(args: argparse.Namespace, given: dict[str, Any]) -> int:
    """``eval --store``: the metric options as changes over each run's own, --seed refused."""
    from aebench.core.errors import UsageError
    from aebench.experiments.reevaluate import REFUSED_EXIT, reevaluate_store

    if args.seed is not None:
        raise UsageError(
            "--seed goes with RUN_DIR: with --store each run is evaluated with its own training "
            "seed, so a suite's seeds vary the evaluation too"
        )
    overrides = option_table(args.metric_option, given)
    check_overrides(overrides)  # a bad key or value: one line before the store is opened
    only = tuple(args.only) if args.only else None
    runtime = {"cache_dir": args.cache_dir, "inception_weights": args.inception_weights}
    outcome = reevaluate_store(
        args.store, args.suite, only, args.device, args.data_dir, overrides, tuple(args.skip),
        runtime,
    )  # fmt: skip
    skipped = f"; {outcome.refused} run(s) skipped (named above)" if outcome.refused else ""
    print(f"{outcome.updated} run(s) gained metrics in {args.store}{skipped}")
    return REFUSED_EXIT if outcome.refused else 0
