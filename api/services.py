"""What a request handler can reach: the ledgers, views and executors, and its Call."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from api.config import PrincipalConfig
from api.sigv4 import SigV4Verifier
from api.wire import WireModel
from domain.authorization import Identity
from domain.policy import Policy, Principal, parse_policy
from domain.usage import RequestRecorded
from domain.values import RequestContext
from eventstore.clock import Clock
from eventstore.key_operations import KeyOperations
from eventstore.ledger import Done, KeyLedger
from eventstore.usage_ledger import UsageLedger
from eventstore.writer import BatchWriter
from projections.keys_view import KeysView
from projections.runner import PollingRunner

T = TypeVar("T")


@dataclass(frozen=True)
class Caller:
    """What authorization needs to know about an access key's principal."""

    principal: Principal
    policies: tuple[Policy, ...]
    via_service: str | None
    mentions_resource_aliases: bool

    @classmethod
    def from_config(cls, config: PrincipalConfig) -> Caller:
        credential = config.credential
        return cls(
            principal=Principal(credential.principal_arn, credential.account_id, config.is_service),
            policies=tuple(parse_policy(text) for text in config.policies),
            via_service=config.via_service,
            mentions_resource_aliases=any("resourcealiases" in t.lower() for t in config.policies),
        )

    def identity(self, region: str, source_ip: str | None) -> Identity:
        via = f"{self.via_service}.{region}.amazonaws.com" if self.via_service else None
        return Identity(
            principal=self.principal,
            policies=self.policies,
            via_service=via,
            source_ip=source_ip,
            mentions_resource_aliases=self.mentions_resource_aliases,
        )


@dataclass
class Services:
    ledger: KeyLedger
    usage: UsageLedger
    keys: KeyOperations
    view: KeysView
    runner: PollingRunner
    commands: BatchWriter[Callable[..., Any], Done]
    records: BatchWriter[RequestRecorded, int]
    readers: ThreadPoolExecutor
    verifier: SigV4Verifier
    wire: WireModel
    clock: Clock
    max_body_bytes: int
    callers: Mapping[str, Caller]  # by access key id
    known_principals: frozenset[str]  # principal ARNs a key policy may name
    # Key generation (RSA takes up to a second) on its own threads: a burst of CreateKey
    # or GenerateDataKeyPair calls cannot take every reader from other requests.
    keygen: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="keygen")
    )

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking read (aggregate load, view query) off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.readers, functools.partial(fn, *args, **kwargs))

    async def generate(self, fn: Callable[..., T], *args: Any) -> T:
        """Run CPU-heavy key generation off the event loop and the writer thread
        (cryptography releases the GIL while it generates)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.keygen, functools.partial(fn, *args))

    async def views_current(self) -> None:
        """Read-your-writes for List operations: wait for the view to reach every
        event this process has saved (a few milliseconds after a local write)."""
        await self.runner.caught_up(self.ledger.last_saved_id)


SERVICES = web.AppKey("services", Services)


@dataclass
class Call:
    """One KMS request in flight: who made it, what it asked, and what it touched."""

    services: Services
    request_id: str
    source_ip: str | None
    user_agent: str | None
    operation: str = "Unknown"
    ctx: RequestContext | None = None
    params: dict[str, Any] = field(default_factory=dict)
    key_arn: str | None = None
    recorded: bool = False  # True once the request's own events are durable
    service: str = "kms"  # the SigV4 credential scope's service

    @property
    def context(self) -> RequestContext:
        if self.ctx is None:
            raise RuntimeError("operations run only after authentication")
        return self.ctx

    async def command(self, method: Callable[..., T], **kwargs: Any) -> T:
        """Run a KeyLedger command on the writer thread; its events are its record."""
        done = await self.services.commands(functools.partial(method, ctx=self.context, **kwargs))
        self.recorded = self.recorded or done.recorded
        return done.value

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self.services.read(fn, *args, **kwargs)
