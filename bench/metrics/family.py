"""A metric family: the one object that says what a group of metrics is and how it is computed.

In the spirit of torchmetrics' ``Metric`` (each metric carries its own ``higher_is_better``) and
timm's registry: a family declares

* its **keys** (:class:`MetricKey`): the flat name used everywhere — ``metrics.json``, the
  store, the report's columns — with a display label, unit, better direction and whether it
  belongs in the report's headline table;
* which models it **applies to** (:meth:`MetricFamily.applies_to`, a capability check on the
  model, never a list of model names);
* its **options**: the shared :class:`~aebench.metrics.options.MetricOptions` fields it reads
  (:attr:`MetricFamily.options`) and its own **settings** with their defaults
  (:attr:`MetricFamily.settings`, validated against each default's type), so a stored result
  can say which options produced it and a plugin family brings its own options;
* how it **computes** its numbers from an :class:`~aebench.metrics.context.EvalContext`, which
  hands out only tensors and the model's public API.

``evaluate()`` loops over :data:`FAMILIES`; the report, the store and the suite parser read the
same declarations, so adding a metric is one file plus ``@register_family``. Third-party
families register through the entry-point group ``aebench.metrics``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from aebench.core.registry import Registry

if TYPE_CHECKING:
    from aebench.metrics.context import EvalContext


@dataclass(frozen=True)
class MetricKey:
    """One flat metric: its name, how a reader sees it, and which way is better."""

    name: str
    label: str
    description: str
    #: True: higher is better; False: lower is better; None: neither (a spread, a count)
    higher_is_better: bool | None
    unit: str = ""
    headline: bool = False  #: a column of the report's main table
    #: in the units of the model's decoder likelihood (an ELBO, an NLL): a report compares it
    #: only between models of one likelihood family (``ModelConfig.likelihood``)
    per_likelihood: bool = False


class MetricFamily:
    """Base class of a metric family; subclass it, set the class attributes, implement
    :meth:`compute`, and decorate the class with :func:`register_family`."""

    name: ClassVar[str]
    #: its keys; a family may compute them in a property (e.g. one per registered sampler)
    keys: ClassVar[tuple[MetricKey, ...]]
    #: the shared :class:`~aebench.metrics.options.MetricOptions` fields its numbers depend on
    options: ClassVar[tuple[str, ...]] = ()
    #: its own options, name → default: a suite sets them in ``[metrics]``, ``aebench eval``
    #: with ``--metric-option NAME=VALUE``; read them with ``ctx.options.setting(name)``
    settings: ClassVar[dict[str, Any]] = {}
    #: compute runs with autograd on (it trains, e.g. to time a step); else under no_grad
    needs_grad: ClassVar[bool] = False
    #: bump when what the family computes changes (new keys, a corrected formula): results
    #: stored under another version are re-evaluated by ``aebench eval --store``
    version: ClassVar[int] = 1

    def applies_to(self, model: Any) -> bool:
        """Whether this family can measure ``model`` (by capability: ``has_posterior``, …)."""
        return True

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        """The family's metrics for the model in ``ctx``: a subset of :attr:`keys` by name."""
        raise NotImplementedError

    @property
    def key_names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.keys)

    def options_key(self, options: Any) -> str:
        """The evaluation's identity: the family's name and the values of the options it
        reads, as canonical JSON. The store keeps it with the family's results, so
        ``aebench eval --store`` can tell a result that is missing or was made otherwise."""
        values = {k: getattr(options, k, None) for k in self.options}
        values.update({k: options.setting(k) for k in self.settings})
        if self.version != 1:
            values["version"] = self.version
        return json.dumps({"family": self.name, **values}, sort_keys=True, default=str)


#: family name → family, in registration (= evaluation and report) order
FAMILIES: Registry[MetricFamily] = Registry(
    "metric family",
    "aebench.metrics",
    from_entry_point=lambda obj: _checked(obj() if isinstance(obj, type) else obj),
)


#: the shared options' names (:class:`~aebench.metrics.options.MetricOptions` fields, which
#: that module reserves when it is imported): a family's own setting may not take one
SHARED_OPTIONS: set[str] = set()


def reserve_shared_options(names: Iterable[str]) -> None:
    """Keep ``names`` (the shared option fields) from being used as a family's own setting."""
    SHARED_OPTIONS.update(names)


def register_family(cls: type[MetricFamily]) -> type[MetricFamily]:
    """Class decorator: register one instance of ``cls`` under ``cls.name``."""
    FAMILIES.register(cls.name, _checked(cls()))
    return cls


def _checked(family: MetricFamily) -> MetricFamily:
    """``family``, once no registered family declares its keys or settings (shared options
    neither). Checked against the families registered so far, without loading plugins:
    built-ins register while aebench.metrics is importing, when none can load yet."""
    registered = [f for _, f in FAMILIES.registered() if f.name != family.name]
    taken = {k for f in registered for k in f.key_names}
    clash = sorted(taken & set(family.key_names))
    if clash:
        raise ValueError(f"metric family {family.name!r}: key {clash[0]!r} is declared twice")
    owners = {k: f.name for f in registered for k in f.settings}
    owners.update(dict.fromkeys(SHARED_OPTIONS, "MetricOptions"))
    taken_options = sorted(set(family.settings) & set(owners))
    if taken_options:
        name = taken_options[0]
        raise ValueError(f"metric family {family.name!r}: setting {name!r} is {owners[name]}'s")
    return family


def family_settings() -> dict[str, tuple[str, Any]]:
    """Every registered family's own options: name → (family, default)."""
    return {k: (f.name, v) for _, f in FAMILIES.items() for k, v in f.settings.items()}


def all_keys() -> dict[str, MetricKey]:
    """Every declared key of every registered family, by name, in family order."""
    return {k.name: k for _, family in FAMILIES.items() for k in family.keys}


def family_names() -> tuple[str, ...]:
    return tuple(name for name, _ in FAMILIES.items())


def headline_keys() -> tuple[str, ...]:
    """The report's main-table columns: keys the families mark ``headline``, in family order."""
    return tuple(k for k, key in all_keys().items() if key.headline)
