"""Audit trail benchmarks (run by hand; figures go to bench/README.md and the README).

``python -m bench.audit lag``    the audit view's lag behind the usage ledger while
                                 bench.loadgen drives Encrypt; and the request rate with
                                 the view running vs paused (its cost on the hot path).
``python -m bench.audit trail``  a trail of N records (default 1,000,000) written straight
                                 into a UsageLedger, projected, signed, then timed:
                                 projection, ``audit verify``, ``audit export`` and the
                                 offline ``audit verify --dir``.
Loopback only; every server is started here on a fresh data directory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
console = Console(stderr=True)


# -- lag and hot-path cost ------------------------------------------------------------------


def _serve(data: Path, port: int, mode: str) -> subprocess.Popen[bytes]:
    """mode: thread (the default follower), process (--audit-follower process) or paused."""
    env = {
        **os.environ,
        "KEYLEDGER_DEV_AUDIT": "paused" if mode == "paused" else "running",
        "KEYLEDGER_AUDIT_FOLLOWER": "process" if mode == "process" else "thread",
    }
    args = [sys.executable, "-m", "api", "serve", "--port", str(port), "--data-dir", str(data)]
    process = subprocess.Popen(  # noqa: S603 - our own server, fixed arguments
        [*args, "--dev-clock"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("server did not start")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _loadgen(port: int, seconds: float, concurrency: int) -> dict[str, Any]:
    out = subprocess.run(  # noqa: S603 - our own loadgen
        [
            sys.executable,
            "-m",
            "bench.loadgen",
            "--endpoint",
            f"http://127.0.0.1:{port}",
            "--op",
            "Encrypt",
            "--concurrency",
            str(concurrency),
            "--duration",
            str(seconds),
            "--json",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout)[0])


class LagSampler:
    """Samples, every few ms, the usage ledger's newest notification and the audit view's
    tracked position; lag = time from a record being durable to the view holding it."""

    def __init__(self, data: Path, every: float = 0.005) -> None:
        self.data = data
        self.every = every
        self.written: list[tuple[float, int]] = []
        self.seen: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        usage = sqlite3.connect(f"file:{self.data / 'usage.db'}?mode=ro", uri=True)
        audit = sqlite3.connect(f"file:{self.data / 'audit.db'}?mode=ro", uri=True)
        while not self._stop.is_set():
            now = time.perf_counter()
            top = usage.execute("SELECT MAX(rowid) FROM stored_events").fetchone()[0] or 0
            pos = audit.execute(
                "SELECT MAX(notification_id) FROM tracking WHERE application_name = 'UsageLedger'"
            ).fetchone()[0]
            self.written.append((now, top))
            self.seen.append((time.perf_counter(), pos or 0))
            time.sleep(self.every)

    def __enter__(self) -> LagSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def lags(self) -> list[float]:
        lags, j = [], 0
        for t, top in self.written:
            while j < len(self.seen) and (self.seen[j][1] < top or self.seen[j][0] < t):
                j += 1
            if j == len(self.seen):
                break
            lags.append(self.seen[j][0] - t)
        return lags


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = subprocess.run(  # noqa: S603 - fixed arguments
        ["/usr/bin/pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
    )
    return [int(p) for p in found.stdout.split()]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def bench_lag(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for mode in ("thread", "process", "paused") * args.rounds:
        data = Path(tempfile.mkdtemp(prefix="kl-audit-bench-")) / "data"
        data.mkdir()
        port = _free_port()
        server = _serve(data, port, mode)
        try:
            _loadgen(port, 1, 4)  # creates tables and the bench key
            children = _children(server.pid)
            cpu_before = _cpu_seconds(server.pid)
            child_before = sum(_cpu_seconds(pid) for pid in children)
            if mode != "paused":
                with LagSampler(data) as sampler:
                    row = _loadgen(port, args.seconds, args.concurrency)
                lags = sampler.lags()
                row |= {
                    "lag_p50_ms": round(_pct(lags, 0.5) * 1000, 1),
                    "lag_p99_ms": round(_pct(lags, 0.99) * 1000, 1),
                    "lag_max_ms": round(max(lags) * 1000, 1),
                    "lag_samples": len(lags),
                }
            else:
                row = _loadgen(port, args.seconds, args.concurrency)
            cpu = _cpu_seconds(server.pid) - cpu_before
            child = sum(_cpu_seconds(pid) for pid in children) - child_before
            row["server_cpu_us_per_req"] = round(cpu / max(1, row["requests"]) * 1e6)
            row["follower_cpu_us_per_req"] = round(child / max(1, row["requests"]) * 1e6)
            results.setdefault(mode, []).append(row)
        finally:
            server.terminate()
            server.wait(30)
            shutil.rmtree(data.parent, ignore_errors=True)
    table = Table(
        "audit view",
        "req/s",
        "server CPU µs/req",
        "follower CPU µs/req",
        "p50 ms",
        "p99 ms",
        "lag p50",
        "lag p99",
        "lag max",
    )
    for mode, rows in results.items():
        for row in rows:
            table.add_row(
                mode,
                f"{row['req_per_s']:.0f}",
                str(row["server_cpu_us_per_req"]),
                str(row["follower_cpu_us_per_req"]),
                f"{row['p50_ms']:.1f}",
                f"{row['p99_ms']:.1f}",
                str(row.get("lag_p50_ms", "-")),
                str(row.get("lag_p99_ms", "-")),
                str(row.get("lag_max_ms", "-")),
            )
    console.print(table)
    return results


# -- a trail of a million records ----------------------------------------------------------


def _write_usage(data: Path, count: int, batch: int) -> float:
    from domain.usage import RequestRecorded
    from domain.values import RequestContext
    from eventstore.usage_ledger import UsageLedger

    env = {
        "PERSISTENCE_MODULE": "eventstore.sqlite:DurableSQLiteFactory",
        "SQLITE_DBNAME": str(data / "usage.db"),
    }
    usage = UsageLedger(env)
    key = f"arn:aws:kms:us-east-1:000000000000:key/{uuid4()}"
    started = time.perf_counter()
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("writing usage records", total=count)
        for first in range(0, count, batch):
            records = []
            for _ in range(min(batch, count - first)):
                request_id = str(uuid4())
                ctx = RequestContext(
                    principal="arn:aws:iam::000000000000:root",
                    account="000000000000",
                    region="us-east-1",
                    request_id=request_id,
                    source_ip="127.0.0.1",
                    user_agent="bench",
                    access_key_id="test",
                    operation="Encrypt",
                )
                records.append(
                    RequestRecorded(
                        originator_id=RequestRecorded.id_for(request_id),
                        originator_version=1,
                        timestamp=datetime.now(UTC),
                        operation="Encrypt",
                        request=ctx.as_dict(),
                        key_arn=key,
                        parameters={"KeyId": key, "EncryptionContext": {"app": "bench"}},
                        error_code=None,
                        error_message=None,
                    )
                )
            usage.record_batch(records)
            bar.advance(task, len(records))
    usage.close()
    return time.perf_counter() - started


def _cli(data: Path, *args: str) -> float:
    started = time.perf_counter()
    subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "api", *args, "--data-dir", str(data)],
        cwd=REPO,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def bench_trail(args: argparse.Namespace) -> dict[str, Any]:
    from api.app import open_stores
    from projections.audit_runner import AuditRunner

    base = Path(args.dir or tempfile.mkdtemp(prefix="kl-trail-bench-"))
    data = base / "data"
    data.mkdir(parents=True, exist_ok=True)
    # the stores a server would make (keyledger.db, keystore.db, root key), then the records
    server = _serve(data, _free_port(), "paused")
    server.terminate()
    server.wait(30)
    figures: dict[str, Any] = {"records": args.records}
    figures["write_s"] = _write_usage(data, args.records, 5000)
    stores = open_stores(data, os.environ)
    runner = AuditRunner(stores.ledger, stores.usage, stores.audit, batch=2000)
    started = time.perf_counter()
    runner.catch_up()
    figures["project_s"] = time.perf_counter() - started
    stores.close()
    figures["digest_s"] = _cli(data, "audit", "digest")
    figures["verify_s"] = _cli(data, "audit", "verify")
    figures["export_s"] = _cli(data, "audit", "export", str(base / "export"))
    started = time.perf_counter()
    subprocess.run(  # noqa: S603 - our own CLI
        [
            *(sys.executable, "-m", "api", "audit", "verify", "--dir", str(base / "export")),
            *("--public-key", str(data / "audit-public-key.pem")),
        ],
        cwd=REPO,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    figures["verify_export_s"] = time.perf_counter() - started
    figures["audit_db_mb"] = round((data / "audit.db").stat().st_size / 2**20, 1)
    figures["export_mb"] = round(
        sum(p.stat().st_size for p in (base / "export").rglob("*") if p.is_file()) / 2**20, 1
    )
    table = Table("step", "seconds", "records/s")
    for step in ("write", "project", "verify", "export", "verify_export"):
        seconds = figures[f"{step}_s"]
        table.add_row(step, f"{seconds:.1f}", f"{args.records / seconds:,.0f}")
    console.print(table)
    console.print(f"audit.db {figures['audit_db_mb']} MB, export {figures['export_mb']} MB")
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.audit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    lag = commands.add_parser("lag")
    lag.add_argument("--seconds", type=float, default=10)
    lag.add_argument("--concurrency", type=int, default=64)
    lag.add_argument("--rounds", type=int, default=3, help="running/paused pairs, interleaved")
    lag.set_defaults(run=bench_lag)
    trail = commands.add_parser("trail")
    trail.add_argument("--records", type=int, default=1_000_000)
    trail.add_argument("--dir", help="where to build it (default: a temporary directory)")
    trail.add_argument("--keep", action="store_true")
    trail.set_defaults(run=bench_trail)
    args = parser.parse_args(argv)
    print(json.dumps(args.run(args), indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
