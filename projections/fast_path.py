"""The rebuild's fast path: a view's projection over stored rows instead of event objects.

A ``RowProjection`` maps each topic the view reads to a function of (originator id text,
decoded state) that adds SQL statements to a ``Statements`` batch. The batch runs runs of
the same statement with one ``executemany`` each, in the order they were added, so the rows
come out exactly as the view's own ``project`` (one ``execute`` per statement) makes them;
tests/e2e/test_rebuild_paths.py holds both paths to that, row for row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from eventsourcing.utils import resolve_topic

from projections.stored_log import Row, id_text


class Statements:
    """SQL statements in order; consecutive ones with the same text run as one batch."""

    def __init__(self) -> None:
        self._runs: list[tuple[str, list[tuple[Any, ...]]]] = []

    def add(self, sql: str, params: tuple[Any, ...]) -> None:
        runs = self._runs
        if runs and runs[-1][0] == sql:
            runs[-1][1].append(params)
        else:
            runs.append((sql, [params]))

    def run(self, cursor: Any) -> None:
        for sql, params in self._runs:
            cursor.executemany(sql, params)


Project = Callable[[str, dict[str, Any], Statements], None]


@dataclass(frozen=True)
class RowProjection:
    """One view's projection over stored rows: a function per topic it reads."""

    by_topic: Mapping[str, Project]

    @property
    def topics(self) -> list[str]:
        return list(self.by_topic)

    def usable(self) -> bool:
        """Upcasters run on the decoded state before an event exists; rows skip them, so
        a class with a later version keeps the view on the event path."""
        return all(getattr(resolve_topic(t), "class_version", 1) == 1 for t in self.by_topic)

    def statements(self, rows: Iterable[Row]) -> Statements:
        out = Statements()
        by_topic = self.by_topic
        for _, originator_id, topic, state in rows:
            by_topic[topic](id_text(originator_id), orjson.loads(state), out)
        return out
