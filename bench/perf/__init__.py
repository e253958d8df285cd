"""Speed measurement that CI can gate on.

* :mod:`aebench.perf.cases` — the benchmark cases: each one calls the code a user's command runs
  (the trainer's step, an epoch, evaluation, the CLI's feature path), defined once and used by
  both the pytest-benchmark benchmarks (``tests/benchmarks``) and the gate.
* :mod:`aebench.perf.counters` — deterministic counts of one call (FLOPs, dispatched operations,
  host syncs): they do not depend on how busy the machine is.
* :mod:`aebench.perf.worker` — a process that serves timed rounds of cases over a pipe.
* :mod:`aebench.perf.abtest` — the gate: the base commit and the working tree, each in its own
  worker, timed in interleaved rounds and compared with a distribution-free interval.
* :mod:`aebench.perf.trend` — the cross-machine record: pytest-benchmark times as ratios to a
  calibration matmul, against a committed baseline (``aebench gate trend``).

Why this design (``docs/ci-gates.md`` has the measurements): a committed cross-machine baseline
fails on unchanged code, because noise on a shared VM is neither uniform nor one-sided enough
for a calibration kernel to divide it out. Timing both versions alternately in the same job
makes the noise hit both alike, and counting what cannot be timed (a host sync costs
microseconds on a CPU) makes those regressions exact.
"""
