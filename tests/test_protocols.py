"""Published protocols and values: the shipped protocol suites, a suite held to its protocol,
the published-values file checked field by field, and published numbers reaching the report."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from aebench import models
from aebench.core.errors import UsageError
from aebench.experiments.protocols import PROTOCOLS, Protocol
from aebench.experiments.published import load_published, match, parse_published
from aebench.experiments.suite import load_suite, parse_suite
from tests.conftest import one_line_error

BURDA = """
name = "b"
models = ["vae"]
datasets = ["mnist-binary"]
archs = ["burda2015-mlp"]
seeds = [0, 1]
[protocol]
name = "burda2015-mnist"
scale = 0.01
"""


def test_shipped_protocol_suites_follow_their_protocols() -> None:
    burda = load_suite("burda2015-mnist")
    assert burda.protocol is not None and burda.protocol.name == "burda2015-mnist"
    assert burda.train.epochs == 33 and burda.train.batch_size == 20 and burda.latent_dim == 50
    assert (burda.metrics.iw_k, burda.metrics.iw_n) == (5000, 10000)  # the paper's evaluation
    assert "33 of the paper's 3,280 epochs" in burda.protocol.describe()
    assert [spec.label for spec in burda.models] == ["vae", "iwae-k1", "iwae-k5", "iwae-k50"]
    iwae_k = [spec.options_dict.get("k", 5) for spec in burda.models[1:]]  # 5: iwae's default
    assert iwae_k == [1, 5, 50]
    # the paper's 8 stages: its decay reaches every run, as fractions of the budget
    assert burda.train.lr_milestones == pytest.approx([1 / 3280, 4 / 3280, 13 / 3280,
                                                       40 / 3280, 121 / 3280, 364 / 3280,
                                                       1093 / 3280])  # fmt: skip
    assert burda.train.lr_gamma == pytest.approx(10 ** (-1 / 7))
    assert load_suite("ghosh2020-mnist").train.lr_milestones == ()  # no decay in that paper
    ghosh = load_suite("ghosh2020-mnist")
    assert ghosh.protocol.name == "ghosh2020-mnist" and ghosh.train.epochs == 1
    assert ghosh.metrics.backbone == "inception" and ghosh.metrics.n_samples == 10000
    assert (ghosh.datasets, ghosh.archs, ghosh.latent_dim) == (
        ("mnist-32",), ("ghosh2020-conv",), 16)  # fmt: skip


def test_aebench_protocols_lists_each_with_its_published_values(capsys) -> None:
    from aebench.cli import main

    assert main(["protocols"]) == 0
    lines = dict(line.split("\t") for line in capsys.readouterr().out.splitlines())
    assert set(lines) >= {"burda2015-mnist", "ghosh2020-mnist"}
    assert "Burda" in lines["burda2015-mnist"] and "8 published values" in lines["burda2015-mnist"]
    assert "26 published values" in lines["ghosh2020-mnist"]


def test_scale_one_is_the_full_protocol_and_metric_changes_are_listed() -> None:
    full = parse_suite(BURDA.replace("scale = 0.01", "scale = 1"))
    assert full.train.epochs == 3280 and full.protocol.departures() == []
    assert "the full protocol" in full.protocol.describe()
    fewer = parse_suite(BURDA + "[metrics]\niw_n = 1000\n")
    assert fewer.metrics.iw_n == 1000
    assert "iw_n = 1000 (paper: 10000)" in fewer.protocol.departures()
    tiny = parse_suite(BURDA.replace("scale = 0.01", "scale = 0.0000001"))
    assert tiny.train.epochs == 1  # never zero epochs


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        (("mnist-binary", "fashion-mnist"), "datasets[0]", "defined on mnist-binary"),
        (('"burda2015-mlp"', '"conv"'), "archs[0]", "architecture burda2015-mlp"),
        (("seeds = [0, 1]", "seeds = [0, 1]\nlatent_dim = 16"), "latent_dim", "with 50"),
        (("seeds = [0, 1]", "seeds = [0, 1]\nbatch_size = 128"), "batch_size", "with 20"),
        (("[protocol]", "[budget]\nepochs = 3\n[protocol]"), "budget", "scale it"),
        (("scale = 0.01", "scale = 2"), "protocol.scale", "at most 1"),
        (("scale = 0.01", "scale = -1"), "protocol.scale", "> 0"),
        (('name = "burda2015-mnist"', 'name = "nope"'), "protocol.name", "unknown protocol"),
        (('name = "burda2015-mnist"', ""), "protocol", "needs a name"),
    ],
)
def test_a_suite_off_its_protocol_is_one_line_naming_the_key(
    tmp_path, capsys, change, key, words
) -> None:
    text = BURDA.replace(*change)
    with pytest.raises(UsageError) as err:
        parse_suite(text, source="bad.toml")
    assert f"key {key!r}" in str(err.value) and words in str(err.value), str(err.value)
    path = tmp_path / "bad.toml"
    path.write_text(text)
    line = one_line_error(capsys, ["run", str(path), "--store", str(tmp_path / "s.sqlite")])
    assert key in line and "bad.toml" in line
    assert not (tmp_path / "s.sqlite").exists()


def test_shipped_published_values_hold_the_papers_numbers() -> None:
    values = load_published()
    by = {(v.protocol, v.paper_model, v.metric): v for v in values}
    # Ghosh et al. 2020, Table 1, MNIST (the quoted values: 58.7 / 10.7, 19.2 / 17.7)
    assert by[("ghosh2020-mnist", "AE", "fid@gaussian")].value == 58.73
    assert by[("ghosh2020-mnist", "AE", "fid@gmm")].value == 10.66
    assert by[("ghosh2020-mnist", "VAE", "fid@prior")].value == 19.21
    assert by[("ghosh2020-mnist", "VAE", "fid@gmm")].value == 17.66
    assert by[("ghosh2020-mnist", "RAE-L2", "fid@gmm")].value == 8.69
    ghosh = [v for v in values if v.protocol.startswith("ghosh2020-")]
    assert {v.protocol for v in ghosh} == {f"ghosh2020-{d}" for d in ("mnist", "cifar10", "celeba")}
    assert len(ghosh) == 3 * (9 * 3 - 1)  # 9 rows x (REC, N, GMM); 2sVAE has no GMM
    assert by[("burda2015-mnist", "VAE (k = 1)", "nll_iw")].value == 86.76
    assert by[("burda2015-mnist", "IWAE (k = 50)", "nll_iw")].value == 84.78
    pythae = [v for v in values if v.protocol == "chadebec2022-reproduction"]
    assert {v.value for v in pythae} >= {89.78, 9.1}
    for v in values:  # every value carries its whole protocol
        assert v.dataset and v.binarization and v.architecture and v.budget and v.features
        assert v.n_samples >= 1 and isinstance(v.confirmed, bool)
    matched = {v.model for v in values if v.protocol in PROTOCOLS.names()} - {""}
    shipped = {spec.label for name in ("burda2015-mnist", "ghosh2020-mnist")
               for spec in load_suite(name).models}  # fmt: skip
    # a value names a registered model or a label of the protocol's shipped suite, or none
    assert matched <= set(models.available()) | shipped
    assert {"ae", "vae", "wae-mmd", "rae-l2", "rae-gp", "iwae-k1", "iwae-k50"} <= matched


GROUP = {
    "protocol": "p", "source": "s", "dataset": "d", "binarization": "b", "architecture": "a",
    "latent_dim": 16, "budget": "10 epochs", "sampler": "prior", "n_samples": 100,
    "features": "f", "confirmed": True,
}  # fmt: skip
VALUE = {"paper_model": "VAE", "model": "vae", "metric": "fid", "value": 1.5}


@pytest.mark.parametrize("field", ["sampler", "n_samples", "features", "value", "confirmed"])
def test_a_published_value_missing_a_field_is_one_line(tmp_path, capsys, field) -> None:
    group = {k: v for k, v in GROUP.items() if k != field}
    value = {k: v for k, v in VALUE.items() if k != field}
    with pytest.raises(UsageError, match=f"group\\[0\\].values\\[1\\]: missing field '{field}'"):
        whole = {**VALUE, field: GROUP.get(field, 1.0)}
        parse_published({"group": [{**group, "values": [whole, value]}]}, "f.toml")
    path = tmp_path / "values.toml"
    lines = [f"{k} = {_toml(v)}" for k, v in group.items()]
    lines.append("values = [{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }]")
    path.write_text("[[group]]\n" + "\n".join(lines) + "\n")
    store = tmp_path / "s.sqlite"
    line = one_line_error(capsys, ["report", "--store", str(store), "--published", str(path),
                                   "--out", str(tmp_path / "r")])  # fmt: skip
    assert "values.toml" in line and f"missing field '{field}'" in line


def _toml(v: object) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else (
        f'"{v}"' if isinstance(v, str) else str(v))  # fmt: skip


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"value": "high"}, "'value' must be a finite number"),
        ({"n_samples": 0}, "'n_samples' must be a positive integer"),
        ({"confirmed": "yes"}, "'confirmed' must be true or false"),
        ({"dataset": " "}, "'dataset' must not be empty"),
        ({"colour": "red"}, "unknown field 'colour'"),
    ],
)
def test_bad_published_fields_are_refused(change, words) -> None:
    with pytest.raises(UsageError, match=words):
        parse_published({"group": [{**GROUP, "values": [{**VALUE, **change}]}]}, "f.toml")


def test_match_sets_our_mean_beside_the_published_value() -> None:
    values = parse_published({"group": [{**GROUP, "values": [
        VALUE, {**VALUE, "model": "ae"}, {**VALUE, "model": ""}, {**VALUE, "protocol": "q"}]}]},
        "f.toml")  # fmt: skip
    runs = pd.DataFrame({"label": ["vae", "vae", "vae"], "model": ["vae"] * 3,
                         "fid": [2.0, 2.5, 3.0]})  # fmt: skip
    vae, ae, none = match(values, "p", runs)
    assert vae.n == 3 and vae.mean == pytest.approx(2.5) and vae.std == pytest.approx(0.5)
    assert vae.z == pytest.approx((2.5 - 1.5) / 0.5)
    assert ae.n == 0 and math.isnan(ae.z) and none.n == 0
    one_seed = match(values, "p", runs.iloc[:1])[0]
    assert one_seed.n == 1 and math.isnan(one_seed.z)  # no spread to measure against


@pytest.fixture
def test_protocol():
    proto = Protocol(
        name="test-proto", source="A. Author 2099", description="a tiny test protocol",
        datasets=("mnist-5k",), archs=("mlp",), latent_dim=4, epochs=2, batch_size=500,
        metrics={"iw_k": 4, "iw_n": 16}, differences="none at all",
    )  # fmt: skip
    PROTOCOLS.register(proto.name, proto)
    yield proto
    PROTOCOLS.unregister(proto.name)


def test_published_values_reach_the_report_of_a_protocol_suite(
    tmp_path, domain_net, test_protocol
) -> None:
    from aebench.cli import main

    suite = tmp_path / "proto.toml"
    suite.write_text(
        'name = "proto"\nmodels = ["ae"]\ndatasets = ["mnist-5k"]\narchs = ["mlp"]\n'
        'seeds = [0, 1]\ndevice = "cpu"\n[protocol]\nname = "test-proto"\nscale = 0.5\n'
        "[metrics]\nn_samples = 100\n"
    )
    published = tmp_path / "values.toml"
    group = {**GROUP, "protocol": "test-proto", "source": "Author 2099, Table 9"}
    lines = [f"{k} = {_toml(v)}" for k, v in group.items()]
    lines.append('values = [{ paper_model = "AE", model = "ae", metric = "recon_mse", '
                 'value = 0.01 }, { paper_model = "RAE", model = "", metric = "fid", '
                 "value = 7.5 }]")  # fmt: skip
    published.write_text("[[group]]\n" + "\n".join(lines) + "\n")
    db, out = tmp_path / "s.sqlite", tmp_path / "report"
    assert main(["run", str(suite), "--store", str(db), "--quiet"]) == 0
    assert main(["report", "--store", str(db), "--suite", str(suite), "--out", str(out),
                 "--published", str(published), "--no-figures"]) == 0  # fmt: skip
    text = (out / "report.md").read_text()
    assert "## Published values: test-proto" in text
    assert "1 of the paper's 2 epochs" in text  # the departure, in the header and section
    row = next(line for line in text.splitlines() if line.startswith("| AE |"))
    assert "recon_mse" in row and "0.01" in row and "(n=2)" in row and "Author 2099" in row
    assert next(line for line in text.splitlines() if line.startswith("| RAE |")).count("–") >= 2
    assert "**Protocol:** test-proto" in text and "**Features:** aebench's domain" in text
    assert "**NLL:**" not in text  # an AE has no likelihood: no latent family measured it


def test_the_header_warns_that_binarizations_must_not_be_compared() -> None:
    from aebench.report.collect import evaluation_lines

    metrics = {"backbone": "inception", "iw_k": 5000, "iw_n": 10000}
    lines = evaluation_lines([{"config": {"dataset": "mnist-binary"}}], [metrics])
    assert "must not be compared" in lines["Binarization"]
    assert lines["NLL"].startswith("nats per image, summed over all pixels")
    assert "K = 5,000 on 10,000 test images" in lines["NLL"]
    assert "uint8" in lines["Features"] and "TF1's bilinear" in lines["Features"]
    assert "Binarization" not in evaluation_lines([{"config": {"dataset": "mnist"}}], [{}])


def test_a_published_model_matches_its_label_before_other_runs_of_that_model() -> None:
    values = parse_published({"group": [{**GROUP, "values": [VALUE]}]}, "f.toml")
    runs = pd.DataFrame({"label": ["vae", "vae", "vae-b8", "vae-b8"], "model": ["vae"] * 4,
                         "fid": [2.0, 3.0, 50.0, 60.0]})  # fmt: skip
    (m,) = match(values, "p", runs)
    assert m.n == 2 and m.mean == pytest.approx(2.5)  # the β = 8 variant is not averaged in
    (m,) = match(values, "p", runs[runs["label"] == "vae-b8"])
    assert m.n == 2 and m.mean == pytest.approx(55.0)  # no run labelled vae: the model's runs


def test_published_needs_a_protocol_suite_and_a_file_with_values(tmp_path, capsys) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("# nothing yet\n")
    with pytest.raises(UsageError, match="no published values"):
        load_published(empty)
    good = tmp_path / "good.toml"
    lines = [f"{k} = {_toml(v)}" for k, v in GROUP.items()]
    lines.append('values = [{ paper_model = "VAE", model = "vae", metric = "fid", value = 1.5 }]')
    good.write_text("[[group]]\n" + "\n".join(lines) + "\n")
    args = ["report", "--store", str(tmp_path / "s.sqlite"), "--published", str(good)]
    line = one_line_error(capsys, [*args, "--out", str(tmp_path / "r")])
    assert "--published needs --suite" in line
