"""AWS managed keys: the predefined alias/aws/<service> names and the keys behind them."""

from __future__ import annotations

import json

# The predefined aliases AWS lists in every account and Region before first use
# (https://docs.aws.amazon.com/kms/latest/developerguide/concepts.html#aws-managed-key).
MANAGED_SERVICES = (
    "acm",
    "dynamodb",
    "ebs",
    "elasticfilesystem",
    "es",
    "glue",
    "kinesisvideo",
    "lambda",
    "rds",
    "redshift",
    "s3",
    "secretsmanager",
    "ssm",
    "xray",
)
PREFIX = "alias/aws/"
PREDEFINED_ALIASES = tuple(PREFIX + service for service in MANAGED_SERVICES)
ROTATION_DAYS = 365  # AWS managed keys rotate every year


def service_of(alias_name: str) -> str | None:
    """The service a predefined alias belongs to, or None for any other name."""
    return alias_name.removeprefix(PREFIX) if alias_name in PREDEFINED_ALIASES else None


def description(service: str) -> str:
    return f"Default key that protects my {service} resources when no other key is defined"


def policy(account: str, region: str, service: str) -> str:
    """The shape of an AWS managed key's policy: use only through the owning service by
    principals of the account (kms:ViaService + kms:CallerAccount); the account may view
    the key and its policy but not manage it."""
    document = {
        "Version": "2012-10-17",
        "Id": f"auto-{service}-1",
        "Statement": [
            {
                "Sid": f"Allow access through {service} for all principals in the account "
                f"that are authorized to use {service}",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": [
                    "kms:Encrypt",
                    "kms:Decrypt",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:CreateGrant",
                    "kms:DescribeKey",
                ],
                "Resource": "*",
                "Condition": {
                    "StringEquals": {
                        "kms:CallerAccount": account,
                        "kms:ViaService": f"{service}.{region}.amazonaws.com",
                    }
                },
            },
            {
                "Sid": "Allow direct access to key metadata to the account",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                "Action": ["kms:Describe*", "kms:Get*", "kms:List*"],
                "Resource": "*",
            },
        ],
    }
    return json.dumps(document, indent=2)
