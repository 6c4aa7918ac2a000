"""POST /: authenticate, route X-Amz-Target, validate, run, record, answer (AWS JSON 1.1)."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any
from uuid import uuid4

import orjson
from aiohttp import web

from api import cloudtrail, forensics, usage_api
from api.observability import CALL
from api.ops import OPERATIONS
from api.recording import request_record
from api.services import SERVICES, Call, Services
from api.sts import caller_identity
from api.sts import error_response as sts_error
from domain.errors import (
    AccessDeniedError,
    ClientGoneError,
    DependencyTimeoutError,
    InternalError,
    KmsError,
    RequestTooLargeError,
    SerializationError,
    UnknownOperationError,
    UnsupportedOperationError,
)
from domain.quotas import needs_key_spec
from domain.values import RequestContext
from eventstore.outage import store_unavailable

log = logging.getLogger("keyledger.api")
KMS_TARGET_PREFIX = "TrentService."
JSON_CONTENT_TYPES = ("application/x-amz-json-1.1", "application/json")


async def handle(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    call = Call(
        services=services,
        request_id=str(uuid4()),
        source_ip=request.remote,
        user_agent=request.headers.get("User-Agent"),
    )
    call.service = _claimed_service(request)
    request[CALL] = call
    try:
        _check_source(request, call)
        body = await _authenticate(request, call)
        if call.service == "sts":
            response = caller_identity(call, body)
            await services.records(request_record(call, None))
            return response
        other = _other_service(request)
        if other is not None:
            run, operation = other
            answer = await run(call, operation, _json(request, body))
            await services.records(request_record(call, None))
            return _respond(call, 200, answer)
        result = await _run(request, call, body)
        if not call.recorded:
            await services.records(request_record(call, None))
        services.reads.recovered()  # read, done and recorded: the store answers again
        return _respond(call, 200, services.wire.serialize_response(call.operation, result))
    except ClientGoneError as error:
        # One clear line, no traceback: the client aborted, the server did not fail.
        if services.wire.has_operation(target := _target(request)):
            call.operation = target
        log.warning(
            "client went away before its request body arrived (%s)",
            call.operation,
            extra={"request_id": call.request_id, "source_ip": call.source_ip},
        )
        return await _refuse(call, error)
    except KmsError as error:
        return await _refuse(call, error)
    except Exception as error:  # noqa: BLE001 - answered as AWS would; a bug is logged
        return await _refuse(call, _failure(call, error))


def _failure(call: Call, error: Exception) -> KmsError:
    """What no operation raised on purpose: a store that cannot be reached (an outage, one
    log line for all its requests, answered as AWS's retryable 503), or a bug."""
    if store_unavailable(error):
        call.services.reads.failed(error)
        return DependencyTimeoutError()
    log.error("unexpected failure", exc_info=error, extra={"request_id": call.request_id})
    return InternalError("An internal error occurred.")


async def not_found(request: web.Request) -> web.Response:
    """Any other method or path: KMS is one POST / endpoint; answer in its error shape."""
    call = Call(
        request.app[SERVICES], str(uuid4()), request.remote, request.headers.get("User-Agent")
    )
    error = UnknownOperationError(f"{request.method} {request.path} is not a KMS operation.")
    return await _refuse(call, error)


# Other JSON 1.1 services on this port, by X-Amz-Target prefix; anything else is KMS's.
_TARGETS: dict[str, Callable[[Call, str, object], Awaitable[dict[str, Any]]]] = {
    cloudtrail.CLOUDTRAIL_TARGET_PREFIX: cloudtrail.run,
    forensics.AUDIT_TARGET_PREFIX: forensics.run,
    usage_api.USAGE_TARGET_PREFIX: usage_api.run,
}


def _other_service(
    request: web.Request,
) -> tuple[Callable[[Call, str, object], Awaitable[dict[str, Any]]], str] | None:
    target = request.headers.get("X-Amz-Target", "")
    for prefix, run in _TARGETS.items():
        if target.startswith(prefix):
            return run, target.removeprefix(prefix)
    return None


def _on_unix_socket(request: web.Request) -> bool:
    transport = request.transport
    return transport is not None and isinstance(transport.get_extra_info("sockname"), str)


def _check_source(request: web.Request, call: Call) -> None:
    """``allowed_source_ips``: everything from elsewhere is refused before authentication
    (and recorded, like every refusal). The unix socket is local, so always allowed."""
    allowed = call.services.allowed_source_ips
    if not allowed or _on_unix_socket(request):
        return
    try:
        address = ipaddress.ip_address(call.source_ip or "")
    except ValueError:
        address = None
    if address is None or not any(address in network for network in allowed):
        raise AccessDeniedError(
            f"Requests from {call.source_ip} are not accepted by this endpoint: the source "
            "address is outside its allowed_source_ips."
        )


def _claimed_service(request: web.Request) -> str:
    """The service a request's credential scope names, before it is verified: only
    to answer an STS client's authentication failure in STS's XML error shape."""
    authorization = request.headers.get("Authorization", "")
    return "sts" if "/sts/aws4_request" in authorization else "kms"


async def _authenticate(request: web.Request, call: Call) -> bytes:
    """Read the body and verify its signature; the request context follows from it."""
    services = call.services
    body = await _read_body(request, services.max_body_bytes)
    auth = services.verifier.verify(
        request.method,
        request.raw_path.split("?", 1)[0],
        request.query_string,
        [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers],
        body,
    )
    call.ctx = RequestContext(
        principal=auth.credential.principal_arn,
        account=auth.credential.account_id,
        region=auth.region,
        request_id=call.request_id,
        source_ip=call.source_ip,
        user_agent=call.user_agent,
        access_key_id=auth.access_key_id,
        identity=services.directory.caller(auth.access_key_id).identity(
            auth.region,
            call.source_ip,
            # aws:SecureTransport. request.secure builds the whole URL each time (3% of an
            # Encrypt's samples); the scheme alone comes from the transport's TLS context.
            secure_transport=request.scheme == "https",
            source_vpce=services.vpc_endpoint_id if _on_unix_socket(request) else None,
        ),
    )
    call.service = auth.service
    return body


async def _run(request: web.Request, call: Call, body: bytes) -> dict[str, Any]:
    services = call.services
    call.operation = _operation(request, services)
    call.ctx = replace(call.context, operation=call.operation)
    handler = OPERATIONS.get(call.operation)
    if handler is None:
        raise UnsupportedOperationError(f"{call.operation} is not supported by keyledger yet.")
    call.params = services.wire.parse_request(call.operation, _json(request, body))
    if not needs_key_spec(call.operation):  # the others wait until their key is known
        ctx = call.context
        services.throttle.take(
            ctx.account, ctx.region, call.operation, pair_spec=call.params.get("KeyPairSpec")
        )
    tokens = call.params.get("GrantTokens")
    if tokens:
        # Authenticated up front, whatever key they name: a forged or altered token is
        # refused even where the policy alone would allow the request.
        refs = tuple(services.ledger.tokens.read(token) for token in tokens)
        call.ctx = replace(call.context, grant_tokens=refs)
    return await handler(call)


async def _read_body(request: web.Request, limit: int) -> bytes:
    """Read at most ``limit`` bytes: a huge body is refused before it is buffered."""
    if request.content_length is not None and request.content_length > limit:
        raise RequestTooLargeError(f"Request body exceeds {limit} bytes.")
    chunks, size = [], 0
    try:
        while chunk := await request.content.read(limit + 1 - size):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise RequestTooLargeError(f"Request body exceeds {limit} bytes.")
    except ConnectionError:  # aiohttp: "Connection lost" before Content-Length bytes came
        raise ClientGoneError from None
    return b"".join(chunks)


def _target(request: web.Request) -> str:
    return request.headers.get("X-Amz-Target", "").removeprefix(KMS_TARGET_PREFIX)


def _operation(request: web.Request, services: Services) -> str:
    target = request.headers.get("X-Amz-Target", "")
    operation = target.removeprefix(KMS_TARGET_PREFIX)
    if not target.startswith(KMS_TARGET_PREFIX) or not services.wire.has_operation(operation):
        raise UnknownOperationError(f"Unknown operation {target or '(no X-Amz-Target)'}")
    return operation


def _json(request: web.Request, body: bytes) -> object:
    if request.content_type not in JSON_CONTENT_TYPES:
        raise SerializationError(f"Unsupported content type: {request.content_type}")
    try:
        return orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        raise SerializationError("Malformed JSON in the request body.") from None


async def _refuse(call: Call, error: KmsError) -> web.Response:
    """Every refusal is recorded before it is answered; if even that fails, say so."""
    call.outcome = error.code
    try:
        if not (isinstance(error, DependencyTimeoutError) and call.services.records.unavailable):
            await call.services.records(request_record(call, error))
        # else: the record cannot be written; the writer logged the incident once
    except DependencyTimeoutError as failed:
        error = failed
        call.outcome = error.code
    except Exception:
        log.exception("audit record failed", extra={"request_id": call.request_id})
        error = InternalError("An internal error occurred.")
        call.outcome = error.code
    if call.service == "sts":
        return sts_error(call, error)
    return _respond(call, error.status, error_body(error))


def error_body(error: KmsError) -> dict[str, str]:
    """AWS JSON 1.1 error body. Errors AWS sends without detail (InvalidCiphertext,
    KMSInvalidSignature, KMSInvalidMac, ...) have no ``message`` member at all, as recorded
    from AWS, rather than an empty one."""
    if not error.message:
        return {"__type": error.code}
    return {"__type": error.code, "message": error.message}


def _respond(call: Call, status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(body),
        content_type="application/x-amz-json-1.1",
        headers={"x-amzn-RequestId": call.request_id},
    )
