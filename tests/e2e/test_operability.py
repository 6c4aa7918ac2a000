"""Operability end to end: TLS, the unix socket, source addresses, health and readiness,
metrics, open credentials, request logs, graceful shutdown and SIGHUP reload."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, SSLError
from prometheus_client.parser import text_string_to_metric_families

from api.config import ConfigError, Settings
from api.services import SERVICES
from api.tls import server_context
from tests.e2e.authz_config import toml_text
from tests.integration.stores import open_usage
from tests.support import REPO, ProcessServer, ThreadServer, free_port, refused, remember_secrets

NO_RETRY = Config(retries={"max_attempts": 1})


def kms_client(endpoint: str, key: str = "test", secret: str = "test", **kwargs: Any) -> Any:  # noqa: S107
    return remember_secrets(
        boto3.client(
            "kms",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            config=NO_RETRY,
            **kwargs,
        )
    )


def get(url: str, **kwargs: Any) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10, **kwargs) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        time.sleep(0.05)


# -- TLS ------------------------------------------------------------------------------


def _encrypt_denied_when(condition: dict[str, Any]) -> dict[str, Any]:
    """A key policy: the account root may do everything, except Encrypt under ``condition``."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::000000000000:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "kms:Encrypt",
                "Resource": "*",
                "Condition": condition,
            },
        ],
    }


