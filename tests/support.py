"""Real servers for tests: in a thread of this process, or as a `keyledger serve` process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from aiohttp import web
from botocore.config import Config
from botocore.exceptions import ClientError

from api.app import create_app
from api.config import Settings
from bench.at_rest import MIN_NEEDLE

REPO = Path(__file__).resolve().parent.parent
REGION = "us-east-1"


def client(endpoint: str, service: str = "kms", **kwargs: Any) -> Any:
    options: dict[str, Any] = {
        "endpoint_url": endpoint,
        "region_name": REGION,
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
        "config": Config(retries={"max_attempts": 1}),
    }
    options.update(kwargs)
    made = boto3.client(service, **options)
    return remember_secrets(made) if service == "kms" else made


def remember_secrets(kms: Any) -> Any:
    """Note every plaintext and data key this KMS client (boto3 or aiobotocore) sends or
    is given, for the at-rest scan at the end of the session."""
    kms.meta.events.register("provide-client-params.kms.*", _remember_sent)
    kms.meta.events.register("after-call.kms.*", _remember_received)
    return kms


# Every plaintext and data key the suite's KMS clients sent or were given, for the byte
# scan of every data directory when the session ends (conftest.py). Only those of
# MIN_NEEDLE bytes or more: shorter ones turn up by chance in any file.
SECRETS_SEEN: set[bytes] = set()


def _remember(value: object) -> None:
    if isinstance(value, str):  # boto3 takes text for a blob too
        value = value.encode()
    # Ten distinct bytes or more: a plaintext like b"x" * 4096 is also a legitimate
    # description or tag value in some other test's records, not a leak.
    if isinstance(value, bytes) and len(value) >= MIN_NEEDLE and len(set(value)) >= 10:
        SECRETS_SEEN.add(value)


def _remember_sent(params: dict[str, Any], **_: Any) -> None:
    _remember(params.get("Plaintext"))


def _remember_received(parsed: dict[str, Any], **_: Any) -> None:
    _remember(parsed.get("Plaintext"))


@dataclass
class ThreadServer:
    """create_app() served on 127.0.0.1:<free port> by an event loop on its own thread,
    so synchronous boto3 calls in the test do not block it."""

    settings: Settings
    port: int = 0
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _thread: threading.Thread | None = None
    app: web.Application | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, service: str = "kms", **kwargs: Any) -> Any:
        return client(self.endpoint, service, **kwargs)

    def start(self) -> ThreadServer:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError("server did not start")
        return self

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self.app = create_app(self.settings)
        runner = web.AppRunner(self.app)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = runner.addresses[0][1]
        ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())
        self._loop.close()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ProcessServer:
    """`keyledger serve` as a separate process, for restarts, kill -9 and the CLI."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    extra_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    # `keyledger serve` throttles at AWS's request quotas by default; tests that drive a
    # server hard turn that off unless they are about quotas.
    quotas: bool = False

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, service: str = "kms", **kwargs: Any) -> Any:
        return client(self.endpoint, service, **kwargs)

    def start(self) -> ProcessServer:
        args = [sys.executable, "-m", "api", "serve", "--port", str(self.port)]
        args += ["--data-dir", str(self.data_dir), *self.extra_args]
        if not self.quotas and "--no-quotas" not in args:
            args.append("--no-quotas")
        log = (self.data_dir.parent / f"server-{self.port}.log").open("ab")
        self.process = subprocess.Popen(
            args, cwd=REPO, stdout=log, stderr=log, env={**os.environ, **self.env}
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not start listening")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(30)


def refused(call: Callable[..., Any], **params: Any) -> tuple[str, str]:
    """Call, expect an HTTP 400 KMS error, and return its (code, message)."""
    with pytest.raises(ClientError) as caught:
        call(**params)
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400, response
    return response["Error"]["Code"], response["Error"]["Message"]


def unvalidated(server: ThreadServer | ProcessServer) -> Any:
    """A client that lets through what botocore would refuse client-side."""
    return server.client(config=Config(parameter_validation=False, retries={"max_attempts": 1}))


def advance(server: ProcessServer, seconds: float) -> float:
    """Move a --dev-clock server's clock by ``seconds``; it answers once everything that
    fell due has run. Returns the server's new time (epoch seconds)."""
    request = urllib.request.Request(
        f"{server.endpoint}/_dev/clock",
        data=json.dumps({"advance_seconds": seconds}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return float(json.loads(response.read())["now"])


def keyledger_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`keyledger <args> --data-dir <data_dir>` as a separate process (the admin commands)."""
    return subprocess.run(
        [sys.executable, "-m", "api", *args, "--data-dir", str(data_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
