"""Grant figures: the cost of a grant check, and the grants view's lag under load.

    .venv/bin/python -m bench.grants [--duration 10] [--rounds 3] [--concurrency 64]

Starts its own `keyledger serve` on a loopback port in a temporary data directory, with
two principals: the account root (allowed by the key policy) and a user with no policy at
all, whom only a grant lets in. It measures, side by side in alternating rounds:

- Encrypt at --concurrency by the root (the key policy allows: grants are not looked at),
  by the grantee through the grants view (the policy refuses, a grant allows), and by the
  grantee presenting its grant token (checked against the write model);
- in process: one authorization decision by policy, and by grant with 1 and 500 grants;
- while the root's Encrypt load runs: how long a new grant takes to work without its
  token (CreateGrant answered -> first Encrypt allowed), and the view's largest lag.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import aiohttp
import boto3
import orjson
from botocore.config import Config

from bench.loadgen import Fixtures, Job, Settings, Target, _b64, run_one, send
from domain.authorization import authorize_key
from domain.errors import AccessDeniedError
from domain.grants import Grant
from domain.identity import Identity
from domain.policy import Principal
from domain.values import RequestContext, default_key_policy

ACCOUNT = "000000000000"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
GRANTEE = f"arn:aws:iam::{ACCOUNT}:user/grantee"
CONFIG = f"""
[[principals]]
arn = "{ROOT}"
access_key_id = "test"
secret_access_key = "test"

[[principals]]
arn = "{GRANTEE}"
access_key_id = "GRANTEE"
secret_access_key = "grantee-secret"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server(port: int) -> Iterator[str]:
    port = port or free_port()
    with tempfile.TemporaryDirectory(prefix="kl-bench-grants-") as tmp:
        config = Path(tmp) / "keyledger.toml"
        config.write_text(CONFIG)
        args = [sys.executable, "-m", "api", "serve", "--port", str(port)]
        args += ["--data-dir", f"{tmp}/data", "--config", str(config), "--no-quotas"]
        log = (Path(tmp) / "server.log").open("wb")
        process = subprocess.Popen(args, stdout=log, stderr=log)  # noqa: S603 - our own server
        endpoint = f"http://127.0.0.1:{port}"
        try:
            _wait_listening(endpoint)
            yield endpoint
        finally:
            process.terminate()
            process.wait(30)


def _wait_listening(endpoint: str) -> None:
    import urllib.request

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"{endpoint}/projections", timeout=1).read()
            return
        time.sleep(0.1)
    raise RuntimeError("server did not start")


