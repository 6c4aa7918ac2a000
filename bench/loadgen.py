"""SigV4-signing concurrent load generator for any KMS JSON 1.1 endpoint."""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import urlsplit

import aiohttp
import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from api.config import is_loopback

OPS: tuple[str, ...] = ("Encrypt", "Decrypt", "GenerateDataKey", "CreateKey")
OPS_NEEDING_KEY = frozenset({"Encrypt", "Decrypt", "GenerateDataKey"})
PLAINTEXT_BYTES = 256
MAX_ERROR_SAMPLES = 3
ERROR_BODY_CHARS = 300
CONTENT_TYPE = "application/x-amz-json-1.1"
DEFAULT_DURATION_S = 10.0
EXIT_OK, EXIT_REQUEST_ERRORS, EXIT_USAGE = 0, 1, 2


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Settings:
    """Everything parsed from the command line."""

    endpoint: str
    region: str
    access_key: str
    secret_key: str
    ops: tuple[str, ...]
    concurrency: tuple[int, ...]
    duration: float | None
    requests: int | None
    warmup: float
    timeout: float
    json_output: bool


@dataclass(frozen=True)
class Fixtures:
    """Server-side objects created once, before any load, with boto3."""

    key_id: str = ""
    ciphertext_b64: str = ""


@dataclass
class Budget:
    """Shared stop condition: a wall-clock deadline and/or a request count."""

    deadline: float
    remaining: int | None = None

    def take(self) -> bool:
        """Claim one request slot; False once time or requests are used up."""
        if time.perf_counter() >= self.deadline:
            return False
        if self.remaining is None:
            return True
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True


@dataclass
class Stats:
    """Raw per-run measurements, appended to by every worker."""

    latencies: list[float] = field(default_factory=list)
    requests: int = 0
    errors: int = 0
    sign_seconds: float = 0.0
    error_samples: list[str] = field(default_factory=list)

    def ok(self, latency: float) -> None:
        self.requests += 1
        self.latencies.append(latency)

    def fail(self, detail: str) -> None:
        self.requests += 1
        self.errors += 1
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(detail[:ERROR_BODY_CHARS])


@dataclass(frozen=True)
class Result:
    """One row of the report: a summarised (op, concurrency) run."""

    op: str
    concurrency: int
    requests: int
    errors: int
    duration_s: float
    req_per_s: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    sign_us_mean: float | None
    sign_share_pct: float
    client_cpu_us_per_req: float | None
    client_cpu_pct: float
    error_samples: list[str]


# --------------------------------------------------------------------------- signing


