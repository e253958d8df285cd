"""The speed gate: the base commit against the working tree, interleaved in one job.

Two worker processes (:mod:`aebench.perf.worker`) hold the two versions of the code, each with its
own tree first on ``sys.path``. For every case both build it, agree on a round of about
``round_seconds`` (the number of calls is set once, from the base), and then time rounds in
turn, the order alternating pair by pair (base-head, head-base, ...) so a drift of the machine
favours neither. Only one worker runs at any moment. Each pair gives a ratio; the median's
interval (:mod:`aebench.perf.stats`) decides *slower*, *ok*, *faster* or *noisy*, and a noisy case
gets more pairs, up to a cap, before it is reported as noisy. Counted cases are also compared
exactly on FLOPs and host reads.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aebench.core.errors import UsageError
from aebench.perf import stats

#: the source folders a tree needs to run the cases
SOURCE_FOLDERS = ("bench", "models")
#: where each source folder lands in the import layout (what setuptools' package-dir maps)
IMPORT_LAYOUT = {"bench": "aebench", "models": "aebench/models"}
#: written last into a laid-out tree: a tree without it is incomplete and is laid out again
COMPLETE_MARKER = ".complete-2"


class WorkerProcess:
    """A running :mod:`aebench.perf.worker` on ``tree``'s code; requests are answered in order."""

    def __init__(self, tree: Path, threads: int, label: str) -> None:
        self.label = label
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), *_pythonpath()])}
        self.proc = subprocess.Popen(
            # aebench.perf.worker also runs a tree from before the `aebench` import name: its
            # code then imports the raw layout's `bench` and `models`, laid out beside it
            [sys.executable, "-m", "aebench.perf.worker", "--threads", str(threads)],
            cwd=tree,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self.threads = int(self._read().get("threads", threads))

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise UsageError(f"the {self.label} worker exited (code {self.proc.poll()})")
        return json.loads(line)

    def ask(self, **request: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        answer = self._read()
        if not answer.get("ok"):
            raise CaseFailed(f"{self.label}: {answer.get('error')}")
        return answer

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.write('{"op": "quit"}\n')
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


class CaseFailed(Exception):
    """A case could not be built or run on one side (reported, not fatal to the gate)."""


def _pythonpath() -> list[str]:
    return [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]


@dataclass
class CaseResult:
    """One case's comparison: the per-pair ratios, their interval, counts and the verdict."""

    case: str
    status: str
    reason: str
    calls: int = 0
    ratios: list[float] = field(default_factory=list)
    base_seconds: list[float] = field(default_factory=list)
    head_seconds: list[float] = field(default_factory=list)
    interval: tuple[float, float, float] = (float("nan"),) * 3
    base_counts: dict[str, int] | None = None
    head_counts: dict[str, int] | None = None

    def line(self) -> str:
        low, med, high = self.interval
        if self.status in ("missing", "new", "failed"):
            return f"{self.status.upper():<8} {self.case}: {self.reason}"
        per = f"{_median(self.head_seconds) * 1e3:.3g} vs {_median(self.base_seconds) * 1e3:.3g} ms"
        return (
            f"{self.status.upper():<8} {self.case}: x{med:.3f} [{low:.3f}, {high:.3f}] "
            f"over {len(self.ratios)} pairs (head {per} a call); {self.reason}"
        )


def _median(xs: list[float]) -> float:
    return stats.median_interval(xs)[1] if xs else float("nan")


@dataclass(frozen=True)
class GateSettings:
    """How long and how strictly to compare (defaults: docs/ci-gates.md)."""

    pairs: int = 15
    max_pairs: int = 45
    round_seconds: float = 0.25
    threshold: float = stats.THRESHOLD
    confidence: float = stats.CONFIDENCE


def _pairs(base: WorkerProcess, head: WorkerProcess, case: str, calls: int, n: int,
           start: int) -> Iterable[tuple[float, float]]:  # fmt: skip
    """``n`` (base, head) seconds-per-call pairs, the order alternating with the pair index."""
    for i in range(start, start + n):
        order = (base, head) if i % 2 == 0 else (head, base)
        seconds = {w.label: w.ask(op="time", case=case, calls=calls)["seconds"] for w in order}
        yield seconds[base.label], seconds[head.label]


def compare_case(
    base: WorkerProcess, head: WorkerProcess, case: str, settings: GateSettings, counted: bool
) -> CaseResult:
    """Build ``case`` on both sides, time interleaved pairs, count, and judge."""
    for w in (base, head):
        w.ask(op="build", case=case)
    calls = int(base.ask(op="calls", case=case, target=settings.round_seconds)["calls"])
    for w in (base, head):  # one untimed round each: caches, allocator, frequency
        w.ask(op="time", case=case, calls=calls)
    result = CaseResult(case, "noisy", "", calls)
    if counted:
        result.base_counts = base.ask(op="count", case=case)["counts"]
        result.head_counts = head.ask(op="count", case=case)["counts"]
    n = settings.pairs
    while True:
        for b, h in _pairs(base, head, case, calls, n, len(result.ratios)):
            result.base_seconds.append(b)
            result.head_seconds.append(h)
            result.ratios.append(h / b)
        result.interval = stats.median_interval(result.ratios, settings.confidence)
        verdict = stats.judge(result.interval[0], result.interval[2], result.base_counts,
                              result.head_counts, settings.threshold)  # fmt: skip
        more = settings.max_pairs - len(result.ratios)
        if verdict.status != "noisy" or more <= 0:
            break
        n = min(settings.pairs, more)  # too spread to judge yet: measure longer
    result.status, result.reason = verdict.status, verdict.reason
    return result


def run_gate(
    base_tree: Path,
    head_tree: Path,
    cases: list[str] | None,
    settings: GateSettings,
    threads: int,
    progress: Callable[[str], None] = print,
) -> list[CaseResult]:
    """Compare every case both trees know (or ``cases``); each result as it comes."""
    base = WorkerProcess(base_tree, threads, "base")
    try:
        head = WorkerProcess(head_tree, threads, "head")
        try:
            return _compare_all(base, head, cases, settings, progress)
        finally:
            head.close()
    finally:
        base.close()


def default_cases(listing: list[dict[str, Any]]) -> list[str]:
    """The cases a gate compares when none is named: the listed cases marked ``gated`` (a
    listing from before the flag existed gates every case)."""
    return [c["name"] for c in listing if c.get("gated", True)]


def _compare_all(
    base: WorkerProcess,
    head: WorkerProcess,
    cases: list[str] | None,
    settings: GateSettings,
    progress: Callable[[str], None],
) -> list[CaseResult]:
    listed = {w.label: w.ask(op="list")["cases"] for w in (base, head)}
    base_names = {c["name"] for c in listed["base"]}
    head_counted = {c["name"]: bool(c["counted"]) for c in listed["head"]}
    wanted = cases or default_cases(listed["head"])
    results = []
    for name in wanted:
        if name not in head_counted:
            result = CaseResult(name, "missing", "the working tree has no such case")
        elif name not in base_names:
            result = CaseResult(name, "new", "the base has no such case")
        else:
            try:
                result = compare_case(base, head, name, settings, head_counted[name])
            except CaseFailed as err:
                result = CaseResult(name, "failed", str(err))
        progress(result.line())
        results.append(result)
    return results


def _add_import_layout(tree: Path) -> None:
    """Copy ``tree``'s committed folders (``bench/``, ``models/``: what a commit from before
    the ``aebench`` import name imports) into the import layout (``aebench/``,
    ``aebench/models/``: what ``import aebench`` finds when ``tree`` is first on the path)."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in SOURCE_FOLDERS:
        shutil.copytree(tree / folder, tree / IMPORT_LAYOUT[folder], ignore=skip,
                        dirs_exist_ok=True)  # fmt: skip


def materialise(repo: Path, rev: str, dest: Path) -> Path:
    """The source folders of commit ``rev`` of ``repo``, laid out under ``dest/<sha>``."""
    sha = _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").strip()
    if not sha:
        raise UsageError(f"--base {rev!r} is not a commit of {repo}")
    tree = dest / sha
    if (tree / COMPLETE_MARKER).is_file():
        return tree
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", "--format=tar", sha, *SOURCE_FOLDERS],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise UsageError(f"git archive of {rev} failed: {archive.stderr.decode().strip()[:200]}")
    _clear(tree)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(tree, filter="data")
    _add_import_layout(tree)
    (tree / COMPLETE_MARKER).write_text(sha + "\n")
    return tree


def snapshot_worktree(repo: Path, dest: Path) -> Path:
    """The working tree's source folders as they are now, laid out under ``dest/worktree``.

    The head side runs from this copy, never from ``repo`` itself: ``import aebench`` would
    otherwise find whatever the environment installed, not the edits under test."""
    tree = dest / "worktree"
    _clear(tree)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in SOURCE_FOLDERS:
        shutil.copytree(repo / folder, tree / folder, ignore=skip)
    _add_import_layout(tree)
    return tree


def _clear(tree: Path) -> None:
    if tree.exists():
        shutil.rmtree(tree)
    tree.mkdir(parents=True)


def repo_root(start: Path) -> Path:
    """The git work tree holding ``start``, or a one-line error."""
    out = _git(start, "rev-parse", "--show-toplevel").strip()
    if not out:
        raise UsageError(f"{start} is not inside a git work tree: the speed gate compares commits")
    return Path(out)


def _git(repo: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              check=False)  # fmt: skip
    except FileNotFoundError:
        raise UsageError("the speed gate needs git on PATH") from None
    return done.stdout if done.returncode == 0 else ""


def write_results(path: Path, results: list[CaseResult], meta: dict[str, Any]) -> None:
    from aebench.core.atomic import write_json_atomic

    write_json_atomic(path, {"meta": meta, "cases": [asdict(r) for r in results]})


def elapsed_since(start: float) -> str:
    seconds = time.perf_counter() - start
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"


__all__ = [
    "CaseResult",
    "GateSettings",
    "WorkerProcess",
    "materialise",
    "run_gate",
    "snapshot_worktree",
]
