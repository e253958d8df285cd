"""How a run is measured: :class:`MetricOptions`, the one class for metric options.

A suite's ``[metrics]`` table, ``aebench eval``'s flags and a run's stored config all become this
object, and it validates itself on construction, so every way in is checked the same way (a bad
value is an :class:`~aebench.models.config.OptionError` naming the key, which a suite turns into
``file: metrics.KEY: ...``). The memory limit on ``n_samples`` is the one check left out of it
(:func:`check_n_samples`): a stored run's config must read back whatever it held.

Two kinds of option live here:

* the shared fields below (sample counts, backbone, sampler, batch sizes, ...), which the
  families name in :attr:`~aebench.metrics.family.MetricFamily.options`;
* a family's own **settings** (:attr:`~aebench.metrics.family.MetricFamily.settings`: name →
  default), so a plugin family brings its options with it. They share one flat namespace with
  the fields (registration refuses a clash) and are validated against their default's type.

``seed`` and ``train_batch_size`` left ``None`` mean "the run's own": a run's config holds its
training seed and batch size once, in its :class:`~aebench.training.settings.TrainConfig`, and
:meth:`~aebench.config.run.RunConfig.evaluation_options` fills them in.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from aebench.core.values import describe, is_int
from aebench.metrics import backbones, samplers
from aebench.metrics.constants import K_NEAREST, KID_SUBSET_SIZE, KID_SUBSETS, min_n_samples
from aebench.metrics.family import family_names, family_settings, reserve_shared_options
from aebench.metrics.features import feature_width
from aebench.metrics.generation import SAMPLING_FAMILIES, memory_problem
from aebench.models.config import OptionError, check_option

DEFAULT_N_SAMPLES = 10_000
#: the TF-Inception costs ~0.3 s per image on a CPU: fewer images there by default
DEFAULT_N_SAMPLES_INCEPTION_CPU = 500
DEFAULT_SEED = 0  #: outside a run (``aebench eval`` of a folder with no recorded seed)
DEFAULT_TRAIN_BATCH_SIZE = 64
#: where each integer option must lie (inclusive); a huge value is almost surely a typo
_RANGES: dict[str, tuple[int, int]] = {
    "iw_k": (1, 1_000_000),
    "iw_n": (1, 10_000_000),
    "k_nearest": (1, 10_000),
    "kid_subsets": (1, 100_000),
    "kid_subset_size": (1, 10_000_000),
    "batch_size": (1, 1_000_000),
    "train_batch_size": (1, 1_000_000),
    "seed": (0, 2**63 - 1),
}
#: fields that say where or what to run, not how a number is defined: not stored with a run
RUNTIME_FIELDS = ("seed", "train_batch_size", "families", "cache_dir", "inception_weights")


@dataclass(frozen=True)
class MetricOptions:
    """How to evaluate; validated on construction.

    ``n_samples`` None picks a default (10,000; 500 for ``inception`` on a CPU; never more than
    the test split holds); the real set is the first ``min(n_samples, test size)`` test images.
    ``sampler`` None evaluates the model's own samplers (its ``default_sampler`` in the headline
    columns).
    """

    n_samples: int | None = None
    backbone: str = "domain"
    sampler: str | None = None
    iw_k: int = 500
    iw_n: int = 1000
    k_nearest: int = K_NEAREST
    kid_subsets: int = KID_SUBSETS
    kid_subset_size: int = KID_SUBSET_SIZE
    batch_size: int = 500
    seed: int | None = None  #: None: the run's training seed (0 outside a run)
    train_batch_size: int | None = None  #: None: the run's training batch size (64 outside)
    #: the families' own options, as sorted (name, value) pairs; see the module docstring
    settings: tuple[tuple[str, Any], ...] = ()
    families: tuple[str, ...] | None = None  #: None: every registered family
    cache_dir: str | None = None
    inception_weights: str | None = None

    def __post_init__(self) -> None:
        for name, (low, high) in _RANGES.items():
            value = getattr(self, name)
            if value is None and name in ("seed", "train_batch_size"):
                continue
            if not is_int(value) or not low <= value <= high:
                raise OptionError(
                    name, f"{name} must be an integer from {low} to {high:,}, got {describe(value)}"
                )
        if self.n_samples is not None:
            low = min_n_samples(self.k_nearest)
            if not is_int(self.n_samples) or not low <= self.n_samples <= 10_000_000:
                raise OptionError(
                    "n_samples",
                    f"n_samples must be an integer from {low} to 10,000,000 (the k-NN metrics "
                    f"need more than k_nearest={self.k_nearest} images), got "
                    f"{describe(self.n_samples)}",
                )
        if self.backbone not in backbones.available():
            raise OptionError(
                "backbone",
                f"unknown feature backbone {describe(self.backbone)}; "
                f"choose one of: {', '.join(backbones.available())}",
            )
        if self.sampler is not None and (
            not isinstance(self.sampler, str) or self.sampler not in samplers.available()
        ):
            raise OptionError(
                "sampler",
                f"unknown sampler {describe(self.sampler)}; choose one of: "
                f"default, {', '.join(samplers.available())}",
            )
        declared = family_settings()
        checked = []
        for key, value in dict(self.settings).items():
            if key not in declared:
                raise OptionError(key, f"unknown metric option {key!r}; {_known_options()}")
            checked.append((key, check_option(key, value, declared[key][1])))
        object.__setattr__(self, "settings", tuple(sorted(checked)))
        known = family_names()
        families = known if self.families is None else tuple(self.families)
        unknown = sorted(set(families) - set(known))
        if unknown:
            raise OptionError(
                "families", f"unknown metric family {unknown[0]!r}; choose from: {', '.join(known)}"
            )
        object.__setattr__(self, "families", families)

    # -- reading --------------------------------------------------------------------------
    def setting(self, name: str) -> Any:
        """A family's own option: the value given, else the family's declared default."""
        given = dict(self.settings)
        return given[name] if name in given else family_settings()[name][1]

    def resolved(self) -> MetricOptions:
        """With ``seed`` and ``train_batch_size`` filled in where a run did not set them."""
        return dataclasses.replace(
            self,
            seed=DEFAULT_SEED if self.seed is None else self.seed,
            train_batch_size=(
                DEFAULT_TRAIN_BATCH_SIZE if self.train_batch_size is None else self.train_batch_size
            ),
        )

    def resolved_n_samples(self, device: Any, n_test: int | None = None) -> int:
        """``n_samples``, else the default for ``device``, at most ``n_test`` (the test split's
        size) when given: the real and generated sets then have one size, as precision,
        recall, density and coverage assume (1,000 real digits of mnist-5k against 10,000
        samples read a coverage of 1.0 where 1,000 against 1,000 read 0.97)."""
        if self.n_samples is not None:
            return self.n_samples
        if self.backbone == "inception" and device.type == "cpu":
            default = DEFAULT_N_SAMPLES_INCEPTION_CPU
        else:
            default = DEFAULT_N_SAMPLES
        return default if n_test is None else max(1, min(default, n_test))

    # -- one conversion to and from JSON / TOML -------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The options that define the numbers (no runtime fields), settings inlined: the
        shape of a suite's ``[metrics]`` table; :meth:`from_dict` inverts it."""
        out = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in RUNTIME_FIELDS and f.name != "settings"
        }
        out.update(dict(self.settings))
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], **runtime: Any) -> MetricOptions:
        """Options from a ``[metrics]`` table or a stored config: field names plus the
        families' settings, ``sampler = "default"`` meaning the model's own. Unknown keys are
        an :class:`OptionError` naming them."""
        fields = {f.name for f in dataclasses.fields(cls)} - set(RUNTIME_FIELDS) - {"settings"}
        settings = family_settings()
        kwargs: dict[str, Any] = {}
        extra: list[tuple[str, Any]] = []
        for key, value in dict(data).items():
            if key in fields:
                kwargs[key] = None if key == "sampler" and value == "default" else value
            elif key in settings:
                extra.append((key, value))
            else:
                raise OptionError(key, f"unknown metric option {key!r}; {_known_options()}")
        return cls(**kwargs, settings=tuple(extra), **runtime)


