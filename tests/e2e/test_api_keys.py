"""Key management through boto3: CreateKey, DescribeKey, ListKeys, policies, states."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from botocore.exceptions import ClientError

from tests.support import ThreadServer, refused, unvalidated

ACCOUNT = "000000000000"
REGION = "us-east-1"
ARN_PREFIX = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/"


def test_create_key_returns_the_full_key_metadata_of_a_symmetric_key(kms: Any) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    metadata = kms.create_key()["KeyMetadata"]
    after = datetime.now(UTC) + timedelta(seconds=5)

    key_id = metadata["KeyId"]
    assert str(UUID(key_id)) == key_id
    assert metadata["Arn"] == ARN_PREFIX + key_id
    assert metadata["AWSAccountId"] == ACCOUNT
    assert isinstance(metadata["CreationDate"], datetime)
    assert before <= metadata["CreationDate"] <= after
    assert metadata["Enabled"] is True
    assert metadata["KeyState"] == "Enabled"
    assert metadata["Description"] == ""
    assert metadata["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert metadata["KeySpec"] == "SYMMETRIC_DEFAULT"
    assert metadata["CustomerMasterKeySpec"] == "SYMMETRIC_DEFAULT"
    assert metadata["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"]
    assert metadata["Origin"] == "AWS_KMS"
    assert metadata["KeyManager"] == "CUSTOMER"
    assert metadata["MultiRegion"] is False
    assert re.fullmatch(r"[0-9a-f]{64}", metadata["CurrentKeyMaterialId"])
    for absent in ("DeletionDate", "PendingDeletionWindowInDays", "SigningAlgorithms"):
        assert absent not in metadata


def test_describe_key_returns_what_create_key_returned(kms: Any) -> None:
    created = kms.create_key(Description="payments")["KeyMetadata"]
    described = kms.describe_key(KeyId=created["KeyId"])["KeyMetadata"]
    assert described == created
    assert described["Description"] == "payments"


def test_each_key_gets_its_own_id_and_key_material(kms: Any) -> None:
    first = kms.create_key()["KeyMetadata"]
    second = kms.create_key()["KeyMetadata"]
    assert first["KeyId"] != second["KeyId"]
    assert first["CurrentKeyMaterialId"] != second["CurrentKeyMaterialId"]


def test_tags_given_at_creation_are_listed_by_list_resource_tags(kms: Any) -> None:
    tags = [{"TagKey": "team", "TagValue": "payments"}, {"TagKey": "env", "TagValue": ""}]
    key_id = kms.create_key(Tags=tags)["KeyMetadata"]["KeyId"]
    listed = kms.list_resource_tags(KeyId=key_id)
    assert {t["TagKey"]: t["TagValue"] for t in listed["Tags"]} == {"team": "payments", "env": ""}
    assert listed["Truncated"] is False


def test_a_key_created_without_a_policy_gets_the_default_key_policy(kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    answer = kms.get_key_policy(KeyId=key_id, PolicyName="default")
    assert answer["PolicyName"] == "default"
    policy = json.loads(answer["Policy"])
    assert policy["Version"] == "2012-10-17"
    assert policy["Id"] == "key-default-1"
    [statement] = policy["Statement"]
    assert statement == {
        "Sid": "Enable IAM User Permissions",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }


def test_get_key_policy_without_a_policy_name_returns_the_default_policy(kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    named = kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]
    answer = kms.get_key_policy(KeyId=key_id)
    assert answer["Policy"] == named
    assert answer["PolicyName"] == "default"


def test_a_policy_given_at_creation_is_returned_verbatim(kms: Any) -> None:
    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Id": "custom",
            "Statement": [
                {
                    "Sid": "Root",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                }
            ],
        },
        indent=3,
    )
    key_id = kms.create_key(Policy=policy)["KeyMetadata"]["KeyId"]
    assert kms.get_key_policy(KeyId=key_id)["Policy"] == policy


def test_a_policy_that_is_not_a_json_object_is_a_malformed_policy_document(kms: Any) -> None:
    for policy in ("not json", "[1, 2]", '{"Version": "2012-10-17"}'):
        code, _ = refused(kms.create_key, Policy=policy)
        assert code == "MalformedPolicyDocumentException", policy
    assert kms.list_keys()["Keys"] == []


def test_get_key_policy_with_another_policy_name_is_not_found(kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    code, message = refused(kms.get_key_policy, KeyId=key_id, PolicyName="other")
    assert (code, message) == ("NotFoundException", "No such policy exists")


def test_list_key_policies_names_only_the_default_policy(kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    answer = kms.list_key_policies(KeyId=key_id)
    assert answer["PolicyNames"] == ["default"]
    assert answer["Truncated"] is False
    assert "NextMarker" not in answer


def test_list_keys_pages_through_every_key_exactly_once(kms: Any) -> None:
    created = {kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(5)}
    seen: list[str] = []
    pages: list[dict[str, Any]] = []
    params: dict[str, Any] = {"Limit": 2}
    while True:
        page = kms.list_keys(**params)
        pages.append(page)
        for entry in page["Keys"]:
            assert entry["KeyArn"] == ARN_PREFIX + entry["KeyId"]
            seen.append(entry["KeyId"])
        if not page["Truncated"]:
            assert "NextMarker" not in page
            break
        assert page["NextMarker"]
        params["Marker"] = page["NextMarker"]
    assert [len(p["Keys"]) for p in pages] == [2, 2, 1]
    assert sorted(seen) == sorted(created)
    assert len(seen) == len(set(seen))


def test_list_keys_paginator_of_boto3_sees_every_key(kms: Any) -> None:
    created = {kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(3)}
    pages = kms.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 1})
    listed = [entry["KeyId"] for page in pages for entry in page["Keys"]]
    assert sorted(listed) == sorted(created)


def test_list_keys_without_a_limit_returns_all_keys_untruncated(kms: Any) -> None:
    empty = kms.list_keys()
    assert (empty["Keys"], empty["Truncated"]) == ([], False)
    created = {kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(3)}
    page = kms.list_keys()
    assert {entry["KeyId"] for entry in page["Keys"]} == created
    assert page["Truncated"] is False


def test_list_keys_with_a_marker_it_never_issued_is_an_invalid_marker(kms: Any) -> None:
    kms.create_key()
    for marker in ("bogus", "%%%%", "a2wx", "Zm9vOmJhcg=="):  # junk, not base64, foreign
        code, _ = refused(kms.list_keys, Marker=marker)
        assert code == "InvalidMarkerException", marker


def test_list_keys_limit_above_1000_is_a_validation_error(kms: Any) -> None:
    code, message = refused(kms.list_keys, Limit=1001)
    assert code == "ValidationException"
    assert message == (
        "1 validation error detected: Value '1001' at 'limit' failed to satisfy constraint: "
        "Member must have value less than or equal to 1000"
    )


def test_update_key_description_changes_the_description(kms: Any) -> None:
    key_id = kms.create_key(Description="old")["KeyMetadata"]["KeyId"]
    kms.update_key_description(KeyId=key_id, Description="new")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "new"
    kms.update_key_description(KeyId=ARN_PREFIX + key_id, Description="")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == ""


def test_a_description_longer_than_8192_characters_is_refused(kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    code, message = refused(kms.update_key_description, KeyId=key_id, Description="d" * 8193)
    assert code == "ValidationException"
    assert message.startswith("1 validation error detected: ")
    assert "at 'description' failed to satisfy constraint: Member must have length less " in message
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == ""


def test_disable_and_enable_key_change_key_state_and_enabled_flag(kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=key_id)
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert (metadata["KeyState"], metadata["Enabled"]) == ("Disabled", False)
    kms.disable_key(KeyId=key_id)  # idempotent
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"
    kms.enable_key(KeyId=ARN_PREFIX + key_id)
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert (metadata["KeyState"], metadata["Enabled"]) == ("Enabled", True)
    kms.enable_key(KeyId=key_id)  # idempotent
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Enabled"] is True


def test_a_disabled_key_still_answers_management_reads(kms: Any) -> None:
    key_id = kms.create_key(Tags=[{"TagKey": "a", "TagValue": "b"}])["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=key_id)
    assert kms.get_key_policy(KeyId=key_id)["Policy"]
    assert kms.list_key_policies(KeyId=key_id)["PolicyNames"] == ["default"]
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [{"TagKey": "a", "TagValue": "b"}]
    kms.update_key_description(KeyId=key_id, Description="still editable")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "still editable"
    assert [k["KeyId"] for k in kms.list_keys()["Keys"]] == [key_id]


def test_describe_key_accepts_key_id_key_arn_alias_name_and_alias_arn(kms: Any) -> None:
    metadata = kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/by-name", TargetKeyId=metadata["KeyId"])
    names = (
        metadata["KeyId"],
        metadata["Arn"],
        "alias/by-name",
        f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/by-name",
    )
    for name in names:
        assert kms.describe_key(KeyId=name)["KeyMetadata"] == metadata, name


def test_describe_key_of_a_malformed_key_id_is_invalid_key_id(kms: Any) -> None:
    assert refused(kms.describe_key, KeyId="nope") == ("NotFoundException", "Invalid keyId 'nope'")
    dashless = uuid4().hex
    assert refused(kms.describe_key, KeyId=dashless) == (
        "NotFoundException",
        f"Invalid keyId '{dashless}'",
    )


def test_describe_key_of_an_unknown_key_names_its_arn_in_the_caller_region(kms: Any) -> None:
    key_id = str(uuid4())
    expected = ("NotFoundException", f"Key '{ARN_PREFIX}{key_id}' does not exist")
    assert refused(kms.describe_key, KeyId=key_id) == expected
    assert refused(kms.describe_key, KeyId=ARN_PREFIX + key_id) == expected


def test_a_key_arn_of_another_region_is_an_invalid_arn(kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    foreign = f"arn:aws:kms:us-west-2:{ACCOUNT}:key/{key_id}"
    expected = ("NotFoundException", "Invalid arn us-west-2")
    assert refused(kms.describe_key, KeyId=foreign) == expected
    assert refused(kms.encrypt, KeyId=foreign, Plaintext=b"x") == expected


def test_keys_belong_to_the_region_of_the_credential_scope(server: ThreadServer) -> None:
    east, west = server.client(), server.client(region_name="us-west-2")
    east_key = east.create_key()["KeyMetadata"]
    west_key = west.create_key()["KeyMetadata"]
    assert west_key["Arn"] == f"arn:aws:kms:us-west-2:{ACCOUNT}:key/{west_key['KeyId']}"
    assert [k["KeyId"] for k in east.list_keys()["Keys"]] == [east_key["KeyId"]]
    assert [k["KeyId"] for k in west.list_keys()["Keys"]] == [west_key["KeyId"]]
    code, message = refused(west.describe_key, KeyId=east_key["KeyId"])
    assert code == "NotFoundException"
    west_arn = f"arn:aws:kms:us-west-2:{ACCOUNT}:key/{east_key['KeyId']}"
    assert message == f"Key '{west_arn}' does not exist"


def test_management_operations_take_key_ids_not_aliases(kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/mgmt", TargetKeyId=key_id)
    calls: list[tuple[Callable[..., Any], dict[str, Any]]] = [
        (kms.disable_key, {}),
        (kms.enable_key, {}),
        (kms.update_key_description, {"Description": "x"}),
        (kms.tag_resource, {"Tags": [{"TagKey": "k", "TagValue": "v"}]}),
        (kms.list_resource_tags, {}),
    ]
    for call, extra in calls:
        code, _ = refused(call, KeyId="alias/mgmt", **extra)
        assert code == "NotFoundException", call
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert (metadata["KeyState"], metadata["Description"]) == ("Enabled", "")


def test_management_operations_on_an_unknown_key_are_not_found(kms: Any) -> None:
    key_id = str(uuid4())
    expected = ("NotFoundException", f"Key '{ARN_PREFIX}{key_id}' does not exist")
    assert refused(kms.enable_key, KeyId=key_id) == expected
    assert refused(kms.disable_key, KeyId=key_id) == expected
    assert refused(kms.update_key_description, KeyId=key_id, Description="x") == expected
    assert refused(kms.get_key_policy, KeyId=key_id) == expected
    assert refused(kms.list_key_policies, KeyId=key_id) == expected


def test_other_unbuilt_key_shapes_are_unsupported_operations(kms: Any) -> None:
    for params in (
        {"Origin": "AWS_CLOUDHSM"},
        {"Origin": "EXTERNAL_KEY_STORE"},
        {"MultiRegion": True},
    ):
        code, _ = refused(kms.create_key, **params)
        assert code == "UnsupportedOperationException", params
    assert kms.list_keys()["Keys"] == []


def test_symmetric_key_spec_given_explicitly_is_accepted(kms: Any) -> None:
    metadata = kms.create_key(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT")[
        "KeyMetadata"
    ]
    assert metadata["KeySpec"] == "SYMMETRIC_DEFAULT"
    legacy = kms.create_key(CustomerMasterKeySpec="SYMMETRIC_DEFAULT")["KeyMetadata"]
    assert legacy["CustomerMasterKeySpec"] == "SYMMETRIC_DEFAULT"


def test_key_spec_and_customer_master_key_spec_together_are_a_validation_error(
    kms: Any,
) -> None:
    code, _ = refused(
        kms.create_key, KeySpec="SYMMETRIC_DEFAULT", CustomerMasterKeySpec="SYMMETRIC_DEFAULT"
    )
    assert code == "ValidationException"


def test_an_unknown_key_spec_is_an_enum_validation_error(server: ThreadServer) -> None:
    code, message = refused(unvalidated(server).create_key, KeySpec="AES_512")
    assert code == "ValidationException"
    assert message.startswith(
        "1 validation error detected: Value 'AES_512' at 'keySpec' failed to satisfy "
        "constraint: Member must satisfy enum value set: ["
    )


def test_x_amzn_request_id_header_is_the_response_metadata_request_id(kms: Any) -> None:
    answer = kms.create_key()
    metadata = answer["ResponseMetadata"]
    assert metadata["HTTPHeaders"]["x-amzn-requestid"] == metadata["RequestId"]
    assert str(UUID(metadata["RequestId"])) == metadata["RequestId"]
    assert metadata["HTTPHeaders"]["content-type"] == "application/x-amz-json-1.1"

    with pytest.raises(ClientError) as caught:
        kms.describe_key(KeyId="nope")
    failed = caught.value.response["ResponseMetadata"]
    assert failed["HTTPHeaders"]["x-amzn-requestid"] == failed["RequestId"]
    assert failed["RequestId"] != metadata["RequestId"]


def test_list_keys_pages_by_100_by_default(kms: Any) -> None:
    created = {kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(101)}
    first = kms.list_keys()
    assert len(first["Keys"]) == 100
    assert first["Truncated"] is True
    rest = kms.list_keys(Marker=first["NextMarker"])
    assert (len(rest["Keys"]), rest["Truncated"]) == (1, False)
    assert {k["KeyId"] for k in first["Keys"] + rest["Keys"]} == created


def test_descriptions_keep_unicode_and_control_characters(kms: Any) -> None:
    text = "clé ☃ 🔑 tab\there nul\x00end"
    key_id = kms.create_key(Description=text)["KeyMetadata"]["KeyId"]
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == text