def client(endpoint: str, key: str, secret: str) -> Any:
    return boto3.client(
        "kms",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


@dataclasses.dataclass(frozen=True)
class TokenJob(Job):
    """Encrypt that presents a grant token."""

    token: str = ""

    def body(self) -> bytes:
        return orjson.dumps(
            {
                "KeyId": self.fixtures.key_id,
                "Plaintext": _b64(os.urandom(256)),
                "GrantTokens": [self.token],
            }
        )


def settings_for(endpoint: str, key: str, secret: str, duration: float) -> Settings:
    return Settings(
        endpoint=endpoint,
        region="us-east-1",
        access_key=key,
        secret_key=secret,
        ops=("Encrypt",),
        concurrency=(64,),
        duration=duration,
        requests=None,
        warmup=1.0,
        timeout=30.0,
        json_output=False,
    )


async def throughput(endpoint: str, args: argparse.Namespace) -> dict[str, list[Any]]:
    root = client(endpoint, "test", "test")
    key_id = root.create_key()["KeyMetadata"]["KeyId"]
    token = root.create_grant(KeyId=key_id, GranteePrincipal=GRANTEE, Operations=["Encrypt"])[
        "GrantToken"
    ]
    fixtures = Fixtures(key_id=key_id)
    as_root = settings_for(endpoint, "test", "test", args.duration)
    as_grantee = settings_for(endpoint, "GRANTEE", "grantee-secret", args.duration)
    cases = {
        "policy": Job(Target.build(as_root), "Encrypt", fixtures),
        "grant (view)": Job(Target.build(as_grantee), "Encrypt", fixtures),
        "grant (token)": TokenJob(Target.build(as_grantee), "Encrypt", fixtures, token),
    }
    results: dict[str, list[Any]] = {name: [] for name in cases}
    for round_ in range(args.rounds):
        for name, job in cases.items():
            result = await run_one(as_root, job, args.concurrency)
            results[name].append(result)
            print(
                f"round {round_ + 1} {name:14} {result.req_per_s:8.0f} req/s "
                f"p50 {result.p50_ms or 0:6.1f} ms p99 {result.p99_ms or 0:6.1f} ms "
                f"errors {result.errors}",
                flush=True,
            )
    return results


async def lag_under_load(
    endpoint: str, args: argparse.Namespace, op: str
) -> tuple[list[float], int]:
    """``op`` load by the root (Encrypt: usage records; CreateKey: key events, which the
    grants view follows); meanwhile new grants for the grantee, each timed from
    CreateGrant's answer to the grantee's first allowed Encrypt (no token)."""
    root = client(endpoint, "test", "test")
    key_id = root.create_key()["KeyMetadata"]["KeyId"]
    load = Job(Target.build(settings_for(endpoint, "test", "test", 0)), op, Fixtures(key_id))
    grantee = Target.build(settings_for(endpoint, "GRANTEE", "grantee-secret", 0))
    as_root = settings_for(endpoint, "test", "test", args.duration)
    delays: list[float] = []
    worst_lag = 0

    async def probe() -> None:
        nonlocal worst_lag
        await asyncio.sleep(1.0)
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + args.duration - 1
            while time.monotonic() < deadline:
                other = await asyncio.to_thread(lambda: root.create_key()["KeyMetadata"]["KeyId"])
                await asyncio.to_thread(
                    root.create_grant, KeyId=other, GranteePrincipal=GRANTEE, Operations=["Encrypt"]
                )
                granted = time.perf_counter()
                body = orjson.dumps({"KeyId": other, "Plaintext": _b64(b"x")})
                while True:
                    status, _ = await send(
                        session, grantee.url, grantee.sign("Encrypt", body), body
                    )
                    if status == 200:
                        delays.append(time.perf_counter() - granted)
                        break
                    await asyncio.sleep(0.001)
                async with session.get(f"{endpoint}/projections") as response:
                    views = orjson.loads(await response.read())["views"]
                    worst_lag = max([worst_lag, *(v["lag_events"] for v in views)])
                await asyncio.sleep(0.2)

    _, result = await asyncio.gather(probe(), run_one(as_root, load, args.concurrency))
    print(f"lag run: {op} load {result.req_per_s:.0f} req/s, {len(delays)} grants propagated")
    async with aiohttp.ClientSession() as session, session.get(f"{endpoint}/projections") as got:
        for view in orjson.loads(await got.read())["views"]:
            worst_ms = view["apply_lag_max_seconds"] * 1e3
            print(f"  view {view['name']}: worst event-to-view lag {worst_ms:.1f} ms")
    return delays, worst_lag


def decision_costs() -> dict[str, float]:
    """Microseconds per authorization decision, in process (no I/O)."""
    from domain.cmk import Cmk

    ctx = RequestContext(principal=ROOT, account=ACCOUNT, region="us-east-1", request_id="r")
    cmk = Cmk.create(
        key_id=uuid4(),
        ctx=ctx,
        now=datetime.now(UTC),
        description="",
        policy=default_key_policy(ACCOUNT),
        tags={},
        material_id="ab" * 32,
        wrapped_material=b"w",
    )

    def grants(count: int) -> list[Grant]:
        made = [
            Grant(
                f"{i:064x}",
                str(cmk.id),
                None,
                f"{GRANTEE}-{i}",
                None,
                ("Decrypt",),
                None,
                ACCOUNT,
                datetime.now(UTC),
            )
            for i in range(count - 1)
        ]
        last = Grant(
            "f" * 64,
            str(cmk.id),
            None,
            GRANTEE,
            None,
            ("Encrypt",),
            None,
            ACCOUNT,
            datetime.now(UTC),
        )
        return [*made, last]

    root_ctx = dataclasses.replace(ctx, identity=Identity(Principal(ROOT, ACCOUNT)))
    user_ctx = dataclasses.replace(
        ctx,
        principal=GRANTEE,
        identity=Identity(Principal(GRANTEE, ACCOUNT)),
        encryption_context={},
    )
    one, many = grants(1), grants(500)
    now = datetime.now(UTC)

    def decide(context: RequestContext, found: list[Grant] | None) -> None:
        try:
            authorize_key(cmk, context, "Encrypt", now, grants=(lambda: found) if found else None)
        except AccessDeniedError:
            raise AssertionError("refused") from None

    cases = {
        "policy allows": lambda: decide(root_ctx, None),
        "grant allows (1 grant on the key)": lambda: decide(user_ctx, one),
        "grant allows (500 grants on the key)": lambda: decide(user_ctx, many),
    }
    runs = 2000
    return {
        name: min(timeit.repeat(case, number=runs, repeat=5)) / runs * 1e6
        for name, case in cases.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--port", type=int, default=0, help="0: a free loopback port")
    args = parser.parse_args()
    for name, micros in decision_costs().items():
        print(f"decision: {name:40} {micros:7.1f} µs")
    with server(args.port) as endpoint:
        results = asyncio.run(throughput(endpoint, args))
    lags = {}
    for op in ("Encrypt", "CreateKey"):
        with server(args.port) as endpoint:
            lags[op] = asyncio.run(lag_under_load(endpoint, args, op))
    print(f"\nmedians over rounds (Encrypt, concurrency {args.concurrency}):")
    for name, runs in results.items():
        rps = statistics.median(r.req_per_s for r in runs)
        p99 = statistics.median(r.p99_ms or 0 for r in runs)
        print(f"  {name:14} {rps:8.0f} req/s  p99 {p99:6.1f} ms")
    for op, (delays, worst_lag) in lags.items():
        if not delays:
            continue
        ordered = sorted(delays)
        median_ms = statistics.median(ordered) * 1e3
        print(
            f"under {op} load: grant usable without its token after median {median_ms:.1f} ms, "
            f"max {ordered[-1] * 1e3:.1f} ms over {len(ordered)} grants; "
            f"largest view lag sampled: {worst_lag} events"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
