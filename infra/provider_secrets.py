"""Secrets: one Secrets Manager secret per configured provider that needs credentials.

A provider whose config names a ``secret_id`` gets that secret imported; the others get a new
secret holding ``{}`` for the operator to fill (docs/deploy.md). Functions receive the secret's
ARN as the provider's ``secret_id`` and read access to exactly these secrets.
"""

from __future__ import annotations

import re

from autotag.deploy.specs import SecretSpec
from aws_cdk import SecretValue
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra import ids
from infra.nag import acknowledge

_COMPLETE_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[^:]+:\d{12}:secret:.+-[A-Za-z0-9]{6}$")


class ProviderSecrets(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, secrets: tuple[SecretSpec, ...]) -> None:
        super().__init__(scope, construct_id)
        self.secrets: dict[str, secretsmanager.ISecret] = {}
        self.secret_ids: dict[str, str] = {}
        """Provider key -> the ``secret_id`` functions use (ARN, or the imported name)."""
        self.existing_ids = tuple(spec.existing_secret_id for spec in secrets if spec.existing_secret_id)
        """The imported secrets, as the config names them."""
        for spec in secrets:
            secret = self._secret(spec)
            self.secrets[spec.provider_key] = secret
            self.secret_ids[spec.provider_key] = spec.existing_secret_id or secret.secret_arn

    def _secret(self, spec: SecretSpec) -> secretsmanager.ISecret:
        construct_id = f"{ids.pascal(spec.provider_key)}Secret"
        existing = spec.existing_secret_id
        if existing and _COMPLETE_ARN.match(existing):
            return secretsmanager.Secret.from_secret_complete_arn(self, construct_id, existing)
        if existing and existing.startswith("arn:"):
            return secretsmanager.Secret.from_secret_partial_arn(self, construct_id, existing)
        if existing:
            return secretsmanager.Secret.from_secret_name_v2(self, construct_id, existing)
        secret = secretsmanager.Secret(
            self,
            construct_id,
            description=(
                f"autotag credentials for provider {spec.provider_key!r} ({spec.provider_name}): "
                "replace {} with the JSON object documented for the provider"
            ),
            # A placeholder, not a credential: the operator puts the real value in after deploy.
            secret_string_value=SecretValue.unsafe_plain_text("{}"),
        )
        acknowledge(
            secret,
            "AwsSolutions-SMG4",
            "holds a third-party provider's API key that the provider issues; rotation means "
            "issuing a new key there and putting it here (functions re-read it on an auth error)",
        )
        return secret


def imported_secret_finding(existing_secret_id: str) -> str | None:
    """The IAM5 finding of read access to a secret imported by name (``-??????``: the random suffix)."""
    if existing_secret_id.startswith("arn:"):
        return None
    return (
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:"
        f"<AWS::AccountId>:secret:{existing_secret_id}-??????]"
    )
