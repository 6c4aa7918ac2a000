"""KeyId parsing: ids, key ARNs, alias names and alias ARNs, with AWS's NotFound texts."""

from __future__ import annotations

import pytest

from domain.errors import NotFoundError
from domain.values import parse_key_ref
from tests.unit.test_cmk import CTX

KEY = "1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.mark.parametrize(
    ("value", "key_id", "alias"),
    [
        (KEY, KEY, None),
        (f"arn:aws:kms:us-east-1:000000000000:key/{KEY}", KEY, None),
        ("alias/app", None, "alias/app"),
        ("arn:aws:kms:us-east-1:000000000000:alias/app", None, "alias/app"),
    ],
)
def test_every_form_of_key_id_parses(value: str, key_id: str | None, alias: str | None) -> None:
    ref = parse_key_ref(value, CTX)
    assert (ref.key_id, ref.alias_name, ref.account, ref.region) == (
        key_id,
        alias,
        "000000000000",
        "us-east-1",
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("fake-key-id", "Invalid keyId 'fake-key-id'"),
        (KEY.replace("-", ""), f"Invalid keyId '{KEY.replace('-', '')}'"),
        (f"arn:aws:kms:us-west-2:000000000000:key/{KEY}", "Invalid arn us-west-2"),
    ],
)
def test_malformed_key_ids_answer_aws_texts(value: str, message: str) -> None:
    with pytest.raises(NotFoundError) as refused:
        parse_key_ref(value, CTX)
    assert refused.value.message == message


def test_management_operations_refuse_aliases() -> None:
    with pytest.raises(NotFoundError):
        parse_key_ref("alias/app", CTX, allow_alias=False)
