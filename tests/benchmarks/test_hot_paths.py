"""pytest-benchmark benchmarks of the speed cases (:mod:`aebench.perf.cases`), one per case.

The cases are defined once, in the package, so that what ``pytest --benchmark-enable`` times
and what the speed gate (``nox -s regress``) compares are the same calls — the code a user's
command runs. The ``tests`` session runs each once with ``--benchmark-disable``, which checks
that every case builds and runs; the assertions check what each call returns.
"""

from __future__ import annotations

import pytest
import torch

from aebench.perf.cases import CASES, case_names


@pytest.mark.parametrize("name", case_names())
def test_case(benchmark, name):
    case = CASES.get(name)
    call = case.build()
    out = benchmark(call)
    if isinstance(out, dict):  # a train step's terms, an epoch's means, metric scores
        values = [v for v in out.values() if isinstance(v, (float, torch.Tensor))]
        assert values and all(torch.isfinite(torch.as_tensor(v)).all() for v in values)
    else:  # features, reconstructions or the matmul product: one row per image
        assert isinstance(out, torch.Tensor) and torch.isfinite(out).all()
        assert out.shape[0] in (case.units, 1024)
