"""Upgrading a results store written by an older aebench, in place and in one transaction.

Schema 2 (2026-12) separates a run's training identity from its evaluation identity: the run's
``config_hash`` covers only what changes the trained weights (hash version 2, metric options
left out), and a new ``evaluations`` table records, per run and metric family, the options its
results were computed with. The upgrade re-derives every run's hash from its stored config —
after checking that the config still matches the hash recorded under version 1, so an edited
row is refused rather than silently re-labelled — and records the options the runner used for
the families whose metrics the run already has. Any problem rolls the whole upgrade back and is
one :class:`~aebench.core.errors.UsageError` line; the store stays at its old schema, byte for byte.

Schema 3 (2026-12-01) follows a registered default that changed: ``beta-vae`` went from β = 4
to β = 2. A stored run keeps only the options that differ from the defaults (so writing a
default out does not change a hash), so older ``beta-vae`` runs would read back, and count as
done, as β = 2 runs. The upgrade writes the value they trained with into their options, and
re-derives their hash from it.

Schema 4 adds ``runs.weights_sha256``: the checksum of the weights file a run wrote, recorded
when it finishes, so ``aebench eval --store`` refuses a folder holding other weights. Runs stored
before have none (NULL); for them only the folder's ``config.json`` can be checked.

Schema 6 adds ``runs.resources``: what the executor reserved for the run (``ray: 2 CPUs``,
``ray: 2 CPUs, 0.5 GPU``), beside the ``threads`` it actually used. Older runs have none (NULL).

Schema 7 adds ``runs.packages``: the versions of the numeric packages besides torch
(:func:`aebench.store.schema.package_versions`). Older runs have none (NULL).

Schema 8 adds ``evaluations.environment``: where a metric family was re-measured by
``aebench eval --store`` (JSON: commit, versions, device, threads, host, time). NULL means it
was measured with the run, in the environment the run's row records; older rows are NULL.

Schema 9 puts the folder of a dataset whose folder is its data (``image-folder``) into its runs'
hashes (:func:`v8_to_v9`); other runs keep theirs.

Schema 10 (2026-12-06) writes model options a model has retired in today's names and meanings
(:meth:`aebench.models.config.ModelConfig.upgrade_options`): ``info-vae``'s ``lam``, the paper's
λ, became ``mmd_weight``, the MMD's own weight α + λ − 1. Each such run's config and hash are
rewritten (:func:`v9_to_v10`), so the same run trained today counts as done; its run folder's
``config.json`` is read through the same upgrade.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any

from aebench.core.errors import UsageError


def _v1_hash(cfg: Any, metrics: Any) -> str:
    """The config hash hash version 1 gave: version 2's fields (the model's overrides only, not
    every option as version 3 has) and the metric options, ``metrics``, the five-key table
    that version wrote."""
    identity = {**cfg.identity(2, folder=False), "v": 1, "metrics": metrics}
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _stored_config(text: Any) -> dict[str, Any]:
    """A run's stored config JSON as a dict. Anything else (``null``, a bare string or
    number, an array: an edited row) is a :class:`UsageError`, which the caller prefixes with
    the run it belongs to."""
    try:
        data = json.loads(text)
    except (ValueError, TypeError, RecursionError) as err:
        raise UsageError(f"its config is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        kind = "null" if data is None else type(data).__name__
        raise UsageError(f"its config is {kind}, not a JSON object")
    return data


def v1_to_v2(conn: sqlite3.Connection) -> None:
    from aebench.config.run import RunConfig  # models and torch load only for an upgrade
    from aebench.metrics.family import FAMILIES

    conn.execute(
        "CREATE TABLE evaluations (run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE "
        "CASCADE, family TEXT NOT NULL, options TEXT NOT NULL, PRIMARY KEY (run_id, family))"
    )
    rows = conn.execute("SELECT id, suite, run_name, config, status FROM runs").fetchall()
    seen: dict[tuple[str, str], str] = {}
    for run_id, suite, name, text, status in rows:
        try:
            data = _stored_config(text)
            recorded = data.pop("config_hash", None)
            cfg = RunConfig.from_dict(data, upgrade=False)
            v1_hash = _v1_hash(cfg, data.get("metrics"))
        except (ValueError, TypeError, UsageError) as err:
            raise UsageError(f"cannot upgrade the store: run {run_id} ({name}): {err}") from None
        if recorded is not None and recorded != v1_hash:
            raise UsageError(
                f"cannot upgrade the store: run {run_id} ({name}) was edited (its config no "
                "longer matches its recorded hash)"
            )
        other = seen.get((suite, cfg.config_hash))
        if other is not None:
            raise UsageError(
                f"cannot upgrade the store: runs {other} and {name} of suite {suite!r} differ only "
                "in metric options, which no longer make separate runs; export and split it first"
            )
        seen[(suite, cfg.config_hash)] = name
        conn.execute(
            "UPDATE runs SET config_hash = ?, config = ? WHERE id = ?",
            (cfg.config_hash, cfg.to_json(), run_id),
        )
        if status != "done":
            continue
        have = {r[0] for r in conn.execute(
            "SELECT name FROM metrics WHERE run_id = ? AND phase = 'final'", (run_id,)
        )}  # fmt: skip
        options = cfg.evaluation_options()
        for family_name, family in FAMILIES.items():
            if set(family.key_names) & have:
                conn.execute(
                    "INSERT INTO evaluations (run_id, family, options) VALUES (?, ?, ?)",
                    (run_id, family_name, family.options_key(options)),
                )


#: registered defaults that changed, with the value stores of older schemas trained with
RETIRED_DEFAULTS: dict[str, dict[str, Any]] = {"beta-vae": {"beta": 4.0}}


def v2_to_v3(conn: sqlite3.Connection) -> None:
    from aebench.config.run import RunConfig

    rows = conn.execute("SELECT id, suite, run_name, config FROM runs").fetchall()
    for run_id, suite, name, text in rows:
        try:
            data = _stored_config(text)
            retired = RETIRED_DEFAULTS.get(data.get("model"), {})
            options = dict(data.get("model_options") or {})
            missing = {k: v for k, v in retired.items() if k not in options}
            if not missing:
                continue
            data["model_options"] = {**options, **missing}
            data.pop("config_hash", None)  # re-derived below, from the options it trained with
            cfg = RunConfig.from_dict(data, upgrade=False)
        except (ValueError, TypeError, AttributeError, UsageError) as err:
            raise UsageError(f"cannot upgrade the store: run {run_id} ({name}): {err}") from None
        clash = conn.execute(
            "SELECT run_name FROM runs WHERE suite = ? AND config_hash = ? AND id != ?",
            (suite, cfg.hash_at(2), run_id),
        ).fetchone()
        if clash is not None:
            raise UsageError(
                f"cannot upgrade the store: runs {clash[0]} and {name} of suite {suite!r} are the "
                f"same run once {name}'s {', '.join(missing)} is written out; export and split it"
            )
        # this schema's hashes are identity version 2 (v4_to_v5 moves them on)
        data["config_hash"] = cfg.hash_at(2)
        conn.execute(
            "UPDATE runs SET config_hash = ?, config = ? WHERE id = ?",
            (data["config_hash"], json.dumps(data, sort_keys=True), run_id),
        )


def v3_to_v4(conn: sqlite3.Connection) -> None:
    columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    if "weights_sha256" not in columns:  # a store rolled back by hand may still have it
        conn.execute("ALTER TABLE runs ADD COLUMN weights_sha256 TEXT")


def v4_to_v5(conn: sqlite3.Connection) -> None:
    """Identity version 3: a run's hash covers every model option, defaults included. Each
    stored run gets its resolved options recorded (today's defaults: the ones it trained with,
    since a changed default is retired through :data:`RETIRED_DEFAULTS` by an earlier step)
    and its hash recomputed. A run of a model not registered here (a plugin not loaded) cannot
    be resolved: the upgrade is refused in one line and the store stays as it was."""
    from aebench import models
    from aebench.config.run import RunConfig

    rows = conn.execute("SELECT id, suite, run_name, config FROM runs").fetchall()
    for run_id, suite, name, text in rows:
        try:
            data = _stored_config(text)
            model = data.get("model")
            if model not in models.available():
                raise UsageError(
                    f"its model {model!r} is not registered here; load its plugin (aebench "
                    "--plugin FILE ...) and run the command again"
                )
            data.pop("resolved_options", None)
            cfg = RunConfig.from_dict(data, upgrade=False)  # checks the version-2 hash
            new_hash = cfg.config_hash
        except (ValueError, TypeError, AttributeError, UsageError) as err:
            raise UsageError(f"cannot upgrade the store: run {run_id} ({name}): {err}") from None
        clash = conn.execute(
            "SELECT run_name FROM runs WHERE suite = ? AND config_hash = ? AND id != ?",
            (suite, new_hash, run_id),
        ).fetchone()
        if clash is not None:
            raise UsageError(
                f"cannot upgrade the store: runs {clash[0]} and {name} of suite {suite!r} are the "
                "same run once their default options are written out; export and split it"
            )
        conn.execute(
            "UPDATE runs SET config_hash = ?, config = ? WHERE id = ?",
            (new_hash, cfg.to_json(), run_id),
        )


def v5_to_v6(conn: sqlite3.Connection) -> None:
    columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    if "resources" not in columns:
        conn.execute("ALTER TABLE runs ADD COLUMN resources TEXT")


def v6_to_v7(conn: sqlite3.Connection) -> None:
    """Schema 7 records the versions of the numeric packages beside torch's (older runs: NULL)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    if "packages" not in columns:
        conn.execute("ALTER TABLE runs ADD COLUMN packages TEXT")


