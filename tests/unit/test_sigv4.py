"""SigV4 verification against requests signed by botocore's real client signer."""

from __future__ import annotations

import calendar
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import urlsplit

import botocore.auth
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from api import sigv4
from api.sigv4 import Authenticated, Credential, SigV4Verifier
from domain.errors import (
    IncompleteSignatureError,
    InvalidSignatureError,
    MissingAuthenticationTokenError,
    UnrecognizedClientError,
)

# Two minutes before midnight UTC, so a date-line crossing stays inside the skew window.
SIGNED_AT = datetime(2024, 8, 20, 23, 58, 30)  # naive UTC, as botocore produces
T0 = calendar.timegm(SIGNED_AT.timetuple())
AMZ_DATE = "20240820T235830Z"
HOST = "kms.us-east-1.amazonaws.com"
URL = f"https://{HOST}/"
BODY = b'{"KeyId": "alias/test", "Plaintext": "aGVsbG8="}'
TARGET = "TrentService.Encrypt"
CRED = Credential("test", "test", "arn:aws:iam::000000000000:root", "000000000000")
MISMATCH = sigv4.MSG_MISMATCH


@dataclass(frozen=True)
class Wire:
    """A request as the server sees it: raw path/query, raw header pairs, body."""

    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str:
        return next(v for k, v in self.headers if k.lower() == name.lower())

    def with_header(self, name: str, value: str) -> Wire:
        kept = [(k, v) for k, v in self.headers if k.lower() != name.lower()]
        return replace(self, headers=(*kept, (name, value)))

    def without_header(self, name: str) -> Wire:
        kept = tuple((k, v) for k, v in self.headers if k.lower() != name.lower())
        return replace(self, headers=kept)

    def with_auth(self, old: str, new: str) -> Wire:
        return self.with_header("Authorization", self.header("Authorization").replace(old, new))


@pytest.fixture(autouse=True)
def _fixed_signing_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # botocore.auth takes "now" from get_current_datetime(); pin it for reproducible
    # signatures instead of racing the wall clock.
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *_a, **_k: SIGNED_AT)


def kms_request(
    method: str = "POST", url: str = URL, body: bytes = BODY, **headers: str
) -> AWSRequest:
    base = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET}
    base.update({k.replace("_", "-"): v for k, v in headers.items()})
    return AWSRequest(method=method, url=url, data=body, headers=base)


def to_wire(request: AWSRequest) -> Wire:
    parts = urlsplit(request.url)
    pairs = (("Host", parts.netloc), *request.headers.items())
    body = request.body or b""
    return Wire(request.method, parts.path or "/", parts.query, pairs, body)


def sign(
    request: AWSRequest | None = None,
    *,
    key: str = "test",
    service: str = "kms",
    region: str = "us-east-1",
) -> Wire:
    request = request or kms_request()
    SigV4Auth(Credentials(key, "test"), service, region).add_auth(request)
    return to_wire(request)


def presign(request: AWSRequest, expires: int = 60) -> Wire:
    SigV4QueryAuth(Credentials("test", "test"), "kms", "us-east-1", expires).add_auth(request)
    return to_wire(request)


def verifier(now: float = T0, services: frozenset[str] = frozenset({"kms"})) -> SigV4Verifier:
    return SigV4Verifier(lookup={"test": CRED}.get, clock=lambda: now, services=services)


def verify(wire: Wire, now: float = T0, **kwargs: frozenset[str]) -> Authenticated:
    return verifier(now, **kwargs).verify(
        wire.method, wire.path, wire.query, wire.headers, wire.body
    )


def rejected(wire: Wire, error: type[Exception], now: float = T0) -> str:
    with pytest.raises(error) as info:
        verify(wire, now)
    return str(info.value)


# ---------------------------------------------------------------- happy paths


def test_botocore_signed_kms_request_verifies() -> None:
    result = verify(sign())
    assert result == Authenticated(CRED, "us-east-1", "kms", "test")


def test_region_comes_from_the_credential_scope() -> None:
    assert verify(sign(region="eu-central-1")).region == "eu-central-1"


def test_other_configured_service_is_accepted() -> None:
    result = verify(sign(service="sts"), services=frozenset({"kms", "sts"}))
    assert result.service == "sts"


def test_header_names_are_case_insensitive() -> None:
    wire = sign()
    lowered = tuple((k.lower(), v) for k, v in wire.headers)
    upper = tuple((k.upper(), v) for k, v in wire.headers)
    assert verify(replace(wire, headers=lowered)).access_key_id == "test"
    assert verify(replace(wire, headers=upper)).access_key_id == "test"


def test_empty_body_verifies() -> None:
    assert verify(sign(kms_request(body=b""))).service == "kms"


