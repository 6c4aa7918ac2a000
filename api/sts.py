"""STS GetCallerIdentity on the KMS port (query protocol, XML), so "who am I" tools work."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from aiohttp import web

from api.services import Call
from domain.errors import KmsError

STS_NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"


class InvalidActionError(KmsError):
    code = "InvalidAction"


def caller_identity(call: Call, body: bytes) -> web.Response:
    """https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html"""
    form = parse_qs(body.decode("utf-8", "replace"))
    action = form.get("Action", [""])[0]
    call.operation = f"sts:{action or 'Unknown'}"
    if action != "GetCallerIdentity":
        raise InvalidActionError(f"Could not find operation {action} for version 2011-06-15")
    ctx = call.context
    result = (
        f"<Arn>{escape(ctx.principal or '')}</Arn>"
        f"<UserId>{escape(user_id(ctx.principal or '', ctx.account))}</UserId>"
        f"<Account>{escape(ctx.account)}</Account>"
    )
    return xml_response(
        call,
        200,
        f'<GetCallerIdentityResponse xmlns="{STS_NAMESPACE}">'
        f"<GetCallerIdentityResult>{result}</GetCallerIdentityResult>"
        f"<ResponseMetadata><RequestId>{call.request_id}</RequestId></ResponseMetadata>"
        "</GetCallerIdentityResponse>",
    )


def user_id(principal: str, account: str) -> str:
    """AWS answers the account id for a root, a stable unique id ("AIDA…") otherwise."""
    if principal.endswith(":root"):
        return account
    digest = hashlib.sha256(principal.encode()).hexdigest().upper()
    prefix = "AROA" if ":role/" in principal else "AIDA"
    return prefix + digest[:17]


# The query-protocol services name authentication failures differently from JSON ones
# (STS API reference, "Common Errors").
_QUERY_ERROR_CODES = {
    "InvalidSignatureException": "SignatureDoesNotMatch",
    "UnrecognizedClientException": "InvalidClientTokenId",
    "IncompleteSignatureException": "IncompleteSignature",
    "MissingAuthenticationTokenException": "MissingAuthenticationToken",
}


def error_response(call: Call, error: KmsError) -> web.Response:
    code = _QUERY_ERROR_CODES.get(error.code, error.code)
    return xml_response(
        call,
        error.status,
        f'<ErrorResponse xmlns="{STS_NAMESPACE}"><Error><Type>Sender</Type>'
        f"<Code>{escape(code)}</Code><Message>{escape(error.message)}</Message></Error>"
        f"<RequestId>{call.request_id}</RequestId></ErrorResponse>",
    )


def xml_response(call: Call, status: int, text: str) -> web.Response:
    return web.Response(
        status=status,
        text=text,
        content_type="text/xml",
        headers={"x-amzn-RequestId": call.request_id},
    )
