"""``keyledger usage`` (the monthly bill) and ``keyledger limits`` (quotas and their use)."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from api.app import open_usage_view, open_view_file, view_paths
from api.cli.common import add_data_dir, console, print_json, stores
from api.config import ConfigFile, default_principals, load_config
from domain.pricing import as_json, bill
from projections.limits_report import limits_report
from projections.usage_view import usage_runners

CHART_WIDTH = 40


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    usage = commands.add_parser("usage", help="the monthly bill, per key and per request family")
    add_data_dir(usage)
    usage.add_argument(
        "--month", default=datetime.now(UTC).strftime("%Y-%m"), help="YYYY-MM (default: this month)"
    )
    usage.add_argument("--account", default=None, help="one account (default: all)")
    _add_config(usage)
    usage.add_argument("--json", action="store_true")
    usage.set_defaults(run=run_usage)

    limits = commands.add_parser("limits", help="each quota, its value and an account's use")
    add_data_dir(limits)
    limits.add_argument("--account", default="000000000000")
    limits.add_argument("--region", default="us-east-1")
    _add_config(limits)
    limits.add_argument("--json", action="store_true")
    limits.set_defaults(run=run_limits)


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=Path(os.environ["KEYLEDGER_CONFIG"]) if "KEYLEDGER_CONFIG" in os.environ else None,
        help="the server's TOML file, for its [pricing] and [limits] (env KEYLEDGER_CONFIG)",
    )


def _config(args: argparse.Namespace) -> ConfigFile:
    return load_config(args.config) if args.config else ConfigFile(default_principals())


def run_usage(args: argparse.Namespace) -> int:
    config = _config(args)
    with stores(args) as opened:
        view = open_usage_view(view_paths(args.data_dir, args.store)["usage"])
        try:
            for runner in usage_runners(opened.ledger, opened.usage, view):
                runner.catch_up()
            keys = view.key_lives(args.month, args.account)
            requests = view.requests(args.month, args.account)
        finally:
            view.datastore.close()
    answer = as_json(bill(args.month, keys, requests, config.prices, args.account))
    if args.json:
        print_json(answer)
        return 0
    _print_bill(answer)
    return 0


def _print_bill(answer: dict[str, Any]) -> None:
    keys = Table("key", "spec", "hours", "key $", "rotations $", "requests", title="Keys")
    for entry in answer["Keys"]:
        keys.add_row(
            entry["KeyId"],
            entry["KeySpec"],
            f"{entry['Hours']:.1f}",
            f"{entry['KeyCost']:.4f}",
            f"{entry['RotationCost']:.4f}",
            str(entry["Requests"]),
        )
    console.print(keys)
    families = Table("requests", "count", "free", "$", title="Requests")
    for family, figures in answer["Requests"].items():
        families.add_row(
            family, str(figures["Requests"]), str(figures["FreeRequests"]), f"{figures['Cost']:.4f}"
        )
    console.print(families)
    most = max((day["Requests"] for day in answer["Days"]), default=0) or 1
    chart = Table("day", "keys", "requests", "", title="Daily", box=None)
    for day in answer["Days"]:
        bar = "█" * round(day["Requests"] / most * CHART_WIDTH)
        chart.add_row(day["Day"], str(day["Keys"]), str(day["Requests"]), Text(bar, style="cyan"))
    console.print(chart)
    console.print(f"Total for {answer['Month']}: [bold]${answer['Total']:.4f}[/bold]")


def run_limits(args: argparse.Namespace) -> int:
    config = _config(args)
    keys = open_view_file(args.data_dir, "keys", args.store)
    grants = open_view_file(args.data_dir, "grants", args.store)
    try:
        report = limits_report(
            args.account,
            args.region,
            limits=config.limits,
            keys=keys,  # type: ignore[arg-type]
            grants=grants,  # type: ignore[arg-type]
            quotas=config.quotas,
        )
    finally:
        keys.datastore.close()
        grants.datastore.close()
    if args.json:
        print_json(report)
        return 0
    table = Table("quota", "value", "used", title=f"Resource quotas of {args.account}")
    for row in report["ResourceQuotas"]:
        table.add_row(
            row["Quota"], str(row["Value"]), "-" if row["Used"] is None else str(row["Used"])
        )
    console.print(table)
    rates = Table("request quota", "requests/s", title="Request quotas")
    for row in report["RequestQuotas"]:
        rates.add_row(row["Quota"], f"{row['RequestsPerSecond']:g}")
    console.print(rates if report["RequestQuotasEnabled"] else "Request quotas: off")
    return 0
