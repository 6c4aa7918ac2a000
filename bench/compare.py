"""keyledger beside moto_server: the same SigV4-signed load, alternating rounds, ratios.

moto_server comes from ``moto[server]`` in a benchmark environment of its own, never a
keyledger dependency::

    python3 -m venv /tmp/moto-venv && /tmp/moto-venv/bin/pip install 'moto[server]'
    .venv/bin/python -m bench.compare --rounds 3 --duration 5 --concurrency 1,64 --workers 1,2

Each round runs every (op, concurrency) against moto and against each keyledger server
(one per --workers value), in an order that alternates between rounds, so load from other
users of the machine falls on both sides alike. The table gives medians over the rounds.
keyledger runs with --no-quotas (AWS's request quotas would throttle CreateKey at 5/s)
and its audit view following in a thread, as by default.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from bench.loadgen import Job, Result, Settings, Target, prepare_fixtures, run_one

OPS = ("Encrypt", "Decrypt", "GenerateDataKey", "CreateKey")


@dataclass
class Server:
    name: str
    endpoint: str
    process: subprocess.Popen[bytes]

    def rss_mb(self) -> float:
        """Resident memory of the server and its children (workers, followers)."""
        pids = [self.process.pid, *_children(self.process.pid)]
        total = 0
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except FileNotFoundError:
                continue
        return total / 1024

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return found
    for child in text.split():
        found += [int(child), *_children(int(child))]
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError as error:
            if getattr(error, "code", None) is not None:
                return  # an HTTP error status: it answers
            time.sleep(0.2)
    raise RuntimeError(f"{url}: no answer in {seconds} s")


def start_moto(moto_server: str) -> Server:
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - our own command line
        [moto_server, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    wait_until_up(endpoint + "/", process)
    return Server("moto_server", endpoint, process)


def start_keyledger(
    data_dir: Path, workers: int, source: Path | None = None, data_from: Path | None = None
) -> Server:
    """This checkout's keyledger, or (``source``) another checkout's, e.g. main's; on a
    copy of ``data_from`` (a prepared data directory) if given."""
    if data_from is not None:
        shutil.copytree(data_from, data_dir)
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "api",
        "serve",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        "--no-quotas",
        "--log-format",
        "text",
    ]
    if workers > 1:
        command += ["--workers", str(workers)]
    log = (data_dir.parent / f"{data_dir.name}.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 - our own command line
        command, stdout=log, stderr=subprocess.STDOUT, cwd=source or Path.cwd()
    )
    endpoint = f"http://127.0.0.1:{port}"
    wait_until_up(endpoint + "/health", process)
    name = f"keyledger w={workers}" if source is None else f"baseline w={workers}"
    if data_from is not None:
        name = f"{data_from.name} w={workers}"
    return Server(name, endpoint, process)


def fsync_ms(directory: Path, count: int = 200) -> float:
    """Median time of a 4 KiB write plus fsync in ``directory`` (the disk's commit floor)."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    times = []
    try:
        block = os.urandom(4096)
        for i in range(count):
            os.pwrite(fd, block, (i % 16) * 4096)
            began = time.perf_counter()
            os.fsync(fd)
            times.append(time.perf_counter() - began)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(times) * 1000


def settings_for(endpoint: str, args: argparse.Namespace) -> Settings:
    return Settings(
        endpoint=endpoint,
        region="us-east-1",
        access_key="test",
        secret_key="test",
        ops=tuple(args.op),
        concurrency=tuple(args.concurrency),
        duration=args.duration,
        requests=None,
        warmup=args.warmup,
        timeout=30.0,
        json_output=False,
    )


async def one_round(
    servers: Sequence[Server], args: argparse.Namespace, fixtures: dict[str, object], flip: bool
) -> list[tuple[str, Result]]:
    found: list[tuple[str, Result]] = []
    for op in args.op:
        for concurrency in args.concurrency:
            order = list(reversed(servers)) if flip else list(servers)
            for server in order:
                settings = settings_for(server.endpoint, args)
                job = Job(Target.build(settings), op, fixtures[server.name])  # type: ignore[arg-type]
                result = await run_one(settings, job, concurrency)
                found.append((server.name, result))
                print(
                    f"  {server.name:>14} {op:>15} c={concurrency:<3} "
                    f"{result.req_per_s:8.0f} req/s  p50 {result.p50_ms or 0:7.1f}  "
                    f"p99 {result.p99_ms or 0:7.1f} ms  errors {result.errors}",
                    file=sys.stderr,
                    flush=True,
                )
    return found


def median_of(results: list[Result], attr: str) -> float:
    return statistics.median(getattr(r, attr) or 0.0 for r in results)


def report(collected: list[tuple[str, Result]], servers: Sequence[Server]) -> str:
    by: dict[tuple[str, str, int], list[Result]] = defaultdict(list)
    for name, result in collected:
        by[(name, result.op, result.concurrency)].append(result)
    lines = [
        "| op | c | server | req/s | p50 ms | p99 ms | x moto |",
        "|---|---|---|---|---|---|---|",
    ]
    keys = sorted({(op, c) for _, op, c in by}, key=lambda k: (OPS.index(k[0]), k[1]))
    for op, c in keys:
        moto = median_of(by[("moto_server", op, c)], "req_per_s")
        for server in servers:
            results = by[(server.name, op, c)]
            rate = median_of(results, "req_per_s")
            ratio = f"{rate / moto:.1f}" if moto else "-"
            lines.append(
                f"| {op} | {c} | {server.name} | {rate:.0f} | {median_of(results, 'p50_ms'):.1f} "
                f"| {median_of(results, 'p99_ms'):.1f} | {ratio} |"
            )
    return "\n".join(lines)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--moto-server", default="/tmp/moto-venv/bin/moto_server")  # noqa: S108
    p.add_argument("--op", type=lambda s: s.split(","), default=list(OPS))
    p.add_argument("--concurrency", type=lambda s: [int(c) for c in s.split(",")], default=[1, 64])
    p.add_argument("--workers", type=lambda s: [int(w) for w in s.split(",")], default=[1])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="another checkout (e.g. `git archive main`) to run beside this one",
    )
    p.add_argument("--keys", type=int, default=0, help="keys to create first in each keyledger")
    p.add_argument(
        "--prepared",
        type=Path,
        default=None,
        help="also run a keyledger (1 worker) on a copy of this data directory, e.g. one "
        "filled by bench.seed_usage: flat cost, side by side with a fresh one",
    )
    return p.parse_args(argv)


