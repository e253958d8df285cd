"""Runs of one model measured with different ``[metrics]`` options are different samples.

A suite's ``[metrics]`` may be edited after some seeds were measured (``n_samples = 1000`` for
one seed, ``2000`` for another), and ``aebench eval --store`` may have re-measured only some
runs. The store keeps, per run and metric family, the options that family was measured with
(its options key). Averaging an FID over 1,000 samples with one over 2,000 gives a number
neither setting produced, so the report keeps such runs apart, as it does runs trained with
different model options: each gets the differing options in its label,
``vae [n_samples=2000]``, and the header says which options differ and how to bring the runs
together again (re-measure them with one setting).

The per-run seed is not a difference (every run of a model has its own), nor is the family's
name. A run without a family (not measured, or measured before the store kept options) is
not told apart by that family: it has none of that family's numbers to mix.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

#: option keys that differ between runs of one model by design
_NOT_A_DIFFERENCE = frozenset({"seed", "family"})


def _parsed(evaluations: dict[str, str]) -> dict[str, dict[str, Any]]:
    """``{family: {option: value}}`` of one run; a damaged options row is left out."""
    out = {}
    for family, text in evaluations.items():
        try:
            options = json.loads(text)
        except (TypeError, ValueError):
            continue
        if isinstance(options, dict):
            out[str(family)] = options
    return out


def _value_text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _differing(runs: list[dict[str, dict[str, Any]]]) -> dict[str, set[str]]:
    """Per family measured in at least two of ``runs`` (one model's): the option keys whose
    values are not all the same."""
    out: dict[str, set[str]] = {}
    families = {f for run in runs for f in run}
    for family in sorted(families):
        measured = [run[family] for run in runs if family in run]
        keys = {k for options in measured for k in options} - _NOT_A_DIFFERENCE
        differ = {k for k in keys if len({_value_text(options.get(k)) for options in measured}) > 1}
        if len(measured) > 1 and differ:
            out[family] = differ
    return out


def split_by_metric_options(
    labels: Sequence[str], evaluations: Sequence[dict[str, str]]
) -> tuple[list[str], str | None]:
    """New labels for runs (``labels``, one per run, with each run's ``{family: options
    key}`` in ``evaluations``) so that runs of one label measured with different metric
    options land in different rows, and a header line naming what differs (None when all
    runs of each label were measured alike)."""
    parsed = [_parsed(e) for e in evaluations]
    out = list(labels)
    notes = []
    for label in dict.fromkeys(labels):
        members = [i for i, lab in enumerate(labels) if lab == label]
        differ = _differing([parsed[i] for i in members])
        if not differ:
            continue
        shown: dict[int, dict[str, str]] = {i: {} for i in members}
        for family, keys in differ.items():
            for i in members:
                options = parsed[i].get(family)
                if options is not None:
                    for k in sorted(keys):
                        shown[i][k] = _value_text(options.get(k))
        for i in members:
            if shown[i]:
                out[i] = f"{label} [{', '.join(f'{k}={v}' for k, v in sorted(shown[i].items()))}]"
        what = "; ".join(f"{family}: {', '.join(sorted(keys))}" for family, keys in differ.items())
        notes.append(f"{label} ({what})")
    if not notes:
        return out, None
    note = (
        "runs measured with different [metrics] options are kept apart, not averaged: "
        + "; ".join(notes)
        + ". Re-measure them with one setting (aebench eval --store STORE --suite FILE) to "
        "report them together"
    )
    return out, note


__all__ = ["split_by_metric_options"]
