"""STS GetCallerIdentity on the KMS port, in the query protocol's shapes."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.support import ThreadServer


def test_get_caller_identity_names_the_default_root(server: ThreadServer) -> None:
    identity = server.client("sts").get_caller_identity()
    assert identity["Arn"] == "arn:aws:iam::000000000000:root"
    assert identity["Account"] == identity["UserId"] == "000000000000"
    assert identity["ResponseMetadata"]["RequestId"]


@pytest.mark.parametrize(
    ("credentials", "code"),
    [
        ({"aws_secret_access_key": "wrong"}, "SignatureDoesNotMatch"),
        ({"aws_access_key_id": "nobody"}, "InvalidClientTokenId"),
    ],
)
def test_sts_authentication_failures_are_sts_errors(
    server: ThreadServer, credentials: dict[str, str], code: str
) -> None:
    with pytest.raises(ClientError) as refused:
        server.client("sts", **credentials).get_caller_identity()
    assert refused.value.response["Error"]["Code"] == code
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
