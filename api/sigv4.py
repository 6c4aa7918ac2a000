"""Server-side AWS Signature Version 4 verification (header and presigned-query forms)."""

# Algorithm: https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
# Error texts: https://docs.aws.amazon.com/IAM/latest/UserGuide/signature-v4-troubleshooting.html
# and the messages AWS JSON services return in practice (security.md section 5.2).
#
# Check order follows what AWS JSON services are observed to do: parameter syntax,
# date format and skew, signed-header rules, algorithm, credential shape, credential
# scope, access key, then the signature itself.

from __future__ import annotations

import functools
import hashlib
import hmac
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote, unquote_to_bytes

from domain.errors import (
    IncompleteSignatureError,
    InvalidSignatureError,
    MissingAuthenticationTokenError,
    UnrecognizedClientError,
)

ALGORITHM = "AWS4-HMAC-SHA256"
TERMINATOR = "aws4_request"
ISO_BASIC = "%Y%m%dT%H%M%SZ"
MAX_PRESIGN_EXPIRES = 604800  # one week, the SigV4 presigned-URL ceiling

_ISO_BASIC_RE = re.compile(r"\d{8}T\d{6}Z")
_UNRESERVED = "-_.~"  # RFC 3986 unreserved marks; letters and digits are always kept

_Q_ALGORITHM = "X-Amz-Algorithm"
_Q_CREDENTIAL = "X-Amz-Credential"
_Q_DATE = "X-Amz-Date"
_Q_EXPIRES = "X-Amz-Expires"
_Q_SIGNED_HEADERS = "X-Amz-SignedHeaders"
_Q_SIGNATURE = "X-Amz-Signature"
_QUERY_AUTH_MARKERS = (_Q_ALGORITHM, _Q_CREDENTIAL, _Q_SIGNATURE)

# Headers that change request semantics and so must be covered by the signature when
# present (security.md 5.4: botocore always signs x-amz-target).
_MUST_SIGN_IF_PRESENT = {"x-amz-target": "X-Amz-Target"}

MSG_NO_AUTH = "Missing Authentication Token"
MSG_UNRECOGNIZED = "The security token included in the request is invalid."
MSG_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
MSG_BOTH_AUTH = (
    "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter "
    "or the Authorization header should be specified"
)
MSG_HOST_UNSIGNED = "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
_SIGNATURE_SHAPE = re.compile(r"^[0-9a-f]{64}$")
MSG_CONTENT_SHA = "The provided 'x-amz-content-sha256' header does not match what was computed."


@dataclass(frozen=True)
class Credential:
    access_key_id: str
    secret_access_key: str | None  # None: not known (open credentials), shape-checked only
    principal_arn: str
    account_id: str


@dataclass(frozen=True)
class Authenticated:
    credential: Credential
    region: str
    service: str
    access_key_id: str


@dataclass(frozen=True)
class _AuthParams:
    """The authentication parameters of one request, from the header or the query."""

    algorithm: str
    credential: str
    signed_headers: str
    signature: str
    raw_date: str
    date_may_be_http: bool  # came from the HTTP Date header (RFC 7231 format allowed)
    expires: int | None  # X-Amz-Expires of a presigned request
    from_query: bool


