"""Claims: statements from the literature, tested on your own runs.

A claim says that one side beats another on one metric — two models (AE vs VAE on
``recon_mse``), two samplers of one model (an AE's ``fid@gmm`` vs its ``fid@normal``) or two
settings (``beta-vae`` vs ``vae``) — and where the statement comes from. :func:`check` tests it
with Welch's t-test over the seeds of each side (Welch 1947; unequal variances, so a noisy
model does not borrow a quiet one's variance):

* **holds** — p < 0.05 and the means differ in the claimed direction;
* **contradicted** — p < 0.05 and they differ the other way;
* **inconclusive** — p ≥ 0.05, or fewer than 2 seeds on a side (no variance to test with);
* **not testable** — a side's runs were measured with different ``[metrics]`` options (the
  report keeps them apart as ``vae [n_samples=2000]`` rows): pooling them would test a number
  neither setting produced, and testing one group would drop the others without a word.

Claims name the suite's labels, so a side is matched on ``base_label`` (the label before the
split by metric options) where the runs table has it, else on ``label``.

The built-in claims (:data:`BUILTIN`) are checked in every report whose suite has both sides;
a suite adds its own as ``[[claims]]`` tables (parsed by :func:`parse_claims`)::

    [[claims]]
    name = "ae-gmm-beats-normal"          # optional; a short id
    claim = "an AE sampled from a GMM beats the same AE sampled from N(0, I)"
    source = "Ghosh et al. 2020, Table 1"
    a = "ae"                               # model labels of the suite
    b = "ae"
    a_metric = "fid@gmm"                   # or one `metric = ...` for both sides
    b_metric = "fid@normal"
    expect = "lower"                       # a's mean is lower than b's ("higher")
    datasets = ["mnist", "mnist-5k"]       # optional restriction
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from aebench.core.errors import UsageError
from aebench.core.statistics import welch_p
from aebench.metrics.family import all_keys

ALPHA = 0.05
HOLDS, CONTRADICTED, INCONCLUSIVE = "holds", "contradicted", "inconclusive"
UNTESTABLE = "not testable"
EXPECT = ("lower", "higher")
_KEYS = ("name", "claim", "source", "a", "b", "metric", "a_metric", "b_metric", "expect",
         "datasets")  # fmt: skip
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+@-]{0,63}$")
#: the blog post aebench grew from (a VAE trained on MNIST for ~15 minutes on a laptop CPU)
POST = "K. Frans, 'Variational Autoencoders Explained' (kvfrans.com, 2016)"


@dataclass(frozen=True)
class Claim:
    """``a`` (on ``a_metric``) is ``expect`` (lower/higher) than ``b`` (on ``b_metric``)."""

    name: str
    claim: str
    source: str
    a: str
    b: str
    a_metric: str
    b_metric: str
    expect: str
    datasets: tuple[str, ...] = ()

    def sides(self) -> str:
        """``ae fid@gmm < ae fid@normal``: the claim as a formula."""
        op = "<" if self.expect == "lower" else ">"
        return f"{self.a} {self.a_metric} {op} {self.b} {self.b_metric}"


def _claim(name: str, claim: str, source: str, a: str, b: str, metric: str, expect: str,
           b_metric: str | None = None) -> Claim:  # fmt: skip
    return Claim(name, claim, source, a, b, metric, b_metric or metric, expect)


#: The literature's statements every report checks (where its suite has both sides).
BUILTIN: tuple[Claim, ...] = (
    _claim("ae-reconstructs-better", "AE reconstructs better than VAE (the price of the latent "
           "constraint)", "Kingma & Welling 2014; Ghosh et al. 2020, Table 1", "ae", "vae",
           "recon_mse", "lower"),
    _claim("vae-gan-sharper", "VAE-GAN samples are sharper than VAE samples", "Larsen et al. "
           f"2016; {POST}: 'the VAE tends to produce more blurry images'", "vae-gan", "vae",
           "sharpness_samples", "higher"),
    _claim("vae-gan-fid", "VAE-GAN has a lower FID than VAE", "Larsen et al. 2016", "vae-gan",
           "vae", "fid", "lower"),
    _claim("vae-prior-beats-ae-normal", "a VAE sampled from its prior generates better than an "
           "AE sampled from N(0, I)", f"{POST}: a plain AE 'can't generate anything' from random "
           "codes", "vae", "ae", "fid@prior", "lower", b_metric="fid@normal"),
    _claim("ae-gmm-beats-normal", "an AE sampled from a fitted GMM beats the same AE sampled "
           "from N(0, I)", "Ghosh et al. 2020, Table 1 (MNIST FID 10.7 vs 58.7)", "ae", "ae",
           "fid@gmm", "lower", b_metric="fid@normal"),
    _claim("beta-vae-lower-kl", "β-VAE has a lower KL than VAE", "Higgins et al. 2017",
           "beta-vae", "vae", "kl", "lower"),
    _claim("beta-vae-worse-recon", "β-VAE reconstructs worse than VAE", "Higgins et al. 2017",
           "beta-vae", "vae", "recon_mse", "higher"),
)  # fmt: skip


@dataclass(frozen=True)
class Verdict:
    """One claim tested on one group of runs (a dataset × arch of the report)."""

    claim: Claim
    group: str  #: "" when the report has one dataset and arch
    verdict: str
    a_values: tuple[float, ...]
    b_values: tuple[float, ...]
    p_value: float
    reason: str = ""  #: why a claim is not testable

    @staticmethod
    def _stat(values: Sequence[float]) -> str:
        if not values:
            return "–"
        mean = float(np.mean(values))
        std = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
        return f"{mean:.4g} ± {std:.2g}" if math.isfinite(std) else f"{mean:.4g}"

    @property
    def a_text(self) -> str:
        return self._stat(self.a_values)

    @property
    def b_text(self) -> str:
        return self._stat(self.b_values)

    @property
    def p_text(self) -> str:
        return f"{self.p_value:.2g}" if math.isfinite(self.p_value) else "–"

    @property
    def why(self) -> str:
        """Why an inconclusive verdict is inconclusive, or a claim not testable."""
        if self.verdict == UNTESTABLE:
            return self.reason
        if self.verdict != INCONCLUSIVE:
            return ""
        if min(len(self.a_values), len(self.b_values)) < 2:
            return "fewer than 2 seeds"
        return f"p ≥ {ALPHA:g}"

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "name", "claim", "group", "verdict", "a", "a_metric", "b", "b_metric", "expect",
        "a_values", "b_values", "p_value", "source",
    )  # fmt: skip

    def record(self) -> dict[str, Any]:
        """A flat row (``claims.csv``): the claim, the verdict, each side's values, p."""
        c = self.claim
        values = {"a_values": self.a_values, "b_values": self.b_values}
        out = {"name": c.name, "claim": c.claim, "group": self.group, "verdict": self.verdict,
               "a": c.a, "a_metric": c.a_metric, "b": c.b, "b_metric": c.b_metric,
               "expect": c.expect, "p_value": self.p_value, "source": c.source}  # fmt: skip
        out.update({k: " ".join(f"{x:.6g}" for x in v) for k, v in values.items()})
        return {k: out[k] for k in self.COLUMNS}

    def line(self) -> str:
        """One line for the terminal."""
        where = f" [{self.group}]" if self.group else ""
        why = f" ({self.why})" if self.why else ""
        return (
            f"{self.verdict.upper():<12} {self.claim.claim}{where}: {self.claim.a} "
            f"{self.claim.a_metric} {self.a_text} vs {self.claim.b} {self.claim.b_metric} "
            f"{self.b_text}, p = {self.p_text}{why}"
        )


