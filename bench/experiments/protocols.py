"""Published evaluation protocols, so that a suite's numbers can be set beside a paper's.

A :class:`Protocol` is what a paper fixed: the dataset (and its binarization), the network, the
latent size, the training budget and batch size, and how it measured (samples, feature network,
importance samples). A suite that declares one::

    [protocol]
    name = "burda2015-mnist"
    scale = 0.01        # fraction of the paper's training budget; 1 = the full protocol

is checked against it up front — a dataset, architecture, latent size or batch size the paper
did not use, or a ``[budget]`` of its own, is one :class:`~aebench.core.errors.UsageError` line
naming the key — and gets its budget from it: ``max(1, round(scale × the paper's epochs))``.
``scale = 1`` is the full protocol (a GPU's job); a CPU runs a scaled budget. The paper's
evaluation settings are the suite's ``[metrics]`` defaults; the suite may change them (fewer
test images on a CPU). The report lists every departure — the scale and each changed
evaluation setting (:meth:`ProtocolUse.departures`) — in its header and above the published
values.

Names carry the arXiv year (Burda et al.: arXiv 2015, ICLR 2016).

Protocols are a :class:`~aebench.core.registry.Registry` like models and datasets: a plugin adds one
through the ``aebench.experiments.protocols`` entry-point group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aebench.core.registry import Registry


@dataclass(frozen=True)
class Protocol:
    """One paper's training and evaluation setting (see the module docstring)."""

    name: str
    source: str
    description: str
    datasets: tuple[str, ...]  #: the datasets it is defined on (aebench's names)
    archs: tuple[str, ...]  #: architectures that follow the paper's network
    latent_dim: int
    epochs: int  #: the paper's full training budget, in passes over the training set
    batch_size: int
    #: the paper's evaluation, as ``[metrics]`` options
    metrics: dict[str, Any] = field(default_factory=dict)
    #: where aebench's run differs from the paper even at scale 1, and why
    differences: str = ""
    #: the paper's learning-rate decay: times ``lr_gamma`` at each of these fractions of the
    #: training budget (so a scaled run decays in the same shape)
    lr_milestones: tuple[float, ...] = ()
    lr_gamma: float = 1.0


PROTOCOLS: Registry[Protocol] = Registry("protocol", "aebench.experiments.protocols")


def register_protocol(protocol: Protocol) -> Protocol:
    PROTOCOLS.register(protocol.name, protocol)
    return protocol


@dataclass(frozen=True)
class ProtocolUse:
    """A suite's ``[protocol]`` table, validated: which protocol, at what scale, and what the
    suite's ``[metrics]`` changed from the paper's evaluation."""

    name: str
    scale: float = 1.0
    #: (option, the paper's value, the suite's value) for every evaluation departure
    metric_changes: tuple[tuple[str, Any, Any], ...] = ()

    @property
    def protocol(self) -> Protocol:
        return PROTOCOLS.get(self.name)

    @property
    def epochs(self) -> int:
        return scaled_epochs(self.protocol, self.scale)

    def lr_decay(self) -> dict[str, Any]:
        """The protocol's learning-rate decay as :class:`TrainConfig` fields (empty: none)."""
        p = self.protocol
        return {"lr_milestones": p.lr_milestones, "lr_gamma": p.lr_gamma} if p.lr_milestones else {}

    def departures(self) -> list[str]:
        """What differs from the published protocol, one phrase each (empty: none)."""
        out = []
        if self.scale != 1.0:
            out.append(
                f"training budget scaled by {self.scale:g}: {self.epochs:,} of the paper's "
                f"{self.protocol.epochs:,} epochs"
            )
        out += [f"{k} = {ours} (paper: {paper})" for k, paper, ours in self.metric_changes]
        return out

    def describe(self) -> str:
        """One line for the report header."""
        p = self.protocol
        gap = self.departures()
        state = "the full protocol" if not gap else "not the full protocol: " + "; ".join(gap)
        return f"{p.name} ({p.source}), {state}"


def scaled_epochs(protocol: Protocol, scale: float) -> int:
    return max(1, round(protocol.epochs * scale))


# --------------------------------------------------------------------------------------------
# The built-in protocols
# --------------------------------------------------------------------------------------------
BURDA2015_MNIST = register_protocol(
    Protocol(
        name="burda2015-mnist",
        source="Burda, Grosse & Salakhutdinov 2016 (ICLR), 'Importance Weighted Autoencoders', "
        "section 5 and Table 1",
        description="density estimation on dynamically binarized MNIST: a 784-200-200-50 "
        "tanh MLP VAE, test NLL by the K = 5,000 importance-weighted bound on the 10,000 "
        "test images, in nats per image",
        datasets=("mnist-binary",),
        archs=("burda2015-mlp",),
        latent_dim=50,
        # 3^i passes at learning rate 0.001 * 10^(-i/7), i = 0..7: 3,280 passes, batch 20
        epochs=3280,
        batch_size=20,
        metrics={"iw_k": 5000, "iw_n": 10000},
        differences="Adam's epsilon is PyTorch's 1e-8 (the paper: 1e-4); the test split is one "
        "fixed seeded binarization",
        # the 8 stages end after 1, 4, 13, 40, 121, 364 and 1,093 of the 3,280 passes
        lr_milestones=tuple(sum(3**j for j in range(i + 1)) / 3280 for i in range(7)),
        lr_gamma=10 ** (-1 / 7),
    )
)

GHOSH2020_MNIST = register_protocol(
    Protocol(
        name="ghosh2020-mnist",
        source="Ghosh, Sajjadi, Vergari, Black & Schölkopf 2020 (ICLR), 'From Variational to "
        "Deterministic Autoencoders', Table 1 and appendix",
        description="sample quality on MNIST zero-padded to 32x32: four-conv encoder and "
        "decoder with batch norm, a 16-d code, FID of 10,000 samples against the test images "
        "in Inception features, per sampler (N(0, I), a 10-component GMM on training codes) "
        "and of reconstructions",
        datasets=("mnist-32",),
        archs=("ghosh2020-conv",),
        latent_dim=16,
        epochs=100,
        batch_size=100,
        metrics={"backbone": "inception", "n_samples": 10000},
        differences="the AE and VAE keep aebench's objectives (a Bernoulli likelihood on "
        "[0, 1] pixels, Adam at lr 1e-3; the paper's code uses an L2 cost and 5e-4), while "
        "wae-mmd and the RAEs follow their authors' costs and learning rates (their "
        "docstrings say where they still differ); the AE's N column is aebench's "
        "'gaussian' sampler (one Gaussian fitted to the training codes), the VAE's and "
        "WAE's is the prior; the 10-component GMM is scikit-learn's, as the authors', "
        "but a fixed 100 EM iterations from k-means++ seeding (theirs: to a 1e-3 "
        "tolerance from k-means)",
    )
)
