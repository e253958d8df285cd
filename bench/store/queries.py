"""Reading a results store: runs, metrics and the tidy DataFrame (a mixin of :class:`Store`).

Readers need no lock: WAL mode lets them read while a suite writes. A metric value that is not a
number (text written by another program) is read as missing everywhere, and counted, so that
``export`` and ``report`` can say so in one line."""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aebench.core.errors import UsageError
from aebench.store.artifacts import resolve_artifacts
from aebench.store.schema import STATUSES

if TYPE_CHECKING:
    import pandas as pd

    from aebench.config.run import RunConfig


class StoreQueries:
    """The read-only half of :class:`aebench.store.database.Store`."""

    _conn: sqlite3.Connection
    path: Path

    def artifacts_dir(self, cfg: RunConfig) -> Path:
        """Where a run's files (model, images, history) go: beside the store, one per run; the
        folder an earlier attempt of this run recorded, where it still exists, so a run whose
        hash an upgrade rewrote (schemas 9, 10) resumes from its checkpoint there."""
        row = self._conn.execute(
            "SELECT artifacts FROM runs WHERE suite = ? AND config_hash = ?",
            (cfg.suite, cfg.config_hash),
        ).fetchone()
        earlier = resolve_artifacts(row[0], self.path) if row is not None else None
        if earlier is not None and Path(earlier).is_dir():
            return Path(earlier)
        return self.path.parent / "artifacts" / cfg.suite / f"{cfg.run_name}-{cfg.short_hash}"

    def done_hashes(self, suite: str | None = None) -> set[str]:
        """Config hashes of runs finished ``done`` (in ``suite``, or in any suite)."""
        sql = "SELECT DISTINCT config_hash FROM runs WHERE status = 'done'"
        args: tuple[Any, ...] = ()
        if suite is not None:
            sql += " AND suite = ?"
            args = (suite,)
        return {r[0] for r in self._conn.execute(sql, args)}

    def runs(
        self, suite: str | None = None, status: str | Iterable[str] | None = None
    ) -> list[dict[str, Any]]:
        """Run rows as dicts (``config`` parsed from JSON, ``artifacts`` resolved against the
        store's folder: :func:`~aebench.store.artifacts.resolve_artifacts`), oldest first."""
        where, args = _where(suite, status)
        rows = self._conn.execute(f"SELECT * FROM runs{where} ORDER BY id", args).fetchall()
        out = []
        for row in rows:
            d = dict(row)
            d["artifacts"] = resolve_artifacts(d.get("artifacts"), self.path)
            with contextlib.suppress(TypeError, ValueError):
                d["config"] = json.loads(d["config"])
            out.append(d)
        return out

    def metrics(self, run_id: int, phase: str | None = "final") -> dict[str, float]:
        """One run's metrics as ``{name: value}`` (``phase=None``: every phase, keys
        ``phase/name``)."""
        if phase is None:
            rows = self._conn.execute(
                f"SELECT phase || '/' || name, {_NUMERIC} FROM metrics WHERE run_id = ?",
                (run_id,),
            )
        else:
            rows = self._conn.execute(
                f"SELECT name, {_NUMERIC} FROM metrics WHERE run_id = ? AND phase = ?",
                (run_id, phase),
            )
        return {k: (math.nan if v is None else float(v)) for k, v in rows}

    def evaluations(self, run_id: int) -> dict[str, str]:
        """``{family: options key}`` of the metric families recorded for a run."""
        rows = self._conn.execute(
            "SELECT family, options FROM evaluations WHERE run_id = ?", (run_id,)
        )
        return dict(rows.fetchall())

    def reevaluations(self, run_id: int) -> dict[str, str]:
        """``{family: environment JSON}`` of a run's metric families that ``aebench eval
        --store`` measured again (schema 8; those measured with the run are left out)."""
        rows = self._conn.execute(
            "SELECT family, environment FROM evaluations "
            "WHERE run_id = ? AND environment IS NOT NULL",
            (run_id,),
        )
        return dict(rows.fetchall())

    def count_non_numeric(self) -> int:
        """Metric rows whose value is neither a number nor NULL (text or a blob written by
        something other than aebench): every reader takes them as missing values."""
        sql = f"SELECT COUNT(*) FROM metrics WHERE value IS NOT NULL AND {_NUMERIC} IS NULL"
        return int(self._conn.execute(sql).fetchone()[0])

    def count(self, table: str = "runs") -> int:
        """Row count of ``runs`` or ``metrics`` (handy for tests and summaries)."""
        if table not in ("runs", "metrics"):
            raise ValueError(table)
        return int(self._conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def metrics_frame(
        self,
        suite: str | None = None,
        status: str | Iterable[str] | None = None,
        phase: str | None = None,
    ) -> pd.DataFrame:
        """The metrics as a tidy DataFrame: one row per (run, phase, metric).

        Columns: run_id, suite, run_name, config_hash, model, label, dataset, arch, seed,
        status, phase, metric, value, git_commit, device, started_at, ended_at. Needs pandas
        (imported here, so the rest of the store works without it).
        """
        try:
            import pandas as pd  # deferred: optional ([report] extra), ~1 s to import
        except ImportError:
            raise UsageError(
                "this needs pandas: pip install pandas (or pip install 'aebench[report]')"
            ) from None
        from aebench.config.run import stored_fields  # the model registry (torch), only here

        where, args = _where(suite, status, prefix="r.")
        if phase is not None:
            where += (" AND " if where else " WHERE ") + "m.phase = ?"
            args = (*args, phase)
        rows = self._conn.execute(
            "SELECT r.id AS run_id, r.suite, r.run_name, r.config_hash, r.config, r.status, "
            f"m.phase, m.name AS metric, {_NUMERIC.replace('value', 'm.value')} AS value, "
            "r.git_commit, r.device, r.started_at, "
            f"r.ended_at FROM metrics m JOIN runs r ON r.id = m.run_id{where} "
            "ORDER BY r.id, m.phase, m.name",
            args,
        ).fetchall()
        records = []
        for row in rows:
            d = dict(row)
            try:
                cfg = json.loads(d.pop("config"))
            except (TypeError, ValueError):
                cfg = {}
            if not isinstance(cfg, dict):
                cfg = {}
            fields = stored_fields(cfg)
            for key in ("model", "label", "dataset", "arch", "seed"):
                d[key] = fields[key]
            records.append(d)
        columns = [
            "run_id", "suite", "run_name", "config_hash", "model", "label", "dataset", "arch",
            "seed", "status", "phase", "metric", "value", "git_commit", "device", "started_at",
            "ended_at",
        ]  # fmt: skip
        frame = pd.DataFrame.from_records(records, columns=columns)
        frame["value"] = frame["value"].astype(float)
        return frame


def non_numeric_note(count: int) -> str:
    """The one-line warning for :meth:`Store.count_non_numeric` rows."""
    return (
        f"{count} metric value(s) in the store are not numbers (written by another program?); "
        "they are read as missing"
    )


#: a metric value as stored, or NULL where it is not a number (see count_non_numeric)
_NUMERIC = "CASE WHEN typeof(value) IN ('integer', 'real') THEN value END"


def _where(
    suite: str | None, status: str | Iterable[str] | None, prefix: str = ""
) -> tuple[str, tuple[Any, ...]]:
    clauses, args = [], []
    if suite is not None:
        clauses.append(f"{prefix}suite = ?")
        args.append(suite)
    if status is not None:
        wanted = [status] if isinstance(status, str) else list(status)
        bad = [s for s in wanted if s not in STATUSES]
        if bad:
            raise UsageError(f"unknown status {bad[0]!r}; choose from: {', '.join(STATUSES)}")
        clauses.append(f"{prefix}status IN ({', '.join('?' for _ in wanted)})")
        args.extend(wanted)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)
