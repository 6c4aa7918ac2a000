"""Resource quotas at their edges, under concurrency (one server, and two servers sharing
one store), and request quotas: ThrottlingException, and boto3's retry modes riding it."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from api.config import ConfigError, Settings, load_config
from domain.quotas import DEFAULT_RATES, Limits, Quotas
from tests.integration.stores import open_usage
from tests.support import ProcessServer, ThreadServer, advance, refused


def racing(call: Callable[[], Any], times: int) -> Counter[str]:
    """Run ``call`` from ``times`` threads at once; count outcomes by error code."""
    outcomes: Counter[str] = Counter()
    lock, gate = threading.Lock(), threading.Barrier(times)

    def one() -> None:
        gate.wait()
        try:
            call()
            outcome = "ok"
        except ClientError as error:
            outcome = error.response["Error"]["Code"]
        with lock:
            outcomes[outcome] += 1

    threads = [threading.Thread(target=one) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcomes


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[ThreadServer]:
    limits = Limits(customer_managed_keys=5, aliases=3, key_policy_bytes=2000)
    server = ThreadServer(
        Settings(data_dir=tmp_path / "data", port=0, limits=limits, dev_clock=True)
    ).start()
    yield server
    server.stop()


def test_customer_managed_keys_at_the_edge_under_concurrency(limited: ThreadServer) -> None:
    kms = limited.client()
    keys = [kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(3)]
    assert racing(kms.create_key, 8) == Counter({"ok": 2, "LimitExceededException": 6})
    code, message = refused(kms.create_key)
    assert code == "LimitExceededException" and "5 customer managed keys" in message
    # AWS managed keys do not count.
    kms.describe_key(KeyId="alias/aws/s3")
    # A key pending deletion still counts; a deleted one does not.
    kms.schedule_key_deletion(KeyId=keys[0], PendingWindowInDays=7)
    assert refused(kms.create_key)[0] == "LimitExceededException"
    advance(limited, 8 * 86400)  # type: ignore[arg-type]
    kms.create_key()
    assert refused(kms.create_key)[0] == "LimitExceededException"


def test_aliases_at_the_edge_under_concurrency(limited: ThreadServer) -> None:
    kms = limited.client()
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    names = iter(f"alias/a{i}" for i in range(100))
    lock = threading.Lock()

    def create() -> None:
        with lock:
            name = next(names)
        kms.create_alias(AliasName=name, TargetKeyId=key)

    assert racing(create, 6) == Counter({"ok": 3, "LimitExceededException": 3})
    kms.describe_key(KeyId="alias/aws/ebs")  # a managed alias does not count either
    live = [a["AliasName"] for a in kms.list_aliases(KeyId=key)["Aliases"]]
    kms.delete_alias(AliasName=live[0])
    kms.create_alias(AliasName="alias/after-delete", TargetKeyId=key)
    assert refused(kms.create_alias, AliasName="alias/one-too-many", TargetKeyId=key)[0] == (
        "LimitExceededException"
    )


def test_the_key_policy_quota_is_configurable(limited: ThreadServer) -> None:
    kms = limited.client()
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    policy = kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"]
    document = json.loads(policy)
    document["Statement"][0]["Sid"] = ""
    document["Statement"][0]["Sid"] = "x" * (2001 - len(json.dumps(document)))
    assert len(json.dumps(document)) == 2001
    code, message = refused(kms.put_key_policy, KeyId=key, Policy=json.dumps(document))
    assert code == "LimitExceededException" and "2000 bytes" in message


def test_two_servers_sharing_a_store_never_both_take_the_last_slot(tmp_path: Path) -> None:
    config = tmp_path / "keyledger.toml"
    config.write_text(
        '[[principals]]\narn = "arn:aws:iam::000000000000:root"\n'
        'access_key_id = "test"\nsecret_access_key = "test"\n\n'
        "[limits]\ncustomer_managed_keys = 4\n"
    )
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    args = ("--config", str(config), "--no-quotas")
    servers = [ProcessServer(data_dir, extra_args=args).start() for _ in range(2)]
    try:
        clients = [server.client() for server in servers]
        for _ in range(3):
            clients[0].create_key()
        calls = iter([clients[0].create_key, clients[1].create_key] * 3)
        lock = threading.Lock()

        def create() -> None:
            with lock:
                call = next(calls)
            call()

        assert racing(create, 6) == Counter({"ok": 1, "LimitExceededException": 5})
    finally:
        for server in servers:
            server.stop()


# -- request quotas --------------------------------------------------------------------


@pytest.fixture
def throttled(tmp_path: Path) -> Iterator[ThreadServer]:
    rates = {**DEFAULT_RATES, "cryptographic_operations_symmetric": 5, "create_key": 2}
    server = ThreadServer(
        Settings(data_dir=tmp_path / "data", port=0, quotas=Quotas(enabled=True, rates=rates))
    ).start()
    yield server
    server.stop()


def _throttled_count(server: ThreadServer) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    from tests.e2e.test_operability import get

    _, body = get(f"{server.endpoint}/metrics")
    total = 0.0
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "keyledger_requests_total" and (
                sample.labels.get("outcome") == "ThrottlingException"
            ):
                total += sample.value
    return total


def test_a_burst_is_throttled_and_recorded(throttled: ThreadServer, tmp_path: Path) -> None:
    kms = throttled.client()
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    request_ids: list[str] = []

    def encrypt() -> None:
        try:
            kms.encrypt(KeyId=key, Plaintext=b"x")
        except ClientError as error:
            assert error.response["Error"]["Message"] == "Rate exceeded"
            request_ids.append(error.response["ResponseMetadata"]["RequestId"])
            raise

    time.sleep(1.2)  # a full bucket: one second of the quota, 5 requests
    outcomes = racing(encrypt, 16)
    # However slowly this machine serves them, 16 requests at once cannot all fit in a
    # 5-request bucket that refills at 5/s unless they took 2.2 s.
    assert outcomes["ok"] >= 5 and outcomes["ThrottlingException"] >= 1, outcomes
    assert outcomes["ok"] + outcomes["ThrottlingException"] == 16
    # CreateKey has its own quota: the Encrypt burst did not use it up.
    kms.create_key()
    usage = open_usage(tmp_path / "data")
    try:
        codes = {
            (event := usage.mapper.to_domain_event(n)).request["request_id"]: event.error_code
            for n in usage.recorder.select_notifications(start=1, limit=1000)
        }
    finally:
        usage.close()
    assert {codes[r] for r in request_ids} == {"ThrottlingException"}


def test_boto3_retry_modes_ride_the_throttle(throttled: ThreadServer) -> None:
    key = throttled.client().create_key()["KeyMetadata"]["KeyId"]

    def burst(mode: str) -> tuple[float, float]:
        client = throttled.client(config=Config(retries={"mode": mode, "max_attempts": 20}))
        before, began = _throttled_count(throttled), time.monotonic()
        for _ in range(25):
            client.encrypt(KeyId=key, Plaintext=b"x")  # every one succeeds in the end
        return _throttled_count(throttled) - before, time.monotonic() - began

    time.sleep(1.2)  # a full bucket for each mode
    standard_throttles, _ = burst("standard")
    time.sleep(1.2)
    adaptive_throttles, adaptive_seconds = burst("adaptive")
    assert standard_throttles > 0
    # Adaptive mode paces itself after the first throttles: fewer refusals, and no faster
    # than the quota allows (25 requests at 5/s with a 5-request bucket: at least 4 s).
    assert adaptive_throttles < standard_throttles
    assert adaptive_seconds >= 3.5


def test_quota_and_limit_tables_are_checked(tmp_path: Path) -> None:
    principal = (
        '[[principals]]\narn = "arn:aws:iam::000000000000:root"\n'
        'access_key_id = "test"\nsecret_access_key = "test"\n\n'
    )
    config = tmp_path / "keyledger.toml"
    config.write_text(principal + "[quotas]\ncreate_key = 1.5\nenabled = true\n")
    loaded = load_config(config)
    assert loaded.quotas.rate("create_key") == 1.5
    assert loaded.quotas.rate("cryptographic_operations_rsa") == 500
    for bad in (
        "[quotas]\nno_such_family = 3\n",
        "[limits]\nkeys = 3\n",
        "[quotas]\nenabled = 1\n",
    ):
        config.write_text(principal + bad)
        with pytest.raises(ConfigError):
            load_config(config)
