"""`ehr record list` keeps the patient's listing cursor in the home, so the next command (another
process, as a person runs them) asks the node only for the blocks after it."""

from __future__ import annotations

import json
from pathlib import Path

import requests

from ehr_client.dev.node import AnvilNode
from tests.cli.conftest import Cli


def test_record_list_leaves_a_cursor_the_next_command_uses(cli: Cli, world: dict[str, str], lab_record: str,
                                                          anvil: AnvilNode, home: Path) -> None:
    requests.post(anvil.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "anvil_mine", "params": ["0x80", "0x0"]},
                  timeout=120).raise_for_status()
    first = cli.json("record", "list", "patient", wallet="doctor")["records"]
    files = list((home / "journal" / "doctor").glob("listing-*/*.json"))
    assert [f.name for f in files] == [f"{world['patient']}.json"]
    cursor = json.loads(files[0].read_text())
    assert cursor["cursor"] > 0 and lab_record[2:] in json.dumps(cursor["events"]).lower()
    assert cli.json("record", "list", "patient", wallet="doctor")["records"] == first
    files[0].write_text("{ damaged")  # a damaged cache is rebuilt, never reported
    assert cli.json("record", "list", "patient", wallet="doctor")["records"] == first
    assert json.loads(files[0].read_text())["cursor"] >= cursor["cursor"]
