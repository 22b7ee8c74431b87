"""Launch a scenario of tests/distributed/worker.py on 1 plain process or N torchrun ranks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

WORKER = Path(__file__).parent / "distributed" / "worker.py"


def run(scenario: str, out: Path, ranks: int, max_restarts: int = 0) -> list[dict]:
    """Run a worker scenario with ``ranks`` processes (torchrun, restarted up to
    ``max_restarts`` times after a failure) or one plain process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if ranks == 1:
        cmd = [sys.executable, str(WORKER), scenario, str(out)]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(ranks),
               "--standalone", f"--max-restarts={max_restarts}", str(WORKER), scenario,
               str(out)]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return [torch.load(out / f"{scenario}.rank{r}.pt") for r in range(ranks)]