def v7_to_v8(conn: sqlite3.Connection) -> None:
    """Schema 8 records where a re-evaluation ran (older rows: NULL, measured with the run)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(evaluations)")}
    if "environment" not in columns:
        conn.execute("ALTER TABLE evaluations ADD COLUMN environment TEXT")


def v8_to_v9(conn: sqlite3.Connection) -> None:
    """A dataset whose folder is its data (``image-folder``): the folder's absolute path enters
    the run's hash, so a suite pointed at other images no longer finds these runs done. Each
    such run's hash is recomputed from the folder its config recorded."""
    from aebench.config.run import RunConfig
    from aebench.data import folder_is_data

    rows = conn.execute("SELECT id, run_name, config FROM runs").fetchall()
    for run_id, name, text in rows:
        try:
            data = _stored_config(text)
            if not (folder_is_data(str(data.get("dataset"))) and data.get("data_dir")):
                continue
            cfg = RunConfig.from_dict(data, upgrade=False)  # checks the folder-less hash
        except (ValueError, TypeError, AttributeError, UsageError) as err:
            raise UsageError(f"cannot upgrade the store: run {run_id} ({name}): {err}") from None
        conn.execute(
            "UPDATE runs SET config_hash = ?, config = ? WHERE id = ?",
            (cfg.config_hash, cfg.to_json(), run_id),
        )