reserve_shared_options(f.name for f in dataclasses.fields(MetricOptions))


def check_n_samples(options: MetricOptions) -> MetricOptions:
    """``options``, or an :class:`OptionError` naming ``n_samples`` when its generated set would
    not fit the memory limit even before the images count
    (:func:`aebench.metrics.generation.memory_problem` without an image shape; the data's images
    are added once they are known, by :func:`aebench.metrics.evaluation.planned_memory_problem`
    and :func:`~aebench.metrics.evaluation.evaluate`).

    Not part of :class:`MetricOptions`' own validation on purpose: it is a limit of this machine
    and version, checked where options come in (a suite's ``[metrics]``, ``-m``/``--n-samples``),
    never when a stored run's config is read back, which must keep reading whatever it held."""
    if options.n_samples is None or not set(SAMPLING_FAMILIES) & set(options.families or ()):
        return options
    if problem := memory_problem(options.n_samples, feature_width(options.backbone)):
        raise OptionError("n_samples", problem)
    return options


def option_names() -> tuple[str, ...]:
    """Every key a ``[metrics]`` table may hold: the stored fields, then the settings."""
    names = [
        f.name
        for f in dataclasses.fields(MetricOptions)
        if f.name not in RUNTIME_FIELDS and f.name != "settings"
    ]
    return (*names, *family_settings())


def _known_options() -> str:
    return f"known: {', '.join(option_names())}"
