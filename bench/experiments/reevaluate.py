"""``aebench eval --store``: metric families that finished runs lack, or that were computed
with other options, evaluated from the saved weights.

A run's hash covers only what changes its weights; each metric family's results are stored with
the options they were computed with (the store's ``evaluations``). So a family added after a
suite ran (a plugin, a new built-in), or a suite whose ``[metrics]`` changed, reaches the
finished runs without retraining: each ``done`` run's weights are loaded from its artifacts
folder, the families with no record, or with a record of other options, are evaluated (with the
run's seed and batch size: the runner's own conversion), and their rows are replaced in one
transaction per run. Other families' rows and the training history are never touched, so a kill
loses at most the run in flight and the same command continues where it stopped.

**Each run's folder is checked before it is read.** The folder is found from the store's own
folder (:mod:`aebench.store.artifacts`), never from the current directory. Its ``config.json``
must be this run's (the same model and training hash) and its weights file the one the run
wrote (the sha256 the store recorded when the run finished). Runs stored before checksums were
kept are checked by their config only, and their line says so. A run that fails a check, or
whose folder, weights or config is missing or damaged, is named in one line on stderr and
skipped; the other runs are evaluated, and the command then exits :data:`REFUSED_EXIT` (1).
Nothing is written for a skipped run.

**Options.** What a demanding user means by each of ``aebench eval``'s options here:

* ``-m KEY=VALUE``, ``--n-samples``, ``--backbone``, ``--sampler``, ``--iw-k``, ``--iw-n`` are
  changed metric options, laid over each run's own (or over ``--suite FILE``'s ``[metrics]``):
  the families whose options they change are measured again. Once every family whose options
  key they change holds numbers measured with them, the run's stored config records the new
  options, so a later plain ``eval --store`` has nothing left to do and ``aebench run`` of the
  suite says the run was measured otherwise.
* ``--only FAMILY`` / ``--skip FAMILY`` choose the families measured. When they leave out a
  family whose options key the new options change, the stored config keeps the run's earlier
  options: the config never claims numbers that were not measured so. The families measured
  then differ from the config, so the report keeps the run apart from its seeds, and a later
  plain ``eval --store`` measures them back to the config's options; the same command with
  the families left out (``--only`` them) completes the change and records it instead.
* ``--cache-dir`` says where feature nets are cached, not what a number means: it serves the
  families that are evaluated and is never a reason to evaluate.
* ``--inception-weights`` names the Inception weights file, and the generation family of a run
  measured with the ``inception`` backbone records which file made its numbers: given (or
  left out after it was given), it re-measures them. Other backbones never read the file, so
  it changes nothing for their runs.
* ``--seed`` is refused: each run is evaluated with its own training seed, so a suite's seeds
  vary the evaluation's random draws as they vary training. One seed forced on every run would
  measure them all with the same draws, and since the seed is not a stored metric option the
  next plain ``eval --store`` would measure them back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from aebench import data
from aebench.config.run import RunConfig, stored_fields
from aebench.core.atomic import parse_json_text, read_input_text
from aebench.core.devices import resolve_device
from aebench.core.errors import UsageError
from aebench.experiments.suite import available_suites, load_suite
from aebench.metrics.evaluation import evaluate
from aebench.metrics.family import FAMILIES, family_names
from aebench.metrics.options import MetricOptions, check_n_samples
from aebench.store.artifacts import weights_sha256
from aebench.store.database import Store, environment
from aebench.store.migrations import RETIRED_DEFAULTS
from aebench.store.run_folder import CONFIG, WEIGHTS, load_run
from aebench.store.schema import now_utc
from aebench.training.probe import step_on_copy

#: exit code of ``eval --store`` when some runs were skipped (the others were evaluated)
REFUSED_EXIT = 1
_NO_CHECKSUM = "weights unverified: the store has no checksum of them, config checked only"


@dataclasses.dataclass
class Reevaluation:
    """What one ``eval --store`` did: runs that gained metrics, runs skipped (named on stderr)."""

    updated: int = 0
    refused: int = 0


def families_to_evaluate(
    recorded: dict[str, str], model: Any, options: Any, only: tuple[str, ...] | None
) -> list[str]:
    """Families (``only``, else all registered) that apply to ``model`` and whose recorded
    options key is absent or differs from the one ``options`` give."""
    wanted = []
    for name in family_names() if only is None else only:
        family = FAMILIES.get(name)
        if family.applies_to(model) and recorded.get(name) != family.options_key(options):
            wanted.append(name)
    return wanted


def changed_keys(model: Any, before: Any, after: Any) -> dict[str, str]:
    """The families that apply to ``model`` whose options key differs between the evaluation
    options ``before`` (a run's stored ones) and ``after`` (the new ones): name → new key."""
    out = {}
    for name in family_names():
        family = FAMILIES.get(name)
        if family.applies_to(model) and family.options_key(before) != family.options_key(after):
            out[name] = family.options_key(after)
    return out


def _runtime(options: Any) -> dict[str, Any]:
    """The runtime fields of evaluation ``options`` (feature-net cache, Inception weights)."""
    return {"cache_dir": options.cache_dir, "inception_weights": options.inception_weights}


def suite_metrics(suite: str) -> tuple[str, Any]:
    """The suite name to select runs by, and its ``[metrics]`` (None: each run's own).

    A suite file (an existing file, a ``.toml`` name, a path) or a shipped suite is loaded, and
    a file that fails validation is its own one-line error; only a plain name that is no
    shipped suite is taken as a suite known by its name in the store.
    """
    looks_like_file = suite.endswith(".toml") or "/" in suite or "\\" in suite
    if not looks_like_file and not Path(suite).is_file() and suite not in available_suites():
        return suite, None
    loaded = load_suite(suite)
    return loaded.name, loaded.metrics


def run_options(cfg: Any, base: Any, overrides: dict[str, Any]) -> Any:
    """The metric options a run is measured with: ``base`` (a suite's ``[metrics]``) or its
    own, with ``overrides`` laid over them; a bad combination is one line naming the run."""
    start = base if base is not None else cfg.metrics
    try:  # the memory cap too, before anything is written rather than mid-way
        if not overrides:
            return check_n_samples(start)
        return check_n_samples(MetricOptions.from_dict({**start.to_dict(), **overrides}))
    except UsageError as err:
        raise UsageError(f"metric option: {err} (run {cfg.run_name})") from None


def _folder_hashes(saved: dict[str, Any]) -> set[Any]:
    """The training hashes a run folder's ``config.json`` can stand for: the one it records and
    the one its fields give (also with a retired default written out, as the store's schema 3
    upgrade did), so folders written by older versions still match their migrated rows."""
    fields = {k: v for k, v in saved.items() if k != "config_hash"}
    variants = [fields]
    model, options = saved.get("model"), fields.get("model_options") or {}
    retired = RETIRED_DEFAULTS.get(model, {}) if isinstance(model, str) else {}
    if retired and isinstance(options, dict):
        variants.append({**fields, "model_options": {**retired, **options}})
    hashes = {saved.get("config_hash")}
    for variant in variants:
        with contextlib.suppress(UsageError):
            hashes.add(RunConfig.from_dict(variant).config_hash)
    return hashes


def check_run_folder(row: dict[str, Any], model: str) -> str:
    """Check that a ``done`` run's folder is its own (see the module docstring); returns a note
    for the run's line ("" when its weights were verified), or raises :class:`UsageError` with
    the reason."""
    if not row.get("artifacts"):
        raise UsageError("the store records no artifacts folder for it")
    folder = Path(row["artifacts"])
    if not folder.is_dir():
        raise UsageError(f"its artifacts folder {folder} is missing")
    saved = parse_json_text(read_input_text(folder / CONFIG, "run config"), str(folder / CONFIG))
    if not isinstance(saved, dict):
        raise UsageError(f"{folder / CONFIG} is damaged: not a JSON object")
    if saved.get("model") != model:
        raise UsageError(f"{folder} holds a {saved.get('model')!r} run, not this {model!r} run")
    if row["config_hash"] not in _folder_hashes(saved):
        raise UsageError(f"{folder / CONFIG} is another run's: its training config differs")
    recorded = row.get("weights_sha256")
    if not recorded:
        return _NO_CHECKSUM
    try:
        actual = weights_sha256(folder / WEIGHTS)
    except FileNotFoundError:
        raise UsageError(f"{folder} has no {WEIGHTS}") from None
    except OSError as err:
        raise UsageError(f"cannot read {folder / WEIGHTS}: {err.strerror or err}") from None
    if actual != recorded:
        raise UsageError(
            f"{folder / WEIGHTS} is not the weights this run wrote (sha256 {actual[:12]}…, the "
            f"store recorded {recorded[:12]}…)"
        )
    return ""


def _plan(rows: list[dict[str, Any]], base: Any, overrides: dict[str, Any]) -> list[Any]:
    """``(row, config or the reason it is unreadable, metric options)`` per run, before any
    run is evaluated: a bad metric option is refused before anything is written."""
    plans: list[Any] = []
    for row in rows:
        try:
            cfg = RunConfig.from_dict(row["config"])
        except (UsageError, TypeError, ValueError, KeyError, AttributeError) as err:
            plans.append((row, f"its stored config is unreadable: {err}", None))
            continue
        plans.append((row, cfg, run_options(cfg, base, overrides)))
    return plans


def _measure(store: Any, row: dict[str, Any], cfg: Any, model: Any, todo: list[str],
             options: Any, full: Any, dataset: Any) -> None:  # fmt: skip
    """Evaluate ``todo`` on one run with ``full`` (its metric ``options`` with the run's seed,
    batch size and the runtime fields) and replace their rows, in one transaction. The run's
    stored config takes ``options`` only when every family whose options key they change then
    holds numbers measured with them (see the module docstring)."""
    wanted = dataclasses.replace(full, families=tuple(todo))
    scores = evaluate(model, dataset, wanted, train_step_factory=step_on_copy)
    done = {
        name: (FAMILIES.get(name).key_names, options_key)
        for name, options_key in scores["meta"]["evaluations"].items()
    }
    values = {k: v for k, v in scores.items() if k != "meta"}
    after = {**store.evaluations(row["id"]), **{n: key for n, (_, key) in done.items()}}
    before = dataclasses.replace(cfg.evaluation_options(), **_runtime(full))
    changed = changed_keys(model, before, full)
    complete = options != cfg.metrics and all(after.get(n) == k for n, k in changed.items())
    config = dataclasses.replace(cfg, metrics=options).to_json() if complete else None
    device = getattr(model, "device", None)  # a model with no parameters is on the CPU
    device = device.type if device is not None else "cpu"
    where = json.dumps({**environment(device), "evaluated_at": now_utc()}, sort_keys=True)
    store.record_evaluation(row["id"], values, done, config, where)


def reevaluate_store(
    store_path: str | os.PathLike[str] | None,
    suite: str | None = None,
    only: tuple[str, ...] | None = None,
    device: str = "cpu",
    data_dir: str | None = None,
    overrides: dict[str, Any] | None = None,
    skip: tuple[str, ...] = (),
    runtime: dict[str, Any] | None = None,
) -> Reevaluation:
    """Evaluate what the finished runs of ``store_path`` (of ``suite``, if given) are missing,
    or measured with other options than ``overrides`` give; prints one line per run evaluated
    and one on stderr per run skipped. ``runtime`` holds ``cache_dir``/``inception_weights``."""
    known = family_names()
    for name in only or ():
        if name not in known:
            raise UsageError(f"unknown metric family {name!r}; choose from: {', '.join(known)}")
    metrics = None  # the metric options: a loadable suite's [metrics], else each run's own
    if suite is not None:
        suite, metrics = suite_metrics(suite)
    families = tuple(f for f in (only or known) if f not in skip)
    target = resolve_device(device)
    datasets: dict[tuple[str, str | None], data.ImageData] = {}
    outcome = Reevaluation()
    with Store.open(store_path, create=False) as store, store.lock():
        runs = store.runs(suite=suite, status="done")
        if suite is not None and not runs:
            raise UsageError(f"store {store.path} has no finished runs in suite {suite!r}")
        for row, cfg, options in _plan(runs, metrics, overrides or {}):
            try:
                if isinstance(cfg, str):
                    raise UsageError(cfg)
                note = check_run_folder(row, str(stored_fields(row["config"]).get("model")))
                model, _ = load_run(row["artifacts"], map_location=target)
            except UsageError as err:
                print(f"aebench: {row['run_name']}: skipped: {err}", file=sys.stderr)
                outcome.refused += 1
                continue
            # the run's seed and batch size filled in, and where feature nets come from
            full = dataclasses.replace(cfg.evaluation_options(options), **(runtime or {}))
            todo = families_to_evaluate(store.evaluations(row["id"]), model, full, families)
            if not todo:
                continue
            key = (cfg.dataset, data_dir or cfg.data_dir)
            if key not in datasets:
                datasets[key] = data.load(*key)
            _measure(store, row, cfg, model, todo, options, full, datasets[key])
            outcome.updated += 1
            print(f"{row['run_name']}: evaluated {', '.join(todo)}" + (f" ({note})" * bool(note)))
    return outcome
