"""`keyledger serve --workers N`: N server processes on one port and one store.

Each worker is an ordinary `keyledger serve` (same arguments, same environment) that
binds the port with SO_REUSEPORT, so the kernel spreads connections over them. They
share nothing but the store: commands that conflict are retried by the ledger
(optimistic concurrency), and each worker's read cache sees the others' commits
(eventstore/read_cache.py). Only worker 0 runs the scheduler, so rotations and
deletions are issued once (each also re-checks "is it due?" against the aggregate it
saves, so a second issuer would find nothing left to do). The parent only starts the
workers, hands them the operator's signals, and exits with the worst exit status.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

WORKER_ENV = "KEYLEDGER_WORKER_INDEX"


def worker_index() -> int | None:
    """This process's index when it is one of several workers, else None."""
    value = os.environ.get(WORKER_ENV)
    return int(value) if value is not None else None


def run_workers(argv: Sequence[str], count: int) -> int:
    children = [
        subprocess.Popen(  # noqa: S603 - this very command line, for each worker
            [sys.executable, "-m", "api", *argv], env={**os.environ, WORKER_ENV: str(index)}
        )
        for index in range(count)
    ]

    stopping: set[int] = set()

    def forward(signum: int, _frame: object) -> None:
        if signum != signal.SIGHUP:
            stopping.add(signum)
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    def status(code: int) -> int:
        """A worker that the operator's signal ended before it could handle it (still
        starting) stopped as asked; anything else non-zero is a failure."""
        return 0 if code < 0 and -code in stopping else abs(code)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    worst = 0
    while any(child.poll() is None for child in children):
        for child in children:
            code = child.poll()
            if code is not None and status(code):
                # One worker died: stop the others too, so a supervisor sees the failure.
                forward(signal.SIGTERM, None)
                worst = max(worst, status(code))
        time.sleep(0.2)
    return max([worst, *(status(child.returncode) for child in children)])