def verdict(a: Sequence[float], b: Sequence[float], expect: str) -> tuple[str, float]:
    """Welch's t-test of ``a`` against ``b``: (holds | contradicted | inconclusive, p)."""
    x = [float(v) for v in a if math.isfinite(v)]
    y = [float(v) for v in b if math.isfinite(v)]
    p = welch_p(x, y)
    if not math.isfinite(p) or p >= ALPHA:
        return INCONCLUSIVE, p
    lower = float(np.mean(x)) < float(np.mean(y))
    return (HOLDS if lower == (expect == "lower") else CONTRADICTED), p


def _side(frame: Any, label: str, metric: str) -> tuple[float, ...] | str | None:
    """One side of a claim in one group: its values over seeds; or why it cannot be tested
    (its runs were measured with different metric options); None when the group lacks the
    model or the metric (the claim does not apply there)."""
    column = "base_label" if "base_label" in frame else "label"
    rows = frame[frame[column] == label]
    if rows.empty or metric not in rows:
        return None
    rows = rows[np.isfinite(rows[metric].astype(float))]  # NaN and inf test nothing
    if rows.empty:
        return None
    groups = rows["label"].nunique()
    if groups > 1:
        return f"{label} split by metric options into {groups} groups"
    return tuple(float(v) for v in rows[metric])


def check(runs: Any, claims: Sequence[Claim], group_keys: Sequence[str] = ()) -> list[Verdict]:
    """Test each claim on the report's ``runs`` (one row per run: ``label``, optionally
    ``base_label``, the group keys, one column per metric), once per group (dataset × arch)
    that has both sides; a claim whose models, metrics or datasets are absent is skipped, one
    whose side was measured with several metric options is :data:`UNTESTABLE`."""
    out = []
    keys = [k for k in group_keys if k in runs]
    groups = runs.groupby(keys, sort=False, dropna=False) if keys else [((), runs)]
    for group, frame in groups:
        group = group if isinstance(group, tuple) else (group,)
        named = dict(zip(keys, group, strict=True))
        text = " · ".join(str(v) for v in group)
        for c in claims:
            if c.datasets and named.get("dataset", frame["dataset"].iloc[0]) not in c.datasets:
                continue
            a, b = _side(frame, c.a, c.a_metric), _side(frame, c.b, c.b_metric)
            if a is None or b is None:
                continue
            if isinstance(a, str) or isinstance(b, str):
                why = "; ".join(dict.fromkeys(s for s in (a, b) if isinstance(s, str)))
                out.append(Verdict(c, text, UNTESTABLE, (), (), math.nan, why))
                continue
            result, p = verdict(a, b, c.expect)
            out.append(Verdict(c, text, result, a, b, p))
    return out