def host_header(url: str) -> str:
    """The Host value botocore signs for ``url`` (default port omitted)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    if parts.port is not None and parts.port != default_port:
        host = f"{host}:{parts.port}"
    return host


@dataclass(frozen=True)
class Target:
    """Where requests go and how they are signed."""

    url: str
    host: str
    signer: SigV4Auth

    @classmethod
    def build(cls, settings: Settings) -> Target:
        url = settings.endpoint.rstrip("/") + "/"
        credentials = Credentials(settings.access_key, settings.secret_key)
        signer = SigV4Auth(credentials, "kms", settings.region)
        return cls(url=url, host=host_header(url), signer=signer)

    def sign(self, op: str, body: bytes) -> dict[str, str]:
        """SigV4-sign one POST and return the headers to send verbatim."""
        headers = {
            "Host": self.host,
            "Content-Type": CONTENT_TYPE,
            "X-Amz-Target": f"TrentService.{op}",
        }
        request = AWSRequest(method="POST", url=self.url, data=body, headers=headers)
        self.signer.add_auth(request)
        return dict(request.headers.items())


# --------------------------------------------------------------------------- bodies


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def encrypt_body(fx: Fixtures) -> bytes:
    return orjson.dumps({"KeyId": fx.key_id, "Plaintext": _b64(os.urandom(PLAINTEXT_BYTES))})


def decrypt_body(fx: Fixtures) -> bytes:
    return orjson.dumps({"CiphertextBlob": fx.ciphertext_b64})


def generate_data_key_body(fx: Fixtures) -> bytes:
    return orjson.dumps({"KeyId": fx.key_id, "KeySpec": "AES_256"})


def create_key_body(fx: Fixtures) -> bytes:
    return orjson.dumps({"Description": "bench"})


BODY_BUILDERS: dict[str, Callable[[Fixtures], bytes]] = {
    "Encrypt": encrypt_body,
    "Decrypt": decrypt_body,
    "GenerateDataKey": generate_data_key_body,
    "CreateKey": create_key_body,
}


# --------------------------------------------------------------------------- setup


def prepare_fixtures(settings: Settings) -> Fixtures:
    """Create the bench key (and a Decrypt ciphertext) through boto3."""
    if not OPS_NEEDING_KEY.intersection(settings.ops):
        return Fixtures()
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "kms",
        endpoint_url=settings.endpoint,
        region_name=settings.region,
        aws_access_key_id=settings.access_key,
        aws_secret_access_key=settings.secret_key,
        config=Config(
            retries={"max_attempts": 2},
            connect_timeout=5,
            read_timeout=settings.timeout,
        ),
    )
    key_id = client.create_key(Description="bench")["KeyMetadata"]["KeyId"]
    if "Decrypt" not in settings.ops:
        return Fixtures(key_id=key_id)
    blob = client.encrypt(KeyId=key_id, Plaintext=os.urandom(PLAINTEXT_BYTES))["CiphertextBlob"]
    return Fixtures(key_id=key_id, ciphertext_b64=_b64(blob))


# --------------------------------------------------------------------------- load


async def send(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], body: bytes
) -> tuple[int, bytes]:
    async with session.post(url, data=body, headers=headers) as response:
        return response.status, await response.read()


@dataclass(frozen=True)
class Job:
    """One operation against one target, with the fixtures its bodies need."""

    target: Target
    op: str
    fixtures: Fixtures

    def body(self) -> bytes:
        return BODY_BUILDERS[self.op](self.fixtures)


async def worker(session: aiohttp.ClientSession, job: Job, budget: Budget, stats: Stats) -> None:
    """Loop: build, sign, send, time; until the shared budget runs out."""
    target = job.target
    while budget.take():
        body = job.body()
        signed_at = time.perf_counter()
        headers = target.sign(job.op, body)
        sent_at = time.perf_counter()
        stats.sign_seconds += sent_at - signed_at
        try:
            status, payload = await send(session, target.url, headers, body)
        except (TimeoutError, aiohttp.ClientError) as exc:
            reason = str(exc) or "no response within --timeout"
            stats.fail(f"{type(exc).__name__}: {reason}")
            continue
        if status == 200:
            stats.ok(time.perf_counter() - sent_at)
        else:
            stats.fail(f"HTTP {status}: {payload.decode('utf-8', 'replace')}")


async def run_phase(
    session: aiohttp.ClientSession, job: Job, concurrency: int, budget: Budget
) -> Stats:
    stats = Stats()
    await asyncio.gather(*(worker(session, job, budget, stats) for _ in range(concurrency)))
    return stats


def measured_budget(settings: Settings) -> Budget:
    deadline = math.inf if settings.duration is None else time.perf_counter() + settings.duration
    return Budget(deadline=deadline, remaining=settings.requests)


async def run_one(settings: Settings, job: Job, concurrency: int) -> Result:
    """Warm up, then measure one (op, concurrency) pair on a fresh session."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=settings.timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if settings.warmup > 0:
            warm = Budget(deadline=time.perf_counter() + settings.warmup)
            await run_phase(session, job, concurrency, warm)
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        stats = await run_phase(session, job, concurrency, measured_budget(settings))
        wall, cpu = time.perf_counter() - wall_start, time.process_time() - cpu_start
    return summarize(job.op, concurrency, stats, wall, cpu)


async def run_all(settings: Settings, fixtures: Fixtures, progress: TextIO) -> list[Result]:
    target = Target.build(settings)
    results: list[Result] = []
    for op in settings.ops:
        job = Job(target=target, op=op, fixtures=fixtures)
        for concurrency in settings.concurrency:
            print(f"running {op} concurrency={concurrency} ...", file=progress, flush=True)
            results.append(await run_one(settings, job, concurrency))
    return results


# --------------------------------------------------------------------------- summary


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending sequence (None when empty)."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _per_request_us(seconds: float, requests: int) -> float | None:
    return round(seconds / requests * 1e6, 1) if requests else None


def summarize(op: str, concurrency: int, stats: Stats, wall: float, cpu: float) -> Result:
    ordered = sorted(stats.latencies)
    succeeded = len(ordered)
    wall = max(wall, 1e-9)
    return Result(
        op=op,
        concurrency=concurrency,
        requests=stats.requests,
        errors=stats.errors,
        duration_s=round(wall, 3),
        req_per_s=round(succeeded / wall, 1),
        p50_ms=_ms(percentile(ordered, 0.50)),
        p90_ms=_ms(percentile(ordered, 0.90)),
        p99_ms=_ms(percentile(ordered, 0.99)),
        max_ms=_ms(ordered[-1] if ordered else None),
        sign_us_mean=_per_request_us(stats.sign_seconds, stats.requests),
        sign_share_pct=round(stats.sign_seconds / wall * 100, 1),
        client_cpu_us_per_req=_per_request_us(cpu, stats.requests),
        client_cpu_pct=round(cpu / wall * 100, 1),
        error_samples=stats.error_samples,
    )


# --------------------------------------------------------------------------- output

COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("op", "op", "{}"),
    ("conc", "concurrency", "{}"),
    ("requests", "requests", "{}"),
    ("errors", "errors", "{}"),
    ("secs", "duration_s", "{:.2f}"),
    ("req/s", "req_per_s", "{:.0f}"),
    ("p50 ms", "p50_ms", "{:.2f}"),
    ("p90 ms", "p90_ms", "{:.2f}"),
    ("p99 ms", "p99_ms", "{:.2f}"),
    ("max ms", "max_ms", "{:.2f}"),
    ("sign us", "sign_us_mean", "{:.1f}"),
    ("sign %", "sign_share_pct", "{:.0f}"),
    ("cpu %", "client_cpu_pct", "{:.0f}"),
)
CLIENT_BOUND_CPU_PCT = 90.0


