"""Alias aggregate and alias naming rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.alias import Alias
from domain.errors import AlreadyExistsError, InvalidAliasNameError, ValidationError
from domain.values import check_alias_name
from tests.unit.test_cmk import CTX

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_alias_id_is_a_function_of_account_region_and_name() -> None:
    a = Alias.id_for("000000000000", "us-east-1", "alias/x")
    assert a == Alias.id_for("000000000000", "us-east-1", "alias/x")
    assert a != Alias.id_for("000000000000", "us-west-2", "alias/x")
    assert a != Alias.id_for("111111111111", "us-east-1", "alias/x")


def test_a_live_alias_cannot_be_created_again() -> None:
    alias = Alias.create("alias/x", "k1", CTX, NOW)
    with pytest.raises(AlreadyExistsError) as refused:
        alias.recreate("k2", CTX, NOW)
    assert refused.value.message == (
        "An alias with the name arn:aws:kms:us-east-1:000000000000:alias/x already exists"
    )


def test_a_deleted_alias_can_be_created_again_with_a_new_creation_date() -> None:
    alias = Alias.create("alias/x", "k1", CTX, NOW)
    alias.delete(CTX, NOW + timedelta(seconds=1))
    alias.recreate("k2", CTX, NOW + timedelta(seconds=2))
    assert not alias.deleted
    assert alias.target_key_id == "k2"
    assert alias.creation_date == NOW + timedelta(seconds=2)


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("nope", ValidationError),
        ("alias/has space", InvalidAliasNameError),
        ("alias/a:b", InvalidAliasNameError),
        ("alias/aws/s3", InvalidAliasNameError),
    ],
)
def test_alias_names_are_checked_as_kms_does(name: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        check_alias_name(name, creating=True)


def test_a_plain_alias_name_is_accepted() -> None:
    check_alias_name("alias/My_Key-1/x", creating=True)
