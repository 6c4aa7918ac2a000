"""keyledger on PostgreSQL next to SQLite: request throughput (bench.loadgen against one
`keyledger serve` on each store), and the cross-process staleness of the grants view
(CreateGrant / RevokeGrant through one process, ListGrants through another).

Starts a throwaway PostgreSQL as tests/postgres.py does (initdb as an unprivileged user).

    .venv/bin/python -m bench.postgres --duration 5 --concurrency 16
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.postgres import start
from tests.support import REPO, ProcessServer

ROOT_KEY = {"KEYLEDGER_ROOT_KEY": base64.b64encode(bytes(range(32))).decode()}


def throughput(server: ProcessServer, duration: float, concurrency: str) -> list[dict[str, Any]]:
    done = subprocess.run(  # noqa: S603 (our own interpreter and module)
        [
            sys.executable,
            "-m",
            "bench.loadgen",
            "--endpoint",
            server.endpoint,
            "--op",
            "all",
            "--concurrency",
            concurrency,
            "--duration",
            str(duration),
            "--warmup",
            "1",
            "--json",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def staleness(a: ProcessServer, b: ProcessServer, rounds: int = 20) -> dict[str, float]:
    """Seconds from a grant change acknowledged by ``a`` to ``b``'s ListGrants showing it."""
    first, second = a.client(), b.client()
    key_id = first.create_key()["KeyMetadata"]["KeyId"]
    seen = []
    for _ in range(rounds):
        grant = first.create_grant(
            KeyId=key_id,
            GranteePrincipal="arn:aws:iam::000000000000:role/x",
            Operations=["Encrypt"],
        )
        started = time.perf_counter()
        while not second.list_grants(KeyId=key_id)["Grants"]:
            time.sleep(0.001)
        seen.append(time.perf_counter() - started)
        first.revoke_grant(KeyId=key_id, GrantId=grant["GrantId"])
        started = time.perf_counter()
        while second.list_grants(KeyId=key_id)["Grants"]:
            time.sleep(0.001)
        seen.append(time.perf_counter() - started)
    return {
        "median_s": round(statistics.median(seen), 4),
        "max_s": round(max(seen), 4),
        "samples": len(seen),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--concurrency", default="16")
    args = parser.parse_args()
    postgres = start()
    results: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name in ("sqlite", "postgresql"):
                extra = ("--store", postgres.create_database()) if name == "postgresql" else ()
                server = ProcessServer(Path(tmp) / name, extra_args=extra, env=ROOT_KEY).start()
                try:
                    results[name] = throughput(server, args.duration, args.concurrency)
                finally:
                    server.stop()
            url = postgres.create_database()
            a = ProcessServer(Path(tmp) / "a", extra_args=("--store", url), env=ROOT_KEY).start()
            b = ProcessServer(Path(tmp) / "b", extra_args=("--store", url), env=ROOT_KEY).start()
            try:
                results["grants_view_staleness"] = staleness(a, b)
            finally:
                a.stop()
                b.stop()
    finally:
        postgres.stop()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
