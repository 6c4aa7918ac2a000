"""Wire fidelity, compared with responses recorded from AWS (issue 15)."""

from __future__ import annotations

import base64
import json
import logging
import socket
import time
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from api.services import SERVICES
from domain.usage import RequestRecorded
from domain.values import RequestContext
from projections.audit_record import usage_record
from tests.e2e.test_api_hostile import send_signed, signed_headers
from tests.support import ThreadServer, refused, unvalidated

MRK = "mrk-" + "0123456789abcdef" * 2


def test_an_unknown_multi_region_key_id_is_not_found_not_invalid(kms: Any) -> None:
    arn = f"arn:aws:kms:us-east-1:000000000000:key/{MRK}"
    for key_id in (MRK, arn):
        assert refused(kms.describe_key, KeyId=key_id) == (
            "NotFoundException",
            f"Key '{arn}' does not exist",
        )
    assert refused(kms.encrypt, KeyId=MRK, Plaintext=b"x") == (
        "NotFoundException",
        f"Key '{arn}' does not exist",
    )


@pytest.mark.parametrize("bad", ["mrk-0123", "mrk-" + "g" * 32, "mrk-" + "0" * 33])
def test_a_malformed_multi_region_key_id_is_still_invalid(kms: Any, bad: str) -> None:
    assert refused(kms.describe_key, KeyId=bad) == ("NotFoundException", f"Invalid keyId '{bad}'")


@pytest.mark.parametrize("prefix", ["aws:", "AWS:", "Aws:", "aWs:"])
def test_the_reserved_tag_prefix_is_matched_in_any_case(kms: Any, prefix: str) -> None:
    reserved = ("TagException", "Tags beginning with aws: are reserved")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    tags = [{"TagKey": f"{prefix}team", "TagValue": "x"}]
    assert refused(kms.tag_resource, KeyId=key_id, Tags=tags) == reserved
    assert refused(kms.untag_resource, KeyId=key_id, TagKeys=[f"{prefix}team"]) == reserved
    assert refused(kms.create_key, Tags=tags) == reserved
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == []
    # "awsx:" and "aws" alone are ordinary keys
    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "awsx:a", "TagValue": ""}])


def test_an_error_without_detail_has_no_message_member(server: ThreadServer) -> None:
    key_id = server.client().create_key()["KeyMetadata"]["KeyId"]
    sealed = server.client().encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    tampered = bytearray(sealed)
    tampered[-1] ^= 1
    body = json.dumps({"CiphertextBlob": base64.b64encode(bytes(tampered)).decode()}).encode()
    answer = send_signed(server, body, target="TrentService.Decrypt")
    assert answer.status == 400
    assert answer.body == {"__type": "InvalidCiphertextException"}
    # errors with a text keep it
    answer = send_signed(server, b'{"KeyId": "nope", "Plaintext": "eA=="}')
    assert answer.body == {"__type": "NotFoundException", "message": "Invalid keyId 'nope'"}
    # boto3 still reads it as an empty message
    assert refused(unvalidated(server).decrypt, CiphertextBlob=bytes(tampered)) == (
        "InvalidCiphertextException",
        "",
    )


def _records(server: ThreadServer) -> list[Any]:
    assert server.app is not None
    usage = server.app[SERVICES].usage
    return [
        usage.mapper.to_domain_event(n)
        for n in usage.recorder.select_notifications(start=1, limit=10_000)
    ]


def test_a_client_that_goes_away_mid_body_is_not_a_server_failure(
    server: ThreadServer, caplog: pytest.LogCaptureFixture
) -> None:
    key_id = server.client().create_key()["KeyMetadata"]["KeyId"]
    body = json.dumps({"KeyId": key_id, "Plaintext": "eA==" * 100}).encode()
    headers = signed_headers(server, body)
    caplog.set_level(logging.INFO)
    before = len(_records(server))
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        head = "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        sent = {k: v for k, v in headers.items() if k.lower() != "content-length"}
        head += "".join(f"{k}: {v}\r\n" for k, v in sent.items())
        head += f"Content-Length: {len(body)}\r\n\r\n"
        sock.sendall(head.encode() + body[: len(body) // 2])
        time.sleep(0.2)
    deadline = time.monotonic() + 10
    while len(_records(server)) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    records = _records(server)[before:]
    assert [(r.operation, r.error_code) for r in records] == [("Encrypt", "ClientClosedRequest")]
    assert "client" in (records[0].error_message or "").lower()
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert any("client went away" in r.getMessage() for r in caplog.records)
    assert server.client().encrypt(KeyId=key_id, Plaintext=b"x")["KeyId"]


def test_the_record_of_a_client_that_went_away_projects_to_cloudtrail() -> None:
    anonymous = RequestContext(None, "", "", str(uuid4()), "127.0.0.1", None)
    record = RequestRecorded(
        originator_id=uuid4(),
        originator_version=1,
        timestamp=datetime.now(UTC),
        operation="Encrypt",
        request=anonymous.as_dict(),
        key_arn=None,
        parameters={},
        error_code="ClientClosedRequest",
        error_message="The client closed the connection before the request body arrived.",
    )
    trail = usage_record(record, 1)
    assert (trail["eventName"], trail["errorCode"]) == ("Encrypt", "ClientClosedRequest")
    assert trail["userIdentity"]["type"] == "Unknown"


@pytest.mark.parametrize("valid_to", [-1.3951152381177714e16, 1e20, 253402300800])
def test_a_timestamp_no_date_can_hold_is_a_serialization_error(
    server: ThreadServer, valid_to: float
) -> None:
    """Found by the fuzzer: ImportKeyMaterial with ValidTo -1.4e16 answered 500 with a
    traceback (the year is out of range). It is refused while the request is read."""
    key_id = server.client().create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    body = json.dumps(
        {
            "KeyId": key_id,
            "ImportToken": base64.b64encode(b"t" * 16).decode(),
            "EncryptedKeyMaterial": base64.b64encode(b"m" * 32).decode(),
            "ExpirationModel": "KEY_MATERIAL_EXPIRES",
            "ValidTo": valid_to,
        }
    ).encode()
    answer = send_signed(server, body, target="TrentService.ImportKeyMaterial")
    assert (answer.status, answer.code) == (400, "SerializationException"), answer.raw[:300]
    assert answer.message == "NUMBER_VALUE can not be converted to a Timestamp"
