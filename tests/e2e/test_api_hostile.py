"""Hostile and malformed traffic: raw HTTP requests signed with botocore's SigV4 signer,
bad bodies, bad signatures, unknown operations, and one principal reaching for another
account's key. Every answer must be a clean 4xx JSON error, and the server must survive."""

from __future__ import annotations

import base64
import http.client
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import botocore.auth
import botocore.model
import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from api.config import Settings
from api.ops import OPERATIONS
from api.sigv4 import Credential
from tests.support import ThreadServer

REGION = "us-east-1"
JSON_11 = "application/x-amz-json-1.1"
BUILT = frozenset(OPERATIONS)  # what the server answers; everything else is unbuilt
KMS_MODEL = botocore.session.get_session().get_service_model("kms")
UNBUILT = sorted(set(KMS_MODEL.operation_names) - BUILT)


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    raw: bytes

    @property
    def body(self) -> dict[str, Any]:
        try:
            parsed = json.loads(self.raw)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}

    @property
    def code(self) -> str | None:
        return self.body.get("__type")

    @property
    def message(self) -> str | None:
        return self.body.get("message")


def signed_headers(
    server: ThreadServer,
    body: bytes,
    *,
    target: str | None = "TrentService.Encrypt",
    content_type: str | None = JSON_11,
) -> dict[str, str]:
    """Headers botocore's own SigV4 signer puts on a request to ``server``."""
    headers = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if target is not None:
        headers["X-Amz-Target"] = target
    request = AWSRequest(method="POST", url=server.endpoint + "/", data=body, headers=headers)
    SigV4Auth(Credentials("test", "test"), "kms", REGION).add_auth(request)
    return dict(request.headers.items())


def send(
    server: ThreadServer,
    body: bytes | Iterator[bytes] = b"",
    headers: dict[str, str] | None = None,
    method: str = "POST",
    path: str = "/",
) -> Answer:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        chunked = not isinstance(body, bytes)
        connection.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        connection.close()


def send_signed(server: ThreadServer, body: bytes, **options: Any) -> Answer:
    return send(server, body, signed_headers(server, body, **options))


def assert_clean_refusal(answer: Answer, status: int | None = None) -> None:
    """A 4xx (never 5xx) with an AWS JSON error body and a request id."""
    assert 400 <= answer.status < 500, (answer.status, answer.raw[:300])
    if status is not None:
        assert answer.status == status, (answer.status, answer.raw[:300])
    assert answer.code, answer.raw[:300]
    assert isinstance(answer.message, str), answer.raw[:300]
    assert answer.headers.get("x-amzn-RequestId"), dict(answer.headers)


def assert_still_serving(server: ThreadServer) -> None:
    kms = server.client()
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    sealed = kms.encrypt(KeyId=key_id, Plaintext=b"still alive")
    assert kms.decrypt(CiphertextBlob=sealed["CiphertextBlob"])["Plaintext"] == b"still alive"


def key_count(server: ThreadServer) -> int:
    return len(server.client().list_keys()["Keys"])


# ---------------------------------------------------------------- bodies


@pytest.mark.parametrize(
    ("body", "label"),
    [
        (b'{"Description": ', "truncated JSON"),
        (b"{'Description': 'single quotes'}", "not JSON"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"[" * 5000 + b"]" * 5000, "deeply nested"),
    ],
)
def test_malformed_json_is_a_400_serialization_exception(
    server: ThreadServer, body: bytes, label: str
) -> None:
    answer = send_signed(server, body, target="TrentService.CreateKey")
    assert_clean_refusal(answer, 400)
    assert answer.code == "SerializationException", label
    assert key_count(server) == 0
    assert_still_serving(server)


@pytest.mark.parametrize(
    "body", [b"[]", b'[{"Description": "x"}]', b'"a string"', b"42", b"true"], ids=repr
)
def test_a_json_body_that_is_not_an_object_is_a_serialization_exception(
    server: ThreadServer, body: bytes
) -> None:
    answer = send_signed(server, body, target="TrentService.CreateKey")
    assert_clean_refusal(answer, 400)
    assert answer.code == "SerializationException"
    assert key_count(server) == 0