def _cell(value: object, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def table_rows(results: Sequence[Result]) -> list[list[str]]:
    return [[_cell(getattr(r, attr), fmt) for _, attr, fmt in COLUMNS] for r in results]


def render_plain(results: Sequence[Result], out: TextIO) -> None:
    headers = [title for title, _, _ in COLUMNS]
    rows = table_rows(results)
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest])

    print(line(headers), file=out)
    print("  ".join("-" * width for width in widths), file=out)
    for row in rows:
        print(line(row), file=out)


def render_table(results: Sequence[Result], out: TextIO) -> None:
    """Aligned table via rich when installed, plain text otherwise."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        render_plain(results, out)
        return
    table = Table(show_edge=False, header_style="bold")
    for index, (title, _, _) in enumerate(COLUMNS):
        table.add_column(title, justify="left" if index == 0 else "right", no_wrap=True)
    for row in table_rows(results):
        table.add_row(*row)
    Console(file=out, width=200).print(table)


def render_notes(results: Sequence[Result], out: TextIO) -> None:
    """Error samples, and a warning when the loadgen itself was the bottleneck."""
    for r in results:
        for sample in r.error_samples:
            print(f"error {r.op} c={r.concurrency}: {sample}", file=out)
        if r.duration_s >= 1 and r.client_cpu_pct >= CLIENT_BOUND_CPU_PCT:
            print(
                f"note {r.op} c={r.concurrency}: loadgen used {r.client_cpu_pct:.0f}% "
                "of a CPU; throughput is likely client-bound",
                file=out,
            )


# --------------------------------------------------------------------------- CLI


def is_loopback_endpoint(endpoint: str) -> bool:
    return is_loopback((urlsplit(endpoint).hostname or "").rstrip("."))


def concurrency_list(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma list of integers: {text!r}") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("concurrency levels must be integers >= 1")
    return levels


def positive(kind: type[int | float]) -> Callable[[str], Any]:
    def parse(text: str) -> int | float:
        value = kind(text)
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"must be finite and > 0: {text}")
        return value

    return parse


def non_negative_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be finite and >= 0: {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    p.add_argument("--endpoint", default="http://127.0.0.1:4599", help="KMS endpoint URL")
    p.add_argument(
        "--op",
        choices=(*OPS, "all"),
        default="Encrypt",
        help="operation, or 'all' for each in turn",
    )
    p.add_argument(
        "--concurrency",
        type=concurrency_list,
        default=(64,),
        help="worker count, or a comma list like 1,64",
    )
    p.add_argument(
        "--duration",
        type=positive(float),
        help=f"seconds per run (default {DEFAULT_DURATION_S:g} unless --requests)",
    )
    p.add_argument(
        "--requests",
        type=positive(int),
        help="requests per run; with --duration, whichever comes first",
    )
    p.add_argument(
        "--warmup",
        type=non_negative_float,
        default=1.0,
        help="unmeasured seconds before each run",
    )
    p.add_argument(
        "--timeout",
        type=positive(float),
        default=30.0,
        help="per-request timeout in seconds",
    )
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--access-key", default="test")
    p.add_argument("--secret-key", default="test")
    p.add_argument("--allow-remote", action="store_true", help="permit a non-loopback endpoint")
    p.add_argument("--json", action="store_true", help="print results as a JSON list on stdout")
    return p


def parse_settings(argv: Sequence[str] | None) -> Settings:
    parser = build_parser()
    args = parser.parse_args(argv)
    if urlsplit(args.endpoint).scheme not in ("http", "https"):
        parser.error(f"--endpoint must be an http(s) URL: {args.endpoint}")
    if not args.allow_remote and not is_loopback_endpoint(args.endpoint):
        parser.error(f"refusing non-loopback endpoint {args.endpoint} (pass --allow-remote)")
    duration = (
        args.duration
        if args.duration is not None or args.requests is not None
        else DEFAULT_DURATION_S
    )
    return Settings(
        endpoint=args.endpoint,
        region=args.region,
        access_key=args.access_key,
        secret_key=args.secret_key,
        ops=OPS if args.op == "all" else (args.op,),
        concurrency=args.concurrency,
        duration=duration,
        requests=args.requests,
        warmup=args.warmup,
        timeout=args.timeout,
        json_output=args.json,
    )


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_settings(argv)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        fixtures = prepare_fixtures(settings)
    except (BotoCoreError, ClientError) as exc:
        print(f"setup failed against {settings.endpoint}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        results = asyncio.run(run_all(settings, fixtures, sys.stderr))
    except KeyboardInterrupt:
        return 130
    table_out = sys.stderr if settings.json_output else sys.stdout
    render_table(results, table_out)
    render_notes(results, sys.stderr)
    if settings.json_output:
        print(json.dumps([dataclasses.asdict(r) for r in results], indent=2))
    return EXIT_REQUEST_ERRORS if any(r.errors for r in results) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
