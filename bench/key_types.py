"""Figures for the key types: Sign/Verify requests/s per key spec, and CreateKey RSA_4096
latency while Encrypt traffic runs (does key generation stall other requests?).

    .venv/bin/python -m bench.key_types --endpoint http://127.0.0.1:4599

Reuses the loadgen's signing, workers and summaries; run against a loopback server only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiohttp
import boto3
import orjson
from botocore.config import Config

from bench.loadgen import (
    Budget,
    Result,
    Settings,
    Stats,
    Target,
    is_loopback_endpoint,
    percentile,
    render_plain,
    run_phase,
    summarize,
)

SIGNERS = {
    "RSA_2048": "RSASSA_PSS_SHA_256",
    "ECC_NIST_P256": "ECDSA_SHA_256",
    "ECC_NIST_EDWARDS25519": "ED25519_SHA_512",
}
MESSAGE = os.urandom(256)


@dataclass(frozen=True)
class BodyJob:
    """A loadgen job whose body is fixed by the caller (the worker needs only these)."""

    target: Target
    op: str
    make_body: Callable[[], bytes]

    def body(self) -> bytes:
        return self.make_body()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _settings(args: argparse.Namespace) -> Settings:
    return Settings(
        endpoint=args.endpoint,
        region="us-east-1",
        access_key="test",
        secret_key="test",
        ops=(),
        concurrency=(),
        duration=args.duration,
        requests=None,
        warmup=1.0,
        timeout=60.0,
        json_output=False,
    )


async def measure(job: BodyJob, concurrency: int, seconds: float, label: str) -> Result:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await run_phase(session, job, concurrency, Budget(time.perf_counter() + 1.0))
        cpu, wall = time.process_time(), time.perf_counter()
        stats = await run_phase(session, job, concurrency, Budget(time.perf_counter() + seconds))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return summarize(label, concurrency, stats, wall, cpu)


def signing_jobs(target: Target, client: object) -> list[BodyJob]:
    jobs = []
    for spec, algorithm in SIGNERS.items():
        key_id = client.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]  # type: ignore[attr-defined]
        signature = client.sign(KeyId=key_id, Message=MESSAGE, SigningAlgorithm=algorithm)  # type: ignore[attr-defined]
        common = {"KeyId": key_id, "Message": _b64(MESSAGE), "SigningAlgorithm": algorithm}
        sign_body = orjson.dumps(common)
        verify_body = orjson.dumps(common | {"Signature": _b64(signature["Signature"])})
        jobs.append(BodyJob(target, "Sign", lambda b=sign_body: b))
        jobs.append(BodyJob(target, "Verify", lambda b=verify_body: b))
    return jobs


async def create_keys_during(target: Target, count: int, spec: str) -> tuple[list[float], int]:
    """``count`` CreateKey calls one after another; their latencies and errors."""
    body = orjson.dumps({"KeySpec": spec, "KeyUsage": "SIGN_VERIFY"})
    latencies, errors = [], 0
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            started = time.perf_counter()
            async with session.post(
                target.url, data=body, headers=target.sign("CreateKey", body)
            ) as response:
                await response.read()
                if response.status == 200:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1
    return latencies, errors


async def encrypt_under_key_generation(
    target: Target, key_id: str, concurrency: int, count: int
) -> tuple[Result, Result, list[float], int]:
    """Encrypt load alone, then the same load while RSA_4096 keys are being created."""
    encrypt = BodyJob(
        target,
        "Encrypt",
        lambda: orjson.dumps({"KeyId": key_id, "Plaintext": _b64(os.urandom(256))}),
    )
    baseline = await measure(encrypt, concurrency, 5.0, "Encrypt alone")
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        budget = Budget(time.perf_counter() + 3600)
        stats_task = asyncio.ensure_future(run_phase(session, encrypt, concurrency, budget))
        await asyncio.sleep(1.0)
        cpu, wall = time.process_time(), time.perf_counter()
        latencies, errors = await create_keys_during(target, count, "RSA_4096")
        budget.deadline = 0.0  # stop the Encrypt workers
        stats: Stats = await stats_task
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    during = summarize("Encrypt during RSA_4096 CreateKey", concurrency, stats, wall, cpu)
    return baseline, during, latencies, errors


def _ms(values: Sequence[float], q: float) -> str:
    value = percentile(sorted(values), q)
    return "-" if value is None else f"{value * 1000:.0f}"


async def main_async(args: argparse.Namespace) -> int:
    settings = _settings(args)
    target = Target.build(settings)
    client = boto3.client(
        "kms",
        endpoint_url=args.endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}, read_timeout=60),
    )
    results = []
    for job in signing_jobs(target, client):
        spec = orjson.loads(job.body())["SigningAlgorithm"]
        for concurrency in args.concurrency:
            print(f"{job.op} {spec} concurrency={concurrency} ...", file=sys.stderr, flush=True)
            results.append(await measure(job, concurrency, args.duration, f"{job.op} {spec}"))
    symmetric = client.create_key(Description="bench")["KeyMetadata"]["KeyId"]
    print("Encrypt with and without RSA_4096 CreateKey ...", file=sys.stderr, flush=True)
    baseline, during, latencies, errors = await encrypt_under_key_generation(
        target, symmetric, 16, args.rsa_keys
    )
    results += [baseline, during]
    render_plain(results, sys.stdout)
    print(
        f"\nCreateKey RSA_4096 x{len(latencies)} (errors {errors}) under Encrypt load: "
        f"p50 {_ms(latencies, 0.5)} ms, max {_ms(latencies, 1.0)} ms"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default="http://127.0.0.1:4599")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument(
        "--concurrency", type=lambda t: [int(x) for x in t.split(",")], default=[1, 16]
    )
    parser.add_argument("--rsa-keys", type=int, default=10)
    args = parser.parse_args(argv)
    if not is_loopback_endpoint(args.endpoint):
        parser.error("only loopback endpoints")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