@pytest.mark.parametrize(
    ("target", "body", "code"),
    [
        ("GenerateRandom", b'{"NumberOfBytes": "32"}', "SerializationException"),
        ("GenerateRandom", b'{"NumberOfBytes": 1.5}', "SerializationException"),
        ("GenerateRandom", b'{"NumberOfBytes": 99999999999999999999999}', None),
        ("GenerateRandom", b'{"NumberOfBytes": {"n": 1}}', "SerializationException"),
        ("Encrypt", b'{"KeyId": "alias/x", "Plaintext": "%%%not base64"}', None),
        ("Encrypt", b'{"KeyId": ["alias/x"], "Plaintext": "eA=="}', "SerializationException"),
        ("Encrypt", b'{"KeyId": "alias/x", "Plaintext": "eA==", "EncryptionContext": [1]}', None),
        ("CreateKey", b'{"Tags": {"TagKey": "a"}}', "SerializationException"),
        ("CreateKey", b'{"Tags": [{"TagKey": 1, "TagValue": 2}]}', "SerializationException"),
        ("ListKeys", b'{"Limit": -1}', "ValidationException"),
        ("ListKeys", b'{"Limit": true}', "SerializationException"),
    ],
)
def test_wrongly_typed_members_are_refused_cleanly(
    server: ThreadServer, target: str, body: bytes, code: str | None
) -> None:
    answer = send_signed(server, body, target=f"TrentService.{target}")
    assert_clean_refusal(answer, 400)
    if code is not None:
        assert answer.code == code, answer.raw
    assert key_count(server) == 0


def test_an_unknown_member_is_ignored(server: ThreadServer) -> None:
    answer = send_signed(
        server,
        b'{"NumberOfBytes": 8, "Bogus": {"deep": [1, 2]}}',
        target="TrentService.GenerateRandom",
    )
    assert answer.status == 200
    assert len(base64.b64decode(answer.body["Plaintext"])) == 8


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", None])
def test_a_wrong_content_type_is_refused_cleanly(
    server: ThreadServer, content_type: str | None
) -> None:
    answer = send_signed(
        server,
        b'{"Description": "typed"}',
        target="TrentService.CreateKey",
        content_type=content_type,
    )
    assert_clean_refusal(answer, 400)
    assert key_count(server) == 0
    assert_still_serving(server)


def test_plain_application_json_is_accepted(server: ThreadServer) -> None:
    answer = send_signed(
        server,
        b'{"NumberOfBytes": 4}',
        target="TrentService.GenerateRandom",
        content_type=("application/json"),
    )
    assert answer.status == 200, answer.raw


def test_a_one_mebibyte_body_is_a_413_before_it_is_read(server: ThreadServer) -> None:
    body = b'{"Description": "' + b"x" * (1024 * 1024) + b'"}'
    answer = send_signed(server, body, target="TrentService.CreateKey")
    assert_clean_refusal(answer, 413)
    assert answer.code == "RequestEntityTooLargeException"
    assert key_count(server) == 0
    assert_still_serving(server)


def test_a_one_mebibyte_chunked_body_without_content_length_is_a_413(
    server: ThreadServer,
) -> None:
    body = b'{"Description": "' + b"x" * (1024 * 1024) + b'"}'
    headers = signed_headers(server, body, target="TrentService.CreateKey")
    headers.pop("Content-Length", None)
    headers["Transfer-Encoding"] = "chunked"
    chunks = iter([body[i : i + 65536] for i in range(0, len(body), 65536)])
    answer = send(server, chunks, headers)
    assert_clean_refusal(answer, 413)
    assert answer.code == "RequestEntityTooLargeException"
    assert key_count(server) == 0
    assert_still_serving(server)


