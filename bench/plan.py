"""`trackday plan` on every shipped stack, against the bare start of the Pulumi SDK, in one run.

Goal (issue 3): `trackday plan --stack NAME` under 10 s on this machine for every shipped
stack file.

What is timed: the whole command as a user runs it, in a fresh process each time
(`python -m trackday plan --stack NAME --json`): interpreter start, imports (the Pulumi SDK,
the stack's provider SDK, the CLI), config parsing, the program under Pulumi's mock engine,
pricing and printing.

The baseline, measured in the same run and the same way: a fresh process that only
imports the Pulumi SDK (`python -c "import pulumi"`), the floor any Pulumi program in
Python pays before it declares anything. The ratio says how many such starts a plan
costs; the median of --repeat runs is reported, as the machine is shared.

    .venv/bin/python bench/plan.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from infra.config import list_stacks  # noqa: E402

GOAL_S = 10.0


def timed(command: list[str], repeat: int) -> float:
    """Median wall-clock seconds of `command` in a fresh process (stdout discarded)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    args = parser.parse_args()
    python = sys.executable
    baseline = timed([python, "-c", "import pulumi"], args.repeat)
    print(f"baseline: fresh `import pulumi`: {baseline:.2f} s (median of {args.repeat})")
    failed = False
    for stack in list_stacks(ROOT):
        seconds = timed([python, "-m", "trackday", "plan", "--stack", stack, "--json"], args.repeat)
        ok = seconds < GOAL_S
        failed |= not ok
        print(
            f"plan --stack {stack}: {seconds:.2f} s = {seconds / baseline:.1f} x baseline; "
            f"goal < {GOAL_S:.0f} s: {'met' if ok else 'MISSED'}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