#: columns of a report's runs table that describe a run rather than measure it (``label`` is
#: the table's row, ``base_label`` the suite's label before runs measured with different
#: metric options were split apart, ``likelihood`` the family of the model's decoder likelihood)
RUN_COLUMNS = ("run_id", "run_name", "label", "base_label", "model", "dataset", "arch", "seed",
               "data_dir", "sampler", "artifacts", "likelihood")  # fmt: skip
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def metric_problem(name: str, other_samplers: bool = False) -> str | None:
    """Why ``name`` is not a metric key the registered families declare (one line), or None.

    ``other_samplers`` also accepts a per-sampler key of a sampler aebench does not have
    (``fid@two-stage``: a published value measured with a paper's own sampler).
    """
    keys = all_keys()
    if name in keys:
        return None
    if name in RUN_COLUMNS:
        return f"{name!r} is a column describing the runs, not a metric"
    base, _, sampler = name.partition("@")
    per_sampler = sampler and any(k.startswith(f"{base}@") for k in keys)
    if other_samplers and per_sampler and _NAME_RE.match(name):
        return None
    close = difflib.get_close_matches(name, list(keys), n=1)
    hint = f"did you mean {close[0]!r}?" if close else "e.g. recon_mse, fid, fid@prior, nll_iw"
    return f"unknown metric {name!r} (not declared by any metric family; {hint})"


def parse_claims(
    value: Any,
    source: str,
    labels: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
) -> tuple[Claim, ...]:
    """A suite's ``[[claims]]``: every problem is one :class:`UsageError` naming the file and
    the key (``claims[1].expect``).

    A claim that could never be tested is refused here rather than silently left out of the
    report: its sides must be among the suite's model ``labels``, its metrics keys the metric
    families declare (not ``label`` or ``seed``), its ``datasets`` among the suite's
    ``datasets`` (either check is skipped when that argument is None).
    """
    if not isinstance(value, list):
        raise UsageError(f"{source}: claims: must be an array of tables ([[claims]])")
    return tuple(_claim_table(t, i, source, labels, datasets) for i, t in enumerate(value))


def _claim_table(
    table: Any,
    i: int,
    source: str,
    labels: Sequence[str] | None,
    datasets: Sequence[str] | None,
) -> Claim:
    """One ``[[claims]]`` table, checked (see :func:`parse_claims`)."""

    def fail(key: str, message: str) -> UsageError:
        where = f"claims[{i}].{key}" if key and not key.startswith("[") else f"claims[{i}]{key}"
        return UsageError(f"{source}: {where}: {message}")

    if not isinstance(table, dict):
        raise fail("", "must be a table")
    for key in table:
        if key not in _KEYS:
            shown = key if isinstance(key, str) and _PLAIN_KEY.match(key) else f"[{key!r}]"
            raise fail(shown, f"unknown key; allowed: {', '.join(_KEYS)}")

    def text(key: str, required: bool = True) -> str:
        v = table.get(key)
        if v is None and not required:
            return ""
        if not isinstance(v, str) or not v.strip():
            raise fail(key, "must be a non-empty string")
        return v.strip()

    a, b = text("a"), text("b")
    for key, label in (("a", a), ("b", b)):
        if labels is not None and label not in labels:
            raise fail(key, f"no model labelled {label!r} in this suite ({', '.join(labels)})")
    metric = text("metric", required=False)
    a_metric = text("a_metric", required=False) or metric
    b_metric = text("b_metric", required=False) or metric
    if not (a_metric and b_metric):
        raise fail("metric", "give `metric`, or both `a_metric` and `b_metric`")
    for key, m in (("a_metric", a_metric), ("b_metric", b_metric)):
        named = key if table.get(key) else "metric"
        if not _NAME_RE.match(m):
            raise fail(named, f"not a metric name: {m!r}")
        if problem := metric_problem(m):
            raise fail(named, problem)
    expect = table.get("expect")
    if not isinstance(expect, str) or expect not in EXPECT:
        raise fail("expect", f'must be "lower" or "higher", got {expect!r}')
    claimed = table.get("datasets", [])
    if not isinstance(claimed, list) or not all(isinstance(d, str) for d in claimed):
        raise fail("datasets", "must be an array of dataset names")
    for j, d in enumerate(claimed):
        if datasets is not None and d not in datasets:
            raise fail(f"datasets[{j}]", f"{d!r} is not one of this suite's datasets "
                       f"({', '.join(datasets)})")  # fmt: skip
    name = text("name", required=False) or f"claim-{i + 1}"
    if a == b and a_metric == b_metric:
        raise fail("b", "compares a side with itself")
    claim = text("claim", required=False) or f"{a} {a_metric} is {expect} than {b} {b_metric}"
    return Claim(name, claim, text("source"), a, b, a_metric, b_metric, expect, tuple(claimed))