@pytest.mark.parametrize("offset", [-300, -299, 0, 299, 300])
def test_clock_skew_within_five_minutes_passes(offset: int) -> None:
    assert verify(sign(), now=T0 + offset).access_key_id == "test"


def test_fractional_clock_is_accepted() -> None:
    assert verify(sign(), now=T0 + 300.9).access_key_id == "test"


# ---------------------------------------------------------------- tampering


def test_one_byte_body_change_is_rejected() -> None:
    wire = sign()
    tampered = replace(wire, body=wire.body.replace(b"alias/test", b"alias/tesu"))
    assert rejected(tampered, InvalidSignatureError) == MISMATCH


def test_signed_header_change_is_rejected() -> None:
    wire = sign().with_header("X-Amz-Target", "TrentService.Decrypt")
    assert rejected(wire, InvalidSignatureError) == MISMATCH


def test_method_change_is_rejected() -> None:
    assert rejected(replace(sign(), method="PUT"), InvalidSignatureError) == MISMATCH


def test_path_change_is_rejected() -> None:
    assert rejected(replace(sign(), path="/x"), InvalidSignatureError) == MISMATCH


def test_query_change_is_rejected() -> None:
    wire = sign(kms_request(url=URL + "?a=1"))
    assert verify(wire).service == "kms"
    assert rejected(replace(wire, query="a=2"), InvalidSignatureError) == MISMATCH
    assert rejected(replace(wire, query="a=1&b=2"), InvalidSignatureError) == MISMATCH


def test_added_query_on_unsigned_query_is_rejected() -> None:
    assert rejected(replace(sign(), query="x=1"), InvalidSignatureError) == MISMATCH


def test_date_change_is_rejected() -> None:
    wire = sign().with_header("X-Amz-Date", "20240820T235831Z")
    assert rejected(wire, InvalidSignatureError) == MISMATCH


def test_region_change_in_scope_is_rejected() -> None:
    wire = sign().with_auth("/us-east-1/", "/us-west-2/")
    assert rejected(wire, InvalidSignatureError) == MISMATCH


def test_signature_change_is_rejected() -> None:
    wire = sign()
    signature = wire.header("Authorization").rsplit("=", 1)[1]
    flipped = ("0" if signature[-1] != "0" else "1").join([signature[:-1], ""])
    assert rejected(wire.with_auth(signature, flipped), InvalidSignatureError) == MISMATCH


def test_non_ascii_signature_is_a_mismatch_not_a_crash() -> None:
    wire = sign()
    signature = wire.header("Authorization").rsplit("=", 1)[1]
    assert rejected(wire.with_auth(signature, "\u00e9" * 64), InvalidSignatureError) == MISMATCH


def test_signatures_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real: Callable[[bytes, bytes], bool] = sigv4.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(sigv4.hmac, "compare_digest", spy)
    verify(sign())
    assert len(calls) == 1


def test_unsigned_extra_header_does_not_matter() -> None:
    assert verify(sign().with_header("User-Agent", "curl/8")).service == "kms"


# ---------------------------------------------------------------- time window


def test_request_older_than_five_minutes_is_expired() -> None:
    message = rejected(sign(), InvalidSignatureError, now=T0 + 301)
    assert message == (
        "Signature expired: 20240820T235830Z is now earlier than 20240820T235831Z "
        "(20240821T000331Z - 5 min.)"
    )


def test_request_from_the_future_is_not_yet_current() -> None:
    message = rejected(sign(), InvalidSignatureError, now=T0 - 301)
    assert message == (
        "Signature not yet current: 20240820T235830Z is still later than 20240820T235829Z "
        "(20240820T235329Z + 5 min.)"
    )


def test_custom_skew_window_is_reported_in_minutes() -> None:
    v = SigV4Verifier(lookup={"test": CRED}.get, clock=lambda: T0 + 901, max_skew_seconds=900)
    wire = sign()
    with pytest.raises(InvalidSignatureError, match=r"- 15 min\.\)$"):
        v.verify(wire.method, wire.path, wire.query, wire.headers, wire.body)


def test_malformed_x_amz_date_is_incomplete() -> None:
    wire = sign().with_header("X-Amz-Date", "2024-08-20")
    assert rejected(wire, IncompleteSignatureError) == (
        "Date must be in ISO-8601 'basic format'. Got '2024-08-20'. "
        "See http://en.wikipedia.org/wiki/ISO_8601"
    )


def test_http_date_header_is_accepted_when_there_is_no_x_amz_date() -> None:
    # botocore signs with an RFC 2822 Date header instead of X-Amz-Date when one is set.
    wire = sign(kms_request(Date="placeholder"))
    assert not any(k.lower() == "x-amz-date" for k, _ in wire.headers)
    assert verify(wire).service == "kms"


