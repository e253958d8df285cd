"""Fuzzing suite parsing and validation: any input is either a valid suite or one UsageError line.

Two generators: TOML-ish text (fragments of real suites, mutated and shuffled, plus raw noise)
and arbitrary parsed-TOML-like values (dicts with plausible keys and random leaves). Every
accepted suite must also expand, and its configs must survive a JSON round trip.
"""

from __future__ import annotations

import datetime as dt
import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aebench.core.errors import UsageError
from aebench.experiments.suite import RunConfig, Suite, parse_suite

FUZZ = settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

KEYS = [
    "name", "description", "models", "datasets", "archs", "seeds", "budget", "batch_size",
    "latent_dim", "metrics", "device", "data_dir", "overrides", "epochs", "steps", "seconds",
    "backbone", "n_samples", "sampler", "iw_k", "iw_n", "model", "label", "beta", "hidden",
    "recon", "lr", "width", "gamma", "vae", "ae", "vae-gan", "beta-vae", "image_shape", "x",
]  # fmt: skip
WORDS = [
    "ae", "vae", "beta-vae", "vae-gan", "mnist-5k", "mnist", "cifar10", "mlp", "conv", "domain",
    "inception", "prior", "gmm", "gaussian", "default", "cpu", "cuda:0", "auto", "bce", "mse", "",
]  # fmt: skip

scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 2, -1, 3]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.sampled_from(WORDS),
    st.text(max_size=8),
    st.datetimes(),
    st.dates(),
    st.times(),
    st.none(),
)
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=6), st.integers(-3, 3))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(keys, inner, max_size=4),
    ),
    max_leaves=8,
)
BASE = {
    "models": ["ae", "vae"],
    "datasets": ["mnist-5k"],
    "archs": ["mlp"],
    "seeds": [0, 1],
    "budget": {"epochs": 1},
}


MODEL_OPTION_KEYS = ["beta", "hidden", "recon", "lr", "width", "gamma", "sigma", "latent_dim", "x"]


def maybe_random(strategy: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """The plausible strategy most of the time, any value sometimes."""
    return st.one_of(strategy, strategy, strategy, values)


small_ints = st.one_of(st.integers(-3, 300), st.sampled_from([0, 1, 2**32, 2**63]))
numbers = st.one_of(small_ints, st.floats(allow_nan=True, allow_infinity=True))
option_values = st.one_of(numbers, st.sampled_from(WORDS), st.lists(small_ints, max_size=3))
PLAUSIBLE: dict[str, st.SearchStrategy[object]] = {
    "name": st.sampled_from(["fz", "a.b", "fz-2", "x y", ""]),
    "description": st.text(max_size=5),
    "models": st.lists(
        st.one_of(
            st.sampled_from(["ae", "vae", "beta-vae", "vae-gan", "nope"]),
            st.fixed_dictionaries(
                {"model": st.sampled_from(["vae", "ae", "zz"])},
                optional={
                    "label": st.sampled_from(["v2", "v3", "vae", "a b"]),
                    "beta": numbers,
                    "hidden": st.lists(small_ints, max_size=3),
                    "latent_dim": small_ints,
                },
            ),
        ),
        max_size=4,
    ),
    "datasets": st.lists(st.sampled_from(WORDS), max_size=3),
    "archs": st.lists(st.sampled_from(WORDS), max_size=3),
    "seeds": st.lists(small_ints, max_size=4),
    "batch_size": small_ints,
    "latent_dim": small_ints,
    "device": st.sampled_from(WORDS),
    "data_dir": st.one_of(st.text(max_size=4), small_ints),
    "budget": st.dictionaries(
        st.sampled_from(["epochs", "steps", "seconds", "epoch"]), numbers, min_size=1, max_size=2
    ),
    "metrics": st.dictionaries(
        st.sampled_from(["backbone", "n_samples", "sampler", "iw_k", "iw_n", "k"]),
        st.one_of(numbers, st.sampled_from(WORDS)),
        max_size=5,
    ),
    "overrides": st.dictionaries(
        st.sampled_from(["ae", "vae", "v2", "beta-vae", "zz"]),
        st.dictionaries(st.sampled_from(MODEL_OPTION_KEYS), option_values, max_size=3),
        max_size=2,
    ),
}


@st.composite
def suite_dicts(draw: st.DrawFn) -> object:
    """Near-valid suites with a few keys given plausible or random values; sometimes noise."""
    if draw(st.integers(0, 9)) == 0:
        return draw(values)
    data: dict[object, object] = dict(BASE)
    for key in draw(st.lists(st.sampled_from(list(PLAUSIBLE)), max_size=3)):
        data[key] = draw(maybe_random(PLAUSIBLE[key]))
    if draw(st.integers(0, 4)) == 0:
        data[draw(keys)] = draw(values)
    if draw(st.integers(0, 4)) == 0:
        data.pop(draw(st.sampled_from(list(BASE))), None)
    return data


def toml_key(key: object) -> str:
    text = str(key)
    bare = text and all(c.isascii() and (c.isalnum() or c in "_-") for c in text)
    return text if bare else toml_string(text)


def toml_string(text: str) -> str:
    # JSON's escapes are TOML's, except that astral characters must stay literal (no surrogate
    # pairs in TOML) and DEL must be escaped.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007F")


def toml_value(value: object) -> str | None:
    """A tiny TOML writer (None: not representable, so the key is left out)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list):
        items = [toml_value(v) for v in value]
        return "[" + ", ".join(i for i in items if i is not None) + "]"
    if isinstance(value, dict):
        pairs = [(toml_key(k), toml_value(v)) for k, v in value.items()]
        return "{" + ", ".join(f"{k} = {v}" for k, v in pairs if v is not None) + "}"
    return None


def to_toml(data: object) -> str:
    if not isinstance(data, dict):
        return f"value = {toml_value(data)}"
    lines, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif (text := toml_value(value)) is not None:
            lines.append(f"{toml_key(key)} = {text}")
    for key, table in tables:
        lines.append(f"[{toml_key(key)}]")
        for sub, value in table.items():
            if (text := toml_value(value)) is not None:
                lines.append(f"{toml_key(sub)} = {text}")
    return "\n".join(lines)


LINES = [
    'name = "fz"', 'models = ["ae", "vae"]', 'models = [{ model = "vae", beta = 2 }]',
    'datasets = ["mnist-5k"]', 'archs = ["mlp", "conv"]', "seeds = [0, 1]", "[budget]",
    "epochs = 1", "steps = 0", "seconds = 2.5", "seconds = nan", "[metrics]",
    'backbone = "domain"', 'sampler = "gmm"', "n_samples = -5", "[overrides.vae]", "beta = -1",
    "hidden = [8, 0]", "batch_size = 0", "latent_dim = 1e3", "[[models]]", "x = [[[[1]]]]",
    "a.b.c = 1", "key = 1979-05-27T07:32:00Z", 'd = """', "= 1", "[", "]", "'", '"',
    "inf = inf", "t = { a = { b = { c = 1 } } }", "", "# comment",
]  # fmt: skip


