"""Memory over a long run: one keyledger under steady load, its RSS sampled as it goes.

    .venv/bin/python -m bench.soak --minutes 10 --concurrency 64

Segments of --segment seconds cycle through Encrypt, Decrypt and GenerateDataKey (the
request mix of envelope encryption; every request leaves a durable usage record and an
audit row behind) and each segment ends with one RSS sample of the server and its
children. Flat means the last samples are within a few MB of those after warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bench.compare import settings_for, start_keyledger
from bench.loadgen import Job, Target, prepare_fixtures, run_one

OPS = ("Encrypt", "Decrypt", "GenerateDataKey")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--segment", type=float, default=20.0, help="seconds per sample")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="kl-soak-"))
    server = start_keyledger(root / "data", args.workers)
    try:
        base = settings_for(
            server.endpoint,
            argparse.Namespace(
                op=list(OPS), concurrency=[args.concurrency], duration=None, warmup=0
            ),
        )
        settings = replace(base, duration=args.segment, warmup=0.0)
        fixtures = prepare_fixtures(settings)
        target = Target.build(settings)
        began, requests, samples = time.monotonic(), 0, [(0.0, server.rss_mb())]
        print(f"t=0 s RSS {samples[0][1]:.1f} MB", flush=True)
        n = 0
        while time.monotonic() - began < args.minutes * 60:
            op = OPS[n % len(OPS)]
            result = asyncio.run(run_one(settings, Job(target, op, fixtures), args.concurrency))
            requests += result.requests
            elapsed = time.monotonic() - began
            samples.append((elapsed, server.rss_mb()))
            print(
                f"t={elapsed:.0f} s {op} {result.req_per_s:.0f} req/s errors {result.errors} "
                f"RSS {samples[-1][1]:.1f} MB",
                flush=True,
            )
            n += 1
        warm = samples[min(3, len(samples) - 1)][1]
        print(
            f"{requests} requests in {args.minutes:g} min; RSS {samples[0][1]:.1f} MB at start, "
            f"{warm:.1f} MB after warm-up (1 min), {samples[-1][1]:.1f} MB at end, "
            f"max {max(rss for _, rss in samples):.1f} MB; load average {os.getloadavg()}"
        )
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