# ---------------------------------------------------------------- identity


def test_unknown_access_key_is_unrecognized() -> None:
    message = rejected(sign(key="AKIDUNKNOWN"), UnrecognizedClientError)
    assert message == "The security token included in the request is invalid."


def test_missing_authorization_is_missing_token() -> None:
    with pytest.raises(MissingAuthenticationTokenError) as info:
        verify(sign().without_header("Authorization"))
    assert info.value.message == "Missing Authentication Token"
    assert info.value.code == "MissingAuthenticationTokenException"


# ---------------------------------------------------------------- malformed header


def test_garbage_authorization_lists_every_missing_part() -> None:
    message = rejected(sign().with_header("Authorization", "garbage"), IncompleteSignatureError)
    assert message == (
        "Authorization header requires 'Credential' parameter. "
        "Authorization header requires 'Signature' parameter. "
        "Authorization header requires 'SignedHeaders' parameter. "
        "Authorization=garbage"
    )


def test_missing_date_header_is_reported_with_the_other_parts() -> None:
    wire = sign().without_header("X-Amz-Date").with_header("Authorization", "AWS4-HMAC-SHA256")
    message = rejected(wire, IncompleteSignatureError)
    assert message.endswith(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' "
        "header. Authorization=AWS4-HMAC-SHA256"
    )


def test_token_without_equal_sign_is_incomplete() -> None:
    wire = sign().with_header("Authorization", "Bearer abc")
    assert rejected(wire, IncompleteSignatureError) == (
        "'abc' not a valid key=value pair (missing equal-sign) "
        "in Authorization header: 'Bearer abc'."
    )


def test_missing_signature_part_is_incomplete() -> None:
    wire = sign()
    header = wire.header("Authorization").rsplit(", Signature=", 1)[0]
    message = rejected(wire.with_header("Authorization", header), IncompleteSignatureError)
    assert message == f"Authorization header requires 'Signature' parameter. Authorization={header}"


def test_signed_header_absent_from_request_is_incomplete() -> None:
    wire = sign().with_auth("SignedHeaders=", "SignedHeaders=accept;")
    assert rejected(wire, IncompleteSignatureError) == (
        "'accept' is named as a SignedHeader, but it does not exist in the HTTP request."
    )


def test_host_must_be_signed() -> None:
    wire = sign().with_auth(";host;", ";")
    assert rejected(wire, IncompleteSignatureError) == sigv4.MSG_HOST_UNSIGNED


def test_x_amz_target_must_be_signed_when_present() -> None:
    wire = sign().with_auth(";x-amz-target", "")
    assert rejected(wire, IncompleteSignatureError) == (
        "'X-Amz-Target' must be a 'SignedHeader' in the AWS Authorization."
    )


def test_unsupported_algorithm_is_incomplete() -> None:
    wire = sign().with_auth("AWS4-HMAC-SHA256 ", "AWS4-HMAC-SHA512 ")
    message = rejected(wire, IncompleteSignatureError)
    assert message.startswith("Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA512'")


def test_malformed_credential_scope_is_incomplete() -> None:
    wire = sign().with_auth("/kms/aws4_request", "/kms")
    assert rejected(wire, IncompleteSignatureError) == (
        "Credential must have exactly 5 slash-delimited elements, "
        "e.g. keyid/date/region/service/term, got 'test/20240820/us-east-1/kms'"
    )


def test_duplicate_authorization_headers_are_incomplete() -> None:
    wire = sign()
    doubled = replace(wire, headers=(*wire.headers, ("Authorization", "x")))
    rejected(doubled, IncompleteSignatureError)


# ---------------------------------------------------------------- credential scope


def test_wrong_service_in_scope_is_rejected() -> None:
    message = rejected(sign(service="s3"), InvalidSignatureError)
    assert message == "Credential should be scoped to correct service: 'kms'. "


def test_scope_date_must_match_request_date() -> None:
    # Re-date the request across midnight (inside the skew window) without re-signing.
    wire = sign().with_header("X-Amz-Date", "20240821T000030Z")
    assert rejected(wire, InvalidSignatureError, now=T0 + 120) == (
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
        "from HTTP: '20240820' != '20240821', from '20240821T000030Z'."
    )


def test_scope_terminator_must_be_aws4_request() -> None:
    wire = sign().with_auth("/aws4_request", "/aws5_request")
    assert rejected(wire, InvalidSignatureError) == (
        "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws5_request'. "
    )


def test_empty_region_in_scope_is_rejected() -> None:
    message = rejected(sign(region=""), InvalidSignatureError)
    assert message == "Credential should be scoped to a valid region, not ''. "


