"""What every command shares: the data directory, times, output, progress bars."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from api.app import Stores, open_stores
from eventstore.database import STORE_ENV

console = Console()
errors = Console(stderr=True)


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument(
        "--store",
        default=os.environ.get(STORE_ENV),
        help=f"the server's postgresql:// store, if it uses one (env {STORE_ENV})",
    )


def parse_time(text: str) -> datetime:
    """ISO 8601 (``2026-11-30T01:02:03Z``) or epoch seconds; naive times are UTC."""
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@contextlib.contextmanager
def stores(args: argparse.Namespace, *, root: bool = False) -> Iterator[Stores]:
    opened = open_stores(args.data_dir, os.environ, root=root, store=args.store)
    try:
        yield opened
    finally:
        opened.close()


@contextlib.contextmanager
def progress(label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; ``advance(n)`` moves it."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=errors, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str, sort_keys=True))
