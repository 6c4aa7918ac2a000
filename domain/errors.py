"""The one error tree: every failure a client can see, with AWS KMS's wire code."""

from __future__ import annotations


class KmsError(Exception):
    """A failure answered to the client as HTTP 400 ``{"__type": code, "message": ...}``."""

    code = "KMSInternalException"
    status = 400

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


# Request shape and protocol (AWS JSON 1.1 common errors).
class ValidationError(KmsError):
    code = "ValidationException"


class SerializationError(KmsError):
    code = "SerializationException"


class UnknownOperationError(KmsError):
    code = "UnknownOperationException"


class RequestTooLargeError(KmsError):
    code = "RequestEntityTooLargeException"
    status = 413


# Authentication (SigV4), https://docs.aws.amazon.com/IAM/latest/UserGuide/signature-v4-troubleshooting.html
class MissingAuthenticationTokenError(KmsError):
    code = "MissingAuthenticationTokenException"
    status = 403


class IncompleteSignatureError(KmsError):
    code = "IncompleteSignatureException"


class InvalidSignatureError(KmsError):
    code = "InvalidSignatureException"


class UnrecognizedClientError(KmsError):
    code = "UnrecognizedClientException"


class AccessDeniedError(KmsError):
    code = "AccessDeniedException"


# KMS modelled exceptions (botocore kms/2014-11-01 service model).
class NotFoundError(KmsError):
    code = "NotFoundException"


class DisabledError(KmsError):
    code = "DisabledException"


class InvalidStateError(KmsError):
    code = "KMSInvalidStateException"


class InvalidCiphertextError(KmsError):
    """Never carries detail: a tampered blob and a wrong context look the same."""

    code = "InvalidCiphertextException"

    def __init__(self) -> None:
        super().__init__("")


class IncorrectKeyError(KmsError):
    code = "IncorrectKeyException"

    def __init__(self) -> None:
        super().__init__(
            "The key ID in the request does not identify a CMK that can perform this operation."
        )


class InvalidKeyUsageError(KmsError):
    code = "InvalidKeyUsageException"


class AlreadyExistsError(KmsError):
    code = "AlreadyExistsException"


class InvalidAliasNameError(KmsError):
    code = "InvalidAliasNameException"


class InvalidMarkerError(KmsError):
    code = "InvalidMarkerException"


class InvalidArnError(KmsError):
    code = "InvalidArnException"


class TagError(KmsError):
    code = "TagException"


class LimitExceededError(KmsError):
    code = "LimitExceededException"


class MalformedPolicyDocumentError(KmsError):
    code = "MalformedPolicyDocumentException"


class UnsupportedOperationError(KmsError):
    code = "UnsupportedOperationException"


class DryRunOperationError(KmsError):
    code = "DryRunOperationException"

    def __init__(self) -> None:
        super().__init__("The request would have succeeded, but the DryRun option is set.")


class DependencyTimeoutError(KmsError):
    """The store cannot commit (locked, disk full, I/O error, database gone): nothing is
    answered without its record, so the request is refused, retryably. HTTP 503 and the
    text are the service model's (DependencyTimeoutException)."""

    code = "DependencyTimeoutException"
    status = 503

    def __init__(self) -> None:
        super().__init__(
            "The system timed out while trying to fulfill the request. You can retry the request."
        )


class ClientGoneError(KmsError):
    """The client closed its connection before its request arrived whole. Not a server
    failure and never seen by the client; its audit record says the client went away.
    499 is the usual proxy convention for "client closed request" (nginx)."""

    code = "ClientClosedRequest"
    status = 499

    def __init__(self) -> None:
        super().__init__("The client closed the connection before the request body arrived.")


class InternalError(KmsError):
    code = "KMSInternalException"
    status = 500


class InvalidGrantTokenError(KmsError):
    """A grant token that is malformed, altered, forged, or names no live grant."""

    code = "InvalidGrantTokenException"

    def __init__(self, message: str = "The grant token is not valid.") -> None:
        super().__init__(message)


class InvalidGrantIdError(KmsError):
    code = "InvalidGrantIdException"


class KmsInvalidSignatureError(KmsError):
    """Verify of a signature that does not match: AWS raises, with no message, rather
    than answering SignatureValid false (Verify API reference)."""

    code = "KMSInvalidSignatureException"

    def __init__(self) -> None:
        super().__init__("")


class KmsInvalidMacError(KmsError):
    """VerifyMac of a MAC that does not match; no message (VerifyMac API reference)."""

    code = "KMSInvalidMacException"

    def __init__(self) -> None:
        super().__init__("")


class ThrottlingError(KmsError):
    """A request quota was exceeded (requests-per-second.html); SDKs retry it."""

    code = "ThrottlingException"


# Imported key material (ImportKeyMaterial API reference, "Errors").
class ExpiredImportTokenError(KmsError):
    code = "ExpiredImportTokenException"

    def __init__(self, message: str = "The import token is expired.") -> None:
        super().__init__(message)


class InvalidImportTokenError(KmsError):
    code = "InvalidImportTokenException"

    def __init__(self, message: str = "The import token is not valid for this key.") -> None:
        super().__init__(message)


class IncorrectKeyMaterialError(KmsError):
    code = "IncorrectKeyMaterialException"
