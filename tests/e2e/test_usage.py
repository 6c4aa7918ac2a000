"""The bill for a scripted month, against a hand computation; the usage and limits
commands; and the HTTP answers behind a usage: permission."""

from __future__ import annotations

import calendar
import json
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.support import REPO, ProcessServer, advance

HOUR = 3600.0
DAY = 24 * HOUR


def keyledger(data_dir: Path, *args: str) -> Any:
    result = subprocess.run(
        [sys.executable, "-m", "api", *args, "--data-dir", str(data_dir), "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(result.stdout)


def usage_call(server: ProcessServer, operation: str, body: dict[str, Any]) -> Any:
    payload = json.dumps(body).encode()
    request = AWSRequest(
        method="POST",
        url=server.endpoint + "/",
        data=payload,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"KeyledgerUsage.{operation}",
        },
    )
    SigV4Auth(Credentials("test", "test"), "kms", "us-east-1").add_auth(request)
    sent = urllib.request.Request(
        request.url, data=payload, headers=dict(request.headers.items()), method="POST"
    )
    with urllib.request.urlopen(sent, timeout=30) as answer:
        return json.loads(answer.read())


def test_the_bill_of_a_scripted_month_matches_the_hand_computation(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = ProcessServer(data_dir, extra_args=("--dev-clock",))
    server.start()
    try:
        kms = server.client()
        now = datetime.fromtimestamp(advance(server, 0), UTC)
        first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0) + timedelta(days=32)
        first = first.replace(day=1)
        month = first.strftime("%Y-%m")
        hours = calendar.monthrange(first.year, first.month)[1] * 24
        # Prices that make the arithmetic plain: a key costs $1 an hour, a billed rotation
        # $0.50 an hour, each request beyond the first 10 one dollar.
        config = tmp_path / "pricing.toml"
        config.write_text(
            f'[[principals]]\narn = "arn:aws:iam::000000000000:root"\n'
            f'access_key_id = "test"\nsecret_access_key = "test"\n\n'
            f"[pricing]\nkey_month = {hours}\nrotation_month = {hours / 2}\n"
            f"free_requests = 10\nrequest_per_10k = 10000\n"
        )
        server.stop()
        server.extra_args = ("--dev-clock", "--config", str(config))
        server.start()
        kms = server.client()
        now = datetime.fromtimestamp(advance(server, 0), UTC)
        advance(server, (first - now).total_seconds() + HOUR)  # day 1, 01:00
        key_a = kms.create_key()["KeyMetadata"]["KeyId"]
        advance(server, 10 * DAY)  # day 11
        key_b = kms.create_key()["KeyMetadata"]["KeyId"]
        kms.rotate_key_on_demand(KeyId=key_a)  # the first billed rotation
        advance(server, 5 * DAY)  # day 16
        kms.rotate_key_on_demand(KeyId=key_a)  # the second billed rotation
        advance(server, DAY)  # day 17
        kms.rotate_key_on_demand(KeyId=key_a)  # a third rotation is free
        advance(server, 4 * DAY)  # day 21
        kms.schedule_key_deletion(KeyId=key_b, PendingWindowInDays=7)  # B's billing stops
        for _ in range(15):
            kms.encrypt(KeyId=key_a, Plaintext=b"x")
        kms.create_key(Description="c")  # CreateKey requests are free ...
        failed = kms.create_alias  # ... and failed requests are not billed
        with pytest.raises(Exception):  # noqa: B017 - any refusal
            failed(AliasName="alias/aws/reserved", TargetKeyId=key_a)
        advance(server, 7 * DAY)  # day 28: B is deleted by the scheduler
        now = datetime.fromtimestamp(advance(server, 0), UTC)
        next_month = (first + timedelta(days=32)).replace(day=1)
        advance(server, (next_month - now).total_seconds() + DAY)

        key_c_hours = hours - (20 * 24 + 1)
        expected = (
            (hours - 1)  # A: from day 1 01:00 to the end
            + 0.5 * (hours - (10 * 24 + 1))  # A's first rotation, from day 11 01:00
            + 0.5 * (hours - (15 * 24 + 1))  # A's second rotation, from day 16 01:00
            + 10 * 24  # B: day 11 01:00 to its deletion's scheduling on day 21 01:00
            + key_c_hours  # C: from day 21 01:00
            + (3 + 15 - 10)  # rotations and encrypts, less the 10 free requests
        )
        answer = usage_call(server, "GetMonthlyUsage", {"Month": month})
        assert answer["Total"] == pytest.approx(expected, abs=0.05)
        by_key = {entry["KeyId"]: entry for entry in answer["Keys"]}
        assert by_key[key_b]["Hours"] == pytest.approx(240, abs=0.01)
        assert by_key[key_a]["Requests"] == 18
        assert answer["Requests"]["symmetric"] == {
            "Requests": 18,
            "FreeRequests": 10,
            "Cost": pytest.approx(8.0),
        }
        days = {day["Day"]: day for day in answer["Days"]}
        assert days[f"{month}-21"]["Requests"] == 15 + 0  # the encrypts (CreateKey is free)
        assert days[f"{month}-05"]["Keys"] == 1 and days[f"{month}-12"]["Keys"] == 2
        limits = usage_call(server, "GetLimits", {})
        quotas = {row["Quota"]: row for row in limits["ResourceQuotas"]}
        assert quotas["customer_managed_keys"] == {
            "Quota": "customer_managed_keys",
            "Value": 10_000,
            "Used": 2,
        }
    finally:
        server.stop()
    from_cli = keyledger(data_dir, "usage", "--month", month, "--config", str(config))
    assert from_cli["Total"] == pytest.approx(answer["Total"], abs=1e-6)
    table = subprocess.run(
        [
            sys.executable,
            "-m",
            "api",
            "usage",
            "--month",
            month,
            "--data-dir",
            str(data_dir),
            "--config",
            str(config),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert "Daily" in table and "█" in table and "Total" in table
    limits_cli = keyledger(data_dir, "limits")
    assert {row["Quota"] for row in limits_cli["ResourceQuotas"]} >= {
        "customer_managed_keys",
        "aliases",
        "key_policy_bytes",
        "grants_per_key",
        "grants_per_principal_per_key",
    }


def test_the_usage_answers_need_a_usage_permission(tmp_path: Path) -> None:
    from tests.e2e.authz_config import CAST, toml_text

    config = tmp_path / "keyledger.toml"
    config.write_text(toml_text())
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = ProcessServer(data_dir, extra_args=("--config", str(config))).start()
    try:
        nobody = CAST["nobody"]
        payload = json.dumps({"Month": "2026-01"}).encode()
        request = AWSRequest(
            method="POST",
            url=server.endpoint + "/",
            data=payload,
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": "KeyledgerUsage.GetMonthlyUsage",
            },
        )
        SigV4Auth(
            Credentials(nobody.access_key_id, nobody.secret_access_key), "kms", "us-east-1"
        ).add_auth(request)
        sent = urllib.request.Request(
            request.url, data=payload, headers=dict(request.headers.items()), method="POST"
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(sent, timeout=30)
        assert json.loads(caught.value.read())["__type"] == "AccessDeniedException"
    finally:
        server.stop()
