"""keyledger on PostgreSQL next to SQLite: request throughput (bench.loadgen against
`keyledger serve` on each store, with 1 and 2 workers, side by side in one run), and the
cross-process staleness: a DisableKey through one process until Decrypt through another
is refused (the read cache's NOTIFY-driven mark), and CreateGrant / RevokeGrant through
one process until ListGrants through another shows it (the shared grants view).

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

from botocore.exceptions import ClientError

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
        check=False,
    )
    if not done.stdout.strip():  # setup failed: say why, and go on with the other runs
        return [{"error": done.stderr.strip().splitlines()[-1:]}]
    return json.loads(done.stdout)  # with any failed requests counted in "errors"


def key_state_staleness(a: ProcessServer, b: ProcessServer, rounds: int = 40) -> dict[str, Any]:
    """Seconds from a DisableKey acknowledged by ``a`` to ``b`` refusing Decrypt, and how
    often ``b``'s very next call was already refused."""
    first, second = a.client(), b.client()
    key_id = first.create_key()["KeyMetadata"]["KeyId"]
    blob = second.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    seen, at_once = [], 0
    for _ in range(rounds):
        second.decrypt(CiphertextBlob=blob)  # cached in b
        first.disable_key(KeyId=key_id)
        started, calls = time.perf_counter(), 0
        while True:
            calls += 1
            try:
                second.decrypt(CiphertextBlob=blob)
            except ClientError:
                break
        seen.append(time.perf_counter() - started)
        at_once += calls == 1
        first.enable_key(KeyId=key_id)
        while True:
            try:
                second.decrypt(CiphertextBlob=blob)
                break
            except ClientError:
                time.sleep(0.001)
    return {
        "refused_on_next_call": f"{at_once}/{rounds}",
        "median_s": round(statistics.median(seen), 4),
        "max_s": round(max(seen), 4),
    }


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
    parser.add_argument("--workers", default="1,2", help="worker counts to measure")
    args = parser.parse_args()
    postgres = start()
    results: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for workers in args.workers.split(","):
                for name in ("sqlite", "postgresql"):
                    extra: tuple[str, ...] = ("--workers", workers)
                    if name == "postgresql":
                        extra += ("--store", postgres.create_database())
                    label = f"{name}-{workers}w"
                    data_dir = Path(tmp) / label
                    server = ProcessServer(data_dir, extra_args=extra, env=ROOT_KEY).start()
                    try:
                        results[label] = throughput(server, args.duration, args.concurrency)
                    finally:
                        server.stop()
            url = postgres.create_database()
            a = ProcessServer(Path(tmp) / "a", extra_args=("--store", url), env=ROOT_KEY).start()
            b = ProcessServer(Path(tmp) / "b", extra_args=("--store", url), env=ROOT_KEY).start()
            try:
                results["key_state_staleness"] = key_state_staleness(a, b)
                results["grants_view_staleness"] = staleness(a, b)
            finally:
                a.stop()
                b.stop()
    finally:
        postgres.stop()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