def v9_to_v10(conn: sqlite3.Connection) -> None:
    """Runs holding an option their model has retired (:meth:`RunConfig.upgraded`): config and
    hash rewritten in today's terms, after their recorded hash is checked."""
    from aebench import models
    from aebench.config.run import RunConfig

    rows = conn.execute("SELECT id, suite, run_name, config FROM runs").fetchall()
    for run_id, suite, name, text in rows:
        try:
            data = _stored_config(text)
            recorded, model = data.get("resolved_options"), data.get("model")
            if models.upgrade_options(model, recorded) == recorded:
                continue
        except (ValueError, TypeError, AttributeError, UsageError):
            continue  # nothing here to upgrade (a damaged row stays as it was)
        try:
            cfg = RunConfig.from_dict(data)  # checks the recorded hash, then upgrades
        except UsageError as err:
            raise UsageError(f"cannot upgrade the store: run {run_id} ({name}): {err}") from None
        clash = conn.execute(
            "SELECT run_name FROM runs WHERE suite = ? AND config_hash = ? AND id != ?",
            (suite, cfg.config_hash, run_id),
        ).fetchone()
        if clash is not None:
            raise UsageError(
                f"cannot upgrade the store: runs {clash[0]} and {name} of suite {suite!r} are the "
                "same run once their retired options are written in today's terms; export and "
                "split it"
            )
        conn.execute(
            "UPDATE runs SET config_hash = ?, config = ? WHERE id = ?",
            (cfg.config_hash, cfg.to_json(), run_id),
        )
