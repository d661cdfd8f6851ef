"""Small readers for synthesized CloudFormation: render intrinsic values, walk IAM statements."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

PLACEHOLDER_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:placeholder-AbCdEf"


def render(value: Any) -> str:
    """A string value with intrinsics replaced by plausible stand-ins (for parsing and sizing)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(render(p) for p in parts)
    if isinstance(value, dict) and ("Ref" in value or "Fn::GetAtt" in value):
        target = value.get("Ref") or value["Fn::GetAtt"][0]
        if "Secret" in str(target):
            return PLACEHOLDER_ARN
        return f"resolved-{target}".lower()[:63]
    raise AssertionError(f"cannot render {value!r}")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every statement of an AWS::IAM::Policy or of a role's inline policies."""
    props = resource.get("Properties", {})
    if resource["Type"] == "AWS::IAM::Policy":
        yield from props["PolicyDocument"]["Statement"]
    elif resource["Type"] == "AWS::IAM::Role":
        for policy in props.get("Policies", []):
            yield from policy["PolicyDocument"]["Statement"]


def refs(value: Any) -> set[str]:
    """Logical ids a value refers to (Ref / GetAtt, through Joins)."""
    found: set[str] = set()
    if isinstance(value, dict):
        if "Ref" in value:
            found.add(value["Ref"])
        if "Fn::GetAtt" in value:
            found.add(value["Fn::GetAtt"][0])
        for inner in value.values():
            found |= refs(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= refs(inner)
    return found


def role_statements(raw: dict[str, Any], role_logical_id: str) -> list[dict[str, Any]]:
    """Statements of the policies attached to one role."""
    found: list[dict[str, Any]] = []
    for resource in raw["Resources"].values():
        if resource["Type"] == "AWS::IAM::Policy" and role_logical_id in refs(
            resource["Properties"]["Roles"]
        ):
            found.extend(statements(resource))
    return found
