"""Metrics (Prometheus text format, prometheus-client) and one JSON log line per request.

Each app gets its own registry, so several servers in one process (the tests) do not
share counters. Figures that live elsewhere — view positions and lag, keys by state — are
read at scrape time by a collector, so the hot path pays nothing for them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from projections.grants_view import GrantsView
    from projections.keys_view import KeysView
    from projections.runner import PollingRunner

log = logging.getLogger("keyledger.requests")


class Observed(Protocol):
    """What the collector reads (Services has it); a protocol, so this module and
    api.services do not import each other."""

    view: KeysView
    grants_view: GrantsView

    def runners(self) -> tuple[PollingRunner, ...]: ...


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CALL = web.RequestKey("call", object)  # the dispatch's Call, for the access log
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "keyledger_requests",
            "Requests by operation and outcome (success or error code).",
            ["operation", "outcome"],
            registry=r,
        )
        self.latency = Histogram(
            "keyledger_request_duration_seconds",
            "Time from request to answer, by operation.",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "keyledger_writer_batch_size",
            "Requests committed together by a group-commit writer.",
            ["writer"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.commit_seconds = Histogram(
            "keyledger_writer_commit_seconds",
            "Time to commit one batch, fsync included (SQLite synchronous=FULL).",
            ["writer"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.scheduler_runs = Counter(
            "keyledger_scheduler_runs", "Scheduler passes, by result.", ["result"], registry=r
        )
        self.scheduler_actions = Counter(
            "keyledger_scheduler_actions",
            "Keys rotated, deleted or shredded by the scheduler.",
            registry=r,
        )

    def batch_committed(self, writer: str) -> Callable[[int, float], None]:
        size, seconds = self.batch_size.labels(writer), self.commit_seconds.labels(writer)

        def record(jobs: int, elapsed: float) -> None:
            size.observe(jobs)
            seconds.observe(elapsed)

        return record

    def watch(self, services: Observed) -> None:
        self.registry.register(StoreCollector(services))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class StoreCollector(Collector):
    """View positions and lag, and keys by state, read when Prometheus scrapes."""

    def __init__(self, services: Observed) -> None:
        self.services = services

    def collect(self) -> Iterator[Metric]:
        position = GaugeMetricFamily(
            "keyledger_projection_position", "Last event a view has applied.", labels=["view"]
        )
        head = GaugeMetricFamily(
            "keyledger_projection_head", "Last event in the log the view follows.", labels=["view"]
        )
        lag = GaugeMetricFamily(
            "keyledger_projection_lag_events",
            "Events the view has not applied yet.",
            labels=["view"],
        )
        lag_seconds = GaugeMetricFamily(
            "keyledger_projection_lag_seconds",
            "Age of the oldest event not applied yet.",
            labels=["view"],
        )
        for runner in self.services.runners():
            status = runner.status()
            position.add_metric([status["name"]], status["position"])
            head.add_metric([status["name"]], status["head"])
            lag.add_metric([status["name"]], status["lag_events"])
            lag_seconds.add_metric([status["name"]], status["lag_seconds"])
        yield from (position, head, lag, lag_seconds)
        keys = GaugeMetricFamily("keyledger_keys", "Keys by state.", labels=["state"])
        for state, count in self.services.view.keys_by_state().items():
            keys.add_metric([state], count)
        yield keys
        grants = GaugeMetricFamily("keyledger_grants", "Grants in the grants view.")
        grants.add_metric([], self.services.grants_view.count())
        yield grants


async def metrics_page(request: web.Request) -> web.Response:
    metrics: Metrics = request.app[METRICS]
    # Collecting reads the views: off the event loop.
    body = await asyncio.get_running_loop().run_in_executor(None, metrics.exposition)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


METRICS = web.AppKey("metrics", Metrics)


@web.middleware
async def observe(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Count, time and log every KMS request (POST /); other paths pass through."""
    if request.method != "POST" or request.path != "/":
        return await handler(request)
    began = time.perf_counter()
    response = await handler(request)
    elapsed = time.perf_counter() - began
    call: Any = request.get(CALL)
    if call is not None:
        metrics: Metrics = request.app[METRICS]
        metrics.requests.labels(call.operation, call.outcome).inc()
        metrics.latency.labels(call.operation).observe(elapsed)
        log.info(
            "%s %s %s",
            call.operation,
            call.outcome,
            f"{elapsed * 1e3:.1f}ms",
            extra={
                "request_id": call.request_id,
                "operation": call.operation,
                "principal": call.ctx.principal if call.ctx else None,
                "key": call.key_arn,
                "outcome": call.outcome,
                "status": response.status,
                "latency_ms": round(elapsed * 1e3, 2),
                "source_ip": call.source_ip,
            },
        )
    return response