def send_in_pieces(
    server: ThreadServer, body: bytes, headers: dict[str, str], pause: float = 0.2
) -> Answer:
    """Declare the full Content-Length, then send the body in two halves with a pause:
    what any client sees when a body spans more than one TCP segment."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.putrequest("POST", "/")
        for name, value in headers.items():
            if name.lower() != "content-length":
                connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders()
        half = len(body) // 2
        connection.send(body[:half])
        time.sleep(pause)
        connection.send(body[half:])
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        connection.close()


def test_a_valid_body_that_arrives_in_pieces_is_read_whole(server: ThreadServer) -> None:
    key_id = server.client().create_key()["KeyMetadata"]["KeyId"]
    plaintext = b"p" * 3000
    body = json.dumps({"KeyId": key_id, "Plaintext": base64.b64encode(plaintext).decode()}).encode()
    answer = send_in_pieces(server, body, signed_headers(server, body))
    assert answer.status == 200, answer.raw[:300]
    blob = base64.b64decode(answer.body["CiphertextBlob"])
    assert server.client().decrypt(CiphertextBlob=blob)["Plaintext"] == plaintext


# ---------------------------------------------------------------- operations


@pytest.mark.parametrize(
    "target",
    ["TrentService.Nope", "TrentService.", "Foo.Encrypt", "TrentService.encrypt", None],
)
def test_an_unknown_target_is_a_400_unknown_operation(
    server: ThreadServer, target: str | None
) -> None:
    answer = send_signed(server, b"{}", target=target)
    assert_clean_refusal(answer, 400)
    assert answer.code == "UnknownOperationException"


_SCALARS: dict[str, Any] = {
    "blob": lambda meta: base64.b64encode(b"x" * meta.get("min", 1)).decode(),
    "integer": lambda meta: meta.get("min", 1),
    "long": lambda meta: meta.get("min", 1),
    "boolean": lambda meta: False,
    "timestamp": lambda meta: 0,
    "string": lambda meta: "us-west-2" if "\\d" in meta.get("pattern", "") else "x",
}


def _minimal(shape: botocore.model.Shape) -> Any:
    """The smallest input that satisfies the model: required members only."""
    if isinstance(shape, botocore.model.StructureShape):
        return {name: _minimal(shape.members[name]) for name in shape.required_members}
    if isinstance(shape, botocore.model.ListShape):
        return [_minimal(shape.member)] * max(1, shape.metadata.get("min", 1))
    if isinstance(shape, botocore.model.MapShape):
        return {}
    if shape.metadata.get("enum"):
        return shape.metadata["enum"][0]
    return _SCALARS[shape.type_name](shape.metadata)


def test_every_model_operation_not_built_is_an_unsupported_operation(
    server: ThreadServer,
) -> None:
    kms = server.client()
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    wrong: dict[str, tuple[int, str | None, str | None]] = {}
    for operation in UNBUILT:
        shape = KMS_MODEL.operation_model(operation).input_shape
        params = _minimal(shape) if shape is not None else {}
        if "KeyId" in params:
            params["KeyId"] = key_id
        answer = send_signed(
            server, json.dumps(params).encode(), target=f"TrentService.{operation}"
        )
        assert 400 <= answer.status < 500, (operation, answer.status, answer.raw[:200])
        if answer.code != "UnsupportedOperationException":
            wrong[operation] = (answer.status, answer.code, answer.message)
    assert wrong == {}
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"


@pytest.mark.parametrize(
    "operation", ["ImportKeyMaterial", "GetParametersForImport", "GetPublicKey"]
)
def test_boto3_sees_unbuilt_operations_as_unsupported(kms: Any, operation: str) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    calls = {
        "ImportKeyMaterial": lambda: kms.import_key_material(
            KeyId=key_id, ImportToken=b"t", EncryptedKeyMaterial=b"m"
        ),
        "GetParametersForImport": lambda: kms.get_parameters_for_import(
            KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048"
        ),
        "GetPublicKey": lambda: kms.get_public_key(KeyId=key_id),
    }
    with pytest.raises(ClientError) as caught:
        calls[operation]()
    assert caught.value.response["Error"]["Code"] == "UnsupportedOperationException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"


# ---------------------------------------------------------------- authentication


def test_an_unsigned_request_is_missing_authentication_token(server: ThreadServer) -> None:
    answer = send(
        server,
        b'{"Description": "anonymous"}',
        {"Content-Type": JSON_11, "X-Amz-Target": "TrentService.CreateKey"},
    )
    assert_clean_refusal(answer)
    assert answer.code == "MissingAuthenticationTokenException"
    assert answer.status == 403
    assert key_count(server) == 0


def test_a_forged_signature_is_an_invalid_signature(server: ThreadServer) -> None:
    body = b'{"Description": "forged"}'
    headers = signed_headers(server, body, target="TrentService.CreateKey")
    signature = headers["Authorization"].rsplit("Signature=", 1)[1]
    forged = ("0" if signature[0] != "0" else "1") + signature[1:]
    headers["Authorization"] = headers["Authorization"].replace(signature, forged)
    answer = send(server, body, headers)
    assert_clean_refusal(answer, 400)
    assert answer.code == "InvalidSignatureException"
    assert answer.message is not None
    assert answer.message.startswith("The request signature we calculated does not match")
    assert key_count(server) == 0


def test_a_body_swapped_after_signing_is_an_invalid_signature(server: ThreadServer) -> None:
    headers = signed_headers(server, b'{"Description": "signed"}', target="TrentService.CreateKey")
    swapped = b'{"Description": "swappd"}'  # same length, different bytes
    answer = send(server, swapped, headers)
    assert_clean_refusal(answer, 400)
    assert answer.code == "InvalidSignatureException"
    assert key_count(server) == 0


def test_a_target_swapped_after_signing_is_an_invalid_signature(server: ThreadServer) -> None:
    body = b'{"Description": "x"}'
    headers = signed_headers(server, body, target="TrentService.DescribeKey")
    headers["X-Amz-Target"] = "TrentService.CreateKey"
    answer = send(server, body, headers)
    assert_clean_refusal(answer, 400)
    assert answer.code == "InvalidSignatureException"
    assert key_count(server) == 0


def test_an_unknown_access_key_is_an_unrecognized_client(server: ThreadServer) -> None:
    stranger = server.client(aws_access_key_id="AKIDSTRANGER", aws_secret_access_key="s")
    with pytest.raises(ClientError) as caught:
        stranger.list_keys()
    error = caught.value.response["Error"]
    assert (error["Code"], error["Message"]) == (
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    )


def test_a_wrong_secret_is_an_invalid_signature(server: ThreadServer) -> None:
    impostor = server.client(aws_secret_access_key="not-the-secret")
    with pytest.raises(ClientError) as caught:
        impostor.create_key()
    assert caught.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert key_count(server) == 0


def _signing_time(monkeypatch: pytest.MonkeyPatch, moment: datetime) -> str:
    naive = moment.astimezone(UTC).replace(tzinfo=None, microsecond=0)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *_a, **_k: naive)
    return naive.strftime("%Y%m%dT%H%M%SZ")


def test_a_signature_ten_minutes_old_has_expired(
    server: ThreadServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    kms = server.client()
    amz_date = _signing_time(monkeypatch, datetime.now(UTC) - timedelta(minutes=10))
    with pytest.raises(ClientError) as caught:
        kms.create_key()
    error = caught.value.response["Error"]
    assert error["Code"] == "InvalidSignatureException"
    assert error["Message"].startswith(f"Signature expired: {amz_date} is now earlier than ")
    assert error["Message"].endswith(" - 5 min.)")
    monkeypatch.undo()
    assert key_count(server) == 0


def test_a_signature_ten_minutes_ahead_is_not_yet_current(
    server: ThreadServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    kms = server.client()
    amz_date = _signing_time(monkeypatch, datetime.now(UTC) + timedelta(minutes=10))
    with pytest.raises(ClientError) as caught:
        kms.create_key()
    error = caught.value.response["Error"]
    assert error["Code"] == "InvalidSignatureException"
    assert error["Message"].startswith(f"Signature not yet current: {amz_date} is still later ")
    monkeypatch.undo()
    assert key_count(server) == 0


def test_a_signature_two_minutes_old_is_still_accepted(
    server: ThreadServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    kms = server.client()
    _signing_time(monkeypatch, datetime.now(UTC) - timedelta(minutes=2))
    assert kms.create_key()["KeyMetadata"]["KeyState"] == "Enabled"


# ---------------------------------------------------------------- HTTP surface


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_a_method_other_than_post_answers_a_json_4xx(server: ThreadServer, method: str) -> None:
    answer = send(server, b"", {}, method=method)
    assert_clean_refusal(answer)


def test_the_server_survives_a_barrage_of_hostile_requests(server: ThreadServer) -> None:
    answers = [
        send_signed(server, b"{not json", target="TrentService.CreateKey"),
        send_signed(server, b"[]", target="TrentService.CreateKey"),
        send_signed(server, b"{}", target="TrentService.Nope"),
        send_signed(server, b"{}", target="TrentService.Sign"),
        send_signed(server, b"{}", content_type="text/plain"),
        send_signed(server, b'{"Description": "' + b"y" * (300 * 1024) + b'"}'),
        send(server, b"{}", {"Content-Type": JSON_11, "X-Amz-Target": "TrentService.ListKeys"}),
        send(server, b"{}", {"Authorization": "AWS4-HMAC-SHA256 garbage", "X-Amz-Date": "now"}),
        send(server, b"{}", {"Authorization": "Basic dXNlcjpwYXNz"}),
    ]
    for answer in answers:
        assert 400 <= answer.status < 500, (answer.status, answer.raw[:200])
        assert answer.code, answer.raw[:200]
    assert key_count(server) == 0
    assert_still_serving(server)


# ---------------------------------------------------------------- accounts


ACCOUNT_A, ACCOUNT_B = "111111111111", "222222222222"


@pytest.fixture
def two_accounts(tmp_path: Path) -> Iterator[ThreadServer]:
    principals = (
        Credential("AKIDALICE", "alice-secret", f"arn:aws:iam::{ACCOUNT_A}:root", ACCOUNT_A),
        Credential("AKIDBOB", "bob-secret", f"arn:aws:iam::{ACCOUNT_B}:root", ACCOUNT_B),
    )
    running = ThreadServer(Settings(data_dir=tmp_path / "data", principals=principals)).start()
    yield running
    running.stop()


def _as(server: ThreadServer, access_key: str, secret: str) -> Any:
    return server.client(aws_access_key_id=access_key, aws_secret_access_key=secret)


def test_another_accounts_key_arn_is_access_denied(two_accounts: ThreadServer) -> None:
    alice = _as(two_accounts, "AKIDALICE", "alice-secret")
    bob = _as(two_accounts, "AKIDBOB", "bob-secret")
    key = alice.create_key()["KeyMetadata"]
    assert key["AWSAccountId"] == ACCOUNT_A
    assert key["Arn"].startswith(f"arn:aws:kms:{REGION}:{ACCOUNT_A}:key/")
    with pytest.raises(ClientError) as caught:
        bob.encrypt(KeyId=key["Arn"], Plaintext=b"p")
    error = caught.value.response["Error"]
    assert error["Code"] == "AccessDeniedException"
    assert error["Message"].startswith(
        f"User: arn:aws:iam::{ACCOUNT_B}:root is not authorized to perform: kms:Encrypt "
        f"on resource: arn:aws:kms:{REGION}:{ACCOUNT_A}:key/"
    )
    assert key["KeyId"] in error["Message"]
    # the owner still uses it
    assert alice.encrypt(KeyId=key["Arn"], Plaintext=b"p")["KeyId"] == key["Arn"]


def test_another_accounts_keys_are_invisible_by_bare_id_and_in_listings(
    two_accounts: ThreadServer,
) -> None:
    alice = _as(two_accounts, "AKIDALICE", "alice-secret")
    bob = _as(two_accounts, "AKIDBOB", "bob-secret")
    key_id = alice.create_key()["KeyMetadata"]["KeyId"]
    alice.create_alias(AliasName="alias/alice", TargetKeyId=key_id)
    assert [k["KeyId"] for k in alice.list_keys()["Keys"]] == [key_id]
    assert bob.list_keys()["Keys"] == []
    listed = bob.list_aliases()["Aliases"]
    assert all(a["AliasName"].startswith("alias/aws/") for a in listed)
    assert all("TargetKeyId" not in a for a in listed)
    with pytest.raises(ClientError) as caught:
        bob.describe_key(KeyId=key_id)
    error = caught.value.response["Error"]
    assert (error["Code"], error["Message"]) == (
        "NotFoundException",
        f"Key 'arn:aws:kms:{REGION}:{ACCOUNT_B}:key/{key_id}' does not exist",
    )
    with pytest.raises(ClientError) as caught:
        bob.describe_key(KeyId=f"arn:aws:kms:{REGION}:{ACCOUNT_A}:alias/alice")
    # An alias ARN names the other account's key; its key policy does not admit Bob.
    assert caught.value.response["Error"]["Code"] == "AccessDeniedException"
    # Bob may use the same alias name for his own key
    bob_key = bob.create_key()["KeyMetadata"]["KeyId"]
    bob.create_alias(AliasName="alias/alice", TargetKeyId=bob_key)
    assert bob.describe_key(KeyId="alias/alice")["KeyMetadata"]["KeyId"] == bob_key
    assert alice.describe_key(KeyId="alias/alice")["KeyMetadata"]["KeyId"] == key_id


def test_another_account_cannot_manage_or_decrypt_with_a_key(two_accounts: ThreadServer) -> None:
    alice = _as(two_accounts, "AKIDALICE", "alice-secret")
    bob = _as(two_accounts, "AKIDBOB", "bob-secret")
    key = alice.create_key()["KeyMetadata"]
    blob = alice.encrypt(KeyId=key["KeyId"], Plaintext=b"alice only")["CiphertextBlob"]
    for call, params in (
        (bob.disable_key, {"KeyId": key["Arn"]}),
        (bob.tag_resource, {"KeyId": key["Arn"], "Tags": [{"TagKey": "t", "TagValue": "v"}]}),
        (bob.update_key_description, {"KeyId": key["Arn"], "Description": "mine"}),
        (bob.decrypt, {"CiphertextBlob": blob}),
        (bob.decrypt, {"CiphertextBlob": blob, "KeyId": key["Arn"]}),
    ):
        with pytest.raises(ClientError) as caught:
            call(**params)
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        code = caught.value.response["Error"]["Code"]
        assert code in {"AccessDeniedException", "NotFoundException"}, (call, code)
    metadata = alice.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert (metadata["KeyState"], metadata["Description"]) == ("Enabled", "")
    assert alice.list_resource_tags(KeyId=key["KeyId"])["Tags"] == []
    assert alice.decrypt(CiphertextBlob=blob)["Plaintext"] == b"alice only"
