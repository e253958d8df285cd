"""Planted regressions: how the speed gate is itself tested.

Each regression is a small edit to the source, applied to a throwaway copy of a git work tree
whose last commit is the unchanged code, so the gate sees it exactly as it sees a user's change:
the working tree against ``HEAD``. ``python -m aebench.perf.planted --runs 10`` (``nox -s
regress_check``) repeats the gate on unchanged code and with each regression and tabulates how
often it passed or failed and which case it named; the test suite runs one round of each at a
small size (``tests/test_speed_gate.py``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from aebench.perf.abtest import SOURCE_FOLDERS


@dataclass(frozen=True)
class Planted:
    """Replace ``old`` by ``new`` in ``path``; the gate should fail naming ``case``."""

    name: str
    path: str
    old: str
    new: str
    case: str


_STEP = "        terms = self.switches.forward(x)\n"
PLANTED = (
    Planted(
        "extra-forward",
        "bench/training/trainer.py",
        _STEP,
        _STEP + "        self.switches.forward(x)  # planted: a second forward pass\n",
        "train-step[vae-mlp]",
    ),
    Planted(
        "host-sync",
        "bench/training/trainer.py",
        _STEP,
        _STEP + '        float(terms["loss"])  # planted: a host read every step\n',
        "train-step[vae-mlp]",
    ),
    Planted(
        "no-channels-last",
        "bench/metrics/inception.py",
        "        self.net = self.net.to(memory_format=torch.channels_last)\n",
        "",
        "inception-features",
    ),
)


def _git(repo: Path, *args: str) -> None:
    ident = ["-c", "user.name=aebench", "-c", "user.email=aebench@localhost"]
    subprocess.run(["git", *ident, "-C", str(repo), *args], check=True, capture_output=True)


def scratch_repo(source: Path, dest: Path) -> Path:
    """A git repo at ``dest`` holding ``source``'s source folders as its one commit."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for folder in SOURCE_FOLDERS:
        shutil.copytree(source / folder, dest / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    (dest / ".gitignore").write_text("runs/\n__pycache__/\n")
    _git(dest, "init", "-q")
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "-m", "base")
    return dest


def plant(repo: Path, planted: Planted) -> None:
    """Apply ``planted`` to ``repo``'s working tree (refused if its anchor text is gone)."""
    path = repo / planted.path
    text = path.read_text()
    if text.count(planted.old) != 1:
        raise ValueError(f"planted regression {planted.name}: anchor not found once in {path}")
    path.write_text(text.replace(planted.old, planted.new))


def gate(repo: Path, cases: list[str], extra: list[str]) -> dict:
    """One ``aebench gate speed`` in ``repo`` against its HEAD: exit code, failing cases."""
    out = repo / "runs" / "gate.json"
    cmd = [sys.executable, "-m", "aebench", "gate", "speed", "--base", "HEAD", "--json", str(out)]
    for case in cases:
        cmd += ["--case", case]
    start = time.perf_counter()
    done = subprocess.run([*cmd, *extra], cwd=repo, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    report = json.loads(out.read_text()) if out.is_file() else {"cases": []}
    slower = [c["case"] for c in report["cases"] if c["status"] == "slower"]
    noisy = [c["case"] for c in report["cases"] if c["status"] == "noisy"]
    return {"rc": done.returncode, "slower": slower, "noisy": noisy, "seconds": seconds,
            "stderr": done.stderr.strip()[-300:]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Repeat the speed gate on unchanged code and on each planted regression."
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--source", default=".", help="the work tree to copy (default: .)")
    parser.add_argument("--scratch", default="runs/regress/planted")
    parser.add_argument("--only", action="append", default=None,
                        help="none, or a planted regression's name (repeatable)")  # fmt: skip
    parser.add_argument("gate_args", nargs="*", help="passed on to aebench gate speed")
    args = parser.parse_args(argv)
    variants = [None, *PLANTED]
    if args.only:
        variants = [v for v in variants if (v.name if v else "none") in args.only]
    summary = []
    for variant in variants:
        repo = scratch_repo(Path(args.source).resolve(), Path(args.scratch).resolve())
        if variant is not None:
            plant(repo, variant)
        for i in range(args.runs):
            row = {"variant": variant.name if variant else "none", "run": i + 1,
                   **gate(repo, [], args.gate_args)}  # fmt: skip
            print(json.dumps(row), flush=True)
            summary.append(row)
    Path(args.scratch).with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