def test_https_with_the_dev_ca_and_refused_without_it(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    made = subprocess.run(
        [sys.executable, "-m", "api", "dev-cert", str(certs)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "ca.pem" in made.stdout
    assert stat.S_IMODE(os.stat(certs / "server.key").st_mode) == 0o600
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = ProcessServer(
        data_dir,
        extra_args=(
            "--tls-cert",
            str(certs / "server.pem"),
            "--tls-key",
            str(certs / "server.key"),
        ),
    ).start()
    try:
        https = f"https://localhost:{server.port}"
        kms = kms_client(https, verify=str(certs / "ca.pem"))
        key = kms.create_key()["KeyMetadata"]["KeyId"]
        blob = kms.encrypt(KeyId=key, Plaintext=b"over tls")["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"over tls"
        # aws:SecureTransport is true over TLS: a policy denying Encrypt then refuses it.
        policy = _encrypt_denied_when({"Bool": {"aws:SecureTransport": "true"}})
        kms.put_key_policy(KeyId=key, PolicyName="default", Policy=json.dumps(policy))
        with pytest.raises(ClientError) as refused:
            kms.encrypt(KeyId=key, Plaintext=b"over tls")
        assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"over tls"
        with pytest.raises(SSLError):
            kms_client(https).list_keys()  # the system trust store does not know the dev CA
        # TLS 1.2 speaks only forward-secret AEAD suites; the floor is TLS 1.2.
        tls12 = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        tls12.maximum_version = ssl.TLSVersion.TLSv1_2
        with (
            socket.create_connection(("127.0.0.1", server.port)) as raw,
            tls12.wrap_socket(raw, server_hostname="localhost") as wrapped,
        ):
            cipher, version, _ = wrapped.cipher()
            assert version == "TLSv1.2" and cipher.startswith("ECDHE-")
            assert "GCM" in cipher or "CHACHA20" in cipher
        context = server_context(certs / "server.pem", certs / "server.key")
        assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    finally:
        server.stop()


# -- unix socket and private endpoints ----------------------------------------------------


async def _signed_over_socket(path: Path, operation: str, body: dict[str, Any]) -> tuple[int, Any]:
    payload = json.dumps(body).encode()
    request = AWSRequest(
        method="POST",
        url="http://localhost/",
        data=payload,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"TrentService.{operation}",
        },
    )
    SigV4Auth(Credentials("test", "test"), "kms", "us-east-1").add_auth(request)
    connector = aiohttp.UnixConnector(path=str(path))
    headers = dict(request.headers.items())
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post("http://localhost/", data=payload, headers=headers) as response,
    ):
        return response.status, json.loads(await response.read())


async def test_the_unix_socket_is_private_and_carries_the_vpc_endpoint_id(tmp_path: Path) -> None:
    config = tmp_path / "keyledger.toml"
    config.write_text(
        'vpc_endpoint_id = "vpce-0abc"\n\n'
        '[[principals]]\narn = "arn:aws:iam::000000000000:root"\n'
        'access_key_id = "test"\nsecret_access_key = "test"\n'
    )
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    sock = tmp_path / "kms.sock"
    server = ProcessServer(
        data_dir, extra_args=("--config", str(config), "--unix-socket", str(sock))
    ).start()
    try:
        wait_for(sock.exists)
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        status, made = await _signed_over_socket(sock, "CreateKey", {})
        assert status == 200, made
        key = made["KeyMetadata"]["Arn"]
        # Only requests through the private endpoint may encrypt (aws:SourceVpce).
        policy = _encrypt_denied_when({"StringNotEquals": {"aws:SourceVpce": "vpce-0abc"}})
        tcp = kms_client(server.endpoint)
        tcp.put_key_policy(KeyId=key, Policy=json.dumps(policy))
        status, answer = await _signed_over_socket(
            sock, "Encrypt", {"KeyId": key, "Plaintext": "eA=="}
        )
        assert status == 200, answer
        code, _ = refused(tcp.encrypt, KeyId=key, Plaintext=b"x")
        assert code == "AccessDeniedException"
    finally:
        server.stop()
    assert not sock.exists()


def test_only_allowed_source_addresses_get_in(tmp_path: Path) -> None:
    elsewhere = ThreadServer(
        Settings(
            data_dir=tmp_path / "a",
            port=0,
            allowed_source_ips=(ipaddress.ip_network("10.0.0.0/8"),),
        )
    ).start()
    here = ThreadServer(
        Settings(
            data_dir=tmp_path / "b",
            port=0,
            allowed_source_ips=(ipaddress.ip_network("127.0.0.0/8"),),
        )
    ).start()
    try:
        with pytest.raises(ClientError) as caught:
            elsewhere.client().list_keys()
        error = caught.value.response
        assert error["Error"]["Code"] == "AccessDeniedException"
        assert "127.0.0.1" in error["Error"]["Message"]
        request_id = error["ResponseMetadata"]["RequestId"]
        here.client().list_keys()
    finally:
        elsewhere.stop()
        here.stop()
    usage = open_usage(tmp_path / "a")
    try:
        records = [
            usage.mapper.to_domain_event(n)
            for n in usage.recorder.select_notifications(start=1, limit=100)
        ]
    finally:
        usage.close()
    refused_record = [r for r in records if r.request["request_id"] == request_id]
    assert [r.error_code for r in refused_record] == ["AccessDeniedException"]


# -- health, readiness, metrics -----------------------------------------------------------


def test_health_and_readiness(server: ThreadServer) -> None:
    status, body = get(f"{server.endpoint}/health")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    status, body = get(f"{server.endpoint}/ready")
    answer = json.loads(body)
    assert status == 200 and answer["ready"] is True
    assert set(answer) == {"ready", "checks"}  # nothing about keys or configuration
    assert server.app is not None
    server.app[SERVICES].records.close()  # the usage writer dies
    status, body = get(f"{server.endpoint}/ready")
    answer = json.loads(body)
    assert status == 503 and answer["ready"] is False
    assert answer["checks"]["writer_usage"] is False
    assert answer["checks"]["writer_keyledger"] is True


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_metrics_in_prometheus_text_format(server: ThreadServer) -> None:
    kms = server.client()
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    for _ in range(3):
        kms.encrypt(KeyId=key, Plaintext=b"x")
    refused(kms.describe_key, KeyId="alias/none")
    status, body = get(f"{server.endpoint}/metrics")
    assert status == 200
    samples = _samples(body.decode())
    requests = "keyledger_requests_total"
    assert samples[requests, (("operation", "Encrypt"), ("outcome", "success"))] == 3
    assert samples[requests, (("operation", "DescribeKey"), ("outcome", "NotFoundException"))] == 1
    assert samples["keyledger_request_duration_seconds_count", (("operation", "Encrypt"),)] == 3
    assert samples["keyledger_writer_batch_size_count", (("writer", "usage"),)] >= 1
    assert samples["keyledger_writer_commit_seconds_count", (("writer", "keyledger"),)] >= 1
    assert samples["keyledger_keys", (("state", "Enabled"),)] == 1
    assert samples["keyledger_projection_lag_events", (("view", "grants"),)] >= 0
    assert ("keyledger_projection_position", (("view", "keys"),)) in samples


def test_metrics_on_their_own_port(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    metrics_port = free_port()
    server = ProcessServer(data_dir, extra_args=("--metrics-port", str(metrics_port))).start()
    try:
        wait_for(lambda: get(f"http://127.0.0.1:{metrics_port}/metrics")[0] == 200)
        status, _ = get(f"{server.endpoint}/metrics")
        assert status == 400  # not on the API port
    finally:
        server.stop()


# -- open credentials -----------------------------------------------------------------


def test_open_credentials_accept_any_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = ProcessServer(data_dir, extra_args=("--open-credentials",)).start()
    try:
        numeric = kms_client(server.endpoint, "123456789012", "anything")
        arn = numeric.create_key()["KeyMetadata"]["Arn"]
        assert ":123456789012:key/" in arn
        other = kms_client(server.endpoint, "AKIAWHATEVER", "whatever")
        assert ":000000000000:key/" in other.create_key()["KeyMetadata"]["Arn"]
        assert (
            other.list_keys()["Keys"] and numeric.list_keys()["Keys"] != other.list_keys()["Keys"]
        )
        # The signature's shape is still checked.
        signed = AWSRequest(
            method="POST",
            url=server.endpoint + "/",
            data=b"{}",
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": "TrentService.ListKeys",
            },
        )
        SigV4Auth(Credentials("AKIAX", "unknown"), "kms", "us-east-1").add_auth(signed)
        headers = dict(signed.headers.items())
        head, _, _ = headers["Authorization"].rpartition("Signature=")
        headers["Authorization"] = head + "Signature=" + "z" * 64
        request = urllib.request.Request(
            server.endpoint + "/", data=b"{}", method="POST", headers=headers
        )
        status, body = _send(request)
        assert status == 400 and json.loads(body)["__type"] == "InvalidSignatureException"
    finally:
        server.stop()
    log = (tmp_path / f"server-{server.port}.log").read_text()
    assert "OPEN CREDENTIALS ENABLED" in log


def _send(request: urllib.request.Request) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_open_credentials_and_dev_clock_need_a_loopback_bind() -> None:
    with pytest.raises(ConfigError):
        Settings(host="0.0.0.0", open_credentials=True)  # noqa: S104 - the point of the test
    result = subprocess.run(
        [sys.executable, "-m", "api", "serve", "--host", "10.1.2.3", "--open-credentials"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and "loopback" in result.stderr


# -- logs and help -----------------------------------------------------------------------


def test_one_json_log_line_per_request_without_secrets(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = ProcessServer(data_dir).start()
    try:
        kms = kms_client(server.endpoint)
        key = kms.create_key()["KeyMetadata"]["Arn"]
        secret = b"plaintext-that-must-not-be-logged"
        answer = kms.encrypt(KeyId=key, Plaintext=secret)
    finally:
        server.stop()
    text = (tmp_path / f"server-{server.port}.log").read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    encrypt = [entry for entry in lines if entry.get("operation") == "Encrypt"]
    assert len(encrypt) == 1
    entry = encrypt[0]
    assert entry["request_id"] == answer["ResponseMetadata"]["RequestId"]
    assert entry["outcome"] == "success" and entry["key"] == key
    assert entry["principal"] == "arn:aws:iam::000000000000:root"
    assert entry["latency_ms"] > 0
    assert "plaintext-that" not in text and "cGxhaW50ZXh0" not in text
    assert "test" not in {entry.get("secret"), entry.get("secret_access_key")}


def test_help_lists_commands_and_every_option_has_a_default_and_an_environment_variable() -> None:
    top = subprocess.run(
        [sys.executable, "-m", "api", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "serve" in top and "dev-cert" in top
    serve = subprocess.run(
        [sys.executable, "-m", "api", "serve", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    options = [word for word in serve.split() if word.startswith("--") and "=" not in word]
    assert {"--host", "--port", "--tls-cert", "--unix-socket", "--metrics-port"} <= set(options)
    assert len(re.findall(r"env\s+KEYLEDGER_", serve)) == len(set(options)) - 1  # all but --help


# -- shutdown and reload ---------------------------------------------------------------


def test_sigterm_under_load_finishes_in_flight_work_and_loses_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = ProcessServer(data_dir)
    for _ in range(2):
        server.start()
        acked: list[tuple[str, bytes]] = []
        stop = threading.Event()

        def client_loop(acked: list[tuple[str, bytes]], stop: threading.Event) -> None:
            kms = kms_client(server.endpoint)
            while not stop.is_set():
                try:
                    key = kms.create_key()["KeyMetadata"]["KeyId"]
                    blob = kms.encrypt(KeyId=key, Plaintext=b"kept")["CiphertextBlob"]
                except Exception:  # noqa: BLE001 - the server is going away
                    return
                acked.append((key, blob))

        threads = [threading.Thread(target=client_loop, args=(acked, stop)) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        began = time.monotonic()
        assert server.stop(signal.SIGTERM) == 0
        took = time.monotonic() - began
        stop.set()
        for thread in threads:
            thread.join(30)
        assert took < 10, f"shutdown took {took:.1f} s"
        assert acked
        server.start()
        kms = kms_client(server.endpoint)
        for key, blob in acked:
            assert kms.decrypt(CiphertextBlob=blob)["KeyId"].endswith(key)
        server.stop()


def test_sighup_reloads_principals(tmp_path: Path) -> None:
    config = tmp_path / "keyledger.toml"
    base = toml_text()
    config.write_text(base)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = ProcessServer(data_dir, extra_args=("--config", str(config))).start()
    try:
        dave = kms_client(server.endpoint, "AKDAVE", "dave-secret")
        code, _ = refused(dave.list_keys)
        assert code == "UnrecognizedClientException"
        alice = kms_client(server.endpoint, "AKALICE", "secret-of-alice")
        alice.list_keys()
        without_alice = "\n[[principals]]".join(
            part for part in ("\n" + base).split("\n[[principals]]") if "AKALICE" not in part
        )
        config.write_text(
            without_alice + '\n[[principals]]\narn = "arn:aws:iam::111111111111:user/dave"\n'
            'access_key_id = "AKDAVE"\nsecret_access_key = "dave-secret"\n'
        )
        assert server.process is not None
        server.process.send_signal(signal.SIGHUP)

        def dave_is_in() -> bool:
            """Known now: refused by authorization (no IAM policy), not authentication."""
            try:
                dave.list_keys()
            except ClientError as error:
                return error.response["Error"]["Code"] == "AccessDeniedException"
            return True

        wait_for(dave_is_in)
        code, _ = refused(alice.list_keys)
        assert code == "UnrecognizedClientException"
    finally:
        server.stop()
