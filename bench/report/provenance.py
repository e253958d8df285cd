"""Provenance lines of a report's header that are not one store column each: the distinct
package-version sets, the commit as shown, and where ``aebench eval --store`` measured again."""

from __future__ import annotations

import json
from typing import Any


def reevaluation_line(again: list[dict[str, str]]) -> dict[str, str]:
    """The header's "Re-evaluated" line: the metric families ``aebench eval --store`` measured
    again, of how many runs, and where (host, device × threads, commit, date), since the lines
    above say where the runs were trained. Absent when nothing was measured again."""
    families: dict[str, set[str]] = {}
    runs: dict[str, set[int]] = {}
    for i, measured in enumerate(again):
        for family, text in measured.items():
            place = _place(text)
            families.setdefault(place, set()).add(family)
            runs.setdefault(place, set()).add(i)
    parts = [f"{', '.join(sorted(families[p]))} of {len(runs[p])} run(s) on {p}" for p in runs]
    return {"Re-evaluated": "; ".join(parts)} if parts else {}


def _place(text: str) -> str:
    """Where one re-evaluation ran, from its environment JSON (shown as stored if damaged)."""
    try:
        env = json.loads(text)
    except ValueError:
        return repr(text)
    if not isinstance(env, dict):
        return repr(text)
    commit = short_commit(str(env.get("git_commit")))
    return (f"{env.get('host')}, {env.get('device')} × {env.get('threads')} thread(s), "
            f"commit {commit}, {str(env.get('evaluated_at'))[:10]}")  # fmt: skip


def short_commit(commit: str) -> str:
    """The commit's first 12 characters, keeping a ``-dirty`` mark."""
    return commit[:12] + ("-dirty" if commit.endswith("-dirty") else "")


def packages_line(rows: list[dict[str, Any]]) -> dict[str, str]:
    """The header's "Packages" line: each distinct set of numeric-package versions the runs
    recorded (stores from before schema 7 have none), sets apart by "; "."""
    seen = [str(p) for p in dict.fromkeys(r.get("packages") for r in rows) if p]
    return {"Packages": "; ".join(seen)} if seen else {}