def preload_keys(endpoint: str, count: int) -> None:
    """Fill the store (flat-cost runs): ``count`` keys through the API, 64 at a time."""
    if count <= 0:
        return
    settings = replace(
        settings_for(
            endpoint,
            argparse.Namespace(op=["CreateKey"], concurrency=[64], duration=None, warmup=0),
        ),
        requests=count,
        duration=None,
    )
    job = Job(Target.build(settings), "CreateKey", prepare_fixtures(settings))
    asyncio.run(run_one(settings, job, 64))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    root = Path(tempfile.mkdtemp(prefix="kl-compare-"))
    print(f"fsync (4 KiB, median of 200) in {root}: {fsync_ms(root):.2f} ms", file=sys.stderr)
    servers = [start_moto(args.moto_server)]
    try:
        for workers in args.workers:
            servers.append(start_keyledger(root / f"kl-w{workers}", workers))
        if args.baseline is not None:
            servers.append(start_keyledger(root / "baseline", 1, args.baseline.resolve()))
        if args.prepared is not None:
            servers.append(start_keyledger(root / "prepared", 1, data_from=args.prepared))
        for server in servers[1:]:
            preload_keys(server.endpoint, args.keys)
        fixtures = {s.name: prepare_fixtures(settings_for(s.endpoint, args)) for s in servers}
        rss_start = {s.name: s.rss_mb() for s in servers}
        collected: list[tuple[str, Result]] = []
        for n in range(args.rounds):
            print(f"round {n + 1}/{args.rounds}", file=sys.stderr, flush=True)
            collected += asyncio.run(one_round(servers, args, fixtures, flip=n % 2 == 1))
        print(report(collected, servers))
        for server in servers:
            print(
                f"RSS {server.name}: {rss_start[server.name]:.0f} MB at start, "
                f"{server.rss_mb():.0f} MB at end",
                file=sys.stderr,
            )
    finally:
        for server in servers:
            server.stop()
    print(f"load average: {os.getloadavg()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