@st.composite
def toml_texts(draw: st.DrawFn) -> str:
    """Serialised near-valid suites (so validation is reached), often damaged afterwards."""
    lines = to_toml(draw(suite_dicts())).split("\n")
    for _ in range(draw(st.integers(0, 2))):
        how = draw(st.integers(0, 4))
        at = draw(st.integers(0, len(lines) - 1)) if lines else 0
        if how == 0:  # a line from a hand-written list of traps
            lines.insert(at, draw(st.sampled_from(LINES)))
        elif how == 1 and lines:  # a duplicated line (duplicate keys are errors)
            lines.insert(at, lines[at])
        elif how == 2:  # raw noise
            lines.insert(at, draw(st.text(max_size=10)))
        elif how == 3 and lines:  # a chopped line
            lines[at] = lines[at][: draw(st.integers(0, len(lines[at])))]
    return "\n".join(lines)


def check(result: Suite) -> None:
    configs = result.expand()
    assert len(configs) == len(result)
    for cfg in configs[:20]:
        assert RunConfig.from_json(cfg.to_json()) == cfg
        assert len(cfg.config_hash) == 64
    assert len({c.config_hash for c in configs}) == len(configs)


def one_line(err: UsageError) -> None:
    text = str(err)
    assert text and "\n" not in text and "\r" not in text


@FUZZ
@given(toml_texts())
def test_any_toml_text_gives_a_suite_or_one_usage_error(text: str) -> None:
    try:
        result = parse_suite(text, source="fuzz.toml")
    except UsageError as err:
        one_line(err)
        assert str(err).startswith("fuzz.toml: ")
        return
    check(result)


@FUZZ
@given(suite_dicts())
def test_any_parsed_value_gives_a_suite_or_one_usage_error(data: object) -> None:
    try:
        result = Suite.from_dict(data, source="fuzz.toml")
    except UsageError as err:
        one_line(err)
        assert str(err).startswith("fuzz.toml")
        return
    check(result)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_give_a_suite_or_one_usage_error(raw: bytes) -> None:
    try:
        parse_suite(raw, source="fuzz.toml")
    except UsageError as err:
        one_line(err)


def test_the_valid_core_is_really_valid() -> None:
    """Guards the fuzzers: their base inputs must pass, or they would only test refusals."""
    check(Suite.from_dict(dict(BASE)))
    check(parse_suite("\n".join([*LINES[0:2], *LINES[3:8]])))