@dataclass(frozen=True)
class _Scope:
    access_key_id: str
    date: str
    region: str
    service: str
    terminator: str

    def string(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/{self.terminator}"


# ---------------------------------------------------------------- request parsing


def _collect_headers(headers: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Lower-case names; repeated headers keep every value in arrival order."""
    collected: dict[str, list[str]] = {}
    for name, value in headers:
        collected.setdefault(name.strip().lower(), []).append(value)
    return collected


def _parse_query(raw_query: str) -> list[tuple[str, str]]:
    """Raw pairs re-encoded canonically: percent-decode, then encode RFC 3986 style."""
    pairs = []
    for piece in raw_query.split("&"):
        if not piece:
            continue
        key, _, value = piece.partition("=")
        pairs.append((_encode(unquote_to_bytes(key)), _encode(unquote_to_bytes(value))))
    return pairs


def _encode(data: bytes | str) -> str:
    # "URI-encode each parameter name and value" (create-signed-request.html, step 1)
    return quote(data, safe=_UNRESERVED)


def _query_values(query: list[tuple[str, str]], name: str) -> list[str]:
    key = _encode(name)
    return [unquote(value) for k, value in query if k == key]


def _has_query_auth(query: list[tuple[str, str]]) -> bool:
    return any(_query_values(query, marker) for marker in _QUERY_AUTH_MARKERS)


def _extract_auth(header_map: dict[str, list[str]], query: list[tuple[str, str]]) -> _AuthParams:
    by_header = "authorization" in header_map
    by_query = _has_query_auth(query)
    if by_header and by_query:
        # "You can't add authentication information using both" (create-signed-request.html)
        raise IncompleteSignatureError(MSG_BOTH_AUTH)
    if by_query:
        return _auth_from_query(query)
    if by_header:
        return _auth_from_header(header_map)
    raise MissingAuthenticationTokenError(MSG_NO_AUTH)


def _split_authorization(value: str) -> tuple[str, dict[str, str]]:
    """`ALG Key=Val, Key=Val, ...`; AWS tokenizes on commas and whitespace."""
    algorithm, _, rest = value.strip().partition(" ")
    params: dict[str, str] = {}
    for token in re.split(r"[\s,]+", rest):
        if not token:
            continue
        key, sep, val = token.partition("=")
        if not sep:
            raise IncompleteSignatureError(
                f"'{token}' not a valid key=value pair (missing equal-sign) "
                f"in Authorization header: '{value}'."
            )
        if key in params:
            raise IncompleteSignatureError(
                f"Duplicate '{key}' parameter in Authorization header: '{value}'."
            )
        params[key] = val
    return algorithm, params


def _auth_from_header(header_map: dict[str, list[str]]) -> _AuthParams:
    values = header_map["authorization"]
    if len(values) != 1:
        raise IncompleteSignatureError("Only one Authorization header is allowed.")
    algorithm, params = _split_authorization(values[0])
    date_name = "x-amz-date" if "x-amz-date" in header_map else "date"
    problems = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if name not in params
    ]
    if date_name not in header_map:
        problems.append(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        )
    if problems:
        raise IncompleteSignatureError(" ".join(problems) + f" Authorization={values[0]}")
    return _AuthParams(
        algorithm=algorithm,
        credential=params["Credential"],
        signed_headers=params["SignedHeaders"],
        signature=params["Signature"],
        raw_date=",".join(header_map[date_name]),
        date_may_be_http=date_name == "date",
        expires=None,
        from_query=False,
    )


def _single_query_value(query: list[tuple[str, str]], name: str) -> str | None:
    values = _query_values(query, name)
    if len(values) > 1:
        raise IncompleteSignatureError(f"Duplicate '{name}' query-string parameter.")
    return values[0] if values else None


def _auth_from_query(query: list[tuple[str, str]]) -> _AuthParams:
    # Presigned form: https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
    names = (_Q_ALGORITHM, _Q_CREDENTIAL, _Q_SIGNATURE, _Q_SIGNED_HEADERS, _Q_DATE)
    found = {name: _single_query_value(query, name) for name in names}
    missing = [
        f"AWS query-string parameters must include '{name}'."
        for name, value in found.items()
        if value is None
    ]
    if missing:
        raise IncompleteSignatureError(
            " ".join(missing) + " Re-examine the query-string parameters."
        )
    return _AuthParams(
        algorithm=found[_Q_ALGORITHM] or "",
        credential=found[_Q_CREDENTIAL] or "",
        signed_headers=found[_Q_SIGNED_HEADERS] or "",
        signature=found[_Q_SIGNATURE] or "",
        raw_date=found[_Q_DATE] or "",
        date_may_be_http=False,
        expires=_parse_expires(_single_query_value(query, _Q_EXPIRES)),
        from_query=True,
    )


def _parse_expires(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit():
        raise IncompleteSignatureError("X-Amz-Expires should be a number")
    expires = int(raw)
    if expires > MAX_PRESIGN_EXPIRES:
        raise IncompleteSignatureError(
            "X-Amz-Expires must be less than a week (in seconds) that is 604800"
        )
    return expires


# ---------------------------------------------------------------- time


def _format_time(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime(ISO_BASIC)


def _parse_iso_basic(value: str) -> datetime:
    """YYYYMMDDTHHMMSSZ by slicing: strptime costs more than the rest of a request's
    signature check (the format is already fixed by _ISO_BASIC_RE)."""
    return datetime(
        int(value[0:4]),
        int(value[4:6]),
        int(value[6:8]),
        int(value[9:11]),
        int(value[11:13]),
        int(value[13:15]),
        tzinfo=UTC,
    )


def _parse_request_time(raw: str, may_be_http: bool) -> tuple[int, str]:
    """Return (epoch seconds, YYYYMMDDTHHMMSSZ); see signing-elements.html "Date"."""
    value = raw.strip()
    try:
        if _ISO_BASIC_RE.fullmatch(value):
            # Already in the canonical form: formatting it again would give it back.
            return math.floor(_parse_iso_basic(value).timestamp()), value
        if may_be_http:
            parsed = parsedate_to_datetime(value)
        else:
            raise ValueError(value)
    except (TypeError, ValueError, OverflowError):
        raise IncompleteSignatureError(
            f"Date must be in ISO-8601 'basic format'. Got '{raw}'. "
            "See http://en.wikipedia.org/wiki/ISO_8601"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    epoch = math.floor(parsed.timestamp())
    return epoch, _format_time(epoch)


def _span(seconds: int) -> str:
    return f"{seconds // 60} min." if seconds % 60 == 0 else f"{seconds} sec."


# ---------------------------------------------------------------- signed headers, scope


def _signed_header_names(params: _AuthParams, header_map: dict[str, list[str]]) -> list[str]:
    names = sorted({n.strip().lower() for n in params.signed_headers.split(";") if n.strip()})
    if "host" not in names:
        raise IncompleteSignatureError(MSG_HOST_UNSIGNED)
    for lower, display in _MUST_SIGN_IF_PRESENT.items():
        if lower in header_map and lower not in names:
            raise IncompleteSignatureError(
                f"'{display}' must be a 'SignedHeader' in the AWS Authorization."
            )
    for name in names:
        if name not in header_map:
            raise IncompleteSignatureError(
                f"'{name}' is named as a SignedHeader, but it does not exist in the HTTP request."
            )
    return names


def _parse_scope(params: _AuthParams) -> _Scope:
    if params.algorithm != ALGORITHM:
        raise IncompleteSignatureError(
            f"Unsupported AWS 'algorithm': '{params.algorithm}' (only {ALGORITHM} for now). "
        )
    parts = params.credential.split("/")
    if len(parts) != 5:
        raise IncompleteSignatureError(
            "Credential must have exactly 5 slash-delimited elements, "
            f"e.g. keyid/date/region/service/term, got '{params.credential}'"
        )
    return _Scope(*parts)


def _scope_problems(scope: _Scope, amz_date: str, services: frozenset[str]) -> list[str]:
    # Credential-scope errors, signature-v4-troubleshooting.html "Credential scope"
    problems = []
    if not scope.region:
        problems.append(f"Credential should be scoped to a valid region, not '{scope.region}'. ")
    if scope.service not in services:
        expected = " or ".join(f"'{s}'" for s in sorted(services))
        problems.append(f"Credential should be scoped to correct service: {expected}. ")
    if scope.terminator != TERMINATOR:
        problems.append(
            f"Credential should be scoped with a valid terminator: '{TERMINATOR}', "
            f"not '{scope.terminator}'. "
        )
    if scope.date != amz_date[:8]:
        problems.append(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{scope.date}' != '{amz_date[:8]}', from '{amz_date}'."
        )
    return problems


# ---------------------------------------------------------------- canonical request


def _canonical_uri(raw_path: str) -> str:
    """Non-S3 rule: remove dot segments and empty segments, then encode each segment.

    The path is taken undecoded, so an already-encoded segment is encoded a second time,
    as every AWS SDK does for non-S3 services (create-signed-request.html, step 1).
    """
    segments: list[str] = []
    for segment in raw_path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(_encode(segment))
    path = "/" + "/".join(segments)
    if segments and raw_path.endswith("/"):
        path += "/"
    return path


def _canonical_query(query: list[tuple[str, str]], drop_signature: bool) -> str:
    # "Sort the encoded parameters by parameter name" (create-signed-request.html, step 1)
    signature_key = _encode(_Q_SIGNATURE)
    kept = [(k, v) for k, v in query if not (drop_signature and k == signature_key)]
    return "&".join(f"{k}={v}" for k, v in sorted(kept))


def _canonical_headers(header_map: dict[str, list[str]], names: list[str]) -> str:
    # Trim each value, collapse inner whitespace runs, join repeats with commas.
    lines = []
    for name in names:
        value = ",".join(" ".join(v.split()) for v in header_map[name])
        lines.append(f"{name}:{value}\n")
    return "".join(lines)


def _payload_hash(body: bytes, header_map: dict[str, list[str]]) -> str:
    """Hash of the received bytes; a sent x-amz-content-sha256 must agree with it."""
    computed = hashlib.sha256(body).hexdigest()
    claimed = header_map.get("x-amz-content-sha256")
    if claimed is not None and ",".join(claimed).strip() != computed:
        raise InvalidSignatureError(MSG_CONTENT_SHA)
    return computed


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.digest(key, message.encode("utf-8"), "sha256")


@functools.lru_cache(maxsize=1024)
def _signing_key(secret: str, date: str, region: str, service: str, terminator: str) -> bytes:
    """Derive the signing key (create-signed-request.html, step 4); it changes once a day
    per credential and scope, so it is computed once and kept."""
    key = _hmac(f"AWS4{secret}".encode(), date)
    for part in (region, service, terminator):
        key = _hmac(key, part)
    return key


def _signature(secret: str, scope: _Scope, string_to_sign: str) -> str:
    key = _signing_key(secret, scope.date, scope.region, scope.service, scope.terminator)
    return hmac.digest(key, string_to_sign.encode("utf-8"), "sha256").hex()


# ---------------------------------------------------------------- verifier


class SigV4Verifier:
    """Authenticate one request; every failure raises the AWS-shaped KmsError."""

    def __init__(
        self,
        lookup: Callable[[str], Credential | None],
        clock: Callable[[], float],
        services: frozenset[str] = frozenset({"kms"}),
        max_skew_seconds: int = 300,
    ) -> None:
        self._lookup = lookup
        self._clock = clock
        self._services = services
        self._max_skew = max_skew_seconds

    def verify(
        self,
        method: str,
        raw_path: str,
        raw_query: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
    ) -> Authenticated:
        header_map = _collect_headers(headers)
        query = _parse_query(raw_query)
        params = _extract_auth(header_map, query)
        amz_date = self._check_time(params)
        names = _signed_header_names(params, header_map)
        scope = _parse_scope(params)
        problems = _scope_problems(scope, amz_date, self._services)
        if problems:
            raise InvalidSignatureError("".join(problems))
        credential = self._lookup(scope.access_key_id)
        if credential is None:
            raise UnrecognizedClientError(MSG_UNRECOGNIZED)
        canonical = "\n".join(
            [
                method,
                _canonical_uri(raw_path),
                _canonical_query(query, drop_signature=params.from_query),
                _canonical_headers(header_map, names),
                ";".join(names),
                _payload_hash(body, header_map),
            ]
        )
        self._check_signature(credential, scope, amz_date, canonical, params.signature)
        return Authenticated(credential, scope.region, scope.service, scope.access_key_id)

    def _check_time(self, params: _AuthParams) -> str:
        """Enforce the +/- skew window (a presigned request lives for X-Amz-Expires)."""
        # "a request must reach AWS within five minutes of the time stamp"
        # (reference_aws-signing.html)
        request_time, amz_date = _parse_request_time(params.raw_date, params.date_may_be_http)
        now = math.floor(self._clock())
        past = params.expires if params.expires is not None else self._max_skew
        if request_time < now - past:
            raise InvalidSignatureError(
                f"Signature expired: {amz_date} is now earlier than "
                f"{_format_time(now - past)} ({_format_time(now)} - {_span(past)})"
            )
        if request_time > now + self._max_skew:
            raise InvalidSignatureError(
                f"Signature not yet current: {amz_date} is still later than "
                f"{_format_time(now + self._max_skew)} "
                f"({_format_time(now)} + {_span(self._max_skew)})"
            )
        return amz_date

    def _check_signature(
        self, credential: Credential, scope: _Scope, amz_date: str, canonical: str, given: str
    ) -> None:
        # String to sign (create-signed-request.html, step 3); constant-time compare.
        if credential.secret_access_key is None:
            if not _SIGNATURE_SHAPE.match(given):
                raise InvalidSignatureError(MSG_MISMATCH)
            return
        digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        string_to_sign = f"{ALGORITHM}\n{amz_date}\n{scope.string()}\n{digest}"
        expected = _signature(credential.secret_access_key, scope, string_to_sign)
        if not hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace")):
            raise InvalidSignatureError(MSG_MISMATCH)
