"""Aliases and tags through boto3: CreateAlias/UpdateAlias/DeleteAlias/ListAliases and
TagResource/UntagResource/ListResourceTags, with AWS's error types and texts."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from tests.support import ThreadServer, refused, unvalidated

ACCOUNT = "000000000000"
REGION = "us-east-1"
ALIAS_ARN_PREFIX = f"arn:aws:kms:{REGION}:{ACCOUNT}:"


def new_key(kms: Any) -> str:
    return str(kms.create_key()["KeyMetadata"]["KeyId"])


def aliases(kms: Any, **params: Any) -> dict[str, dict[str, Any]]:
    """Customer aliases listed (the predefined alias/aws/* names are always there too)."""
    listed = kms.list_aliases(**params)["Aliases"]
    return {e["AliasName"]: e for e in listed if not e["AliasName"].startswith("alias/aws/")}


def tags_of(kms: Any, key_id: str) -> dict[str, str]:
    return {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key_id)["Tags"]}


def tag_list(count: int, prefix: str = "k") -> list[dict[str, str]]:
    return [{"TagKey": f"{prefix}{n:02d}", "TagValue": f"v{n}"} for n in range(count)]


# ---------------------------------------------------------------- aliases


def test_create_alias_is_listed_with_arn_target_and_dates(kms: Any) -> None:
    key_id = new_key(kms)
    kms.create_alias(AliasName="alias/orders", TargetKeyId=key_id)
    entry = aliases(kms)["alias/orders"]
    assert entry["AliasArn"] == ALIAS_ARN_PREFIX + "alias/orders"
    assert entry["TargetKeyId"] == key_id
    assert isinstance(entry["CreationDate"], datetime)
    assert isinstance(entry["LastUpdatedDate"], datetime)
    assert entry["CreationDate"] == entry["LastUpdatedDate"]
    assert abs(entry["CreationDate"].timestamp() - time.time()) < 30


def test_create_alias_accepts_a_key_arn_as_target(kms: Any) -> None:
    metadata = kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/by-arn", TargetKeyId=metadata["Arn"])
    assert aliases(kms)["alias/by-arn"]["TargetKeyId"] == metadata["KeyId"]


def test_an_alias_cannot_target_another_alias(kms: Any) -> None:
    kms.create_alias(AliasName="alias/first", TargetKeyId=new_key(kms))
    code, _ = refused(kms.create_alias, AliasName="alias/second", TargetKeyId="alias/first")
    assert code == "NotFoundException"
    assert "alias/second" not in aliases(kms)


def test_create_alias_for_an_unknown_key_is_not_found(kms: Any) -> None:
    missing = "11111111-2222-3333-4444-555555555555"
    code, message = refused(kms.create_alias, AliasName="alias/orphan", TargetKeyId=missing)
    assert (code, message) == (
        "NotFoundException",
        f"Key 'arn:aws:kms:{REGION}:{ACCOUNT}:key/{missing}' does not exist",
    )
    assert aliases(kms) == {}


def test_an_existing_alias_name_cannot_be_created_again(kms: Any) -> None:
    first, second = new_key(kms), new_key(kms)
    kms.create_alias(AliasName="alias/taken", TargetKeyId=first)
    code, message = refused(kms.create_alias, AliasName="alias/taken", TargetKeyId=second)
    assert code == "AlreadyExistsException"
    assert message == f"An alias with the name {ALIAS_ARN_PREFIX}alias/taken already exists"
    assert aliases(kms)["alias/taken"]["TargetKeyId"] == first


def test_update_alias_retargets_and_moves_only_the_last_updated_date(kms: Any) -> None:
    first, second = new_key(kms), new_key(kms)
    kms.create_alias(AliasName="alias/moving", TargetKeyId=first)
    before = aliases(kms)["alias/moving"]
    time.sleep(0.01)
    kms.update_alias(AliasName="alias/moving", TargetKeyId=second)
    after = aliases(kms)["alias/moving"]
    assert after["TargetKeyId"] == second
    assert after["CreationDate"] == before["CreationDate"]
    assert after["LastUpdatedDate"] > before["LastUpdatedDate"]
    assert kms.describe_key(KeyId="alias/moving")["KeyMetadata"]["KeyId"] == second


def test_update_alias_of_a_missing_alias_names_the_alias_arn(kms: Any) -> None:
    key_id = new_key(kms)
    code, message = refused(kms.update_alias, AliasName="alias/absent", TargetKeyId=key_id)
    assert (code, message) == (
        "NotFoundException",
        f"Alias {ALIAS_ARN_PREFIX}alias/absent is not found.",
    )


def test_delete_alias_removes_it_from_listings_and_lookups(kms: Any) -> None:
    key_id = new_key(kms)
    kms.create_alias(AliasName="alias/doomed", TargetKeyId=key_id)
    kms.delete_alias(AliasName="alias/doomed")
    assert aliases(kms) == {}
    not_found = ("NotFoundException", f"Alias {ALIAS_ARN_PREFIX}alias/doomed is not found.")
    assert refused(kms.describe_key, KeyId="alias/doomed") == not_found
    assert refused(kms.encrypt, KeyId="alias/doomed", Plaintext=b"x") == not_found
    assert refused(kms.delete_alias, AliasName="alias/doomed") == not_found
    assert refused(kms.update_alias, AliasName="alias/doomed", TargetKeyId=key_id) == not_found
    # the key itself is untouched
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"


def test_delete_alias_of_a_name_never_created_is_not_found(kms: Any) -> None:
    assert refused(kms.delete_alias, AliasName="alias/never") == (
        "NotFoundException",
        f"Alias {ALIAS_ARN_PREFIX}alias/never is not found.",
    )


def test_a_deleted_alias_name_can_be_created_again_with_a_fresh_creation_date(kms: Any) -> None:
    first, second = new_key(kms), new_key(kms)
    kms.create_alias(AliasName="alias/phoenix", TargetKeyId=first)
    original = aliases(kms)["alias/phoenix"]
    time.sleep(0.01)
    kms.delete_alias(AliasName="alias/phoenix")
    kms.create_alias(AliasName="alias/phoenix", TargetKeyId=second)
    reborn = aliases(kms)["alias/phoenix"]
    assert reborn["TargetKeyId"] == second
    assert reborn["CreationDate"] > original["CreationDate"]
    assert reborn["LastUpdatedDate"] == reborn["CreationDate"]
    assert kms.describe_key(KeyId="alias/phoenix")["KeyMetadata"]["KeyId"] == second
    code, _ = refused(kms.create_alias, AliasName="alias/phoenix", TargetKeyId=first)
    assert code == "AlreadyExistsException"


def test_list_aliases_filters_by_key_id_or_key_arn(kms: Any) -> None:
    first = kms.create_key()["KeyMetadata"]
    second = new_key(kms)
    kms.create_alias(AliasName="alias/a1", TargetKeyId=first["KeyId"])
    kms.create_alias(AliasName="alias/a2", TargetKeyId=first["KeyId"])
    kms.create_alias(AliasName="alias/b1", TargetKeyId=second)
    assert set(aliases(kms, KeyId=first["KeyId"])) == {"alias/a1", "alias/a2"}
    assert set(aliases(kms, KeyId=first["Arn"])) == {"alias/a1", "alias/a2"}
    assert set(aliases(kms, KeyId=second)) == {"alias/b1"}
    assert set(aliases(kms)) == {"alias/a1", "alias/a2", "alias/b1"}
    lonely = new_key(kms)
    assert aliases(kms, KeyId=lonely) == {}


def test_list_aliases_with_an_unknown_key_id_filter_is_not_found(kms: Any) -> None:
    code, _ = refused(kms.list_aliases, KeyId="11111111-2222-3333-4444-555555555555")
    assert code == "NotFoundException"


def test_list_aliases_pages_through_every_alias_exactly_once(kms: Any) -> None:
    key_id = new_key(kms)
    names = {f"alias/page-{n}" for n in range(5)}
    for name in names:
        kms.create_alias(AliasName=name, TargetKeyId=key_id)
    seen: list[str] = []
    sizes: list[int] = []
    params: dict[str, Any] = {"Limit": 2}
    while True:
        page = kms.list_aliases(**params)
        sizes.append(len(page["Aliases"]))
        seen += [entry["AliasName"] for entry in page["Aliases"]]
        if not page["Truncated"]:
            assert "NextMarker" not in page
            break
        params["Marker"] = page["NextMarker"]
    assert sizes == [2] * 9 + [1]  # 5 of ours and the 14 predefined alias/aws/* names
    assert sorted(n for n in seen if not n.startswith("alias/aws/")) == sorted(names)
    assert len(seen) == len(set(seen)) == 19
    filtered = kms.list_aliases(KeyId=key_id, Limit=4)
    assert len(filtered["Aliases"]) == 4
    assert filtered["Truncated"] is True
    rest = kms.list_aliases(KeyId=key_id, Limit=4, Marker=filtered["NextMarker"])
    assert len(rest["Aliases"]) == 1
    assert rest["Truncated"] is False


def test_list_aliases_with_a_bad_marker_is_an_invalid_marker(kms: Any) -> None:
    code, _ = refused(kms.list_aliases, Marker="not-a-marker")
    assert code == "InvalidMarkerException"


def test_reserved_aws_alias_names_cannot_be_created(kms: Any) -> None:
    key_id = new_key(kms)
    for name in ("alias/aws/s3", "alias/aws/custom"):
        code, _ = refused(kms.create_alias, AliasName=name, TargetKeyId=key_id)
        assert code in {"InvalidAliasNameException", "NotAuthorizedException"}, name
    assert aliases(kms) == {}


def test_an_alias_name_without_the_alias_prefix_is_a_validation_error(kms: Any) -> None:
    key_id = new_key(kms)
    expected = (
        "ValidationException",
        'Alias must start with the prefix "alias/". Please see '
        "https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html",
    )
    assert refused(kms.create_alias, AliasName="orders", TargetKeyId=key_id) == expected
    assert refused(kms.update_alias, AliasName="orders", TargetKeyId=key_id) == expected
    assert refused(kms.delete_alias, AliasName="orders") == expected
    assert aliases(kms) == {}


def test_a_colon_in_an_alias_name_is_an_invalid_alias_name(kms: Any) -> None:
    key_id = new_key(kms)
    code, message = refused(kms.create_alias, AliasName="alias/x:y", TargetKeyId=key_id)
    assert (code, message) == (
        "InvalidAliasNameException",
        "alias/x:y contains invalid characters for an alias",
    )


def test_characters_outside_the_model_pattern_are_a_validation_error(kms: Any) -> None:
    key_id = new_key(kms)
    code, message = refused(kms.create_alias, AliasName="alias/bad name!", TargetKeyId=key_id)
    assert code == "ValidationException"
    assert message == (
        "1 validation error detected: Value 'alias/bad name!' at 'aliasName' failed to "
        "satisfy constraint: Member must satisfy regular expression pattern: "
        "^[a-zA-Z0-9:/_-]+$"
    )
    assert aliases(kms) == {}


def test_an_alias_name_longer_than_256_characters_is_a_validation_error(kms: Any) -> None:
    key_id = new_key(kms)
    code, message = refused(kms.create_alias, AliasName="alias/" + "a" * 251, TargetKeyId=key_id)
    assert code == "ValidationException"
    assert "Member must have length less than or equal to 256" in message
    kms.create_alias(AliasName="alias/" + "a" * 250, TargetKeyId=key_id)
    assert len(aliases(kms)) == 1


def test_alias_names_are_case_sensitive(kms: Any) -> None:
    lower, upper = new_key(kms), new_key(kms)
    kms.create_alias(AliasName="alias/case", TargetKeyId=lower)
    kms.create_alias(AliasName="alias/CASE", TargetKeyId=upper)
    assert kms.describe_key(KeyId="alias/case")["KeyMetadata"]["KeyId"] == lower
    assert kms.describe_key(KeyId="alias/CASE")["KeyMetadata"]["KeyId"] == upper


def test_the_same_alias_name_may_exist_in_two_regions(server: ThreadServer) -> None:
    east, west = server.client(), server.client(region_name="us-west-2")
    east_key, west_key = new_key(east), new_key(west)
    east.create_alias(AliasName="alias/shared", TargetKeyId=east_key)
    west.create_alias(AliasName="alias/shared", TargetKeyId=west_key)
    assert east.describe_key(KeyId="alias/shared")["KeyMetadata"]["KeyId"] == east_key
    assert west.describe_key(KeyId="alias/shared")["KeyMetadata"]["KeyId"] == west_key
    assert aliases(west)["alias/shared"]["AliasArn"] == (
        f"arn:aws:kms:us-west-2:{ACCOUNT}:alias/shared"
    )


def test_list_aliases_pages_by_50_by_default(kms: Any) -> None:
    keys = [new_key(kms), new_key(kms)]
    for n in range(51):
        kms.create_alias(AliasName=f"alias/default-{n:02d}", TargetKeyId=keys[n % 2])
    first = kms.list_aliases()
    assert (len(first["Aliases"]), first["Truncated"]) == (50, True)
    rest = kms.list_aliases(Marker=first["NextMarker"])
    assert (len(rest["Aliases"]), rest["Truncated"]) == (15, False)  # + 14 predefined


def test_a_key_can_have_at_most_50_aliases(kms: Any) -> None:
    """Quota "Aliases per KMS key: 50" (KMS resource quotas): LimitExceededException."""
    key_id = new_key(kms)
    for n in range(50):
        kms.create_alias(AliasName=f"alias/quota-{n:02d}", TargetKeyId=key_id)
    code, _ = refused(kms.create_alias, AliasName="alias/quota-50", TargetKeyId=key_id)
    assert code == "LimitExceededException"
    assert len(aliases(kms, KeyId=key_id, Limit=100)) == 50


def test_concurrent_creates_of_one_alias_name_let_exactly_one_win(
    server: ThreadServer,
) -> None:
    clients = [server.client() for _ in range(8)]
    targets = [new_key(clients[0]) for _ in range(8)]

    def attempt(n: int) -> str:
        try:
            clients[n].create_alias(AliasName="alias/race", TargetKeyId=targets[n])
        except ClientError as error:
            assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
            return str(error.response["Error"]["Code"])
        return "won"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(attempt, range(8)))
    assert sorted(outcomes) == ["AlreadyExistsException"] * 7 + ["won"]
    winner = targets[outcomes.index("won")]
    assert aliases(clients[0])["alias/race"]["TargetKeyId"] == winner
    assert clients[0].describe_key(KeyId="alias/race")["KeyMetadata"]["KeyId"] == winner


# ---------------------------------------------------------------- tags


def test_tag_resource_adds_and_overwrites_tags(kms: Any) -> None:
    key_id = new_key(kms)
    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "a", "TagValue": "1"}])
    kms.tag_resource(
        KeyId=key_id, Tags=[{"TagKey": "a", "TagValue": "2"}, {"TagKey": "b", "TagValue": ""}]
    )
    assert tags_of(kms, key_id) == {"a": "2", "b": ""}


def test_tag_resource_accepts_a_key_arn(kms: Any) -> None:
    metadata = kms.create_key()["KeyMetadata"]
    kms.tag_resource(KeyId=metadata["Arn"], Tags=[{"TagKey": "k", "TagValue": "v"}])
    assert kms.list_resource_tags(KeyId=metadata["Arn"])["Tags"] == [
        {"TagKey": "k", "TagValue": "v"}
    ]


def test_untag_resource_removes_only_the_named_keys(kms: Any) -> None:
    key_id = new_key(kms)
    kms.tag_resource(KeyId=key_id, Tags=tag_list(3))
    kms.untag_resource(KeyId=key_id, TagKeys=["k00", "k02", "never-set"])
    assert tags_of(kms, key_id) == {"k01": "v1"}
    kms.untag_resource(KeyId=key_id, TagKeys=["k01"])
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == []


def test_tags_of_one_key_are_not_listed_for_another(kms: Any) -> None:
    first, second = new_key(kms), new_key(kms)
    kms.tag_resource(KeyId=first, Tags=[{"TagKey": "owner", "TagValue": "first"}])
    assert tags_of(kms, second) == {}


def test_list_resource_tags_pages_through_every_tag_exactly_once(kms: Any) -> None:
    key_id = new_key(kms)
    kms.tag_resource(KeyId=key_id, Tags=tag_list(5))
    seen: dict[str, str] = {}
    sizes: list[int] = []
    params: dict[str, Any] = {"KeyId": key_id, "Limit": 2}
    while True:
        page = kms.list_resource_tags(**params)
        sizes.append(len(page["Tags"]))
        for tag in page["Tags"]:
            assert tag["TagKey"] not in seen
            seen[tag["TagKey"]] = tag["TagValue"]
        if not page["Truncated"]:
            assert "NextMarker" not in page
            break
        params["Marker"] = page["NextMarker"]
    assert sizes == [2, 2, 1]
    assert seen == {t["TagKey"]: t["TagValue"] for t in tag_list(5)}


def test_list_resource_tags_with_a_bad_marker_is_an_invalid_marker(kms: Any) -> None:
    key_id = new_key(kms)
    code, _ = refused(kms.list_resource_tags, KeyId=key_id, Marker="junk")
    assert code == "InvalidMarkerException"


def test_tag_keys_beginning_with_aws_are_reserved(kms: Any) -> None:
    key_id = new_key(kms)
    reserved = ("TagException", "Tags beginning with aws: are reserved")
    tags = [{"TagKey": "aws:owner", "TagValue": "me"}]
    assert refused(kms.tag_resource, KeyId=key_id, Tags=tags) == reserved
    assert refused(kms.create_key, Tags=tags) == reserved
    assert tags_of(kms, key_id) == {}
    assert len(kms.list_keys()["Keys"]) == 1


def test_duplicate_tag_keys_in_one_request_are_refused(kms: Any) -> None:
    key_id = new_key(kms)
    tags = [{"TagKey": "dup", "TagValue": "1"}, {"TagKey": "dup", "TagValue": "2"}]
    duplicate = ("TagException", "Duplicate tag keys")
    assert refused(kms.tag_resource, KeyId=key_id, Tags=tags) == duplicate
    assert refused(kms.create_key, Tags=tags) == duplicate
    assert tags_of(kms, key_id) == {}


def test_a_key_holds_at_most_50_tags_through_tag_resource(kms: Any) -> None:
    key_id = new_key(kms)
    too_many = ("TagException", "Too many tags")
    assert refused(kms.tag_resource, KeyId=key_id, Tags=tag_list(51)) == too_many
    assert tags_of(kms, key_id) == {}
    kms.tag_resource(KeyId=key_id, Tags=tag_list(50))
    assert len(tags_of(kms, key_id)) == 50
    # overwriting existing keys stays within the quota
    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "k00", "TagValue": "new"}])
    assert refused(kms.tag_resource, KeyId=key_id, Tags=tag_list(1, prefix="extra")) == too_many
    assert len(tags_of(kms, key_id)) == 50


def test_create_key_with_more_than_50_tags_is_refused(kms: Any) -> None:
    code, message = refused(kms.create_key, Tags=tag_list(51))
    assert (code, message) == ("TagException", "Too many tags")
    assert kms.list_keys()["Keys"] == []


def test_tag_keys_and_values_have_model_length_limits(server: ThreadServer) -> None:
    kms = server.client()
    key_id = new_key(kms)
    code, message = refused(
        kms.tag_resource, KeyId=key_id, Tags=[{"TagKey": "k" * 129, "TagValue": "v"}]
    )
    assert code == "ValidationException"
    assert "at 'tags.1.member.tagKey' failed to satisfy constraint: Member must have length" in (
        message
    )
    code, _ = refused(kms.tag_resource, KeyId=key_id, Tags=[{"TagKey": "k", "TagValue": "v" * 257}])
    assert code == "ValidationException"
    code, _ = refused(
        unvalidated(server).tag_resource, KeyId=key_id, Tags=[{"TagKey": "", "TagValue": "v"}]
    )
    assert code == "ValidationException"
    assert tags_of(kms, key_id) == {}


def test_tag_operations_on_an_unknown_key_are_not_found(kms: Any) -> None:
    missing = "11111111-2222-3333-4444-555555555555"
    expected = (
        "NotFoundException",
        f"Key 'arn:aws:kms:{REGION}:{ACCOUNT}:key/{missing}' does not exist",
    )
    assert refused(kms.tag_resource, KeyId=missing, Tags=tag_list(1)) == expected
    assert refused(kms.untag_resource, KeyId=missing, TagKeys=["k00"]) == expected
    assert refused(kms.list_resource_tags, KeyId=missing) == expected


def test_concurrent_tagging_never_exceeds_50_tags(server: ThreadServer) -> None:
    clients = [server.client() for _ in range(10)]
    key_id = new_key(clients[0])

    def attempt(n: int) -> str:
        try:
            clients[n].tag_resource(KeyId=key_id, Tags=tag_list(10, prefix=f"t{n}-"))
        except ClientError as error:
            return str(error.response["Error"]["Message"])
        return "tagged"

    with ThreadPoolExecutor(10) as pool:
        outcomes = list(pool.map(attempt, range(10)))
    assert sorted(outcomes) == ["Too many tags"] * 5 + ["tagged"] * 5
    assert len(tags_of(clients[0], key_id)) == 50


def test_the_alias_quota_holds_under_a_concurrent_burst(server: ThreadServer) -> None:
    """Creations that share one group-commit batch still count against the quota."""
    from concurrent.futures import ThreadPoolExecutor

    kms = server.client()
    key_id = new_key(kms)
    clients = [server.client() for _ in range(12)]

    def create(n: int) -> str:
        try:
            clients[n % 12].create_alias(AliasName=f"alias/burst-{n:02d}", TargetKeyId=key_id)
        except ClientError as error:
            return str(error.response["Error"]["Code"])
        return "ok"

    with ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(create, range(60)))
    assert outcomes.count("ok") == 50
    assert set(outcomes) == {"ok", "LimitExceededException"}
    assert len(aliases(kms, KeyId=key_id, Limit=100)) == 50


def test_update_alias_cannot_move_an_alias_onto_a_full_key(kms: Any) -> None:
    full, other = new_key(kms), new_key(kms)
    for n in range(50):
        kms.create_alias(AliasName=f"alias/full-{n:02d}", TargetKeyId=full)
    kms.create_alias(AliasName="alias/mover", TargetKeyId=other)
    code, _ = refused(kms.update_alias, AliasName="alias/mover", TargetKeyId=full)
    assert code == "LimitExceededException"
    assert "alias/mover" in aliases(kms, KeyId=other)
