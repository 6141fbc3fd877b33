"""The Python vocabulary of the contracts' enums is declared once and matches the Solidity sources."""

import re
from enum import IntEnum
from pathlib import Path

import pytest

from ehr_client.chain.types import Access, Action, KeyType, Role, Status

INTERFACES = Path(__file__).resolve().parents[2] / "contracts" / "interfaces"


def _solidity_enum(file: str, name: str) -> list[str]:
    source = (INTERFACES / file).read_text()
    body = re.search(rf"enum {name}\s*{{([^}}]*)}}", source)
    assert body, f"enum {name} not found in {file}"
    return [item.strip() for item in body.group(1).split(",") if item.strip()]


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper()


@pytest.mark.parametrize("enum, file, name", [
    (Role, "IConsortium.sol", "Role"), (Action, "IConsortium.sol", "Action"),
    (Access, "IConsentManager.sol", "Access"), (Status, "IRecordRegistry.sol", "Status"),
    (KeyType, "IKeyRegistry.sol", "KeyType"),
])
def test_python_enum_matches_the_solidity_enum(enum: type[IntEnum], file: str, name: str) -> None:
    assert [member.name for member in enum] == [_snake(item) for item in _solidity_enum(file, name)]
    assert [int(member) for member in enum] == list(range(len(enum)))