# ---------------------------------------------------------------- canonicalisation


def test_repeated_header_values_are_joined_with_commas() -> None:
    request = kms_request()
    request.headers["X-Custom"] = "a"
    request.headers["X-Custom"] = "b"  # HTTPMessage appends a second value
    wire = sign(request)
    assert [v for k, v in wire.headers if k == "X-Custom"] == ["a", "b"]
    assert verify(wire).service == "kms"
    assert verify(wire.with_header("X-Custom", "a,b")).service == "kms"
    assert rejected(wire.with_header("X-Custom", "a"), InvalidSignatureError) == MISMATCH


def test_header_whitespace_is_trimmed_and_collapsed() -> None:
    wire = sign(kms_request(X_Custom="  a    b  c "))
    assert wire.header("X-Custom") == "  a    b  c "
    assert verify(wire).service == "kms"
    assert verify(wire.with_header("X-Custom", "a b c")).service == "kms"


@pytest.mark.parametrize(
    "path", ["/", "/a%20b/", "/some%2Fencoded", "/a/./b/../c", "//double//slash", "/~user/x-y_z."]
)
def test_paths_verify_as_botocore_encodes_them(path: str) -> None:
    wire = sign(kms_request(url=f"https://{HOST}{path}"))
    assert wire.path == path
    assert verify(wire).service == "kms"


def test_already_encoded_path_is_encoded_again() -> None:
    assert sigv4._canonical_uri("/a%20b/") == "/a%2520b/"
    assert sigv4._canonical_uri("/a/./b/../c") == "/a/c"
    assert sigv4._canonical_uri("") == "/"


@pytest.mark.parametrize("query", ["b=2&a=x%20y", "a=1&a=0", "flag", "k=%2F%3D~", "e="])
def test_queries_verify_as_botocore_signs_them(query: str) -> None:
    # botocore signs a URL's query pairs verbatim, so only canonically encoded queries
    # (what every SDK sends) can be compared; the server re-encodes per the spec.
    wire = sign(kms_request(url=f"{URL}?{query}"))
    assert verify(wire).service == "kms"


def test_query_is_decoded_then_reencoded_and_sorted() -> None:
    pairs = sigv4._parse_query("b=2&a=x%20y&c=%7e&d=a+b&=v&&")
    assert sigv4._canonical_query(pairs, drop_signature=False) == ("=v&a=x%20y&b=2&c=~&d=a%2Bb")


def test_matching_content_sha256_header_is_accepted() -> None:
    digest = hashlib.sha256(BODY).hexdigest()
    wire = sign(kms_request(X_Amz_Content_SHA256=digest))
    assert verify(wire).service == "kms"


def test_mismatching_content_sha256_header_is_rejected() -> None:
    wire = sign(kms_request(X_Amz_Content_SHA256=hashlib.sha256(b"other").hexdigest()))
    assert rejected(wire, InvalidSignatureError) == sigv4.MSG_CONTENT_SHA


# ---------------------------------------------------------------- presigned query auth


def get_request() -> AWSRequest:
    return AWSRequest(method="GET", url=f"{URL}?Action=ListKeys", data=b"", headers={})


def test_presigned_query_request_verifies() -> None:
    wire = presign(get_request())
    assert "X-Amz-Signature=" in wire.query
    assert verify(wire, now=T0 + 59) == Authenticated(CRED, "us-east-1", "kms", "test")


def test_presigned_query_request_expires_after_x_amz_expires() -> None:
    message = rejected(presign(get_request()), InvalidSignatureError, now=T0 + 61)
    assert message == (
        "Signature expired: 20240820T235830Z is now earlier than 20240820T235831Z "
        "(20240820T235931Z - 1 min.)"
    )


def test_presigned_query_tampering_is_rejected() -> None:
    wire = presign(get_request())
    tampered = replace(wire, query=wire.query.replace("ListKeys", "ListKeyz"))
    assert rejected(tampered, InvalidSignatureError) == MISMATCH


def test_presigned_query_missing_signature_is_incomplete() -> None:
    wire = presign(get_request())
    query = "&".join(p for p in wire.query.split("&") if not p.startswith("X-Amz-Signature="))
    assert rejected(replace(wire, query=query), IncompleteSignatureError) == (
        "AWS query-string parameters must include 'X-Amz-Signature'. "
        "Re-examine the query-string parameters."
    )


def test_header_and_query_auth_together_are_incomplete() -> None:
    wire = presign(get_request()).with_header("Authorization", sign().header("Authorization"))
    assert rejected(wire, IncompleteSignatureError) == sigv4.MSG_BOTH_AUTH
